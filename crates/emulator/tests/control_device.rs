//! The control API's device routes over real sockets: `POST /send` reaching one session or all
//! as exact WebSocket frames, its refusals, and `GET`/`PATCH /device/state` against a small
//! device logic that exposes state (and 404 on the built-in firmware, which exposes none).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use espsim_emulator::events::EventKind;
use espsim_emulator::{ControlOptions, DeviceSource, Emulator, EmulatorConfig, RunningEmulator};
use espsim_firmware::{ConnId, DeviceLogic, Effect, Frame, Payload, SessionStart, To};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A thermostat: silent on connect, two state variables, `target` only 5..=30, and a change of
/// `target` announced to every session.
#[derive(Debug)]
struct Thermostat {
    target: i64,
    mode: String,
}

impl Default for Thermostat {
    fn default() -> Self {
        Thermostat {
            target: 21,
            mode: "heat".to_owned(),
        }
    }
}

impl DeviceLogic for Thermostat {
    fn on_connect(&mut self, _: ConnId, _: &SessionStart<'_>, _: u64) -> Vec<Effect> {
        Vec::new()
    }
    fn on_message(&mut self, _: ConnId, _: Frame<'_>, _: u64) -> Vec<Effect> {
        Vec::new()
    }
    fn on_disconnect(&mut self, _: ConnId, _: u64) -> Vec<Effect> {
        Vec::new()
    }
    fn on_tick(&mut self, _: u64) -> Vec<Effect> {
        Vec::new()
    }
    fn next_deadline(&self) -> Option<u64> {
        None
    }
    fn state(&self) -> Option<BTreeMap<String, String>> {
        Some(BTreeMap::from([
            ("target".to_owned(), self.target.to_string()),
            (
                "mode".to_owned(),
                Value::from(self.mode.as_str()).to_string(),
            ),
        ]))
    }
    fn set_state(&mut self, name: &str, json: &str, _: u64) -> Result<Vec<Effect>, String> {
        let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        match name {
            "target" => {
                let t = value
                    .as_i64()
                    .filter(|t| (5..=30).contains(t))
                    .ok_or_else(|| format!("target must be a whole number 5 to 30, got {json}"))?;
                self.target = t;
                Ok(vec![Effect::Send {
                    to: To::All,
                    payload: Payload::Text(format!("target={t}")),
                    label: "target".to_owned(),
                }])
            }
            "mode" => {
                self.mode = value
                    .as_str()
                    .ok_or_else(|| format!("mode must be a string, got {json}"))?
                    .to_owned();
                Ok(Vec::new())
            }
            other => Err(format!("no state variable `{other}`")),
        }
    }
    fn power_on(&mut self, _: u64) {}
}

