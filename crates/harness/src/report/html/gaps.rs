//! Lanes of the intervals expectations measured (backoff gaps, silences, reconnect windows).

use super::shape::{Row, new_row, shape};
use crate::expect::{Outcome, secs};
use crate::report::layout::TimeScale;

/// For each expectation that measured intervals (backoff gaps, silences between pings, a
/// reconnect window), a lane with each interval drawn as a bracket and labelled.
pub(super) fn gap_rows(outcomes: &[Outcome], scale: &TimeScale) -> Vec<Row> {
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
