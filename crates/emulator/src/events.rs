//! The event log: every observable thing the emulator does, as typed events.
//!
//! It is the single source of truth for `--events FILE` (JSON lines), the control API's live
//! stream, the harness's expectations and for tests, which wait on events instead of sleeping.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::internet::InternetMode;

/// Identifies one accepted TCP connection for the whole run (1, 2, 3, … in accept order).
pub type ConnId = u64;

/// One thing that happened, stamped with its order and time since the emulator started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, starting at 0, without gaps.
    pub seq: u64,
    /// Milliseconds since the emulator started.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Which side ended something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The app (the emulator's peer).
    Client,
    /// The emulated device.
    Device,
}

/// Direction of a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// App → device.
    In,
    /// Device → app.
    Out,
}

/// What an operating system concludes from a connectivity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The OS believes the network has internet access.
    Online,
    /// The OS shows "Sign in to network" (captive portal).
    SignIn,
    /// The OS marks the network "No internet" / "Limited".
    NoInternet,
}

/// Every kind of event. Serialized with an `event` tag, e.g. `{"event":"dns_query",…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// All services are bound and serving.
    Started {
        /// HTTP/WebSocket address.
        http: SocketAddr,
        /// HTTPS/wss address, if TLS is on.
        https: Option<SocketAddr>,
        /// DNS address (UDP and TCP), if DNS is on.
        dns: Option<SocketAddr>,
        /// The address DNS answers with.
        device_ip: String,
        /// The device profile's name.
        profile: String,
        /// The internet mode at start.
        internet: InternetMode,
        /// The run's seed (replay a run with the same seed and the same connections).
        seed: u64,
    },
    /// A DNS query was answered (or deliberately not).
    DnsQuery {
        /// `udp` or `tcp`.
        transport: String,
        /// Who asked.
        client: SocketAddr,
        /// The queried name as received (case preserved).
        name: String,
        /// Record type, e.g. `A`, `AAAA`.
        qtype: String,
        /// Response code sent, e.g. `NoError`; `None` when no reply was sent.
        rcode: Option<String>,
        /// The answers' data, e.g. `["192.168.4.1"]`.
        answers: Vec<String>,
    },
    /// A DNS packet that could not be parsed.
    DnsMalformed {
        /// `udp` or `tcp`.
        transport: String,
        /// Who sent it.
        client: SocketAddr,
        /// What went wrong.
        error: String,
        /// Response code sent (`FormErr`), or `None` when no reply was sent.
        rcode: Option<String>,
    },
    /// A TCP connection was accepted on the device port.
    TcpAccepted {
        /// The connection.
        conn: ConnId,
        /// The app's address.
        peer: SocketAddr,
        /// `http` or `https`.
        service: String,
    },
    /// Every socket slot is in use: the connection is held open, unserved, until one frees.
    TcpWaiting {
        /// The connection.
        conn: ConnId,
        /// How many sockets are open.
        open: usize,
    },
    /// A connection took a socket slot and is being served.
    TcpServed {
        /// The connection.
        conn: ConnId,
    },
    /// The least-recently-used session was closed to admit a new connection (no close frame).
    LruPurged {
        /// The purged connection.
        conn: ConnId,
        /// The connection it made room for.
        for_conn: ConnId,
    },
    /// A TCP connection ended.
    TcpClosed {
        /// The connection.
        conn: ConnId,
        /// Who closed it.
        by: Side,
        /// Why, in a few words.
        reason: String,
    },
    /// An HTTP request was answered.
    HttpRequest {
        /// The connection.
        conn: ConnId,
        /// Request method.
        method: String,
        /// `Host` header, if any.
        host: Option<String>,
        /// Request target as sent.
        target: String,
        /// Status sent.
        status: u16,
    },
    /// A request the device rejected before routing (header too long, bad syntax, timeout…).
    HttpError {
        /// The connection.
        conn: ConnId,
        /// Status sent, e.g. 431.
        status: u16,
        /// Why.
        reason: String,
    },
    /// An OS connectivity check was answered, with what that OS will conclude.
    ConnectivityProbe {
        /// The connection.
        conn: ConnId,
        /// The OS that sends this probe, e.g. `android`, `apple`, `windows`.
        os: String,
        /// The probe URL, e.g. `http://connectivitycheck.gstatic.com/generate_204`.
        url: String,
        /// The internet mode that shaped the answer.
        mode: InternetMode,
        /// Status sent.
        status: u16,
        /// What the OS concludes.
        verdict: Verdict,
    },
    /// The internet mode changed at run time.
    InternetChanged {
        /// Before.
        from: InternetMode,
        /// After.
        to: InternetMode,
    },
    /// A WebSocket upgrade succeeded.
    WsOpened {
        /// The connection.
        conn: ConnId,
        /// Request path.
        path: String,
        /// Negotiated subprotocol, if any.
        subprotocol: Option<String>,
    },
    /// A WebSocket upgrade was refused.
    WsRejected {
        /// The connection.
        conn: ConnId,
        /// Which check failed, e.g. `missing Sec-WebSocket-Version`.
        reason: String,
        /// Status sent, or `None` for ESP-IDF's silent close.
        status: Option<u16>,
    },
    /// A WebSocket data message.
    WsMessage {
        /// The connection.
        conn: ConnId,
        /// In (app → device) or out.
        direction: Direction,
        /// The protocol `type` field, when the message had one.
        msg_type: Option<String>,
        /// Payload size in bytes.
        bytes: usize,
    },
    /// A WebSocket ping or pong frame.
    WsControl {
        /// The connection.
        conn: ConnId,
        /// In or out.
        direction: Direction,
        /// `ping` or `pong`.
        frame: String,
    },
    /// A WebSocket session ended.
    WsClosed {
        /// The connection.
        conn: ConnId,
        /// Who ended it.
        by: Side,
        /// Close code received (client) or sent (device); `None` without a close frame.
        code: Option<u16>,
        /// Close reason text.
        reason: String,
        /// Whether a close frame was exchanged.
        clean: bool,
    },
    /// The device firmware asked for something outside the WebSocket (AP down, restart).
    DeviceAction {
        /// What, e.g. `ap_down`, `restart`.
        action: String,
        /// Details.
        detail: String,
    },
    /// A fault rule fired.
    FaultApplied {
        /// The connection it hit, if it hit one.
        conn: Option<ConnId>,
        /// The rule's id in the fault plan.
        rule: u64,
        /// The fault, as in the scenario (e.g. `{"handshake":"reset","at":"after_request"}`).
        fault: serde_json::Value,
        /// What was done, in a few words.
        detail: String,
    },
    /// The emulator is shutting down.
    Stopping,
}

