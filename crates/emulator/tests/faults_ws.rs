//! Handshake and WebSocket message faults, end to end: `Emulator::start` with rules written as a
//! user writes them, real clients (tokio-tungstenite, raw `TcpStream`) on 127.0.0.1, and the
//! error or bytes each client observes (`docs/reference/faults.md`, "What your app sees").

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use espsim_emulator::events::EventKind;
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_faults::FaultRule;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(500);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const GOOD_101: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn rule(json: &str) -> FaultRule {
    serde_json::from_str(json).expect("rule parses")
}

async fn start_seeded(rules: &[&str], seed: u64) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        seed,
        faults: rules.iter().map(|r| rule(r)).collect(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

async fn start(rules: &[&str]) -> RunningEmulator {
    start_seeded(rules, 1).await
}

fn url(e: &RunningEmulator) -> String {
    format!("ws://{}/ws", e.http_addr())
}

async fn connect(e: &RunningEmulator) -> Result<Client, WsError> {
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url(e)))
        .await
        .expect("handshake ends in time")
        .map(|(ws, _)| ws)
}

async fn connect_ok(e: &RunningEmulator) -> Client {
    connect(e).await.expect("handshake succeeds")
}

/// A raw upgrade request with the RFC 6455 sample key.
async fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write request");
    s
}

/// Reads until EOF or an error (bounded by `WAIT`): the bytes and how it ended.
async fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, Result<(), ErrorKind>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.kind()),
            }
        }
    };
    let end = tokio::time::timeout(WAIT, read)
        .await
        .expect("the device ends the connection in time");
    (out, end)
}

/// Reads exactly `n` bytes.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    buf
}

/// A raw client after a normal upgrade (the `101` read and checked).
async fn raw_session(addr: SocketAddr) -> TcpStream {
    let mut s = raw_upgrade(addr).await;
    assert_eq!(read_n(&mut s, GOOD_101.len()).await, GOOD_101.as_bytes());
    s
}

/// A masked client text frame (payload < 126 bytes).
fn client_text(payload: &str) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | u8::try_from(payload.len()).expect("short")];
    f.extend_from_slice(&key);
    f.extend(payload.bytes().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    f
}

