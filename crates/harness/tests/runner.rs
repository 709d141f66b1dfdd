//! The runner end to end on loopback: a fresh emulator per run, the built-in client or an
//! external command, expectations judged over the real event log, reports built from it.

use std::path::Path;
use std::time::{Duration, Instant};

use espsim_client::ClientProfile;
use espsim_harness::Scenario;
use espsim_harness::report;
use espsim_harness::runner::{self, ClientSpec, CommandStatus, KillReason, RunOptions};

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, Path::new("test.yaml")).expect("valid scenario")
}

const BASIC: &str = r#"name: basic
description: Connect, say hello, keep the link alive, leave with 1000.
seed: 3
expect:
  - connected: { within: 2s }
  - sends: { type: hello, within: 1s }
  - heartbeat: { every: 1s, tolerance: 500ms }
  - closes_cleanly: { code: 1000 }
  - max_concurrent_connections: { max: 1 }
catches: { impolite: closes_cleanly, silent: heartbeat }
duration: 3s
"#;

#[tokio::test]
async fn builtin_good_client_passes_and_each_catching_profile_fails_its_expectation() {
    let s = scenario(BASIC);
    let plan = runner::catch_plan(&s);
    assert_eq!(plan.len(), 3);
    let runs = plan.into_iter().map(|p| {
        let s = s.clone();
        async move {
            let r = tokio::time::timeout(Duration::from_secs(20), runner::run(&s, &p.client, None))
                .await
                .expect("run ends")
                .expect("run starts");
            (p, r)
        }
    });
    for (p, r) in futures_util::future::join_all(runs).await {
        let verdict = runner::judge_catch(&r, p.must_fail.as_deref());
        assert!(
            verdict.is_ok(),
            "{}: {verdict:?}\n{}",
            p.client,
            report::text(&r)
        );
        assert_eq!(r.seed, 3);
        assert!(r.events.iter().any(|e| e.kind.name() == "ws_opened"));
        if p.client == ClientSpec::Builtin(ClientProfile::Good) {
            assert!(r.passed());
            let summary = r.client_summary.as_ref().expect("builtin summary");
            assert!(summary.ever_ready());
        }
    }
}

#[tokio::test]
async fn a_command_sees_the_device_in_its_environment() {
    let s = scenario(
        "name: env\ndescription: The command finds the device.\nseed: 9\nexpect: []\nstart: { on: start }\nduration: 10s\n",
    );
    let check = r#"case "$ESPSIM_WS_URL" in ws://127.0.0.1:*/ws) ;; *) exit 10;; esac
case "$ESPSIM_HTTP_URL" in http://127.0.0.1:*) ;; *) exit 11;; esac
case "$ESPSIM_DNS_ADDR" in 127.0.0.1:*) ;; *) exit 12;; esac
[ "$ESPSIM_DEVICE_IP" = 127.0.0.1 ] || exit 13
[ "$ESPSIM_SEED" = 9 ] || exit 14
case "$ESPSIM_CONTROL_URL" in http://127.0.0.1:*) ;; *) exit 15;; esac
[ ${#ESPSIM_CONTROL_TOKEN} = 32 ] || exit 16"#;
    let client = ClientSpec::Command(vec!["sh".into(), "-c".into(), check.into()]);
    let started = Instant::now();
    let r = runner::run(&s, &client, None).await.expect("runs");
    let c = r.command.as_ref().expect("command result");
    assert_eq!(
        c.status,
        CommandStatus::Exited { code: 0 },
        "{}",
        c.describe()
    );
    assert!(r.passed());
    // It exited at once, so the run did not wait for the 10 s duration.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failing_command_fails_the_run_and_a_hanging_one_is_killed_at_its_timeout() {
    let s = scenario(
        "name: cmd\ndescription: Commands.\nexpect: []\nstart: { on: start }\nduration: 1s\n",
    );
    let fail = ClientSpec::Command(vec!["sh".into(), "-c".into(), "exit 3".into()]);
    let r = runner::run(&s, &fail, None).await.expect("runs");
    assert_eq!(
        r.command.as_ref().map(|c| c.status.clone()),
        Some(CommandStatus::Exited { code: 3 })
    );
    assert!(!r.passed());

    // A shell that ignores SIGTERM and a child that holds on: SIGKILL to the group ends both.
    let hang = ClientSpec::Command(vec![
        "sh".into(),
        "-c".into(),
        "trap '' TERM; sleep 60 & wait".into(),
    ]);
    let options = RunOptions {
        command_timeout: Some(Duration::from_secs(1)),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        runner::run_with(&s, &hang, &options, None),
    )
    .await
    .expect("a hanging command does not hang the run")
    .expect("runs");
    let c = r.command.as_ref().expect("command result");
    assert_eq!(
        c.status,
        CommandStatus::Killed {
            reason: KillReason::CommandTimeout,
            limit_ms: 1000
        }
    );
    assert!(
        c.after_ms >= 1000,
        "killed at the cap, not before: {}",
        c.after_ms
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!r.passed(), "a killed command fails the run");
    assert!(
        c.describe()
            .contains("still running at the command timeout (1s)")
    );
}

#[tokio::test]
async fn a_missing_command_is_a_start_error() {
    let s = scenario("name: cmd\ndescription: Commands.\nexpect: []\nduration: 1s\n");
    let missing = ClientSpec::Command(vec!["/nonexistent/espsim-app".into()]);
    let err = runner::run(&s, &missing, None)
        .await
        .expect_err("cannot spawn");
    assert!(
        err.to_string()
            .contains("cannot start `/nonexistent/espsim-app`"),
        "{err}"
    );
}

#[tokio::test]
async fn junit_parses_back_with_one_suite_per_run_and_one_case_per_expectation() {
    let s = scenario(BASIC);
    let good = runner::run(&s, &ClientSpec::Builtin(ClientProfile::Good), None)
        .await
        .expect("runs");
    let failing = ClientSpec::Command(vec!["sh".into(), "-c".into(), "exit 3".into()]);
    let other = scenario(
        &BASIC
            .replace("name: basic", "name: with-command")
            .replace("duration: 3s", "start: { on: start }\nduration: 3s"),
    );
    let cmd = runner::run(&other, &failing, None).await.expect("runs");
    let second_result = cmd.clone();
    let xml = report::junit(&[good, cmd]).expect("junit");
    // quick-junit's reader wants a zone on `timestamp`, which Ant's schema forbids.
    let parsed =
        quick_junit::Report::deserialize_from_str(&without_timestamps(&xml)).expect("JUnit XML");
    assert_eq!(parsed.test_suites.len(), 2, "{xml}");
    let first = &parsed.test_suites[0];
    assert_eq!(first.name.as_str(), "basic");
    let names: Vec<&str> = first.test_cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "connected",
            "sends",
            "heartbeat",
            "closes_cleanly",
            "max_concurrent_connections"
        ]
    );
    assert_eq!(first.failures, 0, "{xml}");
    assert!(
        first
            .properties
            .iter()
            .any(|p| p.name.as_str() == "seed" && p.value.as_str() == "3")
    );
    let second = &parsed.test_suites[1];
    assert_eq!(second.name.as_str(), "with-command");
    // The command exited at once: it failed, and the session-based expectations failed too.
    let command = second
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "command")
        .expect("command testcase");
    match &command.status {
        quick_junit::TestCaseStatus::NonSuccess { message, .. } => {
            assert_eq!(
                message
                    .as_ref()
                    .map(|m| m.as_str().starts_with("exited with 3")),
                Some(true)
            );
        }
        other => panic!("command should fail: {other:?}"),
    }
    assert!(second.failures >= 1);
    let cases: usize = parsed.test_suites.iter().map(|s| s.test_cases.len()).sum();
    assert_eq!(cases, 11, "{xml}");
    assert!(
        !xml.contains("<testsuites "),
        "no attributes on <testsuites>: {xml}"
    );
    assert_valid_junit(&xml);

    // The catches report follows the same schema.
    let check = report::CatchCheck {
        verdict: runner::judge_catch(&second_result, None),
        result: second_result,
        must_fail: None,
    };
    assert_valid_junit(&report::junit_catches(&[check]).expect("catches junit"));
}

