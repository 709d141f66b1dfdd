//! A device process over real sockets: the Python and Node examples answer WebSocket messages
//! and an HTTP route; a process that crashes, hangs, prints garbage or never says `ready` is
//! handled as documented in `docs/reference/device-process.md` — espsim never hangs.
//! python3 and node must be installed (they are here and in CI): nothing is skipped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use espsim_emulator::events::{Event, EventKind};
use espsim_emulator::{
    ControlOptions, DeviceSource, Emulator, EmulatorConfig, ProcessError, ProcessSpec,
    RunningEmulator, StartError,
};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn example(lang: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/device-process/{lang}"))
}

/// A Python program given inline (`python3 -u -c CODE`).
fn python(code: &str) -> ProcessSpec {
    ProcessSpec::new("python3", vec!["-u".into(), "-c".into(), code.into()])
}

async fn start(spec: ProcessSpec) -> RunningEmulator {
    try_start(spec).await.expect("emulator starts")
}

async fn try_start(spec: ProcessSpec) -> Result<RunningEmulator, StartError> {
    Emulator::start(EmulatorConfig {
        dns: None,
        control: Some(ControlOptions::loopback(0)),
        device_logic: DeviceSource::Process(spec.into()),
        ..EmulatorConfig::default()
    })
    .await
}

async fn connect(em: &RunningEmulator) -> Ws {
    let url = format!("ws://{}/ws", em.http_addr());
    timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds")
        .0
}

async fn next_json(ws: &mut Ws) -> Value {
    let frame = timeout(WAIT, ws.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("frame");
    let Message::Text(text) = frame else {
        panic!("expected text, got {frame:?}");
    };
    serde_json::from_str(&text).expect("json")
}

async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("sent");
}

/// One HTTP/1.1 exchange on a raw socket: status and body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connects");
        let req = format!("GET {path} HTTP/1.1\r\nHost: 192.168.4.1\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.expect("request sent");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.expect("reads");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len: usize = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .expect("content-length");
                if raw.len() >= head_end + 4 + len {
                    let status = text[9..12].parse().expect("status");
                    return (status, text[head_end + 4..head_end + 4 + len].to_owned());
                }
            }
            assert!(n > 0, "connection closed mid-response: {text}");
        }
    };
    timeout(WAIT, exchange).await.expect("HTTP answer in time")
}

/// The `nth` (from 1) `device_action` event with this action.
async fn action(em: &RunningEmulator, name: &str, nth: usize) -> Event {
    let mut seen = 0;
    em.events()
        .wait_for(WAIT, |e| {
            let hit = matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == name);
            seen += usize::from(hit);
            hit && seen == nth
        })
        .await
        .unwrap_or_else(|| panic!("device_action {name} #{nth}"))
}

fn detail(event: &Event) -> &str {
    match &event.kind {
        EventKind::DeviceAction { detail, .. } => detail,
        other => panic!("not a device_action: {other:?}"),
    }
}

