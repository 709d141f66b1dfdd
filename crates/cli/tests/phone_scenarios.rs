//! The phone scenarios (`scenarios/phone/*.yaml`) as a user runs them: `espsim test FILE --
//! APP` with the app running on the simulated phone. The app is `phone_apps/ws_app.py` (Python
//! stdlib): it opens the WebSocket at `$ESPSIM_WS_URL` with a 5 s connect timeout and tells the
//! user the outcome; `--bind-wifi` binds its socket to `wlan0` first, `--silent` tells nothing.
//! The seed bug: the unbound app fails `connected` but passes `tells_user`; the bound app
//! passes everything; a silent app fails `tells_user`. The built-in client runs on the phone
//! too. After every run nothing of the phone is left.
//!
//! Needs root (network namespaces) and `python3`. Without root the tests skip, except under
//! `CI`, where they fail. Every run is bounded (the app's timeout, the scenario's, [`RUN_LIMIT`]).

mod phone_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

use phone_support::{espsim_as_nobody, have_root, leftovers};
use serde_json::Value;

const ESPSIM: &str = env!("CARGO_BIN_EXE_espsim");
/// Longest one `espsim test` run may take (setup + the app's 5 s timeout + teardown).
const RUN_LIMIT: Duration = Duration::from_secs(40);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scenario(name: &str) -> PathBuf {
    repo().join("scenarios/phone").join(format!("{name}.yaml"))
}

fn app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/phone_apps/ws_app.py")
}

/// One finished `espsim test` run: its exit code, output, JSON report and event log.
struct Run {
    output: Output,
    run: Value,
    events: Vec<Value>,
}

