//! `espsim test` as a user runs it: the real binary, real scenario files, exit codes, the printed
//! summary and the report files.

mod support;

use std::process::Output;

use support::{espsim_output, write};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The clock starts with the emulator: the command need not touch the device.
const COMMAND_ONLY: &str = "name: app\ndescription: Only the app command is judged.\nseed: 5\nexpect: []\nstart: { on: start }\nduration: 2s\n";

const BASIC: &str = r#"name: basic
description: Connect, ping, leave with 1000.
seed: 4
expect:
  - connected: { within: 2s }
  - heartbeat: { every: 1s, tolerance: 500ms }
  - closes_cleanly: { code: 1000 }
catches: { impolite: closes_cleanly, silent: heartbeat }
duration: 3s
"#;

#[tokio::test]
async fn a_passing_command_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = write(dir.path(), "app.yaml", COMMAND_ONLY);
    let junit = dir.path().join("junit.xml");
    let out = espsim_output(&[
        "test",
        s.to_str().expect("utf-8"),
        "--junit",
        junit.to_str().expect("utf-8"),
        "--",
        "sh",
        "-c",
        "echo app output; exit 0",
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("── app (command `sh -c echo app output; exit 0`, seed 5,"),
        "{text}"
    );
    assert!(
        text.contains("✓ command `sh -c echo app output; exit 0` exited with 0"),
        "{text}"
    );
    assert!(text.contains("1 scenario(s): 1 passed, 0 failed"), "{text}");
    // The command's own output goes to stderr, keeping stdout the report.
    assert!(stderr(&out).contains("app output"), "{}", stderr(&out));
    assert!(!text.lines().any(|l| l == "app output"), "{text}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains(r#"<testsuite name="app" tests="1" skipped="0" errors="0" failures="0""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase name="command" classname="app" time=""#),
        "{xml}"
    );
}

