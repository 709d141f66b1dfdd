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
//! start: { on: first_activity, timeout: 5m }
//! duration: 20s
//! ```
//!
//! Required: `name` and `duration`; everything else has a default. [`Scenario::load`] parses
//! strictly (unknown fields are errors with file, line and column) and then checks the
//! semantics ([`Scenario::validate`]), listing every problem it finds: every fault rule is valid
//! for its kind, every time window lies inside `duration`, names are unique.
//!
//! `start:` says when the run clock starts ([`StartOn`]): the zero of every fault window and
//! expectation deadline, and the start of `duration`. `command:` says how an external app
//! command is ended ([`CommandSettings`]). `phone:` runs the app on a simulated phone
//! ([`espsim_phone::PhoneSpec`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use espsim_faults::duration::{human, human_opt};
use espsim_faults::limits::MAX_RULES;
use espsim_faults::{FaultRule, MessageMatch};
/// The duration grammar of scenario files (and its formatter), for the CLI's duration flags.
pub use espsim_faults::{format_duration, parse_strict_duration};
use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::expect::{Backoff, Expectation, Heartbeat};
use crate::yaml::{self, YamlError};

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short identifier, used in reports (JUnit testsuite name).
    pub name: String,
    /// The real-world situation it reproduces, in a sentence or two (optional).
    #[serde(default)]
    pub description: String,
    /// The run's seed; absent = random (printed, so a run can be replayed).
    #[serde(default)]
    pub seed: Option<u64>,
    /// The emulated device.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Fault rules; each fires when its `when:` holds.
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// What the client must have done by the end.
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Client profiles this scenario must catch: profile name → the expectation that fails.
    #[serde(default)]
    pub catches: BTreeMap<String, String>,
    /// When the run clock starts, and how long to wait for it.
    #[serde(default)]
    pub start: StartSettings,
    /// How an external app command ends.
    #[serde(default)]
    pub command: CommandSettings,
    /// Run the app on a simulated phone (`{ os: android, mobile_data: on, bind_wifi: false }`):
    /// the device serves 192.168.4.1 in the phone's softAP namespace and the app runs in the
    /// phone's, routed as its OS decides (needs root; see [`crate::runner`]).
    #[serde(default)]
    pub phone: Option<espsim_phone::PhoneSpec>,
    /// How long the run lasts from the clock start (faults stop then; the built-in client
    /// leaves), e.g. `20s`.
    #[serde(with = "human")]
    pub duration: Duration,
    /// The file it was loaded from (set by [`Scenario::load`] and [`Scenario::parse`]).
    #[serde(skip)]
    pub path: PathBuf,
}

/// `start:`: when the run clock starts, and how long the app may take to get there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSettings {
    /// What starts the clock; default [`StartOn::FirstActivity`].
    #[serde(default)]
    pub on: StartOn,
    /// How long to wait for it: the run fails when the clock has not started by then (default
    /// [`DEFAULT_STARTUP_TIMEOUT`] for a command, [`DEFAULT_BUILTIN_STARTUP_TIMEOUT`] for the
    /// built-in client; at most [`MAX_STARTUP_TIMEOUT`]).
    #[serde(default, with = "human_opt")]
    pub timeout: Option<Duration>,
}

/// What starts the run clock. Whatever this says, an explicit signal from the app (the ready
/// file, the `ESPSIM_READY` stdout line, `POST /clock/start`) starts it too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartOn {
    /// With the emulator, before the app even runs.
    Start,
    /// The first TCP connection attempt on the device port (accepted or refused).
    FirstConnection,
    /// The first DNS query.
    FirstDns,
    /// The first OS connectivity check.
    FirstProbe,
    /// The first of any of those three.
    #[default]
    FirstActivity,
    /// Only an explicit signal from the app.
    Signal,
}

impl StartOn {
    /// The name as written in a scenario file.
    pub fn as_str(self) -> &'static str {
        match self {
            StartOn::Start => "start",
            StartOn::FirstConnection => "first_connection",
            StartOn::FirstDns => "first_dns",
            StartOn::FirstProbe => "first_probe",
            StartOn::FirstActivity => "first_activity",
            StartOn::Signal => "signal",
        }
    }

    /// What the app had to do, for "the app never became ready: no … within 5m".
    pub fn awaited(self) -> &'static str {
        match self {
            StartOn::Start => "nothing",
            StartOn::FirstConnection => "no connection to the device",
            StartOn::FirstDns => "no DNS query",
            StartOn::FirstProbe => "no connectivity check",
            StartOn::FirstActivity => "no connection, DNS query or connectivity check",
            StartOn::Signal => {
                "no ready signal (ESPSIM_READY_FILE, an `ESPSIM_READY` line, POST /clock/start)"
            }
        }
    }
}

