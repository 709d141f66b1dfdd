//! Durations as compact strings (`"250ms"`, `"5s"`, `"1m30s"`, `"1h 30m"`) in YAML and JSON.
//!
//! One strict grammar for every duration a user writes (fault rules, scenarios,
//! expectations): [`parse_strict_duration`]. Each part is digits immediately followed by one of
//! the units `ms`, `s`, `m`, `h`; parts may be separated by spaces, but a number and its unit may
//! not (`5 s`), and spelled-out units (`10 seconds`, `1 hour`) are refused with a hint: a unit
//! that reads differently in every tool is a guess we do not make.
//!
//! Used through `#[serde(with = "…")]` so the public types keep plain [`std::time::Duration`]
//! fields: [`human`] for a `Duration`, [`human_opt`] for an `Option<Duration>`. These are the
//! only duration adapters of the workspace (scenario files and expectations use them too). A
//! bare integer `0` is accepted as "zero" (Toxiproxy users write `timeout: 0`); any other bare
//! number is rejected because its unit would be a guess.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// JSON Schema stand-in for a duration field: a humantime string.
#[derive(Debug)]
pub(crate) struct DurationSchema;

impl JsonSchema for DurationSchema {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: digits with a unit ms, s, m or h, parts optionally separated by spaces, e.g. \"250ms\", \"5s\", \"1m 30s\" (`0` is also accepted).",
            "anyOf": [
                { "type": "string", "examples": ["250ms", "5s", "1m 30s"] },
                { "const": 0 }
            ]
        })
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"250ms\" or \"5s\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        if v == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(E::custom(format_args!(
                "a duration needs a unit: write \"{v}ms\" or \"{v}s\", not {v}"
            )))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format_args!(
                "a duration cannot be negative: {v}"
            ))),
        }
    }
}

/// Parses a duration with an error message that shows the expected form.
pub(crate) fn parse(v: &str) -> Result<Duration, String> {
    parse_strict_duration(v)
}

/// The hint every duration error ends with.
const HINT: &str =
    "write digits with a unit ms, s, m or h, e.g. \"500ms\", \"20s\", \"2m\", \"1h 30m\"";

/// Parses a duration written as parts of digits plus a unit `ms`, `s`, `m` or `h` (`"500ms"`,
/// `"20s"`, `"1m30s"`, `"1h 30m"`; surrounding spaces and spaces between parts are allowed).
///
/// Refused, with a hint: no unit (`"20"`), a space inside a part (`"5 s"`), any other unit
/// (`"10 seconds"`, `"1hour"`, `"2d"`, `"5us"`), a negative or fractional number, a sum past
/// [`Duration::MAX`]. The error is one line, starting `invalid duration `…``.
pub fn parse_strict_duration(text: &str) -> Result<Duration, String> {
    let fail = |why: &str| Err(format!("invalid duration `{text}`: {why} ({HINT})"));
    let mut rest = text.trim();
    if rest.is_empty() {
        return fail("it is empty");
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return fail("expected a number");
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.len()
            - tail
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, tail) = tail.split_at(unit_len);
        let Ok(n) = number.parse::<u64>() else {
            return fail("the number is too large");
        };
        let part = match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "" if tail.starts_with(' ') => {
                return fail("no space between a number and its unit");
            }
            "" if tail.is_empty() => return fail("a number needs a unit"),
            "" => return fail(&format!("unexpected `{}`", first_char(tail))),
            other => return fail(&format!("unknown unit `{other}`")),
        };
        let Some(sum) = part.and_then(|p| total.checked_add(p)) else {
            return fail("it is too long");
        };
        total = sum;
        let next = tail.trim_start_matches(' ');
        if next.len() == tail.len()
            && !tail.is_empty()
            && !tail.starts_with(|c: char| c.is_ascii_digit())
        {
            return fail(&format!("unexpected `{}`", first_char(tail)));
        }
        rest = next;
    }
    Ok(total)
}

/// The first character of `s` (for messages), empty when `s` is.
fn first_char(s: &str) -> &str {
    s.char_indices()
        .nth(1)
        .map_or(s, |(end, _)| s.get(..end).unwrap_or(s))
}

/// Formats a duration the way [`parse_strict_duration`] reads it: hours, minutes, seconds and
/// milliseconds, largest first, zero parts left out (`"1h 30m"`, `"1s 500ms"`, `"0s"`); below a
/// millisecond is dropped (no duration a user writes has any).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(d.subsec_millis()), "ms"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_owned()
    } else {
        text.join(" ")
    }
}

/// Formats a duration the way it is written in scenario files (`"1s 500ms"`).
pub(crate) fn format(d: Duration) -> String {
    format_duration(d)
}

/// `#[serde(with = "espsim_faults::duration::human")]` for a `Duration` field: reads the
/// strict grammar ([`parse_strict_duration`], or a bare `0`), writes [`format_duration`].
pub mod human {
    use super::*;

    /// Writes `d` as [`format_duration`] does (`"1s 500ms"`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// Reads a duration string in the strict grammar, or a bare `0`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

/// `#[serde(with = "espsim_faults::duration::human_opt")]` for an `Option<Duration>` field
/// (absent or `null` is `None`; combine with `#[serde(default)]`).
pub mod human_opt {
    use super::*;

    /// Writes `Some(d)` as [`format_duration`] does, `None` as null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&format(*d)),
            None => s.serialize_none(),
        }
    }

    struct OptVisitor;

    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"250ms\" or \"5s\"")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(DurationVisitor).map(Some)
        }
    }

    /// Reads `null` as `None`, anything else as [`human`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_durations_parse() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("20s", Duration::from_secs(20)),
            (" 2m ", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("1h 30m", Duration::from_secs(5400)),
            ("1s 500ms", Duration::from_millis(1500)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_strict_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn spelled_out_spaced_or_unitless_durations_are_refused_with_a_hint() {
        let bad = [
            ("10 seconds", "no space between a number and its unit"),
            ("5 s", "no space between a number and its unit"),
            ("1 hour", "no space between a number and its unit"),
            ("1hour", "unknown unit `hour`"),
            ("2d", "unknown unit `d`"),
            ("5us", "unknown unit `us`"),
            ("20", "a number needs a unit"),
            ("", "it is empty"),
            ("-5s", "expected a number"),
            ("1.5s", "unexpected `.`"),
            ("5s,", "unexpected `,`"),
            ("99999999999999999999s", "the number is too large"),
            ("18446744073709551615h", "it is too long"),
        ];
        for (text, why) in bad {
            let err = parse_strict_duration(text).expect_err(text);
            assert_eq!(err, format!("invalid duration `{text}`: {why} ({HINT})"));
        }
    }

    #[test]
    fn formatted_durations_parse_back() {
        for ms in [
            0, 1, 999, 1000, 1500, 60_000, 90_500, 3_600_000, 86_400_000, 90_061_001,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_strict_duration(&format_duration(d)), Ok(d), "{ms}");
        }
        assert_eq!(format_duration(Duration::from_secs(86_400)), "24h");
    }
}
