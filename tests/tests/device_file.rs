//! A device file for a protocol unlike espsim's (`tests/fixtures/thermo-device.yaml`: `{"cmd":…}`
//! JSON, a plain-text command, a binary frame, two REST routes), served by `espsim run --device`
//! and driven by independent clients: Python `websockets` and Node `ws` play the same scripted
//! conversation (`tests/clients/conversation_*.py|js`) and must see the same bytes; `curl` calls
//! the REST routes. Faults act on the user's protocol too (a handshake cut, messages dropped by
//! their rule's label and by a payload matcher, a half-open connection), and `espsim test`
//! judges such an app with label and payload matchers, a device process's unlabelled messages
//! included.
//!
//! A `harness = false` test run by `espsim_tests::checks`: a missing client makes its checks
//! `ignored`, or failed with `ESPSIM_REQUIRE_CLIENTS=1` (CI).

use std::process::{Command, ExitCode};
use std::time::Duration;

use espsim_tests::checks::{self, ClientCheck};
use espsim_tests::{
    Espsim, espsim_bin, espsim_run_command, node_ws_missing, on_path, python_websockets_missing,
    repo_root, run_with_limit, venv_python,
};
use serde_json::{Value, json};

/// A client's whole run: its own waits are 5 s each, far less than this.
const LIMIT: Duration = Duration::from_secs(60);

const FIXTURE: &str = "tests/fixtures/thermo-device.yaml";

#[derive(Debug, Clone, Copy)]
enum Client {
    Python,
    Node,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Python => "python-websockets",
            Client::Node => "node-ws",
        }
    }

    fn missing(self) -> Option<String> {
        match self {
            Client::Python => python_websockets_missing(),
            Client::Node => node_ws_missing(),
        }
    }

    /// Plays `script` against `url`; the client's JSON line.
    fn converse(self, url: &str, script: &Value) -> Value {
        let clients = repo_root().join("tests/clients");
        let mut cmd = match self {
            Client::Python => {
                let mut c = Command::new(venv_python());
                c.arg(clients.join("conversation_python.py"));
                c
            }
            Client::Node => {
                let mut c = Command::new("node");
                c.arg(clients.join("conversation_node.js"));
                c
            }
        };
        cmd.args([url, &script.to_string()]);
        let done = run_with_limit(&mut cmd, LIMIT).expect("client runs");
        done.json_line()
            .unwrap_or_else(|| panic!("{}: no JSON line; stderr: {}", self.name(), done.stderr))
    }
}

/// `espsim run --device FIXTURE` with `seed`, on ephemeral ports.
fn espsim(seed: u64, extra: &[&str]) -> Espsim {
    let mut cmd = espsim_run_command(seed);
    cmd.arg("--device")
        .arg(repo_root().join(FIXTURE))
        .args(extra);
    Espsim::start(cmd, LIMIT)
}

fn text(conn: u64, t: &str) -> Value {
    json!({"conn": conn, "text": t})
}

fn json_text(conn: u64, v: Value) -> Value {
    json!({"conn": conn, "text": v.to_string()})
}

