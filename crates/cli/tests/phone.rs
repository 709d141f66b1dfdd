//! `espsim phone` as a user meets it: from inside the simulated phone, `curl`, `dig` and a Python
//! `websockets` app reach the device or time out exactly as the OS's routing says, for Android ×
//! mobile data × the device's internet mode × bound/unbound and for iOS; a mid-run switch of the device's
//! internet mode (control API, from the softAP namespace) flips the routing; nothing is left
//! behind, also when the command crashes or espsim gets SIGTERM; without root: exit 2.
//!
//! Needs root (network namespaces). Without root the tests skip, except under `CI`, where
//! they fail. Every wait is bounded (curl `--max-time 3`, dig `+time=2`, event waits).

mod phone_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use phone_support::{espsim_as_nobody, have_root, leftovers};
use serde_json::Value;

const ESPSIM: &str = env!("CARGO_BIN_EXE_espsim");
/// Longest a whole case may take (setup + curl timeout + dig timeout + teardown).
const CASE_LIMIT: Duration = Duration::from_secs(40);
/// Longest wait for one event or output line.
const STEP: Duration = Duration::from_secs(15);

/// One `espsim phone` process: its events (stderr JSON lines) and stdout lines as channels.
struct PhoneRun {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    stdout: Receiver<String>,
    seen: Vec<Value>,
}

impl PhoneRun {
    fn start(phone_args: &[&str], command: &[&str]) -> PhoneRun {
        let mut child = Command::new(ESPSIM)
            .arg("phone")
            .args(phone_args)
            .arg("--")
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("espsim starts");
        let (etx, events) = channel();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v.get("event").is_some() => {
                        let _ = etx.send(v);
                    }
                    _ => eprintln!("espsim: {line}"),
                }
            }
        });
        let (otx, stdout) = channel();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = otx.send(line);
            }
        });
        let stdin = child.stdin.take();
        PhoneRun {
            child,
            stdin,
            events,
            stdout,
            seen: Vec::new(),
        }
    }

    /// The next event matching `pred` (all events are kept in `seen`).
    fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} within {STEP:?}: {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("espsim ended before {what}: {:#?}", self.seen)
                }
            }
        }
    }

    /// Sends a line to the command's stdin.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("writes to the command");
        stdin.flush().expect("flushes");
    }

    /// The next stdout line starting with `prefix`.
    fn line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("no `{prefix}` line: {e:?}"),
            }
        }
    }

    /// Waits for exit (bounded), drains the remaining events; returns the status.
    fn finish(&mut self) -> ExitStatus {
        self.stdin.take();
        let deadline = Instant::now() + CASE_LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("waits") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "espsim did not exit within {CASE_LIMIT:?}"
            );
            // Bounded poll of a child's exit; the events below are what the test waits on.
            if let Ok(v) = self.events.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(v);
            }
        };
        while let Ok(v) = self.events.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(v);
        }
        status
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// What the app in the phone sees: curl to the device by IP, dig of a name.
const PROBE_SCRIPT: &str = "curl -s -o /dev/null -w 'http=%{http_code}\\n' --max-time 3 http://192.168.4.1/; echo curl_rc=$?; \
     echo dig=$(dig +time=2 +tries=1 +short esp32.local); echo dig_rc=$?";

/// A WebSocket app on Python `websockets` (the repository's `.venv`): opens
/// `ws://192.168.4.1/ws` with a 3 s opening timeout and prints `ws=open`, `ws=timeout` or
/// `ws=error:<class>`.
const WS_APP: &str = r#"
import asyncio, websockets
async def main():
    try:
        async with websockets.connect("ws://192.168.4.1/ws", open_timeout=3):
            print("ws=open", flush=True)
    except TimeoutError:
        print("ws=timeout", flush=True)
    except Exception as e:
        print("ws=error:" + type(e).__name__, flush=True)
asyncio.run(main())
"#;

