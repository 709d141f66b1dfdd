//! Independent clients against espsim: Python `websockets`, Node `ws`, headless Chromium,
//! `websocat`, `dig` and `curl` (installed by `scripts/install-test-clients.sh`).
//!
//! Each client is a small script in `tests/clients/` that prints one JSON line of what it
//! observed; the tests assert what `shared/reference/client-errors.md` says that client reports.
//! The normal session runs against the `espsim run` binary; the faults run against an in-process
//! emulator built from `EmulatorConfig.faults`, written as a user writes them in a scenario.
//!
//! Every (scenario, client) pair is a test of its own, named `scenario::client` (this file is a
//! `harness = false` test run by `espsim_tests::checks::run`): a client that is not installed
//! makes its checks `ignored`, and a last line counts the checks that ran and that skipped. With
//! `ESPSIM_REQUIRE_CLIENTS=1` those checks fail instead. Nothing else is skipped.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_tests::checks::{self, ClientCheck};
use espsim_tests::{
    CURL_STATUS_AND_LOCATION, Espsim, espsim_run_command, on_path, repo_root, run_with_limit,
};
use serde_json::Value;

/// How long the client scripts may run beyond their own limit (Chromium starts in ~3 s).
const SLACK: Duration = Duration::from_secs(45);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Python,
    Node,
    Chromium,
}

impl Client {
    const ALL: [Client; 3] = [Client::Python, Client::Node, Client::Chromium];

    fn name(self) -> &'static str {
        match self {
            Client::Python => "python-websockets",
            Client::Node => "node-ws",
            Client::Chromium => "chromium",
        }
    }

    /// Why the client cannot run here, if it cannot.
    fn missing(self) -> Option<String> {
        let root = repo_root();
        let modules = root.join("tests/clients/node_modules");
        match self {
            Client::Python => (!python().is_file()
                || !root.join(".venv/lib").read_dir().is_ok_and(|mut d| {
                    d.any(|e| e.is_ok_and(|e| e.path().join("site-packages/websockets").is_dir()))
                }))
            .then(|| "no .venv with websockets (run scripts/install-test-clients.sh)".to_owned()),
            Client::Node => (!on_path("node") || !modules.join("ws").is_dir()).then(|| {
                "no node or tests/clients/node_modules/ws (run scripts/install-test-clients.sh)"
                    .to_owned()
            }),
            Client::Chromium => (!on_path("node")
                || !modules.join("playwright-core").is_dir()
                || !PathBuf::from("/usr/bin/chromium").is_file())
            .then(|| {
                "no /usr/bin/chromium or playwright-core (run scripts/install-test-clients.sh)"
                    .to_owned()
            }),
        }
    }

    fn command(self, url: &str, mode: &str, limit: Duration) -> Command {
        let scripts = repo_root().join("tests/clients");
        let (program, script) = match self {
            Client::Python => (python(), scripts.join("ws_python.py")),
            Client::Node => (PathBuf::from("node"), scripts.join("ws_node.js")),
            Client::Chromium => (PathBuf::from("node"), scripts.join("ws_chromium.js")),
        };
        let mut cmd = Command::new(program);
        cmd.arg(script)
            .arg(url)
            .arg(mode)
            .arg(format!("{:.1}", limit.as_secs_f64()));
        cmd
    }
}

fn python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

/// Runs `client` in `mode` against `url`; its JSON line. (The check runs only when the client
/// is installed: see [`ws_check`].)
async fn observe(client: Client, url: &str, mode: &str, limit: Duration) -> Value {
    let mut cmd = client.command(url, mode, limit);
    let finished = tokio::task::spawn_blocking(move || run_with_limit(&mut cmd, limit + SLACK))
        .await
        .expect("client thread")
        .unwrap_or_else(|e| panic!("{}: {e}", client.name()));
    let line = finished.json_line().unwrap_or_else(|| {
        panic!(
            "{} printed no JSON line; stdout {:?} stderr {:?}",
            client.name(),
            finished.stdout,
            finished.stderr
        )
    });
    assert!(
        line.get("launch_error").is_none(),
        "{}: {line}",
        client.name()
    );
    line
}

