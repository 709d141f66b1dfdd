//! Connect and stream faults on the device port, as a real client sees them: raw TCP sockets
//! and tokio-tungstenite against `Emulator::start` with rules written as a user writes them.

mod support;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use espsim_emulator::events::EventKind;
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator, TlsOptions};
use espsim_faults::FaultRule;
use futures_util::{SinkExt, StreamExt};
use support::{WAIT, connect, content_length};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long "silent" must last to count as silence.
const SILENCE: Duration = Duration::from_millis(500);
/// Scheduling slack for measured delays on a shared CI machine.
const SLACK: Duration = Duration::from_millis(30);

/// A plain request the device answers with its portal page.
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n";
/// A request for an unknown URI: a small answer (the captive portal's 302), keep-alive.
const GET_SMALL: &[u8] = b"GET /nope HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n";
/// An HTTP/2.0 request line: ESP-IDF answers 505 and closes.
const GET_505: &[u8] = b"GET / HTTP/2.0\r\nHost: 192.168.4.1\r\n\r\n";
/// A WebSocket upgrade as a client library sends it.
const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const HELLO: &str = r#"{"type":"hello","id":1,"client":"it","version":"1"}"#;

fn rule(json: &str) -> FaultRule {
    serde_json::from_str(json).expect("a valid rule")
}

async fn start_with(rules: &[&str], seed: u64, tls: bool) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        seed,
        faults: rules.iter().map(|r| rule(r)).collect(),
        tls: tls.then(|| TlsOptions::SelfSigned {
            names: vec!["localhost".into()],
            write_cert: None,
        }),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

async fn start(rules: &[&str]) -> RunningEmulator {
    start_with(rules, 0, false).await
}

/// What a client saw after sending a request.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A complete response head (status line … blank line).
    Head(String),
    /// The connection ended with FIN after these bytes (no complete head).
    Eof(Vec<u8>),
    /// "Connection reset by peer" (RST).
    Reset,
    /// Some other I/O error.
    Error(io::ErrorKind),
    /// Nothing at all within the read timeout: no byte, no FIN, no RST.
    Silent,
}

impl Seen {
    fn from_error(e: &io::Error) -> Seen {
        match e.kind() {
            io::ErrorKind::ConnectionReset => Seen::Reset,
            k => Seen::Error(k),
        }
    }

    fn status(&self) -> Option<&str> {
        match self {
            Seen::Head(h) => h.lines().next(),
            _ => None,
        }
    }
}

/// Reads until a response head is complete, the connection ends, or `within` passes. Reads
/// byte by byte, so nothing after the head is consumed.
async fn read_head(s: &mut TcpStream, within: Duration) -> Seen {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 1];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) if got.is_empty() => return Seen::Silent,
            Err(_) => return Seen::Eof(got),
            Ok(Ok(0)) => return Seen::Eof(got),
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    return Seen::Head(String::from_utf8_lossy(&got[..end + 4]).into_owned());
                }
            }
            Ok(Err(e)) => return Seen::from_error(&e),
        }
    }
}

/// Connects, sends `request`, and reports what came back and how long it took.
async fn exchange(addr: SocketAddr, request: &[u8], within: Duration) -> (Seen, Duration) {
    let mut s = connect(addr).await;
    let t0 = Instant::now();
    if let Err(e) = s.write_all(request).await {
        return (Seen::from_error(&e), t0.elapsed());
    }
    let seen = read_head(&mut s, within).await;
    (seen, t0.elapsed())
}

/// Reads one whole response: the head, then `Content-Length` bytes of body.
async fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let head = match read_head(s, WAIT).await {
        Seen::Head(h) => h,
        other => panic!("expected a response, got {other:?}"),
    };
    let mut body = vec![0u8; content_length(&head)];
    let mut out = head.into_bytes();
    tokio::time::timeout(WAIT, s.read_exact(&mut body))
        .await
        .expect("in time")
        .expect("the body");
    out.extend_from_slice(&body);
    out
}

/// Reads everything until EOF (or error / `within`), noting when the first byte and the end
/// arrived and how the bytes came in.
struct Drained {
    bytes: Vec<u8>,
    reads: Vec<usize>,
    first_byte: Option<Duration>,
    end: Option<Duration>,
    error: Option<io::ErrorKind>,
}

