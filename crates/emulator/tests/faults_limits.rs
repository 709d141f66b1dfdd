//! Fault rules with extreme values, over real sockets: the control API refuses them with the
//! bound in its answer, the rule count is capped, and the device keeps serving throughout
//! (these rules used to be accepted and then stop the device port for good, even after
//! `POST /reset`).

use std::net::SocketAddr;
use std::time::Duration;

use espsim_emulator::control::ControlAuth;
use espsim_emulator::{ControlOptions, Emulator, EmulatorConfig, RunningEmulator};
use espsim_faults::limits::MAX_RULES;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);
const TOKEN: &str = "limits-test-token";
/// u64::MAX seconds.
const HUGE: &str = "18446744073709551615s";

async fn start() -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        seed: 5,
        control: Some(ControlOptions::loopback(0).with_auth(ControlAuth::Token(TOKEN.to_owned()))),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// One HTTP/1.1 exchange on a fresh connection; returns the status and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("writes");
        read_response(&mut s).await
    };
    timeout(WAIT, exchange).await.expect("answer in time")
}

/// Reads one response with a `Content-Length` body; returns the status and the body.
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("no status line: {head:?}"));
                return (status, body.to_owned());
            }
        }
        let n = s.read(&mut buf).await.expect("reads");
        assert!(n > 0, "EOF before the whole response: {text:?}");
        raw.extend_from_slice(&buf[..n]);
    }
}

async fn post_faults(em: &RunningEmulator, body: &str) -> (u16, Value) {
    let control = em.control_addr().expect("control on");
    let (status, body) = http(control, "POST", "/faults", body).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, json)
}

async fn rule_count(em: &RunningEmulator) -> usize {
    let control = em.control_addr().expect("control on");
    let (status, body) = http(control, "GET", "/faults", "").await;
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).expect("a JSON list");
    list.len()
}

