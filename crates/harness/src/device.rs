//! The `device:` section of a scenario file (also `espsim run --config FILE`). Its format is the
//! emulator's ([`espsim_emulator::config`]); this module re-exports it (the emulator's tests pin
//! how the strict YAML reader treats it).

pub use espsim_emulator::config::{DeviceSpec, DeviceSpecError, WsSpec};
