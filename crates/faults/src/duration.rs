//! Durations as humantime strings (`"250ms"`, `"5s"`, `"1m 30s"`) in YAML and JSON.
//!
//! Used through `#[serde(with = "…")]` so the public types keep plain [`std::time::Duration`]
//! fields. A bare integer `0` is accepted as "zero" (Toxiproxy users write `timeout: 0`); any
//! other bare number is rejected because its unit would be a guess.

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
            "description": "A duration as a humantime string, e.g. \"250ms\", \"5s\", \"1m 30s\" (`0` is also accepted).",
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

/// Parses a humantime duration with an error message that shows the expected form.
pub(crate) fn parse(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v.trim())
        .map_err(|e| format!("invalid duration `{v}`: {e} (write e.g. \"250ms\", \"5s\", \"1m\")"))
}

/// Formats a duration the way it is written in scenario files (`"1s 500ms"`).
pub(crate) fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `#[serde(with = "crate::duration::human")]` for a `Duration` field.
pub(crate) mod human {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

/// `#[serde(with = "crate::duration::human_opt")]` for an `Option<Duration>` field.
pub(crate) mod human_opt {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
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

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}
