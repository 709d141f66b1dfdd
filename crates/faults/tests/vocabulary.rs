//! The written forms of every fault and trigger: what parses, what it serializes back to, and
//! the errors users get for the usual mistakes.

use espsim_faults::{
    ConnectFault, CountRange, CutPoint, Fault, FaultRule, HandshakeFault, StreamDirection,
    StreamFault, When,
};
use serde_json::{Value, json};

fn parse(v: Value) -> Fault {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v} should parse: {e}"))
}

fn parse_err(v: Value) -> String {
    match serde_json::from_str::<Fault>(&v.to_string()) {
        Ok(f) => panic!("{v} should be rejected, got {f:?}"),
        Err(e) => e.to_string(),
    }
}

/// Every fault in its written form, and the canonical form it serializes to.
fn every_fault() -> Vec<(Value, Value)> {
    let same = |v: Value| (v.clone(), v);
    vec![
        same(json!("refuse")),
        same(json!("reset_on_accept")),
        same(json!("close_on_accept")),
        same(json!("stall")),
        (json!({ "connect": "stall" }), json!("stall")),
        same(json!({ "handshake": "reset", "at": "after_request" })),
        same(json!({ "handshake": "close", "at": "mid_response", "bytes": 20 })),
        same(json!({ "handshake": "status", "code": 503 })),
        same(json!({ "handshake": "status", "code": 426, "body": "Upgrade Required" })),
        same(json!({ "handshake": "bad_accept" })),
        same(json!({ "handshake": "missing_upgrade_header" })),
        same(json!({ "handshake": "delay", "delay": "2s" })),
        same(json!({ "handshake": "silent_close" })),
        (
            json!({ "stream": "latency", "latency": "250ms" }),
            json!({ "stream": "latency", "latency": "250ms", "jitter": "0s", "direction": "downstream" }),
        ),
        same(
            json!({ "stream": "latency", "latency": "1s 500ms", "jitter": "50ms", "direction": "both" }),
        ),
        same(json!({ "stream": "bandwidth", "rate": 10, "direction": "upstream" })),
        same(
            json!({ "stream": "slicer", "average_size": 64, "size_variation": 16, "delay": "10ms", "direction": "downstream" }),
        ),
        same(json!({ "stream": "limit_data", "bytes": 1000, "direction": "both" })),
        same(json!({ "stream": "reset_peer", "timeout": "30s" })),
        (
            json!({ "stream": "timeout", "timeout": 0 }),
            json!({ "stream": "timeout", "timeout": "0s" }),
        ),
        same(json!({ "stream": "slow_close", "delay": "3s" })),
        same(json!({ "stream": "half_open" })),
        (
            json!({ "ws": "close", "code": 1001 }),
            json!({ "ws": "close", "code": 1001, "reason": "", "echo": true }),
        ),
        same(json!({ "ws": "close", "code": 4000, "reason": "bye", "echo": false })),
        (
            json!({ "ws": "drop" }),
            json!({ "ws": "drop", "direction": "out" }),
        ),
        same(json!({ "ws": "duplicate", "direction": "in" })),
        (
            json!({ "ws": "delay", "delay": "2s" }),
            json!({ "ws": "delay", "delay": "2s", "direction": "out" }),
        ),
        same(json!({ "ws": "suppress_pong" })),
        same(json!({ "ws": "corrupt", "kind": "opcode" })),
        same(json!({ "ws": "corrupt", "kind": "rsv" })),
        same(json!({ "ws": "corrupt", "kind": "utf8" })),
        same(json!({ "ws": "corrupt", "kind": "masked" })),
        same(json!({ "ws": "oversize" })),
        same(json!({ "ws": "oversize", "bytes": 2097152 })),
        same(json!({ "ws": "garbage" })),
        same(json!({ "ws": "lru_purge" })),
        same(json!({ "dns": "nxdomain" })),
        same(json!({ "dns": "servfail" })),
        same(json!({ "dns": "refused" })),
        same(json!({ "dns": "no_reply" })),
        same(json!({ "dns": "wrong_address", "ip": "192.168.4.99" })),
        same(json!({ "dns": "delay", "delay": "3s" })),
        same(json!({ "device": "internet", "mode": "offline" })),
        same(json!({ "device": "reboot", "down": "5s" })),
        same(json!({ "device": "ap_down", "for": "10s" })),
        same(json!({ "device": "socket_exhaustion", "sockets": 7 })),
    ]
}

