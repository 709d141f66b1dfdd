//! The bounds on rules: every extreme value is refused by validation with its bound in the
//! message, the rule count is capped, and the time arithmetic of the plan survives values that
//! never went through validation (the stream pump's counterpart is in the emulator's
//! `tests/faulty_stream.rs`).

use std::time::Duration;

use espsim_faults::limits::{MAX_DURATION, MAX_OBSERVED_EVENTS, MAX_RULES};
use espsim_faults::{
    AddError, ConnInfo, ConnRef, FaultPlan, FaultRule, PlanError, RuleId, Service,
};
use serde_json::json;

/// u64::MAX seconds: parses as a `Duration`, overflows any clock it is added to.
const HUGE: &str = "18446744073709551615s";

fn rule(v: serde_json::Value) -> FaultRule {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v} parses: {e}"))
}

/// Each rule from the issue (and one per other bounded field) with the text its error must
/// contain: the field and the bound.
fn extreme_rules() -> Vec<(serde_json::Value, &'static str)> {
    vec![
        (
            json!({ "when": { "at": HUGE }, "fault": "refuse" }),
            "`when.at` is",
        ),
        (
            json!({ "when": { "for": HUGE }, "fault": "refuse" }),
            "`when.for` is",
        ),
        (
            json!({ "fault": { "device": "reboot", "down": HUGE } }),
            "`down` is",
        ),
        (
            json!({ "fault": { "device": "ap_down", "for": HUGE } }),
            "`for` is",
        ),
        (
            json!({ "fault": { "stream": "reset_peer", "timeout": HUGE } }),
            "`timeout` is",
        ),
        (
            json!({ "fault": { "stream": "timeout", "timeout": HUGE } }),
            "`timeout` is",
        ),
        (
            json!({ "fault": { "stream": "latency", "latency": HUGE } }),
            "`latency` is",
        ),
        (
            json!({ "fault": { "stream": "latency", "latency": "1s", "jitter": HUGE } }),
            "`jitter` is",
        ),
        (
            json!({ "fault": { "stream": "slow_close", "delay": HUGE } }),
            "`delay` is",
        ),
        (
            json!({ "fault": { "stream": "slicer", "average_size": 1, "delay": HUGE } }),
            "`delay` is",
        ),
        (
            json!({ "fault": { "handshake": "delay", "delay": HUGE } }),
            "`delay` is",
        ),
        (
            json!({ "fault": { "ws": "delay", "delay": HUGE } }),
            "`delay` is",
        ),
        (
            json!({ "fault": { "dns": "delay", "delay": HUGE } }),
            "`delay` is",
        ),
        (
            json!({ "when": { "after": "go", "at": "24h 1s" }, "fault": { "device": "reboot", "down": "1s" } }),
            "`when.at` is 24h 1s; at most 24h",
        ),
    ]
}

fn oversized_rules() -> Vec<(serde_json::Value, &'static str)> {
    vec![
        (
            json!({ "fault": { "ws": "oversize", "bytes": 4_611_686_018_427_387_904_u64 } }),
            "`bytes` is 4611686018427387904; it must lie in 0-4194304",
        ),
        (
            json!({ "fault": { "ws": "oversize", "bytes": 1_u64 << 30 } }),
            "`bytes` is 1073741824; it must lie in 0-4194304",
        ),
        (
            json!({ "fault": { "handshake": "close", "at": "mid_response", "bytes": 1_000_000 } }),
            "it must lie in 0-4096",
        ),
        (
            json!({ "fault": { "stream": "slicer", "average_size": 1_u64 << 40 } }),
            "`average_size` is 1099511627776; it must lie in 1-65536",
        ),
        (
            json!({ "fault": { "stream": "slicer", "average_size": 8, "size_variation": 1_u64 << 40 } }),
            "it must lie in 0-65536",
        ),
        (
            json!({ "fault": { "stream": "bandwidth", "rate": u64::MAX } }),
            "`rate` is 18446744073709551615; it must lie in 1-10000000",
        ),
        (
            json!({ "fault": { "stream": "limit_data", "bytes": u64::MAX } }),
            "it must lie in 0-1099511627776",
        ),
        (
            json!({ "fault": { "device": "socket_exhaustion", "sockets": 1_u64 << 40 } }),
            "`sockets` is 1099511627776; it must lie in 1-1024",
        ),
        (
            json!({ "when": { "connections": "1-18446744073709551615" }, "fault": "stall" }),
            "counts lie in 1-1000000000",
        ),
        (
            json!({ "when": { "messages": "5000000000-" }, "fault": { "ws": "garbage" } }),
            "counts lie in 1-1000000000",
        ),
        (
            json!({ "when": { "bytes": "2000000000000-" }, "fault": { "ws": "garbage" } }),
            "counts lie in 1-1099511627776",
        ),
        (
            json!({ "when": { "every": u64::MAX }, "fault": "stall" }),
            "it must lie in 1-1000000000",
        ),
        (
            json!({ "name": "n".repeat(300), "fault": "stall" }),
            "`name` is 300 bytes long; at most 256 bytes",
        ),
        (
            json!({ "when": { "name": "*".repeat(10_000) }, "fault": { "dns": "nxdomain" } }),
            "`when.name` is 10000 bytes long; at most 256 bytes",
        ),
        (
            json!({ "fault": { "handshake": "status", "code": 503, "body": "x".repeat(20_000) } }),
            "`body` is 20000 bytes; at most 16384 bytes",
        ),
    ]
}

