//! Judging expectations: each one reads the folded log ([`Facts`]) and returns a verdict with
//! the evidence it used (times, connections, codes), so a failure explains itself.

use espsim_emulator::events::{Event, Side};
use espsim_faults::{FaultRule, MessageMatch};
use serde::Serialize;

use super::facts::{Facts, Matcher, Sent, ms};
use super::{
    Expectation, backoff, dead_link, describe, heartbeat, names, reconnects, tells_user,
    watched_messages,
};

/// Scheduling slack allowed on upper bounds (a timer that fires a few ms late is not a bug).
pub(super) const SLACK_MS: u64 = 100;

/// One fact an expectation relied on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// When, in ms since the emulator started, if it is about a moment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// The connection, if it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn: Option<u64>,
    /// What was seen.
    pub note: String,
    /// When the interval this fact measures began (a retry gap, a silence between pings), in ms:
    /// the interval runs from here to `at_ms`, so a report can draw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// The events this fact was read from, by their `seq` in the event log (empty for a derived
    /// moment such as a fault window's end), so a report can point at them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<u64>,
}

impl Evidence {
    /// The same fact, measuring the interval that began at `since_ms`.
    pub(super) fn since(self, since_ms: u64) -> Evidence {
        Evidence {
            since_ms: Some(since_ms),
            ..self
        }
    }
}

/// The event kinds a piece of evidence can be read from, for [`Facts::ev`].
pub(super) const DNS: &[&str] = &["dns_query"];
pub(super) const PROBE: &[&str] = &["connectivity_probe"];
pub(super) const OPENED: &[&str] = &["ws_opened"];
pub(super) const ACCEPTED: &[&str] = &["tcp_accepted"];
pub(super) const PING: &[&str] = &["ws_control", "ws_message"];
pub(super) const END: &[&str] = &["ws_closed", "tcp_closed", "lru_purged"];
pub(super) const WS_CLOSED: &[&str] = &["ws_closed"];
pub(super) const FAULT: &[&str] = &["fault_applied"];
pub(super) const REACTION: &[&str] = &["ws_closed", "tcp_closed", "tcp_accepted", "tcp_refused"];
pub(super) const REFUSED: &[&str] = &["tcp_refused"];
pub(super) const ABANDONED: &[&str] = &["tcp_abandoned"];
pub(super) const MESSAGE: &[&str] = &["ws_message"];

/// The verdict on one expectation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Its stable name (the key, `#2`… for repeats), as `catches:` refers to it.
    pub name: String,
    /// Its parameters in words, e.g. `within 5s`.
    pub parameters: String,
    /// Whether it held.
    pub passed: bool,
    /// One line: why it passed or failed.
    pub message: String,
    /// The facts behind the verdict.
    pub evidence: Vec<Evidence>,
}

/// Judges every expectation over `events`. `faults` are the scenario's rules (rule id = index + 1),
/// used to find named faults and their windows.
pub fn evaluate(expect: &[Expectation], faults: &[FaultRule], events: &[Event]) -> Vec<Outcome> {
    let facts = Facts::watching(events, watched_messages(expect));
    expect
        .iter()
        .zip(names(expect))
        .map(|(e, name)| {
            let Judgement {
                passed,
                message,
                evidence,
            } = judge(e, expect, faults, &facts);
            Outcome {
                name,
                parameters: describe(e),
                passed,
                message,
                evidence,
            }
        })
        .collect()
}

/// A judge's verdict before it is named.
pub(super) struct Judgement {
    pub(super) passed: bool,
    pub(super) message: String,
    pub(super) evidence: Vec<Evidence>,
}

pub(super) fn pass(message: String, evidence: Vec<Evidence>) -> Judgement {
    Judgement {
        passed: true,
        message,
        evidence,
    }
}

pub(super) fn fail(message: String, evidence: Vec<Evidence>) -> Judgement {
    Judgement {
        passed: false,
        message,
        evidence,
    }
}

pub(super) fn ev(at_ms: u64, conn: Option<u64>, note: impl Into<String>) -> Evidence {
    Evidence {
        at_ms: Some(at_ms),
        conn,
        note: note.into(),
        since_ms: None,
        events: Vec::new(),
    }
}