impl fmt::Display for StartOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `command:`: how an external app command (`espsim test … -- COMMAND`) ends. The CLI's
/// `--command-timeout` and `--stop-at-end` override these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSettings {
    /// Hard cap on the command's run time, from its start (default
    /// [`DEFAULT_COMMAND_TIMEOUT`], at most [`MAX_COMMAND_TIMEOUT`]): a command still running
    /// then is killed and fails the run.
    #[serde(default, with = "human_opt")]
    pub timeout: Option<Duration>,
    /// For apps that run until told: SIGTERM at the end of `duration` (after the clock start);
    /// the app must then exit 0 within [`STOP_GRACE`]. Default: wait for the command to exit.
    #[serde(default)]
    pub stop_at_end: bool,
}

/// How long the run waits for the clock to start with an app command, unless `start.timeout`
/// says otherwise.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

/// The same for the built-in client, which connects at once.
pub const DEFAULT_BUILTIN_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest `start.timeout`.
pub const MAX_STARTUP_TIMEOUT: Duration = Duration::from_secs(3600);

/// The command's hard cap unless `command.timeout` or `--command-timeout` says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Longest command cap.
pub const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How long a command stopped at the end (`stop_at_end`) has to exit 0 after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A scenario that is well-formed YAML but does not make sense: every problem found, one line
/// each (shown as `FILE: problem`, one per line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(path, messages))]
pub struct SemanticError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, each with a hint; never empty.
    pub messages: Vec<String>,
}

