//! The questions the services ask the plan (a connection, an upgrade, a message, a DNS query)
//! and the answers that are more than one fault: a connection's stream faults, a device window.

use std::time::Duration;

use serde::Serialize;

use super::{Applied, RuleId};
use crate::fault::{DeviceFault, MessageDirection, StreamFault};
use crate::message::SeenMessage;
use crate::when::Service;

/// Which connection a question is about: its service and its 1-based number there.
///
/// For connect and stream questions `ordinal` counts accepted TCP connections; for handshake
/// and WebSocket questions it counts upgrade requests (the n-th WebSocket attempt), so that
/// connectivity checks on the same port do not shift `when: { connections: … }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// The service (listener) the connection arrived on.
    pub service: Service,
    /// The connection's (or upgrade request's) number on that service, from 1.
    pub ordinal: u64,
}

/// Question asked when a TCP connection is accepted.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The connection.
    pub conn: ConnRef,
    /// Time since the emulator started.
    pub elapsed: Duration,
}

/// Question asked when an upgrade request has been read.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeInfo<'a> {
    /// The connection.
    pub conn: ConnRef,
    /// Time since the emulator started.
    pub elapsed: Duration,
    /// The request's `Host` header, if any.
    pub host: Option<&'a str>,
    /// The request path (without query).
    pub path: &'a str,
}

/// The WebSocket frame kind a message decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A text message.
    Text,
    /// A binary message.
    Binary,
    /// A ping (only `suppress_pong` acts on it).
    Ping,
    /// A pong.
    Pong,
}

/// Question asked for every WebSocket message passing through a session.
#[derive(Debug, Clone, Copy)]
pub struct MessageInfo<'a> {
    /// The connection.
    pub conn: ConnRef,
    /// Time since the emulator started.
    pub elapsed: Duration,
    /// Which way the message travels.
    pub direction: MessageDirection,
    /// Its frame kind.
    pub kind: FrameKind,
    /// A data message's label and payload, for `message_type` matchers; `None` for ping/pong.
    pub message: Option<&'a SeenMessage<'a>>,
    /// Data messages on this connection so far, both ways, including this one (from 1).
    pub messages: u64,
    /// Payload bytes on this connection so far, both ways, including this message.
    pub bytes: u64,
}

/// Question asked for every DNS query.
#[derive(Debug, Clone, Copy)]
pub struct DnsInfo<'a> {
    /// The queried name as received.
    pub name: &'a str,
    /// The record type, e.g. `A`.
    pub qtype: &'a str,
    /// Time since the emulator started.
    pub elapsed: Duration,
}

/// The stream faults for one connection plus the seed for its per-chunk randomness (jitter,
/// slice sizes), derived from the run's seed and the connection so that runs replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamFaults {
    /// Faults to apply, in rule order.
    pub faults: Vec<Applied<StreamFault>>,
    /// Seed for this connection's randomness.
    pub seed: u64,
}

impl StreamFaults {
    /// True when nothing is to be applied (the stream can pass through untouched).
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }
}

/// A device fault placed on the run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceWindow {
    /// The rule.
    pub rule: RuleId,
    /// The fault.
    pub fault: DeviceFault,
    /// When it starts (time since the emulator started).
    #[serde(with = "crate::duration::human")]
    pub start: Duration,
    /// When it ends; `None` = for the rest of the run.
    #[serde(with = "crate::duration::human_opt")]
    pub end: Option<Duration>,
}

impl DeviceWindow {
    /// True when the window covers `elapsed`.
    pub fn contains(&self, elapsed: Duration) -> bool {
        elapsed >= self.start && self.end.is_none_or(|e| elapsed < e)
    }
}
