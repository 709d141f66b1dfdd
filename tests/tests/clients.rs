//! Independent clients against espsim: Python `websockets`, Node `ws`, OkHttp (Android's client,
//! on the JVM), headless Chromium, tokio-tungstenite (espsim's own test client, in-process),
//! `websocat`, `dig` and `curl` (installed by `scripts/install-test-clients.sh`).
//!
//! Each external client is a small program in `tests/clients/` that prints one JSON line of what
//! it observed. The fault checks are the client table of `docs/reference/faults.md` ("What your
//! app sees"): one check per (row, client), named `row::client`, each against a device of its own with that fault, and
//! each asserting the stable part of what the client reports (exception type and message, close
//! code), never ports or timings. The normal session runs against the `espsim run` binary; the
//! faults run against an in-process emulator built from `EmulatorConfig.faults`, written as a
//! user writes them in a scenario. The DNS rows need the client's system resolver to ask the
//! device, so they run `espsim run` at 192.168.4.1 in a network namespace and the client in a
//! "phone" namespace resolving through it (`espsim_tests::netns`; root only: without root those
//! checks are skipped like a missing client); tokio-tungstenite then runs as this binary with
//! `--tokio-tungstenite-client`.
//!
//! This file is a `harness = false` test run by `espsim_tests::checks::run_with_threads`: a
//! client that is not installed makes its checks `ignored`, and a last line counts the checks that
//! ran and that skipped. With `ESPSIM_REQUIRE_CLIENTS=1` those checks fail instead. Nothing else
//! is skipped. Every wait is bounded: the clients get short timeouts of their own (as an app
//! would set them) and the harness kills a client that outlives its limit.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_tests::checks::{self, ClientCheck};
use espsim_tests::netns::{DEVICE_IP, SoftApNamespaces};
use espsim_tests::{
    CURL_STATUS_AND_LOCATION, Espsim, espsim_bin, espsim_run_command, node_ws_missing, on_path,
    python_websockets_missing, repo_root, run_with_limit, venv_python,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// How long the client programs may run beyond their own limit (Chromium and the JVM start in
/// a few seconds; more when many checks start at once on a small machine).
const SLACK: Duration = Duration::from_secs(45);

/// Checks run at a time (unless `--test-threads`): most of a check is waiting on a client's
/// timeout, not CPU.
const PARALLEL_CHECKS: usize = 6;

/// Where `scripts/install-test-clients.sh` compiles `tests/clients/WsOkHttp.java`.
const OKHTTP_CLASSES: &str = "target/okhttp-client";

/// Debian's OkHttp 3.13 and the okio 1.x it needs (`libokhttp-java`).
const OKHTTP_JARS: [&str; 2] = ["/usr/share/java/okhttp.jar", "/usr/share/java/okio.jar"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Python,
    Node,
    OkHttp,
    Chromium,
    /// espsim's own test client (the "espsim's tests" column), run in-process.
    Tungstenite,
}

impl Client {
    const ALL: [Client; 5] = [
        Client::Python,
        Client::Node,
        Client::OkHttp,
        Client::Chromium,
        Client::Tungstenite,
    ];

    fn name(self) -> &'static str {
        match self {
            Client::Python => "python-websockets",
            Client::Node => "node-ws",
            Client::OkHttp => "okhttp",
            Client::Chromium => "chromium",
            Client::Tungstenite => "tokio-tungstenite",
        }
    }

    /// Why the client cannot run here, if it cannot.
    fn missing(self) -> Option<String> {
        let root = repo_root();
        let modules = root.join("tests/clients/node_modules");
        match self {
            Client::Python => python_websockets_missing(),
            Client::Node => node_ws_missing(),
            Client::OkHttp => (!on_path("java")
                || !root.join(OKHTTP_CLASSES).join("WsOkHttp.class").is_file()
                || !OKHTTP_JARS.iter().all(|jar| PathBuf::from(jar).is_file()))
            .then(|| {
                format!(
                    "no java, {OKHTTP_CLASSES}/WsOkHttp.class or Debian's libokhttp-java \
                     (run scripts/install-test-clients.sh)"
                )
            }),
            Client::Chromium => (!on_path("node")
                || !modules.join("playwright-core").is_dir()
                || !PathBuf::from("/usr/bin/chromium").is_file())
            .then(|| {
                "no /usr/bin/chromium or playwright-core (run scripts/install-test-clients.sh)"
                    .to_owned()
            }),
            Client::Tungstenite => None,
        }
    }

    /// The external program's command line (`None` for the in-process client).
    fn command(self, url: &str, mode: &str, limit: Duration, extra: &[&str]) -> Option<Command> {
        let root = repo_root();
        let scripts = root.join("tests/clients");
        let mut cmd = match self {
            Client::Python => {
                let mut cmd = Command::new(venv_python());
                cmd.arg(scripts.join("ws_python.py"));
                cmd
            }
            Client::Node => {
                let mut cmd = Command::new("node");
                cmd.arg(scripts.join("ws_node.js"));
                cmd
            }
            Client::Chromium => {
                let mut cmd = Command::new("node");
                cmd.arg(scripts.join("ws_chromium.js"));
                cmd
            }
            Client::OkHttp => {
                let mut classpath = vec![root.join(OKHTTP_CLASSES).display().to_string()];
                classpath.extend(OKHTTP_JARS.iter().map(|jar| (*jar).to_owned()));
                let mut cmd = Command::new("java");
                cmd.args(["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp"])
                    .arg(classpath.join(":"))
                    .arg("WsOkHttp");
                cmd
            }
            Client::Tungstenite => return None,
        };
        cmd.arg(url)
            .arg(mode)
            .arg(format!("{:.1}", limit.as_secs_f64()))
            .args(extra);
        Some(cmd)
    }
}