/// The device answers an Android connectivity check and a WebSocket request on new connections.
async fn serves(em: &RunningEmulator, when: &str) {
    let (status, _) = http(em.http_addr(), "GET", "/generate_204", "").await;
    assert_eq!(status, 302, "{when}: the captive device answers the probe");
    let (mut ws, _) = timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{}/ws", em.http_addr())),
    )
    .await
    .unwrap_or_else(|_| panic!("{when}: handshake in time"))
    .unwrap_or_else(|e| panic!("{when}: handshake succeeds: {e}"));
    ws.send(Message::text(r#"{"type":"get_status","id":7}"#))
        .await
        .expect("sends");
    loop {
        let msg = timeout(WAIT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{when}: a reply in time"))
            .expect("session open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["id"] == 7 {
                assert_eq!(v["type"], "status", "{when}: {v}");
                break;
            }
        }
    }
}

#[tokio::test]
async fn extreme_rules_are_refused_with_their_bound_and_the_device_keeps_serving() {
    let em = start().await;
    let cases = [
        (
            json!({ "when": { "at": HUGE }, "fault": "refuse" }),
            "at most 24h",
        ),
        (
            json!({ "when": { "for": HUGE }, "fault": "refuse" }),
            "at most 24h",
        ),
        (
            json!({ "fault": { "device": "reboot", "down": HUGE } }),
            "at most 24h",
        ),
        (
            json!({ "fault": { "device": "ap_down", "for": HUGE } }),
            "at most 24h",
        ),
        (
            json!({ "when": { "for": HUGE }, "fault": { "device": "internet", "mode": "offline" } }),
            "at most 24h",
        ),
        (
            json!({ "fault": { "stream": "reset_peer", "timeout": HUGE } }),
            "at most 24h",
        ),
        (
            json!({ "fault": { "stream": "timeout", "timeout": HUGE } }),
            "at most 24h",
        ),
        (
            json!({ "fault": { "stream": "latency", "latency": HUGE } }),
            "at most 24h",
        ),
        (
            json!({ "fault": { "stream": "slow_close", "delay": HUGE } }),
            "at most 24h",
        ),
        (
            json!({ "fault": { "ws": "delay", "delay": HUGE } }),
            "at most 24h",
        ),
        (
            json!({ "fault": { "ws": "oversize", "bytes": 4_611_686_018_427_387_904_u64 } }),
            "it must lie in 0-4194304",
        ),
        (
            json!({ "fault": { "ws": "oversize", "bytes": 1_u64 << 30 } }),
            "it must lie in 0-4194304",
        ),
    ];
    for (rule, bound) in &cases {
        let (status, answer) = post_faults(&em, &rule.to_string()).await;
        assert_eq!(status, 422, "{rule}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(bound), "{rule}: {error}");
    }
    // All of them as one list: refused as a whole, naming the first bad rule.
    let list = Value::Array(cases.iter().map(|(r, _)| r.clone()).collect());
    let (status, answer) = post_faults(&em, &list.to_string()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(rule_count(&em).await, 0);
    serves(&em, "after the refused rules").await;

    let control = em.control_addr().expect("control on");
    let (status, body) = http(control, "POST", "/reset", "").await;
    assert_eq!(status, 200, "{body}");
    serves(&em, "after POST /reset").await;
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn rules_at_the_bounds_are_accepted_and_the_device_keeps_serving() {
    let em = start().await;
    // The longest windows and delays allowed, stacked: every time sum they make must fit the
    // clock, at the accept loop, at stream set-up and on the timeline.
    let rules = json!([
        { "when": { "at": "24h", "for": "24h" }, "fault": "refuse" },
        { "when": { "after": "get_status", "at": "24h", "for": "24h" }, "fault": "refuse" },
        { "when": { "at": "24h" }, "fault": { "device": "reboot", "down": "24h" } },
        { "when": { "at": "24h", "for": "24h" }, "fault": { "device": "internet", "mode": "offline" } },
        { "when": { "after": "get_status", "at": "24h" }, "fault": { "device": "ap_down", "for": "24h" } },
        { "when": { "connections": 1 }, "fault": { "stream": "latency", "latency": "24h", "jitter": "24h" } },
        { "when": { "connections": 1 }, "fault": { "stream": "latency", "latency": "24h", "jitter": "24h" } },
        { "when": { "connections": 1 }, "fault": { "stream": "reset_peer", "timeout": "24h" } },
        { "when": { "connections": 1 }, "fault": { "stream": "timeout", "timeout": "24h" } },
        { "when": { "connections": 1 }, "fault": { "stream": "slow_close", "delay": "24h" } },
        { "when": { "connections": 1 }, "fault": { "stream": "slow_close", "delay": "24h" } },
        { "when": { "connections": "1000000000" }, "fault": "stall" },
        { "when": { "messages": "1000000000" }, "fault": { "ws": "oversize", "bytes": 4194304 } }
    ]);
    let (status, answer) = post_faults(&em, &rules.to_string()).await;
    assert_eq!(status, 201, "{answer}");
    // Connection 1 gets every stream fault at its maximum: it is held, silent.
    let mut first = TcpStream::connect(em.http_addr()).await.expect("connects");
    first
        .write_all(b"GET /generate_204 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let mut buf = [0u8; 64];
    let silent = timeout(Duration::from_millis(200), first.read(&mut buf)).await;
    assert!(silent.is_err(), "connection 1 is held: {silent:?}");
    serves(&em, "with the longest rules in force").await;

    let control = em.control_addr().expect("control on");
    let (status, body) = http(control, "POST", "/reset", "").await;
    assert_eq!(status, 200, "{body}");
    serves(&em, "after POST /reset").await;
    drop(first);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_rule_count_is_capped_with_a_409() {
    let em = start().await;
    let one = json!({ "when": { "name": "a.example" }, "fault": { "dns": "nxdomain" } });
    // In chunks: the API takes bodies up to 64 KiB.
    for _ in 0..MAX_RULES / 250 {
        let chunk = Value::Array(vec![one.clone(); 250]);
        let (status, answer) = post_faults(&em, &chunk.to_string()).await;
        assert_eq!(status, 201, "{answer}");
    }
    assert_eq!(rule_count(&em).await, MAX_RULES);
    let (status, answer) = post_faults(&em, &one.to_string()).await;
    assert_eq!(status, 409, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("limit of 1000"), "{error}");
    assert_eq!(rule_count(&em).await, MAX_RULES);
    serves(&em, "with the plan full").await;

    // After a reset, a list that does not fit is refused whole.
    let control = em.control_addr().expect("control on");
    let (status, body) = http(control, "POST", "/reset", "").await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..3 {
        let chunk = Value::Array(vec![one.clone(); 250]);
        assert_eq!(post_faults(&em, &chunk.to_string()).await.0, 201);
    }
    let chunk = Value::Array(vec![one.clone(); 251]);
    let (status, answer) = post_faults(&em, &chunk.to_string()).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(
        rule_count(&em).await,
        750,
        "nothing of the refused list was added"
    );
    em.shutdown(WAIT).await;
}