async fn send(ws: &mut Client, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next frame within `WAIT`.
async fn next(ws: &mut Client) -> Option<Result<Message, WsError>> {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame or the end in time")
}

/// The next text message as JSON.
async fn next_json(ws: &mut Client) -> Value {
    let m = next(ws).await.expect("open").expect("frame");
    serde_json::from_str(m.to_text().expect("text")).expect("json")
}

/// Asserts no frame arrives for `QUIET` (the client keeps reading).
async fn assert_quiet(ws: &mut Client, what: &str) {
    if let Ok(m) = tokio::time::timeout(QUIET, ws.next()).await {
        panic!("{what}: expected silence, got {m:?}");
    }
}

async fn fault_applied(e: &RunningEmulator) -> (u64, Value, String) {
    let ev = e
        .events()
        .wait_for(WAIT, |e| matches!(e.kind, EventKind::FaultApplied { .. }))
        .await
        .expect("a fault_applied event");
    match ev.kind {
        EventKind::FaultApplied {
            rule,
            fault,
            detail,
            ..
        } => (rule, fault, detail),
        _ => unreachable!("filtered above"),
    }
}

fn io_kind(e: &WsError) -> Option<ErrorKind> {
    match e {
        WsError::Io(e) => Some(e.kind()),
        _ => None,
    }
}

// ---------------------------------------------------------------- handshake faults

#[tokio::test]
async fn reset_after_request_is_connection_reset_with_no_byte() {
    let text = r#"{"when":{},"fault":{"handshake":"reset","at":"after_request"}}"#;
    let e = start(&[text]).await;
    let err = connect(&e).await.expect_err("reset");
    assert_eq!(io_kind(&err), Some(ErrorKind::ConnectionReset), "{err:?}");

    let mut s = raw_upgrade(e.http_addr()).await;
    let (bytes, end) = read_to_end(&mut s).await;
    assert!(bytes.is_empty(), "{bytes:?}");
    assert_eq!(end, Err(ErrorKind::ConnectionReset));

    let (rule, fault, detail) = fault_applied(&e).await;
    assert_eq!(rule, 1);
    assert_eq!(fault, json!({"handshake":"reset","at":"after_request"}));
    assert!(detail.contains("RST"), "{detail}");
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn reset_mid_response_sends_a_prefix_of_the_101_then_rst() {
    let e = start(&[r#"{"fault":{"handshake":"reset","at":"mid_response","bytes":20}}"#]).await;
    let mut s = raw_upgrade(e.http_addr()).await;
    let (bytes, end) = read_to_end(&mut s).await;
    // The RST can overtake unread data in the client's buffer: at most the 20 bytes arrive.
    assert!(
        bytes.len() <= 20 && GOOD_101.as_bytes().starts_with(&bytes),
        "{bytes:?}"
    );
    assert_eq!(end, Err(ErrorKind::ConnectionReset));

    let err = connect(&e).await.expect_err("reset");
    assert_eq!(io_kind(&err), Some(ErrorKind::ConnectionReset), "{err:?}");
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn close_after_request_is_eof_before_headers() {
    let e = start(&[r#"{"fault":{"handshake":"close","at":"after_request"}}"#]).await;
    let mut s = raw_upgrade(e.http_addr()).await;
    assert_eq!(read_to_end(&mut s).await, (Vec::new(), Ok(())));

    let err = connect(&e).await.expect_err("closed");
    assert!(
        matches!(err, WsError::Protocol(ProtocolError::HandshakeIncomplete)),
        "{err:?}"
    );
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn close_mid_response_sends_exactly_n_bytes_then_fin() {
    let e = start(&[r#"{"fault":{"handshake":"close","at":"mid_response","bytes":34}}"#]).await;
    let mut s = raw_upgrade(e.http_addr()).await;
    let (bytes, end) = read_to_end(&mut s).await;
    assert_eq!(
        String::from_utf8(bytes).expect("ascii"),
        "HTTP/1.1 101 Switching Protocols\r\n"
    );
    assert_eq!(end, Ok(()));

    let err = connect(&e).await.expect_err("closed");
    assert!(
        matches!(err, WsError::Protocol(ProtocolError::HandshakeIncomplete)),
        "{err:?}"
    );
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn status_503_is_an_esp_idf_response_then_close() {
    let e = start(&[r#"{"fault":{"handshake":"status","code":503}}"#]).await;
    let mut s = raw_upgrade(e.http_addr()).await;
    let (bytes, end) = read_to_end(&mut s).await;
    assert_eq!(
        String::from_utf8(bytes).expect("ascii"),
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: 19\r\n\r\nService Unavailable"
    );
    assert_eq!(end, Ok(()));

    let err = connect(&e).await.expect_err("rejected");
    let WsError::Http(resp) = err else {
        panic!("expected Http(503), got {err:?}");
    };
    assert_eq!(resp.status(), 503);
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn status_with_a_body_sends_that_body() {
    let e =
        start(&[r#"{"fault":{"handshake":"status","code":401,"body":"token required"}}"#]).await;
    let mut s = raw_upgrade(e.http_addr()).await;
    let (bytes, _) = read_to_end(&mut s).await;
    assert_eq!(
        String::from_utf8(bytes).expect("ascii"),
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\ntoken required"
    );
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn bad_accept_is_an_accept_key_mismatch() {
    let e = start(&[r#"{"fault":{"handshake":"bad_accept"}}"#]).await;
    let err = connect(&e).await.expect_err("bad accept");
    assert!(
        matches!(
            err,
            WsError::Protocol(ProtocolError::SecWebSocketAcceptKeyMismatch)
        ),
        "{err:?}"
    );
    let mut s = raw_upgrade(e.http_addr()).await;
    let head = read_n(&mut s, GOOD_101.len()).await;
    let head = String::from_utf8(head).expect("ascii");
    let accept = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Accept: "))
        .expect("accept header");
    assert_eq!(accept.len(), 28);
    assert_ne!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn missing_upgrade_header_is_rejected_by_the_client() {
    let e = start(&[r#"{"fault":{"handshake":"missing_upgrade_header"}}"#]).await;
    let err = connect(&e).await.expect_err("no Upgrade header");
    assert!(
        matches!(
            err,
            WsError::Protocol(ProtocolError::MissingUpgradeWebSocketHeader)
        ),
        "{err:?}"
    );
    let mut s = raw_upgrade(e.http_addr()).await;
    let want = GOOD_101.replace("Upgrade: websocket\r\n", "");
    assert_eq!(read_n(&mut s, want.len()).await, want.as_bytes());
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn delay_answers_the_101_late() {
    let e = start(&[r#"{"fault":{"handshake":"delay","delay":"400ms"}}"#]).await;
    let t = Instant::now();
    let mut ws = connect_ok(&e).await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_secs(3),
        "{took:?}"
    );
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn silent_close_sends_nothing() {
    let e = start(&[r#"{"fault":{"handshake":"silent_close"}}"#]).await;
    let mut s = raw_upgrade(e.http_addr()).await;
    assert_eq!(read_to_end(&mut s).await, (Vec::new(), Ok(())));
    let err = connect(&e).await.expect_err("closed");
    assert!(
        matches!(err, WsError::Protocol(ProtocolError::HandshakeIncomplete)),
        "{err:?}"
    );
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn connections_1_2_counts_upgrades_not_probes() {
    let e = start(&[
        r#"{"when":{"connections":"1-2"},"fault":{"handshake":"reset","at":"after_request"}}"#,
    ])
    .await;
    // A connectivity probe on the same port is a TCP connection, not an upgrade.
    let mut probe = TcpStream::connect(e.http_addr()).await.expect("connect");
    probe
        .write_all(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n\r\n")
        .await
        .expect("write");
    let mut line = [0u8; 12];
    tokio::time::timeout(WAIT, probe.read_exact(&mut line))
        .await
        .expect("in time")
        .expect("a response");
    assert_eq!(&line[..9], b"HTTP/1.1 ");
    drop(probe);

    for attempt in 1..=2 {
        let err = connect(&e).await.expect_err("reset");
        assert_eq!(
            io_kind(&err),
            Some(ErrorKind::ConnectionReset),
            "attempt {attempt}: {err:?}"
        );
    }
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"ping","seq":3})).await;
    assert_eq!(next_json(&mut ws).await["seq"], 3);
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn probability_with_the_same_seed_gives_the_same_sequence() {
    let rule = r#"{"when":{"probability":0.5},"fault":{"handshake":"reset","at":"after_request"}}"#;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let e = start_seeded(&[rule], 42).await;
        let mut outcomes = Vec::new();
        for _ in 0..10 {
            outcomes.push(connect(&e).await.is_ok());
        }
        e.shutdown(WAIT).await;
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&true) && runs[0].contains(&false),
        "{:?}",
        runs[0]
    );
}

// ---------------------------------------------------------------- message faults

#[tokio::test]
async fn close_at_message_3_sends_code_and_reason() {
    let e = start(&[
        r#"{"when":{"messages":3},"fault":{"ws":"close","code":4000,"reason":"maintenance"}}"#,
    ])
    .await;
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"hello","client":"t","version":"1"})).await; // 1 (in)
    assert_eq!(next_json(&mut ws).await["type"], "welcome"); // 2 (out)
    send(&mut ws, json!({"type":"ping","seq":1})).await; // 3 (in) → close right after it
    match next(&mut ws).await {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), 4000);
            assert_eq!(f.reason.as_str(), "maintenance");
        }
        other => panic!("expected close 4000, got {other:?}"),
    }
    let (_, fault, _) = fault_applied(&e).await;
    assert_eq!(
        fault,
        json!({"ws":"close","code":4000,"reason":"maintenance","echo":true})
    );
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn close_with_echo_waits_for_the_app_and_without_echo_drops_tcp() {
    // echo: true (default): the device waits for the app's close frame; the TCP stays open.
    let e = start(&[r#"{"fault":{"ws":"close","code":4001,"reason":"bye"}}"#]).await;
    let mut s = raw_session(e.http_addr()).await;
    assert_eq!(read_n(&mut s, 7).await, b"\x88\x05\x0f\xa1bye");
    let mut one = [0u8; 1];
    assert!(
        tokio::time::timeout(QUIET, s.read(&mut one)).await.is_err(),
        "with echo the device waits for the app's close"
    );
    drop(s);
    e.shutdown(WAIT).await;

    // echo: false: the close frame, then FIN at once.
    let e = start(&[r#"{"fault":{"ws":"close","code":4001,"reason":"bye","echo":false}}"#]).await;
    let mut s = raw_session(e.http_addr()).await;
    let t = Instant::now();
    let (bytes, end) = read_to_end(&mut s).await;
    assert_eq!(bytes, b"\x88\x05\x0f\xa1bye");
    assert_eq!(end, Ok(()));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn drop_in_for_message_type_ping_loses_the_app_ping() {
    let e = start(&[r#"{"when":{"message_type":"ping"},"fault":{"ws":"drop","direction":"in"}}"#])
        .await;
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    send(&mut ws, json!({"type":"get_status","id":2})).await;
    // The device never saw the ping: the first reply is the status.
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["type"], "status");
    assert_eq!(reply["id"], 2);
    assert_quiet(&mut ws, "dropped ping").await;
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn duplicate_out_delivers_the_reply_twice() {
    let e = start(&[r#"{"when":{"message_type":"pong"},"fault":{"ws":"duplicate"}}"#]).await;
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"ping","seq":5})).await;
    let a = next_json(&mut ws).await;
    let b = next_json(&mut ws).await;
    assert_eq!(a["type"], "pong");
    assert_eq!(a, b);
    assert_quiet(&mut ws, "after the duplicate").await;
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn delay_out_holds_the_reply() {
    let e = start(&[r#"{"when":{"message_type":"pong"},"fault":{"ws":"delay","delay":"400ms"}}"#])
        .await;
    let mut ws = connect_ok(&e).await;
    let t = Instant::now();
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn suppress_pong_leaves_websocket_pings_unanswered_on_the_first_connection_only() {
    let e = start(&[r#"{"when":{"connections":1},"fault":{"ws":"suppress_pong"}}"#]).await;
    let mut ws = connect_ok(&e).await;
    ws.send(Message::Ping(b"hb".to_vec().into()))
        .await
        .expect("ping");
    assert_quiet(&mut ws, "suppressed pong").await;
    // The link is otherwise alive: app messages are still answered.
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");

    let mut second = connect_ok(&e).await;
    second
        .send(Message::Ping(b"hb".to_vec().into()))
        .await
        .expect("ping");
    match next(&mut second).await {
        Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], b"hb"),
        other => panic!("expected a pong on the second connection, got {other:?}"),
    }
    drop(ws);
    drop(second);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn corrupt_frames_break_the_client_the_way_each_kind_says() {
    let cases = [
        ("opcode", "InvalidOpcode(3)"),
        ("rsv", "NonZeroReservedBits"),
        ("masked", "MaskedFrameFromServer"),
    ];
    for (kind, want) in cases {
        let text = format!(r#"{{"fault":{{"ws":"corrupt","kind":"{kind}"}}}}"#);
        let e = start(&[&text]).await;
        let mut ws = connect_ok(&e).await;
        match next(&mut ws).await {
            Some(Err(WsError::Protocol(p))) => assert_eq!(format!("{p:?}"), want, "{kind}"),
            other => panic!("{kind}: expected a protocol error, got {other:?}"),
        }
        drop(ws);
        e.shutdown(WAIT).await;
    }
    let e = start(&[r#"{"fault":{"ws":"corrupt","kind":"utf8"}}"#]).await;
    let mut ws = connect_ok(&e).await;
    match next(&mut ws).await {
        Some(Err(WsError::Utf8(_))) => {}
        other => panic!("utf8: expected a UTF-8 error, got {other:?}"),
    }
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn oversize_sends_one_byte_over_the_profile_limit() {
    let e = start(&[r#"{"fault":{"ws":"oversize"}}"#]).await;
    let max = espsim_emulator::profile::Profile::default().max_ws_message;
    let mut ws = connect_ok(&e).await;
    let m = next(&mut ws).await.expect("open").expect("frame");
    assert_eq!(m.len(), max + 1);
    drop(ws);
    e.shutdown(WAIT).await;

    // A client that enforces the device's limit refuses it.
    let e = start(&[r#"{"fault":{"ws":"oversize"}}"#]).await;
    let config = WebSocketConfig::default().max_message_size(Some(max));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url(&e), Some(config), false)
        .await
        .expect("handshake");
    match next(&mut ws).await {
        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
            assert_eq!((size, max_size), (max + 1, max));
        }
        other => panic!("expected MessageTooLong, got {other:?}"),
    }
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn garbage_is_text_that_is_not_json() {
    let e = start(&[r#"{"when":{"message_type":"hello"},"fault":{"ws":"garbage"}}"#]).await;
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"hello","client":"t","version":"1"})).await;
    let mut texts = Vec::new();
    for _ in 0..2 {
        let m = next(&mut ws).await.expect("open").expect("frame");
        texts.push(m.into_text().expect("text").to_string());
    }
    assert!(
        texts.contains(&"GARBAGE: this is not JSON {".to_owned()),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| serde_json::from_str::<Value>(t).is_err()),
        "{texts:?}"
    );
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn lru_purge_drops_the_socket_without_a_close_frame() {
    let e = start(&[r#"{"when":{"messages":1},"fault":{"ws":"lru_purge"}}"#]).await;
    let mut s = raw_session(e.http_addr()).await;
    s.write_all(&client_text(r#"{"type":"get_status"}"#))
        .await
        .expect("send");
    let (bytes, end) = read_to_end(&mut s).await;
    // Whatever the device had queued may arrive, but never a close frame (opcode 0x8).
    assert!(!bytes.contains(&0x88), "{bytes:?}");
    assert!(
        end.is_ok() || end == Err(ErrorKind::ConnectionReset),
        "{end:?}"
    );
    let ev = e
        .events()
        .wait_for(WAIT, |e| {
            matches!(
                &e.kind,
                EventKind::WsClosed {
                    code: None,
                    clean: false,
                    ..
                }
            )
        })
        .await;
    assert!(ev.is_some(), "ws_closed without a code");
    drop(s);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn after_provision_arms_the_close() {
    let e = start(&[
        r#"{"when":{"after":"provision"},"fault":{"ws":"close","code":4002,"reason":"provisioned"}}"#,
    ])
    .await;
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"get_status","id":1})).await;
    assert_eq!(next_json(&mut ws).await["type"], "status");
    send(
        &mut ws,
        json!({"type":"provision","id":2,"ssid":"home","password":"secret123"}),
    )
    .await;
    let mut close = None;
    for _ in 0..8 {
        match next(&mut ws).await {
            Some(Ok(Message::Close(f))) => {
                close = f;
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    let f = close.expect("close frame with a code");
    assert_eq!(
        (u16::from(f.code), f.reason.as_str()),
        (4002, "provisioned")
    );
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn time_window_opening_mid_session_fires_the_close() {
    let e = start(&[r#"{"when":{"at":"300ms"},"fault":{"ws":"close","code":4003}}"#]).await;
    let mut ws = connect_ok(&e).await;
    // Nothing before the window opens.
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    match next(&mut ws).await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4003),
        other => panic!("expected close 4003, got {other:?}"),
    }
    assert!(e.events().elapsed() >= Duration::from_millis(300));
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_session_woken_late_still_fires_the_close_whose_window_it_slept_through() {
    // A 50 ms window, and a host that stalls across all of it: this test's runtime (the
    // emulator's too) is blocked from before the window opens until after it closes.
    let e =
        start(&[r#"{"when":{"at":"1s","for":"50ms"},"fault":{"ws":"close","code":4005}}"#]).await;
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    let window = Duration::from_secs(1)..Duration::from_millis(1050);
    assert!(
        e.events().elapsed() < window.start,
        "the session opened before the window"
    );
    while e.events().elapsed() < window.end + Duration::from_millis(50) {
        std::thread::sleep(Duration::from_millis(5));
    }
    match next(&mut ws).await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4005),
        other => panic!("expected close 4005 (late, not lost), got {other:?}"),
    }
    let applied = e
        .events()
        .snapshot()
        .into_iter()
        .find(|ev| matches!(ev.kind, EventKind::FaultApplied { .. }))
        .expect("a fault_applied event");
    assert!(applied.at_ms >= 1050, "fired after the stall: {applied:?}");
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn rules_added_at_run_time_apply_to_the_open_session() {
    let e = start(&[]).await;
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    e.faults()
        .add(rule(r#"{"fault":{"ws":"close","code":4004}}"#))
        .expect("valid rule");
    match next(&mut ws).await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4004),
        other => panic!("expected close 4004, got {other:?}"),
    }
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn duplicate_in_hands_the_app_message_to_the_firmware_twice() {
    let e =
        start(&[r#"{"when":{"message_type":"ping"},"fault":{"ws":"duplicate","direction":"in"}}"#])
            .await;
    let mut ws = connect_ok(&e).await;
    send(&mut ws, json!({"type":"ping","seq":9})).await;
    for _ in 0..2 {
        let reply = next_json(&mut ws).await;
        assert_eq!(
            (reply["type"].as_str(), reply["seq"].as_u64()),
            (Some("pong"), Some(9))
        );
    }
    assert_quiet(&mut ws, "after two pongs").await;
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn delay_in_holds_the_app_message_before_the_firmware_sees_it() {
    let e = start(&[
        r#"{"when":{"message_type":"ping"},"fault":{"ws":"delay","delay":"400ms","direction":"in"}}"#,
    ])
    .await;
    let mut ws = connect_ok(&e).await;
    let t = Instant::now();
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(ws);
    e.shutdown(WAIT).await;
}

#[tokio::test]
async fn suppress_pong_messages_swallows_the_app_level_pong_until_the_rule_ends() {
    let e = start(&[]).await;
    let id = e
        .faults()
        .add(rule(
            r#"{"fault":{"ws":"suppress_pong","messages":"pong"}}"#,
        ))
        .expect("rule added");
    let mut ws = connect_ok(&e).await;
    // The app-level heartbeat gets no `pong`; the device answers in order, so the status
    // asked right after it is the first thing that arrives.
    send(&mut ws, json!({"type":"ping","seq":1})).await;
    send(&mut ws, json!({"type":"get_status","id":2})).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(
        (&reply["type"], &reply["id"]),
        (&json!("status"), &json!(2))
    );
    let (rule_id, fault, detail) = fault_applied(&e).await;
    assert_eq!(rule_id, id.0);
    assert_eq!(fault["ws"], "suppress_pong");
    assert!(detail.contains("pong message swallowed"), "{detail}");
    // The WebSocket ping frame gets no pong frame either.
    ws.send(Message::Ping(b"hb".to_vec().into()))
        .await
        .expect("ping");
    send(&mut ws, json!({"type":"get_status","id":3})).await;
    match next(&mut ws).await {
        Some(Ok(Message::Text(t))) => assert!(t.contains(r#""id":3"#), "{t}"),
        other => panic!("expected the status, not a pong frame: {other:?}"),
    }

    // The window ends: both pongs come back on the same connection.
    e.faults().remove(id).expect("rule removed");
    send(&mut ws, json!({"type":"ping","seq":4})).await;
    let pong = next_json(&mut ws).await;
    assert_eq!((&pong["type"], &pong["seq"]), (&json!("pong"), &json!(4)));
    ws.send(Message::Ping(b"hb".to_vec().into()))
        .await
        .expect("ping");
    match next(&mut ws).await {
        Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], b"hb"),
        other => panic!("expected a pong frame after the window, got {other:?}"),
    }
    drop(ws);
    e.shutdown(WAIT).await;
}