/// The repository's Python with `websockets` (scripts/install-test-clients.sh), if installed;
/// with `ESPSIM_REQUIRE_CLIENTS=1` its absence fails the test instead of leaving the WebSocket
/// column unchecked.
fn ws_python() -> Option<String> {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if python.exists() {
        return Some(python.display().to_string());
    }
    let required =
        std::env::var_os("ESPSIM_REQUIRE_CLIENTS").is_some_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "Python websockets is missing (.venv; run scripts/install-test-clients.sh) and ESPSIM_REQUIRE_CLIENTS=1"
    );
    eprintln!("Python websockets not installed: the WebSocket check is left out");
    None
}

/// The probe script, plus the WebSocket app when Python `websockets` is there.
fn probe_script() -> String {
    match ws_python() {
        Some(python) => format!("{PROBE_SCRIPT}; {python} -c '{WS_APP}'"),
        None => PROBE_SCRIPT.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reach {
    /// curl gets an HTTP answer from the device, the WebSocket opens; the name resolves to 192.168.4.1.
    Device,
    /// curl times out (exit 28) over cellular, so does the WebSocket's opening handshake; the
    /// name resolves via the carrier (198.18/15).
    Cellular,
    /// iOS: the softAP subnet stays on Wi-Fi (curl reaches) but names go to the carrier.
    DeviceByIpNamesCellular,
}

fn run_case(os: &str, mobile: &str, internet: &str, bound: bool, expect: Reach) {
    let mut args = vec!["--os", os, "--mobile-data", mobile, "--internet", internet];
    if bound {
        args.push("--bind-wifi");
    }
    let script = probe_script();
    let mut run = PhoneRun::start(&args, &["sh", "-c", &script]);
    let routing = run.wait_event("routing", |v| v["event"] == "routing");
    let status = run.finish();
    let case = format!("{os} mobile={mobile} internet={internet} bound={bound}");
    let lines: HashMap<String, String> = std::iter::from_fn(|| run.stdout.try_recv().ok())
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    assert!(status.success(), "{case}: {status:?} {lines:?}");
    let curl_rc = lines.get("curl_rc").map(String::as_str);
    // `None` when Python websockets is not installed (only outside CI, see `ws_python`).
    let ws = lines.get("ws").map(String::as_str);
    let ws_checked = script.contains("websockets");
    let dig = lines.get("dig").cloned().unwrap_or_default();
    let syn_to_device = run.seen.iter().any(|v| {
        v["event"] == "cellular_connection" && v["proto"] == "tcp" && v["to"] == "192.168.4.1:80"
    });
    let carrier_answer = dig.starts_with("198.18.") || dig.starts_with("198.19.");
    match expect {
        Reach::Device => {
            assert_eq!(curl_rc, Some("0"), "{case}: {lines:?} {routing}");
            assert_ne!(lines.get("http").map(String::as_str), Some("000"), "{case}");
            assert_eq!(dig, "192.168.4.1", "{case}: {routing}");
            if ws_checked {
                assert_eq!(ws, Some("open"), "{case}: {lines:?} {routing}");
            }
            assert!(
                !syn_to_device,
                "{case}: a SYN went over cellular: {:#?}",
                run.seen
            );
        }
        Reach::Cellular => {
            assert_eq!(
                curl_rc,
                Some("28"),
                "{case}: curl must time out: {lines:?} {routing}"
            );
            assert!(carrier_answer, "{case}: {dig} should come from the carrier");
            if ws_checked {
                assert_eq!(ws, Some("timeout"), "{case}: {lines:?} {routing}");
            }
            assert!(
                syn_to_device,
                "{case}: the carrier saw no SYN: {:#?}",
                run.seen
            );
        }
        Reach::DeviceByIpNamesCellular => {
            assert_eq!(curl_rc, Some("0"), "{case}: {lines:?} {routing}");
            assert!(carrier_answer, "{case}: {dig} should come from the carrier");
            if ws_checked {
                assert_eq!(ws, Some("open"), "{case}: {lines:?} {routing}");
            }
            assert!(!syn_to_device, "{case}");
        }
    }
    let left = leftovers(run.pid());
    assert!(left.is_empty(), "{case}: left behind: {left:?}");
}

/// Runs cases side by side (each espsim has its own pid-named namespaces).
fn run_cases(cases: Vec<(&'static str, &'static str, &'static str, bool, Reach)>) {
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(os, md, inet, bound, reach)| {
            std::thread::spawn(move || run_case(os, md, inet, bound, reach))
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().err())
        .map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn android_routes_as_its_connectivity_check_decides() {
    if !have_root() {
        return;
    }
    use Reach::{Cellular, Device};
    run_cases(vec![
        ("android", "on", "online", false, Device),
        ("android", "on", "offline", false, Cellular),
        ("android", "on", "captive", false, Cellular),
        ("android", "on", "online", true, Device),
        ("android", "on", "offline", true, Device),
        ("android", "on", "captive", true, Device),
        ("android", "off", "online", false, Device),
        ("android", "off", "offline", false, Device),
        ("android", "off", "captive", false, Device),
        ("android", "off", "online", true, Device),
        ("android", "off", "offline", true, Device),
        ("android", "off", "captive", true, Device),
    ]);
}

#[test]
fn ios_keeps_the_softap_subnet_on_wifi() {
    if !have_root() {
        return;
    }
    use Reach::{Device, DeviceByIpNamesCellular};
    run_cases(vec![
        ("ios", "on", "online", false, Device),
        ("ios", "on", "captive", false, DeviceByIpNamesCellular),
        ("ios", "on", "offline", false, DeviceByIpNamesCellular),
        ("ios", "on", "captive", true, Device),
        ("ios", "off", "captive", false, Device),
    ]);
}

/// Switches the device's internet mode through its control API, from the softAP namespace.
fn switch_internet(ready: &Value, mode: &str) {
    let ap = ready["ap"].as_str().expect("ap namespace");
    let control = ready["control"].as_str().expect("control address");
    let token = ready["control_token"].as_str().expect("control token");
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ap,
            "curl",
            "-sS",
            "--max-time",
            "3",
            "-X",
            "PUT",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .args(["-d", &format!("{{\"mode\":\"{mode}\"}}")])
        .arg(format!("http://{control}/internet"))
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains(&format!("\"mode\":\"{mode}\"")),
        "switch failed: {body} {out:?}"
    );
}

#[test]
fn switching_the_device_internet_mode_flips_the_routing() {
    if !have_root() {
        return;
    }
    let args = [
        "--os",
        "android",
        "--mobile-data",
        "on",
        "--internet",
        "offline",
    ];
    let mut run = PhoneRun::start(&[&args[..], &["--recheck", "300ms"]].concat(), &["sh"]);
    let ready = run.wait_event("device_ready", |v| v["event"] == "device_ready");
    let first = run.wait_event("routing", |v| v["event"] == "routing");
    assert_eq!(first["default_network"], "cellular", "{first}");
    run.wait_event("command_started", |v| v["event"] == "command_started");
    let curl = "curl -s -o /dev/null --max-time 3 http://192.168.4.1/; echo";

    run.send(&format!("{curl} offline_rc=$?"));
    assert_eq!(run.line("offline_rc="), "offline_rc=28");

    switch_internet(&ready, "online");
    let flipped = run.wait_event("routing to wifi", |v| v["event"] == "routing");
    assert_eq!(flipped["default_network"], "wifi", "{flipped}");
    assert_eq!(flipped["verdict"], "validated", "{flipped}");
    run.send(&format!("{curl} online_rc=$?"));
    assert_eq!(run.line("online_rc="), "online_rc=0");

    switch_internet(&ready, "captive");
    let back = run.wait_event("routing to cellular", |v| v["event"] == "routing");
    assert_eq!(back["default_network"], "cellular", "{back}");
    assert_eq!(back["verdict"], "portal", "{back}");
    run.send(&format!("{curl} captive_rc=$?"));
    assert_eq!(run.line("captive_rc="), "captive_rc=28");

    let status = run.finish();
    assert!(status.success(), "{status:?}");
    assert!(
        run.seen.iter().any(|v| v["event"] == "torn_down"),
        "{:#?}",
        run.seen
    );
    assert_eq!(leftovers(run.pid()), Vec::<String>::new());
}

#[test]
fn exit_code_is_the_commands_and_a_crash_leaves_nothing() {
    if !have_root() {
        return;
    }
    let args = ["--os", "android", "--mobile-data", "on"];
    let mut seven = PhoneRun::start(&args, &["sh", "-c", "exit 7"]);
    assert_eq!(seven.finish().code(), Some(7));
    assert_eq!(leftovers(seven.pid()), Vec::<String>::new());

    let mut crash = PhoneRun::start(&args, &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(crash.finish().code(), Some(128 + 9));
    let exited = crash.seen.iter().find(|v| v["event"] == "command_exited");
    assert_eq!(
        exited.map(|v| v["signal"].clone()),
        Some(Value::from(9)),
        "{:#?}",
        crash.seen
    );
    assert_eq!(leftovers(crash.pid()), Vec::<String>::new());
}

/// `espsim probe` inside the phone: with mobile data on and no internet it stops at TCP and
/// names Android's routing over mobile data; bound to the Wi-Fi it gets through every layer.
#[test]
fn espsim_probe_inside_the_phone_finds_the_routing_bug_and_its_fix() {
    if !have_root() {
        return;
    }
    let probe = [ESPSIM, "probe", "ws://192.168.4.1/ws"];
    let lines = |run: &mut PhoneRun| -> String {
        std::iter::from_fn(|| run.stdout.try_recv().ok())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let unbound = [
        "--os",
        "android",
        "--mobile-data",
        "on",
        "--internet",
        "offline",
    ];
    let mut run = PhoneRun::start(&unbound, &probe);
    assert_eq!(run.finish().code(), Some(1));
    let out = lines(&mut run);
    assert!(out.contains("FAILED at tcp"), "{out}");
    assert!(out.contains("over mobile data"), "{out}");
    assert_eq!(leftovers(run.pid()), Vec::<String>::new());

    let bound = [&unbound[..], &["--bind-wifi"]].concat();
    let mut run = PhoneRun::start(&bound, &probe);
    let status = run.finish();
    let out = lines(&mut run);
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    assert_eq!(leftovers(run.pid()), Vec::<String>::new());
}

#[test]
fn sigterm_to_espsim_stops_the_command_and_tears_down() {
    if !have_root() {
        return;
    }
    let args = ["--os", "ios", "--mobile-data", "on"];
    let mut run = PhoneRun::start(&args, &["sleep", "600"]);
    run.wait_event("command_started", |v| v["event"] == "command_started");
    let pid = run.pid().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = run.finish();
    // sleep got SIGTERM from espsim: its status is espsim's.
    assert_eq!(status.code(), Some(128 + 15), "{:#?}", run.seen);
    assert!(
        run.seen.iter().any(|v| v["event"] == "torn_down"),
        "{:#?}",
        run.seen
    );
    assert_eq!(leftovers(run.pid()), Vec::<String>::new());
}

#[test]
fn without_root_the_error_names_the_capabilities_and_exits_2() {
    if !have_root() {
        return;
    }
    let out = espsim_as_nobody()
        .args(["phone", "--os", "android"])
        .args(["--mobile-data", "on", "--", "true"])
        .output()
        .expect("setpriv runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("CAP_NET_ADMIN") && stderr.contains("CAP_SYS_ADMIN"),
        "{stderr}"
    );
}
