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
use espsim_faults::limits::MAX_RULES;
use serde::Deserialize;

use crate::device::DeviceConfig;
use crate::expect::{Backoff, Expectation, Heartbeat};
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

/// Longest allowed `duration`: scenarios are for CI, where a run must end. Every duration of an
/// expectation is bounded by it too.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Most expectations a scenario lists.
pub const MAX_EXPECTATIONS: usize = 256;

/// Most entries of `catches:` (there are only a handful of client profiles).
pub const MAX_CATCHES: usize = 64;

/// Longest `name`, and longest text in an expectation (a message type, a name pattern, an OS),
/// in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Longest `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

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
        self.check_sizes().map_err(err)?;
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

    /// The bounds on the file's lists and texts, and on every duration of an expectation.
    fn check_sizes(&self) -> Result<(), String> {
        let most = |what: &str, n: usize, max: usize| {
            if n > max {
                Err(format!("{what}: {n} entries; at most {max}"))
            } else {
                Ok(())
            }
        };
        most("faults", self.faults.len(), MAX_RULES)?;
        most("expect", self.expect.len(), MAX_EXPECTATIONS)?;
        most("catches", self.catches.len(), MAX_CATCHES)?;
        text("name", &self.name, MAX_NAME_BYTES)?;
        text("description", &self.description, MAX_DESCRIPTION_BYTES)?;
        let device = &self.device;
        let ws = device.ws.as_ref();
        for (field, value) in [
            ("device.auth_token", device.auth_token.as_deref()),
            ("device.ws.path", ws.and_then(|w| w.path.as_deref())),
            (
                "device.ws.subprotocol",
                ws.and_then(|w| w.subprotocol.as_deref()),
            ),
        ] {
            text(field, value.unwrap_or_default(), MAX_NAME_BYTES)?;
        }
        for (i, e) in self.expect.iter().enumerate() {
            expectation_bounds(e).map_err(|m| format!("expect[{i}] ({}): {m}", e.key()))?;
        }
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

/// An error when `t` is longer than `max` bytes.
fn text(field: &str, t: &str, max: usize) -> Result<(), String> {
    if t.len() > max {
        return Err(format!(
            "`{field}` is {} bytes long; at most {max}",
            t.len()
        ));
    }
    Ok(())
}

/// Every duration of `e` is at most [`MAX_DURATION`] (no deadline can be later than the longest
/// run), and its texts at most [`MAX_NAME_BYTES`].
fn expectation_bounds(e: &Expectation) -> Result<(), String> {
    let mut durations: Vec<(&str, Option<Duration>)> = Vec::new();
    let mut texts: Vec<(&str, &str)> = Vec::new();
    match e {
        Expectation::Connected(c) => durations.push(("within", Some(c.within))),
        Expectation::Reconnects(r) => {
            durations.extend([("at", r.at), ("within", Some(r.within))]);
            if let Some(after) = &r.after {
                texts.push(("after", after));
            }
        }
        Expectation::Backoff(Backoff {
            first_retry_within,
            max,
            ..
        }) => durations.extend([("first_retry_within", *first_retry_within), ("max", *max)]),
        Expectation::NoStorm(n) => durations.push(("window", Some(n.window))),
        Expectation::Heartbeat(Heartbeat {
            every, tolerance, ..
        }) => {
            durations.extend([("every", Some(*every)), ("tolerance", *tolerance)]);
        }
        Expectation::DetectsDeadLink(w) => durations.push(("within", Some(w.within))),
        Expectation::Sends(s) => {
            durations.push(("within", s.within));
            texts.push(("type", &s.message_type));
        }
        Expectation::SendsInOrder(types) => {
            if types.len() > MAX_EXPECTATIONS {
                return Err(format!(
                    "{} message types; at most {MAX_EXPECTATIONS}",
                    types.len()
                ));
            }
            texts.extend(types.iter().map(|t| ("type", t.as_str())));
        }
        Expectation::DnsQueried(d) => texts.push(("name", d.name.as_str())),
        Expectation::Probed(p) => texts.push(("os", &p.os)),
        Expectation::ClosesCleanly(_) | Expectation::MaxConcurrentConnections(_) => {}
    }
    for (field, d) in durations {
        if let Some(d) = d
            && d > MAX_DURATION
        {
            return Err(format!(
                "`{field}` is {}; at most {}",
                humantime::format_duration(d),
                humantime::format_duration(MAX_DURATION)
            ));
        }
    }
    for (field, t) in texts {
        text(field, t, MAX_NAME_BYTES)?;
    }
    Ok(())
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
    fn extreme_values_are_rejected_with_their_bound() {
        let cases = [
            (
                GOOD.replace("at: 5s, for: 2s", "at: 18446744073709551615s"),
                "faults[1]: refuse: `when.at` is 584542046090years 7months 15days 17h 5m 3s; at most 24h",
            ),
            (
                GOOD.replace("for: 2s", "for: 100000h"),
                "faults[1]: refuse: `when.for` is 11years 4months 27days 3h 45m 36s; at most 24h",
            ),
            (
                GOOD.replace(
                    "fault: refuse }",
                    "fault: { ws: oversize, bytes: 4611686018427387904 } }",
                ),
                "`bytes` is 4611686018427387904; it must lie in 0-4194304",
            ),
            (
                GOOD.replace("duration: 20s", "duration: 18446744073709551615s"),
                "duration must be more than 0 and at most 1h",
            ),
            (
                format!("{GOOD}expect:\n  - connected: {{ within: 18446744073709551615s }}\n"),
                "expect[0] (connected): `within` is 584542046090years 7months 15days 17h 5m 3s; at most 1h",
            ),
            (
                format!("{GOOD}expect:\n  - heartbeat: {{ every: 1s, tolerance: 2h }}\n"),
                "expect[0] (heartbeat): `tolerance` is 2h; at most 1h",
            ),
            (
                GOOD.replace(
                    "name: handshake-reset-then-recover",
                    &format!("name: {}", "n".repeat(300)),
                ),
                "`name` is 300 bytes long; at most 256",
            ),
        ];
        for (text, expected) in cases {
            let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("rejected");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn a_scenario_lists_at_most_max_rules_faults() {
        let many =
            "  - { when: { name: a.example }, fault: { dns: nxdomain } }\n".repeat(MAX_RULES + 1);
        let text = GOOD.replace("faults:\n", &format!("faults:\n{many}"));
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("too many");
        assert!(
            err.to_string()
                .contains("faults: 1003 entries; at most 1000"),
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
