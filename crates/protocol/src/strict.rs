//! Parsing JSON into a [`Value`] while rejecting duplicate object keys, at every depth.
//!
//! `serde_json` keeps the last of two equal keys, while other readers (a derived struct, another
//! language's parser, a log viewer) keep the first or fail: `{"type":"ping","type":"reboot"}`
//! would mean `reboot` to the decoder and something else to whatever else looks at it. An
//! ambiguous message is therefore rejected as a whole, before anything reads from it.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why [`parse`] failed: a duplicate key (its unescaped name, and where the parser stood), or any
/// other `serde_json` error.
pub(crate) enum ParseError {
    /// The same key twice in one object.
    Duplicate {
        /// The key, as decoded (escapes resolved, so `"t\u0079pe"` is `type`).
        key: String,
        /// 1-based line where the parser noticed.
        line: usize,
        /// 1-based column where the parser noticed.
        column: usize,
    },
    /// Not JSON (syntax, UTF-8, nesting deeper than `serde_json`'s limit of 128).
    Json(serde_json::Error),
}

/// Parses one JSON document (nothing but whitespace may follow it) into a [`Value`].
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
    let duplicate = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| match duplicate.take() {
        Some(key) => ParseError::Duplicate {
            key,
            line: error.line(),
            column: error.column(),
        },
        None => ParseError::Json(error),
    })
}

/// Builds a [`Value`] like `serde_json`'s own, except that a repeated key in an object is an
/// error; the key is left in `duplicate` so the caller can report it as data, not as text.
#[derive(Clone, Copy)]
struct Strict<'a> {
    duplicate: &'a Cell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // The JSON parser never yields a non-finite float; `Null` is what serde_json does too.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let error = de::Error::custom(alloc::format!("duplicate key `{key}`"));
                self.duplicate.set(Some(key));
                return Err(error);
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
