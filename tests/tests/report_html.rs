//! `espsim test --html` and the progress display, black-box: the binary runs library scenarios
//! with a passing and two failing built-in clients; headless Chromium (`tests/clients/
//! report_chromium.js`) opens each report from file:// and reads it through the DOM, which must
//! agree with the run's own event log (`--events`) and JSON report (`--json`), load nothing from
//! anywhere, and be readable with JavaScript off. Screenshots of both reports are kept in
//! `target/report-screenshots/` (CI artifacts; `passing.png` and `failing.png` are the ones in `docs/images/`).
//!
//! A missing Chromium (or node / playwright-core) is a skip, said on stderr, and a failure under
//! `ESPSIM_REQUIRE_CLIENTS=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use espsim_tests::{espsim_bin, on_path, repo_root, run_with_limit, skip};
use serde_json::Value;

/// Four cut handshakes: the good client backs off, the naive one does not.
const HANDSHAKE: &str = "crates/harness/tests/fixtures/handshake-cut-four-times.yaml";
/// The device reboots: the impolite client reconnects but leaves without a close frame.
const REBOOT: &str = "scenarios/refused-while-rebooting.yaml";
/// A short scenario whose fault fires with the good client, for the progress display.
const SHORT: &str = "scenarios/lru-purge.yaml";
/// Longest a 10-s scenario run (or a Chromium session) may take here.
const LIMIT: Duration = Duration::from_secs(90);
/// The report of a 20-s scenario should stay under this; a 10-s one certainly must.
const MAX_REPORT_BYTES: u64 = 300_000;

/// Why Chromium cannot run here, if it cannot.
fn chromium_missing() -> Option<&'static str> {
    let modules = repo_root().join("tests/clients/node_modules/playwright-core");
    (!on_path("node") || !modules.is_dir() || !Path::new("/usr/bin/chromium").is_file()).then_some(
        "no node, /usr/bin/chromium or playwright-core (run scripts/install-test-clients.sh)",
    )
}

/// Where screenshots go: `target/report-screenshots/` (or under `CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let dir = target.join("report-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/report-screenshots");
    dir
}

/// Counts the events named `name` in a `--events` file.
fn count_events(events: &[Value], name: &str) -> usize {
    events.iter().filter(|e| e["event"] == name).count()
}

