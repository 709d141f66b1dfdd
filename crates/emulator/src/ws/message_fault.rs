//! What the device puts on the wire for the WebSocket action faults.
//!
//! | fault | on the wire |
//! |---|---|
//! | `close` | a close frame with `code` and `reason`; with `echo: false` the TCP connection is closed right after it, without waiting for the app's echo |
//! | `corrupt, kind: opcode` | `83 02 7B 7D`: a final frame with reserved opcode 0x3 |
//! | `corrupt, kind: rsv` | `C1 02 7B 7D`: a text frame `{}` with RSV1 set |
//! | `corrupt, kind: utf8` | `81 02 C3 28`: a text frame that is not UTF-8 |
//! | `corrupt, kind: masked` | `81 82 12 34 56 78 69 49`: a masked text frame `{}` |
//! | `oversize` | one text message of `bytes` bytes (at most 4 MiB; default: the profile's `max_ws_message` + 1): `{"type":"oversize","pad":"xxx…"}` |
//! | `garbage` | the text message `GARBAGE: this is not JSON {` |
//! | `lru_purge` | the TCP connection closes (FIN) with no close frame, like ESP-IDF's LRU purge |
//!
//! The corrupt frames are written raw under tungstenite, which cannot produce them. An action
//! fires once per connection and rule: right after the message that triggers it, or, for a rule
//! without message conditions, when the session starts or the rule's window opens.
//!
//! The faults on a passing message are handled by the session:
//!
//! | fault | effect |
//! |---|---|
//! | `drop` | `out`: the device's message is not sent; `in`: the app's message never reaches the firmware (no reply) |
//! | `duplicate` | the message is sent (`out`) or handed to the firmware (`in`) twice |
//! | `delay` | the session holds the message for `delay`; what comes after it waits too (order is kept, as on a slow link) |
//! | `suppress_pong` | the app's WebSocket ping gets no pong (the link is otherwise alive); with `messages: PATTERN` the device's messages whose `type` matches (the `pong` of the app-level `ping`) are not sent either |

use espsim_faults::limits::MAX_OVERSIZE_BYTES;
use espsim_faults::{CorruptKind, WsFault};

/// The text sent by `{ ws: garbage }`.
pub(crate) const GARBAGE: &str = "GARBAGE: this is not JSON {";

/// A device action to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send a close frame; `echo` = wait for the app's close (the closing handshake).
    Close {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
        /// Whether the device waits for the app's echo before closing TCP.
        echo: bool,
    },
    /// Write these bytes raw on the connection (a frame tungstenite would never send).
    Raw(Vec<u8>),
    /// Send this text message.
    Text(String),
    /// Drop the connection without a close frame.
    Purge,
}

impl Action {
    /// A few words for the `fault_applied` event.
    pub(crate) fn describe(&self) -> String {
        match self {
            Action::Close { code, reason, echo } => format!(
                "sent close {code} {reason:?}{}",
                if *echo {
                    ""
                } else {
                    " and dropped the connection"
                }
            ),
            Action::Raw(bytes) => format!("sent the raw frame {}", hex(bytes)),
            Action::Text(t) if t == GARBAGE => format!("sent the non-JSON text {t:?}"),
            Action::Text(t) => format!("sent a {}-byte text message", t.len()),
            Action::Purge => "dropped the connection without a close frame".to_owned(),
        }
    }
}

/// The action for a WebSocket fault, or `None` for the faults that act on a passing message
/// (`drop`, `duplicate`, `delay`, `suppress_pong`). `max_message` is the profile's limit.
pub(crate) fn action(fault: &WsFault, max_message: usize) -> Option<Action> {
    Some(match fault {
        WsFault::Close(c) => Action::Close {
            code: c.code,
            reason: c.reason.clone(),
            echo: c.echo,
        },
        WsFault::Corrupt(c) => Action::Raw(corrupt_frame(c.kind)),
        // Validation bounds `bytes`; the clamp keeps an unvalidated rule from allocating more.
        WsFault::Oversize(o) => Action::Text(oversize(
            o.bytes
                .map_or(max_message.saturating_add(1), |b| b.min(MAX_OVERSIZE_BYTES)),
        )),
        WsFault::Garbage => Action::Text(GARBAGE.to_owned()),
        WsFault::LruPurge => Action::Purge,
        WsFault::Drop(_) | WsFault::Duplicate(_) | WsFault::Delay(_) | WsFault::SuppressPong(_) => {
            return None;
        }
    })
}

/// The raw bytes of a frame breaking RFC 6455 in the given way (each a complete frame).
pub(crate) fn corrupt_frame(kind: CorruptKind) -> Vec<u8> {
    match kind {
        // FIN + opcode 0x3 (reserved non-control), payload "{}".
        CorruptKind::Opcode => vec![0x83, 0x02, b'{', b'}'],
        // FIN + RSV1 + text, payload "{}".
        CorruptKind::Rsv => vec![0xC1, 0x02, b'{', b'}'],
        // FIN + text, payload C3 28: a two-byte lead followed by a non-continuation byte.
        CorruptKind::Utf8 => vec![0x81, 0x02, 0xC3, 0x28],
        // FIN + text, MASK bit, key 12 34 56 78, payload "{}" masked.
        CorruptKind::Masked => {
            let key = [0x12, 0x34, 0x56, 0x78];
            let mut out = vec![0x81, 0x80 | 2];
            out.extend_from_slice(&key);
            out.extend(b"{}".iter().zip(key).map(|(b, k)| b ^ k));
            out
        }
    }
}

/// A JSON text message of exactly `size` bytes when it fits the envelope (else `size` × `x`).
pub(crate) fn oversize(size: usize) -> String {
    const HEAD: &str = r#"{"type":"oversize","pad":""#;
    const TAIL: &str = r#""}"#;
    let envelope = HEAD.len() + TAIL.len();
    if size < envelope {
        return "x".repeat(size);
    }
    let mut s = String::with_capacity(size);
    s.push_str(HEAD);
    s.extend(std::iter::repeat_n('x', size - envelope));
    s.push_str(TAIL);
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_is_exactly_the_size_and_json() {
        let s = oversize(1025);
        assert_eq!(s.len(), 1025);
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert_eq!(v["type"], "oversize");
        assert_eq!(oversize(3), "xxx");
    }

    #[test]
    fn masked_frame_unmasks_to_braces() {
        let f = corrupt_frame(CorruptKind::Masked);
        assert_eq!(hex(&f), "81 82 12 34 56 78 69 49");
    }
}
