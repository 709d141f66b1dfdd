//! espsim-harness: scenario files and, around them, everything a CI run needs.
//!
//! Today it owns the YAML layer ([`yaml`]: strict parsing with file/line/column errors) and the
//! `device:` section of a scenario ([`device`]), which `espsim run --config` reads too, and the
//! reference WebSocket client ([`client`]: the good app behaviour and one-rule-breaking profiles,
//! which `espsim client` runs).

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod client;
pub mod device;
pub mod expect;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod yaml;

pub use device::{DeviceConfig, DeviceError, WsConfig};
pub use scenario::{Scenario, ScenarioError};
pub use yaml::YamlError;
