//! Strict YAML for scenario, expectation and device files: the emulator's
//! [`espsim_emulator::yaml`], which also reads the control API's YAML rule bodies, so that every
//! YAML a user writes is read by the same rules and reports errors the same way.

pub use espsim_emulator::yaml::{YamlError, load, parse};
