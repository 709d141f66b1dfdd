//! Triggers: when a rule's fault applies (time windows, connection and message counts, events,
//! seeded probability, service and name/host/path matches).
//!
//! Every condition that is present must hold; an empty `when: {}` always applies.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::{DurationSchema, human_opt};
use crate::message::MessageMatch;

/// The conditions under which a rule's fault applies. All present conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Start of the active window, from the start of the run (or from the `after` event), e.g. "20s".
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DurationSchema>")]
    pub at: Option<Duration>,
    /// Length of the active window, from `at`; open-ended when absent, e.g. "5s".
    #[serde(
        default,
        rename = "for",
        with = "human_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<DurationSchema>")]
    pub duration: Option<Duration>,
    /// Which connections (1-based, counted per service since the start): `3`, `1-2`, `5-`.
    /// Connect and stream faults count TCP connections; handshake and WebSocket faults count
    /// upgrade requests, so OS connectivity checks on the same port do not shift the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<CountRange>,
    /// Apply on every N-th occurrence that matches the other conditions (N, 2N, 3N, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub every: Option<u64>,
    /// Only after this event was observed (e.g. the message type `provision`); `at` then counts
    /// from that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Which data messages on a WebSocket connection (1-based, both directions counted
    /// together): `1`, `3-5`, `10-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<CountRange>,
    /// Once the connection has carried this many bytes (WebSocket payload, both ways): `1000-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<CountRange>,
    /// Chance in [0, 1] that a matching occurrence is hit, drawn after every other condition
    /// held from the run's seed, the rule and the occasion (connection, message number, or the
    /// n-th DNS query the rule matches), so a draw replays with the seed whatever else happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<Probability>,
    /// Only for this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// DNS query name pattern, e.g. `*.gstatic.com` (`*` any run of characters, `?` one;
    /// case-insensitive; a trailing dot is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Pattern>,
    /// DNS record type, e.g. `AAAA` (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    /// HTTP `Host` header pattern of the upgrade request, e.g. `192.168.4.1*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Pattern>,
    /// HTTP request path pattern of the upgrade request, e.g. `/ws*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Pattern>,
    /// Which WebSocket messages: the device's label for them (a pattern, e.g. `telemetry`: the
    /// built-in protocol's `type`, a device file's rule name) or a payload test
    /// (`{ json: { pointer: /cmd, equals: get } }`, `{ text: { regex: … } }`, `{ binary: … }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageMatch>,
}

/// The emulator service a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// The plain HTTP/WebSocket port (80).
    Http,
    /// The TLS port (443), HTTPS and wss.
    Https,
    /// The captive DNS (53, UDP and TCP).
    Dns,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Http => "http",
            Service::Https => "https",
            Service::Dns => "dns",
        })
    }
}

/// An inclusive 1-based range of counts: `3`, `1-2` or `5-` (open-ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountRange {
    /// First count included (≥ 1).
    pub first: u64,
    /// Last count included; `None` = no end.
    pub last: Option<u64>,
}

impl CountRange {
    /// Exactly the `n`-th.
    pub fn exactly(n: u64) -> Self {
        CountRange {
            first: n,
            last: Some(n),
        }
    }

    /// True when `n` lies in the range.
    pub fn contains(&self, n: u64) -> bool {
        n >= self.first && self.last.is_none_or(|l| n <= l)
    }
}

/// Why a count range was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid range `{input}`: {reason} (write `3`, `1-2` or `5-`)")]
pub struct RangeError {
    input: String,
    reason: &'static str,
}

impl FromStr for CountRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, RangeError> {
        let err = |reason| RangeError {
            input: s.to_owned(),
            reason,
        };
        let num = |t: &str| t.trim().parse::<u64>().map_err(|_| err("not a number"));
        let (first, last) = match s.split_once('-') {
            None => {
                let n = num(s)?;
                (n, Some(n))
            }
            Some((a, b)) if b.trim().is_empty() => (num(a)?, None),
            Some((a, b)) => (num(a)?, Some(num(b)?)),
        };
        if first == 0 {
            return Err(err("counts start at 1"));
        }
        if last.is_some_and(|l| l < first) {
            return Err(err("the end is before the start"));
        }
        Ok(CountRange { first, last })
    }
}

