//! Expectations: what the client must have done, evaluated over the event log (issue work in
//! progress: the variants arrive with `espsim test`).

use serde::Deserialize;

/// One entry of a scenario's `expect:` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {}