/// The lamp protocol both examples speak.
async fn lamp_answers_messages_and_http(em: &RunningEmulator, lang: &str) {
    let log = action(em, "process_log", 1).await;
    assert_eq!(detail(&log), format!("{lang} lamp ready"));
    let mut a = connect(em).await;
    let mut b = connect(em).await;
    send_json(&mut a, json!({"cmd": "status"})).await;
    assert_eq!(next_json(&mut a).await, json!({"on": false, "clients": 2}));
    send_json(&mut a, json!({"cmd": "set", "on": true})).await;
    assert_eq!(next_json(&mut a).await, json!({"ok": true, "on": true}));
    assert_eq!(
        next_json(&mut b).await,
        json!({"event": "changed", "on": true})
    );
    let (status, body) = http_get(em.http_addr(), "/api/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json"),
        json!({"on": true, "clients": 2})
    );
    let (status, _) = http_get(em.http_addr(), "/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_python_example_answers_messages_and_http() {
    let mut spec = ProcessSpec::new("python3", vec!["device.py".into()]);
    spec.dir = Some(example("python"));
    let em = start(spec).await;
    lamp_answers_messages_and_http(&em, "python").await;
    em.shutdown(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn the_node_example_answers_messages_and_http() {
    let mut spec = ProcessSpec::new("node", vec!["device.js".into()]);
    spec.dir = Some(example("node"));
    let em = start(spec).await;
    lamp_answers_messages_and_http(&em, "node").await;
    em.shutdown(Duration::from_millis(200)).await;
}

/// Echoes every text message back as `{"echo": text}`; exits with 3 on the text `crash`.
const CRASHER: &str = r#"
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "hello":
        print(json.dumps({"type": "ready"}), flush=True)
    elif m["type"] == "message":
        if m.get("text") == "crash":
            sys.exit(3)
        print(json.dumps({"type": "send", "to": m["session"], "json": {"echo": m["text"]}}), flush=True)
"#;

#[tokio::test]
async fn a_crashing_process_drops_sessions_refuses_and_serves_again_after_its_restart() {
    let mut spec = python(CRASHER);
    // Long enough to observe the refusal; the default is 100 ms.
    spec.restart.first_delay = Duration::from_secs(1);
    let em = start(spec).await;
    let mut ws = connect(&em).await;
    ws.send(Message::text("hi")).await.expect("sent");
    assert_eq!(next_json(&mut ws).await, json!({"echo": "hi"}));

    ws.send(Message::text("crash")).await.expect("sent");
    let exited = action(&em, "process_exited", 1).await;
    assert!(detail(&exited).contains("exit status: 3"), "{exited:?}");
    assert!(
        detail(&exited).contains("1 session(s) dropped"),
        "{exited:?}"
    );
    // Dropped like a crashed chip: no close frame.
    match timeout(WAIT, ws.next())
        .await
        .expect("the session ends in time")
    {
        Some(Ok(Message::Close(frame))) => panic!("a close frame: {frame:?}"),
        Some(Ok(other)) => panic!("unexpected {other:?}"),
        None | Some(Err(_)) => {}
    }
    // Refused while the process restarts (the port follows the outage within moments).
    let deadline = Instant::now() + Duration::from_millis(900);
    loop {
        match TcpStream::connect(em.http_addr()).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(Instant::now() < deadline, "never refused while restarting");
                tokio::task::yield_now().await;
            }
        }
    }
    let restarted = action(&em, "process_ready", 2).await;
    assert!(restarted.at_ms >= exited.at_ms + 1000, "{restarted:?}");
    let mut again = connect(&em).await;
    again.send(Message::text("back")).await.expect("sent");
    assert_eq!(next_json(&mut again).await, json!({"echo": "back"}));
    em.shutdown(Duration::from_millis(200)).await;
}

/// Says `ready`, never answers HTTP, and on the message `stop` stops reading its stdin.
const HANGER: &str = r#"
import json, sys, time
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "hello":
        print(json.dumps({"type": "ready"}), flush=True)
    elif m["type"] == "message" and m.get("text") == "stop":
        time.sleep(3600)
"#;

#[tokio::test]
async fn a_hung_process_gets_http_500s_and_a_restart_while_espsim_keeps_serving() {
    let mut spec = python(HANGER);
    spec.http_timeout = Duration::from_millis(700);
    let em = start(spec).await;

    let asked = Instant::now();
    let (status, body) = http_get(em.http_addr(), "/api/status").await;
    assert_eq!(status, 500);
    assert_eq!(body, "Server has encountered an unexpected error");
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let timed_out = action(&em, "process_http_timeout", 1).await;
    assert!(
        detail(&timed_out).starts_with("GET /api/status"),
        "{timed_out:?}"
    );

    // The control API still serves, and its push reaches the session.
    let mut ws = connect(&em).await;
    let api = format!("http://{}/send", em.control_addr().expect("control"));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(Method::POST).uri(api);
    if let Some(token) = em.control_token() {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(Bytes::from(
            r#"{"to":"all","text":"from control"}"#,
        )))
        .expect("request");
    let resp = timeout(WAIT, client.request(req))
        .await
        .expect("control answers in time")
        .expect("exchange");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let Message::Text(text) = timeout(WAIT, ws.next())
        .await
        .expect("push")
        .expect("open")
        .expect("frame")
    else {
        panic!("text");
    };
    assert_eq!(text.as_str(), "from control");

    // Stops reading stdin: the queue fills, the process is treated as hung and restarted.
    ws.send(Message::text("stop")).await.expect("sent");
    let filler = "x".repeat(1000);
    for _ in 0..2000 {
        if ws.send(Message::text(filler.clone())).await.is_err() {
            break;
        }
        if em.events().snapshot().iter().any(|e| {
            matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "process_hung")
        }) {
            break;
        }
    }
    let hung = action(&em, "process_hung", 1).await;
    assert!(
        detail(&hung).contains("does not read its stdin"),
        "{hung:?}"
    );
    action(&em, "process_ready", 2).await;
    let _served_again = connect(&em).await;
    em.shutdown(Duration::from_millis(200)).await;
}

