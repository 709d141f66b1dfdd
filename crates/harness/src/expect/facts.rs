//! What the event log says, folded once: the run clock, connections (attempts, sessions, how
//! they ended), refused attempts and the faults that fired. Every expectation reads these
//! instead of re-walking raw events.

use std::collections::BTreeMap;

use espsim_emulator::events::{ConnId, Direction, Event, EventKind, Side};
use espsim_faults::{Fault, MessageMatch, StreamFault};

use super::eval::Evidence;
use super::tells_user::OutputLine;

/// How a WebSocket session ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WsEnd {
    pub(crate) at_ms: u64,
    pub(crate) by: Side,
    pub(crate) code: Option<u16>,
    pub(crate) clean: bool,
}

/// One TCP connection on the device port and what happened on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) accepted_ms: u64,
    pub(crate) closed_ms: Option<u64>,
    pub(crate) closed_by: Option<Side>,
    pub(crate) ws_opened_ms: Option<u64>,
    pub(crate) ws_end: Option<WsEnd>,
    pub(crate) ws_rejected: bool,
    /// An ordinary HTTP exchange (connectivity check, portal page), not a WebSocket attempt.
    pub(crate) plain_http: bool,
    /// A fault hit it.
    pub(crate) faulted: bool,
    /// When the LRU purge dropped it.
    pub(crate) purged_ms: Option<u64>,
    /// When the app gave up on it while it waited for a socket slot (`tcp_abandoned`): a failed
    /// attempt, never a session, open only until then.
    pub(crate) abandoned_ms: Option<u64>,
    /// WebSocket ping frames from the app, in order.
    pub(crate) ping_frames: Vec<u64>,
    /// Longest delay a `stream: latency` fault adds device → app (latency + jitter), in ms.
    pub(crate) delay_down_ms: u64,
    /// Longest delay a `stream: latency` fault adds app → device (latency + jitter), in ms.
    pub(crate) delay_up_ms: u64,
    /// How much that app → device delay varies (the latency fault's ± jitter), in ms.
    pub(crate) jitter_up_ms: u64,
    /// The data messages the app sent, in order.
    pub(crate) sent: Vec<Sent>,
}

/// A data message the app sent, as its `ws_message` event shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sent {
    pub(crate) at: u64,
    /// The device's label for it, if it gave one.
    pub(crate) label: Option<String>,
    /// Which of the run's watched payload matchers it met (their indices).
    pub(crate) watched: Vec<u16>,
}

impl Sent {
    /// How reports name it: its label, else `(unlabelled)`.
    pub(crate) fn shown(&self) -> &str {
        self.label.as_deref().unwrap_or("(unlabelled)")
    }
}

/// An expectation's message matcher, as the log can judge it: a label pattern against the
/// event's label, a payload test by its index in the emulator's `watched_messages` (see
/// [`super::watched_messages`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matcher<'a> {
    matcher: &'a MessageMatch,
    /// The payload test's index; `None` for a label (or a test the run did not watch).
    index: Option<u16>,
}

impl Matcher<'_> {
    /// True when the message the app sent meets it.
    pub(crate) fn meets(&self, sent: &Sent) -> bool {
        match self.matcher {
            MessageMatch::Label(p) => sent.label.as_deref().is_some_and(|l| p.matches(l)),
            MessageMatch::Payload(_) => self.index.is_some_and(|i| sent.watched.contains(&i)),
        }
    }
}

impl std::fmt::Display for Matcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.matcher, f)
    }
}

impl Conn {
    /// A WebSocket attempt: anything but a plain HTTP exchange (an upgrade that was cut, refused
    /// or answered all count; so does a connection that never got as far as a request).
    pub(crate) fn is_attempt(&self) -> bool {
        self.ws_opened_ms.is_some()
            || self.ws_rejected
            || self.faulted
            || self.abandoned_ms.is_some()
            || !self.plain_http
    }

    /// An attempt that did not become a session (abandoned ones included).
    pub(crate) fn failed(&self) -> bool {
        self.ws_opened_ms.is_none() || self.abandoned_ms.is_some()
    }

    /// A WebSocket session: upgraded and never abandoned.
    pub(crate) fn is_session(&self) -> bool {
        self.ws_opened_ms.is_some() && self.abandoned_ms.is_none()
    }

