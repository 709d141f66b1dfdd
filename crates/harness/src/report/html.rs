//! The HTML report of one run: a self-contained page (inline CSS, SVG and a few lines of
//! script, no request to any other host) with the run's header, a timeline of swimlanes drawn
//! from the event log, and every expectation with its evidence, linked to the events it used.
//!
//! Everything on the page comes from the [`RunResult`] (its event log and expectation outcomes)
//! and the [`Scenario`] it ran (declared duration, fault rules): the same data as the text,
//! JUnit and JSON reports. The markup is an `askama` template compiled into the binary
//! (`templates/report.html`); the geometry comes from `super::layout`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use askama::Template;
use espsim_emulator::events::{Direction, Event, EventKind, Side};
use espsim_faults::{DeviceFault, Fault};

use super::ReportError;
use super::layout::{Lanes, TimeScale};
use crate::expect::{Outcome, conn_of, secs};
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

/// One drawn thing, in absolute SVG coordinates.
#[derive(Debug, Clone)]
struct Shape {
    /// `bar`, `tick`, `dot`, `text` or `gap` (a bracket with a label).
    kind: &'static str,
    class: String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    /// Hover text (`<title>`; none when empty).
    title: String,
    /// The text of a `text` shape.
    label: String,
    /// The events it shows, as `seq` numbers separated by spaces (`data-seq`).
    seqs: String,
}

/// One swimlane.
#[derive(Debug, Clone)]
struct Row {
    /// `conn-row`, `fault-row`, `dns-row`, `check-row`, `device-row` or `gap-row`.
    class: &'static str,
    label: String,
    /// Hover text of the label.
    hint: String,
    /// The connection, for connection rows.
    conn: Option<u64>,
    y: f64,
    h: f64,
    shapes: Vec<Shape>,
}

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

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `2s`, `2.5s`, `−1s`: an axis label.
fn secs_short(ms: i64) -> String {
    let sign = if ms < 0 { "−" } else { "" };
    let abs = ms.unsigned_abs();
    if abs.is_multiple_of(1000) {
        format!("{sign}{}s", abs / 1000)
    } else {
        format!("{sign}{}s", abs as f64 / 1000.0)
    }
}

/// The first `clock_started` of the log: the run clock's zero.
struct ClockStart {
    at_ms: u64,
    seq: u64,
    reason: String,
}

fn clock_started(events: &[Event]) -> Option<ClockStart> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::ClockStarted { reason } => Some(ClockStart {
            at_ms: e.at_ms,
            seq: e.seq,
            reason: reason.clone(),
        }),
        _ => None,
    })
}

fn unobserved_text(service: &str, reason: &str) -> String {
    format!("refused attempts ({service}) are not counted in this run: {reason}")
}

/// The first `max` characters of `text`, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

fn seq_list(seqs: impl IntoIterator<Item = u64>) -> String {
    let mut out = String::new();
    for s in seqs {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{s}");
    }
    out
}

fn side(by: Side) -> &'static str {
    match by {
        Side::Client => "client",
        Side::Device => "device",
    }
}

/// Every lane, top to bottom: the run clock, notices, device, faults (one per rule), DNS,
/// connectivity checks, refused attempts, the phone, the app's output, one per connection, then
/// the intervals expectations measured (e.g. backoff gaps). Lanes with nothing to show for a
/// kind of event the run may not have (clock, notices, refused, phone, output) are left out.
fn rows(result: &RunResult, scenario: &Scenario, scale: &TimeScale, end_ms: u64) -> Vec<Row> {
    let events = &result.events;
    let cited: HashSet<u64> = result
        .expectations
        .iter()
        .flat_map(|o| o.evidence.iter().flat_map(|e| e.events.iter().copied()))
        .collect();
    let mut rows: Vec<Row> = clock_row(events, scale).into_iter().collect();
    rows.extend(notice_rows(events, scale));
    rows.push(device_row(events, scale, end_ms));
    rows.extend(fault_rows(events, scenario, scale));
    rows.push(point_row(
        "dns-row",
        "DNS",
        "every DNS query the device answered (or dropped)",
        events,
        scale,
        dns_text,
    ));
    rows.push(point_row(
        "check-row",
        "connectivity checks",
        "OS connectivity checks and what each OS concluded",
        events,
        scale,
        probe_text,
    ));
    rows.extend(refused_row(events, scale, &cited));
    rows.extend(phone_row(events, scale, &cited));
    rows.extend(output_row(events, scale, &cited));
    rows.extend(connection_rows(events, scale, end_ms));
    rows.extend(gap_rows(&result.expectations, scale));
    for (i, row) in rows.iter_mut().enumerate() {
        row.y = LANES.y(i);
        row.h = LANES.height;
        let y = row.y;
        for s in &mut row.shapes {
            s.y += y;
        }
    }
    rows
}

fn new_row(class: &'static str, label: impl Into<String>, hint: impl Into<String>) -> Row {
    Row {
        class,
        label: label.into(),
        hint: hint.into(),
        conn: None,
        y: 0.0,
        h: LANES.height,
        shapes: Vec::new(),
    }
}

/// A WebSocket frame's tick on its connection row: app → device in the upper half, device → app
/// in the lower; an app `ping` (a message or a ping frame) is also marked as a heartbeat (`hb`).
/// `kind` is the CSS family (`msg` or `ctl`); `title` gets the arrow's words.
fn tick(
    kind: &str,
    direction: Direction,
    ping: bool,
    x: f64,
    mid: f64,
    title: impl FnOnce(&str) -> String,
) -> Shape {
    let (side, y, arrow) = match direction {
        Direction::In => ("in", 2.0, "app → device"),
        Direction::Out => ("out", mid, "device → app"),
    };
    let heartbeat = if direction == Direction::In && ping {
        " hb"
    } else {
        ""
    };
    shape(
        "tick",
        format!("{kind} {kind}-{side}{heartbeat}"),
        x,
        y,
        0.0,
        mid - 2.0,
    )
    .title(title(arrow))
}

/// A shape in lane-relative coordinates (y from the lane's top; [`rows`] adds the lane's y).
fn shape(kind: &'static str, class: impl Into<String>, x: f64, y: f64, w: f64, h: f64) -> Shape {
    Shape {
        kind,
        class: class.into(),
        x,
        y,
        w,
        h,
        title: String::new(),
        label: String::new(),
        seqs: String::new(),
    }
}

impl Shape {
    fn title(mut self, t: impl Into<String>) -> Shape {
        self.title = t.into();
        self
    }

    fn label(mut self, t: impl Into<String>) -> Shape {
        self.label = t.into();
        self
    }

