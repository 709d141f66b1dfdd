//! Expectations: what the client must have done, judged over the emulator's event log.
//!
//! A scenario's `expect:` list holds one-key maps; the key is the expectation's stable name
//! (used by `catches:` and in reports; a repeated key gets `#2`, `#3`, …):
//!
//! ```yaml
//! expect:
//!   - connected: { within: 5s }
//!   - backoff: { min_factor: 1.5, first_retry_within: 2s, max: 30s, jitter: true }
//!   - heartbeat: { every: 2s, tolerance: 1s }
//!   - closes_cleanly: { code: 1000 }
//! ```
//!
//! Times in a scenario (`within`, `at`, fault windows) count from the run clock: the
//! `clock_started` event (at emulator start, or later when the run waits for the app).
//!
//! - this module: the written form ([`Expectation`]) and the reference checks ([`problems`]);
//! - `facts`: what the log says about the run clock, attempts, sessions and fired faults;
//! - `eval`: the verdict ([`Outcome`]) with the evidence it used, and the small judges;
//!   `reconnects`, `backoff`, `heartbeat`, `dead_link`: one file per larger judge.

mod backoff;
mod dead_link;
mod eval;
mod facts;
mod heartbeat;
mod reconnects;
mod tells_user;

use std::collections::BTreeMap;
use std::time::Duration;

use espsim_faults::duration::{human, human_opt};
use espsim_faults::{
    ConnectFault, DeviceFault, Fault, FaultRule, HandshakeFault, MessageDirection, MessageMatch,
    Pattern, StreamFault, WsFault,
};
use serde::Deserialize;

use espsim_client::ClientProfile;

pub(crate) use eval::secs;
pub use eval::{Evidence, Outcome, evaluate};
pub use facts::conn_of;
pub use tells_user::MessagePattern;

/// One entry of a scenario's `expect:` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// The first WebSocket session opens within `within` of the run clock's start.
    Connected(Connected),
    /// After a named fault's window ends (or at a time), a new session opens within `within`.
    Reconnects(Reconnects),
    /// Retries after failed attempts back off (not absent, not constant), with a quick first
    /// retry, a cap and jitter if asked; see `backoff.rs` for the exact rule.
    Backoff(Backoff),
    /// Never more than `max` connection attempts in any `window`.
    NoStorm(NoStorm),
    /// Heartbeats (WebSocket ping frames or app messages matching `message`) every `every` ±
    /// `tolerance`.
    Heartbeat(Heartbeat),
    /// After a fault silences the link (`ap_down`, `half_open`, `timeout`, `drop` out,
    /// `suppress_pong`), the client closes or tries again within `within`.
    DetectsDeadLink(Within),
    /// When the client leaves, it sends a close frame with `code` and completes the handshake.
    ClosesCleanly(ClosesCleanly),
    /// The client sends a message matching `type`, within `within` of a session opening.
    Sends(Sends),
    /// The client sends messages matching these, in this order, within one session.
    SendsInOrder(Vec<MessageMatch>),
    /// Never more than `max` TCP connections open at once.
    MaxConcurrentConnections(MaxConcurrent),
    /// A DNS query for `name` (a pattern: `*` any run, `?` one character) reached the device.
    DnsQueried(DnsQueried),
    /// The OS connectivity check of `os` (`android`, `apple`, `windows`, …) reached the device.
    Probed(Probed),
    /// The app prints a line matching `pattern` (what it shows the user) within `within` of
    /// the run clock's start; judged from its stdout and stderr (an external command only).
    TellsUser(TellsUser),
}

/// `connected: { within: 5s }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connected {
    /// Deadline from the start of the run clock.
    #[serde(with = "human")]
    pub within: Duration,
}

/// `reconnects: { after: <fault name>, within: 5s }` or `reconnects: { at: 6s, within: 3s }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnects {
    /// The fault (its `name:`) whose window end is the reference point.
    #[serde(default)]
    pub after: Option<String>,
    /// A fixed reference point on the run clock.
    #[serde(default, with = "human_opt")]
    pub at: Option<Duration>,
    /// How long after the reference point a session must be open.
    #[serde(with = "human")]
    pub within: Duration,
}