    /// The app's heartbeats on this session: ping frames and messages that meet `message`, as
    /// they reached the device, in order.
    pub(crate) fn heartbeats(&self, message: Matcher<'_>) -> Vec<u64> {
        let mut beats: Vec<u64> = self
            .sent
            .iter()
            .filter(|s| message.meets(s))
            .map(|s| s.at)
            .chain(self.ping_frames.iter().copied())
            .collect();
        beats.sort_unstable();
        beats
    }

    /// Which heartbeat the app keeps on this connection, as the log shows it.
    pub(crate) fn heartbeat_kind(&self, message: Matcher<'_>) -> HeartbeatKind {
        HeartbeatKind {
            frames: !self.ping_frames.is_empty(),
            messages: self.sent.iter().any(|s| message.meets(s)),
        }
    }

    /// When the connection ended as far as the log knows (`None`: still open at the end).
    pub(crate) fn ended_ms(&self) -> Option<u64> {
        [
            self.ws_end.as_ref().map(|e| e.at_ms),
            self.closed_ms,
            self.purged_ms,
            self.abandoned_ms,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The heartbeat an app keeps on one connection: WebSocket ping frames, ping messages, both or
/// none (an app with no heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HeartbeatKind {
    pub(crate) frames: bool,
    pub(crate) messages: bool,
}

/// A connection attempt the device refused (`tcp_refused`): a SYN answered with RST, no ConnId.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refused {
    pub(crate) at_ms: u64,
    pub(crate) service: String,
}

/// One connection attempt of any kind, in time order: a TCP connection or a refused SYN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Attempt {
    /// When it reached the device (accept, or the refused SYN).
    pub(crate) at_ms: u64,
    /// Its connection; `None` for a refused SYN.
    pub(crate) conn: Option<ConnId>,
    /// Whether it failed (refused, abandoned, cut before the upgrade completed).
    pub(crate) failed: bool,
    /// When a failed attempt ended (the retry clock of a backoff starts there).
    pub(crate) ended_ms: u64,
}

/// A fault that fired.
#[derive(Debug, Clone)]
pub(crate) struct Fired {
    pub(crate) at_ms: u64,
    pub(crate) conn: Option<ConnId>,
    pub(crate) rule: u64,
    pub(crate) fault: Option<Fault>,
}

/// An event as [`Facts::ev`] finds it: (kind, connection, seq).
type Indexed = (&'static str, Option<ConnId>, u64);

/// The folded log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// When the run clock started (`clock_started`), in emulator ms; 0 if the log has none.
    /// Scenario times (`within`, `at`, fault windows) count from here.
    pub(crate) t0: u64,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    /// SYNs the device refused during `refuse` / `reboot`.
    pub(crate) refused: Vec<Refused>,
    /// `refused_unobserved` events: (service, reason) — refused attempts are missing.
    pub(crate) refused_unobserved: Vec<(String, String)>,
    pub(crate) fired: Vec<Fired>,
    pub(crate) dns: Vec<(u64, String)>,
    pub(crate) probes: Vec<(u64, String, String)>,
    /// What the app printed (`app_output`), in order.
    pub(crate) output: Vec<OutputLine>,
    /// When the run ended (the `stopping` event, else the last event).
    pub(crate) end_ms: u64,
    /// Every event by time: (kind, connection, seq), so evidence can name the events it used.
    index: BTreeMap<u64, Vec<Indexed>>,
    /// The payload matchers the emulator was asked to watch, in its order.
    watched: Vec<MessageMatch>,
}

impl Facts {
    /// The log folded, for judging matchers among `watched` (what the emulator was given as
    /// `watched_messages`).
    pub(crate) fn watching(events: &[Event], watched: Vec<MessageMatch>) -> Facts {
        Facts {
            watched,
            ..Facts::new(events)
        }
    }

