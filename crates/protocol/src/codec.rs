//! Bytes ↔ messages.
//!
//! Decoding goes through a [`serde_json::Value`] first so each step can fail with its own typed
//! error: size, syntax and duplicate keys ([`crate::strict`]), object, `id`, `type`, then the
//! kind's body. The body is deserialized through [`ObjectDeserializer`], which names the
//! top-level field a value error came from.

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

use crate::error::DecodeError;
use crate::strict::{self, ParseError};
use crate::{ClientMessage, DeviceMessage, MAX_MESSAGE_SIZE};

/// Decodes one app → device message (what the firmware does with each text frame).
pub fn decode(bytes: &[u8]) -> Result<ClientMessage, DecodeError> {
    decode_with(bytes, ClientMessage::TYPE_NAMES, ClientMessage::decode_body)
}

/// Decodes one device → app message (what an app or test client does).
pub fn decode_device(bytes: &[u8]) -> Result<DeviceMessage, DecodeError> {
    decode_with(bytes, DeviceMessage::TYPE_NAMES, DeviceMessage::decode_body)
}

/// Encodes a device → app message as compact JSON: `type` first, then the fields in declaration
/// order, absent optional fields omitted.
pub fn encode(message: &DeviceMessage) -> Vec<u8> {
    to_json(message)
}

/// Encodes an app → device message (see [`encode`] for the layout).
pub fn encode_client(message: &ClientMessage) -> Vec<u8> {
    to_json(message)
}

fn to_json<T: serde::Serialize>(message: &T) -> Vec<u8> {
    // Cannot fail: every map key is a `String` and no `Serialize` impl here returns an error
    // (non-finite floats would become `null`, which the firmware never produces).
    serde_json::to_vec(message).expect("protocol messages always serialize")
}

type BodyDecoder<T> = fn(&str, ObjectDeserializer) -> Option<Result<T, FieldError>>;

fn decode_with<T>(
    bytes: &[u8],
    known: &'static [&'static str],
    body: BodyDecoder<T>,
) -> Result<T, DecodeError> {
    let mut object = read_object(bytes)?;
    let id = read_id(&object)?;
    let tag = match object.remove("type") {
        None => return Err(DecodeError::MissingType { id }),
        Some(Value::String(tag)) => tag,
        Some(other) => {
            return Err(DecodeError::InvalidField {
                message_type: None,
                field: "type".to_owned(),
                reason: alloc::format!("expected a string, found {}", json_kind(&other)),
                id,
            });
        }
    };
    let Some(message_type) = known.iter().copied().find(|name| *name == tag) else {
        return Err(DecodeError::UnknownType { name: tag, id });
    };
    match body(message_type, ObjectDeserializer { object }) {
        Some(Ok(message)) => Ok(message),
        Some(Err(error)) => Err(error.into_decode_error(message_type, id)),
        None => Err(DecodeError::UnknownType { name: tag, id }),
    }
}

/// The `type` of a message as the decoder reads it, for whatever observes messages without
/// acting on them (event logs, fault rules matching `message_type`), so that they never see a
/// different kind than the device acts on.
///
/// `None` when the decoder stops before it reads a `type`: too large, not JSON, a duplicate key
/// anywhere, not an object, or no `type` string. Otherwise the string, known to this side or not
/// (an unknown kind is still worth logging by name). Works for both directions.
pub fn message_type(bytes: &[u8]) -> Option<String> {
    match read_object(bytes).ok()?.remove("type")? {
        Value::String(tag) => Some(tag),
        _ => None,
    }
}

/// The first decoding steps, shared by [`decode_with`] and [`message_type`]: size, strict
/// syntax, object.
fn read_object(bytes: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_MESSAGE_SIZE,
        });
    }
    let value = strict::parse(bytes).map_err(|error| match error {
        ParseError::Duplicate { key, line, column } => {
            DecodeError::DuplicateKey { key, line, column }
        }
        ParseError::Json(error) => invalid_json(error),
    })?;
    match value {
        Value::Object(object) => Ok(object),
        other => Err(DecodeError::NotAnObject {
            found: json_kind(&other),
        }),
    }
}

/// Reads `id` before anything else can fail, so later errors can echo it. `null` means absent.
fn read_id(object: &Map<String, Value>) -> Result<Option<u64>, DecodeError> {
    match object.get("id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(other) => Err(DecodeError::InvalidField {
            message_type: None,
            field: "id".to_owned(),
            reason: alloc::format!(
                "expected an unsigned 64-bit integer, found {}",
                json_kind(other)
            ),
            id: None,
        }),
    }
}

fn invalid_json(error: serde_json::Error) -> DecodeError {
    let (line, column) = (error.line(), error.column());
    let text = error.to_string();
    // serde_json appends " at line L column C"; the position has its own fields.
    let suffix = alloc::format!(" at line {line} column {column}");
    let reason = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    DecodeError::InvalidJson {
        line,
        column,
        reason,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(n) if n.is_i64() && !n.is_u64() => "a negative number",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A body field error, collected while deserializing and turned into a [`DecodeError`] once the
/// message kind and `id` are attached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FieldError {
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("unknown field `{0}`")]
    Unknown(String),
    #[error("{reason}")]
    Invalid {
        field: Option<String>,
        reason: String,
    },
}

impl FieldError {
    fn into_decode_error(self, message_type: &'static str, id: Option<u64>) -> DecodeError {
        match self {
            FieldError::Missing(field) => DecodeError::MissingField {
                message_type,
                field,
                id,
            },
            FieldError::Unknown(field) => DecodeError::UnknownField {
                message_type,
                field,
                id,
            },
            FieldError::Invalid { field, reason } => DecodeError::InvalidField {
                message_type: Some(message_type),
                field: field.unwrap_or_default(),
                reason,
                id,
            },
        }
    }
}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FieldError::Invalid {
            field: None,
            reason: msg.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        FieldError::Missing(field)
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        FieldError::Unknown(field.to_owned())
    }
}

/// A JSON object (without its `type`) as a serde `Deserializer` that tags every value error
/// with the field it came from.
#[derive(Debug)]
pub(crate) struct ObjectDeserializer {
    object: Map<String, Value>,
}

impl<'de> de::Deserializer<'de> for ObjectDeserializer {
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_map(ObjectAccess {
            entries: self.object.into_iter(),
            pending: None,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct ObjectAccess {
    entries: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
}

impl<'de> MapAccess<'de> for ObjectAccess {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FieldError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let parsed = seed.deserialize(key.as_str().into_deserializer())?;
        self.pending = Some((key, value));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, FieldError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        seed.deserialize(FieldValue(value))
            .map_err(|error| FieldError::Invalid {
                field: Some(key),
                reason: error.to_string(),
            })
    }
}

/// One field's value. Deserializes exactly like a [`Value`], except that a struct must be a JSON
/// object: serde's derived structs also accept an array of their fields in order, which would
/// let `"config": []` pass as an empty patch.
struct FieldValue(Value);

impl<'de> de::Deserializer<'de> for FieldValue {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_any(self.0, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_option(self.0, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_newtype_struct(self.0, name, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if !self.0.is_object() {
            return Err(de::Error::invalid_type(unexpected(&self.0), &"an object"));
        }
        de::Deserializer::deserialize_struct(self.0, name, fields, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map identifier ignored_any
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}
