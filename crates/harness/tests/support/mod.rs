//! Shared by the expectation tests: an event-log builder and the one-expectation judge.

#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

use espsim_emulator::events::{Direction, Event, EventKind, Side};
use espsim_faults::FaultRule;
use espsim_harness::expect::{Expectation, Outcome, evaluate};

/// Builds an event log in time order.
#[derive(Default)]
pub(crate) struct Log(pub(crate) Vec<Event>);

impl Log {
    pub(crate) fn push(&mut self, at_ms: u64, kind: EventKind) -> &mut Self {
        let seq = self.0.len() as u64;
        self.0.push(Event { seq, at_ms, kind });
        self
    }
    pub(crate) fn clock(&mut self, at: u64) -> &mut Self {
        self.push(
            at,
            EventKind::ClockStarted {
                reason: "first_connection".into(),
            },
        )
    }
    pub(crate) fn accept(&mut self, at: u64, conn: u64) -> &mut Self {
        self.push(
            at,
            EventKind::TcpAccepted {
                conn,
                peer: "127.0.0.1:40000".parse().expect("addr"),
                service: "http".into(),
            },
        )
    }
    pub(crate) fn open(&mut self, at: u64, conn: u64) -> &mut Self {
        self.accept(at, conn).push(
            at,
            EventKind::WsOpened {
                conn,
                path: "/ws".into(),
                subprotocol: None,
            },
        )
    }
    pub(crate) fn tcp_closed(&mut self, at: u64, conn: u64, by: Side) -> &mut Self {
        self.push(
            at,
            EventKind::TcpClosed {
                conn,
                by,
                reason: "test".into(),
            },
        )
    }
    pub(crate) fn failed(&mut self, at: u64, conn: u64) -> &mut Self {
        self.accept(at, conn).tcp_closed(at, conn, Side::Device)
    }
    pub(crate) fn refused(&mut self, at: u64) -> &mut Self {
        self.push(
            at,
            EventKind::TcpRefused {
                peer: "127.0.0.1:40001".parse().expect("addr"),
                service: "http".into(),
            },
        )
    }
    pub(crate) fn abandoned(&mut self, at: u64, conn: u64, waited_ms: u64) -> &mut Self {
        self.push(at, EventKind::TcpAbandoned { conn, waited_ms })
    }
    pub(crate) fn ws_closed(
        &mut self,
        at: u64,
        conn: u64,
        by: Side,
        code: Option<u16>,
        clean: bool,
    ) -> &mut Self {
        self.push(
            at,
            EventKind::WsClosed {
                conn,
                by,
                code,
                reason: String::new(),
                clean,
            },
        )
        .tcp_closed(at, conn, by)
    }
    pub(crate) fn ping(&mut self, at: u64, conn: u64) -> &mut Self {
        self.push(
            at,
            EventKind::WsControl {
                conn,
                direction: Direction::In,
                frame: "ping".into(),
            },
        )
    }
    pub(crate) fn send(&mut self, at: u64, conn: u64, t: &str) -> &mut Self {
        self.push(
            at,
            EventKind::WsMessage {
                conn,
                direction: Direction::In,
                msg_type: Some(t.into()),
                bytes: 20,
                preview: format!(r#"{{"type":"{t}"}}"#),
                watched: Vec::new(),
            },
        )
    }
    /// An app message the device gave no label, meeting the watched payload matchers `watched`.
    pub(crate) fn send_unlabelled(&mut self, at: u64, conn: u64, watched: &[u16]) -> &mut Self {
        self.push(
            at,
            EventKind::WsMessage {
                conn,
                direction: Direction::In,
                msg_type: None,
                bytes: 20,
                preview: "LED=1".into(),
                watched: watched.to_vec(),
            },
        )
    }
    pub(crate) fn fault(
        &mut self,
        at: u64,
        conn: Option<u64>,
        rule: u64,
        fault: &str,
    ) -> &mut Self {
        self.push(
            at,
            EventKind::FaultApplied {
                conn,
                rule,
                fault: serde_json::from_str(fault).expect("fault json"),
                detail: "test".into(),
            },
        )
    }
    pub(crate) fn stop(&mut self, at: u64) -> &mut Self {
        self.push(at, EventKind::Stopping)
    }
}

/// The expectations of a YAML list.
pub(crate) fn expectations(yaml: &str) -> Vec<Expectation> {
    espsim_harness::yaml::parse(yaml, Path::new("expect.yaml")).expect("valid expectations")
}

/// The fault rules of a YAML list.
pub(crate) fn faults(yaml: &str) -> Vec<FaultRule> {
    espsim_harness::yaml::parse(yaml, Path::new("faults.yaml")).expect("valid faults")
}

/// The verdict on the one expectation in `expect` over `log`.
pub(crate) fn judge(expect: &str, rules: &[FaultRule], log: &Log) -> Outcome {
    let e = expectations(expect);
    assert_eq!(e.len(), 1, "one expectation per check");
    evaluate(&e, rules, &log.0).remove(0)
}

/// It held.
#[track_caller]
pub(crate) fn passes(o: &Outcome) {
    assert!(o.passed, "{} should pass: {}", o.name, o.message);
}

/// It held, saying `why`.
#[track_caller]
pub(crate) fn passes_saying(o: &Outcome, why: &str) {
    passes(o);
    assert!(
        o.message.contains(why),
        "message `{}` lacks `{why}`",
        o.message
    );
}

/// It failed, saying `why`.
#[track_caller]
pub(crate) fn fails(o: &Outcome, why: &str) {
    assert!(!o.passed, "{} should fail: {}", o.name, o.message);
    assert!(
        o.message.contains(why),
        "message `{}` lacks `{why}`",
        o.message
    );
}