/// Runs `client` in `mode` against `url` (with `extra` arguments: the client's own timeouts);
/// its JSON line. (The check runs only when the client is installed: see [`ws_check`].)
async fn observe_with(
    client: Client,
    url: &str,
    mode: &str,
    limit: Duration,
    extra: &[&str],
) -> Value {
    let Some(cmd) = client.command(url, mode, limit, extra) else {
        return tungstenite_observe(url, mode, limit).await;
    };
    run_client(client, cmd, limit).await
}

/// Runs the client program `cmd` (its own limit `limit`); its JSON line.
async fn run_client(client: Client, mut cmd: Command, limit: Duration) -> Value {
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

/// [`observe_with`] and the client's default options.
async fn observe(client: Client, url: &str, mode: &str, limit: Duration) -> Value {
    observe_with(client, url, mode, limit, &[]).await
}

/// espsim's own test client (tokio-tungstenite, default config), with the modes and the JSON
/// line of the external clients: `session`, `hold`, `wsping`. `error.type` is the error's
/// `Debug` form (its variant), `error.message` its `Display` form.
async fn tungstenite_observe(url: &str, mode: &str, limit: Duration) -> Value {
    let started = Instant::now();
    let mut out = json!({
        "client": "tokio-tungstenite", "opened": false, "received": [], "close_code": null,
        "close_reason": null, "error": null, "pong": null, "ended_by": null,
    });
    let describe = |e: &tokio_tungstenite::tungstenite::Error| json!({ "type": format!("{e:?}"), "message": e.to_string(), "cause": [] });
    let deadline = tokio::time::Instant::now() + limit;
    let mut ws =
        match tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(url)).await {
            Err(_) => {
                out["ended_by"] = "limit".into();
                return out;
            }
            Ok(Err(e)) => {
                out["error"] = describe(&e);
                out["ended_by"] = "error".into();
                return out;
            }
            Ok(Ok((ws, _response))) => ws,
        };
    out["opened"] = true.into();
    let hello = r#"{"type":"hello","client":"tokio-tungstenite","version":"1"}"#;
    let mut ping_at =
        (mode == "wsping").then(|| tokio::time::Instant::now() + Duration::from_millis(500));
    if let Err(e) = ws.send(Message::text(hello)).await {
        out["error"] = describe(&e);
        out["ended_by"] = "server_or_network".into();
        return out;
    }
    let mut received = Vec::new();
    loop {
        let next = match ping_at {
            Some(at) => tokio::time::timeout_at(at.min(deadline), ws.next()).await,
            None => tokio::time::timeout_at(deadline, ws.next()).await,
        };
        let item = match next {
            Err(_) if ping_at.is_some() && tokio::time::Instant::now() < deadline => {
                ping_at = None;
                if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                    out["error"] = describe(&e);
                    break;
                }
                continue;
            }
            Err(_) => {
                out["ended_by"] = "limit".into();
                if mode == "wsping" && out["pong"].is_null() {
                    out["pong"] = false.into();
                }
                break;
            }
            Ok(item) => item,
        };
        match item {
            None => break,
            Some(Err(e)) => {
                out["error"] = describe(&e);
                break;
            }
            Some(Ok(Message::Text(text))) => {
                let kind = serde_json::from_str::<Value>(text.as_str())
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "<non-json>".to_owned());
                if mode == "session" && kind == "welcome" {
                    let ping = Message::text(r#"{"type":"ping","seq":1}"#);
                    if let Err(e) = ws.send(ping).await {
                        out["error"] = describe(&e);
                        break;
                    }
                }
                if mode == "session" && kind == "pong" {
                    out["ended_by"] = "client".into();
                    if let Err(e) = ws.close(None).await {
                        out["error"] = describe(&e);
                        break;
                    }
                }
                received.push(kind);
            }
            Some(Ok(Message::Pong(_))) => {
                out["pong"] = true.into();
                if mode == "wsping" {
                    out["ended_by"] = "client".into();
                    break;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                out["close_code"] = frame.as_ref().map_or(1005, |f| u16::from(f.code)).into();
                out["close_reason"] = frame.map_or(String::new(), |f| f.reason.to_string()).into();
            }
            Some(Ok(_)) => {}
        }
    }
    if out["ended_by"].is_null() {
        out["ended_by"] = "server_or_network".into();
    }
    out["received"] = received.into();
    out["elapsed_ms"] = u64::try_from(started.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .into();
    out
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

/// The text a developer would read: exception type, message and causes (Python, OkHttp,
/// tokio-tungstenite), error messages and codes (Node), DevTools console lines (Chromium).
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

/// The first argument that makes this test binary the tokio-tungstenite client program
/// (`URL MODE LIMIT_SECONDS`, one JSON line), for checks that run the client where the test
/// process is not: in the phone's network namespace.
const TUNGSTENITE_CLIENT: &str = "--tokio-tungstenite-client";

/// The client's program (this binary, as [`TUNGSTENITE_CLIENT`], for tokio-tungstenite).
fn client_program(client: Client, url: &str, mode: &str, limit: Duration) -> Command {
    client.command(url, mode, limit, &[]).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let mut cmd = Command::new(exe);
        cmd.args([TUNGSTENITE_CLIENT, url, mode])
            .arg(format!("{:.1}", limit.as_secs_f64()));
        cmd
    })
}

