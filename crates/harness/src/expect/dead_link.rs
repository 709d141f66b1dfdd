//! `detects_dead_link`: after a fault silences a link, the client notices (closes the
//! connection or tries again) within `within`.
//!
//! What arms it, and what each fault silences:
//!
//! | fault                            | from                          | silences              |
//! |----------------------------------|-------------------------------|-----------------------|
//! | `device: ap_down`                | its start, every open session | ping frames, messages |
//! | `stream: half_open` / `timeout`  | when it hit the connection    | ping frames, messages |
//! | `ws: drop` (direction `out`)     | its first drop on the conn    | messages              |
//! | `ws: suppress_pong`              | its first swallowed pong      | ping frames           |
//! | `ws: suppress_pong, messages: P` | its first swallowed pong      | ping frames, messages |
//!
//! A `ws:` rule placed only in time (`when: { at, for }`, counted from the run clock) also arms
//! every session open at its window's start, from that start, as `ap_down` does: it silences
//! them whether or not the app sends anything it could swallow, so an app that never pings is
//! judged (and fails) rather than told that nothing silenced a link. A connection counts once,
//! from the earliest moment a fault silenced it. Times in messages are on the run clock.
//!
//! A connection is judged only if the fault silences the heartbeat the app keeps on it, as the
//! log shows it (ping frames, messages matching the scenario's heartbeat `message`, default
//! `ping`); an app with no heartbeat at all is judged on any of them (it must notice some other
//! way). Detection: a WebSocket close or TCP close by the client, or a new attempt (refused SYNs
//! included), within `within`. A link that comes back by itself (the fault's window ends) before
//! the deadline need not be detected.

use espsim_emulator::events::{ConnId, Side};
use espsim_faults::{
    DeviceFault, Fault, FaultRule, MessageDirection, MessageMatch, StreamFault, When, WsFault,
};

use super::eval::{Evidence, FAULT, Judgement, REACTION, SLACK_MS, ev, fail, pass, secs};
use super::facts::{Facts, HeartbeatKind, ms};
use super::reconnects::{fault_length, rule_window_end};

/// The faults that arm `detects_dead_link`, as messages list them.
pub(super) const ARMING_FAULTS: &str = "`{ device: ap_down }`, `{ stream: half_open }`, `{ stream: timeout }`, `{ ws: drop, direction: out }`, `{ ws: suppress_pong }`";

/// What a fault silences: the replies to ping frames, to heartbeat messages, or both.
fn silences(fault: &Fault) -> Option<HeartbeatKind> {
    let both = HeartbeatKind {
        frames: true,
        messages: true,
    };
    match fault {
        Fault::Device(DeviceFault::ApDown(_))
        | Fault::Stream(StreamFault::HalfOpen | StreamFault::Timeout(_)) => Some(both),
        Fault::Ws(WsFault::Drop(p)) if p.direction == MessageDirection::Out => {
            Some(HeartbeatKind {
                frames: false,
                messages: true,
            })
        }
        Fault::Ws(WsFault::SuppressPong(s)) => Some(HeartbeatKind {
            frames: true,
            messages: s.messages.is_some(),
        }),
        _ => None,
    }
}

/// One connection the link went dead on.
struct Armed {
    start: u64,
    conn: ConnId,
    silenced: HeartbeatKind,
    /// When the fault stops acting by itself, if it does.
    heals_at: Option<u64>,
    what: String,
}

/// Every (connection, first moment) a silencing fault hit: where it fired, and for a
/// time-windowed WebSocket rule also from its window's start on every session open then.
fn armed(f: &Facts, faults: &[FaultRule]) -> Vec<Armed> {
    let mut found: Vec<Armed> = Vec::new();
    for x in &f.fired {
        let Some(fault) = &x.fault else { continue };
        let Some(silenced) = silences(fault) else {
            continue;
        };
        let heals_at = rule_window_end(x.rule, faults, f.t0)
            .or_else(|| fault_length(fault).map(|d| x.at_ms + d));
        let conns = match x.conn {
            Some(c) => vec![c],
            // A device-wide fault (ap_down): every session open when it starts.
            None => open_sessions(f, x.at_ms),
        };
        found.extend(conns.into_iter().map(|conn| Armed {
            start: x.at_ms,
            conn,
            silenced,
            heals_at,
            what: fault_name(fault),
        }));
    }
    found.extend(window_armed(f, faults));
    // Each connection once, from the earliest moment a fault silenced it.
    found.sort_by_key(|a| (a.start, a.conn));
    let mut out: Vec<Armed> = Vec::new();
    for a in found {
        if !out.iter().any(|o| o.conn == a.conn) {
            out.push(a);
        }
    }
    out
}

/// Sessions open (upgraded, not ended) at `at`.
fn open_sessions(f: &Facts, at: u64) -> Vec<ConnId> {
    f.sessions()
        .filter(|s| s.ws_opened_ms.is_some_and(|o| o <= at) && s.ended_ms().is_none_or(|e| e > at))
        .map(|s| s.id)
        .collect()
}