impl fmt::Display for CountRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last {
            Some(l) if l == self.first => write!(f, "{l}"),
            Some(l) => write!(f, "{}-{l}", self.first),
            None => write!(f, "{}-", self.first),
        }
    }
}

impl Serialize for CountRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.last {
            Some(l) if l == self.first => s.serialize_u64(l),
            _ => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for CountRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CountRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count or range: 3, \"1-2\" or \"5-\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CountRange, E> {
                if v == 0 {
                    Err(E::custom("counts start at 1"))
                } else {
                    Ok(CountRange::exactly(v))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CountRange, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("counts start at 1"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CountRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for CountRange {
    fn schema_name() -> Cow<'static, str> {
        "CountRange".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A 1-based inclusive count or range: 3, \"1-2\" or \"5-\" (open-ended).",
            "anyOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": "^[0-9]+(-[0-9]*)?$" }
            ]
        })
    }
}

/// A probability in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Probability(f64);

impl JsonSchema for Probability {
    fn schema_name() -> Cow<'static, str> {
        "Probability".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A probability from 0 to 1.",
            "type": "number",
            "minimum": 0,
            "maximum": 1
        })
    }
}

impl Probability {
    /// The probability as a number in [0, 1].
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Probability {
    type Error = String;

    fn try_from(p: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(format!("probability {p} is outside 0-1"))
        }
    }
}

impl From<Probability> for f64 {
    fn from(p: Probability) -> f64 {
        p.0
    }
}

/// A case-insensitive glob: `*` matches any run of characters, `?` exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Pattern(String);

impl Pattern {
    /// A pattern from its written form.
    pub fn new(p: impl Into<String>) -> Self {
        Pattern(p.into())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `text` matches. Both sides drop one trailing dot, so DNS names match either way.
    pub fn matches(&self, text: &str) -> bool {
        let p = self
            .0
            .strip_suffix('.')
            .unwrap_or(&self.0)
            .to_ascii_lowercase();
        let t = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        glob(p.as_bytes(), t.as_bytes())
    }
}

/// Iterative glob match with single-star backtracking: linear in practice, never recursive.
pub(crate) fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_contain() {
        let r: CountRange = "1-2".parse().expect("range");
        assert!(r.contains(1) && r.contains(2) && !r.contains(3));
        let r: CountRange = "5-".parse().expect("open");
        assert!(!r.contains(4) && r.contains(5) && r.contains(u64::MAX));
        let r: CountRange = "3".parse().expect("single");
        assert!(r.contains(3) && !r.contains(2) && !r.contains(4));
        assert_eq!(r.to_string(), "3");
    }

    #[test]
    fn bad_ranges_are_rejected_with_the_form_to_write() {
        let e = "0-2".parse::<CountRange>().expect_err("zero");
        assert_eq!(
            e.to_string(),
            "invalid range `0-2`: counts start at 1 (write `3`, `1-2` or `5-`)"
        );
        assert!("3-1".parse::<CountRange>().is_err());
        assert!("x".parse::<CountRange>().is_err());
        assert!("-3".parse::<CountRange>().is_err());
    }

    #[test]
    fn glob_matches_dns_names() {
        let p = Pattern::new("*.gstatic.com");
        assert!(p.matches("connectivitycheck.gstatic.com"));
        assert!(p.matches("Connectivitycheck.GSTATIC.com."));
        assert!(!p.matches("gstatic.com"));
        assert!(!p.matches("gstatic.com.evil"));
        assert!(Pattern::new("captive.apple.com").matches("captive.apple.com"));
        assert!(Pattern::new("a?c*").matches("abcdef"));
        assert!(!Pattern::new("a?c").matches("ac"));
        assert!(Pattern::new("*").matches(""));
        assert!(Pattern::new("*a*b").matches("xaxxab"));
    }

    #[test]
    fn probability_outside_unit_interval_is_rejected() {
        assert!(Probability::try_from(1.5).is_err());
        assert!(Probability::try_from(-0.1).is_err());
        assert!(Probability::try_from(f64::NAN).is_err());
        assert_eq!(Probability::try_from(0.25).map(Probability::get), Ok(0.25));
    }
}
