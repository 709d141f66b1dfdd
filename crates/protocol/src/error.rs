//! [`DecodeError`]: why bytes are not a valid message, with the stable code the device replies with.

use alloc::string::String;

use crate::types::ErrorCode;

/// Why [`crate::decode`] / [`crate::decode_device`] rejected a message.
///
/// Checked in this order: size, JSON syntax and repeated keys (whichever comes first in the
/// text), object, `id`, `type`, the kind's fields. Every variant after the object check carries
/// the request `id` when it could be read ([`DecodeError::id`]), so the `error` reply can still
/// be matched to its request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`crate::MAX_MESSAGE_SIZE`]; rejected before parsing.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON (or not UTF-8).
    #[error("invalid json at line {line} column {column}: {reason}")]
    InvalidJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's explanation, e.g. `expected value`.
        reason: String,
    },
    /// The same key twice in one object, at any depth (`{"type":"ping","type":"reboot"}`).
    ///
    /// JSON parsers disagree on which of the two wins, so such a message means different things
    /// to different readers; it is rejected as a whole, and no `id` is read from it.
    #[error("duplicate key `{key}` at line {line} column {column}")]
    DuplicateKey {
        /// The repeated key, escapes resolved (`"t\u0079pe"` is `type`).
        key: String,
        /// 1-based line of the end of the second occurrence.
        line: usize,
        /// 1-based column of the end of the second occurrence (its closing quote).
        column: usize,
    },
    /// Valid JSON, but not an object.
    #[error("expected a json object, found {found}")]
    NotAnObject {
        /// What was found: `array`, `string`, `number`, `boolean` or `null`.
        found: &'static str,
    },
    /// An object without a `type` field.
    #[error("missing field `type`")]
    MissingType {
        /// The request id, if readable.
        id: Option<u64>,
    },
    /// A `type` this side does not know.
    #[error("unknown message type `{name}`")]
    UnknownType {
        /// The `type` received.
        name: String,
        /// The request id, if readable.
        id: Option<u64>,
    },
    /// A required field of a known kind is absent.
    #[error("`{message_type}` is missing field `{field}`")]
    MissingField {
        /// The message kind.
        message_type: &'static str,
        /// The absent field.
        field: &'static str,
        /// The request id, if readable.
        id: Option<u64>,
    },
    /// A field the kind does not define (unknown fields are rejected, not ignored).
    #[error("`{message_type}` has no field `{field}`")]
    UnknownField {
        /// The message kind.
        message_type: &'static str,
        /// The unexpected field.
        field: String,
        /// The request id, if readable.
        id: Option<u64>,
    },
    /// A field with a value of the wrong type or shape (`id` and `type` included).
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        /// The message kind, when known (not for `id` / `type` themselves).
        message_type: Option<&'static str>,
        /// The field, e.g. `seq` or `config`.
        field: String,
        /// What is wrong, e.g. `invalid type: string "x", expected u64`.
        reason: String,
        /// The request id, if readable.
        id: Option<u64>,
    },
}

impl DecodeError {
    /// The request `id`, when the message was an object with a readable `id`.
    pub fn id(&self) -> Option<u64> {
        match self {
            DecodeError::TooLarge { .. }
            | DecodeError::InvalidJson { .. }
            | DecodeError::DuplicateKey { .. }
            | DecodeError::NotAnObject { .. } => None,
            DecodeError::MissingType { id }
            | DecodeError::UnknownType { id, .. }
            | DecodeError::MissingField { id, .. }
            | DecodeError::UnknownField { id, .. }
            | DecodeError::InvalidField { id, .. } => *id,
        }
    }

    /// The code the device's `error` reply carries for this failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
            DecodeError::InvalidJson { .. } => ErrorCode::InvalidJson,
            DecodeError::MissingType { .. } => ErrorCode::MissingType,
            DecodeError::UnknownType { .. } => ErrorCode::UnknownType,
            DecodeError::DuplicateKey { .. }
            | DecodeError::NotAnObject { .. }
            | DecodeError::MissingField { .. }
            | DecodeError::UnknownField { .. }
            | DecodeError::InvalidField { .. } => ErrorCode::InvalidMessage,
        }
    }

    /// The stable machine code, e.g. `"unknown_type"` (same as `error_code().as_str()`).
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }
}