/// `xml` without its `timestamp="…"` attributes.
fn without_timestamps(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find(" timestamp=\"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " timestamp=\"".len()..];
        rest = after.find('"').map_or("", |j| &after[j + 1..]);
    }
    out.push_str(rest);
    out
}

/// Validates `xml` with `xmllint` against both JUnit schemas CI servers use: Jenkins'
/// `junit-10.xsd` (the common one) and Ant's strict `JUnit.xsd` (tests/schema/). Without
/// xmllint the check is skipped with a message, or fails under `ESPSIM_REQUIRE_CLIENTS=1`.
fn assert_valid_junit(xml: &str) {
    let required =
        std::env::var_os("ESPSIM_REQUIRE_CLIENTS").is_some_and(|v| !v.is_empty() && v != "0");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).expect("write junit");
    for name in ["junit-10.xsd", "JUnit.xsd"] {
        let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/schema")
            .join(name);
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(&file)
            .output();
        match out {
            Ok(out) => assert!(
                out.status.success(),
                "the JUnit report does not follow {name}:\n{}\n{xml}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    !required,
                    "xmllint is not installed (apt-get install libxml2-utils; ESPSIM_REQUIRE_CLIENTS=1: a check that cannot run is a failure)"
                );
                eprintln!(
                    "skipped: JUnit schema check (xmllint not installed: apt-get install libxml2-utils)"
                );
                return;
            }
            Err(e) => panic!("cannot run xmllint: {e}"),
        }
    }
}

#[test]
fn every_library_scenario_loads_is_short_and_names_what_it_catches() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut count = 0;
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir(&dir).expect("scenarios/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        count += 1;
        assert!(
            s.duration <= Duration::from_secs(35),
            "{}: too long for CI",
            path.display()
        );
        assert!(!s.expect.is_empty(), "{}: no expectations", path.display());
        assert!(!s.catches.is_empty(), "{}: catches nothing", path.display());
        assert!(
            s.seed.is_some(),
            "{}: no seed, runs would not replay",
            path.display()
        );
        total += s.duration * (1 + s.catches.len() as u32);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        assert_eq!(s.name, stem, "the file is named after the scenario");
    }
    assert!(count >= 12, "the library has {count} scenarios");
    // Sequential run time of the whole replay; `--check-catches --jobs 6` divides it.
    assert!(
        total <= Duration::from_secs(7 * 60),
        "replay would take {total:?} sequentially"
    );
}