/// [`TUNGSTENITE_CLIENT`]: runs [`tungstenite_observe`] and prints its JSON line.
fn tungstenite_client_main(args: &[String]) -> ExitCode {
    let [url, mode, limit] = args else {
        eprintln!("usage: {TUNGSTENITE_CLIENT} URL MODE LIMIT_SECONDS");
        return ExitCode::from(2);
    };
    let Some(limit) = limit
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
    else {
        eprintln!("{TUNGSTENITE_CLIENT}: LIMIT_SECONDS is not a duration: {limit}");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let seen = runtime.block_on(tungstenite_observe(url, mode, limit));
    println!("{seen}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(TUNGSTENITE_CLIENT) {
        return tungstenite_client_main(&args[2..]);
    }
    let mut all = Vec::new();
    for client in Client::ALL {
        all.push(ws_check("normal_session", client, normal_session));
        for row in HANDSHAKE_ROWS {
            all.push(ws_check(row.check, client, move |c| {
                handshake_fails(c, row)
            }));
        }
        for row in SESSION_END_ROWS {
            all.push(ws_check(row.check, client, move |c| session_ends(c, row)));
        }
        for (check, rules) in NO_ANSWER_ROWS {
            all.push(ws_check(check, client, move |c| no_answer(c, rules)));
        }
        for (check, rules) in DEAD_LINK_ROWS {
            all.push(ws_check(check, client, move |c| dead_link(c, rules)));
        }
        for row in DNS_ROWS {
            all.push(dns_check(row, client));
        }
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
    checks::run_with_threads(all, Some(PARALLEL_CHECKS))
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

// ---- the client table (docs/reference/faults.md): one check per (row, client) ------------------------------------

/// Something per client, in the table's column order.
#[derive(Debug, Clone, Copy)]
struct PerClient<T> {
    python: T,
    node: T,
    okhttp: T,
    chromium: T,
    tungstenite: T,
}

impl<T: Copy> PerClient<T> {
    fn of(&self, client: Client) -> T {
        match client {
            Client::Python => self.python,
            Client::Node => self.node,
            Client::OkHttp => self.okhttp,
            Client::Chromium => self.chromium,
            Client::Tungstenite => self.tungstenite,
        }
    }
}

/// A fault that lets no connection open, and what each client reports: every text must appear
/// in what it reported (Chromium: the DevTools console line; page script sees only `error` and
/// 1006). A text `a || b` is satisfied by either (a race the fault cannot decide).
#[derive(Debug, Clone, Copy)]
struct HandshakeRow {
    check: &'static str,
    rules: &'static str,
    says: PerClient<&'static [&'static str]>,
}

/// EOF before any byte of a response: what each client reports.
const EOF_BEFORE_THE_RESPONSE: PerClient<&[&str]> = PerClient {
    python: &[
        "InvalidMessage: did not receive a valid HTTP response",
        "stream ends after 0 bytes",
    ],
    node: &["socket hang up (ECONNRESET)"],
    okhttp: &["IOException: unexpected end of stream on"],
    chromium: &["Connection closed before receiving a handshake response"],
    tungstenite: &["Protocol(HandshakeIncomplete)"],
};

const HANDSHAKE_ROWS: [HandshakeRow; 11] = [
    HandshakeRow {
        check: "refuse",
        rules: r#"[{ "fault": "refuse" }]"#,
        says: PerClient {
            python: &["ConnectionRefusedError: [Errno 111]"],
            node: &["connect ECONNREFUSED", "(ECONNREFUSED)"],
            okhttp: &[
                "ConnectException: Failed to connect to",
                "ConnectException: Connection refused",
            ],
            chromium: &["net::ERR_CONNECTION_REFUSED"],
            tungstenite: &["Connection refused (os error 111)"],
        },
    },
    HandshakeRow {
        check: "reset_on_accept",
        rules: r#"[{ "fault": "reset_on_accept" }]"#,
        // The RST races the client's connect and request: before the client saw the connection
        // established it is a connect error, after it a read error (or EOF, for Python).
        says: PerClient {
            python: &["ConnectionResetError: [Errno 104] Connect call failed || \
                 InvalidMessage: did not receive a valid HTTP response"],
            node: &["connect ECONNRESET || read ECONNRESET", "(ECONNRESET)"],
            okhttp: &["SocketException: Connection reset"],
            chromium: &["net::ERR_CONNECTION_RESET || net::ERR_SOCKET_NOT_CONNECTED"],
            tungstenite: &["Connection reset by peer (os error 104)"],
        },
    },
    HandshakeRow {
        check: "close_on_accept",
        rules: r#"[{ "fault": "close_on_accept" }]"#,
        // The FIN at accept races Chromium's own connect: when it is already there as
        // Chromium takes the new socket, Chromium reports it as never connected.
        says: PerClient {
            chromium: &[
                "Connection closed before receiving a handshake response || \
                 net::ERR_SOCKET_NOT_CONNECTED",
            ],
            ..EOF_BEFORE_THE_RESPONSE
        },
    },
    HandshakeRow {
        check: "handshake_close_after_request",
        rules: r#"[{ "fault": { "handshake": "close", "at": "after_request" } }]"#,
        says: EOF_BEFORE_THE_RESPONSE,
    },
    HandshakeRow {
        check: "handshake_silent_close",
        rules: r#"[{ "fault": { "handshake": "silent_close" } }]"#,
        says: EOF_BEFORE_THE_RESPONSE,
    },
    HandshakeRow {
        check: "handshake_reset_after_request",
        rules: r#"[{ "fault": { "handshake": "reset", "at": "after_request" } }]"#,
        says: PerClient {
            // RST and FIN are indistinguishable for Python: the EOF chain.
            python: &["InvalidMessage: did not receive a valid HTTP response"],
            node: &["read ECONNRESET (ECONNRESET)"],
            okhttp: &["SocketException: Connection reset"],
            chromium: &["Error during WebSocket handshake: net::ERR_CONNECTION_RESET"],
            tungstenite: &["Connection reset by peer (os error 104)"],
        },
    },
    HandshakeRow {
        check: "handshake_close_mid_response",
        rules: r#"[{ "fault": { "handshake": "close", "at": "mid_response", "bytes": 20 } }]"#,
        says: PerClient {
            python: &[
                "InvalidMessage: did not receive a valid HTTP response",
                "stream ends after 20 bytes",
            ],
            node: &["socket hang up (ECONNRESET)"],
            okhttp: &["IOException: unexpected end of stream on"],
            chromium: &["Error during WebSocket handshake: net::ERR_CONNECTION_CLOSED"],
            tungstenite: &["Protocol(HandshakeIncomplete)"],
        },
    },
    HandshakeRow {
        check: "handshake_reset_mid_response",
        rules: r#"[{ "fault": { "handshake": "reset", "at": "mid_response", "bytes": 20 } }]"#,
        says: PerClient {
            python: &[
                "InvalidMessage: did not receive a valid HTTP response",
                "stream ends after 20 bytes",
            ],
            // `socket hang up` or `read ECONNRESET`, by timing; the code is the same.
            node: &["(ECONNRESET)"],
            okhttp: &["SocketException: Connection reset"],
            chromium: &["Error during WebSocket handshake: net::ERR_CONNECTION_RESET"],
            tungstenite: &["Connection reset by peer (os error 104)"],
        },
    },
    HandshakeRow {
        check: "handshake_status_503",
        rules: r#"[{ "fault": { "handshake": "status", "code": 503 } }]"#,
        says: PerClient {
            python: &["InvalidStatus: server rejected WebSocket connection: HTTP 503"],
            node: &["Unexpected server response: 503"],
            okhttp: &[
                "ProtocolException: Expected HTTP 101 response but was '503 Service Unavailable'",
            ],
            chromium: &["Error during WebSocket handshake: Unexpected response code: 503"],
            tungstenite: &["HTTP error: 503 Service Unavailable"],
        },
    },
    HandshakeRow {
        check: "handshake_bad_accept",
        rules: r#"[{ "fault": { "handshake": "bad_accept" } }]"#,
        says: PerClient {
            python: &["InvalidHeaderValue: invalid Sec-WebSocket-Accept header"],
            node: &["Invalid Sec-WebSocket-Accept header"],
            okhttp: &["ProtocolException: Expected 'Sec-WebSocket-Accept' header value"],
            chromium: &[
                "Error during WebSocket handshake: Incorrect 'Sec-WebSocket-Accept' header value",
            ],
            tungstenite: &["SecWebSocketAcceptKeyMismatch"],
        },
    },
    HandshakeRow {
        check: "handshake_missing_upgrade_header",
        rules: r#"[{ "fault": { "handshake": "missing_upgrade_header" } }]"#,
        says: PerClient {
            python: &["InvalidUpgrade: missing Upgrade header"],
            node: &["Unexpected server response: 101"],
            okhttp: &[
                "ProtocolException: Expected 'Upgrade' header value 'websocket' but was 'null'",
            ],
            chromium: &["Error during WebSocket handshake: 'Upgrade' header is missing"],
            tungstenite: &["MissingUpgradeWebSocketHeader"],
        },
    },
];

async fn handshake_fails(client: Client, row: HandshakeRow) {
    let (_device, url) = device_with_faults(row.rules).await;
    let seen = observe(client, &url, "hold", Duration::from_secs(5)).await;
    assert_eq!(seen["opened"], false, "{seen}");
    for text in row.says.of(client) {
        let reported = error_text(&seen);
        assert!(
            text.split(" || ").any(|one| reported.contains(one)),
            "{}: expected `{text}` in what it reported: {reported}\nfull: {seen}",
            client.name()
        );
    }
    if client == Client::Chromium {
        assert_browser_handshake_failure(&seen, "WebSocket connection to");
    }
}

/// What a client sees of an open session the device (or the fault) ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// It ends: this close code (`None`: the client reports none, e.g. OkHttp's `onFailure`)
    /// and these texts in what it reported.
    Ends(Option<u16>, &'static [&'static str]),
    /// Nothing is reported: the session is still open at the limit, no error.
    Continues,
}

