//! Which logic runs behind the device's WebSocket and HTTP ports: the built-in firmware, a
//! device file, a user's own [`DeviceLogic`], or a device process in any language.

use std::fmt;
use std::sync::Arc;

use espsim_device_file::DeviceFile;
use espsim_firmware::DeviceLogic;

use crate::StartError;
use crate::device_host::DeviceOptions;
use crate::device_process::{self, ProcessSpec, Supervisor};
use crate::events::EventLog;
use crate::lifecycle::Lifecycle;

/// The logic of one run, and the supervisor of its device process if it is one.
pub(crate) struct Built {
    pub(crate) logic: Box<dyn DeviceLogic + Send>,
    pub(crate) process: Option<Supervisor>,
}

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
    /// A device file (`espsim run --device FILE`, a scenario's `device: { file: … }`). Its
    /// `websocket:` section sets the endpoint, in place of
    /// [`EmulatorConfig::ws`](crate::EmulatorConfig::ws).
    File(Arc<DeviceFile>),
    /// A user's own logic, built from the run's seed, e.g.
    /// `DeviceSource::custom(|seed| Box::new(MyDevice::new(seed)))`.
    Custom(Arc<LogicFactory>),
    /// A program in any language speaking the device-process protocol on its stdin and stdout
    /// (`device: { command: [...] }`, `espsim run --device-command`); see
    /// `docs/reference/device-process.md`.
    Process(Arc<ProcessSpec>),
}

impl DeviceSource {
    /// A user's own logic, built by `factory` from the run's seed.
    pub fn custom<F>(factory: F) -> Self
    where
        F: Fn(u64) -> Box<dyn DeviceLogic + Send> + Send + Sync + 'static,
    {
        DeviceSource::Custom(Arc::new(factory))
    }

    /// The logic for one run: `options` configure the built-in firmware, `seed` seeds every
    /// kind. A device process is started here and has said `ready` when this returns; its
    /// supervisor comes back to be run once the host exists.
    pub(crate) async fn build(
        &self,
        options: &DeviceOptions,
        seed: u64,
        max_message: usize,
        events: &Arc<EventLog>,
        lifecycle: &Lifecycle,
    ) -> Result<Built, StartError> {
        let logic: Box<dyn DeviceLogic + Send> = match self {
            DeviceSource::Builtin => options.builtin(seed),
            DeviceSource::File(file) => Box::new(file.device(seed).map_err(Box::new)?),
            DeviceSource::Custom(factory) => factory(seed),
            DeviceSource::Process(spec) => {
                let (logic, supervisor) =
                    device_process::launch(spec, seed, max_message, events.clone(), lifecycle)
                        .await?;
                return Ok(Built {
                    logic: Box::new(logic),
                    process: Some(supervisor),
                });
            }
        };
        Ok(Built {
            logic,
            process: None,
        })
    }

    /// The WebSocket endpoint the logic declares, if it declares one (a device file does).
    pub(crate) fn ws_endpoints(&self) -> Option<Vec<crate::WsSettings>> {
        match self {
            DeviceSource::File(file) => Some(
                file.endpoints()
                    .into_iter()
                    .map(|e| crate::WsSettings {
                        path: e.path,
                        subprotocol: e.subprotocol,
                    })
                    .collect(),
            ),
            DeviceSource::Builtin | DeviceSource::Custom(_) | DeviceSource::Process(_) => None,
        }
    }
}

impl fmt::Debug for DeviceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSource::Builtin => f.write_str("Builtin"),
            DeviceSource::File(file) => write!(f, "File({})", file.name()),
            DeviceSource::Custom(_) => f.write_str("Custom(..)"),
            DeviceSource::Process(spec) => write!(f, "Process({})", spec.command_line()),
        }
    }
}