impl EventKind {
    /// The event's tag, e.g. `dns_query`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started { .. } => "started",
            EventKind::DnsQuery { .. } => "dns_query",
            EventKind::DnsMalformed { .. } => "dns_malformed",
            EventKind::TcpAccepted { .. } => "tcp_accepted",
            EventKind::TcpWaiting { .. } => "tcp_waiting",
            EventKind::TcpServed { .. } => "tcp_served",
            EventKind::LruPurged { .. } => "lru_purged",
            EventKind::TcpClosed { .. } => "tcp_closed",
            EventKind::HttpRequest { .. } => "http_request",
            EventKind::HttpError { .. } => "http_error",
            EventKind::ConnectivityProbe { .. } => "connectivity_probe",
            EventKind::InternetChanged { .. } => "internet_changed",
            EventKind::WsOpened { .. } => "ws_opened",
            EventKind::WsRejected { .. } => "ws_rejected",
            EventKind::WsMessage { .. } => "ws_message",
            EventKind::WsControl { .. } => "ws_control",
            EventKind::WsClosed { .. } => "ws_closed",
            EventKind::DeviceAction { .. } => "device_action",
            EventKind::FaultApplied { .. } => "fault_applied",
            EventKind::Stopping => "stopping",
        }
    }
}

/// Errors opening the JSON-lines event file.
#[derive(Debug, thiserror::Error)]
#[error("cannot create event file {path}")]
pub struct EventFileError {
    /// The file.
    pub path: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Capacity of the live broadcast; a subscriber that falls this far behind sees `Lagged`
/// (the history and the file never lose events).
const LIVE_CAPACITY: usize = 4096;

/// Events kept in memory by a long-running emulator ([`History::default`]): at a few hundred
/// bytes each, about 10 MB. The JSON-lines file always gets every event.
pub const DEFAULT_HISTORY: usize = 20_000;

/// How much of the past an [`EventLog`] keeps in memory (for [`EventLog::snapshot`], the
/// control API's `GET /events?from=` and [`EventLog::wait_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Every event of the run: for bounded runs whose events are evaluated at the end
    /// (`espsim test`). Grows by a few hundred bytes per DNS query, HTTP request or message.
    All,
    /// The most recent N events; older ones are forgotten (the file, if any, keeps them).
    Last(usize),
}

