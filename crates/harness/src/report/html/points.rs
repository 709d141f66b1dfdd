//! Lanes of instants with a tick each: DNS queries and connectivity checks.

use espsim_emulator::events::{Event, EventKind};

use super::shape::{Row, new_row, note_left_out, push_mark, shape};
use super::text::mode_name;
use crate::expect::secs;
use crate::report::layout::TimeScale;

/// A lane of instants (DNS, connectivity checks): a tick for every event `text` describes.
pub(super) fn point_row(
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

pub(super) fn dns_text(kind: &EventKind) -> Option<(String, bool)> {
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

pub(super) fn probe_text(kind: &EventKind) -> Option<(String, bool)> {
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