    fn seqs(mut self, seqs: impl IntoIterator<Item = u64>) -> Shape {
        self.seqs = seq_list(seqs);
        self
    }
}

/// Adds `s` unless the lane already holds [`MAX_MARKS_PER_LANE`] marks; counts what was left out.
fn push_mark(row: &mut Row, s: Shape, left_out: &mut usize) {
    if row.shapes.len() < MAX_MARKS_PER_LANE {
        row.shapes.push(s);
    } else {
        *left_out += 1;
    }
}

fn note_left_out(row: &mut Row, left_out: usize) {
    if left_out > 0 {
        row.label += &format!(" (+{left_out} not drawn)");
    }
}

/// The device: internet mode over time, device actions (reboot, AP down), start and stop.
fn device_row(events: &[Event], scale: &TimeScale, end_ms: u64) -> Row {
    let mut row = new_row(
        "device-row",
        "device",
        "internet mode over time; reboots, AP down and other device actions",
    );
    // Internet mode segments: from `started` (its mode) through each `internet_changed`.
    let mut mode: Option<(u64, String, u64)> = None;
    let mut segments = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::Started { internet, .. } => {
                mode = Some((e.at_ms, mode_name(internet), e.seq))
            }
            EventKind::InternetChanged { to, .. } => {
                if let Some((from, name, seq)) = mode.take() {
                    segments.push((from, e.at_ms, name, seq));
                }
                mode = Some((e.at_ms, mode_name(to), e.seq));
            }
            _ => {}
        }
    }
    if let Some((from, name, seq)) = mode {
        segments.push((from, end_ms, name, seq));
    }
    for (from, to, name, seq) in segments {
        let x = scale.x(from);
        let w = scale.width(from, to);
        row.shapes.push(
            shape("text", "mark-label", x + 2.0, 11.0, 0.0, 0.0).label(format!("internet: {name}")),
        );
        row.shapes.push(
            shape("bar", format!("inet inet-{name}"), x, 14.0, w, 6.0)
                .title(format!("internet: {name} from {}", secs(from)))
                .seqs([seq]),
        );
    }
    for e in events {
        match &e.kind {
            EventKind::DeviceAction { action, detail } => {
                let x = scale.x(e.at_ms);
                row.shapes.push(
                    shape("tick", "device-action", x, 0.0, 0.0, LANES.height)
                        .title(format!("{} {action}: {detail}", secs(e.at_ms)))
                        .seqs([e.seq]),
                );
                row.shapes.push(
                    shape("text", "mark-label", x + 3.0, 11.0, 0.0, 0.0).label(action.clone()),
                );
            }
            EventKind::InternetChanged { from, to } => {
                row.shapes.push(
                    shape(
                        "tick",
                        "device-action",
                        scale.x(e.at_ms),
                        0.0,
                        0.0,
                        LANES.height,
                    )
                    .title(format!(
                        "{} internet {} → {}",
                        secs(e.at_ms),
                        mode_name(from),
                        mode_name(to)
                    ))
                    .seqs([e.seq]),
                );
            }
            _ => {}
        }
    }
    row
}

fn mode_name(mode: &impl serde::Serialize) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// One lane per fault rule (the scenario's, plus any added at run time through the control
/// API): its active window and a marker for every `fault_applied`.
fn fault_rows(events: &[Event], scenario: &Scenario, scale: &TimeScale) -> Vec<Row> {
    let mut ids: BTreeMap<u64, Row> = BTreeMap::new();
    for (i, rule) in scenario.faults.iter().enumerate() {
        let id = i as u64 + 1;
        let fault = serde_json::to_string(&rule.fault).unwrap_or_default();
        let label = match &rule.name {
            Some(n) => format!("fault {id}: {n}"),
            None => format!("fault {id}"),
        };
        let mut row = new_row("fault-row", label, format!("rule {id}: {fault}"));
        // A time window written in the rule (`at`/`for`, not after an event). A reboot or an
        // AP-down fires once; its own down time is drawn from when it fired (below).
        let one_shot = down_time(&rule.fault).is_some();
        if !one_shot
            && rule.when.after.is_none()
            && (rule.when.at.is_some() || rule.when.duration.is_some())
        {
            let from = ms(rule.when.at.unwrap_or_default());
            let to = rule
                .when
                .duration
                .map_or(u64::MAX, |d| from.saturating_add(ms(d)));
            row.shapes.push(
                shape(
                    "bar",
                    "fault-window",
                    scale.x(from),
                    3.0,
                    scale.width(from, to),
                    16.0,
                )
                .title(format!(
                    "rule {id} active {}–{}",
                    secs(from),
                    if to == u64::MAX {
                        "end".to_owned()
                    } else {
                        secs(to)
                    }
                )),
            );
        }
        ids.insert(id, row);
    }
    let mut left_out: BTreeMap<u64, usize> = BTreeMap::new();
    for e in events {
        let EventKind::FaultApplied {
            conn,
            rule,
            fault,
            detail,
        } = &e.kind
        else {
            continue;
        };
        let row = ids.entry(*rule).or_insert_with(|| {
            new_row(
                "fault-row",
                format!("fault {rule} (added at run time)"),
                format!("rule {rule}: {fault}"),
            )
        });
        // A device fault's own down time (reboot `down`, AP down `for`) from when it fired.
        let down = scenario
            .faults
            .get(usize::try_from(rule.saturating_sub(1)).unwrap_or(usize::MAX))
            .and_then(|r| down_time(&r.fault));
        if let Some(d) = down {
            let to = e.at_ms.saturating_add(d);
            row.shapes.push(
                shape(
                    "bar",
                    "fault-window",
                    scale.x(e.at_ms),
                    3.0,
                    scale.width(e.at_ms, to),
                    16.0,
                )
                .title(format!("down {}–{}", secs(e.at_ms), secs(to)))
                .seqs([e.seq]),
            );
        }
        let on = conn.map(|c| format!(" on conn {c}")).unwrap_or_default();
        let mark = shape("dot", "fault-marker", scale.x(e.at_ms), 11.0, 0.0, 0.0)
            .title(format!(
                "{} rule {rule}{on}: {detail} — {fault}",
                secs(e.at_ms)
            ))
            .seqs([e.seq]);
        let mut n = 0;
        push_mark(row, mark, &mut n);
        *left_out.entry(*rule).or_default() += n;
    }
    for (rule, n) in left_out {
        if let Some(row) = ids.get_mut(&rule) {
            note_left_out(row, n);
        }
    }
    ids.into_values().collect()
}

