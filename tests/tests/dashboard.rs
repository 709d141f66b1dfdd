//! The live dashboard in headless Chromium against the real `espsim run`: the browser logs in
//! with the token from the ready line, sees a test client's WebSocket session, cannot be made
//! to press the button by a form on another origin (its cookie is sent, the request refused),
//! filters the
//! event stream, switches the internet mode (a connectivity check then gets the new answer),
//! presses the button (the client receives the event), sees a bad rule's line and column, adds
//! a refuse rule (the next connection is refused), removes and resets, and logs out; without
//! the token it sees only the login form.
//!
//! `tests/clients/dashboard_chromium.js` drives the page one step at a time: it prints a JSON
//! line per step and waits for this test to check the emulator's side and answer on its stdin.
//! A missing Chromium or playwright-core makes the check `ignored` (a failure with
//! `ESPSIM_REQUIRE_CLIENTS=1`), like the other client checks (see `espsim_tests::checks`).
//! The screenshot is kept in `target/dashboard-screenshots/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use espsim_tests::checks::{self, ClientCheck};
use espsim_tests::{Espsim, espsim_run_command, on_path, repo_root};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// How long one step (a page action and what the page shows) may take; Chromium's first start
/// is the slow one.
const STEP_LIMIT: Duration = Duration::from_secs(40);
/// How long the emulator's side of a step may take.
const WAIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    checks::run(vec![ClientCheck::new(
        "dashboard",
        "chromium",
        missing(),
        dashboard_in_chromium,
    )])
}

/// Why Chromium cannot run here, if it cannot.
fn missing() -> Option<String> {
    let modules = repo_root().join("tests/clients/node_modules");
    (!on_path("node")
        || !modules.join("playwright-core").is_dir()
        || !PathBuf::from("/usr/bin/chromium").is_file())
    .then(|| {
        "no /usr/bin/chromium or playwright-core (run scripts/install-test-clients.sh)".to_owned()
    })
}

/// Where screenshots go: `$CARGO_TARGET_DIR` or the workspace's `target/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    target.join("dashboard-screenshots")
}

/// The Node script, its stdin for go-aheads and its stdout lines; killed on drop.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Browser {
    fn start(control: SocketAddr, token: &str, shots: &std::path::Path, other: &str) -> Browser {
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/clients/dashboard_chromium.js"))
            .arg(format!("http://{control}"))
            .arg(token)
            .arg(shots)
            .arg(other)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            let mut text = String::new();
            let _ = err_pipe.read_to_string(&mut text);
            let _ = etx.send(text);
        });
        let stdin = child.stdin.take();
        Browser {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// The next step line; panics if it is not `name` or does not come in time.
    fn expect_step(&mut self, name: &str) -> Value {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = self.child.kill();
                    let stderr = self.stderr.recv_timeout(WAIT).unwrap_or_default();
                    panic!(
                        "no `{name}` step from Chromium within {STEP_LIMIT:?} ({e}); stderr:\n{stderr}"
                    );
                }
            };
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue; // not ours (e.g. a library's log line)
            };
            assert_eq!(value["step"], name, "Chromium: {value}");
            return value;
        }
    }

    /// Lets the script go on to its next step.
    fn go_on(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(b"ok\n").expect("writes to node");
        stdin.flush().expect("flushes");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves, on a thread, a page that auto-submits a form posting to `action` (a CSRF attempt),
/// to at most 8 requests.
fn serve_form_post(listener: TcpListener, action: String) {
    let page = format!(
        "<form method=\"post\" action=\"{action}\"><input name=\"x\" value=\"1\"></form>\
         <script>document.forms[0].submit()</script>"
    );
    thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(WAIT));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
}

