//! Runtime bounds, end to end over loopback: a WebSocket session's outbox (an app that does not
//! read while a `ws: delay` holds the device's messages) and the shutdown's close handshake (an
//! app that never answers the close frame), each judged by what the app and the event log see.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use espsim_emulator::events::{Event, EventKind, Side};
use espsim_emulator::{EmulatorConfig, RunningEmulator};
use support::start_without_dns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const GOOD_101: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
/// What `espsim run` and `espsim test` give the shutdown.
const CLI_GRACE: Duration = Duration::from_millis(800);

/// Upgrades a raw TCP connection and reads exactly the `101`; from then on the test decides
/// what this app reads and answers (nothing, here).
async fn raw_session(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut head = vec![0u8; GOOD_101.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("101 in time")
        .expect("101 read");
    assert_eq!(String::from_utf8_lossy(&head), GOOD_101);
    s
}

/// The connection id of the newest `ws_opened`.
async fn opened(e: &RunningEmulator) -> u64 {
    let event = e
        .events()
        .wait_for(WAIT, |ev| matches!(ev.kind, EventKind::WsOpened { .. }))
        .await
        .expect("ws_opened");
    match event.kind {
        EventKind::WsOpened { conn, .. } => conn,
        _ => unreachable!(),
    }
}

fn is_closed(ev: &Event, which: u64) -> bool {
    matches!(&ev.kind, EventKind::WsClosed { conn, .. } if *conn == which)
}

#[tokio::test]
async fn an_app_that_does_not_read_while_a_delay_holds_the_device_messages_is_closed_at_the_outbox_bound()
 {
    let rule = serde_json::from_str(r#"{"fault":{"ws":"delay","delay":"10m"}}"#).expect("rule");
    let e = start_without_dns(EmulatorConfig {
        faults: vec![rule],
        ..EmulatorConfig::default()
    })
    .await;
    let _app = raw_session(e.http_addr()).await;
    let conn = opened(&e).await;
    // Each press is a broadcast `event` to every session: the first is held for 10 minutes,
    // the rest wait behind it. Twice the bound is plenty; a queue without one takes them all.
    let started = Instant::now();
    for _ in 0..128 {
        e.press_button();
    }
    let closed = e
        .events()
        .wait_for(WAIT, |ev| is_closed(ev, conn))
        .await
        .expect("the session is closed once its outbox is full, not after the 10-minute delay");
    let EventKind::WsClosed {
        by,
        code,
        reason,
        clean,
        ..
    } = closed.kind
    else {
        unreachable!()
    };
    assert_eq!((by, code, clean), (Side::Device, None, false), "{reason}");
    assert!(
        reason.contains("send queue full") && reason.contains("limit 64"),
        "reason names the bound: {reason}"
    );
    assert!(started.elapsed() < WAIT);
    assert_eq!(e.session_count(), 0, "the device forgot the session");
    e.shutdown(CLI_GRACE).await;
}

#[tokio::test]
async fn shutdown_records_the_close_of_an_app_that_never_answers_the_close_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.jsonl");
    let e = start_without_dns(EmulatorConfig {
        events_file: Some(path.clone()),
        ..EmulatorConfig::default()
    })
    .await;
    let mut app = raw_session(e.http_addr()).await;
    let conn = opened(&e).await;

    let started = Instant::now();
    e.shutdown(CLI_GRACE).await;
    let took = started.elapsed();
    assert!(
        took < CLI_GRACE * 2,
        "shutdown took {took:?} (grace {CLI_GRACE:?})"
    );

    // Read at once: `espsim run` exits right after the shutdown returns.
    let text = std::fs::read_to_string(&path).expect("events file");
    let events: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let stopping = events
        .iter()
        .position(|ev| ev.kind == EventKind::Stopping)
        .expect("stopping in the file");
    let closed = events
        .iter()
        .position(|ev| is_closed(ev, conn))
        .unwrap_or_else(|| panic!("no ws_closed for conn {conn} in the file:\n{text}"));
    assert!(closed > stopping, "the close follows `stopping`");
    let EventKind::WsClosed {
        by, code, clean, ..
    } = &events[closed].kind
    else {
        unreachable!()
    };
    assert_eq!((*by, *code, *clean), (Side::Device, Some(1001), false));

    // The app got the close frame 1001, then the connection ended.
    let mut wire = Vec::new();
    let _ = tokio::time::timeout(WAIT, app.read_to_end(&mut wire)).await;
    assert!(
        wire.starts_with(&[0x88, 12, 0x03, 0xe9]) && wire[4..].starts_with(b"going away"),
        "close 1001 on the wire, got {wire:02x?}"
    );
}
