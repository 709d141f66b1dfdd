//! Which logic runs behind the device's WebSocket and HTTP ports: the built-in firmware, or a
//! user's own [`DeviceLogic`] (issue 14's Rust device; device files build on the same seam).

use std::fmt;
use std::sync::Arc;

use espsim_firmware::DeviceLogic;

use crate::device_host::DeviceOptions;

/// Builds a user's device logic from the run's seed (called once per emulator start).
pub type LogicFactory = dyn Fn(u64) -> Box<dyn DeviceLogic + Send> + Send + Sync;

/// The device logic an emulator hosts. Whatever it is, it is served through the same ESP-IDF
/// httpd emulation, socket limits, event log and fault layer.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum DeviceSource {
    /// The built-in firmware (`espsim_firmware::Device` on a seeded `SimBoard`), configured by
    /// [`EmulatorConfig::device`](crate::EmulatorConfig::device).
    #[default]
    Builtin,
    /// A user's own logic, built from the run's seed, e.g.
    /// `DeviceSource::custom(|seed| Box::new(MyDevice::new(seed)))`.
    Custom(Arc<LogicFactory>),
}

impl DeviceSource {
    /// A user's own logic, built by `factory` from the run's seed.
    pub fn custom<F>(factory: F) -> Self
    where
        F: Fn(u64) -> Box<dyn DeviceLogic + Send> + Send + Sync + 'static,
    {
        DeviceSource::Custom(Arc::new(factory))
    }

    /// The logic for one run: `options` configure the built-in firmware, `seed` seeds either.
    pub(crate) fn build(&self, options: &DeviceOptions, seed: u64) -> Box<dyn DeviceLogic + Send> {
        match self {
            DeviceSource::Builtin => options.builtin(seed),
            DeviceSource::Custom(factory) => factory(seed),
        }
    }
}

impl fmt::Debug for DeviceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSource::Builtin => f.write_str("Builtin"),
            DeviceSource::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}