/// `backoff: { min_factor: 1.5, first_retry_within: 2s, max: 30s, jitter: true }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// How much the retry gaps must spread: the longest gap of a run of failures is at least
    /// `max(2, min_factor)` times a shorter one (2 is the least that tells a backoff from a
    /// constant delay with ±30 % jitter). At least 1.
    #[serde(default = "default_factor")]
    pub min_factor: f64,
    /// The first retry after a failure comes within this long.
    #[serde(default, with = "human_opt")]
    pub first_retry_within: Option<Duration>,
    /// No gap is longer than this (the cap).
    #[serde(default, with = "human_opt")]
    pub max: Option<Duration>,
    /// Require jitter: no deterministic exponential (`base × factor^k`, capped) fits the gaps
    /// within the host's scheduling noise.
    #[serde(default)]
    pub jitter: bool,
}

fn default_factor() -> f64 {
    1.5
}

/// `no_storm: { max: 5, window: 1s }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoStorm {
    /// Most connection attempts allowed in any window.
    pub max: usize,
    /// The sliding window's length.
    #[serde(with = "human")]
    pub window: Duration,
}

/// `heartbeat: { every: 2s, tolerance: 1s, message: ping }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The expected interval.
    #[serde(with = "human")]
    pub every: Duration,
    /// Allowed deviation either way (default 0).
    #[serde(default, with = "human_opt")]
    pub tolerance: Option<Duration>,
    /// App messages matching this count as heartbeats: a label pattern (default `ping`) or a
    /// payload test ([`MessageMatch`]); WebSocket ping frames always do.
    #[serde(default = "default_heartbeat_message")]
    pub message: MessageMatch,
}

fn default_heartbeat_message() -> MessageMatch {
    MessageMatch::label("ping")
}

/// `detects_dead_link: { within: 5s }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Within {
    /// The deadline from the reference point.
    #[serde(with = "human")]
    pub within: Duration,
}

/// `closes_cleanly: { code: 1000 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosesCleanly {
    /// The close code the client must send (default 1000).
    #[serde(default = "default_close_code")]
    pub code: u16,
}

fn default_close_code() -> u16 {
    1000
}

/// `sends: { type: hello, within: 1s }` or `sends: { type: { json: { pointer: /cmd, equals:
/// status } } }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sends {
    /// Which message: the device's label for it (a pattern: the built-in protocol's `type`, a
    /// device file's rule name) or a payload test.
    #[serde(rename = "type")]
    pub message_type: MessageMatch,
    /// Deadline from the opening of the session it is sent in; absent = any time.
    #[serde(default, with = "human_opt")]
    pub within: Option<Duration>,
}

/// `max_concurrent_connections: { max: 2 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxConcurrent {
    /// Most TCP connections open at the same time.
    pub max: usize,
}

/// `dns_queried: { name: "*.gstatic.com" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsQueried {
    /// Name pattern (case-insensitive, trailing dot ignored).
    pub name: Pattern,
}

/// `probed: { os: android }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probed {
    /// The OS as the emulator names it in `connectivity_probe` events.
    pub os: String,
}

/// `tells_user: { pattern: "(?i)cannot reach the device", within: 12s }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TellsUser {
    /// A regular expression a line of the app's output must match (`(?i)` ignores case).
    pub pattern: MessagePattern,
    /// Deadline from the start of the run clock.
    #[serde(with = "human")]
    pub within: Duration,
}

/// The payload matchers of `expect` (`sends`, `sends_in_order`, `heartbeat`), each once, in
/// order: what the emulator is asked to watch ([`espsim_emulator::EmulatorConfig`]'s
/// `watched_messages`) so that the log says which app messages met them. Label matchers need
/// no watching: every `ws_message` event carries the label.
pub fn watched_messages(expect: &[Expectation]) -> Vec<MessageMatch> {
    let mut watched: Vec<MessageMatch> = Vec::new();
    let matchers = expect.iter().flat_map(|e| match e {
        Expectation::Sends(s) => std::slice::from_ref(&s.message_type),
        Expectation::SendsInOrder(all) => all.as_slice(),
        Expectation::Heartbeat(h) => std::slice::from_ref(&h.message),
        _ => &[],
    });
    for m in matchers {
        if matches!(m, MessageMatch::Payload(_)) && !watched.contains(m) {
            watched.push(m.clone());
        }
    }
    watched
}