/// `1.234s`.
pub(crate) fn secs(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// The app-level heartbeat message a scenario names (its `heartbeat` expectation's `message`),
/// else that expectation's default (`ping`).
fn heartbeat_message(all: &[Expectation]) -> MessageMatch {
    all.iter()
        .find_map(|e| match e {
            Expectation::Heartbeat(h) => Some(h.message.clone()),
            _ => None,
        })
        .unwrap_or_else(super::default_heartbeat_message)
}

fn judge(e: &Expectation, all: &[Expectation], faults: &[FaultRule], f: &Facts) -> Judgement {
    match e {
        Expectation::Connected(c) => reconnects::connected(f, ms(c.within)),
        Expectation::Reconnects(r) => reconnects::judge(f, r, faults),
        Expectation::Backoff(b) => backoff::judge(f, b, faults),
        Expectation::NoStorm(n) => no_storm(f, n.max, ms(n.window)),
        Expectation::Heartbeat(h) => heartbeat::judge(f, h),
        Expectation::DetectsDeadLink(w) => {
            dead_link::judge(f, faults, ms(w.within), &heartbeat_message(all))
        }
        Expectation::ClosesCleanly(c) => closes_cleanly(f, c.code),
        Expectation::Sends(s) => sends(f, &s.message_type, s.within.map(ms)),
        Expectation::SendsInOrder(types) => sends_in_order(f, types),
        Expectation::MaxConcurrentConnections(m) => max_concurrent(f, m.max),
        Expectation::DnsQueried(q) => match f.dns.iter().find(|(_, name)| q.name.matches(name)) {
            Some((at, name)) => pass(
                format!("`{name}` queried at {}", secs(*at)),
                vec![f.ev(DNS, *at, None, format!("dns_query {name}"))],
            ),
            None => fail(
                format!(
                    "no query matched `{}` ({} queries seen)",
                    q.name.as_str(),
                    f.dns.len()
                ),
                f.dns
                    .iter()
                    .take(5)
                    .map(|(at, n)| f.ev(DNS, *at, None, format!("dns_query {n}")))
                    .collect(),
            ),
        },
        Expectation::TellsUser(t) => tells_user::judge(f, &t.pattern, ms(t.within)),
        Expectation::Probed(p) => {
            match f
                .probes
                .iter()
                .find(|(_, os, _)| os.eq_ignore_ascii_case(&p.os))
            {
                Some((at, os, verdict)) => pass(
                    format!(
                        "{os} connectivity check at {}, concluded {verdict}",
                        secs(*at)
                    ),
                    vec![f.ev(
                        PROBE,
                        *at,
                        None,
                        format!("connectivity_probe {os} → {verdict}"),
                    )],
                ),
                None => fail(
                    format!(
                        "no {} connectivity check seen ({} from other OSes)",
                        p.os,
                        f.probes.len()
                    ),
                    Vec::new(),
                ),
            }
        }
    }
}

/// Most attempts (connections, refused SYNs and abandoned connections alike) in any sliding
/// window. A log that says refused attempts went unseen cannot show a storm's absence.
fn no_storm(f: &Facts, max: usize, window: u64) -> Judgement {
    if let Some((service, reason)) = f.refused_unobserved.first() {
        return fail(
            format!(
                "cannot judge: refused attempts on {service} were not observed, so a storm could hide in them ({reason})"
            ),
            Vec::new(),
        );
    }
    let attempts = f.all_attempts();
    let mut worst = (0, 0);
    for (i, a) in attempts.iter().enumerate() {
        let n = attempts[i..]
            .iter()
            .take_while(|b| b.at_ms < a.at_ms + window)
            .count();
        if n > worst.0 {
            worst = (n, i);
        }
    }
    let (n, i) = worst;
    let refused = attempts.iter().filter(|a| a.conn.is_none()).count();
    let evidence = attempts
        .get(i)
        .map(|a| {
            let kinds = if a.conn.is_some() { ACCEPTED } else { REFUSED };
            vec![f.ev(
                kinds,
                a.at_ms,
                a.conn,
                format!("{n} attempts from here within {}", secs(window)),
            )]
        })
        .unwrap_or_default();
    let total = if refused > 0 {
        format!("{} in total, {refused} of them refused", attempts.len())
    } else {
        format!("{} in total", attempts.len())
    };
    if n > max {
        fail(
            format!(
                "{n} attempts within {} from {} (at most {max} allowed; {total})",
                secs(window),
                secs(attempts.get(i).map_or(0, |a| a.at_ms)),
            ),
            evidence,
        )
    } else {
        pass(
            format!("at most {n} attempt(s) in any {} ({total})", secs(window)),
            evidence,
        )
    }
}

fn closes_cleanly(f: &Facts, code: u16) -> Judgement {
    let Some(last) = f.last_session() else {
        return fail(
            "never connected: no session to close".to_owned(),
            Vec::new(),
        );
    };
    let conn = Some(last.id);
    match &last.ws_end {
        Some(end) if end.by == Side::Client && end.code == Some(code) && end.clean => pass(
            format!(
                "client closed conn {} with {code} at {}",
                last.id,
                secs(end.at_ms)
            ),
            vec![f.ev(
                WS_CLOSED,
                end.at_ms,
                conn,
                format!("ws_closed by client, code {code}, clean"),
            )],
        ),
        Some(end) => {
            let by = match end.by {
                Side::Client => "client",
                Side::Device => "device",
            };
            let code_text = end
                .code
                .map_or_else(|| "no close frame".to_owned(), |c| format!("code {c}"));
            fail(
                format!(
                    "last session (conn {}) ended by the {by} with {code_text}{}, expected the client to close with {code}",
                    last.id,
                    if end.clean { "" } else { ", not clean" }
                ),
                vec![f.ev(
                    WS_CLOSED,
                    end.at_ms,
                    conn,
                    format!("ws_closed by {by}, {code_text}"),
                )],
            )
        }
        None => {
            let at = last.ended_ms();
            fail(
                format!(
                    "last session (conn {}) ended without a close frame{}",
                    last.id,
                    at.map(|a| format!(" at {}", secs(a))).unwrap_or_default()
                ),
                at.map(|a| vec![f.ev(END, a, conn, "connection gone without a close")])
                    .unwrap_or_default(),
            )
        }
    }
}

fn sends(f: &Facts, message: &MessageMatch, within: Option<u64>) -> Judgement {
    let message = f.matcher(message);
    let mut first_late = None;
    for s in f.sessions() {
        let opened = s.ws_opened_ms.unwrap_or_default();
        if let Some(sent) = s.sent.iter().find(|sent| message.meets(sent)) {
            let dt = sent.at.saturating_sub(opened);
            if within.is_none_or(|w| dt <= w + SLACK_MS) {
                return pass(
                    format!("`{message}` on conn {} {} after it opened", s.id, secs(dt)),
                    vec![
                        f.ev(OPENED, opened, Some(s.id), "ws_opened"),
                        f.ev(
                            MESSAGE,
                            sent.at,
                            Some(s.id),
                            format!("sent {}", sent.shown()),
                        ),
                    ],
                );
            }
            first_late.get_or_insert((sent, s.id, dt));
        }
    }
    match first_late {
        Some((sent, conn, dt)) => fail(
            format!(
                "`{message}` sent only {} after its session opened",
                secs(dt)
            ),
            vec![f.ev(
                MESSAGE,
                sent.at,
                Some(conn),
                format!("sent {}", sent.shown()),
            )],
        ),
        None => {
            let seen: Vec<&str> = f
                .sessions()
                .flat_map(|s| s.sent.iter().map(Sent::shown))
                .take(8)
                .collect();
            fail(
                format!(
                    "`{message}` never sent (sent: {})",
                    if seen.is_empty() {
                        "nothing".to_owned()
                    } else {
                        seen.join(", ")
                    }
                ),
                Vec::new(),
            )
        }
    }
}

fn sends_in_order(f: &Facts, messages: &[MessageMatch]) -> Judgement {
    let matchers: Vec<Matcher<'_>> = messages.iter().map(|m| f.matcher(m)).collect();
    let order = matchers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ");
    let mut best = (0, None);
    for s in f.sessions() {
        let mut k = 0;
        let mut evidence = Vec::new();
        for sent in &s.sent {
            if matchers.get(k).is_some_and(|m| m.meets(sent)) {
                evidence.push(f.ev(
                    MESSAGE,
                    sent.at,
                    Some(s.id),
                    format!("sent {}", sent.shown()),
                ));
                k += 1;
            }
        }
        if k == matchers.len() {
            return pass(format!("{order} in order on conn {}", s.id), evidence);
        }
        if k >= best.0 {
            let sent: Vec<&str> = s.sent.iter().map(Sent::shown).take(10).collect();
            best = (k, Some((s.id, sent)));
        }
    }
    match best {
        (k, Some((conn, sent))) => fail(
            format!(
                "no session sent {order}; best: conn {conn} matched {k} (sent {})",
                if sent.is_empty() {
                    "nothing".to_owned()
                } else {
                    sent.join(", ")
                }
            ),
            Vec::new(),
        ),
        _ => fail("never connected: nothing was sent".to_owned(), Vec::new()),
    }
}

fn max_concurrent(f: &Facts, max: usize) -> Judgement {
    let mut points: Vec<(u64, i8, u64)> = Vec::new();
    for c in f.conns.values() {
        points.push((c.accepted_ms, 1, c.id));
        points.push((c.ended_ms().unwrap_or(f.end_ms), -1, c.id));
    }
    // Closes before opens at the same millisecond: a replaced connection is not concurrent.
    points.sort_by_key(|(t, d, id)| (*t, *d, *id));
    let (mut open, mut peak, mut peak_at) = (0i64, 0i64, (0, 0));
    for (t, d, id) in points {
        open += i64::from(d);
        if open > peak {
            peak = open;
            peak_at = (t, id);
        }
    }
    let peak = usize::try_from(peak).unwrap_or_default();
    let evidence = vec![f.ev(
        ACCEPTED,
        peak_at.0,
        Some(peak_at.1),
        format!("{peak} connection(s) open"),
    )];
    if peak > max {
        fail(
            format!(
                "{peak} connections open at once at {} (at most {max})",
                secs(peak_at.0)
            ),
            evidence,
        )
    } else {
        pass(format!("at most {peak} open at once"), evidence)
    }
}
