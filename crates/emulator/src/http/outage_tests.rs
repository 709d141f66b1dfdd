//! Outages on the device port as an app sees them, driven through the device host's outage
//! (the device timeline sets it for `reboot` and `ap_down`): real sockets on 127.0.0.1.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use espsim_faults::FaultRule;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::device_host::Outage;
use crate::{Emulator, EmulatorConfig, RunningEmulator};

const WAIT: Duration = Duration::from_secs(5);
const SILENCE: Duration = Duration::from_millis(400);
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n";
const HELLO: &str = r#"{"type":"hello","id":1,"client":"it","version":"1"}"#;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn start(rules: &[&str]) -> RunningEmulator {
    let faults = rules
        .iter()
        .map(|r| serde_json::from_str::<FaultRule>(r).expect("a valid rule"))
        .collect();
    Emulator::start(EmulatorConfig {
        dns: None,
        faults,
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts")
}

/// What one read gave: bytes, EOF, an error kind, or nothing within `within`.
#[derive(Debug, PartialEq)]
enum Read {
    Data,
    Eof,
    Error(io::ErrorKind),
    Silent,
}

async fn read_once(s: &mut TcpStream, within: Duration) -> Read {
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Err(_) => Read::Silent,
        Ok(Ok(0)) => Read::Eof,
        Ok(Ok(_)) => Read::Data,
        Ok(Err(e)) => Read::Error(e.kind()),
    }
}

/// A keep-alive connection that has been served once (the whole 200 read).
async fn served_connection(addr: SocketAddr) -> TcpStream {
    let mut s = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("in time")
        .expect("connects");
    s.write_all(GET).await.expect("sent");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"</html>") && !String::from_utf8_lossy(&got).contains("</html>") {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("in time")
            .expect("reads");
        assert!(n > 0, "EOF while reading the portal page");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    s
}

