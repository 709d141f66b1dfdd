//! `connected` and `reconnects`: a session opens in time, measured on the run clock (from
//! `clock_started`), and fault windows placed on that clock.

use espsim_faults::{DeviceFault, Fault, FaultRule};

use super::Reconnects;
use super::eval::{ACCEPTED, Evidence, Judgement, OPENED, SLACK_MS, fail, pass, secs};
use super::facts::{Facts, ms};

/// The first session opens within `within` of the run clock's start.
pub(super) fn connected(f: &Facts, within: u64) -> Judgement {
    let attempts = f.all_attempts().len();
    match f.sessions().next() {
        Some(c) => {
            let at = c.ws_opened_ms.unwrap_or_default();
            let after = f.on_clock(at);
            let e = vec![f.ev(OPENED, at, Some(c.id), "ws_opened (first session)")];
            if after <= within + SLACK_MS {
                pass(
                    format!(
                        "first session {} after the clock started (conn {})",
                        secs(after),
                        c.id
                    ),
                    e,
                )
            } else {
                fail(
                    format!(
                        "first session only {} after the clock started, after {attempts} attempt(s)",
                        secs(after)
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

/// `reconnects { after | at, within }`.
pub(super) fn judge(f: &Facts, r: &Reconnects, faults: &[FaultRule]) -> Judgement {
    let window = match (&r.after, r.at) {
        (Some(name), _) => fault_window(name, faults, f),
        (None, Some(at)) => Ok((f.t0 + ms(at), f.t0 + ms(at))),
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

/// Whether the rule named `name` fired at least once.
fn fired_by_name(name: &str, faults: &[FaultRule], f: &Facts) -> bool {
    faults
        .iter()
        .position(|r| r.name.as_deref() == Some(name))
        .is_some_and(|i| f.fired.iter().any(|x| x.rule == i as u64 + 1))
}

/// The (start, end) of the named fault's window, in emulator ms: from its rule's `when` (placed
/// on the run clock) and parameters, else from when it fired.
pub(super) fn fault_window(
    name: &str,
    faults: &[FaultRule],
    f: &Facts,
) -> Result<(u64, u64), String> {
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
        (true, Some(at), _) => f.t0 + ms(at),
        (_, _, Some(first)) => *first,
        (true, None, None) if rule.when.duration.is_some() => f.t0,
        _ => return Err(format!("fault `{name}` never fired")),
    };
    let end = match (rule.when.duration, fault_length(&rule.fault)) {
        (Some(d), _) => start + ms(d),
        (None, Some(p)) => start + p,
        (None, None) => match fired.last() {
            Some(last) => *last,
            None => return Err(format!("fault `{name}` never fired")),
        },
    };
    Ok((start, end))
}

/// How long a device fault lasts by its own parameters (`reboot.down`, `ap_down.duration`), ms.
pub(super) fn fault_length(fault: &Fault) -> Option<u64> {
    match fault {
        Fault::Device(DeviceFault::Reboot(r)) => Some(ms(r.down)),
        Fault::Device(DeviceFault::ApDown(a)) => Some(ms(a.duration)),
        _ => None,
    }
}

/// When a time-windowed rule (`at`/`for`, not `after`) stops acting, in emulator ms.
pub(super) fn rule_window_end(rule: u64, faults: &[FaultRule], t0: u64) -> Option<u64> {
    let r = faults.get(usize::try_from(rule.checked_sub(1)?).ok()?)?;
    if r.when.after.is_some() {
        return None;
    }
    r.when
        .duration
        .map(|d| t0 + ms(r.when.at.unwrap_or_default() + d))
}

fn reconnects(f: &Facts, start: u64, end: u64, within: u64) -> Judgement {
    let deadline = end + within;
    let mut evidence = vec![Evidence {
        at_ms: Some(end),
        conn: None,
        note: format!(
            "reference point (window {}–{} after the clock started)",
            secs(f.on_clock(start)),
            secs(f.on_clock(end))
        ),
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
                    "session {} after the clock started ({} after {})",
                    secs(f.on_clock(opened)),
                    secs(opened.saturating_sub(end)),
                    secs(f.on_clock(end))
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
            let tried = f.attempts_since(start, None);
            let refused = tried.iter().filter(|a| a.conn.is_none()).count();
            fail(
                format!(
                    "no session between {} and {} on the run clock ({} attempt(s) since {}{})",
                    secs(f.on_clock(start)),
                    secs(f.on_clock(deadline)),
                    tried.len(),
                    secs(f.on_clock(start)),
                    if refused > 0 {
                        format!(", {refused} of them refused")
                    } else {
                        String::new()
                    }
                ),
                evidence,
            )
        }
    }
}
