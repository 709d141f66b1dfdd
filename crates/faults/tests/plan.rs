//! The plan's decisions: triggers, windows, counts, events, seeded probability, the device
//! timeline, validation and run-time changes.

use std::time::Duration;

use espsim_faults::message::Payload;
use espsim_faults::{
    ConnInfo, ConnRef, ConnectFault, DeviceFault, DnsFault, DnsInfo, FaultPlan, FaultRule,
    FrameKind, HandshakeFault, HandshakeInfo, MessageDirection, MessageInfo, RuleId, SeenMessage,
    Service, WsFault,
};
use proptest::prelude::*;
use serde_json::json;

fn rules(v: serde_json::Value) -> Vec<FaultRule> {
    serde_json::from_value(v).expect("rules")
}

fn plan(v: serde_json::Value) -> FaultPlan {
    FaultPlan::new(rules(v), Some(7)).expect("plan")
}

fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

fn conn(ordinal: u64) -> ConnRef {
    ConnRef {
        service: Service::Http,
        ordinal,
    }
}

fn hs(p: &FaultPlan, ordinal: u64, at: f64) -> Option<HandshakeFault> {
    p.on_handshake(HandshakeInfo {
        conn: conn(ordinal),
        elapsed: s(at),
        host: Some("192.168.4.1"),
        path: "/ws",
    })
    .map(|a| a.fault)
}