#[test]
fn extreme_values_are_refused_with_their_bound() {
    for (v, field) in extreme_rules().into_iter().chain(oversized_rules()) {
        let r = rule(v.clone());
        let err = r.validate().expect_err("refused").to_string();
        assert!(err.contains(field), "{v}: {err}");
        if field.ends_with(" is") {
            assert!(
                err.contains("at most 24h"),
                "{v}: the bound is named: {err}"
            );
        }
        // The plan (scenario files, `espsim validate`) and run-time adds refuse it the same way.
        let plan_err = FaultPlan::new(vec![r.clone()], Some(1)).expect_err("plan refuses");
        let cause = std::error::Error::source(&plan_err).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some(err.as_str()), "{v}");
        let plan = FaultPlan::empty(Some(1));
        assert!(matches!(plan.add(r), Err(AddError::Invalid(_))), "{v}");
        assert!(plan.rules().is_empty());
    }
}

#[test]
fn the_bounds_themselves_are_accepted() {
    let at_bounds = [
        json!({ "when": { "at": "24h", "for": "24h" }, "fault": "refuse" }),
        json!({ "when": { "after": "go", "at": "24h" }, "fault": { "device": "reboot", "down": "24h" } }),
        json!({ "fault": { "device": "ap_down", "for": "24h" } }),
        json!({ "fault": { "stream": "latency", "latency": "24h", "jitter": "24h" } }),
        json!({ "fault": { "stream": "reset_peer", "timeout": "24h" } }),
        json!({ "fault": { "ws": "oversize", "bytes": 4 * 1024 * 1024 } }),
        json!({ "when": { "connections": "1000000000", "every": 1_000_000_000 }, "fault": "stall" }),
        json!({ "fault": { "device": "socket_exhaustion", "sockets": 1024 } }),
        json!({ "fault": { "stream": "bandwidth", "rate": 10_000_000 } }),
    ];
    for v in at_bounds {
        rule(v.clone())
            .validate()
            .unwrap_or_else(|e| panic!("{v}: {e}"));
    }
    assert_eq!(MAX_DURATION, Duration::from_secs(86_400));
}

#[test]
fn a_plan_holds_at_most_max_rules() {
    let one = || rule(json!({ "when": { "name": "a.example" }, "fault": { "dns": "nxdomain" } }));
    let err = FaultPlan::new(vec![one(); MAX_RULES + 1], Some(1)).expect_err("too many");
    assert_eq!(
        err,
        PlanError::TooMany {
            rules: MAX_RULES + 1,
            limit: MAX_RULES
        }
    );
    assert_eq!(
        err.to_string(),
        "1001 fault rules; a plan holds at most 1000"
    );

    let plan = FaultPlan::new(vec![one(); MAX_RULES - 2], Some(1)).expect("at the limit");
    // A list that does not fit adds nothing.
    let err = plan.add_all(vec![one(); 3]).expect_err("list too long");
    assert_eq!(
        err,
        AddError::TooMany {
            rules: MAX_RULES - 2,
            adding: 3,
            limit: MAX_RULES
        }
    );
    assert!(err.to_string().contains("limit of 1000"), "{err}");
    assert_eq!(plan.rules().len(), MAX_RULES - 2);
    let ids = plan.add_all(vec![one(); 2]).expect("fits");
    assert_eq!(ids, [RuleId(999), RuleId(1000)]);
    assert!(matches!(
        plan.add(one()),
        Err(AddError::TooMany { rules: 1000, .. })
    ));
    // Removing one makes room again.
    assert!(plan.remove(RuleId(1)).is_some());
    assert_eq!(plan.add(one()), Ok(RuleId(1001)));
    // An invalid rule in a list names its position, and nothing is added.
    plan.reset();
    let bad = rule(json!({ "when": { "at": HUGE }, "fault": "refuse" }));
    let err = plan.add_all(vec![one(), bad]).expect_err("invalid");
    assert!(
        matches!(err, AddError::InvalidInList { index: 1, .. }),
        "{err}"
    );
    assert!(plan.rules().is_empty());
}