/// How long a device fault takes the device (or its AP) down, in ms, for those that do.
fn down_time(fault: &Fault) -> Option<u64> {
    match fault {
        Fault::Device(DeviceFault::Reboot(r)) => Some(ms(r.down)),
        Fault::Device(DeviceFault::ApDown(a)) => Some(ms(a.duration)),
        _ => None,
    }
}

/// A lane of instants (DNS, connectivity checks): a tick for every event `text` describes.
fn point_row(
    class: &'static str,
    label: &str,
    hint: &str,
    events: &[Event],
    scale: &TimeScale,
    text: fn(&EventKind) -> Option<(String, bool)>,
) -> Row {
    let mut row = new_row(class, label, hint);
    let mut left_out = 0;
    let mut count = 0;
    for e in events {
        let Some((t, bad)) = text(&e.kind) else {
            continue;
        };
        count += 1;
        let mark = shape(
            "tick",
            if bad { "point bad" } else { "point" },
            scale.x(e.at_ms),
            3.0,
            0.0,
            16.0,
        )
        .title(format!("{} {t}", secs(e.at_ms)))
        .seqs([e.seq]);
        push_mark(&mut row, mark, &mut left_out);
    }
    row.label += &format!(" ({count})");
    note_left_out(&mut row, left_out);
    row
}

fn dns_text(kind: &EventKind) -> Option<(String, bool)> {
    match kind {
        EventKind::DnsQuery {
            transport,
            name,
            qtype,
            rcode,
            answers,
            ..
        } => Some((
            format!(
                "{qtype} {name} ({transport}) → {} {}",
                rcode.as_deref().unwrap_or("no reply"),
                answers.join(", ")
            ),
            rcode.as_deref() != Some("NoError"),
        )),
        EventKind::DnsMalformed { error, .. } => Some((format!("malformed: {error}"), true)),
        _ => None,
    }
}

fn probe_text(kind: &EventKind) -> Option<(String, bool)> {
    match kind {
        EventKind::ConnectivityProbe {
            conn,
            os,
            url,
            status,
            verdict,
            ..
        } => {
            let verdict = mode_name(verdict);
            Some((
                format!("{os} {url} → {status}: {verdict} (conn {conn})"),
                verdict != "online",
            ))
        }
        _ => None,
    }
}

/// The run clock's lane: where its zero is and what started it (the line across every lane is
/// drawn by the page, from [`ClockView`]).
fn clock_row(events: &[Event], scale: &TimeScale) -> Option<Row> {
    let c = clock_started(events)?;
    let mut row = new_row(
        "clock-row",
        "run clock",
        "the run clock's zero: scenario times (the axis) count from here",
    );
    let x = scale.x(c.at_ms);
    let title = format!(
        "{} run clock started: {} (scenario time 0)",
        secs(c.at_ms),
        c.reason
    );
    row.shapes.push(
        shape("tick", "clock-mark", x, 0.0, 0.0, LANES.height)
            .title(title.clone())
            .seqs([c.seq]),
    );
    let label = format!("0: {}", clip(&c.reason, 60));
    let (x, class) = if x + CLOSE_LABEL_ROOM > scale.right() {
        (x - 4.0, "mark-label end")
    } else {
        (x + 4.0, "mark-label")
    };
    row.shapes.push(
        shape("text", class, x, 15.0, 0.0, 0.0)
            .label(label)
            .title(title)
            .seqs([c.seq]),
    );
    Some(row)
}

/// A banner lane per `refused_unobserved`: the log misses refused attempts, and why.
fn notice_rows(events: &[Event], scale: &TimeScale) -> Vec<Row> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RefusedUnobserved { service, reason } => {
                let text = unobserved_text(service, reason);
                let mut row = new_row("notice-row", "notice", "");
                row.shapes.push(
                    shape(
                        "bar",
                        "notice",
                        LABEL_WIDTH,
                        2.0,
                        scale.right() - LABEL_WIDTH,
                        18.0,
                    )
                    .title(format!("{} {text}", secs(e.at_ms)))
                    .seqs([e.seq]),
                );
                row.shapes.push(
                    shape("text", "notice-label", LABEL_WIDTH + 4.0, 15.0, 0.0, 0.0)
                        .label(clip(&text, 150))
                        .title(text)
                        .seqs([e.seq]),
                );
                Some(row)
            }
            _ => None,
        })
        .take(MAX_CONN_LANES)
        .collect()
}

/// One instant of a lane that can hold many: when, its event, its CSS class and hover text.
struct Instant {
    at: u64,
    seq: u64,
    class: &'static str,
    text: String,
}

/// Draws `items` into `row` (y from 3 to 19): a tick each when there are at most
/// [`MAX_TICKS`], otherwise one bar per [`BUCKET_PX`] of time axis, as tall as its count
/// relative to the fullest bucket, its count and time span in the tooltip. A bar's `data-seq`
/// lists those of its events some evidence cites, so highlighting evidence lights it up.
fn draw_instants(
    row: &mut Row,
    items: &[Instant],
    noun: &str,
    scale: &TimeScale,
    cited: &HashSet<u64>,
) {
    if items.len() <= MAX_TICKS {
        for i in items {
            row.shapes.push(
                shape("tick", i.class, scale.x(i.at), 3.0, 0.0, 16.0)
                    .title(format!("{} {}", secs(i.at), i.text))
                    .seqs([i.seq]),
            );
        }
        return;
    }
    let mut buckets: BTreeMap<u64, Vec<&Instant>> = BTreeMap::new();
    for i in items {
        buckets
            .entry(scale.bucket(i.at, BUCKET_PX))
            .or_default()
            .push(i);
    }
    let fullest = buckets.values().map(Vec::len).max().unwrap_or(1).max(1);
    for (index, group) in buckets {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let h = (16.0 * group.len() as f64 / fullest as f64).max(3.0);
        let h = (h * 10.0).round() / 10.0;
        let class = if group.iter().any(|i| i.class.ends_with("bad")) {
            "bin bad"
        } else {
            "bin"
        };
        let span = if first.at == last.at {
            secs(first.at)
        } else {
            format!("{}–{}", secs(first.at), secs(last.at))
        };
        row.shapes.push(
            shape(
                "bar",
                class,
                scale.bucket_x(index, BUCKET_PX),
                19.0 - h,
                BUCKET_PX,
                h,
            )
            .title(format!(
                "{} {noun} {span}; first: {}",
                group.len(),
                first.text
            ))
            .seqs(group.iter().map(|i| i.seq).filter(|s| cited.contains(s))),
        );
    }
}