impl Run {
    /// The expectation `name`'s (passed, message).
    fn expectation(&self, name: &str) -> (bool, String) {
        let e = self.run["expectations"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .unwrap_or_else(|| panic!("no expectation {name}: {:#}", self.run));
        (
            e["passed"].as_bool().expect("passed is a bool"),
            e["message"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// The events named `name`.
    fn events(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// Runs `espsim test SCENARIO ARGS…` and checks that nothing of the phone is left.
fn espsim_test(scenario_name: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let (json, events) = (dir.path().join("r.json"), dir.path().join("e.jsonl"));
    let child = Command::new(ESPSIM)
        .arg("test")
        .arg(scenario(scenario_name))
        .arg("--json")
        .arg(&json)
        .arg("--events")
        .arg(&events)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("espsim starts");
    let pid = child.id();
    let (tx, done) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match done.recv_timeout(RUN_LIMIT) {
        Ok(output) => output.expect("espsim's output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("espsim test {scenario_name} still running after {RUN_LIMIT:?}");
        }
    };
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "after {scenario_name}"
    );
    let report: Value = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| {
            panic!(
                "no JSON report; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let events = std::fs::read_to_string(&events)
        .expect("event file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    Run {
        output,
        run: report["runs"][0].clone(),
        events,
    }
}

/// Runs the scenario with the Python app and `app_args`.
fn with_app(scenario_name: &str, app_args: &[&str]) -> Run {
    let app = app();
    let mut args = vec!["--", "python3", app.to_str().expect("utf-8 path")];
    args.extend_from_slice(app_args);
    espsim_test(scenario_name, &args)
}

#[test]
fn the_unbound_app_times_out_over_cellular_and_must_tell_the_user() {
    if !have_root() {
        return;
    }
    let run = with_app("phone-unbound-times-out", &[]);
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let (connected, why) = run.expectation("connected");
    assert!(!connected, "{why}");
    assert!(why.starts_with("never connected"), "{why}");
    let (told, message) = run.expectation("tells_user");
    assert!(told, "{message}");
    assert!(
        message.contains("\"Cannot reach the device: check that Wi-Fi is connected"),
        "{message}"
    );
    // Why: the OS saw the captive redirect, made cellular the default, and the app's SYN to
    // 192.168.4.1 went there.
    let verdict = run.events("phone_verdict");
    assert_eq!(verdict[0]["verdict"], "sign_in", "{verdict:?}");
    assert_eq!(verdict[0]["status"], 302, "{verdict:?}");
    let routing = run.events("phone_routing");
    assert_eq!(routing[0]["default_network"], "cellular", "{routing:?}");
    assert_eq!(routing[0]["app_network"], "cellular", "{routing:?}");
    let lost = run.events("cellular_connection");
    assert!(
        lost.iter()
            .any(|e| e["proto"] == "tcp" && e["to"] == "192.168.4.1:80"),
        "{lost:?}"
    );
    assert!(run.events("ws_opened").is_empty());
    let output = run.events("app_output");
    assert_eq!(output.len(), 1, "{output:?}");
    assert_eq!(output[0]["stream"], "stderr");
}

#[test]
fn the_app_bound_to_wifi_connects_and_passes_everything() {
    if !have_root() {
        return;
    }
    let run = with_app("phone-unbound-times-out", &["--bind-wifi"]);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.run["passed"], true, "{:#}", run.run);
    let (_, message) = run.expectation("tells_user");
    assert!(
        message.ends_with("\"Connected to the device\""),
        "{message}"
    );
    // The device saw the app arrive over the Wi-Fi, from the phone's address.
    let opened = run.events("tcp_accepted");
    assert!(
        opened.iter().all(|e| e["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("192.168.4.2:"))),
        "{opened:?}"
    );
    assert!(run.events("cellular_connection").is_empty());
}

#[test]
fn a_silent_app_fails_tells_user() {
    if !have_root() {
        return;
    }
    let run = with_app("phone-unbound-times-out", &["--silent"]);
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let (told, message) = run.expectation("tells_user");
    assert!(!told, "{message}");
    assert!(message.starts_with("the app printed nothing"), "{message}");
}

#[test]
fn the_unbound_app_connects_when_bound_by_the_os_without_mobile_data_or_on_an_online_device() {
    if !have_root() {
        return;
    }
    for (name, verdict, default_network) in [
        ("phone-bound-connects", "sign_in", "cellular"),
        ("phone-mobile-data-off", "no_internet", "wifi"),
        ("phone-online-device", "online", "wifi"),
    ] {
        let run = with_app(name, &[]);
        assert_eq!(
            run.output.status.code(),
            Some(0),
            "{name}: {}",
            run.stderr()
        );
        assert_eq!(run.run["passed"], true, "{name}: {:#}", run.run);
        assert_eq!(run.events("phone_verdict")[0]["verdict"], verdict, "{name}");
        assert_eq!(
            run.events("phone_routing")[0]["default_network"],
            default_network,
            "{name}"
        );
        // The app's own traffic: bound by the OS, or the Wi-Fi is the default anyway.
        let routing = run.events("phone_routing");
        let app_network = if name == "phone-bound-connects" {
            "wifi"
        } else {
            default_network
        };
        assert_eq!(routing[0]["app_network"], app_network, "{name}");
    }
}

#[test]
fn the_builtin_client_runs_on_the_phone() {
    if !have_root() {
        return;
    }
    // 192.168.4.1 exists only inside the phone's namespaces: connecting proves where it ran.
    let run = espsim_test("phone-mobile-data-off", &["--client", "builtin"]);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.run["passed"], true, "{:#}", run.run);
    assert_eq!(run.run["client"], "builtin:good");
}

#[test]
fn without_root_a_phone_scenario_fails_with_exit_2_naming_the_capabilities() {
    if !have_root() {
        return;
    }
    let out = espsim_as_nobody()
        .arg("test")
        .arg(scenario("phone-online-device"))
        .args(["--", "true"])
        .output()
        .expect("setpriv runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the phone") && stderr.contains("CAP_NET_ADMIN, CAP_SYS_ADMIN"),
        "{stderr}"
    );
}
