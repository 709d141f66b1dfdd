//! Judging expectations: each one reads the folded log ([`Facts`]) and returns a verdict with
//! the evidence it used (times, connections, codes), so a failure explains itself.

use std::time::Duration;

use espsim_emulator::events::{Event, Side};
use espsim_faults::{DeviceFault, Fault, FaultRule, StreamFault, WsFault};
use serde::Serialize;

use super::facts::{Conn, Facts};
use super::{Expectation, describe, names};

/// Scheduling slack allowed on upper bounds (a timer that fires a few ms late is not a bug).
const SLACK_MS: u64 = 100;
/// Ratios between backoff gaps that differ by less than this are "the same": no jitter.
const JITTER_SPREAD: f64 = 1.03;

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
    fn since(self, since_ms: u64) -> Evidence {
        Evidence {
            since_ms: Some(since_ms),
            ..self
        }
    }
}

/// The event kinds a piece of evidence can be read from, for [`Facts::ev`].
const DNS: &[&str] = &["dns_query"];
const PROBE: &[&str] = &["connectivity_probe"];
const OPENED: &[&str] = &["ws_opened"];
const ACCEPTED: &[&str] = &["tcp_accepted"];
const PING: &[&str] = &["ws_control", "ws_message"];
const END: &[&str] = &["ws_closed", "tcp_closed", "lru_purged"];
const WS_CLOSED: &[&str] = &["ws_closed"];
const FAULT: &[&str] = &["fault_applied"];
const REACTION: &[&str] = &["ws_closed", "tcp_closed", "tcp_accepted"];
const MESSAGE: &[&str] = &["ws_message"];

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
    let facts = Facts::new(events);
    expect
        .iter()
        .zip(names(expect))
        .map(|(e, name)| {
            let Verdict {
                passed,
                message,
                evidence,
            } = judge(e, faults, &facts);
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

struct Verdict {
    passed: bool,
    message: String,
    evidence: Vec<Evidence>,
}

fn pass(message: String, evidence: Vec<Evidence>) -> Verdict {
    Verdict {
        passed: true,
        message,
        evidence,
    }
}

fn fail(message: String, evidence: Vec<Evidence>) -> Verdict {
    Verdict {
        passed: false,
        message,
        evidence,
    }
}

fn ev(at_ms: u64, conn: Option<u64>, note: impl Into<String>) -> Evidence {
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

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn judge(e: &Expectation, faults: &[FaultRule], f: &Facts) -> Verdict {
    match e {
        Expectation::Connected(c) => connected(f, ms(c.within)),
        Expectation::Reconnects(r) => {
            let window = match (&r.after, r.at) {
                (Some(name), _) => fault_window(name, faults, f),
                (None, Some(at)) => Ok((ms(at), ms(at))),
                (None, None) => Err("neither `after` nor `at` given".to_owned()),
            };
            match window {
                Ok((start, end)) => {
                    let mut v = reconnects(f, start, end, ms(r.within));
                    if let Some(name) = &r.after
                        && !v.passed
                        && !fired_by_name(name, faults, f)
                    {
                        v.message += &format!(" (fault `{name}` never fired)");
                    }
                    v
                }
                Err(message) => fail(message, Vec::new()),
            }
        }
        Expectation::Backoff(b) => backoff(f, b),
        Expectation::NoStorm(n) => no_storm(f, n.max, ms(n.window)),
        Expectation::Heartbeat(h) => heartbeat(f, ms(h.every), ms(h.tolerance.unwrap_or_default())),
        Expectation::DetectsDeadLink(w) => detects_dead_link(f, faults, ms(w.within)),
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

fn connected(f: &Facts, within: u64) -> Verdict {
    let attempts = f.attempts().count();
    match f.sessions().next() {
        Some(c) => {
            let at = c.ws_opened_ms.unwrap_or_default();
            let e = vec![f.ev(OPENED, at, Some(c.id), "ws_opened (first session)")];
            if at <= within + SLACK_MS {
                pass(format!("first session at {} (conn {})", secs(at), c.id), e)
            } else {
                fail(
                    format!(
                        "first session only at {}, after {} attempt(s)",
                        secs(at),
                        attempts
                    ),
                    e,
                )
            }
        }
        None => fail(
            format!("never connected ({attempts} attempt(s), none became a session)"),
            f.attempts()
                .take(5)
                .map(|c| f.ev(ACCEPTED, c.accepted_ms, Some(c.id), "attempt failed"))
                .collect(),
        ),
    }
}

/// Whether the rule named `name` fired at least once.
fn fired_by_name(name: &str, faults: &[FaultRule], f: &Facts) -> bool {
    faults
        .iter()
        .position(|r| r.name.as_deref() == Some(name))
        .is_some_and(|i| f.fired.iter().any(|x| x.rule == i as u64 + 1))
}

/// The (start, end) of the named fault's window, in ms: from its rule's `when` and parameters,
/// else from when it fired.
fn fault_window(name: &str, faults: &[FaultRule], f: &Facts) -> Result<(u64, u64), String> {
    let Some((index, rule)) = faults
        .iter()
        .enumerate()
        .find(|(_, r)| r.name.as_deref() == Some(name))
    else {
        return Err(format!("no fault is named `{name}`"));
    };
    let id = index as u64 + 1;
    let fired: Vec<u64> = f
        .fired
        .iter()
        .filter(|x| x.rule == id)
        .map(|x| x.at_ms)
        .collect();
    let timed = rule.when.after.is_none();
    let start = match (timed, rule.when.at, fired.first()) {
        (true, Some(at), _) => ms(at),
        (_, _, Some(first)) => *first,
        (true, None, None) if rule.when.duration.is_some() => 0,
        _ => return Err(format!("fault `{name}` never fired")),
    };
    let param = match &rule.fault {
        Fault::Device(DeviceFault::Reboot(r)) => Some(ms(r.down)),
        Fault::Device(DeviceFault::ApDown(a)) => Some(ms(a.duration)),
        _ => None,
    };
    let end = match (rule.when.duration, param) {
        (Some(d), _) => start + ms(d),
        (None, Some(p)) => start + p,
        (None, None) => match fired.last() {
            Some(last) => *last,
            None => return Err(format!("fault `{name}` never fired")),
        },
    };
    Ok((start, end))
}

fn reconnects(f: &Facts, start: u64, end: u64, within: u64) -> Verdict {
    let deadline = end + within;
    let mut evidence = vec![Evidence {
        at_ms: Some(end),
        conn: None,
        note: format!("reference point (window {}–{})", secs(start), secs(end)),
        since_ms: Some(start),
        events: Vec::new(),
    }];
    // A session opened after the trouble began, not gone again before the reference point.
    let found = f.sessions().find(|c| {
        let opened = c.ws_opened_ms.unwrap_or_default();
        opened >= start && opened <= deadline + SLACK_MS && c.ended_ms().is_none_or(|x| x >= end)
    });
    match found {
        Some(c) => {
            let opened = c.ws_opened_ms.unwrap_or_default();
            evidence.push(f.ev(OPENED, opened, Some(c.id), "ws_opened"));
            pass(
                format!(
                    "session at {} ({} after {})",
                    secs(opened),
                    secs(opened.saturating_sub(end)),
                    secs(end)
                ),
                evidence,
            )
        }
        None => {
            let later = f
                .sessions()
                .find(|c| c.ws_opened_ms.unwrap_or_default() > deadline);
            if let Some(c) = later {
                evidence.push(f.ev(
                    OPENED,
                    c.ws_opened_ms.unwrap_or_default(),
                    Some(c.id),
                    "ws_opened (too late)",
                ));
            }
            let tried = f.attempts().filter(|c| c.accepted_ms >= start).count();
            fail(
                format!(
                    "no session between {} and {} ({tried} attempt(s) since {})",
                    secs(start),
                    secs(deadline),
                    secs(start)
                ),
                evidence,
            )
        }
    }
}

/// Gaps (ms) between a failed attempt's end and the next attempt, grouped in runs of
/// consecutive failures; a session ends a run.
fn retry_runs(f: &Facts) -> Vec<Vec<(u64, &Conn)>> {
    let mut runs: Vec<Vec<(u64, &Conn)>> = Vec::new();
    let mut current: Vec<(u64, &Conn)> = Vec::new();
    let mut prev: Option<&Conn> = None;
    for c in f.attempts() {
        if let Some(p) = prev {
            if p.failed() {
                let from = p.ended_ms().unwrap_or(p.accepted_ms);
                current.push((c.accepted_ms.saturating_sub(from), c));
            } else if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
        }
        prev = Some(c);
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn backoff(f: &Facts, b: &super::Backoff) -> Verdict {
    let runs = retry_runs(f);
    let mut evidence: Vec<Evidence> = runs
        .iter()
        .flatten()
        .map(|(gap, c)| {
            f.ev(
                ACCEPTED,
                c.accepted_ms,
                Some(c.id),
                format!("retry after {}", secs(*gap)),
            )
            .since(c.accepted_ms.saturating_sub(*gap))
        })
        .collect();
    evidence.truncate(12);
    let gaps: Vec<String> = runs
        .iter()
        .map(|r| {
            r.iter()
                .map(|(g, _)| secs(*g))
                .collect::<Vec<_>>()
                .join(" → ")
        })
        .collect();
    let shown = gaps.join("; ");
    if runs.is_empty() {
        return fail(
            "no retry after a failed attempt: nothing to judge (the scenario must make attempts fail)"
                .to_owned(),
            evidence,
        );
    }
    if let Some(limit) = b.first_retry_within.map(ms)
        && let Some((gap, c)) = runs
            .iter()
            .filter_map(|r| r.first())
            .find(|(g, _)| *g > limit + SLACK_MS)
    {
        return fail(
            format!(
                "first retry after {} (conn {}), more than {} (gaps {shown})",
                secs(*gap),
                c.id,
                secs(limit)
            ),
            evidence,
        );
    }
    if let Some(max) = b.max.map(ms)
        && let Some((gap, c)) = runs.iter().flatten().find(|(g, _)| *g > max + SLACK_MS)
    {
        return fail(
            format!(
                "a retry waited {} (conn {}), more than the cap {} (gaps {shown})",
                secs(*gap),
                c.id,
                secs(max)
            ),
            evidence,
        );
    }
    // Growth, pair by pair, unless the earlier gap already sits at the cap: no gap shorter than
    // the one before, and ×min_factor per retry on average (the geometric mean of the ratios),
    // so that one gap a busy host stretched does not decide alone.
    let at_cap = |g: u64| b.max.map(ms).is_some_and(|m| g * 4 >= m * 3);
    let mut ratios = Vec::new();
    for run in &runs {
        for pair in run.windows(2) {
            let ((g1, _), (g2, c2)) = (pair[0], pair[1]);
            if at_cap(g1) {
                continue;
            }
            if g2 <= g1 {
                return fail(
                    format!(
                        "retry gap {} → {} (conn {}) does not grow (gaps {shown})",
                        secs(g1),
                        secs(g2),
                        c2.id
                    ),
                    evidence,
                );
            }
            ratios.push(g2 as f64 / g1.max(1) as f64);
        }
    }
    if ratios.is_empty() {
        return fail(
            format!(
                "fewer than 3 consecutive failed attempts: growth cannot be judged (gaps {shown})"
            ),
            evidence,
        );
    }
    let mean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    if mean < b.min_factor {
        return fail(
            format!(
                "gaps grow ×{mean:.2} per retry on average, less than ×{} (gaps {shown})",
                b.min_factor
            ),
            evidence,
        );
    }
    if b.jitter {
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        if ratios.len() < 2 {
            return fail(
                format!("jitter needs at least two growth ratios, saw one (gaps {shown})"),
                evidence,
            );
        }
        if hi / lo < JITTER_SPREAD {
            return fail(
                format!("every gap grows by the same ×{lo:.2}: no jitter (gaps {shown})"),
                evidence,
            );
        }
    }
    pass(format!("retry gaps {shown}"), evidence)
}

fn no_storm(f: &Facts, max: usize, window: u64) -> Verdict {
    let times: Vec<(u64, u64)> = f.attempts().map(|c| (c.accepted_ms, c.id)).collect();
    let mut worst = (0, 0);
    for (i, (t, _)) in times.iter().enumerate() {
        let n = times[i..]
            .iter()
            .take_while(|(u, _)| *u < t + window)
            .count();
        if n > worst.0 {
            worst = (n, i);
        }
    }
    let (n, i) = worst;
    let evidence = times
        .get(i)
        .map(|(t, c)| {
            vec![f.ev(
                ACCEPTED,
                *t,
                Some(*c),
                format!("{n} attempts from here within {}", secs(window)),
            )]
        })
        .unwrap_or_default();
    if n > max {
        fail(
            format!(
                "{n} attempts within {} from {} (at most {max} allowed)",
                secs(window),
                secs(times.get(i).map_or(0, |x| x.0))
            ),
            evidence,
        )
    } else {
        pass(
            format!(
                "at most {n} attempt(s) in any {} ({} in total)",
                secs(window),
                times.len()
            ),
            evidence,
        )
    }
}

fn heartbeat(f: &Facts, every: u64, tolerance: u64) -> Verdict {
    let upper = every + tolerance + SLACK_MS;
    let lower = every.saturating_sub(tolerance);
    let mut beats = 0;
    let mut evidence = Vec::new();
    let mut longest = 0;
    for s in f.sessions() {
        // The app's clock starts when it sees the `101`, which a slow downstream delays: at its
        // first frame, but no later than `tolerance` after the `101` (a late first frame, or a
        // close as the only one, must not hide a missing heartbeat).
        let opened = match (s.ws_opened_ms, s.first_in_ms) {
            (Some(open), Some(first)) => first.min(open + tolerance),
            (open, first) => open.or(first).unwrap_or_default(),
        };
        let end = s.ended_ms().unwrap_or(f.end_ms);
        longest = longest.max(end.saturating_sub(opened));
        beats += s.heartbeats.len();
        let mut prev = opened;
        for (i, &hb) in s.heartbeats.iter().enumerate() {
            let gap = hb.saturating_sub(prev);
            if gap > upper {
                return fail(
                    format!(
                        "{} without a ping on conn {} (until {})",
                        secs(gap),
                        s.id,
                        secs(hb)
                    ),
                    vec![
                        f.ev(
                            PING,
                            prev,
                            Some(s.id),
                            "last ping, or the app's first frame",
                        ),
                        f.ev(PING, hb, Some(s.id), "next ping").since(prev),
                    ],
                );
            }
            if i > 0 && gap < lower {
                return fail(
                    format!(
                        "pings only {} apart on conn {} (expected every {} ± {})",
                        secs(gap),
                        s.id,
                        secs(every),
                        secs(tolerance)
                    ),
                    vec![
                        f.ev(PING, prev, Some(s.id), "ping"),
                        f.ev(PING, hb, Some(s.id), "ping").since(prev),
                    ],
                );
            }
            prev = hb;
        }
        let tail = end.saturating_sub(prev);
        if tail > upper {
            return fail(
                format!(
                    "{} without a ping on conn {} (from {} until the session ended at {})",
                    secs(tail),
                    s.id,
                    secs(prev),
                    secs(end)
                ),
                vec![
                    f.ev(
                        PING,
                        prev,
                        Some(s.id),
                        "last ping, or the app's first frame",
                    ),
                    f.ev(END, end, Some(s.id), "session end").since(prev),
                ],
            );
        }
        if let Some(&first) = s.heartbeats.first() {
            evidence.push(f.ev(
                PING,
                first,
                Some(s.id),
                format!("{} ping(s) on this session", s.heartbeats.len()),
            ));
        }
    }
    if beats == 0 {
        return fail(
            format!(
                "no ping seen (longest session {}): nothing shows a heartbeat",
                secs(longest)
            ),
            evidence,
        );
    }
    pass(
        format!(
            "{beats} ping(s), never more than {} apart",
            secs(every + tolerance)
        ),
        evidence,
    )
}

/// Faults after which the link is dead without either side being told.
fn kills_link(fault: &Fault) -> bool {
    matches!(
        fault,
        Fault::Stream(StreamFault::HalfOpen | StreamFault::Timeout(_))
            | Fault::Ws(WsFault::SuppressPong(_))
    )
}

/// When a time-windowed rule (`at`/`for`, not `after`) stops acting, in ms.
fn rule_window_end(rule: u64, faults: &[FaultRule]) -> Option<u64> {
    let r = faults.get(usize::try_from(rule.checked_sub(1)?).ok()?)?;
    if r.when.after.is_some() {
        return None;
    }
    r.when
        .duration
        .map(|d| ms(r.when.at.unwrap_or_default() + d))
}

fn detects_dead_link(f: &Facts, faults: &[FaultRule], within: u64) -> Verdict {
    // (start, connection, when the fault stops acting by itself)
    let mut starts: Vec<(u64, Option<u64>, Option<u64>)> = Vec::new();
    for x in f
        .fired
        .iter()
        .filter(|x| x.fault.as_ref().is_some_and(kills_link))
    {
        if !starts.iter().any(|(_, c, _)| c.is_some() && *c == x.conn) {
            starts.push((x.at_ms, x.conn, rule_window_end(x.rule, faults)));
        }
    }
    if starts.is_empty() {
        return fail(
            "no half_open, timeout or suppress_pong fault fired: no dead link to detect".to_owned(),
            Vec::new(),
        );
    }
    let mut evidence = Vec::new();
    let mut judged = 0;
    for (start, conn, heals_at) in starts {
        let deadline = start + within + SLACK_MS;
        // A link that comes back by itself before the deadline need not be detected.
        let heals = heals_at.filter(|h| *h < start + within);
        let closed = conn.and_then(|id| f.conns.get(&id)).and_then(|c| {
            let by_client = c
                .ws_end
                .as_ref()
                .filter(|e| e.by == Side::Client)
                .map(|e| e.at_ms);
            let tcp = c.closed_ms.filter(|_| c.closed_by == Some(Side::Client));
            by_client.or(tcp)
        });
        let retried = f
            .attempts()
            .find(|c| {
                c.accepted_ms >= start && Some(c.id) != conn && conn.is_none_or(|id| c.id > id)
            })
            .map(|c| (c.accepted_ms, c.id));
        let reaction = match (closed, retried) {
            (Some(a), Some((b, _))) => Some(a.min(b)),
            (a, b) => a.or(b.map(|x| x.0)),
        };
        evidence.push(f.ev(FAULT, start, conn, "link went dead (fault fired)"));
        match reaction {
            Some(at) if at <= deadline => {
                judged += 1;
                evidence.push(f.ev(
                    REACTION,
                    at,
                    conn,
                    format!("client reacted after {}", secs(at - start)),
                ));
            }
            _ if heals.is_some() => {
                let back = heals.unwrap_or(start);
                evidence.push(ev(back, conn, "fault window ended: the link came back"));
            }
            Some(at) => {
                return fail(
                    format!(
                        "link dead from {} but the client reacted only after {}",
                        secs(start),
                        secs(at - start)
                    ),
                    evidence,
                );
            }
            None if deadline <= f.end_ms => {
                return fail(
                    format!(
                        "link dead from {}{}; the client neither closed nor reconnected within {} (run ended at {})",
                        secs(start),
                        conn.map(|c| format!(" on conn {c}")).unwrap_or_default(),
                        secs(within),
                        secs(f.end_ms)
                    ),
                    evidence,
                );
            }
            None => {}
        }
    }
    if judged == 0 {
        return fail(
            format!(
                "no dead link lasted long enough to judge: each came back or the run ended within {}",
                secs(within)
            ),
            evidence,
        );
    }
    pass(
        format!("{judged} dead link(s) detected within {}", secs(within)),
        evidence,
    )
}

fn closes_cleanly(f: &Facts, code: u16) -> Verdict {
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

fn sends(f: &Facts, message_type: &str, within: Option<u64>) -> Verdict {
    let mut first_late = None;
    for s in f.sessions() {
        let opened = s.ws_opened_ms.unwrap_or_default();
        if let Some((at, _)) = s.sent.iter().find(|(_, t)| t == message_type) {
            let dt = at.saturating_sub(opened);
            if within.is_none_or(|w| dt <= w + SLACK_MS) {
                return pass(
                    format!(
                        "`{message_type}` on conn {} {} after it opened",
                        s.id,
                        secs(dt)
                    ),
                    vec![
                        f.ev(OPENED, opened, Some(s.id), "ws_opened"),
                        f.ev(MESSAGE, *at, Some(s.id), format!("sent {message_type}")),
                    ],
                );
            }
            first_late.get_or_insert((*at, s.id, dt));
        }
    }
    match first_late {
        Some((at, conn, dt)) => fail(
            format!(
                "`{message_type}` sent only {} after its session opened",
                secs(dt)
            ),
            vec![f.ev(MESSAGE, at, Some(conn), format!("sent {message_type}"))],
        ),
        None => {
            let seen: Vec<String> = f
                .sessions()
                .flat_map(|s| s.sent.iter().map(|(_, t)| t.clone()))
                .take(8)
                .collect();
            fail(
                format!(
                    "`{message_type}` never sent (sent: {})",
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

fn sends_in_order(f: &Facts, types: &[String]) -> Verdict {
    let mut best = (0, None);
    for s in f.sessions() {
        let mut k = 0;
        let mut evidence = Vec::new();
        for (at, t) in &s.sent {
            if k < types.len() && *t == types[k] {
                evidence.push(f.ev(MESSAGE, *at, Some(s.id), format!("sent {t}")));
                k += 1;
            }
        }
        if k == types.len() {
            return pass(
                format!("{} in order on conn {}", types.join(" → "), s.id),
                evidence,
            );
        }
        if k >= best.0 {
            best = (
                k,
                Some((
                    s.id,
                    s.sent
                        .iter()
                        .map(|(_, t)| t.clone())
                        .take(10)
                        .collect::<Vec<_>>(),
                )),
            );
        }
    }
    match best {
        (k, Some((conn, sent))) => fail(
            format!(
                "no session sent {}; best: conn {conn} matched {k} (sent {})",
                types.join(" → "),
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

fn max_concurrent(f: &Facts, max: usize) -> Verdict {
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