/// Connection attempts refused while the port was closed: a tick each, aggregated past
/// [`MAX_TICKS`]. Absent when nothing was refused.
fn refused_row(events: &[Event], scale: &TimeScale, cited: &HashSet<u64>) -> Option<Row> {
    let items: Vec<Instant> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TcpRefused { peer, service } => Some(Instant {
                at: e.at_ms,
                seq: e.seq,
                class: "refused",
                text: format!("refused {peer} ({service})"),
            }),
            _ => None,
        })
        .collect();
    if items.is_empty() {
        return None;
    }
    let mut row = new_row(
        "refused-row",
        format!("refused ({})", items.len()),
        "connection attempts refused (SYN answered with RST) while the device's port was closed",
    );
    draw_instants(&mut row, &items, "refused", scale, cited);
    Some(row)
}

/// The simulated phone: its OS's verdicts and routing (a mark each, they only come on change)
/// and the traffic that left it over cellular (bounded like the refused lane). Absent for a
/// run without a phone.
fn phone_row(events: &[Event], scale: &TimeScale, cited: &HashSet<u64>) -> Option<Row> {
    let mut row = new_row(
        "phone-row",
        "phone",
        "the phone's verdicts and routing, and what it sent over cellular",
    );
    let mut cellular = Vec::new();
    let mut left_out = 0;
    let mid = LANES.height / 2.0;
    for e in events {
        let (at, seq, x) = (e.at_ms, e.seq, scale.x(e.at_ms));
        let mark = match &e.kind {
            EventKind::PhoneVerdict {
                os,
                url,
                status,
                error,
                verdict,
            } => {
                let verdict = mode_name(verdict);
                let answer = match (status, error) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(err)) => err.clone(),
                    (None, None) => "no answer".to_owned(),
                };
                let class = if verdict == "online" {
                    "phone-verdict"
                } else {
                    "phone-verdict bad"
                };
                Some(
                    shape("dot", class, x, mid, 0.0, 0.0)
                        .title(format!("{} {os} {url} → {answer}: {verdict}", secs(at))),
                )
            }
            EventKind::PhoneRouting {
                default_network,
                app_network,
                device_subnet,
                app_dns,
            } => Some(
                shape("tick", "phone-routing", x, 0.0, 0.0, LANES.height).title(format!(
                    "{} routing: default {}, app internet over {}, device subnet over {}, DNS {app_dns}",
                    secs(at),
                    mode_name(default_network),
                    mode_name(app_network),
                    mode_name(device_subnet)
                )),
            ),
            EventKind::CellularConnection { proto, from, to } => {
                cellular.push(Instant {
                    at,
                    seq,
                    class: "cellular",
                    text: format!("over cellular: {proto} {from} → {to} (dropped)"),
                });
                None
            }
            EventKind::CellularDns {
                name,
                qtype,
                answer,
            } => {
                cellular.push(Instant {
                    at,
                    seq,
                    class: "cellular",
                    text: format!(
                        "cellular DNS: {qtype} {name} → {}",
                        answer.as_deref().unwrap_or("no address")
                    ),
                });
                None
            }
            _ => None,
        };
        if let Some(m) = mark {
            push_mark(&mut row, m.seqs([seq]), &mut left_out);
        }
    }
    if row.shapes.is_empty() && cellular.is_empty() {
        return None;
    }
    if !cellular.is_empty() {
        row.label += &format!(" ({} cellular)", cellular.len());
    }
    // Cellular traffic first, so the verdict and routing marks are drawn on top of it.
    let marks = std::mem::take(&mut row.shapes);
    draw_instants(&mut row, &cellular, "over cellular", scale, cited);
    row.shapes.extend(marks);
    note_left_out(&mut row, left_out);
    Some(row)
}

/// The lines the app printed (what `tells_user` reads): a tick each, the line in its tooltip,
/// bounded like the refused lane. Absent when the app printed nothing.
fn output_row(events: &[Event], scale: &TimeScale, cited: &HashSet<u64>) -> Option<Row> {
    let items: Vec<Instant> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AppOutput {
                stream,
                line,
                truncated,
            } => Some(Instant {
                at: e.at_ms,
                seq: e.seq,
                class: if stream == "stderr" {
                    "output stderr"
                } else {
                    "output"
                },
                text: format!(
                    "{stream}: {}{}",
                    clip(line, MAX_LINE_CHARS),
                    if *truncated { " (cut)" } else { "" }
                ),
            }),
            _ => None,
        })
        .collect();
    if items.is_empty() {
        return None;
    }
    let mut row = new_row(
        "output-row",
        format!("app output ({} lines)", items.len()),
        "the lines the app printed (stdout and stderr)",
    );
    draw_instants(&mut row, &items, "lines", scale, cited);
    Some(row)
}

/// What one connection's lane shows, folded from its events.
#[derive(Debug, Default)]
struct ConnLane {
    accepted: (u64, u64),
    peer: String,
    served: Option<u64>,
    waiting: Option<(u64, u64)>,
    /// When the app gave up waiting for a socket slot: (at, seq, waited ms).
    abandoned: Option<(u64, u64, u64)>,
    closed: Option<(u64, u64, String)>,
    ws_open: Option<(u64, u64, String)>,
    ws_end: Option<(u64, u64, String, String)>,
    outcome: Vec<String>,
    marks: Vec<Shape>,
    left_out: usize,
}

/// One lane per TCP connection (in accept order): the connection as a bar from accept to close,
/// the WebSocket session inside it, requests, upgrade outcome, messages, heartbeats and how it
/// ended.
fn connection_rows(events: &[Event], scale: &TimeScale, end_ms: u64) -> Vec<Row> {
    let mut lanes: BTreeMap<u64, ConnLane> = BTreeMap::new();
    for e in events {
        if let EventKind::TcpAccepted {
            conn,
            peer,
            service,
            ..
        } = &e.kind
        {
            lanes.insert(
                *conn,
                ConnLane {
                    accepted: (e.at_ms, e.seq),
                    peer: format!("{peer} ({service})"),
                    ..ConnLane::default()
                },
            );
            continue;
        }
        let Some(lane) = conn_of(&e.kind).and_then(|c| lanes.get_mut(&c)) else {
            continue;
        };
        fold_conn_event(lane, e, scale);
    }
    let total = lanes.len();
    let mut rows: Vec<Row> = lanes
        .into_iter()
        .take(MAX_CONN_LANES)
        .map(|(id, lane)| conn_row(id, lane, scale, end_ms))
        .collect();
    if total > MAX_CONN_LANES {
        rows.push(new_row(
            "more-row",
            format!("… {} more connections", total - MAX_CONN_LANES),
            "not drawn: see the event log",
        ));
    }
    rows
}

