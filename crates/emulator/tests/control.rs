//! The control API over real sockets: a real HTTP client against `Emulator::start` with
//! `control: Some(..)`, checking statuses, JSON bodies and the effect on the device.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use espsim_emulator::events::EventKind;
use espsim_emulator::internet::InternetMode;
use espsim_emulator::{
    ControlAuth, ControlOptions, Emulator, EmulatorConfig, RunningEmulator, StartError,
};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

async fn start_with(control: ControlOptions) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        seed: 42,
        internet: InternetMode::Captive,
        control: Some(control),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

async fn start() -> (RunningEmulator, Api) {
    let em = start_with(ControlOptions::loopback(0)).await;
    let api = Api::new(
        em.control_addr().expect("control is on"),
        em.control_token(),
    );
    (em, api)
}

/// A small JSON client for the API.
struct Api {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Api {
    fn new(addr: SocketAddr, token: Option<&str>) -> Api {
        Api {
            base: format!("http://{addr}"),
            token: token.map(str::to_owned),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = ctype {
            req = req.header("content-type", t);
        }
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req.body(Full::new(Bytes::from(body))).expect("request")
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let resp = timeout(WAIT, self.client.request(req))
            .await
            .expect("answer in time")
            .expect("HTTP exchange");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = timeout(WAIT, resp.into_body().collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str, ctype: Option<&str>, body: &str) -> Reply {
        self.send(self.request(method, path, ctype, body.as_bytes().to_vec()))
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, "").await
    }
}

#[tokio::test]
async fn faults_are_listed_added_as_json_or_yaml_and_removed() {
    let (em, api) = start().await;
    let list = api.get("/faults").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json(), json!([]));

    let added = api
        .call(Method::POST, "/faults", Some("application/json"),
            r#"{"name":"cut","when":{"connections":"1-2"},"fault":{"handshake":"reset","at":"after_request"}}"#)
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    assert_eq!(added.json()["id"], 1);
    assert_eq!(added.json()["name"], "cut");

    let yaml = "- when: { at: 20s, for: 5s }\n  fault: refuse\n- fault: { dns: nxdomain }\n";
    let added = api
        .call(Method::POST, "/faults", Some("application/yaml"), yaml)
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    let ids: Vec<u64> = added
        .json()
        .as_array()
        .expect("a list for a list")
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [2, 3]);

    // The plan the services consult is the one the API changed.
    assert_eq!(em.faults().rules().len(), 3);
    let listed = api.get("/faults").await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    assert_eq!(listed[1]["fault"], "refuse");