async fn drain(s: &mut TcpStream, t0: Instant, within: Duration) -> Drained {
    let deadline = Instant::now() + within;
    let mut d = Drained {
        bytes: Vec::new(),
        reads: Vec::new(),
        first_byte: None,
        end: None,
        error: None,
    };
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return d,
            Ok(Ok(0)) => {
                d.end = Some(t0.elapsed());
                return d;
            }
            Ok(Ok(n)) => {
                d.first_byte.get_or_insert(t0.elapsed());
                d.reads.push(n);
                d.bytes.extend_from_slice(&buf[..n]);
            }
            Ok(Err(e)) => {
                d.end = Some(t0.elapsed());
                d.error = Some(e.kind());
                return d;
            }
        }
    }
}

/// Waits for a `fault_applied` event whose fault JSON contains `needle`.
async fn wait_applied(em: &RunningEmulator, needle: &str) -> (Option<u64>, String) {
    let event = em
        .events()
        .wait_for(WAIT, |e| {
            matches!(&e.kind, EventKind::FaultApplied { fault, .. } if fault.to_string().contains(needle))
        })
        .await
        .unwrap_or_else(|| panic!("a fault_applied event for {needle}"));
    match event.kind {
        EventKind::FaultApplied { conn, detail, .. } => (conn, detail),
        _ => unreachable!("matched above"),
    }
}

fn applied_count(em: &RunningEmulator) -> usize {
    em.events()
        .snapshot()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::FaultApplied { .. }))
        .count()
}

fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

async fn ws_connect(
    addr: SocketAddr,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    tungstenite::Error,
> {
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(ws_url(addr)))
        .await
        .expect("the handshake ends in time")
        .map(|(ws, _)| ws)
}