/// Prints a garbage line before each valid answer, and one line over the 1 MiB limit at start.
const GARBLER: &str = r#"
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "hello":
        print(json.dumps({"type": "ready"}), flush=True)
        print("x" * (1024 * 1024 + 10), flush=True)
    elif m["type"] == "message":
        print("this is not json", flush=True)
        print(json.dumps({"type": "teleport"}), flush=True)
        print(json.dumps({"type": "send", "to": m["session"], "text": "ok"}), flush=True)
"#;

#[tokio::test]
async fn garbage_lines_are_ignored_and_recorded_and_valid_lines_still_work() {
    let em = start(python(GARBLER)).await;
    let mut ws = connect(&em).await;
    for _ in 0..3 {
        ws.send(Message::text("hi")).await.expect("sent");
        let frame = timeout(WAIT, ws.next())
            .await
            .expect("answer")
            .expect("open")
            .expect("frame");
        assert_eq!(frame, Message::text("ok"));
    }
    let too_long = action(&em, "process_garbage", 1).await;
    assert!(
        detail(&too_long).contains("longer than 1048576 bytes"),
        "{too_long:?}"
    );
    let not_json = action(&em, "process_garbage", 2).await;
    assert!(
        detail(&not_json).contains("not a JSON object"),
        "{not_json:?}"
    );
    assert!(
        detail(&not_json).contains("this is not json"),
        "{not_json:?}"
    );
    let unknown = action(&em, "process_garbage", 3).await;
    assert!(detail(&unknown).contains("teleport"), "{unknown:?}");
    assert!(
        !em.events().snapshot().iter().any(|e| matches!(&e.kind,
            EventKind::DeviceAction { action, .. } if action == "process_exited" || action == "process_hung")),
        "garbage alone (under 100 in a row) is not a crash"
    );
    em.shutdown(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_process_that_never_says_ready_fails_the_start() {
    let mut spec = python("import sys, time\nsys.stdin.readline()\ntime.sleep(3600)\n");
    spec.ready_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = try_start(spec).await.expect_err("no ready, no start");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            &err,
            StartError::DeviceProcess(ProcessError::NotReady { .. })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("did not send `ready` within 500 ms"),
        "{err}"
    );
    assert!(err.hint().is_some());

    let err = try_start(python("import sys\nsys.exit(2)\n"))
        .await
        .expect_err("exits before ready");
    assert!(
        err.to_string().contains("exited before sending `ready`"),
        "{err}"
    );

    let err = try_start(ProcessSpec::new("/nonexistent/espsim-device", Vec::new()))
        .await
        .expect_err("no such program");
    assert!(
        matches!(&err, StartError::DeviceProcess(ProcessError::Spawn { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_process_that_keeps_crashing_stays_down_after_its_restart_budget() {
    // Ready, then exits: every run crashes at once.
    let mut spec = python(
        "import sys\nsys.stdin.readline()\nprint('{\"type\":\"ready\"}', flush=True)\nsys.exit(1)\n",
    );
    spec.restart.first_delay = Duration::from_millis(10);
    spec.restart.max_per_minute = 2;
    let em = start(spec).await;
    let gave_up = action(&em, "process_gave_up", 1).await;
    assert!(
        detail(&gave_up).contains("the device stays down"),
        "{gave_up:?}"
    );
    let exits = em
        .events()
        .snapshot()
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "process_exited"))
        .count();
    assert_eq!(exits, 3, "the first run and two restarts");
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect(em.http_addr()).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(Instant::now() < deadline, "the port must stay closed");
                tokio::task::yield_now().await;
            }
        }
    }
    em.shutdown(Duration::from_millis(200)).await;
}
