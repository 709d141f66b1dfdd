//! espsim-harness: scenario files and, around them, everything a CI run needs.
//!
//! Today it owns the YAML layer ([`yaml`]: strict parsing with file/line/column errors) and the
//! `device:` section of a scenario ([`device`]), which `espsim run --config` reads too.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod device;
pub mod probe;
pub mod yaml;

pub use device::{DeviceConfig, WsConfig};
pub use yaml::YamlError;