/// Sessions silenced by a time-windowed WebSocket rule (`when: { at, for }` on the run clock,
/// nothing else that picks connections or messages) from its window's start: the rule silences
/// every open session from then, whether or not the app sends anything it could swallow (an app
/// that never pings never makes `suppress_pong` fire). Stream faults are decided when a
/// connection is accepted, so their windows do not reach sessions already open.
fn window_armed(f: &Facts, faults: &[FaultRule]) -> Vec<Armed> {
    let mut out = Vec::new();
    for (index, rule) in faults.iter().enumerate() {
        let Fault::Ws(_) = rule.fault else { continue };
        let Some(silenced) = silences(&rule.fault) else {
            continue;
        };
        let w = &rule.when;
        let timed = w.at.is_some() || w.duration.is_some();
        let only_time = When {
            at: None,
            duration: None,
            service: None,
            ..w.clone()
        } == When::default();
        if !timed || !only_time {
            continue;
        }
        let start = f.t0 + ms(w.at.unwrap_or_default());
        if start > f.end_ms {
            continue;
        }
        let heals_at = rule_window_end(index as u64 + 1, faults, f.t0);
        out.extend(open_sessions(f, start).into_iter().map(|conn| Armed {
            start,
            conn,
            silenced,
            heals_at,
            what: fault_name(&rule.fault),
        }));
    }
    out
}

fn fault_name(fault: &Fault) -> String {
    fault.to_string()
}

/// `detects_dead_link { within }`; `message` is the app's heartbeat message.
pub(super) fn judge(
    f: &Facts,
    faults: &[FaultRule],
    within: u64,
    message: &MessageMatch,
) -> Judgement {
    let message = f.matcher(message);
    let armed = armed(f, faults);
    if armed.is_empty() {
        return fail(
            format!(
                "no fault silenced a link: no dead link to detect (it is armed by {ARMING_FAULTS} hitting an open connection)"
            ),
            Vec::new(),
        );
    }
    let mut evidence = Vec::new();
    let mut judged = 0;
    let mut skipped = 0;
    for a in armed {
        let conn = f.conns.get(&a.conn);
        let kind = conn.map(|c| c.heartbeat_kind(message)).unwrap_or_default();
        let uses_none = !kind.frames && !kind.messages;
        let hit = (kind.frames && a.silenced.frames) || (kind.messages && a.silenced.messages);
        if !(uses_none || hit) {
            skipped += 1;
            evidence.push(f.ev(
                FAULT,
                a.start,
                Some(a.conn),
                format!(
                    "{} does not silence this app's heartbeat ({}): not judged",
                    a.what,
                    if kind.frames {
                        "ping frames"
                    } else {
                        "`ping` messages"
                    }
                ),
            ));
            continue;
        }
        let deadline = a.start + within + SLACK_MS;
        // A link that comes back by itself before the deadline need not be detected.
        let heals = a.heals_at.filter(|h| *h < a.start + within);
        let closed = conn.and_then(|c| {
            let by_client = c
                .ws_end
                .as_ref()
                .filter(|e| e.by == Side::Client)
                .map(|e| e.at_ms);
            let tcp = c.closed_ms.filter(|_| c.closed_by == Some(Side::Client));
            by_client.or(tcp)
        });
        let retried = f
            .attempts_since(a.start, Some(a.conn))
            .into_iter()
            .find(|x| x.conn.is_none_or(|id| id > a.conn))
            .map(|x| x.at_ms);
        let reaction = match (closed, retried) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        evidence.push(f.ev(
            FAULT,
            a.start,
            Some(a.conn),
            format!(
                "link went dead ({}, {} after the clock started)",
                a.what,
                secs(f.on_clock(a.start))
            ),
        ));
        match reaction {
            Some(at) if at <= deadline => {
                judged += 1;
                evidence.push(f.ev(
                    REACTION,
                    at,
                    None,
                    format!("client reacted after {}", secs(at - a.start)),
                ));
            }
            _ if heals.is_some() => {
                let back = heals.unwrap_or(a.start);
                evidence.push(ev(
                    back,
                    Some(a.conn),
                    "fault window ended: the link came back",
                ));
            }
            Some(at) => {
                return fail(
                    format!(
                        "link dead from {} on conn {} ({}) but the client reacted only after {}",
                        secs(f.on_clock(a.start)),
                        a.conn,
                        a.what,
                        secs(at - a.start)
                    ),
                    evidence,
                );
            }
            None if deadline <= f.end_ms => {
                return fail(
                    format!(
                        "link dead from {} on conn {} ({}); the client neither closed nor reconnected within {} (run ended at {})",
                        secs(f.on_clock(a.start)),
                        a.conn,
                        a.what,
                        secs(within),
                        secs(f.on_clock(f.end_ms))
                    ),
                    evidence,
                );
            }
            None => evidence.push(Evidence {
                note: "the run ended before the deadline".to_owned(),
                ..ev(f.end_ms, Some(a.conn), "")
            }),
        }
    }
    if judged == 0 {
        let why = if skipped > 0 {
            format!(
                "{skipped} silencing fault(s) hit a heartbeat they do not silence; the others came back or the run ended within {}",
                secs(within)
            )
        } else {
            format!("each came back or the run ended within {}", secs(within))
        };
        return fail(
            format!("no dead link lasted long enough to judge: {why}"),
            evidence,
        );
    }
    pass(
        format!("{judged} dead link(s) detected within {}", secs(within)),
        evidence,
    )
}