fn io_kind(e: &tungstenite::Error) -> Option<io::ErrorKind> {
    match e {
        tungstenite::Error::Io(e) => Some(e.kind()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Connect faults
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refuse_window_gives_econnrefused_then_the_same_port_serves() {
    let em = start(&[r#"{ "when": { "for": "400ms" }, "fault": "refuse" }"#]).await;
    let addr = em.http_addr();
    let (conn, detail) = wait_applied(&em, "refuse").await;
    assert_eq!(conn, None);
    assert!(detail.contains("refused"), "{detail}");

    let err = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    let err = ws_connect(addr).await.expect_err("refused");
    assert_eq!(
        io_kind(&err),
        Some(io::ErrorKind::ConnectionRefused),
        "{err}"
    );

    // After the window the same port listens again. Bounded: 100 attempts over at most 5 s.
    let mut served_at = None;
    for _ in 0..100 {
        match TcpStream::connect(addr).await {
            Ok(_) => {
                served_at = Some(em.events().elapsed());
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let served_at = served_at.expect("the port came back");
    assert!(served_at >= Duration::from_millis(400), "{served_at:?}");
    let (seen, _) = exchange(addr, GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn reset_on_accept_is_connection_reset_by_peer() {
    let em = start(&[r#"{ "when": { "connections": "1-2" }, "fault": "reset_on_accept" }"#]).await;
    let addr = em.http_addr();
    // Raw socket: connected, then RST before any byte.
    let mut s = connect(addr).await;
    let (conn, _) = wait_applied(&em, "reset_on_accept").await;
    em.events()
        .wait_for(
            WAIT,
            |e| matches!(e.kind, EventKind::TcpClosed { conn: c, .. } if Some(c) == conn),
        )
        .await
        .expect("the reset happened");
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).await.expect_err("reset");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);

    // A WebSocket client: the handshake fails with an I/O error, ECONNRESET.
    let err = ws_connect(addr).await.expect_err("reset");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::ConnectionReset), "{err}");

    // The third connection is served.
    let (seen, _) = exchange(addr, GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn close_on_accept_is_eof_before_any_byte() {
    let em = start(&[r#"{ "when": { "connections": "1-2" }, "fault": "close_on_accept" }"#]).await;
    let addr = em.http_addr();
    let (seen, _) = exchange(addr, GET, WAIT).await;
    assert_eq!(seen, Seen::Eof(Vec::new()));
    wait_applied(&em, "close_on_accept").await;

    let err = ws_connect(addr).await.expect_err("closed");
    assert!(
        matches!(
            err,
            tungstenite::Error::Protocol(tungstenite::error::ProtocolError::HandshakeIncomplete)
        ),
        "{err:?}"
    );
    let (seen, _) = exchange(addr, GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn stall_holds_the_connection_silent_while_others_are_served() {
    let em = start(&[r#"{ "when": { "connections": "1" }, "fault": "stall" }"#]).await;
    let addr = em.http_addr();
    let mut stalled = connect(addr).await;
    stalled.write_all(GET).await.expect("request sent");
    wait_applied(&em, "stall").await;
    // The next connection is served while the first one hangs.
    let (seen, _) = exchange(addr, GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    assert_eq!(read_head(&mut stalled, SILENCE).await, Seen::Silent);
    // A WebSocket client with a handshake timeout sees that timeout (here: a 3rd stall rule).
    em.faults()
        .add(rule(
            r#"{ "when": { "connections": "3" }, "fault": "stall" }"#,
        ))
        .expect("added");
    let handshake = tokio::time::timeout(SILENCE, tokio_tungstenite::connect_async(ws_url(addr)));
    assert!(handshake.await.is_err(), "the handshake must time out");
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn stall_with_a_window_ends_when_the_window_does() {
    let em = start(&[r#"{ "when": { "for": "600ms" }, "fault": "stall" }"#]).await;
    let addr = em.http_addr();
    let mut s = connect(addr).await;
    s.write_all(GET).await.expect("request sent");
    let t0 = Instant::now();
    let (_, detail) = wait_applied(&em, "stall").await;
    assert!(detail.contains("held unanswered for"), "{detail}");
    let d = drain(&mut s, t0, WAIT).await;
    let at_end = em.events().elapsed();
    assert!(d.bytes.is_empty());
    // The request was never read, so the close is an RST.
    assert_eq!(d.error, Some(io::ErrorKind::ConnectionReset));
    assert!(at_end >= Duration::from_millis(600), "{at_end:?}");
    // After the window, connections are served.
    let (seen, _) = exchange(addr, GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    em.shutdown(WAIT).await;
}

// ---------------------------------------------------------------------------------------------
// Stream faults (on the raw TCP bytes; HTTP and WebSocket on top)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn latency_delays_the_response() {
    let em = start(&[
        r#"{ "when": { "connections": "2" }, "fault": { "stream": "latency", "latency": "400ms" } }"#,
    ])
    .await;
    let addr = em.http_addr();
    let (seen, control) = exchange(addr, GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    let (seen, delayed) = exchange(addr, GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    assert!(delayed >= Duration::from_millis(400), "{delayed:?}");
    assert!(
        delayed >= control + Duration::from_millis(200),
        "{control:?} vs {delayed:?}"
    );
    let (conn, detail) = wait_applied(&em, "latency").await;
    assert_eq!(conn, Some(2));
    assert!(detail.contains("latency"), "{detail}");
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn latency_with_jitter_stays_within_its_bounds() {
    let em =
        start(&[r#"{ "fault": { "stream": "latency", "latency": "300ms", "jitter": "100ms" } }"#])
            .await;
    for _ in 0..3 {
        let (seen, took) = exchange(em.http_addr(), GET_SMALL, WAIT).await;
        assert_eq!(seen.status(), Some("HTTP/1.1 302 Temporary Redirect"));
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took <= Duration::from_millis(600), "{took:?}");
    }
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn upstream_latency_delays_what_the_device_reads() {
    let em = start(&[
        r#"{ "fault": { "stream": "latency", "latency": "300ms", "direction": "upstream" } }"#,
    ])
    .await;
    let (seen, took) = exchange(em.http_addr(), GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    assert!(took >= Duration::from_millis(300), "{took:?}");
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn bandwidth_limits_the_rate() {
    let em = start(&[
        r#"{ "when": { "connections": "2" }, "fault": { "stream": "bandwidth", "rate": 1 } }"#,
    ])
    .await;
    let addr = em.http_addr();
    let mut s = connect(addr).await;
    s.write_all(GET).await.expect("sent");
    let fast = read_response(&mut s).await;
    let total = fast.len();
    assert!(
        total > 300,
        "the portal page is big enough to measure: {total}"
    );

    let mut s = connect(addr).await;
    let t0 = Instant::now();
    s.write_all(GET).await.expect("sent");
    let got = read_response(&mut s).await;
    let took = t0.elapsed();
    assert_eq!(got, fast, "the same bytes, only slower");
    // 1 KB/s, released in 100 ms portions (100 bytes): the last portion arrives after the
    // others' time.
    let expected = Duration::from_secs_f64((total.saturating_sub(100)) as f64 / 1000.0);
    assert!(
        took + SLACK >= expected,
        "{took:?} < {expected:?} for {total} bytes"
    );
    assert!(
        took <= expected + Duration::from_millis(600),
        "{took:?} for {total} bytes"
    );
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn slicer_sends_small_pieces_apart() {
    let em = start(&[
        r#"{ "when": { "connections": "2" }, "fault": { "stream": "slicer", "average_size": 16, "delay": "15ms" } }"#,
    ])
    .await;
    let addr = em.http_addr();
    let mut s = connect(addr).await;
    s.write_all(GET_505).await.expect("sent");
    let t0 = Instant::now();
    let whole = drain(&mut s, t0, WAIT).await;
    assert!(whole.end.is_some(), "505 closes");
    let len = whole.bytes.len();

    let mut s = connect(addr).await;
    s.write_all(GET_505).await.expect("sent");
    let t0 = Instant::now();
    let sliced = drain(&mut s, t0, WAIT).await;
    assert_eq!(sliced.bytes, whole.bytes);
    let slices = len.div_ceil(16);
    let took = sliced.end.expect("closed");
    let min = Duration::from_millis(15) * u32::try_from(slices - 1).expect("few slices");
    assert!(
        took + SLACK >= min,
        "{took:?} < {min:?} for {slices} slices"
    );
    // Reads follow the slices (a late reader may see two together, never a whole response).
    assert!(sliced.reads.len() >= slices / 2, "{:?}", sliced.reads);
    assert!(sliced.reads.iter().all(|&n| n < len), "{:?}", sliced.reads);
    em.shutdown(WAIT).await;
}

/// The full `101` for [`UPGRADE`], read from an unfaulted connection.
async fn full_101(addr: SocketAddr) -> Vec<u8> {
    let (seen, _) = exchange(addr, UPGRADE, WAIT).await;
    match seen {
        Seen::Head(h) => {
            assert!(h.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{h}");
            h.into_bytes()
        }
        other => panic!("expected a 101, got {other:?}"),
    }
}

#[tokio::test]
async fn limit_data_cuts_the_101_at_n_bytes() {
    let em = start(&[]).await;
    let addr = em.http_addr();
    let whole = full_101(addr).await;
    // Added at run time: it affects the next connection.
    em.faults()
        .add(rule(
            r#"{ "fault": { "stream": "limit_data", "bytes": 40 } }"#,
        ))
        .expect("added");
    let mut s = connect(addr).await;
    s.write_all(UPGRADE).await.expect("sent");
    let d = drain(&mut s, Instant::now(), WAIT).await;
    assert_eq!(d.bytes, whole[..40].to_vec(), "exactly the first 40 bytes");
    assert!(d.end.is_some() && d.error.is_none(), "then FIN");

    let err = ws_connect(addr).await.expect_err("the 101 is cut");
    assert!(
        matches!(
            err,
            tungstenite::Error::Protocol(tungstenite::error::ProtocolError::HandshakeIncomplete)
        ),
        "{err:?}"
    );
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn limit_data_cuts_inside_a_websocket_frame() {
    let em = start(&[]).await;
    let addr = em.http_addr();
    let len = full_101(addr).await.len();
    // The 101 passes, then 3 bytes of the first frame (the welcome), then FIN.
    em.faults()
        .add(rule(&format!(
            r#"{{ "fault": {{ "stream": "limit_data", "bytes": {} }} }}"#,
            len + 3
        )))
        .expect("added");
    let mut ws = ws_connect(addr).await.expect("the 101 passes");
    ws.send(Message::text(HELLO)).await.expect("hello sent");
    let next = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time");
    match next {
        Some(Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ))) => {}
        other => panic!("expected the truncated frame to end the connection, got {other:?}"),
    }
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn reset_peer_resets_an_open_websocket_after_its_timeout() {
    let em = start(&[r#"{ "fault": { "stream": "reset_peer", "timeout": "400ms" } }"#]).await;
    let t0 = Instant::now();
    let mut ws = ws_connect(em.http_addr()).await.expect("opens");
    let next = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("ends in time");
    let took = t0.elapsed();
    match next {
        Some(Err(e)) => assert_eq!(io_kind(&e), Some(io::ErrorKind::ConnectionReset), "{e}"),
        other => panic!("expected ECONNRESET, got {other:?}"),
    }
    assert!(took + SLACK >= Duration::from_millis(400), "{took:?}");
    wait_applied(&em, "reset_peer").await;
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn timeout_drops_data_then_closes() {
    let em = start(&[
        r#"{ "when": { "connections": "1" }, "fault": { "stream": "timeout", "timeout": "400ms" } }"#,
        r#"{ "when": { "connections": "2" }, "fault": { "stream": "timeout" } }"#,
    ])
    .await;
    let addr = em.http_addr();
    let mut s = connect(addr).await;
    let t0 = Instant::now();
    s.write_all(GET).await.expect("sent");
    let d = drain(&mut s, t0, WAIT).await;
    assert!(d.bytes.is_empty(), "no answer");
    assert_eq!(d.error, None, "FIN, not RST");
    let end = d.end.expect("closed");
    assert!(end + SLACK >= Duration::from_millis(400), "{end:?}");

    // `timeout: 0` never closes: silence.
    let (seen, _) = exchange(addr, GET, SILENCE).await;
    assert_eq!(seen, Seen::Silent);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn slow_close_holds_back_the_fin() {
    let em = start(&[
        r#"{ "when": { "connections": "2" }, "fault": { "stream": "slow_close", "delay": "400ms" } }"#,
    ])
    .await;
    let addr = em.http_addr();
    for (n, min_gap) in [(1, Duration::ZERO), (2, Duration::from_millis(400))] {
        let mut s = connect(addr).await;
        s.write_all(GET_505).await.expect("sent");
        let d = drain(&mut s, Instant::now(), WAIT).await;
        assert!(
            String::from_utf8_lossy(&d.bytes).starts_with("HTTP/1.1 505"),
            "connection {n}"
        );
        let gap = d.end.expect("closed") - d.first_byte.expect("answered");
        assert!(
            gap + SLACK >= min_gap,
            "connection {n}: FIN {gap:?} after the reply"
        );
        if n == 1 {
            assert!(gap < Duration::from_millis(300), "control: {gap:?}");
        }
    }
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn half_open_is_silence_until_the_client_gives_up() {
    let em = start(&[r#"{ "fault": { "stream": "half_open" } }"#]).await;
    let addr = em.http_addr();
    let (seen, _) = exchange(addr, GET, SILENCE).await;
    assert_eq!(seen, Seen::Silent, "no byte, no FIN, no RST");
    // A WebSocket client only learns through its own timeout.
    let handshake = tokio::time::timeout(SILENCE, tokio_tungstenite::connect_async(ws_url(addr)));
    assert!(handshake.await.is_err(), "the handshake must time out");
    wait_applied(&em, "half_open").await;
    em.shutdown(WAIT).await;
}

// ---------------------------------------------------------------------------------------------
// Triggers and run-time changes
// ---------------------------------------------------------------------------------------------

/// Served (a response head) or reset, for a sequence of fresh connections.
async fn outcomes(addr: SocketAddr, n: usize) -> Vec<bool> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (seen, _) = exchange(addr, GET_SMALL, WAIT).await;
        match seen {
            Seen::Head(_) => out.push(true),
            Seen::Reset => out.push(false),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn every_third_connection_is_reset() {
    let em = start(&[r#"{ "when": { "every": 3 }, "fault": "reset_on_accept" }"#]).await;
    let seen = outcomes(em.http_addr(), 6).await;
    assert_eq!(seen, [true, true, false, true, true, false]);
    assert_eq!(applied_count(&em), 2);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_rule_after_an_event_arms_when_the_event_is_observed() {
    let em = start(&[r#"{ "when": { "after": "provision" }, "fault": "reset_on_accept" }"#]).await;
    let addr = em.http_addr();
    assert_eq!(outcomes(addr, 2).await, [true, true]);
    // The WebSocket service reports each app message type like this.
    em.faults().observe("provision", em.events().elapsed());
    assert_eq!(outcomes(addr, 2).await, [false, false]);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn probability_replays_with_the_seed() {
    const RULE: &str = r#"{ "when": { "probability": 0.5 }, "fault": "reset_on_accept" }"#;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let em = start_with(&[RULE], 7, false).await;
        let seen = outcomes(em.http_addr(), 10).await;
        assert_eq!(
            applied_count(&em),
            seen.iter().filter(|served| !**served).count()
        );
        em.shutdown(WAIT).await;
        runs.push(seen);
    }
    assert_eq!(runs[0], runs[1], "same seed, same outcomes");
    assert!(
        runs[0].contains(&true) && runs[0].contains(&false),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn service_trigger_picks_http_or_https() {
    let em = start_with(
        &[r#"{ "when": { "service": "https" }, "fault": "reset_on_accept" }"#],
        0,
        true,
    )
    .await;
    let https = em.https_addr().expect("tls on");
    let (seen, _) = exchange(https, b"\x16\x03\x01\x00\x05hello", WAIT).await;
    assert_eq!(seen, Seen::Reset);
    let (seen, _) = exchange(em.http_addr(), GET, WAIT).await;
    assert_eq!(seen.status(), Some("HTTP/1.1 200 OK"));
    // Ordinals count per service: the first http connection was number 1.
    em.faults()
        .add(rule(
            r#"{ "when": { "service": "http", "connections": "2" }, "fault": "reset_on_accept" }"#,
        ))
        .expect("added");
    assert_eq!(outcomes(em.http_addr(), 2).await, [false, true]);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn rules_added_removed_and_reset_at_run_time() {
    let em = start(&[]).await;
    let addr = em.http_addr();
    assert_eq!(outcomes(addr, 1).await, [true]);
    let id = em
        .faults()
        .add(rule(r#"{ "fault": "reset_on_accept" }"#))
        .expect("added");
    assert_eq!(outcomes(addr, 2).await, [false, false]);
    em.faults().remove(id).expect("removed");
    assert_eq!(outcomes(addr, 1).await, [true]);

    em.faults()
        .add(rule(r#"{ "fault": { "stream": "half_open" } }"#))
        .expect("added");
    let (seen, _) = exchange(addr, GET, SILENCE).await;
    assert_eq!(seen, Seen::Silent);
    em.faults().reset();
    assert_eq!(outcomes(addr, 1).await, [true]);

    // A refuse rule added at run time closes the port; reset() opens it again.
    em.faults()
        .add(rule(r#"{ "fault": "refuse" }"#))
        .expect("added");
    wait_applied(&em, "refuse").await;
    let err = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    em.faults().reset();
    let mut back = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "the port listens again after reset()");
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn stream_faults_apply_under_tls() {
    // The faults hit the raw TCP bytes, so the TLS handshake itself is delayed.
    let em = start_with(
        &[r#"{ "when": { "service": "https" }, "fault": { "stream": "limit_data", "bytes": 10 } }"#],
        0,
        true,
    )
    .await;
    let https = em.https_addr().expect("tls on");
    // A TLS ClientHello prefix; the ServerHello is cut after 10 bytes whatever it says.
    let mut s = connect(https).await;
    let hello = tls_client_hello();
    s.write_all(&hello).await.expect("sent");
    let d = drain(&mut s, Instant::now(), WAIT).await;
    assert_eq!(d.bytes.len(), 10, "{:?}", d.bytes);
    assert_eq!(d.bytes[0], 0x16, "a TLS handshake record, cut");
    em.shutdown(WAIT).await;
}

/// A minimal TLS 1.2 ClientHello (one cipher suite the server supports).
fn tls_client_hello() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0x03, 0x03]); // client_version TLS 1.2
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2f, 0xc0, 0x2b]); // ECDHE-RSA/ECDSA-AES128-GCM
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut ext = Vec::new();
    // supported_groups: x25519, secp256r1
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);
    // extended_master_secret
    ext.extend_from_slice(&[0x00, 0x17, 0x00, 0x00]);
    body.extend_from_slice(&u16::try_from(ext.len()).expect("short").to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&u16::try_from(body.len()).expect("short").to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&u16::try_from(hs.len()).expect("short").to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}