/// A fault on an open session (armed by the app's hello).
#[derive(Debug, Clone, Copy)]
struct SessionEndRow {
    check: &'static str,
    rules: &'static str,
    sees: PerClient<Ending>,
}

/// FIN or RST, no close frame, and no error text (Node, Chromium).
const QUIET_1006: Ending = Ending::Ends(Some(1006), &[]);

/// A session reset without a close frame (an RST from the device), as each client reports it.
const RESET_NO_CLOSE: PerClient<Ending> = PerClient {
    python: Ending::Ends(
        Some(1006),
        &[
            "ConnectionClosedError: no close frame received or sent",
            "ConnectionResetError: [Errno 104]",
        ],
    ),
    node: QUIET_1006,
    okhttp: Ending::Ends(None, &["SocketException: Connection reset"]),
    chromium: QUIET_1006,
    tungstenite: Ending::Ends(None, &["Connection reset by peer (os error 104)"]),
};

const SESSION_END_ROWS: [SessionEndRow; 10] = [
    SessionEndRow {
        check: "ws_close_4001_bye",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "ws": "close", "code": 4001, "reason": "bye" } }]"#,
        sees: PerClient {
            python: Ending::Ends(
                Some(4001),
                &["ConnectionClosedError: received 4001 (private use) bye"],
            ),
            node: Ending::Ends(Some(4001), &[]),
            okhttp: Ending::Ends(Some(4001), &[]),
            chromium: Ending::Ends(Some(4001), &[]),
            tungstenite: Ending::Ends(Some(4001), &[]),
        },
    },
    SessionEndRow {
        check: "ws_lru_purge",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "ws": "lru_purge" } }]"#,
        sees: PerClient {
            python: Ending::Ends(
                Some(1006),
                &[
                    "ConnectionClosedError: no close frame received or sent",
                    "EOFError",
                ],
            ),
            node: QUIET_1006,
            okhttp: Ending::Ends(None, &["EOFException"]),
            chromium: QUIET_1006,
            tungstenite: Ending::Ends(None, &["ResetWithoutClosingHandshake"]),
        },
    },
    SessionEndRow {
        check: "stream_reset_peer",
        rules: r#"[{ "fault": { "stream": "reset_peer", "timeout": "1s" } }]"#,
        sees: RESET_NO_CLOSE,
    },
    SessionEndRow {
        check: "device_reboot",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "device": "reboot", "down": "5s" } }]"#,
        sees: RESET_NO_CLOSE,
    },
    SessionEndRow {
        check: "device_ap_down_ends",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "device": "ap_down", "for": "1s" } }]"#,
        sees: RESET_NO_CLOSE,
    },
    SessionEndRow {
        check: "ws_corrupt_opcode",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "ws": "corrupt", "kind": "opcode" } }]"#,
        sees: PerClient {
            python: Ending::Ends(Some(1006), &["sent 1002 (protocol error) invalid opcode"]),
            node: Ending::Ends(Some(1006), &["invalid opcode 3 (WS_ERR_INVALID_OPCODE)"]),
            okhttp: Ending::Ends(None, &["ProtocolException: Unknown opcode: 3"]),
            chromium: Ending::Ends(Some(1006), &["Unrecognized frame opcode: 3"]),
            tungstenite: Ending::Ends(None, &["InvalidOpcode(3)"]),
        },
    },
    SessionEndRow {
        check: "ws_corrupt_rsv",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "ws": "corrupt", "kind": "rsv" } }]"#,
        sees: PerClient {
            python: Ending::Ends(
                Some(1006),
                &["sent 1002 (protocol error) reserved bits must be 0"],
            ),
            node: Ending::Ends(
                Some(1006),
                &["RSV1 must be clear (WS_ERR_UNEXPECTED_RSV_1)"],
            ),
            okhttp: Ending::Ends(
                None,
                &["ProtocolException: Reserved flags are unsupported."],
            ),
            chromium: Ending::Ends(Some(1006), &["One or more reserved bits are on"]),
            tungstenite: Ending::Ends(None, &["NonZeroReservedBits"]),
        },
    },
    SessionEndRow {
        check: "ws_corrupt_masked",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "ws": "corrupt", "kind": "masked" } }]"#,
        sees: PerClient {
            python: Ending::Ends(
                Some(1006),
                &["sent 1002 (protocol error) incorrect masking"],
            ),
            node: Ending::Ends(Some(1006), &["MASK must be clear (WS_ERR_UNEXPECTED_MASK)"]),
            okhttp: Ending::Ends(
                None,
                &["ProtocolException: Server-sent frames must not be masked."],
            ),
            chromium: Ending::Ends(
                Some(1006),
                &["A server must not mask any frames that it sends to the client."],
            ),
            tungstenite: Ending::Ends(None, &["MaskedFrameFromServer"]),
        },
    },
    SessionEndRow {
        check: "ws_corrupt_utf8",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "ws": "corrupt", "kind": "utf8" } }]"#,
        sees: PerClient {
            python: Ending::Ends(Some(1006), &["sent 1007 (invalid frame payload data)"]),
            node: Ending::Ends(
                Some(1006),
                &["invalid UTF-8 sequence (WS_ERR_INVALID_UTF8)"],
            ),
            // Delivered, with U+FFFD in place of the bad bytes.
            okhttp: Ending::Continues,
            chromium: Ending::Ends(Some(1006), &["Could not decode a text frame as UTF-8."]),
            tungstenite: Ending::Ends(None, &["Utf8"]),
        },
    },
    SessionEndRow {
        check: "ws_oversize_2mib",
        rules: r#"[{ "when": { "after": "hello" }, "fault": { "ws": "oversize", "bytes": 2097152 } }]"#,
        sees: PerClient {
            // `max_size` is 1 MiB.
            python: Ending::Ends(
                Some(1006),
                &[
                    "sent 1009 (message too big) frame with 2097152 bytes exceeds limit of 1048576 bytes",
                ],
            ),
            node: Ending::Continues,
            okhttp: Ending::Continues,
            chromium: Ending::Continues,
            tungstenite: Ending::Continues,
        },
    },
];