impl Expectation {
    /// The key as written, e.g. `detects_dead_link`.
    pub fn key(&self) -> &'static str {
        match self {
            Expectation::Connected(_) => "connected",
            Expectation::Reconnects(_) => "reconnects",
            Expectation::Backoff(_) => "backoff",
            Expectation::NoStorm(_) => "no_storm",
            Expectation::Heartbeat(_) => "heartbeat",
            Expectation::DetectsDeadLink(_) => "detects_dead_link",
            Expectation::ClosesCleanly(_) => "closes_cleanly",
            Expectation::Sends(_) => "sends",
            Expectation::SendsInOrder(_) => "sends_in_order",
            Expectation::MaxConcurrentConnections(_) => "max_concurrent_connections",
            Expectation::DnsQueried(_) => "dns_queried",
            Expectation::Probed(_) => "probed",
            Expectation::TellsUser(_) => "tells_user",
        }
    }
}

/// The stable names of a list of expectations: the key, with `#2`, `#3`, … for repeats.
pub fn names(expect: &[Expectation]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    expect
        .iter()
        .map(|e| {
            let n = seen.entry(e.key()).or_insert(0);
            *n += 1;
            if *n == 1 {
                e.key().to_owned()
            } else {
                format!("{}#{n}", e.key())
            }
        })
        .collect()
}