fn msg(
    p: &FaultPlan,
    ordinal: u64,
    dir: MessageDirection,
    kind: FrameKind,
    n: u64,
) -> Option<WsFault> {
    p.on_ws_message(MessageInfo {
        conn: conn(ordinal),
        elapsed: s(1.0),
        direction: dir,
        kind,
        message: Some(&SeenMessage::new(
            Some("telemetry"),
            Payload::Text(r#"{"type":"telemetry"}"#),
        )),
        messages: n,
        bytes: n * 10,
    })
    .map(|a| a.fault)
}

#[test]
fn connection_ranges_pick_the_nth_attempts() {
    let p = plan(json!([
        { "when": { "connections": "1-2" }, "fault": { "handshake": "reset", "at": "after_request" } },
        { "when": { "connections": "4-" }, "fault": { "handshake": "status", "code": 503 } }
    ]));
    let got: Vec<&str> = (1..=5)
        .map(|n| match hs(&p, n, 0.0) {
            Some(HandshakeFault::Reset(_)) => "reset",
            Some(HandshakeFault::Status(_)) => "503",
            None => "ok",
            Some(_) => "other",
        })
        .collect();
    assert_eq!(got, ["reset", "reset", "ok", "503", "503"]);
}

#[test]
fn refuse_window_opens_and_closes_on_time() {
    let p = plan(json!([{ "when": { "at": "20s", "for": "5s" }, "fault": "refuse" }]));
    assert!(p.refusing(Service::Http, s(19.999)).is_none());
    let a = p.refusing(Service::Http, s(20.0)).expect("refusing at 20s");
    assert_eq!(a.fault, ConnectFault::Refuse);
    assert_eq!(a.rule, RuleId(1));
    assert_eq!(a.until, Some(s(25.0)));
    assert!(p.refusing(Service::Http, s(24.9)).is_some());
    assert!(p.refusing(Service::Http, s(25.0)).is_none());
    assert_eq!(p.next_boundary(s(0.0)), Some(s(20.0)));
    assert_eq!(p.next_boundary(s(20.0)), Some(s(25.0)));
    assert_eq!(p.next_boundary(s(25.0)), None);
    // refuse is not a per-connection decision.
    assert!(
        p.on_connect(ConnInfo {
            conn: conn(1),
            elapsed: s(21.0)
        })
        .is_none()
    );
}

#[test]
fn service_restricts_connect_faults() {
    let p = plan(json!([{ "when": { "service": "https" }, "fault": "reset_on_accept" }]));
    assert!(
        p.on_connect(ConnInfo {
            conn: conn(1),
            elapsed: s(0.0)
        })
        .is_none()
    );
    let https = ConnRef {
        service: Service::Https,
        ordinal: 1,
    };
    assert_eq!(
        p.on_connect(ConnInfo {
            conn: https,
            elapsed: s(0.0)
        })
        .map(|a| a.fault),
        Some(ConnectFault::ResetOnAccept)
    );
}

#[test]
fn stall_reports_when_its_window_ends() {
    let p = plan(json!([{ "when": { "at": "1s", "for": "4s" }, "fault": "stall" }]));
    let a = p
        .on_connect(ConnInfo {
            conn: conn(1),
            elapsed: s(2.0),
        })
        .expect("stall");
    assert_eq!((a.fault, a.until), (ConnectFault::Stall, Some(s(5.0))));
}

#[test]
fn every_fires_on_each_nth_match() {
    let p = plan(json!([{ "when": { "every": 3 }, "fault": "close_on_accept" }]));
    let hits: Vec<u64> = (1..=9)
        .filter(|&n| {
            p.on_connect(ConnInfo {
                conn: conn(n),
                elapsed: s(0.0),
            })
            .is_some()
        })
        .collect();
    assert_eq!(hits, [3, 6, 9]);
}

#[test]
fn after_arms_a_rule_and_at_counts_from_the_event() {
    let p = plan(json!([
        { "when": { "after": "provision", "at": "2s" }, "fault": { "ws": "close", "code": 1001 } }
    ]));
    let tick = |ordinal, at| {
        p.on_ws_tick(ConnInfo {
            conn: conn(ordinal),
            elapsed: s(at),
        })
    };
    assert!(tick(1, 100.0).is_none(), "not armed before the event");
    let changes = p.changes();
    p.observe("provision", s(10.0));
    assert!(
        changes.has_changed().expect("plan alive"),
        "observe notifies"
    );
    p.observe("provision", s(50.0)); // only the first observation counts
    assert!(tick(1, 11.9).is_none());
    let a = tick(1, 12.0).expect("fires 2s after the event");
    assert!(matches!(a.fault, WsFault::Close(ref c) if c.code == 1001));
    assert!(tick(1, 13.0).is_none(), "once per connection");
    assert!(tick(2, 13.0).is_some(), "another connection gets it too");
    p.connection_closed(conn(1));
    assert!(tick(1, 14.0).is_some(), "state forgotten after close");
    assert_eq!(p.next_boundary(s(0.0)), Some(s(12.0)));
}

#[test]
fn message_faults_follow_direction_count_and_kind() {
    let p = plan(json!([
        { "when": { "messages": 3 }, "fault": { "ws": "drop" } },
        { "fault": { "ws": "suppress_pong" } },
        { "when": { "messages": "5-", "message_type": "tele*" }, "fault": { "ws": "duplicate", "direction": "in" } }
    ]));
    use FrameKind::*;
    use MessageDirection::*;
    assert_eq!(msg(&p, 1, Out, Text, 2), None);
    assert_eq!(msg(&p, 1, Out, Text, 3).map(|f| f.name()), Some("drop"));
    assert_eq!(
        msg(&p, 1, In, Text, 3),
        None,
        "drop defaults to device → app"
    );
    assert_eq!(
        msg(&p, 1, In, Ping, 4),
        Some(WsFault::SuppressPong(Default::default()))
    );
    assert_eq!(msg(&p, 1, Out, Ping, 4), None);
    assert_eq!(msg(&p, 1, In, Text, 6).map(|f| f.name()), Some("duplicate"));
    assert_eq!(msg(&p, 1, In, Pong, 7), None);
}

#[test]
fn message_triggered_actions_fire_once_per_connection() {
    let p =
        plan(json!([{ "when": { "bytes": "100-" }, "fault": { "ws": "corrupt", "kind": "rsv" } }]));
    use FrameKind::*;
    use MessageDirection::*;
    assert_eq!(msg(&p, 1, Out, Text, 9), None);
    assert_eq!(msg(&p, 1, Out, Text, 10).map(|f| f.name()), Some("corrupt"));
    assert_eq!(msg(&p, 1, In, Text, 11), None);
    // Actions with message conditions are not time-driven.
    assert!(
        p.on_ws_tick(ConnInfo {
            conn: conn(2),
            elapsed: s(1.0)
        })
        .is_none()
    );
}

#[test]
fn dns_faults_match_name_patterns_and_types() {
    let p = plan(json!([
        { "when": { "name": "*.gstatic.com" }, "fault": { "dns": "nxdomain" } },
        { "when": { "name": "captive.apple.com", "qtype": "AAAA" }, "fault": { "dns": "no_reply" } },
        { "when": { "at": "10s" }, "fault": { "dns": "wrong_address", "ip": "10.0.0.9" } }
    ]));
    let q = |name, qtype, at| {
        p.on_dns(DnsInfo {
            name,
            qtype,
            elapsed: s(at),
        })
        .map(|a| a.fault)
    };
    assert_eq!(
        q("connectivitycheck.gstatic.com.", "A", 0.0),
        Some(DnsFault::Nxdomain)
    );
    assert_eq!(q("captive.apple.com", "A", 0.0), None);
    assert_eq!(q("captive.apple.com", "aaaa", 0.0), Some(DnsFault::NoReply));
    assert!(matches!(
        q("example.org", "A", 10.0),
        Some(DnsFault::WrongAddress(_))
    ));
}

#[test]
fn device_timeline_places_each_fault() {
    let p = plan(json!([
        { "when": { "at": "30s" }, "fault": { "device": "reboot", "down": "5s" } },
        { "when": { "at": "10s", "for": "20s" }, "fault": { "device": "internet", "mode": "offline" } },
        { "when": { "after": "provision" }, "fault": { "device": "ap_down", "for": "3s" } }
    ]));
    let tl = p.device_timeline();
    let spans: Vec<_> = tl.iter().map(|w| (w.rule.0, w.start, w.end)).collect();
    assert_eq!(
        spans,
        [(2, s(10.0), Some(s(30.0))), (1, s(30.0), Some(s(35.0)))]
    );
    p.observe("provision", s(40.0));
    let active = p.device_faults_at(s(41.0));
    assert_eq!(active.len(), 1);
    assert!(matches!(active[0].fault, DeviceFault::ApDown(_)));
    assert!(p.device_faults_at(s(35.0)).is_empty());
    assert_eq!(p.device_faults_at(s(32.0)).len(), 1);
}

#[test]
fn stream_faults_collect_every_matching_rule() {
    let p = plan(json!([
        { "fault": { "stream": "latency", "latency": "100ms" } },
        { "when": { "connections": 2 }, "fault": { "stream": "limit_data", "bytes": 10 } },
        { "fault": "stall" }
    ]));
    let one = p.stream_faults(ConnInfo {
        conn: conn(1),
        elapsed: s(0.0),
    });
    let two = p.stream_faults(ConnInfo {
        conn: conn(2),
        elapsed: s(0.0),
    });
    assert_eq!(one.faults.len(), 1);
    assert_eq!(
        two.faults
            .iter()
            .map(|a| a.fault.name())
            .collect::<Vec<_>>(),
        ["latency", "limit_data"]
    );
    assert_ne!(one.seed, two.seed, "each connection gets its own seed");
}

#[test]
fn invalid_rules_are_rejected_with_a_hint() {
    let cases = [
        (
            json!([{ "when": { "connections": 1 }, "fault": "refuse" }]),
            "fault rule 0",
            "refuse: `connections` does not apply here (refuse closes the listener for a time window",
        ),
        (
            json!([{ "fault": "stall" }, { "when": { "messages": 3 }, "fault": { "dns": "nxdomain" } }]),
            "fault rule 1",
            "dns: nxdomain: `messages` does not apply here",
        ),
        (
            json!([{ "when": { "for": "5s" }, "fault": { "device": "reboot", "down": "1s" } }]),
            "fault rule 0",
            "their length is the fault's own `down`/`for`",
        ),
        (
            json!([{ "when": { "every": 0 }, "fault": "stall" }]),
            "fault rule 0",
            "`every` must be at least 1",
        ),
        (
            json!([{ "when": { "service": "dns" }, "fault": "stall" }]),
            "fault rule 0",
            "`service: dns`",
        ),
    ];
    for (input, outer, inner) in cases {
        let err = FaultPlan::new(rules(input.clone()), None).expect_err("invalid");
        assert_eq!(err.to_string(), outer, "{input}");
        let source = std::error::Error::source(&err).expect("cause").to_string();
        assert!(source.contains(inner), "{input}: {source}");
    }
}

#[test]
fn rules_change_at_run_time_with_stable_ids() {
    let p = plan(json!([{ "fault": "stall" }, { "fault": { "dns": "servfail" } }]));
    let changes = p.changes();
    let id = p
        .add(serde_json::from_value(json!({ "fault": { "dns": "refused" } })).expect("rule"))
        .expect("add");
    assert_eq!(id, RuleId(3));
    assert!(changes.has_changed().expect("alive"));
    assert!(p.remove(RuleId(1)).is_some());
    assert!(p.remove(RuleId(1)).is_none());
    let ids: Vec<u64> = p.rules().iter().map(|r| r.id.0).collect();
    assert_eq!(ids, [2, 3]);
    assert_eq!(
        serde_json::to_value(&p.rules()[0]).expect("json"),
        json!({ "id": 2, "when": {}, "fault": { "dns": "servfail" } })
    );
    let bad: FaultRule =
        serde_json::from_value(json!({ "when": { "connections": 1 }, "fault": "refuse" }))
            .expect("rule");
    assert!(p.add(bad).is_err());
    p.reset();
    assert!(p.rules().is_empty());
    let id = p
        .add(serde_json::from_value(json!({ "fault": "stall" })).expect("rule"))
        .expect("add");
    assert_eq!(id, RuleId(4), "ids are never reused");
}

#[test]
fn a_seed_is_always_reported() {
    let a = FaultPlan::new(vec![], None).expect("plan");
    let b = FaultPlan::new(vec![], None).expect("plan");
    assert_ne!(a.seed(), b.seed(), "random seeds differ");
    assert_eq!(FaultPlan::new(vec![], Some(42)).expect("plan").seed(), 42);
}

fn coin_flips(seed: u64, n: u64) -> Vec<bool> {
    let p = FaultPlan::new(
        rules(json!([{ "when": { "probability": 0.5 }, "fault": "reset_on_accept" }])),
        Some(seed),
    )
    .expect("plan");
    (1..=n)
        .map(|i| {
            p.on_connect(ConnInfo {
                conn: conn(i),
                elapsed: s(0.0),
            })
            .is_some()
        })
        .collect()
}

#[test]
fn probability_is_really_random_and_seeded() {
    let a = coin_flips(1, 200);
    assert_eq!(a, coin_flips(1, 200), "same seed, same flips");
    assert_ne!(a, coin_flips(2, 200), "another seed, other flips");
    let hits = a.iter().filter(|h| **h).count();
    assert!((60..=140).contains(&hits), "about half of 200 hit: {hits}");
}

/// One question to the plan, generated by proptest.
#[derive(Debug, Clone)]
enum Call {
    Connect(u64, u64),
    Stream(u64, u64),
    Handshake(u64, u64),
    Message(u64, u64, bool),
    Dns(u8, u64),
    Observe(u64),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        (1..20u64, 0..60_000u64).prop_map(|(n, t)| Call::Connect(n, t)),
        (1..20u64, 0..60_000u64).prop_map(|(n, t)| Call::Stream(n, t)),
        (1..20u64, 0..60_000u64).prop_map(|(n, t)| Call::Handshake(n, t)),
        (1..5u64, 1..50u64, any::<bool>()).prop_map(|(c, n, d)| Call::Message(c, n, d)),
        (0..3u8, 0..60_000u64).prop_map(|(n, t)| Call::Dns(n, t)),
        (0..60_000u64).prop_map(Call::Observe),
    ]
}