async fn start(device_logic: DeviceSource) -> (RunningEmulator, Api) {
    let em = Emulator::start(EmulatorConfig {
        dns: None,
        control: Some(ControlOptions::loopback(0)),
        device_logic,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let api = Api::new(
        em.control_addr().expect("control is on"),
        em.control_token(),
    );
    (em, api)
}

fn thermostat() -> DeviceSource {
    DeviceSource::custom(|_seed| Box::new(Thermostat::default()))
}

/// A WebSocket client and its session id (the `conn` of its `ws_opened` event).
async fn open(em: &RunningEmulator, known: &[ConnId]) -> (Ws, ConnId) {
    let url = format!("ws://{}/ws", em.http_addr());
    let ws = timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds")
        .0;
    let opened = em
        .events()
        .wait_for(
            WAIT,
            |e| matches!(e.kind, EventKind::WsOpened { conn, .. } if !known.contains(&conn)),
        )
        .await
        .expect("ws_opened");
    let EventKind::WsOpened { conn, .. } = opened.kind else {
        unreachable!()
    };
    (ws, conn)
}

async fn next(ws: &mut Ws) -> Message {
    timeout(WAIT, ws.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("frame")
}

/// Nothing more arrives for a moment.
async fn quiet(ws: &mut Ws) {
    if let Ok(frame) = timeout(Duration::from_millis(200), ws.next()).await {
        panic!("expected nothing more, got {frame:?}");
    }
}

struct Api {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    fn new(addr: SocketAddr, token: Option<&str>) -> Api {
        Api {
            base: format!("http://{addr}"),
            token: token.map(str::to_owned),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// One exchange; the status and the body as JSON.
    async fn call(&self, method: Method, path: &str, body: Option<String>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let resp = timeout(WAIT, self.client.request(req))
            .await
            .expect("answer in time")
            .expect("HTTP exchange");
        let status = resp.status();
        let bytes = timeout(WAIT, resp.into_body().collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, json)
    }

    async fn send(&self, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/send", Some(body.to_string()))
            .await
    }

    async fn patch(&self, body: &str) -> (StatusCode, Value) {
        self.call(Method::PATCH, "/device/state", Some(body.to_owned()))
            .await
    }
}

/// Asserts an error answer: status, code, and words of its message.
fn refused(reply: &(StatusCode, Value), status: StatusCode, code: &str, says: &[&str]) {
    let (got, body) = reply;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let message = body["error"].as_str().expect("an error message");
    for words in says {
        assert!(message.contains(words), "`{words}` not in: {message}");
    }
}

#[tokio::test]
async fn send_reaches_one_session_or_all_as_exact_frames() {
    let (em, api) = start(thermostat()).await;
    let (mut a, id_a) = open(&em, &[]).await;
    let (mut b, id_b) = open(&em, &[id_a]).await;

    let reply = api.send(json!({"to": id_a, "text": "hello a"})).await;
    assert_eq!(reply, (StatusCode::OK, json!({"queued": 1})));
    assert_eq!(next(&mut a).await, Message::text("hello a"));

    let reply = api
        .send(json!({"to": "all", "json": {"type": "alert", "level": 2}, "label": "alert"}))
        .await;
    assert_eq!(reply, (StatusCode::OK, json!({"queued": 2})));
    let compact = Message::text(r#"{"level":2,"type":"alert"}"#);
    assert_eq!(next(&mut a).await, compact);
    assert_eq!(next(&mut b).await, compact);

    let reply = api.send(json!({"to": id_b, "hex": "a5 01 ff"})).await;
    assert_eq!(reply, (StatusCode::OK, json!({"queued": 1})));
    assert_eq!(next(&mut b).await, Message::binary(vec![0xa5, 0x01, 0xff]));

    let reply = api.send(json!({"to": "all", "base64": "aGk="})).await;
    assert_eq!(reply, (StatusCode::OK, json!({"queued": 2})));
    assert_eq!(next(&mut a).await, Message::binary(b"hi".to_vec()));
    assert_eq!(next(&mut b).await, Message::binary(b"hi".to_vec()));
    quiet(&mut a).await;
    quiet(&mut b).await;

    // Recorded: the API's action, then the message as the device's own, with its label.
    let events = em.events().snapshot();
    let sends = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "send"))
        .count();
    assert_eq!(sends, 4);
    let labelled = events.iter().any(|e| {
        matches!(&e.kind, EventKind::WsMessage { conn, msg_type: Some(t), bytes, .. }
            if *conn == id_b && t == "alert" && *bytes == compact.len())
    });
    assert!(labelled, "{events:#?}");

    drop((a, b));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn send_refusals_say_why() {
    let (em, api) = start(thermostat()).await;
    let (mut a, id_a) = open(&em, &[]).await;

    let unknown = id_a + 100;
    refused(
        &api.send(json!({"to": unknown, "text": "x"})).await,
        StatusCode::NOT_FOUND,
        "no_session",
        &[&format!("no open WebSocket session {unknown}")],
    );
    refused(
        &api.send(json!({"to": id_a, "hex": "a5 0g"})).await,
        StatusCode::BAD_REQUEST,
        "bad_payload",
        &["`hex` is not hex bytes", "`g` at offset 4"],
    );
    refused(
        &api.send(json!({"to": id_a, "hex": "a5 0"})).await,
        StatusCode::BAD_REQUEST,
        "bad_payload",
        &["must be even"],
    );
    refused(
        &api.send(json!({"to": id_a, "base64": "a*=="})).await,
        StatusCode::BAD_REQUEST,
        "bad_payload",
        &["`base64` is not base64"],
    );
    refused(
        &api.send(json!({"to": id_a, "text": "x", "hex": "a5"}))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_payload",
        &["exactly one of", "got text and hex"],
    );
    refused(
        &api.send(json!({"to": "all"})).await,
        StatusCode::BAD_REQUEST,
        "bad_payload",
        &["got none"],
    );
    let max = em.profile().max_ws_message;
    refused(
        &api.send(json!({"to": "all", "text": "x".repeat(max + 1)}))
            .await,
        StatusCode::BAD_REQUEST,
        "message_too_large",
        &[&format!("{} bytes", max + 1), &format!("({max} bytes)")],
    );
    refused(
        &api.send(json!({"to": "all", "txt": "x"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        &["unknown field `txt`"],
    );
    refused(
        &api.send(json!({"to": "everyone", "text": "x"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        &["\"all\" or a session id"],
    );
    // Without the token, nothing is sent.
    let anonymous = Api::new(em.control_addr().expect("control is on"), None);
    refused(
        &anonymous.send(json!({"to": "all", "text": "x"})).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        &[],
    );
    refused(
        &anonymous.patch(r#"{"mode": "off"}"#).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        &[],
    );
    // Exactly the largest message is fine; nothing refused reached the app.
    let reply = api.send(json!({"to": id_a, "text": "y".repeat(max)})).await;
    assert_eq!(reply, (StatusCode::OK, json!({"queued": 1})));
    assert_eq!(next(&mut a).await, Message::text("y".repeat(max)));
    quiet(&mut a).await;

    drop(a);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn device_state_reads_and_sets_through_the_logic() {
    let (em, api) = start(thermostat()).await;
    let (mut a, _) = open(&em, &[]).await;

    let reply = api.call(Method::GET, "/device/state", None).await;
    assert_eq!(
        reply,
        (
            StatusCode::OK,
            json!({"vars": {"mode": "heat", "target": 21}})
        )
    );

    let reply = api.patch(r#"{"target": 18, "mode": "eco"}"#).await;
    assert_eq!(
        reply,
        (
            StatusCode::OK,
            json!({"vars": {"mode": "eco", "target": 18}})
        )
    );
    assert_eq!(next(&mut a).await, Message::text("target=18"));

    // In order, stopping at the first refusal: `mode` is set, `target` refused, `x` not tried.
    let reply = api.patch(r#"{"mode": "off", "target": 99, "x": 1}"#).await;
    refused(
        &reply,
        StatusCode::BAD_REQUEST,
        "state_refused",
        &[
            "the device refused `target` = 99",
            "target must be a whole number 5 to 30, got 99",
            "already set: mode",
        ],
    );
    let reply = api.call(Method::GET, "/device/state", None).await;
    assert_eq!(
        reply,
        (
            StatusCode::OK,
            json!({"vars": {"mode": "off", "target": 18}})
        )
    );
    quiet(&mut a).await;

    refused(
        &api.patch("{}").await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        &["1 to 64"],
    );
    refused(
        &api.patch(r#"{"mode": "a", "mode": "b"}"#).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        &["`mode` appears twice"],
    );
    refused(
        &api.patch("[1]").await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        &["a map of state variable names"],
    );
    let logged = em.events().snapshot().into_iter().any(|e| {
        matches!(&e.kind, EventKind::DeviceAction { action, detail }
            if action == "set_state_refused" && detail.contains("`target`"))
    });
    assert!(logged, "the refusal is recorded");

    drop(a);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_builtin_firmware_has_no_device_state() {
    let (em, api) = start(DeviceSource::Builtin).await;
    let says = ["exposes no state variables"];
    refused(
        &api.call(Method::GET, "/device/state", None).await,
        StatusCode::NOT_FOUND,
        "no_device_state",
        &says,
    );
    refused(
        &api.patch(r#"{"relay": true}"#).await,
        StatusCode::NOT_FOUND,
        "no_device_state",
        &says,
    );
    em.shutdown(WAIT).await;
}