/// `GET /generate_204` as Android sends it; the status code.
fn connectivity_check(http: &str) -> u16 {
    let mut s = TcpStream::connect(http).expect("device HTTP port connects");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(
        b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n",
    )
    .expect("writes");
    // The whole answer (head and `Content-Length` body; in captive mode the device keeps the
    // connection open, as ESP-IDF does), then our FIN: a clean close, not a reset.
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("a status line");
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header line");
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    s.shutdown(std::net::Shutdown::Write).expect("FIN");
    status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a status code: {status_line}"))
}

/// `GET /state` with the bearer token, as a script would; the JSON.
fn state(control: &str, token: &str) -> Value {
    let mut s = TcpStream::connect(control).expect("control connects");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET /state HTTP/1.1\r\nHost: {control}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("reads");
    let (_, body) = text.split_once("\r\n\r\n").expect("a head");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON state ({e}): {text}"))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client that said hello and got its welcome.
async fn app_client(url: &str) -> Ws {
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connects in time")
        .expect("upgrade succeeds");
    ws.send(Message::text(
        r#"{"type":"hello","client":"dashboard-test","version":"1"}"#,
    ))
    .await
    .expect("hello sent");
    next_of_type(&mut ws, "welcome").await;
    ws
}

/// Reads until a JSON message of `kind` arrives (telemetry may come between); panics after
/// [`WAIT`].
async fn next_of_type(ws: &mut Ws, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no `{kind}` message within {WAIT:?}"))
            .expect("the session is open")
            .expect("a message");
        if let Message::Text(text) = msg {
            let value: Value = serde_json::from_str(&text).expect("JSON message");
            if value["type"] == kind {
                return value;
            }
        }
    }
}

