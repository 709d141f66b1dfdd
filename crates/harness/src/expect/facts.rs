//! What the event log says, folded once: connections (attempts, sessions, how they ended) and
//! the faults that fired. Every expectation reads these instead of re-walking raw events.

use std::collections::BTreeMap;

use espsim_emulator::events::{ConnId, Direction, Event, EventKind, Side};
use espsim_faults::Fault;

use super::eval::Evidence;

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
    /// The app's first frame on the session: the first moment the device can tell the app saw
    /// the `101` (later than `ws_opened_ms` by the downstream latency).
    pub(crate) first_in_ms: Option<u64>,
    /// Pings from the app: WebSocket ping frames and app `ping` messages, in order.
    pub(crate) heartbeats: Vec<u64>,
    /// Protocol message types the app sent, with their times.
    pub(crate) sent: Vec<(u64, String)>,
}

impl Conn {
    /// A WebSocket attempt: anything but a plain HTTP exchange (an upgrade that was cut, refused
    /// or answered all count; so does a connection that never got as far as a request).
    pub(crate) fn is_attempt(&self) -> bool {
        self.ws_opened_ms.is_some() || self.ws_rejected || self.faulted || !self.plain_http
    }

    /// An attempt that did not become a session.
    pub(crate) fn failed(&self) -> bool {
        self.ws_opened_ms.is_none()
    }

    /// When the connection ended as far as the log knows (`None`: still open at the end).
    pub(crate) fn ended_ms(&self) -> Option<u64> {
        [
            self.ws_end.as_ref().map(|e| e.at_ms),
            self.closed_ms,
            self.purged_ms,
        ]
        .into_iter()
        .flatten()
        .min()
    }
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
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    pub(crate) fired: Vec<Fired>,
    pub(crate) dns: Vec<(u64, String)>,
    pub(crate) probes: Vec<(u64, String, String)>,
    /// When the run ended (the `stopping` event, else the last event).
    pub(crate) end_ms: u64,
    /// Every event by time: (kind, connection, seq), so evidence can name the events it used.
    index: BTreeMap<u64, Vec<Indexed>>,
}

impl Facts {
    pub(crate) fn new(events: &[Event]) -> Facts {
        let mut f = Facts::default();
        for e in events {
            f.end_ms = f.end_ms.max(e.at_ms);
            let at = e.at_ms;
            f.index
                .entry(at)
                .or_default()
                .push((e.kind.name(), conn_of(&e.kind), e.seq));
            match &e.kind {
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
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.first_in_ms.get_or_insert(at);
                        if frame == "ping" {
                            c.heartbeats.push(at);
                        }
                    }
                }
                EventKind::WsMessage {
                    conn,
                    direction: Direction::In,
                    msg_type,
                    ..
                } => {
                    if let Some(c) = f.conns.get_mut(conn) {
                        c.first_in_ms.get_or_insert(at);
                        if let Some(t) = msg_type {
                            if t == "ping" {
                                c.heartbeats.push(at);
                            }
                            c.sent.push((at, t.clone()));
                        }
                    }
                }
                EventKind::FaultApplied {
                    conn, rule, fault, ..
                } => {
                    if let Some(c) = conn.and_then(|id| f.conns.get_mut(&id)) {
                        c.faulted = true;
                    }
                    f.fired.push(Fired {
                        at_ms: at,
                        conn: *conn,
                        rule: *rule,
                        fault: serde_json::from_value(fault.clone()).ok(),
                    });
                }
                EventKind::DnsQuery { name, .. } => f.dns.push((at, name.clone())),
                _ => {}
            }
        }
        f
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

    /// WebSocket attempts in accept order.
    pub(crate) fn attempts(&self) -> impl Iterator<Item = &Conn> {
        self.conns.values().filter(|c| c.is_attempt())
    }

    /// Connections that became WebSocket sessions, in the order they opened. (Not in connection
    /// order: a delayed handshake can complete on an old connection after a newer one opened.)
    pub(crate) fn sessions(&self) -> impl Iterator<Item = &Conn> {
        let mut s: Vec<&Conn> = self
            .conns
            .values()
            .filter(|c| c.ws_opened_ms.is_some())
            .collect();
        s.sort_by_key(|c| (c.ws_opened_ms, c.id));
        s.into_iter()
    }

    /// The session that ended last (or is still open at the end): the one the client leaves.
    pub(crate) fn last_session(&self) -> Option<&Conn> {
        self.sessions()
            .max_by_key(|c| (c.ended_ms().unwrap_or(u64::MAX), c.ws_opened_ms, c.id))
    }
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
