//! Lanes that can hold many instants (refused attempts, app output): a tick each, or bars
//! with counts past [`MAX_TICKS`].

use std::collections::{BTreeMap, HashSet};

use espsim_emulator::events::{Event, EventKind};

use super::shape::{Row, new_row, shape};
use super::text::clip;
use super::{BUCKET_PX, MAX_LINE_CHARS, MAX_TICKS};
use crate::expect::secs;
use crate::report::layout::TimeScale;

/// One instant of a lane that can hold many: when, its event, its CSS class and hover text.
pub(super) struct Instant {
    pub(super) at: u64,
    pub(super) seq: u64,
    pub(super) class: &'static str,
    pub(super) text: String,
}

/// Draws `items` into `row` (y from 3 to 19): a tick each when there are at most
/// [`MAX_TICKS`], otherwise one bar per [`BUCKET_PX`] of time axis, as tall as its count
/// relative to the fullest bucket, its count and time span in the tooltip. A bar's `data-seq`
/// lists those of its events some evidence cites, so highlighting evidence lights it up.
pub(super) fn draw_instants(
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
pub(super) fn refused_row(
    events: &[Event],
    scale: &TimeScale,
    cited: &HashSet<u64>,
) -> Option<Row> {
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

/// The lines the app printed (what `tells_user` reads): a tick each, the line in its tooltip,
/// bounded like the refused lane. Absent when the app printed nothing.
pub(super) fn output_row(events: &[Event], scale: &TimeScale, cited: &HashSet<u64>) -> Option<Row> {
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
