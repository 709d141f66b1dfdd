//! One lane per fault rule: its active window and every time it fired.

use std::collections::BTreeMap;

use espsim_emulator::events::{Event, EventKind};
use espsim_faults::{DeviceFault, Fault};

use super::shape::{Row, new_row, note_left_out, push_mark, shape};
use super::text::ms;
use crate::expect::secs;
use crate::report::layout::TimeScale;
use crate::scenario::Scenario;

/// One lane per fault rule (the scenario's, plus any added at run time through the control
/// API): its active window and a marker for every `fault_applied`.
pub(super) fn fault_rows(events: &[Event], scenario: &Scenario, scale: &TimeScale) -> Vec<Row> {
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