async fn session_ends(client: Client, row: SessionEndRow) {
    let (_device, url) = device_with_faults(row.rules).await;
    let seen = observe(client, &url, "hold", Duration::from_secs(4)).await;
    assert_eq!(seen["opened"], true, "{seen}");
    match row.sees.of(client) {
        Ending::Ends(code, texts) => {
            assert_eq!(seen["ended_by"], "server_or_network", "{seen}");
            assert_eq!(seen["close_code"], json!(code), "{seen}");
            for text in texts {
                assert_contains(client, &seen, text);
            }
            if texts.is_empty() {
                assert_eq!(error_text(&seen), "", "{}: {seen}", client.name());
            }
            if client == Client::Chromium {
                // The only bit page script can use: an `error` event before a protocol error.
                assert_eq!(seen["error_event"], !texts.is_empty(), "{seen}");
                assert_eq!(seen["was_clean"], code != Some(1006), "{seen}");
            }
            if code.is_some_and(|c| c >= 4000) {
                assert_eq!(seen["close_reason"], "bye", "{seen}");
            }
        }
        Ending::Continues => {
            assert_eq!(seen["ended_by"], "limit", "{seen}");
            assert_eq!(error_text(&seen), "", "{}: {seen}", client.name());
            assert!(seen["close_code"].is_null(), "{seen}");
        }
    }
}

