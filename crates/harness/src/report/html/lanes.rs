//! The timeline's lanes in order, placed one under the other.

use std::collections::HashSet;

use super::LANES;
use super::clock::clock_row;
use super::connections::connection_rows;
use super::device::device_row;
use super::faults::fault_rows;
use super::gaps::gap_rows;
use super::instants::{output_row, refused_row};
use super::notices::notice_rows;
use super::phone::phone_row;
use super::points::{dns_text, point_row, probe_text};
use super::shape::Row;
use crate::report::layout::TimeScale;
use crate::runner::RunResult;
use crate::scenario::Scenario;

/// Every lane, top to bottom: the run clock, notices, device, faults (one per rule), DNS,
/// connectivity checks, refused attempts, the phone, the app's output, one per connection, then
/// the intervals expectations measured (e.g. backoff gaps). Lanes with nothing to show for a
/// kind of event the run may not have (clock, notices, refused, phone, output) are left out.
pub(super) fn rows(
    result: &RunResult,
    scenario: &Scenario,
    scale: &TimeScale,
    end_ms: u64,
) -> Vec<Row> {
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