impl Default for History {
    fn default() -> Self {
        History::Last(DEFAULT_HISTORY)
    }
}

/// Records events, fans them out live, keeps the history and writes the JSON-lines file.
#[derive(Debug)]
pub struct EventLog {
    start: Instant,
    seq: AtomicU64,
    history: Mutex<VecDeque<Event>>,
    keep: History,
    live: broadcast::Sender<Event>,
    file: Option<mpsc::UnboundedSender<ToFile>>,
}

/// What the file writer is asked to do.
#[derive(Debug)]
enum ToFile {
    /// Append this event.
    Event(Event),
    /// Flush, then answer.
    Flushed(tokio::sync::oneshot::Sender<()>),
}

impl EventLog {
    /// A log without a file that keeps every event ([`History::All`]).
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        EventLog {
            start: Instant::now(),
            seq: AtomicU64::new(0),
            history: Mutex::new(VecDeque::new()),
            keep: History::All,
            live,
            file: None,
        }
    }

    /// A log that also appends every event as one JSON line to `path` (created or truncated).
    /// Must be called inside a Tokio runtime: a blocking task does the writing.
    pub fn with_file(path: &Path) -> Result<Self, EventFileError> {
        let file = File::create(path).map_err(|source| EventFileError {
            path: path.display().to_string(),
            source,
        })?;
        let (tx, mut rx) = mpsc::unbounded_channel::<ToFile>();
        tokio::task::spawn_blocking(move || {
            let mut out = BufWriter::new(file);
            while let Some(message) = rx.blocking_recv() {
                let event = match message {
                    ToFile::Event(event) => event,
                    ToFile::Flushed(done) => {
                        // Everything sent before this request is written (or failed to be).
                        let _ = out.flush();
                        let _ = done.send(());
                        continue;
                    }
                };
                let written =
                    serde_json::to_writer(&mut out, &event).is_ok() && out.write_all(b"\n").is_ok();
                // Flush when the queue is drained, so a reader sees complete lines promptly.
                if !written || (rx.is_empty() && out.flush().is_err()) {
                    tracing::error!("writing the event file failed; no further events are written");
                    return;
                }
            }
            let _ = out.flush();
        });
        Ok(EventLog {
            file: Some(tx),
            ..EventLog::new()
        })
    }

    /// Waits until every event emitted so far is in the file (at most `timeout`); returns at
    /// once without a file.
    pub async fn flush_file(&self, timeout: Duration) {
        let Some(file) = &self.file else { return };
        let (done, flushed) = tokio::sync::oneshot::channel();
        if file.send(ToFile::Flushed(done)).is_ok() {
            let _ = tokio::time::timeout(timeout, flushed).await;
        }
    }

    /// The same log keeping only as much history as `keep` says.
    pub fn keeping(self, keep: History) -> Self {
        EventLog { keep, ..self }
    }

    /// Time since the log (and so the emulator) started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records `kind` now; returns its sequence number.
    pub fn emit(&self, kind: EventKind) -> u64 {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        // Numbered under the lock, so the history, the file and the live stream agree on order.
        let event = Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            at_ms: u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX),
            kind,
        };
        tracing::debug!(event = event.kind.name(), seq = event.seq, "event");
        if let History::Last(max) = self.keep {
            while history.len() >= max.max(1) {
                history.pop_front();
            }
        }
        let seq = event.seq;
        if let Some(file) = &self.file {
            let _ = file.send(ToFile::Event(event.clone()));
        }
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(event.clone());
        }
        history.push_back(event);
        seq
    }

    /// A live receiver of every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// Every event still kept (all of them with [`History::All`]), in order.
    pub fn snapshot(&self) -> Vec<Event> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The kept history from `seq` on, plus a receiver for what follows, without gap or overlap
    /// (events older than the kept window are gone; see [`History`]).
    pub fn snapshot_and_subscribe(
        &self,
        from_seq: u64,
    ) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.live.subscribe();
        let past = history
            .iter()
            .filter(|e| e.seq >= from_seq)
            .cloned()
            .collect();
        (past, rx)
    }

    /// Waits until an event matching `pred` has been emitted (including before the call),
    /// or `timeout` passes. Returns the first match.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let (past, mut rx) = self.snapshot_and_subscribe(0);
        if let Some(e) = past.into_iter().find(|e| pred(e)) {
            return Some(e);
        }
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(e) if pred(&e) => return Some(e),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Fall back to the history, which keeps far more than the live channel.
                        if let Some(e) = self.snapshot().into_iter().find(|e| pred(e)) {
                            return Some(e);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_tag_and_flat_fields() {
        let log = EventLog::new();
        let seq = log.emit(EventKind::InternetChanged {
            from: InternetMode::Captive,
            to: InternetMode::Online,
        });
        let e = log.snapshot().remove(0);
        assert_eq!(e.seq, seq);
        let json = serde_json::to_string(&e).expect("serializes");
        assert!(
            json.starts_with(r#"{"seq":0,"at_ms":"#),
            "unexpected json {json}"
        );
        assert!(json.ends_with(r#""event":"internet_changed","from":"captive","to":"online"}"#));
        let back: Event = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, e);
    }

    #[tokio::test]
    async fn wait_for_sees_past_and_future_events() {
        let log = std::sync::Arc::new(EventLog::new());
        log.emit(EventKind::Stopping);
        let past = log
            .wait_for(Duration::from_secs(1), |e| e.kind == EventKind::Stopping)
            .await;
        assert_eq!(past.map(|e| e.seq), Some(0));

        let log2 = log.clone();
        let waiter =
            tokio::spawn(
                async move { log2.wait_for(Duration::from_secs(5), |e| e.seq == 1).await },
            );
        log.emit(EventKind::Stopping);
        assert_eq!(waiter.await.expect("joins").map(|e| e.seq), Some(1));
    }

    #[test]
    fn a_bounded_history_keeps_the_most_recent_events() {
        let log = EventLog::new().keeping(History::Last(3));
        for _ in 0..5 {
            log.emit(EventKind::Stopping);
        }
        let kept: Vec<u64> = log.snapshot().iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![2, 3, 4]);
        let (from_one, _rx) = log.snapshot_and_subscribe(1);
        assert_eq!(from_one.first().map(|e| e.seq), Some(2));
        assert_eq!(EventLog::new().snapshot().len(), 0);
        let all = EventLog::new();
        for _ in 0..5 {
            all.emit(EventKind::Stopping);
        }
        assert_eq!(all.snapshot().len(), 5);
    }

    #[tokio::test]
    async fn event_file_gets_one_json_line_per_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let log = EventLog::with_file(&path).expect("file");
        log.emit(EventKind::Stopping);
        log.emit(EventKind::Stopping);
        drop(log);
        // The writer drains and exits once the log (its only sender) is gone.
        let read_both = async {
            loop {
                let text = std::fs::read_to_string(&path).expect("readable");
                if text.lines().count() == 2 {
                    break text;
                }
                tokio::task::yield_now().await;
            }
        };
        let text = tokio::time::timeout(Duration::from_secs(5), read_both)
            .await
            .expect("both lines written within 5 s");
        for (i, line) in text.lines().enumerate() {
            let e: Event = serde_json::from_str(line).expect("json line");
            assert_eq!(e.seq, i as u64);
        }
    }
}