fn run(seed: u64, calls: &[Call]) -> Vec<String> {
    let p = FaultPlan::new(
        rules(json!([
            { "when": { "probability": 0.3 }, "fault": "reset_on_accept" },
            { "when": { "every": 2, "probability": 0.5 }, "fault": "stall" },
            { "when": { "probability": 0.5 }, "fault": { "stream": "latency", "latency": "10ms", "jitter": "5ms" } },
            { "when": { "probability": 0.7, "connections": "3-" }, "fault": { "stream": "slicer", "average_size": 4 } },
            { "when": { "probability": 0.4, "at": "10s" }, "fault": { "handshake": "status", "code": 503 } },
            { "when": { "probability": 0.5, "after": "provision" }, "fault": { "ws": "drop" } },
            { "when": { "probability": 0.2 }, "fault": { "ws": "garbage" } },
            { "when": { "probability": 0.5, "name": "*.gstatic.com" }, "fault": { "dns": "servfail" } }
        ])),
        Some(seed),
    )
    .expect("plan");
    let names = [
        "connectivitycheck.gstatic.com",
        "captive.apple.com",
        "www.gstatic.com",
    ];
    calls
        .iter()
        .map(|c| match *c {
            Call::Connect(n, t) => format!(
                "{:?}",
                p.on_connect(ConnInfo {
                    conn: conn(n),
                    elapsed: Duration::from_millis(t)
                })
            ),
            Call::Stream(n, t) => format!(
                "{:?}",
                p.stream_faults(ConnInfo {
                    conn: conn(n),
                    elapsed: Duration::from_millis(t)
                })
            ),
            Call::Handshake(n, t) => format!("{:?}", hs(&p, n, t as f64 / 1000.0)),
            Call::Message(c, n, out) => format!(
                "{:?}",
                msg(
                    &p,
                    c,
                    if out {
                        MessageDirection::Out
                    } else {
                        MessageDirection::In
                    },
                    FrameKind::Text,
                    n
                )
            ),
            Call::Dns(i, t) => format!(
                "{:?}",
                p.on_dns(DnsInfo {
                    name: names[usize::from(i)],
                    qtype: "A",
                    elapsed: Duration::from_millis(t)
                })
            ),
            Call::Observe(t) => {
                p.observe("provision", Duration::from_millis(t));
                String::new()
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn same_seed_and_calls_give_same_decisions(seed in any::<u64>(), calls in prop::collection::vec(call(), 0..200)) {
        prop_assert_eq!(run(seed, &calls), run(seed, &calls));
    }
}

#[test]
fn plan_is_shareable_across_tasks() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<FaultPlan>();
    let p = plan(json!([{ "fault": "stall" }]));
    let q = p.clone();
    q.reset();
    assert!(p.rules().is_empty(), "clones share one plan");
}

/// The WebSocket decisions for connection `ws_conn`'s messages 1..=40, asking `between(i)`
/// before each one (unrelated questions other services would ask meanwhile).
fn ws_decisions(
    p: &FaultPlan,
    ws_conn: u64,
    mut between: impl FnMut(u64),
) -> Vec<Option<&'static str>> {
    (1..=40)
        .map(|n| {
            between(n);
            p.on_ws_message(MessageInfo {
                conn: conn(ws_conn),
                elapsed: s(1.0),
                direction: MessageDirection::Out,
                kind: FrameKind::Text,
                message: Some(&SeenMessage::new(
                    Some("pong"),
                    Payload::Text(r#"{"type":"pong"}"#),
                )),
                messages: n,
                bytes: n * 10,
            })
            .map(|a| a.fault.name())
        })
        .collect()
}

fn seeded_rules() -> serde_json::Value {
    json!([
        { "when": { "probability": 0.5, "name": "*.example.com" }, "fault": { "dns": "nxdomain" } },
        { "when": { "probability": 0.5 }, "fault": { "stream": "latency", "latency": "1ms" } },
        { "when": { "probability": 0.3 }, "fault": { "handshake": "status", "code": 503 } },
        { "when": { "probability": 0.5 }, "fault": { "ws": "duplicate" } },
        { "when": { "probability": 0.2 }, "fault": { "ws": "drop" } }
    ])
}

#[test]
fn a_seed_means_the_same_faults_whatever_other_services_ask_in_between() {
    let quiet = plan(seeded_rules());
    let alone = ws_decisions(&quiet, 1, |_| {});

    let busy = plan(seeded_rules());
    // Background DNS lookups, connectivity checks and another app's WebSocket in between.
    let with_traffic = ws_decisions(&busy, 1, |n| {
        for q in 0..n % 3 + 1 {
            busy.on_dns(DnsInfo {
                name: &format!("host{q}.example.com"),
                qtype: "A",
                elapsed: s(1.0),
            });
        }
        let info = ConnInfo {
            conn: conn(100 + n),
            elapsed: s(1.0),
        };
        busy.on_connect(info);
        busy.stream_faults(info);
        hs(&busy, 100 + n, 1.0);
        msg(&busy, 2, MessageDirection::In, FrameKind::Text, n);
    });
    assert_eq!(alone, with_traffic);
    for kind in [Some("duplicate"), Some("drop"), None] {
        assert!(
            alone.contains(&kind),
            "{kind:?} decided at least once: {alone:?}"
        );
    }

    // The same for DNS: a rule's n-th matching query gets the same answer whatever else was
    // asked (WebSocket traffic, queries for names it does not match).
    let dns = |p: &FaultPlan, noise: bool| -> Vec<bool> {
        (0..40)
            .map(|i| {
                if noise {
                    msg(p, 3, MessageDirection::Out, FrameKind::Text, i + 1);
                    p.on_dns(DnsInfo {
                        name: "captive.apple.com",
                        qtype: "A",
                        elapsed: s(1.0),
                    });
                }
                p.on_dns(DnsInfo {
                    name: "app.example.com",
                    qtype: "A",
                    elapsed: s(1.0),
                })
                .is_some()
            })
            .collect()
    };
    let a = dns(&plan(seeded_rules()), false);
    assert_eq!(a, dns(&plan(seeded_rules()), true));
    assert!(a.contains(&true) && a.contains(&false), "{a:?}");
}

#[test]
fn connection_n_gets_the_same_handshake_fault_whatever_came_before() {
    let decide = |p: &FaultPlan, order: &[u64]| -> Vec<(u64, bool)> {
        let mut out: Vec<(u64, bool)> = order
            .iter()
            .map(|&n| (n, hs(p, n, 1.0).is_some()))
            .collect();
        out.sort_unstable();
        out
    };
    let forward: Vec<u64> = (1..=30).collect();
    let backward: Vec<u64> = (1..=30).rev().collect();
    let a = decide(&plan(seeded_rules()), &forward);
    assert_eq!(a, decide(&plan(seeded_rules()), &backward));
    assert!(
        a.iter().any(|(_, f)| *f) && a.iter().any(|(_, f)| !*f),
        "{a:?}"
    );
}

#[test]
fn a_deferred_clock_opens_no_time_window_until_it_starts() {
    let p = plan(json!([
        { "when": { "at": "5s", "for": "2s" }, "fault": "refuse" },
        { "when": { "at": "1s" }, "fault": { "device": "reboot", "down": "3s" } },
        { "fault": { "device": "ap_down", "for": "1s" } },
        { "fault": { "handshake": "status", "code": 503 } }
    ]));
    p.defer_clock();
    assert_eq!(p.clock_origin(), None);
    assert!(p.refusing(Service::Http, s(6.0)).is_none(), "no window yet");
    assert!(p.device_timeline().is_empty(), "device faults wait too");
    assert_eq!(p.next_boundary(s(0.0)), None, "nothing scheduled");
    assert!(
        matches!(hs(&p, 1, 6.0), Some(HandshakeFault::Status(_))),
        "a rule without at/for holds whatever the clock"
    );

    let changes = p.changes();
    assert!(p.start_clock(s(100.0)));
    assert!(changes.has_changed().expect("plan alive"), "start notifies");
    assert!(!p.start_clock(s(200.0)), "only the first start counts");
    assert_eq!(p.clock_origin(), Some(s(100.0)));
    assert!(p.refusing(Service::Http, s(104.999)).is_none());
    let a = p.refusing(Service::Http, s(105.0)).expect("origin + 5s");
    assert_eq!(a.until, Some(s(107.0)));
    assert!(p.refusing(Service::Http, s(107.0)).is_none());
    let spans: Vec<_> = p
        .device_timeline()
        .iter()
        .map(|w| (w.rule.0, w.start, w.end))
        .collect();
    assert_eq!(
        spans,
        [(3, s(100.0), Some(s(101.0))), (2, s(101.0), Some(s(104.0)))],
        "a device fault without `at` starts with the clock"
    );
    assert_eq!(p.next_boundary(s(100.0)), Some(s(101.0)));
}

#[test]
fn after_windows_count_from_their_event_whatever_the_clock() {
    let p = plan(json!([
        { "when": { "after": "provision", "at": "2s" }, "fault": "refuse" }
    ]));
    p.defer_clock();
    p.observe("provision", s(10.0));
    assert!(
        p.refusing(Service::Http, s(12.0)).is_some(),
        "armed by its event"
    );
    p.start_clock(s(50.0));
    assert!(
        p.refusing(Service::Http, s(51.0)).is_some(),
        "still from the event"
    );
}
