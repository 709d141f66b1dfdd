//! Banners for what the event log misses (refused attempts it could not count).

use espsim_emulator::events::{Event, EventKind};

use super::shape::{Row, new_row, shape};
use super::text::clip;
use super::{LABEL_WIDTH, MAX_CONN_LANES};
use crate::expect::secs;
use crate::report::layout::TimeScale;

pub(super) fn unobserved_text(service: &str, reason: &str) -> String {
    format!("refused attempts ({service}) are not counted in this run: {reason}")
}

/// A banner lane per `refused_unobserved`: the log misses refused attempts, and why.
pub(super) fn notice_rows(events: &[Event], scale: &TimeScale) -> Vec<Row> {
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