    let removed = api.call(Method::DELETE, "/faults/2", None, "").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert!(removed.body.is_empty());
    let again = api.call(Method::DELETE, "/faults/2", None, "").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        again.json(),
        json!({"error": "no fault rule with id 2", "code": "not_found"})
    );
    let bad_id = api.call(Method::DELETE, "/faults/two", None, "").await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    let ids: Vec<u64> = em.faults().rules().iter().map(|r| r.id.0).collect();
    assert_eq!(ids, [1, 3]);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn bad_bodies_get_400_with_position_422_with_reason_415_without_type() {
    let (em, api) = start().await;
    let bad_yaml = api
        .call(
            Method::POST,
            "/faults",
            Some("text/yaml"),
            "fault: refuse\nwhen: { connections: 1-2\n",
        )
        .await;
    assert_eq!(bad_yaml.status, StatusCode::BAD_REQUEST);
    let body = bad_yaml.json();
    assert!(
        body["line"].as_u64().is_some() && body["column"].as_u64().is_some(),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .starts_with("invalid fault rule YAML at "),
        "{body}"
    );

    let unknown_field = api
        .call(
            Method::POST,
            "/faults",
            Some("application/yaml"),
            "fault: refuse\nwhne: {}\n",
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (
            unknown_field.json()["line"].clone(),
            unknown_field.json()["column"].clone()
        ),
        (json!(2), json!(1))
    );
    // Typed for clients: what kind of refusal, and the problem without its position.
    assert_eq!(unknown_field.json()["code"], "invalid_body");
    assert!(
        unknown_field.json()["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("unknown field `whne`")),
        "{:?}",
        unknown_field.body
    );

    let bad_json = api
        .call(
            Method::POST,
            "/faults",
            Some("application/json"),
            "{\"fault\":\n  refuse}",
        )
        .await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_json.json()["line"], 2);

    // Parses, but `messages` counts make no sense for a DNS fault: 422 with the reason.
    let invalid = api
        .call(
            Method::POST,
            "/faults",
            Some("application/json"),
            r#"[{"fault":"refuse"},{"when":{"messages":"3"},"fault":{"dns":"nxdomain"}}]"#,
        )
        .await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        invalid.body
    );
    let message = invalid.json()["error"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(message.starts_with("rule 1: "), "{message}");
    assert_eq!(invalid.json()["code"], "invalid_value");
    assert!(
        em.faults().rules().is_empty(),
        "a rejected list adds nothing"
    );

    let untyped = api
        .call(Method::POST, "/faults", None, r#"{"fault":"refuse"}"#)
        .await;
    assert_eq!(untyped.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(untyped.json()["code"], "unsupported_media_type");
    assert!(
        untyped.json()["error"]
            .as_str()
            .expect("message")
            .contains("application/yaml")
    );

    let nowhere = api.get("/nope").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert!(nowhere.json()["error"].is_string());
    let wrong_method = api.call(Method::PATCH, "/faults", None, "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.json()["error"].is_string());
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_as_json() {
    let (em, api) = start().await;
    let huge = format!("# {}\nfault: refuse\n", "x".repeat(70 * 1024));
    let reply = api
        .call(Method::POST, "/faults", Some("application/yaml"), &huge)
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.json(),
        json!({"error": "request body larger than 65536 bytes", "code": "too_large"})
    );
    assert!(em.faults().rules().is_empty());
    em.shutdown(WAIT).await;
}

/// One request on a fresh connection; the whole raw response.
async fn raw_get(addr: SocketAddr, host: &str, path: &str) -> String {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("in time")
        .expect("connects");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("writes");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // The device may keep the socket open; the head and body arrive in the first reads.
    for _ in 0..8 {
        match timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("reads in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length: ")?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn internet_switch_state_and_reset() {
    let (em, api) = start().await;
    let probe = || {
        raw_get(
            em.http_addr(),
            "connectivitycheck.gstatic.com",
            "/generate_204",
        )
    };
    assert!(
        probe().await.starts_with("HTTP/1.1 302 "),
        "captive at start"
    );

    let state = api.get("/state").await.json();
    assert_eq!(state["seed"], 42);
    assert_eq!(state["profile"], em.profile().name);
    assert_eq!(state["internet"], "captive");
    assert_eq!(state["sessions"], 0);
    assert!(state["uptime_ms"].is_u64());

    let switched = api
        .call(
            Method::PUT,
            "/internet",
            Some("application/json"),
            r#"{"mode":"online"}"#,
        )
        .await;
    assert_eq!(switched.status, StatusCode::OK);
    assert_eq!(
        switched.json(),
        json!({"from": "captive", "mode": "online"})
    );
    assert!(
        probe().await.starts_with("HTTP/1.1 204 No Content\r\n"),
        "an Android probe now sees the internet"
    );

    let bad = api
        .call(
            Method::PUT,
            "/internet",
            Some("application/json"),
            r#"{"mode":"sometimes"}"#,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.json()["error"]
            .as_str()
            .expect("message")
            .contains("sometimes")
    );

    api.call(
        Method::POST,
        "/faults",
        Some("application/json"),
        r#"{"fault":"refuse"}"#,
    )
    .await;
    let reset = api.call(Method::POST, "/reset", None, "").await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(reset.json(), json!({"removed": 1, "internet": "captive"}));
    assert!(em.faults().rules().is_empty());
    assert_eq!(em.internet(), InternetMode::Captive);
    assert!(
        probe().await.starts_with("HTTP/1.1 302 "),
        "captive again after reset"
    );
    assert_eq!(api.get("/state").await.json()["rules"], json!([]));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_button_reaches_a_connected_app_and_the_event_log() {
    let (em, api) = start().await;
    let url = format!("ws://{}/ws", em.http_addr());
    let (mut ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("in time")
        .expect("handshake");
    assert_eq!(api.get("/state").await.json()["sessions"], 1);

    let pressed = api.call(Method::POST, "/button", None, "").await;
    assert_eq!(pressed.status, StatusCode::OK);
    assert_eq!(pressed.json(), json!({"pressed": true, "sessions": 1}));

    let mut seen = None;
    for _ in 0..16 {
        let frame = timeout(WAIT, ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("frame");
        let Ok(text) = frame.to_text() else { continue };
        let msg: Value = serde_json::from_str(text).expect("json");
        if msg["type"] == "event" {
            seen = Some(msg);
            break;
        }
    }
    assert_eq!(seen.expect("an event message")["event"], "button_pressed");
    let logged = em
        .events()
        .wait_for(
            WAIT,
            |e| matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "button"),
        )
        .await;
    assert!(logged.is_some());
    // The app leaves first, so shutdown does not wait for its close handshake.
    drop(ws);
    em.events()
        .wait_for(WAIT, |e| matches!(e.kind, EventKind::WsClosed { .. }))
        .await
        .expect("session closed");
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_event_stream_sends_history_then_live_events_and_ends_on_shutdown() {
    let (em, api) = start().await;
    let resp = timeout(
        WAIT,
        api.client
            .request(api.request(Method::GET, "/events?from=0", None, Vec::new())),
    )
    .await
    .expect("in time")
    .expect("response head");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut body = resp.into_body();
    let mut buffered = Vec::<u8>::new();
    let mut next_line = async || -> Option<Value> {
        for _ in 0..64 {
            if let Some(end) = buffered.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffered.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("a JSON line"));
            }
            let frame = timeout(WAIT, body.frame())
                .await
                .expect("a frame in time")?;
            if let Ok(data) = frame.expect("frame").into_data() {
                buffered.extend_from_slice(&data);
            }
        }
        panic!("no complete line in 64 frames")
    };
    let first = next_line().await.expect("history");
    assert_eq!(
        (first["seq"].clone(), first["event"].clone()),
        (json!(0), json!("started"))
    );
    let clock = next_line().await.expect("history");
    assert_eq!(
        (clock["seq"].clone(), clock["event"].clone()),
        (json!(1), json!("clock_started"))
    );

    // Live: a change made after the stream opened arrives on it.
    api.call(
        Method::PUT,
        "/internet",
        Some("application/json"),
        r#"{"mode":"offline"}"#,
    )
    .await;
    let live = next_line().await.expect("live event");
    assert_eq!(live["event"], "internet_changed");
    assert_eq!(live["to"], "offline");
    assert_eq!(live["seq"], 2);

    let shutdown = tokio::spawn(em.shutdown(WAIT));
    let last = next_line().await.expect("stopping is streamed");
    assert_eq!(last["event"], "stopping");
    assert!(next_line().await.is_none(), "the stream ends on shutdown");
    shutdown.await.expect("shutdown ends");
}

#[tokio::test]
async fn with_a_token_every_request_needs_it() {
    let em = start_with(ControlOptions::loopback(0).with_auth(ControlAuth::Token("s3cret".into())))
        .await;
    let addr = em.control_addr().expect("control");
    let none = Api::new(addr, None).get("/state").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    assert!(
        none.json()["error"]
            .as_str()
            .expect("message")
            .contains("Authorization: Bearer")
    );
    let wrong = Api::new(addr, Some("guess"))
        .call(Method::POST, "/reset", None, "")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json(),
        json!({"error": "wrong token", "code": "unauthorized"})
    );
    let right = Api::new(addr, Some("s3cret")).get("/state").await;
    assert_eq!(right.status, StatusCode::OK);
    assert_eq!(right.json()["seed"], 42);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_non_loopback_control_address_without_a_token_does_not_start() {
    let err = Emulator::start(EmulatorConfig {
        dns: None,
        control: Some(ControlOptions {
            addr: "0.0.0.0:0".parse().expect("addr"),
            ..ControlOptions::loopback(0).with_auth(ControlAuth::Insecure)
        }),
        ..EmulatorConfig::default()
    })
    .await
    .expect_err("refused");
    assert!(
        matches!(err, StartError::ControlWithoutToken { .. }),
        "{err}"
    );
    assert!(err.hint().expect("a hint").contains("--control-token"));
}