/// The check `scenario::client`: `body` runs on a Tokio runtime of its own (in-process devices
/// live on it), shut down afterwards.
fn ws_check<F, Fut>(scenario: &'static str, client: Client, body: F) -> ClientCheck
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    ClientCheck::new(scenario, client.name(), client.missing(), move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(body(client));
        runtime.shutdown_timeout(Duration::from_secs(5));
    })
}

/// The text a developer would read: exception type, message and causes (Python), error messages
/// and codes (Node), DevTools console lines (Chromium).
fn error_text(seen: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(err) = seen.get("error").filter(|e| !e.is_null()) {
        parts.push(format!(
            "{}: {}",
            err["type"].as_str().unwrap_or(""),
            err["message"].as_str().unwrap_or("")
        ));
        for cause in err["cause"].as_array().into_iter().flatten() {
            parts.push(cause.as_str().unwrap_or("").to_owned());
        }
    }
    for err in seen["errors"].as_array().into_iter().flatten() {
        parts.push(format!(
            "{} ({})",
            err["message"].as_str().unwrap_or(""),
            err["code"].as_str().unwrap_or("")
        ));
    }
    for line in seen["console"].as_array().into_iter().flatten() {
        parts.push(line.as_str().unwrap_or("").to_owned());
    }
    parts.join(" | ")
}

/// Starts an in-process device with these fault rules (a scenario's `faults:` list, as JSON).
async fn device_with_faults(rules: &str) -> (RunningEmulator, String) {
    let config = EmulatorConfig {
        faults: serde_json::from_str(rules).expect("fault rules parse"),
        seed: 7,
        ..EmulatorConfig::default()
    };
    let running = Emulator::start(config).await.expect("emulator starts");
    let url = format!("ws://{}/ws", running.http_addr());
    (running, url)
}

fn assert_contains(client: Client, seen: &Value, needle: &str) {
    let text = error_text(seen);
    assert!(
        text.contains(needle),
        "{}: expected `{needle}` in what it reported: {text}\nfull: {seen}",
        client.name()
    );
}

/// Every handshake failure looks the same to page script: an `error` event, then close 1006.
fn assert_browser_handshake_failure(seen: &Value, console: &str) {
    assert_eq!(seen["opened"], false, "{seen}");
    assert_eq!(seen["error_event"], true, "{seen}");
    assert_eq!(seen["close_code"], 1006, "{seen}");
    assert_eq!(seen["was_clean"], false, "{seen}");
    assert_contains(Client::Chromium, seen, console);
}

fn espsim_run() -> Espsim {
    Espsim::start(espsim_run_command(1), Duration::from_secs(20))
}

fn main() -> ExitCode {
    let mut all = Vec::new();
    for client in Client::ALL {
        all.push(ws_check("normal_session", client, normal_session));
        all.push(ws_check("refused_connection", client, refused_connection));
        all.push(ws_check(
            "reset_after_the_upgrade_request",
            client,
            reset_after_the_upgrade_request,
        ));
        all.push(ws_check(
            "closed_before_the_response_headers",
            client,
            closed_before_the_response_headers,
        ));
        all.push(ws_check("non_101_status", client, non_101_status));
        all.push(ws_check(
            "bad_sec_websocket_accept",
            client,
            bad_sec_websocket_accept,
        ));
        all.push(ws_check(
            "close_frame_with_code_and_reason",
            client,
            close_frame_with_code_and_reason,
        ));
        all.push(ws_check(
            "half_open_after_the_session_starts",
            client,
            half_open_after_the_session_starts,
        ));
    }
    // Browsers never send ping frames: a suppressed pong has nothing to act on in Chromium, so
    // there is no Chromium check of it (not a skip: there is nothing to check).
    for client in [Client::Python, Client::Node] {
        all.push(ws_check("suppressed_pong", client, suppressed_pong));
    }
    all.push(ws_check(
        "ws_ping_frame_gets_a_pong",
        Client::Node,
        ws_ping_frame_gets_a_pong,
    ));
    let websocat = repo_root().join(".venv/bin/websocat");
    all.push(ClientCheck::new(
        "normal_session",
        "websocat",
        (!websocat.is_file())
            .then(|| "no .venv/bin/websocat (run scripts/install-test-clients.sh)".to_owned()),
        move || websocat_gets_the_welcome(&websocat),
    ));
    all.push(ClientCheck::new(
        "captive_dns",
        "dig",
        (!on_path("dig")).then(|| "dig not installed (apt-get install bind9-dnsutils)".to_owned()),
        dig_sees_the_captive_dns,
    ));
    all.push(ClientCheck::new(
        "captive_http",
        "curl",
        (!on_path("curl")).then(|| "curl not installed (apt-get install curl)".to_owned()),
        curl_sees_the_captive_portal_redirect,
    ));
    checks::run(all)
}