#[test]
fn every_fault_parses_and_serializes_to_its_canonical_form() {
    for (written, canonical) in every_fault() {
        let fault = parse(written.clone());
        let back = serde_json::to_value(&fault).expect("serialize");
        assert_eq!(back, canonical, "{written} serialized differently");
        assert_eq!(parse(back), fault, "{canonical} does not round-trip");
    }
}

#[test]
fn key_order_does_not_matter() {
    let category_last = r#"{ "at": "mid_response", "bytes": 20, "handshake": "close" }"#;
    let category_first = r#"{ "handshake": "close", "at": "mid_response", "bytes": 20 }"#;
    let a: Fault = serde_json::from_str(category_last).expect("category last");
    let b: Fault = serde_json::from_str(category_first).expect("category first");
    assert_eq!(a, b);
    let c: Fault = serde_json::from_value(serde_json::from_str(category_last).expect("value"))
        .expect("from a sorted Value");
    assert_eq!(a, c);
}

#[test]
fn parsed_values_are_typed() {
    assert_eq!(parse(json!("refuse")), Fault::Connect(ConnectFault::Refuse));
    match parse(json!({ "handshake": "close", "at": "mid_response", "bytes": 20 })) {
        Fault::Handshake(HandshakeFault::Close(cut)) => {
            assert_eq!(cut.at, CutPoint::MidResponse { bytes: 20 })
        }
        other => panic!("unexpected {other:?}"),
    }
    match parse(json!({ "stream": "latency", "latency": "250ms", "jitter": "50ms" })) {
        Fault::Stream(StreamFault::Latency(l)) => {
            assert_eq!(l.latency.as_millis(), 250);
            assert_eq!(l.jitter.as_millis(), 50);
            assert_eq!(l.direction, StreamDirection::Downstream);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn mistakes_get_errors_that_say_what_to_write() {
    let cases = [
        (
            json!("nxdomain"),
            "`nxdomain` needs its category: write `{ dns: nxdomain }`",
        ),
        (
            json!("explode"),
            "unknown variant `explode`, expected one of",
        ),
        (
            json!({ "latency": "250ms" }),
            "a fault map needs its category key: write `{ stream: latency, … }`",
        ),
        (
            json!({ "at": "20s" }),
            "a fault map needs one category key (connect, handshake, stream, ws, dns, device); found `at`",
        ),
        (
            json!({ "at": "1s", "dns": "nxdomain", "stream": "half_open" }),
            "a fault has one category, found both `stream` and `dns`",
        ),
        (
            json!({ "at": "after_request", "handshake": "reset", "bytes": 2 }),
            "`bytes` only applies to `at: mid_response`",
        ),
        (json!({ "handshake": "reset" }), "missing field `at`"),
        (
            json!({ "handshake": "reset", "at": "mid_response" }),
            "`at: mid_response` needs `bytes`",
        ),
        (
            json!({ "handshake": "reset", "at": "after_request", "bytes": 3 }),
            "`bytes` only applies to `at: mid_response`",
        ),
        (
            json!({ "handshake": "status", "code": 101 }),
            "status 101 is a successful upgrade",
        ),
        (
            json!({ "handshake": "status", "code": 999 }),
            "status 999 is not an HTTP status",
        ),
        (
            json!({ "handshake": "bad_accept", "code": 1 }),
            "unknown field `code`",
        ),
        (
            json!({ "stream": "latency", "latency": "250ms", "toxicity": 0.5 }),
            "unknown field `toxicity`",
        ),
        (
            json!({ "stream": "latency", "latency": 250 }),
            "a duration needs a unit: write \"250ms\"",
        ),
        (
            json!({ "stream": "latency", "latency": "fast" }),
            "invalid duration `fast`",
        ),
        (
            json!({ "stream": "bandwidth", "rate": 0 }),
            "must be at least 1",
        ),
        (
            json!({ "ws": "close", "code": 1006 }),
            "close code 1006 must never be sent",
        ),
        (
            json!({ "ws": "corrupt", "kind": "bits" }),
            "unknown variant `bits`",
        ),
        (
            json!({ "dns": "wrong_address", "ip": "nope" }),
            "invalid IP address",
        ),
        (
            json!({ "device": "internet", "mode": "maybe" }),
            "unknown variant `maybe`",
        ),
        (json!({}), "empty fault"),
    ];
    for (input, want) in cases {
        let got = parse_err(input.clone());
        assert!(
            got.contains(want),
            "{input}: got {got:?}, want it to contain {want:?}"
        );
    }
}

#[test]
fn rules_parse_with_triggers() {
    let rules: Vec<FaultRule> = serde_json::from_value(json!([
        { "when": { "connections": "1-2" }, "fault": { "handshake": "reset", "at": "after_request" } },
        { "when": { "at": "20s", "for": "5s" }, "fault": "refuse" },
        { "when": { "connections": 3 }, "fault": "reset_on_accept" },
        { "when": { "connections": "5-", "every": 2, "probability": 0.5, "service": "https" }, "fault": "stall" },
        { "when": { "after": "provision", "messages": "3-", "message_type": "telemetry" }, "fault": { "ws": "drop" } },
        { "when": { "bytes": "1000-" }, "fault": { "ws": "lru_purge" } },
        { "when": { "name": "*.gstatic.com", "qtype": "A" }, "fault": { "dns": "nxdomain" } },
        { "when": { "host": "192.168.4.1*", "path": "/ws" }, "fault": { "handshake": "status", "code": 503 } },
        { "fault": { "stream": "half_open" } }
    ]))
    .expect("rules");
    assert_eq!(rules.len(), 9);
    assert_eq!(
        rules[0].when.connections,
        Some(CountRange {
            first: 1,
            last: Some(2)
        })
    );
    assert_eq!(rules[1].when.duration.map(|d| d.as_secs()), Some(5));
    assert_eq!(
        rules[3].when.connections,
        Some(CountRange {
            first: 5,
            last: None
        })
    );
    assert_eq!(rules[8].when, When::default());
    for r in &rules {
        r.validate().expect("valid");
    }
    // Serialized back, the triggers keep their written form.
    let back = serde_json::to_value(&rules[3]).expect("serialize");
    assert_eq!(
        back,
        json!({ "when": { "connections": "5-", "every": 2, "probability": 0.5, "service": "https" }, "fault": "stall" })
    );
}

#[test]
fn trigger_mistakes_are_rejected() {
    let bad = [
        (
            json!({ "when": { "connection": 1 }, "fault": "stall" }),
            "unknown field `connection`",
        ),
        (
            json!({ "when": { "connections": "2-1" }, "fault": "stall" }),
            "the end is before the start",
        ),
        (
            json!({ "when": { "connections": 0 }, "fault": "stall" }),
            "counts start at 1",
        ),
        (
            json!({ "when": { "probability": 2.0 }, "fault": "stall" }),
            "outside 0-1",
        ),
        (
            json!({ "when": { "at": "soon" }, "fault": "stall" }),
            "invalid duration `soon`",
        ),
        (
            json!({ "when": {}, "fault": "stall", "extra": 1 }),
            "unknown field `extra`",
        ),
    ];
    for (input, want) in bad {
        let got = serde_json::from_value::<FaultRule>(input.clone())
            .expect_err("should be rejected")
            .to_string();
        assert!(got.contains(want), "{input}: got {got:?}, want {want:?}");
    }
}

/// The YAML forms from DESIGN §7, parsed by the YAML crate the harness uses.
#[test]
fn design_yaml_forms_parse() {
    #[derive(serde::Deserialize)]
    struct Doc {
        faults: Vec<FaultRule>,
    }
    let yaml = r#"
faults:
  - { when: { connections: 1-2 }, fault: { handshake: reset, at: after_request } }
  - { when: { at: 20s, for: 5s }, fault: refuse }
  - when: { connections: 5- }
    fault: { stream: latency, latency: 250ms, jitter: 50ms, direction: both }
  - when: { name: "*.gstatic.com" }
    fault: { dns: nxdomain }
  - when: { after: provision, messages: 3 }
    fault:
      ws: close
      code: 1001
      reason: going away
  - { when: { at: 30s }, fault: { device: reboot, down: 5s } }
  - { fault: { stream: timeout, timeout: 0 } }
"#;
    let doc: Doc = serde_saphyr::from_str(yaml).expect("yaml");
    assert_eq!(doc.faults.len(), 7);
    assert_eq!(doc.faults[1].fault, Fault::Connect(ConnectFault::Refuse));
    assert_eq!(
        serde_json::to_value(&doc.faults[0]).expect("json"),
        json!({ "when": { "connections": "1-2" }, "fault": { "handshake": "reset", "at": "after_request" } })
    );
    assert_eq!(
        serde_json::to_value(&doc.faults[4].fault).expect("json"),
        json!({ "ws": "close", "code": 1001, "reason": "going away", "echo": true })
    );
}

#[test]
fn yaml_errors_point_at_the_line() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        faults: Vec<FaultRule>,
    }
    let yaml = "faults:\n  - fault: { handshake: reset, at: after_request }\n  - fault: { stream: latency, latncy: 250ms }\n";
    let err = serde_saphyr::from_str::<Doc>(yaml).expect_err("typo");
    let msg = err.to_string();
    assert!(
        msg.contains("line 3 column 31: unknown field `latncy`"),
        "{msg}"
    );
    // With the category further down the map, the error still names the fault's line.
    let yaml =
        "faults:\n  - fault: stall\n  - fault: { latency: 250ms, stream: latency, latncy: 1s }\n";
    let msg = serde_saphyr::from_str::<Doc>(yaml)
        .expect_err("typo")
        .to_string();
    assert!(msg.contains("unknown field `latncy`"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
}

#[test]
fn payload_matchers_in_yaml_match_and_their_mistakes_name_the_line() {
    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        faults: Vec<FaultRule>,
    }
    let yaml = "faults:\n  - when: { message_type: { json: [ { pointer: /cmd, equals: get } ] } }\n    fault: { ws: drop }\n  - when: { message_type: { text: { regex: \"^LED=\" } } }\n    fault: { ws: drop }\n";
    let doc: Doc = serde_saphyr::from_str(yaml).expect("payload matchers");
    assert_eq!(doc.faults.len(), 2);
    for (bad, says) in [
        ("{ json: { pointer: cmd, equals: get } }", "starts with `/`"),
        ("{ json: { pointer: /cmd } }", "exactly one of"),
        ("{ text: { regex: \"(\" } }", "does not compile"),
        ("{ bytes: { prefix: a5 } }", "unknown variant"),
    ] {
        let yaml =
            format!("faults:\n  - fault: {{ ws: drop }}\n    when: {{ message_type: {bad} }}\n");
        let msg = serde_saphyr::from_str::<Doc>(&yaml)
            .expect_err(bad)
            .to_string();
        assert!(msg.contains(says), "{bad}: {msg}");
        assert!(msg.contains("line 3"), "{bad}: {msg}");
    }
}

#[test]
fn json_schema_describes_every_category() {
    let schema = schemars::schema_for!(FaultRule);
    let text = serde_json::to_string(&schema).expect("schema");
    for key in [
        "\"handshake\"",
        "\"stream\"",
        "\"ws\"",
        "\"dns\"",
        "\"device\"",
        "reset_on_accept",
        "mid_response",
        "average_size",
        "suppress_pong",
        "wrong_address",
        "socket_exhaustion",
        "connections",
        "probability",
        "\"pointer\"",
        "\"exists\"",
        "\"min_len\"",
    ] {
        assert!(text.contains(key), "schema lacks {key}");
    }
}

#[test]
#[ignore = "prints the JSON Schema for inspection"]
fn print_schema() {
    let schema = schemars::schema_for!(FaultRule);
    println!("{}", serde_json::to_string_pretty(&schema).expect("schema"));
}