    /// `matcher` as the log can judge it.
    pub(crate) fn matcher<'a>(&self, matcher: &'a MessageMatch) -> Matcher<'a> {
        Matcher {
            matcher,
            index: self
                .watched
                .iter()
                .position(|w| w == matcher)
                .and_then(|i| u16::try_from(i).ok()),
        }
    }

    pub(crate) fn new(events: &[Event]) -> Facts {
        let mut f = Facts::default();
        let mut clock = None;
        for e in events {
            f.end_ms = f.end_ms.max(e.at_ms);
            let at = e.at_ms;
            f.index
                .entry(at)
                .or_default()
                .push((e.kind.name(), conn_of(&e.kind), e.seq));
            match &e.kind {
                EventKind::ClockStarted { .. } => {
                    clock.get_or_insert(at);
                }
                EventKind::TcpRefused { service, .. } => f.refused.push(Refused {
                    at_ms: at,
                    service: service.clone(),
                }),
                EventKind::RefusedUnobserved { service, reason } => {
                    f.refused_unobserved.push((service.clone(), reason.clone()));
                }
                EventKind::TcpAbandoned { conn, .. } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.abandoned_ms.get_or_insert(at);
                    }
                }
                EventKind::TcpAccepted { conn, .. } => {
                    f.conns.insert(
                        *conn,
                        Conn {
                            id: *conn,
                            accepted_ms: at,
                            ..Conn::default()
                        },
                    );
                }
                EventKind::TcpClosed { conn, by, .. } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.closed_ms.get_or_insert(at);
                        c.closed_by.get_or_insert(*by);
                    }
                }
                EventKind::LruPurged { conn, .. } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.purged_ms.get_or_insert(at);
                    }
                }
                EventKind::HttpRequest { conn, .. } | EventKind::HttpError { conn, .. } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.plain_http = true;
                    }
                }
                EventKind::ConnectivityProbe {
                    conn, os, verdict, ..
                } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.plain_http = true;
                    }
                    let verdict = serde_json::to_value(verdict)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    f.probes.push((at, os.clone(), verdict));
                }
                EventKind::WsOpened { conn, .. } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.ws_opened_ms.get_or_insert(at);
                    }
                }
                EventKind::WsRejected { conn, .. } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.ws_rejected = true;
                    }
                }
                EventKind::WsClosed {
                    conn,
                    by,
                    code,
                    clean,
                    ..
                } => {
                    if let Some(c) = f.conns.get_mut(conn)
                        && c.ws_end.is_none()
                    {
                        c.ws_end = Some(WsEnd {
                            at_ms: at,
                            by: *by,
                            code: *code,
                            clean: *clean,
                        });
                    }
                }
                EventKind::WsControl {
                    conn,
                    direction: Direction::In,
                    frame,
                } => {
                    if let Some(c) = f.conns.get_mut(conn)
                        && frame == "ping"
                    {
                        c.ping_frames.push(at);
                    }
                }
                EventKind::WsMessage {
                    conn,
                    direction: Direction::In,
                    msg_type,
                    watched,
                    ..
                } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.sent.push(Sent {
                            at,
                            label: msg_type.clone(),
                            watched: watched.clone(),
                        });
                    }
                }
                EventKind::FaultApplied {
                    conn, rule, fault, ..
                } => {
                    let fault: Option<Fault> = serde_json::from_value(fault.clone()).ok();
                    if let Some(c) = conn.and_then(|id| f.conns.get_mut(&id)) {
                        c.faulted = true;
                        if let Some(Fault::Stream(StreamFault::Latency(l))) = &fault {
                            let most = ms(l.latency + l.jitter);
                            if l.direction.downstream() {
                                c.delay_down_ms += most;
                            }
                            if l.direction.upstream() {
                                c.delay_up_ms += most;
                                c.jitter_up_ms += ms(l.jitter);
                            }
                        }
                    }
                    f.fired.push(Fired {
                        at_ms: at,
                        conn: *conn,
                        rule: *rule,
                        fault,
                    });
                }
                EventKind::DnsQuery { name, .. } => f.dns.push((at, name.clone())),
                EventKind::AppOutput { stream, line, .. } => f.output.push(OutputLine {
                    at_ms: at,
                    seq: e.seq,
                    stream: stream.clone(),
                    line: line.clone(),
                }),
                _ => {}
            }
        }
        f.t0 = clock.unwrap_or(0);
        f
    }

    /// `ms` as seen on the run clock (from `clock_started`), never before it.
    pub(crate) fn on_clock(&self, at_ms: u64) -> u64 {
        at_ms.saturating_sub(self.t0)
    }

    /// Evidence at `at_ms` (on `conn`, if given) with the events of one of `kinds` logged at
    /// that moment (on that connection) as the events it was read from.
    pub(crate) fn ev(
        &self,
        kinds: &[&str],
        at_ms: u64,
        conn: Option<ConnId>,
        note: impl Into<String>,
    ) -> Evidence {
        let events = self
            .index
            .get(&at_ms)
            .into_iter()
            .flatten()
            .filter(|(kind, c, _)| kinds.contains(kind) && (conn.is_none() || *c == conn))
            .map(|(_, _, seq)| *seq)
            .collect();
        Evidence {
            at_ms: Some(at_ms),
            conn,
            note: note.into(),
            since_ms: None,
            events,
        }
    }

    /// WebSocket attempts that got a connection, in accept order.
    pub(crate) fn attempts(&self) -> impl Iterator<Item = &Conn> {
        self.conns.values().filter(|c| c.is_attempt())
    }

    /// Every attempt, refused SYNs included, in time order.
    pub(crate) fn all_attempts(&self) -> Vec<Attempt> {
        let mut all: Vec<Attempt> = self
            .attempts()
            .map(|c| Attempt {
                at_ms: c.accepted_ms,
                conn: Some(c.id),
                failed: c.failed(),
                ended_ms: c.ended_ms().unwrap_or(c.accepted_ms),
            })
            .chain(self.refused.iter().map(|r| Attempt {
                at_ms: r.at_ms,
                conn: None,
                failed: true,
                ended_ms: r.at_ms,
            }))
            .collect();
        all.sort_by_key(|a| (a.at_ms, a.conn.is_some(), a.conn));
        all
    }

    /// Attempts from `from_ms` on, refused SYNs included, not counting connection `except`.
    pub(crate) fn attempts_since(&self, from_ms: u64, except: Option<ConnId>) -> Vec<Attempt> {
        self.all_attempts()
            .into_iter()
            .filter(|a| a.at_ms >= from_ms && (a.conn.is_none() || a.conn != except))
            .collect()
    }

    /// Connections that became WebSocket sessions, in the order they opened. (Not in connection
    /// order: a delayed handshake can complete on an old connection after a newer one opened.)
    pub(crate) fn sessions(&self) -> impl Iterator<Item = &Conn> {
        let mut s: Vec<&Conn> = self.conns.values().filter(|c| c.is_session()).collect();
        s.sort_by_key(|c| (c.ws_opened_ms, c.id));
        s.into_iter()
    }

    /// The session that ended last (or is still open at the end): the one the client leaves.
    pub(crate) fn last_session(&self) -> Option<&Conn> {
        self.sessions()
            .max_by_key(|c| (c.ended_ms().unwrap_or(u64::MAX), c.ws_opened_ms, c.id))
    }
}

