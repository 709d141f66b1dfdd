//! Scenario files: the device, the faults and their timeline, what the client must do, how long.
//!
//! ```yaml
//! name: handshake-reset-then-recover
//! description: The first two handshakes are cut after the request; a good app backs off and connects.
//! seed: 7
//! device: { profile: esp-idf-v5.4, internet: captive }
//! faults:
//!   - { when: { connections: 1-2 }, fault: { handshake: reset, at: after_request } }
//! expect:
//!   - connected: { within: 15s }
//! catches: { naive: backoff }
//! duration: 20s
//! ```
//!
//! [`Scenario::load`] parses strictly (unknown fields are errors with file, line and column) and
//! then checks the semantics ([`Scenario::validate`]): every fault rule is valid for its kind,
//! every time window lies inside `duration`, names are unique.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use espsim_faults::FaultRule;
use serde::Deserialize;

use crate::device::DeviceConfig;
use crate::expect::Expectation;
use crate::yaml::{self, YamlError};

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short identifier, used in reports (JUnit testsuite name).
    pub name: String,
    /// The real-world situation it reproduces, in a sentence or two.
    pub description: String,
    /// The run's seed; absent = random (printed, so a run can be replayed).
    #[serde(default)]
    pub seed: Option<u64>,
    /// The emulated device.
    #[serde(default)]
    pub device: DeviceConfig,
    /// Fault rules; each fires when its `when:` holds.
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// What the client must have done by the end.
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Client profiles this scenario must catch: profile name → the expectation that fails.
    #[serde(default)]
    pub catches: BTreeMap<String, String>,
    /// How long the run lasts (the client is stopped then), e.g. `20s`.
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
}

/// A scenario that is well-formed YAML but does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct SemanticError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with a hint.
    pub message: String,
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Not readable, not YAML, or not the schema.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// Parsed, but inconsistent.
    #[error(transparent)]
    Semantic(#[from] SemanticError),
}

/// Longest allowed `duration`: scenarios are for CI, where a run must end.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

impl Scenario {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = yaml::load(path)?;
        scenario.validate(path)?;
        Ok(scenario)
    }

    /// Parses and validates `text` (named `path` in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = yaml::parse(text, path)?;
        scenario.validate(path)?;
        Ok(scenario)
    }

    /// Checks what the schema cannot: fault rules valid for their kind, windows inside
    /// `duration`, unique rule names, a usable `duration`.
    pub fn validate(&self, path: &Path) -> Result<(), SemanticError> {
        let err = |message: String| SemanticError {
            path: path.to_owned(),
            message,
        };
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(err(format!(
                "duration must be more than 0 and at most {} (got {})",
                humantime::format_duration(MAX_DURATION),
                humantime::format_duration(self.duration)
            )));
        }
        if let Some(profile) = &self.device.profile
            && espsim_emulator::profile::Profile::by_name(profile).is_none()
        {
            return Err(err(format!(
                "device.profile: unknown profile `{profile}` (known: {})",
                espsim_emulator::profile::Profile::names().join(", ")
            )));
        }
        let mut names = BTreeMap::new();
        for (i, rule) in self.faults.iter().enumerate() {
            let which = rule_label(i, rule);
            rule.validate().map_err(|e| err(format!("{which}: {e}")))?;
            if let Some(at) = rule.when.at
                && at >= self.duration
            {
                return Err(err(format!(
                    "{which}: starts at {} but the scenario lasts {} (hint: lengthen `duration` or start earlier)",
                    humantime::format_duration(at),
                    humantime::format_duration(self.duration)
                )));
            }
            if let Some(name) = &rule.name
                && let Some(first) = names.insert(name.clone(), i)
            {
                return Err(err(format!(
                    "{which}: the name `{name}` is already used by faults[{first}]"
                )));
            }
        }
        crate::expect::validate(&self.expect, &self.faults, &self.catches, self.duration)
            .map_err(err)?;
        Ok(())
    }

    /// The rule named `name`, with its index.
    pub fn fault_named(&self, name: &str) -> Option<(usize, &FaultRule)> {
        self.faults
            .iter()
            .enumerate()
            .find(|(_, r)| r.name.as_deref() == Some(name))
    }
}

/// `faults[2] (name)` for messages.
fn rule_label(index: usize, rule: &FaultRule) -> String {
    match &rule.name {
        Some(name) => format!("faults[{index}] ({name})"),
        None => format!("faults[{index}]"),
    }
}

/// `duration: 20s` as a humantime string.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}`: {e} (write e.g. \"500ms\", \"20s\", \"2m\")"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name: handshake-reset-then-recover
description: The first two handshakes are cut after the request.
seed: 7
device: { profile: esp-idf-v5.4, internet: captive }
faults:
  - { name: cut, when: { connections: 1-2 }, fault: { handshake: reset, at: after_request } }
  - { when: { at: 5s, for: 2s }, fault: refuse }
duration: 20s
"#;

    #[test]
    fn a_good_scenario_loads() {
        let s = Scenario::parse(GOOD, Path::new("s.yaml")).expect("valid");
        assert_eq!(s.seed, Some(7));
        assert_eq!(s.faults.len(), 2);
        assert_eq!(s.duration, Duration::from_secs(20));
        assert_eq!(s.fault_named("cut").map(|(i, _)| i), Some(0));
    }

    #[test]
    fn unknown_field_reports_line_and_column() {
        let text = GOOD.replace("seed: 7", "sede: 7");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("unknown field");
        let ScenarioError::Yaml(y) = &err else {
            panic!("expected a YAML error, got {err}")
        };
        assert_eq!(y.line_column(), Some((3, 1)), "{err}");
    }

    #[test]
    fn bad_duration_reports_where() {
        let text = GOOD.replace("duration: 20s", "duration: 20 parsecs");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("bad duration");
        assert!(err.to_string().contains("s.yaml:8:"), "{err}");
    }

    #[test]
    fn a_window_after_the_end_is_a_semantic_error() {
        let text = GOOD.replace("at: 5s", "at: 25s");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("window outside");
        assert!(
            err.to_string()
                .contains("faults[1]: starts at 25s but the scenario lasts 20s"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_and_unknown_profiles_are_rejected() {
        let text = GOOD.replace("- { when: { at", "- { name: cut, when: { at");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("dup");
        assert!(
            err.to_string().contains("already used by faults[0]"),
            "{err}"
        );
        let text = GOOD.replace("esp-idf-v5.4", "esp-idf-v9");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("profile");
        assert!(
            err.to_string().contains("unknown profile `esp-idf-v9`"),
            "{err}"
        );
    }
}
