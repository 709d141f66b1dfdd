//! One lane per TCP connection, folded from its events.

use std::collections::BTreeMap;

use espsim_emulator::events::{Event, EventKind};

use super::shape::{Row, Shape, new_row, note_left_out, shape, tick};
use super::text::side;
use super::{CLOSE_LABEL_ROOM, LANES, MAX_CONN_LANES, MAX_MARKS_PER_LANE};
use crate::expect::{conn_of, secs};
use crate::report::layout::TimeScale;

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
pub(super) fn connection_rows(events: &[Event], scale: &TimeScale, end_ms: u64) -> Vec<Row> {
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
            preview,
            ..
        } => {
            let t = msg_type.as_deref().unwrap_or("(no label)");
            Some(tick("msg", *direction, t == "ping", x, mid, |arrow| {
                format!("{} {arrow}: {t} ({bytes} B) {preview}", secs(at))
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