/// Checks what the schema cannot: referenced faults exist, `catches:` names a known profile and
/// an expectation of this scenario, numbers are in range, and every expectation can be judged
/// from the scenario at all. Returns the message of the first problem (the scenario adds the
/// file name); [`problems`] returns them all.
pub fn validate(
    expect: &[Expectation],
    faults: &[FaultRule],
    catches: &BTreeMap<String, String>,
    duration: Duration,
) -> Result<(), String> {
    match problems(expect, faults, catches, duration)
        .into_iter()
        .next()
    {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// Every problem [`validate`] finds, in order (empty: the expectations are sound).
pub fn problems(
    expect: &[Expectation],
    faults: &[FaultRule],
    catches: &BTreeMap<String, String>,
    duration: Duration,
) -> Vec<String> {
    let names = names(expect);
    let mut found = Vec::new();
    for (e, name) in expect.iter().zip(&names) {
        found.extend(
            expectation_problems(e, faults, duration)
                .into_iter()
                .map(|what| format!("expect `{name}`: {what}")),
        );
    }
    for (profile, expectation) in catches {
        let parsed: ClientProfile = match profile.parse() {
            Ok(p) => p,
            Err(e) => {
                found.push(format!("catches: {e}"));
                continue;
            }
        };
        if parsed == ClientProfile::Good {
            found.push("catches: `good` must pass every expectation; list only the profiles that must fail".into());
        } else if !names.iter().any(|n| n == expectation) {
            found.push(format!(
                "catches: {profile}: no expectation named `{expectation}` (this scenario has: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        }
    }
    found
}

/// What is wrong with one expectation in this scenario (empty: nothing).
fn expectation_problems(e: &Expectation, faults: &[FaultRule], duration: Duration) -> Vec<String> {
    let d = |d: Duration| humantime::format_duration(d).to_string();
    let mut found = Vec::new();
    match e {
        Expectation::Connected(c) if c.within > duration => found.push(format!(
            "`within: {}` is longer than the scenario's duration ({}): it can never fail in time",
            d(c.within),
            d(duration)
        )),
        Expectation::Reconnects(r) => match (&r.after, r.at) {
            (Some(_), Some(_)) | (None, None) => {
                found.push("give exactly one of `after: <fault name>` or `at: <time>`".into());
            }
            (Some(fault), None) => {
                if !faults.iter().any(|f| f.name.as_deref() == Some(fault)) {
                    let known: Vec<&str> =
                        faults.iter().filter_map(|f| f.name.as_deref()).collect();
                    found.push(format!(
                        "no fault is named `{fault}` (named faults: {}; hint: add `name: {fault}` to the rule)",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
            }
            (None, Some(at)) if at >= duration => found.push(format!(
                "`at: {}` is not inside the scenario's duration",
                d(at)
            )),
            (None, Some(at)) if at + r.within > duration => found.push(format!(
                "`at: {}` + `within: {}` ends after the scenario's duration ({}): the deadline is never reached",
                d(at),
                d(r.within),
                d(duration)
            )),
            (None, Some(_)) => {}
        },
        Expectation::Backoff(b) => {
            if !(b.min_factor.is_finite() && b.min_factor >= 1.0) {
                found.push(format!(
                    "min_factor must be at least 1 (got {})",
                    b.min_factor
                ));
            }
            if !faults.iter().any(|r| fails_attempts(&r.fault)) {
                found.push("no fault makes connection attempts fail, so there is no retry to judge (add e.g. `fault: refuse`, `{ device: reboot }`, `{ handshake: close }`)".into());
            }
        }
        Expectation::NoStorm(s) if s.window.is_zero() || s.max == 0 => {
            found.push("`max` and `window` must be more than 0".into());
        }
        Expectation::Heartbeat(h) if h.every.is_zero() => {
            found.push("`every` must be more than 0".into());
        }
        Expectation::DetectsDeadLink(_) if !faults.iter().any(|r| silences_link(&r.fault)) => {
            found.push(format!(
                "no fault silences a link, so there is no dead link to detect (add one of: {})",
                dead_link::ARMING_FAULTS
            ));
        }
        Expectation::SendsInOrder(types) if types.is_empty() => {
            found.push("list at least one message type".into());
        }
        Expectation::MaxConcurrentConnections(m) if m.max == 0 => {
            found.push("`max` must be at least 1".into());
        }
        _ => {}
    }
    found
}

/// Faults that make connection attempts fail (refused, cut, answered wrongly, never served),
/// so that a client has something to back off from.
fn fails_attempts(fault: &Fault) -> bool {
    match fault {
        Fault::Connect(
            ConnectFault::Refuse
            | ConnectFault::ResetOnAccept
            | ConnectFault::CloseOnAccept
            | ConnectFault::Stall,
        ) => true,
        Fault::Handshake(h) => !matches!(h, HandshakeFault::Delay(_)),
        Fault::Stream(s) => matches!(
            s,
            StreamFault::ResetPeer(_)
                | StreamFault::LimitData(_)
                | StreamFault::Timeout(_)
                | StreamFault::HalfOpen
        ),
        Fault::Device(d) => matches!(
            d,
            DeviceFault::Reboot(_) | DeviceFault::ApDown(_) | DeviceFault::SocketExhaustion(_)
        ),
        Fault::Ws(_) | Fault::Dns(_) => false,
    }
}

/// Faults that can silence a link without either side being told (what `detects_dead_link`
/// arms on).
fn silences_link(fault: &Fault) -> bool {
    matches!(
        fault,
        Fault::Device(DeviceFault::ApDown(_))
            | Fault::Stream(StreamFault::HalfOpen | StreamFault::Timeout(_))
            | Fault::Ws(WsFault::SuppressPong(_))
    ) || matches!(fault, Fault::Ws(WsFault::Drop(p)) if p.direction == MessageDirection::Out)
}

/// How a report shows an expectation's parameters, e.g. `within 5s`.
pub fn describe(e: &Expectation) -> String {
    let d = |d: Duration| humantime::format_duration(d).to_string();
    match e {
        Expectation::Connected(c) => format!("within {}", d(c.within)),
        Expectation::Reconnects(r) => match (&r.after, r.at) {
            (Some(f), _) => format!("after `{f}` ends, within {}", d(r.within)),
            (None, Some(at)) => format!("after {}, within {}", d(at), d(r.within)),
            (None, None) => format!("within {}", d(r.within)),
        },
        Expectation::Backoff(b) => {
            let mut s = format!(
                "gaps spread ×{} or more",
                b.min_factor.max(backoff::MIN_SPREAD)
            );
            if let Some(t) = b.first_retry_within {
                s += &format!(", first retry within {}", d(t));
            }
            if let Some(m) = b.max {
                s += &format!(", at most {}", d(m));
            }
            if b.jitter {
                s += ", with jitter";
            }
            s
        }
        Expectation::NoStorm(n) => format!("at most {} attempts per {}", n.max, d(n.window)),
        Expectation::Heartbeat(h) => {
            let mut s = format!(
                "every {} ± {}",
                d(h.every),
                d(h.tolerance.unwrap_or_default())
            );
            if h.message != default_heartbeat_message() {
                s += &format!(", `{}` messages or ping frames", h.message);
            }
            s
        }
        Expectation::DetectsDeadLink(w) => format!("within {}", d(w.within)),
        Expectation::ClosesCleanly(c) => format!("close code {}", c.code),
        Expectation::Sends(s) => match s.within {
            Some(w) => format!("`{}` within {} of a session opening", s.message_type, d(w)),
            None => format!("`{}`", s.message_type),
        },
        Expectation::SendsInOrder(t) => t
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" → "),
        Expectation::MaxConcurrentConnections(m) => format!("at most {}", m.max),
        Expectation::DnsQueried(q) => format!("`{}`", q.name.as_str()),
        Expectation::Probed(p) => format!("`{}`", p.os),
        Expectation::TellsUser(t) => format!("/{}/ within {}", t.pattern, d(t.within)),
    }
}