#[test]
fn html_reports_open_in_chromium_and_agree_with_the_event_log() {
    let test = "report_html::html_reports_open_in_chromium_and_agree_with_the_event_log";
    if let Some(reason) = chromium_missing() {
        skip(test, reason);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let shots = screenshot_dir();
    for (scenario, client, must_fail, shot) in [
        (HANDSHAKE, "builtin:good", None, "passing.png"),
        (
            HANDSHAKE,
            "builtin:naive",
            Some("backoff"),
            "failing-backoff.png",
        ),
        (
            REBOOT,
            "builtin:impolite",
            Some("closes_cleanly"),
            "failing.png",
        ),
    ] {
        let passes = must_fail.is_none();
        let html = dir.path().join(format!("{shot}.html"));
        let events = dir.path().join(format!("{shot}.jsonl"));
        let json = dir.path().join(format!("{shot}.json"));
        let mut cmd = Command::new(espsim_bin());
        cmd.current_dir(repo_root())
            .args(["test", scenario, "--client", client, "--html"])
            .arg(&html)
            .arg("--events")
            .arg(&events)
            .arg("--json")
            .arg(&json);
        let run = run_with_limit(&mut cmd, LIMIT).expect("espsim test runs");
        assert_eq!(
            run.status.code(),
            Some(if passes { 0 } else { 1 }),
            "{client}: {}\n{}",
            run.stdout,
            run.stderr
        );
        let size = std::fs::metadata(&html).expect("report written").len();
        assert!(size < MAX_REPORT_BYTES, "{client}: report is {size} bytes");
        let log: Vec<Value> = std::fs::read_to_string(&events)
            .expect("events written")
            .lines()
            .map(|l| serde_json::from_str(l).expect("event line"))
            .collect();
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
                .expect("json report");
        let outcomes = report["runs"][0]["expectations"]
            .as_array()
            .expect("expectations")
            .clone();

        let mut browser = Command::new("node");
        browser
            .arg(repo_root().join("tests/clients/report_chromium.js"))
            .arg(&html)
            .arg(shots.join(shot));
        let seen = run_with_limit(&mut browser, LIMIT).expect("chromium runs");
        let seen = seen.json_line().unwrap_or_else(|| {
            panic!(
                "no JSON line from chromium: {} {}",
                seen.stdout, seen.stderr
            )
        });
        assert!(seen.get("launch_error").is_none(), "{seen}");

        assert_eq!(seen["requests"], Value::Array(Vec::new()), "no request");
        let conns = count_events(&log, "tcp_accepted");
        let faults = count_events(&log, "fault_applied");
        assert!(
            conns >= 2 && faults >= 1,
            "{conns} connections, {faults} faults"
        );
        assert_eq!(seen["conn_rows"], conns, "one row per connection");
        assert_eq!(
            seen["fault_markers"], faults,
            "one marker per fault_applied"
        );
        let verdict = if passes { "PASS" } else { "FAIL" };
        assert_eq!(seen["verdict"], verdict);
        assert_eq!(seen["no_js"]["verdict"], verdict, "readable without JS");
        assert_eq!(seen["no_js"]["conn_rows"], conns);
        let clocks = count_events(&log, "clock_started").min(1);
        assert_eq!(clocks, 1, "the run clock started");
        assert_eq!(seen["clock_lines"], clocks, "the clock's zero is drawn");
        assert_eq!(seen["no_js"]["clock_lines"], clocks, "without JS too");
        let refused = count_events(&log, "tcp_refused");
        assert_eq!(
            seen["refused_marks"], refused,
            "one tick per refused attempt (these runs stay under the aggregation bound)"
        );

        let shown = seen["expectations"].as_array().expect("expectations shown");
        assert_eq!(shown.len(), outcomes.len());
        let mut failed = Vec::new();
        for (o, s) in outcomes.iter().zip(shown) {
            assert_eq!(s["name"], o["name"]);
            let is_failed = o["passed"] == false;
            assert_eq!(s["failed"], is_failed, "{} shown failed: {s}", o["name"]);
            if is_failed {
                failed.push(o["name"].clone());
                let text = s["text"].as_str().unwrap_or_default();
                assert!(text.contains("FAIL"), "{text}");
                let message = o["message"].as_str().expect("message");
                assert!(text.contains(message), "message {message:?} in {text:?}");
                for e in o["evidence"].as_array().into_iter().flatten() {
                    let note = e["note"].as_str().expect("note");
                    assert!(text.contains(note), "evidence {note:?} in {text:?}");
                }
            }
        }
        match must_fail {
            None => assert!(failed.is_empty()),
            Some(name) => {
                assert_eq!(failed, [Value::from(name)]);
                assert!(
                    seen["highlighted"].as_u64().unwrap_or(0) >= 1,
                    "clicking the failed expectation highlights its events: {seen}"
                );
            }
        }
        assert_eq!(seen["no_js"]["failed_expectations"], Value::Array(failed));
    }
}

/// `espsim test` on `SHORT` through `script` (a pseudo-terminal); everything it showed.
fn under_script(ci: Option<&str>) -> String {
    let line = format!("{} test {SHORT}", espsim_bin().display());
    let mut cmd = Command::new("script");
    cmd.current_dir(repo_root())
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("RUST_LOG", "off")
        .env_remove("CI");
    if let Some(ci) = ci {
        cmd.env("CI", ci);
    }
    let run = run_with_limit(&mut cmd, LIMIT).expect("script runs");
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    run.stdout + &run.stderr
}

#[test]
fn progress_on_a_terminal_is_a_live_line() {
    if !on_path("script") {
        skip(
            "report_html::progress_on_a_terminal_is_a_live_line",
            "no `script` (util-linux) to give espsim a terminal",
        );
        return;
    }
    let shown = under_script(None);
    assert!(
        shown.contains("[1/1] lru-purge (builtin:good)"),
        "{shown:?}"
    );
    assert!(shown.contains("/ 7s"), "elapsed / declared: {shown:?}");
    assert!(shown.contains("faults fired: "), "{shown:?}");
    assert!(
        shown.contains('\x1b'),
        "a live line redraws itself: {shown:?}"
    );
    assert!(shown.contains("PASS (3/3 expectations held)"), "{shown:?}");
}

#[test]
fn progress_without_a_terminal_or_in_ci_is_plain_lines() {
    let mut cmd = Command::new(espsim_bin());
    cmd.current_dir(repo_root())
        .args(["test", SHORT])
        .env("RUST_LOG", "off")
        .env_remove("CI");
    let run = run_with_limit(&mut cmd, LIMIT).expect("espsim test runs");
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains('\x1b'), "no control codes: {text:?}");
    }
    assert!(
        run.stderr
            .contains("[1/1] lru-purge (builtin:good): running, 7s declared"),
        "{:?}",
        run.stderr
    );
    assert!(
        run.stderr.contains("fault rule 1 fired"),
        "{:?}",
        run.stderr
    );
    assert!(run.stderr.contains(": PASS in "), "{:?}", run.stderr);

    if on_path("script") {
        let shown = under_script(Some("true"));
        assert!(
            !shown.contains('\x1b'),
            "CI set: no control codes: {shown:?}"
        );
        assert!(shown.contains("running, 7s declared"), "{shown:?}");
    } else {
        skip(
            "report_html::progress_without_a_terminal_or_in_ci_is_plain_lines",
            "no `script` to check CI=true on a terminal",
        );
    }
}

#[test]
fn html_dir_writes_one_report_per_scenario_named_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("reports");
    let mut cmd = Command::new(espsim_bin());
    cmd.current_dir(repo_root())
        .args(["test", "scenarios/dns-failure.yaml", SHORT, "--html-dir"])
        .arg(&out)
        .env("RUST_LOG", "off");
    let run = run_with_limit(&mut cmd, LIMIT).expect("espsim test runs");
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("the directory was created")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["dns-failure.html", "lru-purge.html"]);
    for (name, file, seed) in [
        ("dns-failure", "scenarios/dns-failure.yaml", 111),
        ("lru-purge", SHORT, 113),
    ] {
        let page = std::fs::read_to_string(out.join(format!("{name}.html"))).expect("report");
        assert!(
            page.contains(&format!("PASS {name} (builtin:good)")),
            "{name}"
        );
        let rerun = format!("espsim test {file} --client builtin:good --seed {seed}");
        assert!(page.contains(&rerun), "{name}: re-run command {rerun:?}");
    }
}

#[test]
fn html_file_takes_one_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(espsim_bin());
    cmd.current_dir(repo_root())
        .args(["test", "scenarios/dns-failure.yaml", SHORT, "--html"])
        .arg(dir.path().join("r.html"));
    let run = run_with_limit(&mut cmd, LIMIT).expect("espsim test runs");
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "--html FILE writes the report of one run; for 2 scenarios use --html-dir DIR"
        ),
        "{}",
        run.stderr
    );
}
