//! espsim-harness: scenario files and, around them, everything a CI run needs.
//!
//! - [`scenario`]: the scenario file (device, faults, expectations, duration), strict YAML via
//!   [`yaml`] (file/line/column errors) and semantic checks; [`device`] is its `device:` section,
//!   which `espsim run --config` reads too.
//! - [`expect`]: what the client must have done, evaluated over the emulator's event log.
//! - [`runner`]: one scenario run (fresh emulator, the app command or the reference client,
//!   expectations judged afterwards) and the catches check; [`report`]: summary, JUnit, JSON.
//!
//! The reference client ([`espsim_client`]) and the probe (`espsim-probe`) are crates of their
//! own; the runner runs the client when a scenario names no app command.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod device;
pub mod expect;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod yaml;

pub use device::{DeviceSpec, DeviceSpecError, WsSpec};
pub use scenario::{Scenario, ScenarioError};
pub use yaml::YamlError;