fn lines(path: &Path, messages: &[String]) -> String {
    let lines: Vec<String> = messages
        .iter()
        .map(|m| format!("{}: {m}", path.display()))
        .collect();
    lines.join("\n")
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
        let mut scenario: Scenario = yaml::load(path)?;
        scenario.path = path.to_owned();
        scenario.device.relative_to(path);
        scenario.validate(path)?;
        Ok(scenario)
    }

    /// Parses and validates `text` (named `path` in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario = yaml::parse(text, path)?;
        scenario.path = path.to_owned();
        scenario.device.relative_to(path);
        scenario.validate(path)?;
        Ok(scenario)
    }

    /// Checks what the schema cannot: fault rules valid for their kind, windows inside
    /// `duration`, unique rule names, usable durations. Lists every problem, not the first.
    pub fn validate(&self, path: &Path) -> Result<(), SemanticError> {
        let mut errors = Vec::new();
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            errors.push(format!(
                "duration must be more than 0 and at most {} (got {})",
                format_duration(MAX_DURATION),
                format_duration(self.duration)
            ));
        }
        errors.extend(self.timeout_errors());
        errors.extend(self.size_errors());
        if let Some(profile) = &self.device.profile
            && espsim_emulator::profile::Profile::by_name(profile).is_none()
        {
            errors.push(format!(
                "device.profile: unknown profile `{profile}` (known: {})",
                espsim_emulator::profile::Profile::names().join(", ")
            ));
        }
        if let Err(e) = self.device.device_file() {
            let field = if self.device.inline.is_some() {
                "device.inline"
            } else {
                "device.file"
            };
            errors.push(format!("{field}: {e}"));
        }
        errors.extend(self.rule_errors());
        if self.phone.is_some()
            && let Some(ip) = self.device.device_ip
            && ip != espsim_phone::DEVICE_IP
        {
            errors.push(format!(
                "device.device_ip: a phone joins the softAP at {} (got {ip}); leave it out",
                espsim_phone::DEVICE_IP
            ));
        }
        if let Err(e) =
            crate::expect::validate(&self.expect, &self.faults, &self.catches, self.duration)
        {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SemanticError {
                path: path.to_owned(),
                messages: errors,
            })
        }
    }

    /// `start.timeout` and `command.timeout` within their bounds.
    fn timeout_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (field, value, max) in [
            ("start.timeout", self.start.timeout, MAX_STARTUP_TIMEOUT),
            ("command.timeout", self.command.timeout, MAX_COMMAND_TIMEOUT),
        ] {
            if let Some(d) = value
                && (d.is_zero() || d > max)
            {
                errors.push(format!(
                    "`{field}` must be more than 0 and at most {} (got {})",
                    format_duration(max),
                    format_duration(d)
                ));
            }
        }
        errors
    }

    /// Each fault rule valid for its kind, its window inside `duration`, its name unique.
    fn rule_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut names = BTreeMap::new();
        let lasts = format_duration(self.duration);
        for (i, rule) in self.faults.iter().enumerate() {
            let which = rule_label(i, rule);
            if let Err(e) = rule.validate() {
                errors.push(format!("{which}: {e}"));
            }
            let at = rule.when.at.unwrap_or_default();
            if rule.when.at.is_some() && at >= self.duration {
                errors.push(format!(
                    "{which}: starts at {} but the scenario lasts {lasts} (hint: lengthen `duration` or start earlier)",
                    format_duration(at),
                ));
            } else if let Some(length) = rule.when.duration
                && rule.when.after.is_none()
                && at.saturating_add(length) > self.duration
            {
                errors.push(format!(
                    "{which}: the window ends at {} (at {} + for {}) but the scenario lasts {lasts} (hint: lengthen `duration` or shorten `for`)",
                    format_duration(at.saturating_add(length)),
                    format_duration(at),
                    format_duration(length),
                ));
            }
            if let Some(name) = &rule.name
                && let Some(first) = names.insert(name.clone(), i)
            {
                errors.push(format!(
                    "{which}: the name `{name}` is already used by faults[{first}]"
                ));
            }
        }
        errors
    }

    /// The bounds on the file's lists and texts, and on every duration of an expectation.
    fn size_errors(&self) -> Vec<String> {
        let most = |what: &str, n: usize, max: usize| {
            (n > max).then(|| format!("{what}: {n} entries; at most {max}"))
        };
        let mut errors: Vec<String> = [
            most("faults", self.faults.len(), MAX_RULES),
            most("expect", self.expect.len(), MAX_EXPECTATIONS),
            most("catches", self.catches.len(), MAX_CATCHES),
            most(
                "distinct payload matchers in expect",
                crate::expect::watched_messages(&self.expect).len(),
                espsim_emulator::MAX_WATCHED_MESSAGES,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let device = &self.device;
        let ws = device.ws.as_ref();
        for (field, value, max) in [
            ("name", Some(self.name.as_str()), MAX_NAME_BYTES),
            (
                "description",
                Some(self.description.as_str()),
                MAX_DESCRIPTION_BYTES,
            ),
            (
                "device.auth_token",
                device.auth_token.as_deref(),
                MAX_NAME_BYTES,
            ),
            (
                "device.ws.path",
                ws.and_then(|w| w.path.as_deref()),
                MAX_NAME_BYTES,
            ),
            (
                "device.ws.subprotocol",
                ws.and_then(|w| w.subprotocol.as_deref()),
                MAX_NAME_BYTES,
            ),
        ] {
            errors.extend(text(field, value.unwrap_or_default(), max).err());
        }
        for (i, e) in self.expect.iter().enumerate() {
            if let Err(m) = expectation_bounds(e) {
                errors.push(format!("expect[{i}] ({}): {m}", e.key()));
            }
        }
        errors
    }

    /// The startup timeout in force: `start.timeout`, else the default for `builtin` or not.
    pub fn startup_timeout(&self, builtin: bool) -> Duration {
        self.start.timeout.unwrap_or(if builtin {
            DEFAULT_BUILTIN_STARTUP_TIMEOUT
        } else {
            DEFAULT_STARTUP_TIMEOUT
        })
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
            if let Some(label) = s.message_type.as_label() {
                texts.push(("type", label.as_str()));
            }
        }
        Expectation::SendsInOrder(types) => {
            if types.len() > MAX_EXPECTATIONS {
                return Err(format!(
                    "{} message types; at most {MAX_EXPECTATIONS}",
                    types.len()
                ));
            }
            texts.extend(
                types
                    .iter()
                    .filter_map(MessageMatch::as_label)
                    .map(|t| ("type", t.as_str())),
            );
        }
        Expectation::DnsQueried(d) => texts.push(("name", d.name.as_str())),
        Expectation::Probed(p) => texts.push(("os", &p.os)),
        Expectation::TellsUser(t) => {
            durations.push(("within", Some(t.within)));
            texts.push(("pattern", t.pattern.as_str()));
        }
        Expectation::ClosesCleanly(_) | Expectation::MaxConcurrentConnections(_) => {}
    }
    for (field, d) in durations {
        if let Some(d) = d
            && d > MAX_DURATION
        {
            return Err(format!(
                "`{field}` is {}; at most {}",
                format_duration(d),
                format_duration(MAX_DURATION)
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
                "faults[1]: refuse: `when.at` is 5124095576030431h 15s; at most 24h",
            ),
            (
                GOOD.replace("for: 2s", "for: 100000h"),
                "faults[1]: refuse: `when.for` is 100000h; at most 24h",
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
                "expect[0] (connected): `within` is 5124095576030431h 15s; at most 1h",
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
    fn a_window_that_ends_after_the_scenario_is_a_semantic_error() {
        let text = GOOD.replace("at: 5s, for: 2s", "at: 15s, for: 6s");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("window too long");
        assert_eq!(
            err.to_string(),
            "s.yaml: faults[1]: the window ends at 21s (at 15s + for 6s) but the scenario lasts 20s (hint: lengthen `duration` or shorten `for`)"
        );
    }

    #[test]
    fn every_semantic_error_of_a_file_is_listed() {
        let text = GOOD
            .replace("at: 5s", "at: 25s")
            .replace("esp-idf-v5.4", "esp-idf-v9")
            .replace("- { when: { at", "- { name: cut, when: { at")
            .replace("duration: 20s", "start: { timeout: 2h }\nduration: 20s");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("invalid");
        let ScenarioError::Semantic(e) = &err else {
            panic!("expected semantic errors, got {err}")
        };
        assert_eq!(e.messages.len(), 4, "{err}");
        let shown = err.to_string();
        for part in [
            "s.yaml: `start.timeout` must be more than 0 and at most 1h (got 2h)",
            "s.yaml: device.profile: unknown profile `esp-idf-v9`",
            "s.yaml: faults[1] (cut): starts at 25s but the scenario lasts 20s",
            "s.yaml: faults[1] (cut): the name `cut` is already used by faults[0]",
        ] {
            assert!(shown.contains(part), "{part} in {shown}");
        }
    }

    #[test]
    fn start_and_command_settings_parse_and_default() {
        let s = Scenario::parse(GOOD, Path::new("s.yaml")).expect("valid");
        assert_eq!(s.start.on, StartOn::FirstActivity);
        assert_eq!(s.startup_timeout(false), DEFAULT_STARTUP_TIMEOUT);
        assert_eq!(s.command, CommandSettings::default());
        assert_eq!(s.path, Path::new("s.yaml"));
        let text = GOOD.replace(
            "duration: 20s",
            "start: { on: first_connection, timeout: 10m }\ncommand: { timeout: 1h, stop_at_end: true }\nduration: 20s",
        );
        let s = Scenario::parse(&text, Path::new("s.yaml")).expect("valid");
        assert_eq!(s.start.on, StartOn::FirstConnection);
        assert_eq!(s.startup_timeout(true), Duration::from_secs(600));
        assert_eq!(s.command.timeout, Some(Duration::from_secs(3600)));
        assert!(s.command.stop_at_end);
        let text = GOOD.replace("duration: 20s", "start: { on: later }\nduration: 20s");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("unknown on");
        assert!(err.to_string().contains("unknown variant `later`"), "{err}");
    }

    #[test]
    fn the_phone_section_is_strict_and_pins_the_device_ip() {
        let with = |phone: &str| GOOD.replace("duration: 20s", &format!("{phone}\nduration: 20s"));
        let s = Scenario::parse(
            &with("phone: { os: android, mobile_data: on, bind_wifi: true }"),
            Path::new("s.yaml"),
        )
        .expect("valid");
        let spec = s.phone.expect("a phone");
        assert_eq!(spec.os, espsim_phone::Os::Android);
        assert!(spec.has_cellular() && spec.bind_wifi);
        assert_eq!(
            Scenario::parse(GOOD, Path::new("s.yaml"))
                .expect("valid")
                .phone,
            None
        );
        let err = Scenario::parse(
            &with("phone: { os: android, mobile_data: on, wifi: true }"),
            Path::new("s.yaml"),
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `wifi`"), "{err}");
        let err = Scenario::parse(
            &with("phone: { os: android, mobile_data: maybe }"),
            Path::new("s.yaml"),
        )
        .expect_err("unknown value");
        assert!(err.to_string().contains("maybe"), "{err}");
        let text = with("phone: { os: ios, mobile_data: off }").replace(
            "internet: captive",
            "internet: captive, device_ip: 10.0.0.1",
        );
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("device_ip");
        assert!(
            err.to_string().contains(
                "device.device_ip: a phone joins the softAP at 192.168.4.1 (got 10.0.0.1)"
            ),
            "{err}"
        );
    }

    #[test]
    fn description_is_optional_and_durations_are_strict() {
        let text = GOOD.replace(
            "description: The first two handshakes are cut after the request.\n",
            "",
        );
        let s = Scenario::parse(&text, Path::new("s.yaml")).expect("valid without description");
        assert_eq!(s.description, "");
        for bad in ["20 seconds", "5 s", "1 hour"] {
            let text = GOOD.replace("duration: 20s", &format!("duration: {bad}"));
            let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err(bad);
            assert!(
                err.to_string()
                    .contains(&format!("invalid duration `{bad}`"))
                    && err.to_string().contains("unit ms, s, m or h"),
                "{err}"
            );
        }
        let text = GOOD.replace("for: 2s", "for: 2 seconds");
        let err = Scenario::parse(&text, Path::new("s.yaml")).expect_err("fault duration");
        assert!(
            err.to_string().contains("invalid duration `2 seconds`"),
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
