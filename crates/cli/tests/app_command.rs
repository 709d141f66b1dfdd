//! `espsim test -- COMMAND` as an app sees it: the run clock that waits for the app (first
//! connection, ready file, `ESPSIM_READY` line), the startup timeout, the command's lifecycle
//! (judged when it exits; `--stop-at-end`), `--jobs` and the `--` hint. Real binary, real
//! processes, loopback only; the apps under test may sleep (that is their behaviour), the tests
//! never do.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::{arg as s, espsim_output, output_text as text, write};

/// `espsim test SCENARIO --json J [extra…] -- sh -c SCRIPT`: the output and the JSON report's
/// one run.
async fn run_sh(scenario: &Path, extra: &[&str], script: &str) -> (Output, Value) {
    let json = scenario.with_extension("json");
    let mut args = vec!["test", s(scenario), "--json", s(&json)];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let out = espsim_output(&args).await;
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("no report: {e}\n{}", text(&out))),
    )
    .expect("json report");
    assert_eq!(report["schema_version"], 2, "{report}");
    let run = report["runs"][0].clone();
    (out, run)
}

/// Every event of the run, from `--events`.
fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("events written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn at_ms(e: &Value) -> u64 {
    e["at_ms"].as_u64().expect("at_ms")
}

#[tokio::test]
async fn the_clock_starts_at_the_first_connection_of_an_app_that_takes_its_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "slow-start.yaml",
        "name: slow-start\nseed: 1\nexpect: []\nduration: 3s\n",
    );
    let log = dir.path().join("events.jsonl");
    // The app needs 2 s before it connects (a build, a simulator boot); then it runs the
    // reference client for the scenario's duration, which it reads from its environment.
    let (out, run) = run_sh(
        &scenario,
        &["--events", s(&log)],
        r#"sleep 2; exec "$ESPSIM_BIN" client "$ESPSIM_WS_URL" --duration "$ESPSIM_DURATION""#,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(run["clock_reason"], "first_connection", "{run}");
    assert_eq!(run["start_on"], "first_activity", "{run}");
    let all = events(&log);
    let accepted = all
        .iter()
        .find(|e| e["event"] == "tcp_accepted")
        .expect("the app connected");
    let clock = all
        .iter()
        .find(|e| e["event"] == "clock_started")
        .expect("the clock started");
    assert!(at_ms(accepted) >= 2000, "{accepted}");
    // Started by the connection, not before it.
    assert!(clock["seq"].as_u64() > accepted["seq"].as_u64(), "{clock}");
    assert_eq!(run["clock_started_ms"], clock["at_ms"], "{run}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("run clock: started at 2."),
        "{}",
        text(&out)
    );
    assert_eq!(run["command"]["status"], "exited", "{run}");
    assert_eq!(run["command"]["passed"], true, "{run}");
}

/// Fault windows (the emulator) and deadlines (the judges) both count from `clock_started`.
#[tokio::test]
async fn windows_and_deadlines_count_from_the_clock_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "reboot.yaml",
        "name: reboot\nseed: 1\nfaults:\n  - { name: boot, when: { at: 2s }, fault: { device: reboot, down: 500ms } }\nexpect:\n  - connected: { within: 1s }\nduration: 4s\n",
    );
    let log = dir.path().join("events.jsonl");
    let (out, _) = run_sh(
        &scenario,
        &["--events", s(&log)],
        r#"sleep 2; exec "$ESPSIM_BIN" client "$ESPSIM_WS_URL" --duration "$ESPSIM_DURATION""#,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = events(&log);
    let clock = all
        .iter()
        .find(|e| e["event"] == "clock_started")
        .expect("the clock started");
    let fired = all
        .iter()
        .find(|e| e["event"] == "fault_applied")
        .expect("the reboot happened");
    let after = at_ms(fired) - at_ms(clock);
    assert!(
        (2000..2500).contains(&after),
        "reboot {after} ms after the clock start"
    );
}

#[tokio::test]
async fn the_app_starts_the_clock_with_its_ready_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "signal.yaml",
        "name: signal\nexpect: []\nstart: { on: signal, timeout: 20s }\nduration: 1s\n",
    );
    let (out, run) = run_sh(
        &scenario,
        &["--stop-at-end"],
        r#"sleep 0.5; touch "$ESPSIM_READY_FILE"; trap 'exit 0' TERM; while :; do sleep 0.1; done"#,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(run["clock_reason"], "signal: file", "{run}");
    assert!(run["clock_started_ms"].as_u64() >= Some(500), "{run}");
    assert_eq!(run["command"]["stopped_at_end"], true, "{run}");
    assert_eq!(run["command"]["code"], 0, "{run}");
}