/// Every rule kind, state across messages and sessions, broadcast to the others, the unmatched
/// policy, a delayed reply, a device close, and a periodic stream counted message by message.
fn conversation(client: Client) {
    let device = espsim(7, &[]);
    let url = device.ws_url();
    assert!(url.ends_with("/socket"), "the file's endpoint: {url}");
    let script = json!([
        {"open": true, "conn": 0}, {"recv": 1, "conn": 0},
        {"open": true, "conn": 1}, {"recv": 1, "conn": 1},
        {"text": r#"{"cmd":"get","key":"setpoint"}"#}, {"recv": 1},
        {"text": r#"{"cmd":"set","led":true}"#}, {"recv": 1}, {"recv": 1, "conn": 1},
        {"text": r#"{"cmd":"get","key":"led"}"#, "conn": 1}, {"recv": 1, "conn": 1},
        {"text": "LED=1"}, {"recv": 1},
        {"hex": "a50142"}, {"recv": 1},
        {"hex": "a50200"}, {"recv": 1},
        {"text": r#"{"cmd":"reboot"}"#}, {"recv": 1},
        {"text": "slow"}, {"recv": 1},
        {"text": "bye", "conn": 1}, {"recv_close": true, "conn": 1},
        {"text": r#"{"cmd":"stream"}"#}, {"recv": 4},
    ]);
    let seen = client.converse(&url, &script);
    assert_eq!(seen["error"], Value::Null, "{seen}");
    let expected = json!([
        json_text(0, json!({"hello": "thermo", "led": false})),
        json_text(1, json!({"hello": "thermo", "led": false})),
        json_text(0, json!({"key": "setpoint", "value": 21})),
        json_text(0, json!({"ok": true})),
        json_text(1, json!({"event": "led", "on": true})),
        json_text(1, json!({"key": "led", "value": true})),
        text(0, "OK 1"),
        json!({"conn": 0, "hex": "a58142"}),
        // Too short for `frame` (min_len 3 holds, the prefix does not): unmatched.
        json_text(0, json!({"error": "unknown"})),
        json_text(0, json!({"error": "unknown"})),
        text(0, "late"),
        json!({"conn": 1, "close_code": 4000, "close_reason": "bye"}),
        json_text(0, json!({"ok": true})),
        json_text(0, json!({"seq": 0})),
        json_text(0, json!({"seq": 1})),
        json_text(0, json!({"seq": 2})),
    ]);
    assert_eq!(seen["received"], expected, "{}", client.name());
}

/// Two endpoints on one device: each greets with its own message and subprotocol, a rule
/// limited to `/log` answers there and not on `/socket`, a broadcast reaches both, and state is
/// shared between them.
fn endpoints(client: Client) {
    let device = espsim(7, &[]);
    let script = json!([
        {"open": true, "conn": 0}, {"recv": 1, "conn": 0},
        {"open": "/log", "subprotocols": ["log.v1"], "conn": 1}, {"recv": 1, "conn": 1},
        {"text": "level=debug", "conn": 1}, {"recv": 1, "conn": 1},
        {"text": "level=debug", "conn": 0}, {"recv": 1, "conn": 0},
        {"text": r#"{"cmd":"set","led":true}"#, "conn": 0}, {"recv": 1, "conn": 0},
        {"recv": 1, "conn": 1},
        {"open": "/log", "conn": 2}, {"recv": 1, "conn": 2},
    ]);
    let seen = client.converse(&device.ws_url(), &script);
    assert_eq!(seen["error"], Value::Null, "{seen}");
    let expected = json!([
        json_text(0, json!({"hello": "thermo", "led": false})),
        {"conn": 1, "subprotocol": "log.v1"},
        text(1, "log led=false"),
        text(1, "level debug"),
        json_text(0, json!({"error": "unknown"})),
        json_text(0, json!({"ok": true})),
        // `to: others` means every other session, on any endpoint.
        json_text(1, json!({"event": "led", "on": true})),
        // State is the device's: a new /log session sees the LED that /socket set.
        text(2, "log led=true"),
    ]);
    assert_eq!(seen["received"], expected, "{}", client.name());
}

/// `random()` is seeded by the run's seed: the same seed gives the same bytes, another seed
/// (almost surely) others.
fn same_seed_same_bytes(client: Client) {
    let temps = |seed: u64| -> Vec<Value> {
        let device = espsim(seed, &[]);
        let script = json!([
            {"open": true}, {"recv": 1},
            {"text": r#"{"cmd":"temp"}"#}, {"recv": 1},
            {"text": r#"{"cmd":"temperature"}"#}, {"recv": 1},
            {"text": r#"{"cmd":"temp"}"#}, {"recv": 1},
        ]);
        let seen = client.converse(&device.ws_url(), &script);
        assert_eq!(seen["error"], Value::Null, "{seen}");
        let received = seen["received"].as_array().expect("a list");
        received[1..]
            .iter()
            .map(|m| serde_json::from_str(m["text"].as_str().expect("text")).expect("JSON"))
            .collect()
    };
    let first = temps(7);
    for (n, reply) in first.iter().enumerate() {
        let temp = reply["temp"].as_i64().expect("an integer temp");
        assert!((150..=300).contains(&temp), "{reply}");
        assert_eq!(reply["n"], n + 1, "the rule's count: {reply}");
    }
    assert_eq!(temps(7), first, "same seed, same bytes");
    assert_ne!(temps(8), first, "another seed, other values");
}

/// The REST routes answer in ESP-IDF's response format; what they set is what the WebSocket
/// side reads; anything else keeps the emulated device's behaviour (here: captive redirect).
fn curl_routes() {
    let device = espsim(7, &["--internet", "captive"]);
    let base = format!("http://{}", device.http());
    let curl = |args: &[&str]| -> String {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-i", "--max-time", "5"]).args(args);
        let done = run_with_limit(&mut cmd, LIMIT).expect("curl runs");
        assert!(done.status.success(), "curl {args:?}: {}", done.stderr);
        done.stdout
    };
    assert_eq!(
        curl(&[&format!("{base}/api/status")]),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n\
         {\"led\":false,\"setpoint\":21}"
    );
    let post = |body: &str| {
        curl(&[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &format!("{base}/api/setpoint"),
        ])
    };
    assert_eq!(
        post(r#"{"value":23.5}"#),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n\
         {\"ok\":true,\"setpoint\":23.5}"
    );
    // The body matcher does not hold: no route answers, the captive portal's redirect does.
    let refused = post(r#"{"val":1}"#);
    assert!(
        refused.starts_with("HTTP/1.1 302 Temporary Redirect\r\n"),
        "{refused}"
    );
    assert!(refused.contains("\r\nLocation: /\r\n"), "{refused}");
    assert!(
        curl(&[&format!("{base}/api/status")]).ends_with(r#"{"led":false,"setpoint":23.5}"#),
        "the POST changed the state"
    );
}

/// Faults act on a device file's sessions: the handshake cut mid-response (the app gets no
/// session), a reply dropped by its rule's label, an app message dropped by a payload matcher
/// (a text regex), while the next reply arrives; and a `half_open` connection (the third),
/// on which the app's opening handshake goes unanswered until its own timeout.
fn faults(client: Client) {
    let dir = scenario_dir(client, "faults");
    let scenario = dir.join("faults.yaml");
    std::fs::write(
        &scenario,
        "name: thermo-faults\nduration: 30s\ndevice: { file: thermo.yaml }\nfaults:\n  \
         - { when: { connections: 1 }, fault: { handshake: close, at: mid_response, bytes: 20 } }\n  \
         - { when: { message_type: get }, fault: { ws: drop, direction: out } }\n  \
         - { when: { message_type: { text: { regex: \"^LED=[01]$\" } } }, \
             fault: { ws: drop, direction: in } }\n  \
         - { when: { connections: 3 }, fault: { stream: half_open } }\n",
    )
    .expect("write scenario");
    let mut cmd = espsim_run_command(7);
    cmd.arg("--scenario").arg(&scenario);
    let device = Espsim::start(cmd, LIMIT);
    let cut = client.converse(&device.ws_url(), &json!([{"open": true}]));
    assert_ne!(
        cut["error"],
        Value::Null,
        "the first handshake is cut: {cut}"
    );
    let script = json!([
        {"open": true}, {"recv": 1},
        {"text": r#"{"cmd":"get","key":"led"}"#},
        {"text": "LED=0"},
        {"text": r#"{"cmd":"what"}"#}, {"recv": 1},
    ]);
    let seen = client.converse(&device.ws_url(), &script);
    assert_eq!(seen["error"], Value::Null, "{seen}");
    assert_eq!(
        seen["received"][1],
        json_text(0, json!({"error": "unknown"})),
        "the `get` reply and the `LED=0` message were dropped: {seen}"
    );
    let silent = client.converse(&device.ws_url(), &json!([{"open": true}]));
    let error = silent["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("timed out") || error.contains("Timeout"),
        "a half-open device never answers the handshake: {silent}"
    );
}

/// `espsim test` judges an app of the user's protocol: `sends` and `sends_in_order` name the
/// device file's rules (the label the device gives each message it receives).
fn expectations(client: Client) {
    let dir = scenario_dir(client, "expect");
    let scenario = dir.join("app.yaml");
    std::fs::write(
        &scenario,
        "name: thermo-app\nduration: 10s\ndevice: { file: thermo.yaml }\nexpect:\n  \
         - sends: { type: set-led, within: 2s }\n  \
         - sends_in_order: [get, set-led, led-text]\n  \
         - sends: { type: bye, within: 2s }\n  \
         - sends: { type: { json: { pointer: /led, equals: true } }, within: 2s }\n  \
         - sends_in_order: [ { json: { pointer: /key, glob: \"l*\" } }, { text: { regex: \"^LED=1$\" } } ]\n  \
         - sends: { type: { text: { exact: bye } } }\n",
    )
    .expect("write scenario");
    let script = json!([
        {"open": true}, {"recv": 1},
        {"text": r#"{"cmd":"get","key":"led"}"#}, {"recv": 1},
        {"text": r#"{"cmd":"set","led":true}"#}, {"recv": 1},
        {"text": "LED=1"}, {"recv": 1},
    ]);
    let done = espsim_test(client, &scenario, &script);
    assert_eq!(
        done.status.code(),
        Some(1),
        "two expectations fail: {}",
        done.stdout
    );
    for line in [
        "✓ sends           `set-led` within 2s of a session opening — `set-led` on conn 1",
        "✓ sends_in_order  get → set-led → led-text — get → set-led → led-text in order on conn 1",
        "✗ sends#2         `bye` within 2s of a session opening — `bye` never sent \
         (sent: get, set-led, led-text)",
        "✓ sends#3         `{\"json\":[{\"pointer\":\"/led\",\"equals\":true}]}` within 2s of a \
         session opening — `{\"json\":[{\"pointer\":\"/led\",\"equals\":true}]}` on conn 1",
        "✓ sends_in_order#2 {\"json\":[{\"pointer\":\"/key\",\"glob\":\"l*\"}]} → \
         {\"text\":{\"regex\":\"^LED=1$\"}} — ",
        "✗ sends#4         `{\"text\":{\"exact\":\"bye\"}}` — `{\"text\":{\"exact\":\"bye\"}}` never \
         sent (sent: get, set-led, led-text)",
    ] {
        assert!(
            squeezed(&done.stdout).contains(&squeezed(line)),
            "`{line}` in\n{}",
            done.stdout
        );
    }
}

/// `espsim test` judges an app talking to a device *process* (the Python example, whose
/// messages have no label): payload matchers find the app's messages all the same.
fn process_expectations(client: Client) {
    let dir = scenario_dir(client, "process");
    let scenario = dir.join("lamp.yaml");
    let device = repo_root().join("examples/device-process/python/device.py");
    std::fs::write(
        &scenario,
        format!(
            "name: lamp-app\nduration: 10s\ndevice: {{ command: [python3, '{}'] }}\nexpect:\n  \
             - sends: {{ type: {{ json: {{ pointer: /on, equals: true }} }}, within: 2s }}\n  \
             - sends_in_order: [ {{ json: {{ pointer: /cmd, equals: status }} }}, \
               {{ json: {{ pointer: /cmd, glob: \"s?t\" }} }} ]\n  \
             - sends: {{ type: {{ json: {{ pointer: /cmd, equals: reboot }} }} }}\n",
            device.display()
        ),
    )
    .expect("write scenario");
    let script = json!([
        {"open": true},
        {"text": r#"{"cmd":"status"}"#}, {"recv": 1},
        {"text": r#"{"cmd":"set","on":true}"#}, {"recv": 1},
    ]);
    let done = espsim_test(client, &scenario, &script);
    assert_eq!(done.status.code(), Some(1), "one fails: {}", done.stdout);
    for line in [
        "✓ sends           `{\"json\":[{\"pointer\":\"/on\",\"equals\":true}]}` within 2s",
        "✓ sends_in_order  {\"json\":[{\"pointer\":\"/cmd\",\"equals\":\"status\"}]} → \
         {\"json\":[{\"pointer\":\"/cmd\",\"glob\":\"s?t\"}]} — ",
        "✗ sends#2         `{\"json\":[{\"pointer\":\"/cmd\",\"equals\":\"reboot\"}]}` — \
         `{\"json\":[{\"pointer\":\"/cmd\",\"equals\":\"reboot\"}]}` never sent \
         (sent: (unlabelled), (unlabelled))",
    ] {
        assert!(
            squeezed(&done.stdout).contains(&squeezed(line)),
            "`{line}` in\n{}",
            done.stdout
        );
    }
}

/// `text` with every run of spaces made one: report columns widen with the longest name.
fn squeezed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').filter(|w| !w.is_empty()).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// `espsim test SCENARIO -- <client> playing script`: the finished run.
fn espsim_test(
    client: Client,
    scenario: &std::path::Path,
    script: &Value,
) -> espsim_tests::Finished {
    let clients = repo_root().join("tests/clients");
    let app = match client {
        Client::Python => format!(
            "exec '{}' '{}' \"$ESPSIM_WS_URL\" \"$0\"",
            venv_python().display(),
            clients.join("conversation_python.py").display()
        ),
        Client::Node => format!(
            "exec node '{}' \"$ESPSIM_WS_URL\" \"$0\"",
            clients.join("conversation_node.js").display()
        ),
    };
    let mut cmd = Command::new(espsim_bin());
    cmd.arg("test")
        .arg(scenario)
        .args(["--", "sh", "-c", &app, &script.to_string()]);
    run_with_limit(&mut cmd, LIMIT).expect("espsim test runs")
}

/// A fresh directory holding a copy of the fixture, for a scenario whose `file:` is relative.
fn scenario_dir(client: Client, what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "espsim-devfile-{}-{what}-{}",
        std::process::id(),
        client.name()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(repo_root().join(FIXTURE), dir.join("thermo.yaml")).expect("copy fixture");
    dir
}

fn main() -> ExitCode {
    let mut all = Vec::new();
    for client in [Client::Python, Client::Node] {
        all.push(ClientCheck::new(
            "device-file-conversation",
            client.name(),
            client.missing(),
            move || conversation(client),
        ));
        all.push(ClientCheck::new(
            "device-file-endpoints",
            client.name(),
            client.missing(),
            move || endpoints(client),
        ));
        all.push(ClientCheck::new(
            "device-file-faults",
            client.name(),
            client.missing(),
            move || faults(client),
        ));
        all.push(ClientCheck::new(
            "device-file-expectations",
            client.name(),
            client.missing(),
            move || expectations(client),
        ));
        all.push(ClientCheck::new(
            "device-process-expectations",
            client.name(),
            client.missing(),
            move || process_expectations(client),
        ));
    }
    all.push(ClientCheck::new(
        "device-file-seed",
        Client::Python.name(),
        Client::Python.missing(),
        || same_seed_same_bytes(Client::Python),
    ));
    let curl_missing = (!on_path("curl")).then(|| "no curl on PATH".to_owned());
    all.push(ClientCheck::new(
        "device-file-http",
        "curl",
        curl_missing,
        curl_routes,
    ));
    checks::run(all)
}
