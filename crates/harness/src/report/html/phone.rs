//! The simulated phone's lane: its verdicts, routing and cellular traffic.

use std::collections::HashSet;

use espsim_emulator::events::{Event, EventKind};

use super::LANES;
use super::instants::{Instant, draw_instants};
use super::shape::{Row, new_row, note_left_out, push_mark, shape};
use super::text::mode_name;
use crate::expect::secs;
use crate::report::layout::TimeScale;

/// The simulated phone: its OS's verdicts and routing (a mark each, they only come on change)
/// and the traffic that left it over cellular (bounded like the refused lane). Absent for a
/// run without a phone.
pub(super) fn phone_row(events: &[Event], scale: &TimeScale, cited: &HashSet<u64>) -> Option<Row> {
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
