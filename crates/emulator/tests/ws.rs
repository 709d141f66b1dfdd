//! The WebSocket endpoint through the public API: `Emulator::start`, a real client, shutdown.
//!
//! They go through the device port's HTTP accept loop, which routes `/ws` to the WebSocket
//! service. The crate-internal tests (`src/ws/tests.rs`) cover each handshake and session case.

use std::time::Duration;

use espsim_emulator::events::EventKind;
use espsim_emulator::{DeviceOptions, Emulator, EmulatorConfig};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(5);

fn config() -> EmulatorConfig {
    EmulatorConfig {
        dns: None,
        device: DeviceOptions {
            device_id: Some("esp32-a1b2c3".into()),
            ..DeviceOptions::default()
        },
        ..EmulatorConfig::default()
    }
}

#[tokio::test]

async fn app_says_hello_and_shutdown_closes_with_1001() {
    let emulator = Emulator::start(config()).await.expect("starts");
    let url = format!("ws://{}/ws", emulator.http_addr());
    let (mut ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("in time")
        .expect("handshake");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("sec-websocket-extensions").is_none());

    ws.send(Message::text(
        r#"{"type":"hello","id":1,"client":"it","version":"1"}"#,
    ))
    .await
    .expect("send");
    let reply = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("frame");
    let welcome: serde_json::Value =
        serde_json::from_str(reply.to_text().expect("text")).expect("json");
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["device_id"], "esp32-a1b2c3");

    let events = emulator.events().clone();
    let reader = tokio::spawn(async move {
        let mut code = None;
        for _ in 0..16 {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => code = f.map(|f| f.code),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        code
    });
    emulator.shutdown(WAIT).await;
    assert_eq!(reader.await.expect("joins"), Some(CloseCode::Away));
    assert!(
        events
            .wait_for(WAIT, |e| matches!(e.kind, EventKind::WsOpened { .. }))
            .await
            .is_some()
    );
}

#[tokio::test]

async fn missing_version_is_closed_without_a_byte() {
    let emulator = Emulator::start(config()).await.expect("starts");
    let mut tcp = TcpStream::connect(emulator.http_addr())
        .await
        .expect("connect");
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .expect("read");
    assert!(got.is_empty(), "expected no bytes, got {got:?}");
    emulator.shutdown(WAIT).await;
}