fn fold_conn_event(lane: &mut ConnLane, e: &Event, scale: &TimeScale) {
    let (at, seq) = (e.at_ms, e.seq);
    let x = scale.x(at);
    let mid = LANES.height / 2.0;
    let mark = match &e.kind {
        EventKind::TcpWaiting { open, .. } => {
            lane.waiting = Some((at, seq));
            lane.outcome.push("waited for a socket".to_owned());
            Some(
                shape("dot", "mark waiting", x, mid, 0.0, 0.0)
                    .title(format!("{} waiting: all {open} sockets in use", secs(at))),
            )
        }
        EventKind::TcpAbandoned { waited_ms, .. } => {
            lane.abandoned = Some((at, seq, *waited_ms));
            lane.outcome
                .push(format!("abandoned after {waited_ms} ms waiting"));
            None
        }
        EventKind::TcpServed { .. } => {
            lane.served = Some(at);
            None
        }
        EventKind::HttpRequest {
            method,
            host,
            target,
            status,
            ..
        } => Some(shape("dot", "mark http", x, mid, 0.0, 0.0).title(format!(
            "{} {method} {}{target} → {status}",
            secs(at),
            host.as_deref().unwrap_or("")
        ))),
        EventKind::HttpError { status, reason, .. } => {
            lane.outcome.push(format!("HTTP {status}"));
            Some(
                shape("dot", "mark bad", x, mid, 0.0, 0.0)
                    .title(format!("{} HTTP {status}: {reason}", secs(at))),
            )
        }
        EventKind::ConnectivityProbe { os, status, .. } => {
            lane.outcome.push(format!("{os} check"));
            Some(
                shape("dot", "mark http", x, mid, 0.0, 0.0)
                    .title(format!("{} {os} connectivity check → {status}", secs(at))),
            )
        }
        EventKind::WsOpened {
            path, subprotocol, ..
        } => {
            let sub = subprotocol
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            // Drawn as the session bar (see `conn_row`).
            lane.ws_open = Some((at, seq, format!("{path}{sub}")));
            lane.outcome.push("101".to_owned());
            None
        }
        EventKind::WsRejected { reason, status, .. } => {
            let status = status.map_or_else(|| "silent close".to_owned(), |s| s.to_string());
            lane.outcome.push(format!("upgrade refused ({status})"));
            Some(
                shape("dot", "mark bad", x, mid, 0.0, 0.0)
                    .title(format!("{} upgrade refused, {status}: {reason}", secs(at))),
            )
        }
        EventKind::WsMessage {
            direction,
            msg_type,
            bytes,
            ..
        } => {
            let t = msg_type.as_deref().unwrap_or("(no type)");
            Some(tick("msg", *direction, t == "ping", x, mid, |arrow| {
                format!("{} {arrow}: {t} ({bytes} B)", secs(at))
            }))
        }
        EventKind::WsControl {
            direction, frame, ..
        } => Some(tick("ctl", *direction, frame == "ping", x, mid, |arrow| {
            format!("{} {arrow}: {frame} frame", secs(at))
        })),
        EventKind::WsClosed {
            by,
            code,
            reason,
            clean,
            ..
        } => {
            let code = code.map_or_else(|| "no close frame".to_owned(), |c| c.to_string());
            let text = format!(
                "{code} by {}{}",
                side(*by),
                if *clean { "" } else { ", not clean" }
            );
            // Drawn as the session bar's end and its label (see `conn_row`).
            lane.outcome.push(format!("closed {text}"));
            lane.ws_end = Some((at, seq, text, reason.clone()));
            None
        }
        EventKind::LruPurged { for_conn, .. } => {
            lane.outcome.push(format!("LRU-purged for conn {for_conn}"));
            Some(shape("dot", "mark bad", x, mid, 0.0, 0.0).title(format!(
                "{} LRU purge: closed to admit conn {for_conn}",
                secs(at)
            )))
        }
        EventKind::TcpClosed { by, reason, .. } => {
            lane.closed = Some((at, seq, format!("TCP closed by {}: {reason}", side(*by))));
            None
        }
        EventKind::FaultApplied { rule, detail, .. } => Some(
            shape("dot", "conn-fault", x, mid, 0.0, 0.0)
                .title(format!("{} fault rule {rule}: {detail}", secs(at))),
        ),
        _ => None,
    };
    if let Some(m) = mark {
        let m = m.seqs([seq]);
        if lane.marks.len() < MAX_MARKS_PER_LANE {
            lane.marks.push(m);
        } else {
            lane.left_out += 1;
        }
    }
}

fn conn_row(id: u64, lane: ConnLane, scale: &TimeScale, end_ms: u64) -> Row {
    let (accepted, accepted_seq) = lane.accepted;
    let mut outcome = lane.outcome.clone();
    outcome.dedup();
    // No hover text on the lane itself: the connection bar carries it (keeps big runs small).
    let mut row = new_row("conn-row", format!("conn {id}"), "");
    row.conn = Some(id);
    let (end, end_seq, end_text) = match (&lane.closed, lane.abandoned) {
        (Some((at, seq, text)), _) => (*at, Some(*seq), text.clone()),
        (None, Some((at, seq, waited))) => (
            at,
            Some(seq),
            format!("abandoned by the app after {waited} ms waiting"),
        ),
        (None, None) => (end_ms, None, "still open when the run ended".to_owned()),
    };
    let summary = if outcome.is_empty() {
        "no request".to_owned()
    } else {
        outcome.join(", ")
    };
    let tcp = shape(
        "bar",
        "tcp",
        scale.x(accepted),
        4.0,
        scale.width(accepted, end),
        14.0,
    )
    .title(format!(
        "conn {id} from {}: TCP {}–{}: {summary}; {end_text}",
        lane.peer,
        secs(accepted),
        secs(end),
    ))
    .seqs(std::iter::once(accepted_seq).chain(end_seq));
    row.shapes.push(tcp);
    if let Some((w_at, w_seq)) = lane.waiting {
        let until = lane
            .served
            .or(lane.abandoned.map(|(at, _, _)| at))
            .unwrap_or(end);
        let waiting = shape(
            "bar",
            "waiting",
            scale.x(w_at),
            4.0,
            scale.width(w_at, until),
            14.0,
        )
        .title(format!(
            "waiting for a socket {}–{}",
            secs(w_at),
            secs(until)
        ))
        .seqs([w_seq]);
        row.shapes.push(waiting);
    }
    if let Some((open, open_seq, path)) = &lane.ws_open {
        let (close, close_seq, how) = match &lane.ws_end {
            Some((at, seq, text, _)) => (*at, Some(*seq), format!("closed {text}")),
            None => (end, None, "no close".to_owned()),
        };
        let ws = shape(
            "bar",
            "ws",
            scale.x(*open),
            6.0,
            scale.width(*open, close),
            10.0,
        )
        .title(format!(
            "WebSocket {path}: 101 at {}, {how} at {}",
            secs(*open),
            secs(close)
        ))
        .seqs(std::iter::once(*open_seq).chain(close_seq));
        row.shapes.push(ws);
    }
    row.shapes.extend(lane.marks);
    if let Some((at, seq, text, reason)) = &lane.ws_end {
        // Right of the close, or left of it when it is near the end of the plot.
        let x = scale.x(*at);
        let (x, class) = if x + CLOSE_LABEL_ROOM > scale.right() {
            (x - 4.0, "close-label end")
        } else {
            (x + 4.0, "close-label")
        };
        row.shapes.push(
            shape("text", class, x, 16.0, 0.0, 0.0)
                .label(text.clone())
                .title(format!("{} WebSocket closed: {text} {reason}", secs(*at)))
                .seqs([*seq]),
        );
    }
    if let Some((at, seq, waited)) = lane.abandoned {
        let x = scale.x(at);
        let text = format!("abandoned after {waited} ms waiting");
        let title = format!("{} the app gave up: {text} for a socket slot", secs(at));
        row.shapes.push(
            shape("tick", "abandoned", x, 0.0, 0.0, LANES.height)
                .title(title.clone())
                .seqs([seq]),
        );
        let (x, class) = if x + CLOSE_LABEL_ROOM > scale.right() {
            (x - 4.0, "close-label abandoned-label end")
        } else {
            (x + 4.0, "close-label abandoned-label")
        };
        row.shapes.push(
            shape("text", class, x, 16.0, 0.0, 0.0)
                .label(text)
                .title(title)
                .seqs([seq]),
        );
    }
    note_left_out(&mut row, lane.left_out);
    row
}