/// Faults that leave the opening handshake unanswered: each client gets a short timeout of its
/// own (2 s, as an app would set one) where it has one; the defaults are in `docs/reference/faults.md`.
const NO_ANSWER_ROWS: [(&str, &str); 4] = [
    ("stall", r#"[{ "fault": "stall" }]"#),
    (
        "handshake_delay_60s",
        r#"[{ "fault": { "handshake": "delay", "delay": "60s" } }]"#,
    ),
    (
        "stream_timeout_0",
        r#"[{ "fault": { "stream": "timeout", "timeout": "0s" } }]"#,
    ),
    (
        "stream_half_open",
        r#"[{ "fault": { "stream": "half_open" } }]"#,
    ),
];

async fn no_answer(client: Client, rules: &'static str) {
    let (_device, url) = device_with_faults(rules).await;
    let seen = match client {
        // open_timeout 2 s (default 10 s).
        Client::Python => observe_with(client, &url, "hold", Duration::from_secs(5), &["2"]).await,
        // handshakeTimeout 2 s (default: none).
        Client::Node => observe_with(client, &url, "hold", Duration::from_secs(5), &["2"]).await,
        // readTimeout 2 s (default 10 s).
        Client::OkHttp => {
            let args = ["--read-timeout", "2"];
            observe_with(client, &url, "hold", Duration::from_secs(5), &args).await
        }
        // Neither can set a handshake timeout: nothing happens within the 3 s looked at.
        Client::Chromium | Client::Tungstenite => {
            observe(client, &url, "hold", Duration::from_secs(3)).await
        }
    };
    assert_eq!(seen["opened"], false, "{seen}");
    match client {
        Client::Python => {
            assert_contains(
                client,
                &seen,
                "TimeoutError: timed out during opening handshake",
            );
        }
        Client::Node => assert_contains(client, &seen, "Opening handshake has timed out"),
        Client::OkHttp => assert_contains(client, &seen, "SocketTimeoutException: "),
        Client::Chromium | Client::Tungstenite => {
            assert_eq!(seen["ended_by"], "limit", "{seen}");
            assert_eq!(error_text(&seen), "", "{seen}");
            assert!(seen["close_code"].is_null(), "{seen}");
        }
    }
}

/// Faults that leave an open session silent: only a heartbeat notices.
const DEAD_LINK_ROWS: [(&str, &str); 2] = [
    (
        "device_ap_down_while_it_lasts",
        r#"[{ "when": { "after": "hello" }, "fault": { "device": "ap_down", "for": "60s" } }]"#,
    ),
    (
        "ws_suppress_pong",
        r#"[{ "fault": { "ws": "suppress_pong" } }]"#,
    ),
];

async fn dead_link(client: Client, rules: &'static str) {
    let (_device, url) = device_with_faults(rules).await;
    let limit = Duration::from_secs(4);
    match client {
        // Keepalive shortened to a ping every 0.5 s, 1 s for its pong (default 20 s + 20 s):
        // 1011 sent, no close frame back, 1006 reported.
        Client::Python => {
            let seen = observe(client, &url, "keepalive", limit).await;
            assert_eq!(seen["opened"], true, "{seen}");
            assert_contains(
                client,
                &seen,
                "ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout",
            );
            assert_eq!(seen["close_code"], 1006, "{seen}");
        }
        // pingInterval 1 s (default 0 = off).
        Client::OkHttp => {
            let seen = observe(client, &url, "keepalive", limit).await;
            assert_eq!(seen["opened"], true, "{seen}");
            assert_contains(
                client,
                &seen,
                "SocketTimeoutException: sent ping but didn't receive pong within 1000ms",
            );
            assert!(seen["close_code"].is_null(), "{seen}");
        }
        // No keepalive: no error, no close; only the app's own ping goes unanswered.
        Client::Node | Client::Tungstenite => {
            let seen = observe(client, &url, "wsping", Duration::from_secs(3)).await;
            assert_eq!(seen["opened"], true, "{seen}");
            assert_eq!(seen["pong"], false, "{seen}");
            assert_eq!(seen["ended_by"], "limit", "{seen}");
            assert_eq!(error_text(&seen), "", "{seen}");
        }
        // Browsers send no pings: an idle page never notices.
        Client::Chromium => {
            let seen = observe(client, &url, "hold", Duration::from_secs(3)).await;
            assert_eq!(seen["opened"], true, "{seen}");
            assert_eq!(seen["ended_by"], "limit", "{seen}");
            assert_eq!(error_text(&seen), "", "{seen}");
            assert!(seen["close_code"].is_null(), "{seen}");
        }
    }
}

// ---- the DNS rows: the phone resolves the device's name through the device's DNS ----------

/// A DNS fault, as the phone's system resolver (glibc, `options timeout:1 attempts:1`) passes
/// it on to each client when the app connects by name.
#[derive(Debug, Clone, Copy)]
struct DnsRow {
    check: &'static str,
    /// The rule's fault, in scenario YAML.
    fault: &'static str,
    /// The `rcode` of the device's `dns_query` event (`None`: no reply sent).
    rcode: Option<&'static str>,
    says: PerClient<&'static [&'static str]>,
}

