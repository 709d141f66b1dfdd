//! WebSocket faults on an open session (`{ ws: … }`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::{DurationSchema, human};
use crate::when::Pattern;

/// Direction of a WebSocket message, seen from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageDirection {
    /// App → device.
    In,
    /// Device → app (the default for message faults).
    #[default]
    Out,
}

/// WebSocket faults on an open session.
///
/// `drop`, `duplicate`, `delay` and `suppress_pong` act on a message as it passes; the others
/// are actions the device performs (once per connection) when the rule triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "ws", rename_all = "snake_case")]
pub enum WsFault {
    /// The device sends a close frame.
    Close(WsClose),
    /// The message is silently lost.
    Drop(MessageParams),
    /// The message is delivered twice.
    Duplicate(MessageParams),
    /// The message is held back.
    Delay(WsDelay),
    /// The device does not answer pings (and, with `messages`, swallows its app-level pongs).
    SuppressPong(SuppressPong),
    /// The device sends a frame that breaks RFC 6455.
    Corrupt(Corrupt),
    /// The device sends a message larger than the app should accept.
    Oversize(Oversize),
    /// The device sends a text message that is not JSON.
    Garbage,
    /// The device drops the socket without a close frame, as ESP-IDF's LRU purge does.
    LruPurge,
}

impl WsFault {
    /// The fault's kind as written (`close`, `drop`, …).
    pub fn name(&self) -> &'static str {
        match self {
            WsFault::Close(_) => "close",
            WsFault::Drop(_) => "drop",
            WsFault::Duplicate(_) => "duplicate",
            WsFault::Delay(_) => "delay",
            WsFault::SuppressPong(_) => "suppress_pong",
            WsFault::Corrupt(_) => "corrupt",
            WsFault::Oversize(_) => "oversize",
            WsFault::Garbage => "garbage",
            WsFault::LruPurge => "lru_purge",
        }
    }

    /// True for faults that act on a passing message (`drop`, `duplicate`, `delay`,
    /// `suppress_pong`); false for actions the device takes on its own.
    pub fn acts_on_message(&self) -> bool {
        matches!(
            self,
            WsFault::Drop(_) | WsFault::Duplicate(_) | WsFault::Delay(_) | WsFault::SuppressPong(_)
        )
    }
}

/// Parameters of `{ ws: close }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WsClose {
    /// Close code sent (default 1000). 1005/1006/1015 are not sendable; use `lru_purge` or a stream fault.
    #[serde(default = "default_close_code", deserialize_with = "close_code")]
    pub code: u16,
    /// Close reason sent (default empty, at most 123 bytes).
    #[serde(default)]
    pub reason: String,
    /// Whether the device then completes the closing handshake (default true). With `false` the
    /// device drops the TCP connection right after its close frame, without waiting for the echo.
    #[serde(default = "yes")]
    pub echo: bool,
}

fn default_close_code() -> u16 {
    1000
}

fn yes() -> bool {
    true
}

fn close_code<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let code = u16::deserialize(d)?;
    match code {
        1005 | 1006 | 1015 => Err(de::Error::custom(format_args!(
            "close code {code} must never be sent on the wire; for an abnormal closure use `{{ ws: lru_purge }}` or `{{ stream: reset_peer }}`"
        ))),
        1000..=4999 => Ok(code),
        _ => Err(de::Error::custom(format_args!(
            "close code {code} is outside 1000-4999"
        ))),
    }
}

/// Which messages a per-message fault (`drop`, `duplicate`) acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    /// Which way the message travels (default `out`: device → app).
    #[serde(default)]
    pub direction: MessageDirection,
}

/// Parameters of `{ ws: delay }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WsDelay {
    /// How long the message is held back, e.g. "2s".
    #[serde(with = "human")]
    #[schemars(with = "DurationSchema")]
    pub delay: Duration,
    /// Which way the message travels (default `out`: device → app).
    #[serde(default)]
    pub direction: MessageDirection,
}

/// Parameters of `{ ws: suppress_pong }`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressPong {
    /// Also swallow the device's messages whose protocol `type` matches this pattern: the
    /// replies to an app-level heartbeat (e.g. `pong`). Absent: only WebSocket pong frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Pattern>,
}

/// Parameters of `{ ws: corrupt }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Corrupt {
    /// What is broken in the frame.
    pub kind: CorruptKind,
}

/// The RFC 6455 rule a corrupt frame breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CorruptKind {
    /// A reserved opcode (0x3).
    Opcode,
    /// RSV1 set without a negotiated extension.
    Rsv,
    /// A text frame with invalid UTF-8.
    Utf8,
    /// A masked frame from the server.
    Masked,
}

/// Parameters of `{ ws: oversize }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Oversize {
    /// Payload size in bytes (at most 4 MiB); default: one byte over the device profile's
    /// maximum message size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4_194_304))]
    pub bytes: Option<usize>,
}
