//! The device's lane: internet mode over time and device actions.

use espsim_emulator::events::{Event, EventKind};

use super::LANES;
use super::shape::{Row, new_row, shape};
use super::text::mode_name;
use crate::expect::secs;
use crate::report::layout::TimeScale;

/// The device: internet mode over time, device actions (reboot, AP down), start and stop.
pub(super) fn device_row(events: &[Event], scale: &TimeScale, end_ms: u64) -> Row {
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