/// The name the app connects to (any name: the fault answers every query).
const DNS_NAME: &str = "esp32.test";

/// glibc's `EAI_AGAIN`: a SERVFAIL, or no reply within the resolver's timeout.
const TEMPORARY_FAILURE: PerClient<&[&str]> = PerClient {
    python: &["gaierror: [Errno -3] Temporary failure in name resolution"],
    node: &["getaddrinfo EAI_AGAIN esp32.test (EAI_AGAIN)"],
    okhttp: &["UnknownHostException: esp32.test: Temporary failure in name resolution"],
    chromium: &["net::ERR_NAME_NOT_RESOLVED"],
    tungstenite: &[
        "IO error: failed to lookup address information: Temporary failure in name resolution",
    ],
};

const DNS_ROWS: [DnsRow; 3] = [
    DnsRow {
        check: "dns_nxdomain",
        fault: "{ dns: nxdomain }",
        rcode: Some("NXDomain"),
        // glibc's `EAI_NONAME`.
        says: PerClient {
            python: &["gaierror: [Errno -2] Name or service not known"],
            node: &["getaddrinfo ENOTFOUND esp32.test (ENOTFOUND)"],
            okhttp: &["UnknownHostException: esp32.test: Name or service not known"],
            chromium: &["net::ERR_NAME_NOT_RESOLVED"],
            tungstenite: &[
                "IO error: failed to lookup address information: Name or service not known",
            ],
        },
    },
    DnsRow {
        check: "dns_servfail",
        fault: "{ dns: servfail }",
        rcode: Some("ServFail"),
        says: TEMPORARY_FAILURE,
    },
    DnsRow {
        check: "dns_no_reply",
        fault: "{ dns: no_reply }",
        rcode: None,
        says: TEMPORARY_FAILURE,
    },
];

