//! Regression for issue 12, item 8: `{"type":"ping","type":"reboot"}` rebooted the device (the
//! decoder kept the last key) while events and `message_type` rules saw no type at all. Now the
//! message is ambiguous and rejected whole: over a real WebSocket the app gets the protocol error,
//! the device does not reboot, and events and fault rules agree that no kind was read.

use std::time::Duration;

use espsim_emulator::events::{Direction, EventKind};
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A rule that loses the app's `reboot` messages: if it fired on the ambiguous message, the
/// app would get no reply to it.
const DROP_REBOOT: &str =
    r#"{"when":{"message_type":"reboot"},"fault":{"ws":"drop","direction":"in"}}"#;

async fn start() -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        faults: vec![serde_json::from_str(DROP_REBOOT).expect("rule parses")],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

async fn connect(e: &RunningEmulator) -> Client {
    let url = format!("ws://{}/ws", e.http_addr());
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake ends in time")
        .expect("handshake succeeds")
        .0
}

/// Sends `text` exactly as written (a `json!` value could not hold a key twice).
async fn send_raw(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

/// The next text message as JSON, within `WAIT`.
async fn next_json(ws: &mut Client) -> Value {
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("frame");
    serde_json::from_str(frame.to_text().expect("text")).expect("json")
}

#[tokio::test]
async fn a_duplicate_type_key_gets_the_protocol_error_and_does_not_reboot() {
    let e = start().await;
    let mut ws = connect(&e).await;

    // The message of the issue, byte for byte.
    send_raw(&mut ws, r#"{"type":"ping","type":"reboot"}"#).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({
            "type": "error",
            "code": "invalid_message",
            "message": "duplicate key `type` at line 1 column 21"
        })
    );
    // The escaped spelling of the same key is the same key.
    send_raw(&mut ws, r#"{"type":"ping","t\u0079pe":"reboot"}"#).await;
    assert_eq!(next_json(&mut ws).await["code"], "invalid_message");
    // A repeat elsewhere also makes the decoder reject it, so the `message_type: reboot` rule
    // must not see a `reboot` either (it would drop the message and the error never come).
    send_raw(&mut ws, r#"{"type":"reboot","id":5,"id":6}"#).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({
            "type": "error",
            "code": "invalid_message",
            "message": "duplicate key `id` at line 1 column 28"
        })
    );

    // Still the same connection to the same, running device: a reboot would have dropped it.
    send_raw(&mut ws, r#"{"type":"get_status","id":2}"#).await;
    let status = next_json(&mut ws).await;
    assert_eq!(
        (status["type"].as_str(), status["id"].as_u64()),
        (Some("status"), Some(2))
    );

    // The rule is live: a real `reboot` is dropped (the status below is the next reply).
    send_raw(&mut ws, r#"{"type":"reboot","id":3}"#).await;
    send_raw(&mut ws, r#"{"type":"get_status","id":4}"#).await;
    let status = next_json(&mut ws).await;
    assert_eq!(
        (status["type"].as_str(), status["id"].as_u64()),
        (Some("status"), Some(4))
    );

    let events = e.events().snapshot();
    let restarts = events
        .iter()
        .filter(
            |ev| matches!(&ev.kind, EventKind::DeviceAction { action, .. } if action == "restart"),
        )
        .count();
    assert_eq!(restarts, 0, "{events:#?}");
    let incoming: Vec<Option<&str>> = events
        .iter()
        .filter_map(|ev| match &ev.kind {
            EventKind::WsMessage {
                direction: Direction::In,
                msg_type,
                ..
            } => Some(msg_type.as_deref()),
            _ => None,
        })
        .collect();
    // The ambiguous messages are recorded without a kind, as the decoder read them.
    assert_eq!(
        incoming,
        [
            None,
            None,
            None,
            Some("get_status"),
            Some("reboot"),
            Some("get_status")
        ]
    );
    let fired = events
        .iter()
        .filter(|ev| matches!(ev.kind, EventKind::FaultApplied { .. }))
        .count();
    assert_eq!(
        fired, 1,
        "only the real reboot matches the rule: {events:#?}"
    );

    drop(ws);
    e.shutdown(WAIT).await;
}