#[tokio::test]
async fn a_failing_command_exits_1_and_is_a_failed_testcase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = write(dir.path(), "app.yaml", COMMAND_ONLY);
    let junit = dir.path().join("junit.xml");
    let json = dir.path().join("report.json");
    let out = espsim_output(&[
        "test",
        s.to_str().expect("utf-8"),
        "--junit",
        junit.to_str().expect("utf-8"),
        "--json",
        json.to_str().expect("utf-8"),
        "--",
        "sh",
        "-c",
        "exit 3",
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("✗ command `sh -c exit 3` exited with 3 at"),
        "{text}"
    );
    assert!(text.contains("FAIL"), "{text}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains(r#"failures="1""#), "{xml}");
    assert!(
        xml.contains(r#"<failure message="exited with 3 at"#),
        "{xml}"
    );
    assert!(xml.contains(r#"type="command""#), "{xml}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(report["passed"], false);
    assert_eq!(report["runs"][0]["command"]["status"], "exited");
    assert_eq!(report["runs"][0]["command"]["code"], 3);
    assert_eq!(report["runs"][0]["seed"], 5);
}

#[tokio::test]
async fn a_command_killed_at_its_timeout_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = write(dir.path(), "app.yaml", COMMAND_ONLY);
    let junit = dir.path().join("junit.xml");
    let out = espsim_output(&[
        "test",
        s.to_str().expect("utf-8"),
        "--command-timeout",
        "1s",
        "--junit",
        junit.to_str().expect("utf-8"),
        "--",
        "sleep",
        "30",
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("✗ command `sleep 30` killed at 1.")
            && text.contains("still running at the command timeout (1s); it must exit by itself"),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains(r#"failures="1""#), "{xml}");
}

#[tokio::test]
async fn builtin_client_passes_a_simple_scenario_and_writes_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = write(dir.path(), "basic.yaml", BASIC);
    let events = dir.path().join("events.jsonl");
    let out = espsim_output(&[
        "test",
        s.to_str().expect("utf-8"),
        "--client",
        "builtin",
        "--events",
        events.to_str().expect("utf-8"),
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("── basic (builtin:good, seed 4,"), "{text}");
    assert!(text.contains("✓ connected"), "{text}");
    assert!(
        text.contains("✓ closes_cleanly  close code 1000 — client closed conn 1 with 1000"),
        "{text}"
    );
    assert!(text.contains("faults fired: none"), "{text}");
    let lines = std::fs::read_to_string(&events).expect("events written");
    let parsed: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(parsed[0]["event"], "started");
    assert!(
        parsed
            .iter()
            .all(|e| e["scenario"] == "basic" && e["client"] == "builtin:good")
    );
    assert!(
        parsed
            .iter()
            .any(|e| e["event"] == "ws_closed" && e["code"] == 1000 && e["by"] == "client")
    );
}

#[tokio::test]
async fn an_impolite_client_fails_closes_cleanly_with_evidence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = write(dir.path(), "basic.yaml", BASIC);
    let out = espsim_output(&[
        "test",
        s.to_str().expect("utf-8"),
        "--client",
        "builtin:impolite",
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("✗ closes_cleanly"), "{text}");
    assert!(
        text.contains("expected the client to close with 1000"),
        "{text}"
    );
    assert!(text.contains("✓ heartbeat"), "{text}");
}

#[tokio::test]
async fn check_catches_proves_each_profile_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = write(dir.path(), "basic.yaml", BASIC);
    let junit = dir.path().join("catches.xml");
    let out = espsim_output(&[
        "test",
        "--check-catches",
        s.to_str().expect("utf-8"),
        "--junit",
        junit.to_str().expect("utf-8"),
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("✓ check: caught: only `heartbeat` failed"),
        "{text}"
    );
    assert!(
        text.contains("✓ check: caught: only `closes_cleanly` failed"),
        "{text}"
    );
    assert!(
        text.contains("catches: 3 checks on 1 scenarios, 3 as required, 0 wrong"),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains(r#"<testcase name="builtin:silent catches heartbeat" classname="basic""#),
        "{xml}"
    );
    assert!(xml.contains(r#"failures="0""#), "{xml}");

    // A scenario whose catch does not hold fails the check.
    let wrong = write(
        dir.path(),
        "wrong.yaml",
        &BASIC
            .replace("silent: heartbeat", "silent: connected")
            .replace("name: basic", "name: wrong"),
    );
    let out = espsim_output(&["test", "--check-catches", wrong.to_str().expect("utf-8")]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("✗ check: expected exactly `connected` to fail, but failed: heartbeat"),
        "{text}"
    );
    // The wrong check is repeated after the summary line, where a truncated log still shows it.
    let (_, tail) = text
        .split_once("catches: 3 checks on 1 scenarios, 2 as required, 1 wrong\n")
        .expect("summary line");
    assert!(tail.starts_with("── wrong (builtin:silent"), "{tail}");
    assert!(
        tail.contains("✗ check: expected exactly `connected` to fail, but failed: heartbeat"),
        "{tail}"
    );
}

#[tokio::test]
async fn usage_and_configuration_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "bad.yaml",
        &BASIC.replace("within: 2s", "witin: 2s"),
    );
    let out = espsim_output(&["test", bad.to_str().expect("utf-8")]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.yaml:5:18: unknown field `witin`"),
        "{}",
        stderr(&out)
    );

    let s = write(dir.path(), "basic.yaml", BASIC);
    let path = s.to_str().expect("utf-8");
    let out = espsim_output(&["test", path, "--client", "builtin:sloppy"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown client profile `sloppy`"),
        "{}",
        stderr(&out)
    );

    let out = espsim_output(&["test", path, "--client", "builtin", "--", "true"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("exclude each other"),
        "{}",
        stderr(&out)
    );

    let out = espsim_output(&["test", path, "--", "/nonexistent/app"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot start `/nonexistent/app`"),
        "{}",
        stderr(&out)
    );
}
