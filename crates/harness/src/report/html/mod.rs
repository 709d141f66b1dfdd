//! The HTML report of one run: a self-contained page (inline CSS, SVG and a few lines of
//! script, no request to any other host) with the run's header, a timeline of swimlanes drawn
//! from the event log, and every expectation with its evidence, linked to the events it used.
//!
//! Everything on the page comes from the [`RunResult`] (its event log and expectation outcomes)
//! and the [`Scenario`] it ran (declared duration, fault rules): the same data as the text,
//! JUnit and JSON reports. The markup is an `askama` template compiled into the binary
//! (`templates/report.html`); the geometry comes from `super::layout`.
//!
//! This file holds the page and its views; `lanes` lists the timeline's lanes in order, one
//! file per kind of lane (`clock`, `notices`, `device`, `faults`, `points`, `instants`, `phone`,
//! `connections`, `gaps`), all drawn with the shapes of `shape` and the helpers of `text`.

mod clock;
mod connections;
mod device;
mod faults;
mod gaps;
mod instants;
mod lanes;
mod notices;
mod phone;
mod points;
mod shape;
#[cfg(test)]
mod tests;
mod text;

use askama::Template;
use espsim_emulator::events::EventKind;

use self::clock::clock_started;
use self::lanes::rows;
use self::notices::unobserved_text;
use self::shape::Row;
use self::text::{ms, secs_short, seq_list};
use super::ReportError;
use super::layout::{Lanes, TimeScale};
use crate::expect::{Outcome, secs};
use crate::runner::RunResult;
use crate::scenario::Scenario;

/// Width of the whole timeline, in SVG units (px at 100 % zoom).
const WIDTH: f64 = 1180.0;
/// Room on the left for lane labels.
const LABEL_WIDTH: f64 = 190.0;
/// Height of the time axis above the lanes.
const AXIS_HEIGHT: f64 = 26.0;
/// Most marks drawn in one lane: a chatty session cannot make the file huge (the rest are
/// counted in the lane's label).
const MAX_MARKS_PER_LANE: usize = 1_500;
/// Most connection lanes drawn (a connection storm beyond this is summarised).
const MAX_CONN_LANES: usize = 400;

/// Most ticks drawn one by one in a lane of instants that can be numerous (refused attempts,
/// app output, cellular traffic); beyond it the lane aggregates them into [`BUCKET_PX`]-wide
/// bars with counts, so a storm of 30,000 refusals stays a small file.
const MAX_TICKS: usize = 300;
/// Width of one aggregated bar, in SVG units.
const BUCKET_PX: f64 = 2.0;
/// Longest app output line kept in a tooltip (characters).
const MAX_LINE_CHARS: usize = 160;

/// Room a close label needs right of its mark; closer to the end it goes on the left.
const CLOSE_LABEL_ROOM: f64 = 150.0;

/// Where a report's lanes go: one per TCP connection plus the run-wide ones.
const LANES: Lanes = Lanes {
    top: AXIS_HEIGHT,
    height: 22.0,
    gap: 3.0,
};

/// One piece of evidence as shown.
#[derive(Debug, Clone)]
struct EvidenceView {
    text: String,
    seqs: String,
}

/// One expectation as shown.
#[derive(Debug, Clone)]
struct ExpectationView {
    name: String,
    parameters: String,
    passed: bool,
    message: String,
    seqs: String,
    evidence: Vec<EvidenceView>,
}

/// The run clock's zero: a line across every lane.
#[derive(Debug, Clone)]
struct ClockView {
    x: f64,
    title: String,
    seqs: String,
}

/// A fault rule that fired, as one line.
#[derive(Debug, Clone)]
struct FiredView {
    text: String,
    seqs: String,
}

/// The page.
#[derive(Debug, Template)]
#[template(path = "report.html")]
struct Page {
    scenario: String,
    description: String,
    seed: u64,
    profile: String,
    client: String,
    declared: String,
    elapsed: String,
    rerun: String,
    passed: bool,
    held: usize,
    total: usize,
    command: Option<String>,
    width: f64,
    height: f64,
    plot_right: f64,
    axis: Vec<(f64, String)>,
    clock: Option<ClockView>,
    lanes_top: f64,
    notices: Vec<String>,
    rows: Vec<Row>,
    expectations: Vec<ExpectationView>,
    fired: Vec<FiredView>,
    event_count: usize,
    connection_count: usize,
    refused_count: usize,
    fault_count: usize,
}

