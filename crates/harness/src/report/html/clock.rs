//! The run clock: where its zero is in the event log, and its lane.

use espsim_emulator::events::{Event, EventKind};

use super::shape::{Row, new_row, shape};
use super::text::clip;
use super::{CLOSE_LABEL_ROOM, LANES};
use crate::expect::secs;
use crate::report::layout::TimeScale;

/// The first `clock_started` of the log: the run clock's zero.
pub(super) struct ClockStart {
    pub(super) at_ms: u64,
    pub(super) seq: u64,
    pub(super) reason: String,
}

pub(super) fn clock_started(events: &[Event]) -> Option<ClockStart> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::ClockStarted { reason } => Some(ClockStart {
            at_ms: e.at_ms,
            seq: e.seq,
            reason: reason.clone(),
        }),
        _ => None,
    })
}

/// The run clock's lane: where its zero is and what started it (the line across every lane is
/// drawn by the page, from [`ClockView`](super::ClockView)).
pub(super) fn clock_row(events: &[Event], scale: &TimeScale) -> Option<Row> {
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
