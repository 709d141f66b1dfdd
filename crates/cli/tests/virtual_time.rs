//! `espsim test --virtual-time` as a user runs it: the scenario library on one paused clock,
//! twice with one seed — the verdicts, the reports and the event log must come out the same
//! (apart from the port numbers the kernel picks), and the catches check must hold as on the
//! wall clock. Real binary, real loopback sockets.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{arg as s, espsim_output, output_text as text, write};

/// The scenario library's files (`scenarios/*.yaml`), sorted.
fn library() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the scenario library")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 14, "the library has {} files", files.len());
    files
}

/// `text` with every `127.0.0.1:PORT` made `127.0.0.1:PORT`: ports are the kernel's pick.
fn without_ports(text: &str) -> String {
    regex::Regex::new(r"127\.0\.0\.1:\d+")
        .expect("regex")
        .replace_all(text, "127.0.0.1:PORT")
        .into_owned()
}

/// What one plain virtual-time run of the library wrote.
struct Written {
    stdout: Vec<u8>,
    json: Vec<u8>,
    junit: Vec<u8>,
    events: String,
}

/// Runs the whole library on virtual time with seed 11 into `dir`.
async fn run_library(dir: &Path) -> Written {
    let (json, junit, events) = (
        dir.join("r.json"),
        dir.join("r.xml"),
        dir.join("events.jsonl"),
    );
    let files = library();
    let mut args = vec![
        "test",
        "--virtual-time",
        "--seed",
        "11",
        "--json",
        s(&json),
        "--junit",
        s(&junit),
        "--events",
        s(&events),
    ];
    args.extend(files.iter().map(|p| s(p)));
    let out = espsim_output(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = format!("{n} scenario(s): {n} passed, 0 failed", n = files.len());
    assert!(stdout.contains(&summary), "{stdout}");
    Written {
        stdout: out.stdout,
        json: std::fs::read(&json).expect("json report"),
        junit: std::fs::read(&junit).expect("junit report"),
        events: std::fs::read_to_string(&events).expect("event log"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_on_virtual_time_passes_with_identical_reports_twice() {
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let first = run_library(a.path()).await;
    let second = run_library(b.path()).await;
    assert!(
        first.stdout == second.stdout,
        "the printed reports differ:\n{}\n---\n{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&second.stdout)
    );
    assert!(first.json == second.json, "the JSON reports differ");
    assert!(first.junit == second.junit, "the JUnit reports differ");
    let (ea, eb) = (without_ports(&first.events), without_ports(&second.events));
    assert!(
        ea.lines().count() > 100,
        "the event log has {} lines",
        ea.lines().count()
    );
    if let Some((la, lb)) = ea.lines().zip(eb.lines()).find(|(la, lb)| la != lb) {
        panic!("the event logs differ, first at:\n{la}\n{lb}");
    }
    assert_eq!(
        ea.lines().count(),
        eb.lines().count(),
        "event counts differ"
    );

    // The report says the run was virtual, and virtual time really passed: each run lasted
    // at least its scenario's `duration`.
    let report: Value = serde_json::from_slice(&first.json).expect("json");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), library().len());
    for run in runs {
        assert_eq!(run["virtual_time"], true, "{run}");
        assert_eq!(run["started_at"], "1970-01-01T00:00:00Z", "{run}");
        let elapsed = run["elapsed_ms"].as_u64().expect("elapsed_ms");
        assert!(elapsed >= 5_000, "{} lasted {elapsed} ms", run["scenario"]);
    }
    let junit = String::from_utf8_lossy(&first.junit);
    assert!(
        junit.contains("timestamp=\"1970-01-01T00:00:00\""),
        "{junit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catches_check_holds_on_virtual_time_and_repeats_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = library();
    let mut junits = Vec::new();
    for round in ["a", "b"] {
        let junit = dir.path().join(format!("{round}.xml"));
        let mut args = vec![
            "test",
            "--check-catches",
            "--virtual-time",
            "--seed",
            "7",
            "--junit",
            s(&junit),
        ];
        args.extend(files.iter().map(|p| s(p)));
        let out = espsim_output(&args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(stdout.contains(", 0 wrong"), "{stdout}");
        // The naive client's immediate retries against a refusing port are caught (on
        // virtual time they are 1 ms apart, see the docs).
        assert!(
            stdout.contains("── long-refusal-backoff (builtin:naive, seed 7,")
                && stdout.contains("✓ check: caught: only `backoff` failed"),
            "{stdout}"
        );
        junits.push(std::fs::read(&junit).expect("junit"));
    }
    assert!(junits[0] == junits[1], "the catches reports differ");
}

#[tokio::test]
async fn virtual_time_refuses_an_apps_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(dir.path(), "x.yaml", "name: x\nexpect: []\nduration: 1s\n");
    let out = espsim_output(&[
        "test",
        s(&scenario),
        "--virtual-time",
        "--",
        "sh",
        "-c",
        "exit 0",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn virtual_time_refuses_a_scenario_with_a_phone() {
    let phone = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/phone/phone-online-device.yaml");
    let out = espsim_output(&["test", "--virtual-time", s(&phone)]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot run on virtual time: its phone's network namespaces are driven by `ip` processes on the wall clock"),
        "{stderr}"
    );
}