/// For each expectation that measured intervals (backoff gaps, silences between pings, a
/// reconnect window), a lane with each interval drawn as a bracket and labelled.
fn gap_rows(outcomes: &[Outcome], scale: &TimeScale) -> Vec<Row> {
    let mut rows = Vec::new();
    for o in outcomes {
        let mut row = new_row(
            "gap-row",
            format!("{} intervals", o.name),
            format!("the intervals `{}` measured: {}", o.name, o.parameters),
        );
        for e in &o.evidence {
            let (Some(from), Some(to)) = (e.since_ms, e.at_ms) else {
                continue;
            };
            let class = if o.passed { "gap" } else { "gap gap-fail" };
            let x = scale.x(from);
            row.shapes.push(
                shape("gap", class, x, 4.0, scale.width(from, to), 14.0)
                    .title(format!("{}: {}", secs(to.saturating_sub(from)), e.note))
                    .seqs(e.events.iter().copied()),
            );
            row.shapes.push(
                shape("text", "gap-label", x + 2.0, 13.0, 0.0, 0.0)
                    .label(secs(to.saturating_sub(from))),
            );
        }
        if !row.shapes.is_empty() {
            rows.push(row);
        }
    }
    rows
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_name_the_client_when_asked() {
        let r = RunResult {
            scenario: "lru purge/../x".to_owned(),
            scenario_file: "x.yaml".into(),
            description: String::new(),
            seed: 1,
            client: "builtin:naive".to_owned(),
            started_at: String::new(),
            elapsed_ms: 0,
            start_on: crate::scenario::StartOn::FirstActivity,
            clock: None,
            startup_failure: None,
            expectations: Vec::new(),
            command: None,
            client_summary: None,
            faults_fired: Vec::new(),
            events: Vec::new(),
        };
        assert_eq!(file_name(&r, false), "lru-purge-..-x.html");
        assert_eq!(file_name(&r, true), "lru-purge-..-x--builtin-naive.html");
    }

    /// Text as the template escapes it.
    fn escaped(text: &str) -> String {
        text.replace('&', "&#38;")
            .replace('<', "&#60;")
            .replace('>', "&#62;")
            .replace('"', "&#34;")
            .replace('\'', "&#39;")
    }

    fn count(html: &str, needle: &str) -> usize {
        html.matches(needle).count()
    }

    /// The fixture where four handshakes are cut: the good client backs off (passes),
    /// the naive one hammers the device (fails `backoff`). Each report must show every
    /// connection and every fault of its own run's event log, and the verdicts with evidence.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_of_real_runs_show_every_connection_fault_and_verdict() {
        use crate::runner::{self, ClientSpec};
        use espsim_client::ClientProfile;

        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/handshake-cut-four-times.yaml");
        let scenario = Scenario::load(&path).expect("library scenario loads");
        let good = ClientSpec::Builtin(ClientProfile::Good);
        let naive = ClientSpec::Builtin(ClientProfile::Naive);
        let (good_run, naive_run) = tokio::join!(
            runner::run(&scenario, &good, None),
            runner::run(&scenario, &naive, None)
        );
        for (run, must_pass) in [(good_run, true), (naive_run, false)] {
            let run = run.expect("the scenario runs");
            assert_eq!(run.passed(), must_pass, "{}", super::super::text(&run));
            let rerun = format!(
                "espsim test crates/harness/tests/fixtures/handshake-cut-four-times.yaml --client {} --seed {}",
                run.client, run.seed
            );
            let page = html(&run, &scenario, &rerun).expect("renders");
            let kinds = |name: &str| run.events.iter().filter(|e| e.kind.name() == name).count();
            let conns = kinds("tcp_accepted");
            let faults = kinds("fault_applied");
            assert!(
                conns >= 5 && faults >= 4,
                "{conns} connections, {faults} faults"
            );
            assert_eq!(count(&page, r#"class="row conn-row""#), conns);
            assert_eq!(count(&page, r#"class="fault-marker""#), faults);
            assert!(
                page.contains(&escaped(&rerun)),
                "the re-run command is shown"
            );
            assert!(page.contains("esp-idf-v5.4"), "the profile is shown");
            for loads in ["src=", "href=", "url(", "@import"] {
                assert!(
                    !page.contains(loads),
                    "nothing is loaded from elsewhere: {loads}"
                );
            }
            assert!(page.len() < 300_000, "{} bytes", page.len());
            let backoff = run
                .expectations
                .iter()
                .find(|o| o.name == "backoff")
                .expect("backoff judged");
            let section = format!(
                r#"<section class="exp {}" data-expectation="backoff""#,
                if must_pass { "pass" } else { "fail" }
            );
            assert!(page.contains(&section), "backoff shown as {section}");
            assert!(
                page.contains(&escaped(&backoff.message)),
                "its message is shown"
            );
            for e in &backoff.evidence {
                assert!(
                    page.contains(&escaped(&e.note)),
                    "evidence {:?} shown",
                    e.note
                );
                assert!(!e.events.is_empty(), "evidence {e:?} names its events");
            }
            // The retry gaps the judgement measured are drawn, one bracket each.
            let gaps = backoff
                .evidence
                .iter()
                .filter(|e| e.since_ms.is_some())
                .count();
            assert!(gaps >= 3, "{gaps} gaps");
            let class = if must_pass {
                r#"class="gap""#
            } else {
                r#"class="gap gap-fail""#
            };
            assert!(count(&page, class) >= gaps, "{gaps} gap brackets");
        }
    }

    /// An event log written by hand: each `push` gets the next `seq`.
    #[derive(Default)]
    struct Log(Vec<Event>);

    impl Log {
        fn push(&mut self, at_ms: u64, kind: EventKind) -> u64 {
            let seq = self.0.len() as u64;
            self.0.push(Event { seq, at_ms, kind });
            seq
        }
    }

    fn peer() -> std::net::SocketAddr {
        std::net::SocketAddr::from(([192, 168, 4, 2], 40_000))
    }

    /// A report of `events`, with one expectation citing `cited` as its evidence.
    fn report_of(events: Vec<Event>, cited: &[u64]) -> String {
        let scenario = Scenario::parse(
            "name: synthetic\nduration: 30s\nexpect:\n  - connected: { within: 9s }\n",
            std::path::Path::new("synthetic.yaml"),
        )
        .expect("scenario parses");
        let outcome = Outcome {
            name: "judged".to_owned(),
            parameters: String::new(),
            passed: false,
            message: "synthetic".to_owned(),
            evidence: cited
                .iter()
                .map(|s| crate::expect::Evidence {
                    at_ms: None,
                    conn: None,
                    note: format!("event {s}"),
                    since_ms: None,
                    events: vec![*s],
                })
                .collect(),
        };
        let run = RunResult {
            scenario: "synthetic".to_owned(),
            scenario_file: "synthetic.yaml".into(),
            description: String::new(),
            seed: 1,
            client: "builtin:naive".to_owned(),
            started_at: String::new(),
            elapsed_ms: 30_000,
            start_on: crate::scenario::StartOn::FirstActivity,
            clock: None,
            startup_failure: None,
            expectations: vec![outcome],
            command: None,
            client_summary: None,
            faults_fired: Vec::new(),
            events,
        };
        html(&run, &scenario, "espsim test synthetic.yaml").expect("renders")
    }

    /// The opening tags of the timeline's elements whose `data-seq` lists `seq`: what lights up
    /// when evidence citing `seq` is clicked.
    fn highlighted_by(page: &str, seq: u64) -> Vec<&str> {
        let wanted = seq.to_string();
        page.split('<')
            .filter(|tag| {
                tag.split_once("data-seq=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .is_some_and(|(list, _)| list.split(' ').any(|s| s == wanted))
            })
            .collect()
    }

    /// The x and width of the first `<rect>` of `class`.
    fn first_rect(page: &str, class: &str) -> Option<(f64, f64)> {
        let tag = page.split(&format!(r#"<rect class="{class}""#)).nth(1)?;
        let attr = |name: &str| -> Option<f64> {
            let (_, rest) = tag.split_once(&format!(r#" {name}=""#))?;
            rest.split_once('"')?.0.parse().ok()
        };
        Some((attr("x")?, attr("width")?))
    }

    /// The size bound of `tests/tests/report_html.rs`.
    const MAX_REPORT_BYTES: usize = 300_000;

    #[test]
    fn a_storm_of_30000_refusals_is_aggregated_and_its_cited_events_still_light_up() {
        let mut log = Log::default();
        log.push(
            0,
            EventKind::ClockStarted {
                reason: "first_connection".to_owned(),
            },
        );
        let mut refused = Vec::new();
        for i in 0..30_000u64 {
            refused.push(log.push(
                1_000 + i,
                EventKind::TcpRefused {
                    peer: peer(),
                    service: "http".to_owned(),
                },
            ));
        }
        let cited = refused[12_345];
        let page = report_of(log.0, &[cited]);
        assert!(page.len() < MAX_REPORT_BYTES, "{} bytes", page.len());
        assert_eq!(count(&page, r#"class="refused""#), 0, "no tick one by one");
        let bins = count(&page, r#"<rect class="bin""#);
        let most = ((WIDTH - LABEL_WIDTH) / BUCKET_PX) as usize + 1;
        assert!((100..=most).contains(&bins), "{bins} bars");
        assert!(page.contains("refused (30000)"), "the lane counts them all");
        assert!(
            page.contains("30000 refused attempts"),
            "and so does the header"
        );
        let lit = highlighted_by(&page, cited);
        assert_eq!(lit.len(), 1, "{lit:?}");
        assert!(lit[0].starts_with(r#"rect class="bin""#), "{lit:?}");
        assert!(
            highlighted_by(&page, refused[0]).is_empty(),
            "uncited events are not listed in the bars"
        );
        // The bars' counts add up to the storm.
        let total: usize = page
            .split("<title>")
            .filter_map(|t| t.split_once(" refused ").map(|(n, _)| n))
            .filter_map(|n| n.parse::<usize>().ok())
            .sum();
        assert_eq!(total, 30_000);
    }

    #[test]
    fn a_few_refusals_are_ticks_each_pointing_at_its_event() {
        let mut log = Log::default();
        let seqs: Vec<u64> = (0..12)
            .map(|i| {
                log.push(
                    500 * i,
                    EventKind::TcpRefused {
                        peer: peer(),
                        service: "http".to_owned(),
                    },
                )
            })
            .collect();
        let page = report_of(log.0, &[seqs[3]]);
        assert_eq!(count(&page, r#"<line class="refused""#), 12);
        assert_eq!(count(&page, r#"class="bin""#), 0);
        let lit = highlighted_by(&page, seqs[3]);
        assert_eq!(lit.len(), 1);
        assert!(lit[0].starts_with(r#"line class="refused""#), "{lit:?}");
    }

    #[test]
    fn the_clock_marker_is_drawn_and_the_axis_counts_from_it() {
        let mut log = Log::default();
        log.push(0, EventKind::Stopping);
        let clock = log.push(
            12_000,
            EventKind::ClockStarted {
                reason: "signal: file".to_owned(),
            },
        );
        let page = report_of(log.0, &[clock]);
        assert_eq!(count(&page, r#"<line class="clock-line""#), 1);
        assert!(page.contains("0: signal: file"), "labelled with its reason");
        let lit = highlighted_by(&page, clock);
        assert_eq!(
            lit.len(),
            3,
            "lane tick, label and the line across: {lit:?}"
        );
        let scale = TimeScale::new(30_000, LABEL_WIDTH, WIDTH - LABEL_WIDTH - 12.0);
        let zero = format!(r#"x="{}" y="13" text-anchor="middle">0s<"#, scale.x(12_000));
        assert!(page.contains(&zero), "the axis' 0 is at the clock");
        for label in [">−10s<", ">−5s<", ">5s<", ">15s<"] {
            assert!(page.contains(label), "{label}: counted from the clock");
        }
        assert!(!page.contains(">20s<"), "no raw time on the axis");
        assert!(
            page.contains(&format!("at {} after the emulator started", secs(12_000))),
            "raw time kept"
        );
    }

    #[test]
    fn an_abandoned_connection_ends_visibly_and_its_event_lights_up() {
        let mut log = Log::default();
        log.push(
            100,
            EventKind::TcpAccepted {
                conn: 7,
                peer: peer(),
                service: "http".to_owned(),
            },
        );
        log.push(100, EventKind::TcpWaiting { conn: 7, open: 4 });
        let gave_up = log.push(
            1_600,
            EventKind::TcpAbandoned {
                conn: 7,
                waited_ms: 1_500,
            },
        );
        let page = report_of(log.0, &[gave_up]);
        assert_eq!(count(&page, r#"class="row conn-row""#), 1);
        assert!(
            page.contains(">abandoned after 1500 ms waiting<"),
            "labelled"
        );
        let lit = highlighted_by(&page, gave_up);
        let classes: Vec<&str> = lit
            .iter()
            .filter_map(|t| {
                t.split_once("class=\"")
                    .and_then(|(_, r)| r.split_once('"'))
            })
            .map(|(c, _)| c)
            .collect();
        assert_eq!(
            classes,
            ["tcp", "abandoned", "close-label abandoned-label"],
            "the connection bar ends there, with a mark and its label"
        );
        let scale = TimeScale::new(30_000, LABEL_WIDTH, WIDTH - LABEL_WIDTH - 12.0);
        assert_eq!(
            first_rect(&page, "waiting"),
            Some((scale.x(100), scale.width(100, 1_600))),
            "the wait ends when the app gave up"
        );
    }

    #[test]
    fn unobserved_refusals_get_a_notice_in_the_timeline_and_above_it() {
        let mut log = Log::default();
        let n = log.push(
            0,
            EventKind::RefusedUnobserved {
                service: "http".to_owned(),
                reason: "no CAP_NET_RAW: run as root".to_owned(),
            },
        );
        let page = report_of(log.0, &[n]);
        assert_eq!(count(&page, r#"class="row notice-row""#), 1);
        assert_eq!(count(&page, r#"<p class="notice-text">"#), 1);
        assert!(page.contains("no CAP_NET_RAW: run as root"));
        assert_eq!(highlighted_by(&page, n).len(), 2, "banner and its text");
        assert_eq!(
            count(&page, r#"class="row refused-row""#),
            0,
            "nothing refused was seen"
        );
    }

    #[test]
    fn phone_and_app_output_lanes_appear_only_when_there_is_something_to_show() {
        let empty = report_of(
            vec![Event {
                seq: 0,
                at_ms: 0,
                kind: EventKind::Stopping,
            }],
            &[],
        );
        for lane in [
            "phone-row",
            "output-row",
            "refused-row",
            "clock-row",
            "notice-row",
        ] {
            let row = format!(r#"class="row {lane}""#);
            assert_eq!(count(&empty, &row), 0, "{lane} without its events");
        }
        use espsim_emulator::events::{CheckVerdict, PhoneNetwork};
        let mut log = Log::default();
        let verdict = log.push(
            10,
            EventKind::PhoneVerdict {
                os: "android".to_owned(),
                url: "http://connectivitycheck.gstatic.com/generate_204".to_owned(),
                status: Some(204),
                error: None,
                verdict: CheckVerdict::Online,
            },
        );
        log.push(
            11,
            EventKind::PhoneRouting {
                default_network: PhoneNetwork::Wifi,
                app_network: PhoneNetwork::Cellular,
                device_subnet: PhoneNetwork::Wifi,
                app_dns: "10.0.0.53".to_owned(),
            },
        );
        let syn = log.push(
            20,
            EventKind::CellularConnection {
                proto: "tcp".to_owned(),
                from: peer(),
                to: std::net::SocketAddr::from(([127, 0, 0, 9], 443)),
            },
        );
        log.push(
            21,
            EventKind::CellularDns {
                name: "api.example".to_owned(),
                qtype: "A".to_owned(),
                answer: Some("127.0.0.9".to_owned()),
            },
        );
        let mut lines = Vec::new();
        for i in 0..5 {
            lines.push(log.push(
                100 + i,
                EventKind::AppOutput {
                    stream: "stdout".to_owned(),
                    line: format!("<b>line {i}</b>"),
                    truncated: false,
                },
            ));
        }
        let page = report_of(log.0, &[verdict, syn, lines[4]]);
        assert_eq!(count(&page, r#"class="row phone-row""#), 1);
        assert_eq!(count(&page, r#"<circle class="phone-verdict""#), 1);
        assert_eq!(count(&page, r#"<line class="phone-routing""#), 1);
        assert_eq!(count(&page, r#"<line class="cellular""#), 2);
        assert!(page.contains("phone (2 cellular)"));
        assert_eq!(count(&page, r#"<line class="output""#), 5);
        assert!(
            page.contains(&escaped("stdout: <b>line 4</b>")),
            "the line, escaped"
        );
        assert!(!page.contains("<b>line"), "never as markup");
        for s in [verdict, syn, lines[4]] {
            assert_eq!(highlighted_by(&page, s).len(), 1, "event {s}");
        }
    }

    #[test]
    fn app_output_floods_are_bounded_like_refusals() {
        let mut log = Log::default();
        let mut last = 0;
        for i in 0..20_000u64 {
            last = log.push(
                i,
                EventKind::AppOutput {
                    stream: "stderr".to_owned(),
                    line: "x".repeat(4_000),
                    truncated: true,
                },
            );
        }
        let page = report_of(log.0, &[last]);
        assert!(page.len() < MAX_REPORT_BYTES, "{} bytes", page.len());
        assert_eq!(count(&page, r#"<line class="output"#), 0);
        assert!(count(&page, r#"<rect class="bin"#) > 100);
        assert!(page.contains("app output (20000 lines)"));
        assert_eq!(highlighted_by(&page, last).len(), 1);
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(secs_short(2000), "2s");
        assert_eq!(secs_short(2500), "2.5s");
        assert_eq!(secs_short(-1500), "−1.5s");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(seq_list([3, 4]), "3 4");
    }
}