/// The HTML report of `result`, a run of `scenario`. `rerun` is the command line that runs it
/// again (shown in the header, to copy).
pub fn html(result: &RunResult, scenario: &Scenario, rerun: &str) -> Result<String, ReportError> {
    let declared_ms = ms(scenario.duration);
    let end_ms = result
        .events
        .iter()
        .map(|e| e.at_ms)
        .max()
        .unwrap_or(0)
        .max(declared_ms);
    let scale = TimeScale::new(end_ms, LABEL_WIDTH, WIDTH - LABEL_WIDTH - 12.0);
    let clock = clock_started(&result.events);
    let rows = rows(result, scenario, &scale, end_ms);
    let height = LANES.total(rows.len()) + 4.0;
    let profile = result
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Started { profile, .. } => Some(profile.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown (the emulator did not start)".to_owned());
    let page = Page {
        scenario: result.scenario.clone(),
        description: result.description.trim().to_owned(),
        seed: result.seed,
        profile,
        client: result.client.clone(),
        declared: secs(declared_ms),
        elapsed: secs(result.elapsed_ms),
        rerun: rerun.to_owned(),
        passed: result.passed(),
        held: result.expectations.iter().filter(|o| o.passed).count(),
        total: result.expectations.len(),
        command: result
            .command
            .as_ref()
            .map(|c| format!("`{}` {}", c.command, c.describe())),
        width: WIDTH,
        height,
        plot_right: scale.right(),
        axis: scale
            .ticks_from(clock.as_ref().map_or(0, |c| c.at_ms), 14)
            .into_iter()
            .map(|(x, t)| (x, secs_short(t)))
            .collect(),
        clock: clock.map(|c| ClockView {
            x: scale.x(c.at_ms),
            title: format!(
                "run clock started ({}) at {} after the emulator started: scenario times count from here",
                c.reason,
                secs(c.at_ms)
            ),
            seqs: seq_list([c.seq]),
        }),
        lanes_top: LANES.top,
        notices: result
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::RefusedUnobserved { service, reason } => Some(unobserved_text(service, reason)),
                _ => None,
            })
            .collect(),
        rows,
        expectations: result.expectations.iter().map(expectation_view).collect(),
        fired: fired_views(result),
        event_count: result.events.len(),
        connection_count: result
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TcpAccepted { .. }))
            .count(),
        refused_count: result
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TcpRefused { .. }))
            .count(),
        fault_count: result
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::FaultApplied { .. }))
            .count(),
    };
    page.render().map_err(ReportError::Html)
}

/// The file name for a run's report in `--html-dir`: the scenario's name, plus the client when
/// `with_client` (the same scenario run by several clients), made safe for any file system.
pub fn file_name(result: &RunResult, with_client: bool) -> String {
    let base = if with_client {
        format!("{}--{}", result.scenario, result.client)
    } else {
        result.scenario.clone()
    };
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(120)
        .collect();
    if name.trim_matches('.').is_empty() {
        name = "scenario".to_owned();
    }
    name + ".html"
}

fn expectation_view(o: &Outcome) -> ExpectationView {
    let evidence: Vec<EvidenceView> = o
        .evidence
        .iter()
        .map(|e| {
            let at = e.at_ms.map(secs).unwrap_or_default();
            let conn = e.conn.map(|c| format!(" conn {c}")).unwrap_or_default();
            EvidenceView {
                text: format!("{at}{conn}: {}", e.note),
                seqs: seq_list(e.events.iter().copied()),
            }
        })
        .collect();
    let mut all: Vec<u64> = o.evidence.iter().flat_map(|e| e.events.clone()).collect();
    all.sort_unstable();
    all.dedup();
    ExpectationView {
        name: o.name.clone(),
        parameters: o.parameters.clone(),
        passed: o.passed,
        message: o.message.clone(),
        seqs: seq_list(all),
        evidence,
    }
}

fn fired_views(result: &RunResult) -> Vec<FiredView> {
    result
        .faults_fired
        .iter()
        .map(|f| {
            let name = f
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let seqs = result.events.iter().filter_map(|e| match &e.kind {
                EventKind::FaultApplied { rule, .. } if *rule == f.rule => Some(e.seq),
                _ => None,
            });
            FiredView {
                text: format!(
                    "rule {}{name} {} ×{}, first at {}: {}",
                    f.rule,
                    f.fault,
                    f.count,
                    secs(f.first_ms),
                    f.detail
                ),
                seqs: seq_list(seqs),
            }
        })
        .collect()
}
