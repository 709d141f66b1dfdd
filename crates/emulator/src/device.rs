//! The firmware `Device`, shared by every WebSocket session (owned by the ws work).

use std::sync::Arc;

use crate::context::Shared;
use crate::events::EventLog;

/// Firmware settings for the emulated device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Token the app must present (`Authorization: Bearer`, `?token=` or `hello`).
    pub auth_token: Option<String>,
    /// Seed for the simulated board's sensors.
    pub seed: u64,
}

/// The one `Device` of an emulator and its fan-out to sessions.
#[derive(Debug)]
pub(crate) struct DeviceHub {
    _options: DeviceOptions,
}

impl DeviceHub {
    pub(crate) fn new(options: DeviceOptions, _events: Arc<EventLog>) -> Self {
        DeviceHub { _options: options }
    }

    /// Starts the firmware's timer task.
    pub(crate) fn start(&self, _shared: &Arc<Shared>) {}
}