#[tokio::test]
async fn the_app_starts_the_clock_with_a_ready_line_and_its_stdout_is_forwarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "line.yaml",
        "name: line\nexpect: []\nstart: { on: signal, timeout: 20s }\nduration: 1s\n",
    );
    let (out, run) = run_sh(
        &scenario,
        &[],
        "echo booting; sleep 0.3; echo ESPSIM_READY; echo 'ESPSIM_READY not'; echo done",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(run["clock_reason"], "signal: stdout", "{run}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("booting\nESPSIM_READY\nESPSIM_READY not\ndone\n"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "booting"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn an_app_that_never_becomes_ready_fails_at_the_startup_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "never.yaml",
        "name: never\nexpect: []\nstart: { timeout: 1s }\nduration: 1s\n",
    );
    let junit = dir.path().join("junit.xml");
    let (out, run) = run_sh(&scenario, &["--junit", s(&junit)], "sleep 30").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let why =
        "the app never became ready: no connection, DNS query or connectivity check within 1s";
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("✗ run clock: {why}")),
        "{}",
        text(&out)
    );
    assert_eq!(run["startup_failure"], why, "{run}");
    assert_eq!(run["clock_started_ms"], Value::Null, "{run}");
    assert_eq!(run["command"]["status"], "killed", "{run}");
    assert_eq!(run["command"]["reason"], "startup_timeout", "{run}");
    assert_eq!(run["passed"], false, "{run}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        xml.contains(r#"<testcase name="start" classname="never" time=""#)
            && xml.contains(&format!(r#"<failure message="{why}" type="start">"#)),
        "{xml}"
    );
}

#[tokio::test]
async fn a_command_that_exits_before_the_clock_started_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "early.yaml",
        "name: early\nexpect: []\nstart: { on: first_connection }\nduration: 1s\n",
    );
    let (out, run) = run_sh(&scenario, &[], "exit 0").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        run["startup_failure"],
        "the app never became ready: the command ended before the run clock started (no connection to the device)",
        "{run}"
    );
    assert_eq!(run["command"]["before_clock"], true, "{run}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("✗ command `sh -c exit 0` exited with 0 at")
            && String::from_utf8_lossy(&out.stdout)
                .contains("before the run clock started (the app never became ready)"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_command_that_dies_by_a_signal_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "crash.yaml",
        "name: crash\nexpect: []\nstart: { on: start }\nduration: 1s\n",
    );
    let (out, run) = run_sh(&scenario, &[], "kill -SEGV $$").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(run["command"]["status"], "signalled", "{run}");
    assert_eq!(run["command"]["signal"], 11, "{run}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("✗ command `sh -c kill -SEGV $$` ended by signal 11"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn the_command_gets_the_run_in_its_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "env.yaml",
        "name: env\nexpect: []\nstart: { on: start }\nfaults:\n  - { name: off, when: { at: 1s, for: 500ms }, fault: refuse }\n  - { when: { connections: 1 }, fault: reset_on_accept }\nduration: 2s\n",
    );
    let (out, _) = run_sh(
        &scenario,
        &[],
        r#"[ "$ESPSIM_DURATION" = 2s ] || exit 10
[ "$ESPSIM_DURATION_MS" = 2000 ] || exit 11
[ "$ESPSIM_SCENARIO" = "$EXPECTED_SCENARIO" ] || exit 12
[ -d "$(dirname "$ESPSIM_READY_FILE")" ] && [ ! -e "$ESPSIM_READY_FILE" ] || exit 13
[ "$ESPSIM_TIMELINE" = '[{"rule":1,"name":"off","fault":"refuse","at_ms":1000,"for_ms":500}]' ] || { echo "$ESPSIM_TIMELINE"; exit 14; }"#
            .replace("$EXPECTED_SCENARIO", s(&scenario))
            .as_str(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test]
async fn stop_at_end_passes_an_app_that_exits_0_on_sigterm_and_fails_one_that_ignores_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "until-told.yaml",
        "name: until-told\nexpect: []\nstart: { on: start }\nduration: 1s\n",
    );
    let (out, run) = run_sh(
        &scenario,
        &["--stop-at-end"],
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("after SIGTERM at the end of the run"),
        "{}",
        text(&out)
    );
    assert!(run["command"]["after_ms"].as_u64() >= Some(1000), "{run}");

    let (out, run) = run_sh(
        &scenario,
        &["--stop-at-end"],
        "trap '' TERM; while :; do sleep 0.1; done",
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(run["command"]["reason"], "stop_grace", "{run}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "still running 5s after SIGTERM at the end of the run; it must exit 0 when told"
        ),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn jobs_runs_plain_scenarios_at_once_and_reports_in_file_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = "expect: []\nstart: { on: start }\nduration: 1s\n";
    let a = write(dir.path(), "a.yaml", &format!("name: a\n{body}"));
    let b = write(dir.path(), "b.yaml", &format!("name: b\n{body}"));
    let json = dir.path().join("report.json");
    // Each run marks itself and waits for the other's mark: only runs at the same time pass
    // (one after the other, the first would wait for its 20 s timeout and fail).
    let script = format!(
        r#"touch "$ESPSIM_SCENARIO.here"; for f in {0}/a.yaml {0}/b.yaml; do while [ ! -e "$f.here" ]; do sleep 0.05; done; done"#,
        dir.path().display()
    );
    let out = espsim_output(&[
        "test",
        s(&a),
        s(&b),
        "--jobs",
        "2",
        "--command-timeout",
        "20s",
        "--json",
        s(&json),
        "--",
        "sh",
        "-c",
        &script,
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = stdout.find("── a (").expect("a's report");
    let second = stdout.find("── b (").expect("b's report");
    assert!(first < second, "{stdout}");
    assert!(
        stdout.contains("2 scenario(s): 2 passed, 0 failed"),
        "{stdout}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    assert_eq!(report["runs"][0]["scenario"], "a");
    assert_eq!(report["runs"][1]["scenario"], "b");
    assert_eq!(report["runs"][1]["scenario_file"], s(&b));
}

#[tokio::test]
async fn a_command_without_the_double_dash_gets_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(dir.path(), "x.yaml", "name: x\nexpect: []\nduration: 1s\n");
    let out = espsim_output(&["test", s(&scenario), "flutter", "test", "integration_test"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let want = format!(
        "error: `flutter` is not a scenario file; put your app's command after `--`: espsim test {} -- flutter test integration_test",
        s(&scenario)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&want),
        "{}",
        text(&out)
    );
    let out = espsim_output(&["test", "app.dart"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "`app.dart` is not a scenario file; put your app's command after `--`: espsim test scenario.yaml -- app.dart"
        ),
        "{}",
        text(&out)
    );
}