fn dashboard_in_chromium() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Another origin on the same site: a local dev server the user allowed for CORS.
    let other = TcpListener::bind("127.0.0.1:0").expect("binds");
    let other_origin = format!("http://{}", other.local_addr().expect("address"));
    let mut cmd = espsim_run_command(7);
    cmd.args(["--control-allow-origin", &other_origin]);
    let espsim = Espsim::start(cmd, Duration::from_secs(20));
    let control = espsim.ready["control"]
        .as_str()
        .expect("ready line has control")
        .to_owned();
    let token = espsim.ready["control_token"]
        .as_str()
        .expect("ready line has a generated control_token")
        .to_owned();
    let http = espsim.http();
    let control_addr: SocketAddr = control.parse().expect("control address");

    // The app: one WebSocket session before the browser comes.
    let mut ws = runtime.block_on(app_client(&espsim.ws_url()));
    assert_eq!(connectivity_check(&http), 302, "captive at start");

    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    serve_form_post(other, format!("http://{control}/button"));
    let mut browser = Browser::start(control_addr, &token, &shots, &format!("{other_origin}/"));

    let anon = browser.expect_step("anonymous");
    assert_eq!(anon["login_visible"], true, "{anon}");
    assert_eq!(anon["dash_visible"], false, "{anon}");
    assert_eq!(anon["rows"], 0, "no data without the token: {anon}");
    assert_eq!(anon["responses"]["/state"], 401, "{anon}");
    assert_eq!(anon["status_text"], "not logged in", "{anon}");
    browser.go_on();

    let wrong = browser.expect_step("wrong_token");
    assert!(
        wrong["error"]
            .as_str()
            .is_some_and(|e| e.contains("401: wrong token")),
        "{wrong}"
    );
    assert_eq!(wrong["dash_visible"], false, "{wrong}");
    browser.go_on();

    let sessions = browser.expect_step("sessions");
    let rows = sessions["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "the test client's session: {sessions}");
    assert_eq!(rows[0][1], "/ws", "{sessions}");
    assert_eq!(
        sessions["count"], "(1 open)",
        "GET /state agrees: {sessions}"
    );
    let cookies = sessions["cookies"].as_array().expect("cookies");
    assert_eq!(cookies.len(), 1, "{sessions}");
    assert_eq!(cookies[0]["name"], "espsim_session", "{sessions}");
    assert_eq!(cookies[0]["httpOnly"], true, "{sessions}");
    assert_eq!(cookies[0]["sameSite"], "Strict", "{sessions}");
    assert_eq!(cookies[0]["value_is_token"], false, "{sessions}");
    assert!(
        !sessions["url"].as_str().expect("url").contains(&token),
        "no token in the URL: {sessions}"
    );
    browser.go_on();

    let csrf = browser.expect_step("csrf");
    assert_eq!(
        csrf["cookie_sent"], true,
        "same-site: the browser sends the cookie: {csrf}"
    );
    assert_eq!(
        csrf["status"], 403,
        "a cross-origin form post is refused: {csrf}"
    );
    assert!(
        csrf["body"].as_str().is_some_and(|b| b.contains("Origin")),
        "{csrf}"
    );
    browser.go_on();

    let filter = browser.expect_step("filter");
    let kinds = filter["kinds"].as_array().expect("kinds");
    assert!(!kinds.is_empty(), "{filter}");
    assert!(
        kinds.iter().all(|k| k == "event ws_opened"),
        "only ws_opened rows: {filter}"
    );
    let conn = filter["conn"].as_str().expect("conn");
    let conns = filter["conns"].as_array().expect("conns");
    assert!(
        conns.len() >= 3,
        "accepted, request, opened at least: {filter}"
    );
    assert!(
        conns.iter().all(|k| k
            .as_str()
            .is_some_and(|k| k.ends_with(&format!("[{conn}]")))),
        "only connection {conn}: {filter}"
    );
    browser.go_on();

    let internet = browser.expect_step("internet");
    assert_eq!(internet["mode"], "online", "{internet}");
    assert_eq!(
        connectivity_check(&http),
        204,
        "online: Android's check gets its 204"
    );
    browser.go_on();

    let button = browser.expect_step("button");
    assert!(
        button["result"]
            .as_str()
            .is_some_and(|r| r.contains("pressed (1 session")),
        "{button}"
    );
    let event = runtime.block_on(next_of_type(&mut ws, "event"));
    assert!(event.to_string().contains("button"), "{event}");
    browser.go_on();

    let bad = browser.expect_step("bad_rule");
    let error = bad["error"].as_str().expect("error text");
    assert!(
        error.starts_with("400: invalid fault rule YAML at 2:1"),
        "{bad}"
    );
    assert!(error.contains("whne"), "{bad}");
    assert!(error.contains("(at line 2, column 1)"), "{bad}");
    assert!(
        state(&control, &token)["rules"]
            .as_array()
            .expect("rules")
            .is_empty()
    );
    browser.go_on();

    let added = browser.expect_step("rule_added");
    assert_eq!(added["rule_error"], "", "{added}");
    let rules = added["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1, "{added}");
    assert!(
        rules[0]
            .as_str()
            .is_some_and(|r| r.contains("dashboard-refuse")),
        "{added}"
    );
    let refused = TcpStream::connect(&http);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "the next connection is refused: {refused:?}"
    );
    assert!(
        PathBuf::from(added["screenshot"].as_str().expect("path")).is_file(),
        "{added}"
    );
    browser.go_on();

    let reset = browser.expect_step("reset");
    assert_eq!(reset["mode"], "captive", "{reset}");
    let after = state(&control, &token);
    assert_eq!(after["internet"], "captive", "{after}");
    assert!(
        after["rules"].as_array().expect("rules").is_empty(),
        "{after}"
    );
    browser.go_on();

    let out = browser.expect_step("logged_out");
    assert_eq!(out["dash_visible"], false, "{out}");
    assert_eq!(out["state_status"], 401, "{out}");
    assert_eq!(out["cookies"], 0, "{out}");
    assert_eq!(out["foreign_requests"], Value::Array(vec![]), "{out}");
    browser.go_on();

    let done = browser.expect_step("done");
    assert!(done["version"].is_string(), "{done}");
    drop(ws);
    runtime.shutdown_timeout(WAIT);
}
