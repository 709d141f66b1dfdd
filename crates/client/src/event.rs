//! The client's own view of a run, as typed events (the mirror image of the emulator's log).
//!
//! The harness compares both sides: the emulator records what reached the device, these record
//! what the app tried and concluded. Serialized like the emulator's events, with an `event` tag.

use serde::Serialize;

/// One thing the client did or saw, stamped with milliseconds since the client started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientEvent {
    /// Milliseconds since [`crate::Client::run`] started.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: ClientEventKind,
}

/// Who ended a connection, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    /// The client (leaving, or giving up on a dead link).
    Client,
    /// The device sent a close frame.
    Device,
    /// The connection ended without a close frame (FIN/RST, I/O error).
    Network,
}

/// Every kind of client event. `{"event":"attempt",…}` etc.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientEventKind {
    /// The client started, with the behaviour it will follow.
    Start {
        /// Target URL.
        url: String,
        /// Profile name.
        profile: String,
        /// Connect (and `welcome`) timeout; `None` = none.
        connect_timeout_ms: Option<u64>,
        /// Heartbeat interval; `None` = no heartbeat.
        heartbeat_ms: Option<u64>,
        /// Heartbeat answer timeout.
        heartbeat_timeout_ms: Option<u64>,
        /// First reconnect delay.
        backoff_initial_ms: u64,
        /// Reconnect delay growth per failure.
        backoff_factor: f64,
        /// Reconnect delay cap.
        backoff_max_ms: u64,
    },
    /// A connection attempt begins (TCP connect + WebSocket upgrade).
    Attempt {
        /// 1, 2, 3, … over the whole run.
        attempt: u32,
    },
    /// The WebSocket upgrade succeeded (101).
    Connected {
        /// The attempt that succeeded.
        attempt: u32,
    },
    /// The device answered `hello` with `welcome`: the link is usable.
    Ready {
        /// `welcome.device_id`.
        device_id: String,
        /// `welcome.protocol_version`.
        protocol_version: u32,
    },
    /// An attempt failed before the link was usable.
    Failed {
        /// The attempt.
        attempt: u32,
        /// `connect` (TCP + upgrade) or `hello` (waiting for `welcome`).
        phase: String,
        /// The error, as the client library reports it.
        error: String,
    },
    /// The client waits before the next attempt.
    Backoff {
        /// Consecutive failures so far (the exponent + 1).
        failures: u32,
        /// The chosen (jittered) delay.
        delay_ms: u64,
    },
    /// A protocol message went out.
    Sent {
        /// Its `type`.
        msg_type: String,
        /// Its `id`, if any.
        id: Option<u64>,
        /// Payload size.
        bytes: usize,
    },
    /// A message was kept for later because the link is not usable.
    Queued {
        /// Its `type`.
        msg_type: String,
        /// Messages waiting now.
        queued: usize,
    },
    /// The queue was full; the oldest message was dropped.
    QueueDropped {
        /// The dropped message's `type`.
        msg_type: String,
    },
    /// A message came in.
    Received {
        /// Its `type`, or `None` when it was not a protocol message.
        msg_type: Option<String>,
        /// Its `id`, if any.
        id: Option<u64>,
        /// Payload size.
        bytes: usize,
    },
    /// A heartbeat went out.
    Heartbeat {
        /// Sequence number (app `ping.seq`, or the ping frame's payload).
        seq: u64,
        /// `app` or `websocket`.
        kind: String,
    },
    /// A heartbeat was answered.
    HeartbeatAck {
        /// The answered sequence number.
        seq: u64,
        /// Round trip in milliseconds.
        rtt_ms: u64,
    },
    /// No answer to a heartbeat within the timeout: the link is declared dead and dropped.
    DeadLink {
        /// The unanswered heartbeat.
        seq: u64,
        /// How long the client waited.
        waited_ms: u64,
    },
    /// A usable connection ended.
    Closed {
        /// Who ended it.
        by: Closer,
        /// Close code sent (by the client) or received (from the device); `None` without one.
        code: Option<u16>,
        /// Close reason or error text.
        reason: String,
        /// Whether close frames went both ways.
        clean: bool,
    },
    /// The client stopped (asked to leave).
    Stopped,
}

impl ClientEventKind {
    /// The event's tag, e.g. `attempt`.
    pub fn name(&self) -> &'static str {
        match self {
            ClientEventKind::Start { .. } => "start",
            ClientEventKind::Attempt { .. } => "attempt",
            ClientEventKind::Connected { .. } => "connected",
            ClientEventKind::Ready { .. } => "ready",
            ClientEventKind::Failed { .. } => "failed",
            ClientEventKind::Backoff { .. } => "backoff",
            ClientEventKind::Sent { .. } => "sent",
            ClientEventKind::Queued { .. } => "queued",
            ClientEventKind::QueueDropped { .. } => "queue_dropped",
            ClientEventKind::Received { .. } => "received",
            ClientEventKind::Heartbeat { .. } => "heartbeat",
            ClientEventKind::HeartbeatAck { .. } => "heartbeat_ack",
            ClientEventKind::DeadLink { .. } => "dead_link",
            ClientEventKind::Closed { .. } => "closed",
            ClientEventKind::Stopped => "stopped",
        }
    }
}

/// Totals over a run, returned by [`crate::Client::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientSummary {
    /// Connection attempts.
    pub attempts: u32,
    /// Attempts that reached `welcome`.
    pub ready: u32,
    /// Attempts that failed before `welcome`.
    pub failures: u32,
    /// Protocol messages sent (app heartbeats included, WebSocket ping frames not).
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Links declared dead.
    pub dead_links: u32,
    /// Messages still queued (never delivered) when the client stopped.
    pub unsent: usize,
}

impl ClientSummary {
    /// Whether the client ever had a usable link.
    pub fn ever_ready(&self) -> bool {
        self.ready > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_flat_with_an_event_tag() {
        let e = ClientEvent {
            at_ms: 12,
            kind: ClientEventKind::Failed {
                attempt: 2,
                phase: "connect".into(),
                error: "connection refused".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&e).expect("serializes"),
            r#"{"at_ms":12,"event":"failed","attempt":2,"phase":"connect","error":"connection refused"}"#
        );
        assert_eq!(e.kind.name(), "failed");
    }
}
