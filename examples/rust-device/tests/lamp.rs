//! The lamp hosted by espsim as a library, over real sockets: its own text protocol through the
//! emulated httpd and WebSocket, broadcast to other sessions, a stream counted tick by tick, an
//! HTTP route framed like ESP-IDF's, a device close, and a fault rule acting on its messages.

use std::time::Duration;

use espsim_emulator::{DeviceSource, Emulator, EmulatorConfig, RunningEmulator};
use espsim_example_rust_device::Lamp;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(faults: &[&str]) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        device_logic: DeviceSource::custom(|_seed| Box::new(Lamp::new())),
        faults: faults
            .iter()
            .map(|rule| serde_json::from_str(rule).expect("rule parses"))
            .collect(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

async fn connect(e: &RunningEmulator) -> Client {
    let url = format!("ws://{}/ws", e.http_addr());
    let mut ws = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake ends in time")
        .expect("handshake succeeds")
        .0;
    assert_eq!(next(&mut ws).await, Message::text("READY lamp"));
    ws
}

async fn next(ws: &mut Client) -> Message {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("frame")
}

async fn ask(ws: &mut Client, text: &str) -> Message {
    ws.send(Message::text(text)).await.expect("send");
    next(ws).await
}

#[tokio::test]
async fn the_lamp_speaks_its_own_protocol_through_the_emulated_device() {
    let emulator = start(&[]).await;
    let mut first = connect(&emulator).await;
    let mut second = connect(&emulator).await;

    assert_eq!(ask(&mut first, "PING").await, Message::text("PONG"));
    assert_eq!(ask(&mut first, "LED ON").await, Message::text("OK LED ON"));
    assert_eq!(
        next(&mut second).await,
        Message::text("EVT LED ON"),
        "the others hear it"
    );
    assert_eq!(
        ask(&mut second, "hello?").await,
        Message::text("ERR unknown command")
    );
    assert_eq!(ask(&mut second, "COUNT").await, Message::text("COUNT 4"));

    second
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    assert_eq!(next(&mut second).await, Message::binary(vec![3u8, 2, 1]));

    assert_eq!(ask(&mut first, "STREAM 100").await, Message::text("OK"));
    for seq in 1..=3 {
        assert_eq!(next(&mut first).await, Message::text(format!("TICK {seq}")));
    }
    first.send(Message::text("BYE")).await.expect("send");
    let mut close = None;
    while let Some(Ok(message)) = tokio::time::timeout(WAIT, first.next())
        .await
        .expect("in time")
    {
        match message {
            Message::Close(frame) => close = frame,
            Message::Text(t) => assert!(t.starts_with("TICK"), "{t}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let close = close.expect("a close frame");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::Normal, "bye")
    );

    // Its HTTP route, framed as esp_http_server frames every response.
    let mut tcp = TcpStream::connect(emulator.http_addr())
        .await
        .expect("connect");
    tcp.write_all(b"GET /led HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n")
        .await
        .expect("write");
    let mut response = vec![0u8; 256];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut response))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(
        String::from_utf8_lossy(&response[..n]),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\non"
    );
    emulator.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_fault_rule_drops_the_lamps_pong_by_its_label() {
    let rule = r#"{"when":{"message_type":"pong"},"fault":{"ws":"drop","direction":"out"}}"#;
    let emulator = start(&[rule]).await;
    let mut ws = connect(&emulator).await;
    ws.send(Message::text("PING")).await.expect("send");
    // The PONG is dropped; the next reply is the COUNT's.
    assert_eq!(ask(&mut ws, "COUNT").await, Message::text("COUNT 2"));
    emulator.shutdown(Duration::from_secs(1)).await;
}
