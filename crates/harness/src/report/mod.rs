//! Reports of scenario runs: a readable summary, JUnit XML (one testsuite per run, one testcase
//! per expectation, the command as one more testcase), a JSON report, the event log as JSON
//! lines and a self-contained HTML timeline per run ([`html`]). All of them read
//! [`RunResult`]s; none runs anything.

pub mod html;
mod layout;

use std::io::{self, Write};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::expect::secs;
use crate::runner::RunResult;

/// Most evidence lines shown under a failed expectation in the text summary.
const EVIDENCE_SHOWN: usize = 6;

/// One run as the reports label it: the scenario and, when several clients ran it, the client.
fn suite_name(r: &RunResult, label_client: bool) -> String {
    if label_client {
        format!("{} [{}]", r.scenario, r.client)
    } else {
        r.scenario.clone()
    }
}

/// True when the same scenario appears more than once (e.g. `--check-catches`).
fn repeated(results: &[RunResult]) -> bool {
    results
        .iter()
        .enumerate()
        .any(|(i, r)| results[..i].iter().any(|o| o.scenario == r.scenario))
}

/// The readable summary of one run: every expectation ✓/✗ with its evidence, the faults that
/// fired, the command's fate and the seed.
pub fn text(r: &RunResult) -> String {
    let mut out = String::new();
    let total = r.expectations.len();
    let ok = r.expectations.iter().filter(|o| o.passed).count();
    out += &format!(
        "── {} ({}, seed {}, {})\n",
        r.scenario,
        r.client,
        r.seed,
        secs(r.elapsed_ms)
    );
    if !r.description.trim().is_empty() {
        out += &format!("   {}\n", r.description.trim());
    }
    out += &clock_line(r);
    let width = r
        .expectations
        .iter()
        .map(|o| o.name.chars().count())
        .max()
        .unwrap_or(0);
    for o in &r.expectations {
        out += &format!(
            "   {} {:<width$}  {} — {}\n",
            if o.passed { "✓" } else { "✗" },
            o.name,
            o.parameters,
            o.message
        );
        if !o.passed {
            for e in o.evidence.iter().take(EVIDENCE_SHOWN) {
                let at = e.at_ms.map(secs).unwrap_or_default();
                let conn = e.conn.map(|c| format!(" conn {c}")).unwrap_or_default();
                out += &format!("       {at:>8}{conn}: {}\n", e.note);
            }
        }
    }
    if r.faults_fired.is_empty() {
        out += "   faults fired: none\n";
    } else {
        out += "   faults fired:\n";
        for f in &r.faults_fired {
            let name = f
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            out += &format!(
                "     rule {}{name} {} ×{}, first at {}: {}\n",
                f.rule,
                f.fault,
                f.count,
                secs(f.first_ms),
                f.detail
            );
        }
    }
    if let Some(c) = &r.command {
        out += &format!(
            "   {} command `{}` {}\n",
            if c.passed() { "✓" } else { "✗" },
            c.command,
            c.describe()
        );
    }
    out += &format!(
        "   {} ({ok}/{total} expectations held)\n",
        if r.passed() { "PASS" } else { "FAIL" }
    );
    out
}

/// `   run clock: started at 2.013s (first_connection)`, or `   ✗ run clock: <why>` when the
/// app never became ready.
fn clock_line(r: &RunResult) -> String {
    match (&r.startup_failure, &r.clock) {
        (Some(why), _) => format!("   ✗ run clock: {why}\n"),
        (None, Some(c)) => format!(
            "   run clock: started at {} ({})\n",
            secs(c.at_ms),
            c.reason
        ),
        (None, None) => String::new(),
    }
}

/// The JUnit `hostname`: `$HOSTNAME`, else `localhost`.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The attributes and elements Ant's JUnit schema requires of a `<testsuite>` inside
/// `<testsuites>` (`package`, `id`, `hostname`, `timestamp` without zone, `<system-out>`,
/// `<system-err>`), which quick-junit leaves optional.
fn complete_suite(suite: &mut TestSuite, id: usize, started_at: &str, system_out: String) {
    let package = suite.name.clone();
    suite.extra.insert("package".into(), package);
    suite.extra.insert("id".into(), id.to_string().into());
    suite.extra.insert("hostname".into(), hostname().into());
    let stamp = started_at.trim_end_matches('Z');
    suite.extra.insert("timestamp".into(), stamp.into());
    suite.set_system_out(system_out);
    suite.set_system_err("");
}