#[test]
fn plan_time_arithmetic_saturates_for_events_seen_at_the_end_of_time() {
    // `observe` takes any elapsed time: a window counted from it must not overflow.
    let plan = FaultPlan::new(
        vec![
            rule(json!({ "when": { "after": "late", "at": "24h", "for": "24h" }, "fault": "refuse" })),
            rule(json!({ "when": { "after": "late", "at": "1s" }, "fault": { "device": "reboot", "down": "24h" } })),
            rule(json!({ "when": { "after": "late" }, "fault": { "device": "ap_down", "for": "24h" } })),
        ],
        Some(1),
    )
    .expect("plan");
    let end = Duration::MAX - Duration::from_secs(2);
    plan.observe("late", end);
    // The reboot starts (end + 1s) but its end is past the clock: it does not end.
    let timeline = plan.device_timeline();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    assert!(timeline.iter().all(|w| w.end.is_none()), "{timeline:?}");
    // The refuse window starts past the clock: it never opens.
    assert!(plan.refusing(Service::Http, Duration::MAX).is_none());
    // A boundary is never further than 24 h away, so it can be added to a clock reading.
    let at = Duration::from_secs(5);
    plan.observe("never-mind", at);
    assert!(
        plan.next_boundary(at)
            .is_some_and(|b| b <= at + MAX_DURATION)
    );
    assert_eq!(plan.next_boundary(end), Some(end + Duration::from_secs(1)));
}

#[test]
fn next_boundary_reports_far_windows_as_at_most_a_day_away() {
    let plan = FaultPlan::new(
        vec![rule(
            json!({ "when": { "at": "24h", "for": "24h" }, "fault": "refuse" }),
        )],
        Some(1),
    )
    .expect("plan");
    assert_eq!(
        plan.next_boundary(Duration::from_secs(1)),
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        plan.next_boundary(Duration::from_secs(86_400)),
        Some(Duration::from_secs(2 * 86_400))
    );
    assert_eq!(plan.next_boundary(Duration::from_secs(2 * 86_400)), None);
}

#[test]
fn connection_ordinals_and_services_key_the_stream_seed() {
    let plan = FaultPlan::new(
        vec![rule(
            json!({ "fault": { "stream": "latency", "latency": "1ms" } }),
        )],
        Some(9),
    )
    .expect("plan");
    let seed = |service, ordinal| {
        plan.stream_faults(ConnInfo {
            conn: ConnRef { service, ordinal },
            elapsed: Duration::ZERO,
        })
        .seed
    };
    let first = seed(Service::Http, 1);
    assert_eq!(seed(Service::Http, 1), first, "asked again: the same seed");
    assert_ne!(seed(Service::Http, 2), first);
    assert_ne!(seed(Service::Https, 1), first);
}

#[test]
fn the_events_a_plan_remembers_are_bounded() {
    let plan = FaultPlan::new(
        vec![rule(json!({ "when": { "after": "provision" }, "fault": { "device": "internet", "mode": "offline" } }))],
        Some(1),
    )
    .expect("plan");
    // An app sending a new message type every time.
    for i in 0..MAX_OBSERVED_EVENTS + 500 {
        plan.observe(&format!("type{i}"), Duration::from_millis(i as u64));
    }
    plan.observe(&"x".repeat(300), Duration::ZERO);
    // A name a rule waits for is still kept once the memory is full.
    plan.observe("provision", Duration::from_secs(9));
    let armed = |after: &str| {
        let p = plan.clone();
        let id = p
            .add(rule(json!({ "when": { "after": after }, "fault": { "device": "ap_down", "for": "1s" } })))
            .expect("added");
        let armed = p.device_timeline().iter().any(|w| w.rule == id);
        p.remove(id);
        armed
    };
    assert!(plan.device_timeline().iter().any(|w| w.rule == RuleId(1)));
    assert!(armed("type10"), "remembered before the memory was full");
    assert!(
        !armed(&format!("type{}", MAX_OBSERVED_EVENTS + 100)),
        "not kept: nobody waited"
    );
}

#[test]
fn a_suppress_pong_messages_pattern_is_bounded_like_other_patterns() {
    let long = "p".repeat(espsim_faults::limits::MAX_TEXT_BYTES + 1);
    let rule: espsim_faults::FaultRule = serde_json::from_value(serde_json::json!(
        { "fault": { "ws": "suppress_pong", "messages": long } }
    ))
    .expect("parses");
    let err = rule.validate().expect_err("too long").to_string();
    assert!(err.contains("messages"), "{err}");
    let ok: espsim_faults::FaultRule = serde_json::from_value(serde_json::json!(
        { "fault": { "ws": "suppress_pong", "messages": "pong" } }
    ))
    .expect("parses");
    ok.validate().expect("a short pattern is fine");
}