/// A duration in whole ms (saturating).
pub(crate) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The connection an event is about, if any.
pub fn conn_of(kind: &EventKind) -> Option<ConnId> {
    match kind {
        EventKind::TcpAccepted { conn, .. }
        | EventKind::TcpWaiting { conn, .. }
        | EventKind::TcpServed { conn }
        | EventKind::TcpAbandoned { conn, .. }
        | EventKind::LruPurged { conn, .. }
        | EventKind::TcpClosed { conn, .. }
        | EventKind::HttpRequest { conn, .. }
        | EventKind::HttpError { conn, .. }
        | EventKind::ConnectivityProbe { conn, .. }
        | EventKind::WsOpened { conn, .. }
        | EventKind::WsRejected { conn, .. }
        | EventKind::WsMessage { conn, .. }
        | EventKind::WsControl { conn, .. }
        | EventKind::WsClosed { conn, .. } => Some(*conn),
        EventKind::FaultApplied { conn, .. } => *conn,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use espsim_emulator::events::{Event, EventKind, Side};

    use super::Facts;

    fn at(seq: u64, at_ms: u64, kind: EventKind) -> Event {
        Event { seq, at_ms, kind }
    }

    fn closed(conn: u64) -> EventKind {
        EventKind::TcpClosed {
            conn,
            by: Side::Client,
            reason: "fin".to_owned(),
        }
    }

    #[test]
    fn evidence_names_the_events_of_its_kind_moment_and_connection() {
        let events = [
            at(0, 10, EventKind::Stopping),
            at(1, 10, closed(1)),
            at(2, 10, closed(2)),
            at(3, 11, closed(1)),
        ];
        let f = Facts::new(&events);
        assert_eq!(f.ev(&["tcp_closed"], 10, Some(1), "x").events, [1]);
        assert_eq!(f.ev(&["tcp_closed"], 10, None, "x").events, [1, 2]);
        assert_eq!(
            f.ev(&["tcp_closed", "stopping"], 10, None, "x").events,
            [0, 1, 2]
        );
        assert!(f.ev(&["ws_closed"], 10, Some(1), "x").events.is_empty());
        assert!(f.ev(&["tcp_closed"], 12, Some(1), "x").events.is_empty());
        let e = f.ev(&["tcp_closed"], 11, Some(1), "note");
        assert_eq!(
            (e.at_ms, e.conn, e.note.as_str()),
            (Some(11), Some(1), "note")
        );
        assert_eq!(e.since_ms, None);
    }
}