/// The check `row::client`: it needs network namespaces (root) as well as the client.
fn dns_check(row: DnsRow, client: Client) -> ClientCheck {
    let (requirement, missing) = match SoftApNamespaces::why_not_here() {
        Some(reason) => ("network namespaces", Some(reason)),
        None => (client.name(), client.missing()),
    };
    let check = ClientCheck::new(row.check, client.name(), missing, move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(dns_fails(client, row));
        runtime.shutdown_timeout(Duration::from_secs(5));
    });
    check.needing(requirement)
}

/// The device (`espsim run` at 192.168.4.1, DNS on port 53) with the row's DNS fault, the
/// client in the phone's namespace connecting to `ws://esp32.test/ws`: it reports the
/// resolver's failure, and the device's log shows the query it answered (or dropped).
async fn dns_fails(client: Client, row: DnsRow) {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("dns.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: {}\nduration: 60s\nfaults:\n  - {{ fault: {} }}\n",
            row.check, row.fault
        ),
    )
    .expect("write the scenario");
    // One second per try, one try (glibc's default is 5 s × 2 attempts), as an app's platform
    // may set it; the checks wait for no timeout of their own.
    let ns = SoftApNamespaces::create("timeout:1 attempts:1");
    // Declared after `ns`, so it is killed before the namespaces are removed.
    let mut cmd = ns.ap_command(espsim_bin());
    cmd.args(["run", "--http", "192.168.4.1:80", "--dns", "192.168.4.1:53"])
        .args(["--device-ip", DEVICE_IP, "--no-control", "--seed", "1"])
        .arg("--scenario")
        .arg(&scenario)
        // Every event as a JSON line on stderr, which `Espsim` reads.
        .args(["--events", "/dev/stderr"]);
    let espsim = Espsim::start(cmd, Duration::from_secs(20));
    let url = format!("ws://{DNS_NAME}/ws");
    let limit = Duration::from_secs(8);
    let program = client_program(client, &url, "hold", limit);
    let seen = run_client(client, ns.client_command(&program), limit).await;
    assert_eq!(seen["opened"], false, "{seen}");
    for text in row.says.of(client) {
        assert_contains(client, &seen, text);
    }
    if client == Client::Node {
        assert_eq!(seen["close_code"], 1006, "{seen}");
    }
    if client == Client::Chromium {
        assert_browser_handshake_failure(&seen, "WebSocket connection to");
    }
    // The query reached the device and got the fault's answer (or none).
    let rcode = json!(row.rcode);
    let query = espsim.wait_for_stderr_line(
        |line| {
            serde_json::from_str::<Value>(line).is_ok_and(|event| {
                event["event"] == "dns_query"
                    && event["name"] == DNS_NAME
                    && event["client"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("192.168.4.2:"))
                    && event["rcode"] == rcode
            })
        },
        Duration::from_secs(5),
    );
    assert!(
        query.is_some(),
        "{}: no dns_query event for {DNS_NAME} with rcode {rcode}; device log:\n{}",
        client.name(),
        espsim.stderr()
    );
}