/// An open WebSocket session that has said hello.
async fn open_session(addr: SocketAddr) -> Ws {
    let (mut ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("in time")
    .expect("opens");
    ws.send(Message::text(HELLO)).await.expect("hello");
    let reply = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("welcome");
    assert!(reply.to_text().expect("text").contains("welcome"));
    ws
}

fn ws_io_kind(next: Option<Result<Message, tungstenite::Error>>) -> Option<io::ErrorKind> {
    match next {
        Some(Err(tungstenite::Error::Io(e))) => Some(e.kind()),
        _ => None,
    }
}

/// Connect attempts, 25 ms apart, at most 80: until one `want`s to succeed or be refused.
async fn until_connect(addr: SocketAddr, want_ok: bool) -> Option<TcpStream> {
    for _ in 0..80 {
        match TcpStream::connect(addr).await {
            Ok(s) if want_ok => return Some(s),
            Err(e) if !want_ok => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                return None;
            }
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    panic!(
        "the port never became {}",
        if want_ok { "open" } else { "refusing" }
    );
}

#[tokio::test]
async fn reboot_resets_every_open_connection_and_refuses_new_ones() {
    let em = start(&[
        r#"{ "when": { "connections": "3" }, "fault": { "stream": "latency", "latency": "20ms" } }"#,
        r#"{ "when": { "connections": "4" }, "fault": { "stream": "half_open" } }"#,
        r#"{ "when": { "connections": "5" }, "fault": "stall" }"#,
    ])
    .await;
    let addr = em.http_addr();
    let mut idle = served_connection(addr).await; // 1
    let mut ws = open_session(addr).await; // 2
    let mut piped = served_connection(addr).await; // 3: through the fault pump
    let mut half_open = TcpStream::connect(addr).await.expect("connects"); // 4
    half_open.write_all(GET).await.expect("sent");
    let mut stalled = TcpStream::connect(addr).await.expect("connects"); // 5
    em.events()
        .wait_for(WAIT, |e| {
            matches!(&e.kind, crate::events::EventKind::FaultApplied { fault, .. } if fault == "stall")
        })
        .await
        .expect("the stall is in place");
    assert_eq!(
        read_once(&mut half_open, Duration::from_millis(100)).await,
        Read::Silent
    );

    em.device.force_outage(Outage::Rebooting);

    let reset = Read::Error(io::ErrorKind::ConnectionReset);
    assert_eq!(read_once(&mut idle, WAIT).await, reset);
    let next = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time");
    assert_eq!(ws_io_kind(next), Some(io::ErrorKind::ConnectionReset));
    assert_eq!(read_once(&mut piped, WAIT).await, reset);
    assert_eq!(read_once(&mut half_open, WAIT).await, reset);
    assert_eq!(read_once(&mut stalled, WAIT).await, reset);
    until_connect(addr, false).await;
    assert_eq!(em.session_count(), 0, "the session ended");

    em.device.force_outage(Outage::None);
    until_connect(addr, true).await.expect("listening again");
    served_connection(addr).await;
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn ap_down_silences_everything_then_resets_when_back() {
    let em = start(&[
        r#"{ "when": { "connections": "3" }, "fault": { "stream": "latency", "latency": "20ms" } }"#,
    ])
    .await;
    let addr = em.http_addr();
    let mut idle = served_connection(addr).await; // 1
    let mut ws = open_session(addr).await; // 2
    let mut piped = served_connection(addr).await; // 3

    em.device.force_outage(Outage::ApDown);

    // Requests on open connections get no answer, no FIN, no RST.
    idle.write_all(GET).await.expect("the write is buffered");
    piped.write_all(GET).await.expect("the write is buffered");
    ws.send(Message::text(HELLO)).await.expect("buffered");
    assert_eq!(read_once(&mut idle, SILENCE).await, Read::Silent);
    assert_eq!(read_once(&mut piped, SILENCE).await, Read::Silent);
    assert!(
        tokio::time::timeout(SILENCE, ws.next()).await.is_err(),
        "ws silent"
    );
    // A new connection: the kernel completes it, the device never answers.
    let mut fresh = TcpStream::connect(addr)
        .await
        .expect("connects on loopback");
    fresh.write_all(GET).await.expect("sent");
    assert_eq!(read_once(&mut fresh, SILENCE).await, Read::Silent);
    // A WebSocket client sees its own handshake timeout.
    let handshake = tokio::time::timeout(
        SILENCE,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    );
    assert!(handshake.await.is_err(), "the handshake times out");

    em.device.force_outage(Outage::None);

    let reset = Read::Error(io::ErrorKind::ConnectionReset);
    assert_eq!(read_once(&mut idle, WAIT).await, reset);
    assert_eq!(read_once(&mut piped, WAIT).await, reset);
    assert_eq!(read_once(&mut fresh, WAIT).await, reset);
    let next = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time");
    assert_eq!(ws_io_kind(next), Some(io::ErrorKind::ConnectionReset));
    // And the device serves again.
    served_connection(addr).await;
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_session_the_device_drops_while_the_ap_is_down_stays_silent_then_resets() {
    let em = start(&[
        r#"{ "when": { "connections": "2" }, "fault": { "stream": "latency", "latency": "10ms" } }"#,
    ])
    .await;
    let addr = em.http_addr();
    let mut direct = open_session(addr).await;
    let mut piped = open_session(addr).await;
    // The device timeline's order: the outage first, then the firmware forgets its sessions.
    em.device.force_outage(Outage::ApDown);
    assert_eq!(em.device.drop_all_sessions("softAP down"), 2);
    for ws in [&mut direct, &mut piped] {
        assert!(
            tokio::time::timeout(SILENCE, ws.next()).await.is_err(),
            "no close frame, FIN or RST while the AP is down"
        );
    }
    em.device.force_outage(Outage::None);
    for ws in [&mut direct, &mut piped] {
        let next = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time");
        assert_eq!(ws_io_kind(next), Some(io::ErrorKind::ConnectionReset));
    }
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn shutdown_during_ap_down_releases_held_connections() {
    let em = start(&[]).await;
    let addr = em.http_addr();
    let mut idle = served_connection(addr).await;
    em.device.force_outage(Outage::ApDown);
    let mut fresh = TcpStream::connect(addr).await.expect("connects");
    idle.write_all(GET).await.expect("buffered");
    assert_eq!(
        read_once(&mut idle, Duration::from_millis(100)).await,
        Read::Silent
    );
    let events = em.events().clone();
    em.shutdown(WAIT).await;
    // Held sockets are closed by shutdown (within the grace), not left open.
    assert_ne!(read_once(&mut fresh, WAIT).await, Read::Silent);
    assert_ne!(read_once(&mut idle, WAIT).await, Read::Silent);
    assert!(
        events
            .snapshot()
            .iter()
            .any(|e| matches!(&e.kind, crate::events::EventKind::TcpClosed { reason, .. } if reason == "shutdown"))
    );
}