/// Serializes `report` without the attributes of `<testsuites>`, which Ant's JUnit schema (the
/// one CI servers validate against) does not allow (quick-junit always writes counts,
/// `skipped` among them).
fn to_xml(report: &Report) -> Result<String, ReportError> {
    let xml = report.to_string().map_err(ReportError::Junit)?;
    let Some(open) = xml.find("<testsuites") else {
        return Ok(xml);
    };
    let Some(close) = xml[open..].find('>').map(|i| open + i) else {
        return Ok(xml);
    };
    let bare = if xml[..close].ends_with('/') {
        "<testsuites/"
    } else {
        "<testsuites"
    };
    Ok(format!("{}{bare}{}", &xml[..open], &xml[close..]))
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// JUnit serialization failed.
    #[error("cannot write the JUnit report")]
    Junit(#[source] quick_junit::SerializeError),
    /// JSON serialization failed.
    #[error("cannot write the JSON report")]
    Json(#[source] serde_json::Error),
    /// Writing failed.
    #[error("cannot write the report")]
    Io(#[source] io::Error),
    /// The HTML template failed to render.
    #[error("cannot render the HTML report")]
    Html(#[source] askama::Error),
}

/// The JUnit XML report: testsuite per run (named after the scenario, plus the client when a
/// scenario ran more than once), testcase per expectation, plus `command` when one ran.
pub fn junit(results: &[RunResult]) -> Result<String, ReportError> {
    let label = repeated(results);
    let mut report = Report::new("espsim");
    for (id, r) in results.iter().enumerate() {
        let name = suite_name(r, label);
        let mut suite = TestSuite::new(name.clone());
        suite.set_time(Duration::from_millis(r.elapsed_ms));
        suite.add_property(Property::new("seed", r.seed.to_string()));
        suite.add_property(Property::new("client", r.client.clone()));
        suite.add_property(Property::new("description", r.description.trim()));
        suite.add_property(Property::new(
            "scenario_file",
            r.scenario_file.display().to_string(),
        ));
        suite.add_property(Property::new("start_on", r.start_on.as_str()));
        if let Some(c) = &r.clock {
            suite.add_property(Property::new(
                "clock_started",
                format!("{} ({})", secs(c.at_ms), c.reason),
            ));
        }
        if let Some(why) = &r.startup_failure {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(why.clone());
            s.set_type("start");
            s.set_description(why.clone());
            let mut case = TestCase::new("start", s);
            case.set_classname(name.clone());
            case.set_time(Duration::from_millis(r.elapsed_ms));
            suite.add_test_case(case);
        }
        for f in &r.faults_fired {
            let key = match &f.name {
                Some(n) => format!("fault.{}.{n}", f.rule),
                None => format!("fault.{}", f.rule),
            };
            suite.add_property(Property::new(
                key,
                format!("{} ×{}, first at {}", f.fault, f.count, secs(f.first_ms)),
            ));
        }
        for o in &r.expectations {
            let status = if o.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(o.message.clone());
                s.set_type("expectation");
                let evidence: Vec<String> = o
                    .evidence
                    .iter()
                    .map(|e| {
                        let at = e.at_ms.map(secs).unwrap_or_default();
                        let conn = e.conn.map(|c| format!(" conn {c}")).unwrap_or_default();
                        format!("{at}{conn}: {}", e.note)
                    })
                    .collect();
                s.set_description(format!("{}\n{}", o.parameters, evidence.join("\n")));
                s
            };
            let mut case = TestCase::new(o.name.clone(), status);
            case.set_classname(name.clone());
            // Judged at the end, over the log: no time of its own.
            case.set_time(Duration::ZERO);
            suite.add_test_case(case);
        }
        if let Some(c) = &r.command {
            let status = if c.passed() {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(c.describe());
                s.set_type("command");
                s.set_description(format!("`{}` {}", c.command, c.describe()));
                s
            };
            let mut case = TestCase::new("command", status);
            case.set_classname(name.clone());
            case.set_time(Duration::from_millis(c.after_ms));
            suite.add_test_case(case);
        }
        complete_suite(&mut suite, id, &r.started_at, text(r));
        report.add_test_suite(suite);
    }
    to_xml(&report)
}

/// The JSON report's format version; bumped when a field changes meaning or goes away.
pub const JSON_SCHEMA_VERSION: u32 = 2;

/// The JSON report's top level.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    passed: bool,
    runs: Vec<JsonRun<'a>>,
}

/// One run in the JSON report: the run and its verdict.
#[derive(Debug, Serialize)]
struct JsonRun<'a> {
    passed: bool,
    #[serde(flatten)]
    run: &'a RunResult,
}

/// The JSON report: `{"schema_version": 2, "passed": bool, "runs": [...]}`, each run with its
/// verdict, scenario file, run clock (`start_on`, `clock_started_ms`, `clock_reason`,
/// `startup_failure`), expectations with evidence, faults fired, command and seed.
pub fn json(results: &[RunResult]) -> Result<String, ReportError> {
    serde_json::to_string_pretty(&JsonReport {
        schema_version: JSON_SCHEMA_VERSION,
        passed: results.iter().all(RunResult::passed),
        runs: results
            .iter()
            .map(|run| JsonRun {
                passed: run.passed(),
                run,
            })
            .collect(),
    })
    .map_err(ReportError::Json)
}

/// Every run's events as JSON lines, each with the run's `scenario` and `client` added.
pub fn events_jsonl(results: &[RunResult], out: &mut impl Write) -> Result<(), ReportError> {
    for r in results {
        for e in &r.events {
            let mut value = serde_json::to_value(e).map_err(ReportError::Json)?;
            if let Some(map) = value.as_object_mut() {
                map.insert("scenario".into(), r.scenario.clone().into());
                map.insert("client".into(), r.client.clone().into());
            }
            serde_json::to_writer(&mut *out, &value).map_err(ReportError::Json)?;
            out.write_all(b"\n").map_err(ReportError::Io)?;
        }
    }
    out.flush().map_err(ReportError::Io)
}

/// One checked run of `--check-catches`.
#[derive(Debug, Clone)]
pub struct CatchCheck {
    /// The run.
    pub result: RunResult,
    /// The expectation that had to fail (`None`: the good client, all must hold).
    pub must_fail: Option<String>,
    /// The verdict line: `Ok` when the run did what it had to.
    pub verdict: Result<String, String>,
}

/// JUnit for `--check-catches`: testsuite per scenario, testcase per check (`good`,
/// `naive catches backoff`), failed when the check's verdict is wrong.
pub fn junit_catches(checks: &[CatchCheck]) -> Result<String, ReportError> {
    let mut report = Report::new("espsim-catches");
    let mut suites: Vec<(TestSuite, String, Duration, String)> = Vec::new();
    for c in checks {
        let r = &c.result;
        let idx = match suites.iter().position(|s| s.0.name.as_str() == r.scenario) {
            Some(i) => i,
            None => {
                let mut s = TestSuite::new(r.scenario.clone());
                s.add_property(Property::new("seed", r.seed.to_string()));
                suites.push((s, r.started_at.clone(), Duration::ZERO, String::new()));
                suites.len() - 1
            }
        };
        let name = match &c.must_fail {
            None => r.client.clone(),
            Some(e) => format!("{} catches {e}", r.client),
        };
        let status = match &c.verdict {
            Ok(_) => TestCaseStatus::success(),
            Err(why) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(why.clone());
                s.set_type("catches");
                s.set_description(text(r));
                s
            }
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(r.scenario.clone());
        let time = Duration::from_millis(r.elapsed_ms);
        case.set_time(time);
        let (suite, _, total, out) = &mut suites[idx];
        suite.add_test_case(case);
        *total += time;
        out.push_str(&text(r));
        out.push_str(&match &c.verdict {
            Ok(line) => format!("   ✓ check: {line}\n"),
            Err(line) => format!("   ✗ check: {line}\n"),
        });
    }
    for (id, (mut suite, started_at, total, out)) in suites.into_iter().enumerate() {
        suite.set_time(total);
        complete_suite(&mut suite, id, &started_at, out);
        report.add_test_suite(suite);
    }
    to_xml(&report)
}