async fn normal_session(client: Client) {
    let espsim = espsim_run();
    let seen = observe(client, &espsim.ws_url(), "session", Duration::from_secs(5)).await;
    assert_eq!(seen["opened"], true, "{seen}");
    let received: Vec<&str> = seen["received"]
        .as_array()
        .expect("received list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(received.first(), Some(&"welcome"), "{seen}");
    assert!(received.contains(&"pong"), "{seen}");
    assert_eq!(seen["ended_by"], "client", "{seen}");
    // The client closes with 1000; the device answers with an EMPTY close frame, as ESP-IDF
    // does, so every client reports 1005 (no status received), cleanly.
    assert_eq!(seen["close_code"], 1005, "{seen}");
    if client == Client::Chromium {
        assert_eq!(seen["was_clean"], true, "{seen}");
    }
    if client == Client::Python {
        assert!(seen["error"].is_null(), "{seen}");
    }
}

/// A WebSocket ping frame is answered with a pong by the device's HTTP server.
async fn ws_ping_frame_gets_a_pong(client: Client) {
    let espsim = espsim_run();
    let seen = observe(client, &espsim.ws_url(), "wsping", Duration::from_secs(5)).await;
    assert_eq!(seen["pong"], true, "{seen}");
}

fn websocat_gets_the_welcome(websocat: &std::path::Path) {
    let espsim = espsim_run();
    let dir = tempfile::tempdir().expect("temp dir");
    let hello = dir.path().join("hello.json");
    std::fs::write(
        &hello,
        "{\"type\":\"hello\",\"client\":\"websocat\",\"version\":\"1\"}\n",
    )
    .expect("write hello");
    // -n1: print the first message, then leave; the hello is sent from the file on stdin.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" -n1 \"$1\" < \"$2\"")
        .arg(websocat)
        .arg(espsim.ws_url())
        .arg(&hello);
    let finished = run_with_limit(&mut cmd, Duration::from_secs(20)).expect("websocat runs");
    let welcome: Value = serde_json::from_str(finished.stdout.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| {
            panic!(
                "websocat printed {:?} ({e}); stderr {:?}",
                finished.stdout, finished.stderr
            )
        });
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert!(welcome["device_id"].is_string(), "{welcome}");
}

fn dig_sees_the_captive_dns() {
    let espsim = espsim_run();
    let dns = espsim.ready["dns"]
        .as_str()
        .expect("dns address")
        .to_owned();
    let (dns_ip, dns_port) = dns.rsplit_once(':').expect("ip:port");
    for transport in ["+notcp", "+tcp"] {
        let finished = run_with_limit(
            Command::new("dig").args([
                "+short",
                "+time=2",
                "+tries=1",
                transport,
                "-p",
                dns_port,
                &format!("@{dns_ip}"),
                "connectivitycheck.gstatic.com",
                "A",
            ]),
            Duration::from_secs(10),
        )
        .expect("dig runs");
        // The captive DNS answers every name with the device's address (127.0.0.1 here).
        assert_eq!(
            finished.stdout.trim(),
            "127.0.0.1",
            "dig {transport}: {finished:?}"
        );
    }
}

fn curl_sees_the_captive_portal_redirect() {
    let espsim = espsim_run();
    let finished = run_with_limit(
        Command::new("curl")
            .args(CURL_STATUS_AND_LOCATION)
            .args(["-H", "Host: connectivitycheck.gstatic.com"])
            .arg(format!("http://{}/generate_204", espsim.http())),
        Duration::from_secs(10),
    )
    .expect("curl runs");
    // Captive (the default): Android's probe is redirected to the portal (`Location: /`,
    // as in ESP-IDF's captive-portal example) instead of getting its 204.
    assert_eq!(finished.stdout, "302 /", "curl: {finished:?}");
}

// ---- faults (need fault execution in the emulator) ---------------------------------------------

/// How long a client waits in the fault tests.
const FAULT_LIMIT: Duration = Duration::from_secs(5);

/// What `client` saw holding a connection to a device with fault `rules` that let no
/// connection open (asserted).
async fn unopened(client: Client, rules: &str) -> Value {
    let (_device, url) = device_with_faults(rules).await;
    let seen = observe(client, &url, "hold", FAULT_LIMIT).await;
    assert_eq!(seen["opened"], false, "{seen}");
    seen
}

async fn refused_connection(client: Client) {
    let seen = unopened(client, r#"[{ "fault": "refuse" }]"#).await;
    match client {
        Client::Python => assert_contains(client, &seen, "ConnectionRefusedError: [Errno 111]"),
        Client::Node => assert_contains(client, &seen, "connect ECONNREFUSED"),
        Client::Chromium => assert_browser_handshake_failure(&seen, "net::ERR_CONNECTION_REFUSED"),
    }
}

async fn reset_after_the_upgrade_request(client: Client) {
    let seen = unopened(
        client,
        r#"[{ "fault": { "handshake": "reset", "at": "after_request" } }]"#,
    )
    .await;
    match client {
        // RST and FIN are indistinguishable for Python: the EOF chain.
        Client::Python => assert_contains(
            client,
            &seen,
            "InvalidMessage: did not receive a valid HTTP response",
        ),
        Client::Node => assert_contains(client, &seen, "read ECONNRESET (ECONNRESET)"),
        Client::Chromium => assert_browser_handshake_failure(&seen, "net::ERR_CONNECTION_RESET"),
    }
}

async fn closed_before_the_response_headers(client: Client) {
    let seen = unopened(
        client,
        r#"[{ "fault": { "handshake": "close", "at": "after_request" } }]"#,
    )
    .await;
    match client {
        Client::Python => assert_contains(
            client,
            &seen,
            "InvalidMessage: did not receive a valid HTTP response",
        ),
        // A FIN, yet ws reports code ECONNRESET.
        Client::Node => assert_contains(client, &seen, "socket hang up (ECONNRESET)"),
        Client::Chromium => assert_browser_handshake_failure(&seen, "WebSocket connection to"),
    }
}

async fn non_101_status(client: Client) {
    let seen = unopened(
        client,
        r#"[{ "fault": { "handshake": "status", "code": 503 } }]"#,
    )
    .await;
    match client {
        Client::Python => assert_contains(
            client,
            &seen,
            "InvalidStatus: server rejected WebSocket connection: HTTP 503",
        ),
        Client::Node => assert_contains(client, &seen, "Unexpected server response: 503"),
        Client::Chromium => {
            assert_browser_handshake_failure(&seen, "Unexpected response code: 503")
        }
    }
}

async fn bad_sec_websocket_accept(client: Client) {
    let seen = unopened(client, r#"[{ "fault": { "handshake": "bad_accept" } }]"#).await;
    match client {
        Client::Python => assert_contains(
            client,
            &seen,
            "InvalidHeaderValue: invalid Sec-WebSocket-Accept header",
        ),
        Client::Node => assert_contains(client, &seen, "Invalid Sec-WebSocket-Accept header"),
        Client::Chromium => {
            assert_browser_handshake_failure(&seen, "Incorrect 'Sec-WebSocket-Accept' header value")
        }
    }
}

async fn close_frame_with_code_and_reason(client: Client) {
    let (_device, url) = device_with_faults(
        r#"[{ "when": { "after": "hello" }, "fault": { "ws": "close", "code": 4000, "reason": "bye" } }]"#,
    )
    .await;
    let seen = observe(client, &url, "hold", FAULT_LIMIT).await;
    assert_eq!(seen["opened"], true, "{seen}");
    assert_eq!(seen["close_code"], 4000, "{seen}");
    assert_eq!(seen["close_reason"], "bye", "{seen}");
    match client {
        Client::Python => assert_contains(
            client,
            &seen,
            "ConnectionClosedError: received 4000 (private use) bye",
        ),
        Client::Node => assert!(
            seen["errors"].as_array().is_some_and(Vec::is_empty),
            "{seen}"
        ),
        Client::Chromium => assert_eq!(seen["was_clean"], true, "{seen}"),
    }
}

async fn suppressed_pong(client: Client) {
    let (_device, url) = device_with_faults(r#"[{ "fault": { "ws": "suppress_pong" } }]"#).await;
    match client {
        // Python's keepalive (shortened to 0.5 s / 1 s here) gives up with 1011, reports 1006.
        Client::Python => {
            let seen = observe(client, &url, "keepalive", FAULT_LIMIT).await;
            assert_eq!(seen["opened"], true, "{seen}");
            assert_contains(client, &seen, "keepalive ping timeout");
            assert_eq!(seen["close_code"], 1006, "{seen}");
        }
        // Node ws has no keepalive: the app's own ping simply never gets its pong.
        Client::Node => {
            let seen = observe(client, &url, "wsping", Duration::from_secs(3)).await;
            assert_eq!(seen["opened"], true, "{seen}");
            assert_eq!(seen["pong"], false, "{seen}");
            assert_eq!(seen["ended_by"], "limit", "{seen}");
        }
        Client::Chromium => unreachable!("browsers never send ping frames: no check is built"),
    }
}

async fn half_open_after_the_session_starts(client: Client) {
    // The AP goes silent once the app said hello: open connections get no FIN, no RST (and new
    // ones no answer), so each client gets a device of its own.
    let (_device, url) = device_with_faults(
        r#"[{ "when": { "after": "hello" }, "fault": { "device": "ap_down", "for": "60s" } }]"#,
    )
    .await;
    match client {
        Client::Python => {
            let seen = observe(client, &url, "keepalive", FAULT_LIMIT).await;
            assert_eq!(seen["opened"], true, "{seen}");
            // The keepalive ping gets no pong, the close frame no answer: 1011 sent, 1006
            // reported.
            assert_contains(
                client,
                &seen,
                "sent 1011 (internal error) keepalive ping timeout; no close frame received",
            );
            assert_eq!(seen["close_code"], 1006, "{seen}");
        }
        Client::Node => {
            let seen = observe(client, &url, "wsping", Duration::from_secs(3)).await;
            // Node ws has no keepalive: no error, no close; only the app's own ping goes
            // unanswered.
            assert_eq!(seen["opened"], true, "{seen}");
            assert_eq!(seen["pong"], false, "{seen}");
            assert_eq!(seen["ended_by"], "limit", "{seen}");
            assert!(
                seen["errors"].as_array().is_some_and(Vec::is_empty),
                "{seen}"
            );
        }
        // An idle browser never notices: no close event within the limit.
        Client::Chromium => {
            let seen = observe(client, &url, "hold", Duration::from_secs(3)).await;
            assert_eq!(seen["opened"], true, "{seen}");
            assert_eq!(seen["ended_by"], "limit", "{seen}");
            assert!(seen["close_code"].is_null(), "{seen}");
        }
    }
}
