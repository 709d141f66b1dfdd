//! The plan's mutable state and the matching engine: which rule fires for an occurrence, and
//! the time window each rule is active in.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::rng::{Occasion, draw, tag};
use super::{Applied, ConnRef, FaultRule, RuleId};
use crate::fault::Fault;
use crate::message::SeenMessage;
use crate::when::{Service, When};

pub(super) struct RuleState {
    pub(super) id: RuleId,
    pub(super) rule: FaultRule,
    /// Matching occurrences seen, for `every`.
    pub(super) occurrences: u64,
    /// Probability draws made for occasions without a connection (DNS queries): the n-th draw
    /// of this rule is keyed by n.
    pub(super) draws: u64,
}

impl RuleState {
    pub(super) fn new(id: RuleId, rule: FaultRule) -> Self {
        RuleState {
            id,
            rule,
            occurrences: 0,
            draws: 0,
        }
    }
}

pub(super) struct State {
    pub(super) rules: Vec<RuleState>,
    pub(super) next_id: u64,
    /// The run's seed, the key of every random draw.
    pub(super) seed: u64,
    /// First time each event was observed.
    pub(super) observed: HashMap<String, Duration>,
    /// (rule, connection) pairs whose once-per-connection action already fired.
    pub(super) fired: HashSet<(RuleId, ConnRef)>,
    /// When the run clock started (time since the emulator started); `None` while deferred.
    pub(super) clock_origin: Option<Duration>,
}

/// Internal matching context: what is known about the occurrence being decided.
#[derive(Default)]
pub(super) struct Ctx<'a> {
    pub(super) elapsed: Duration,
    /// What a probability draw is keyed by; `None`: the rule's n-th draw (DNS queries).
    pub(super) occasion: Option<Occasion>,
    pub(super) conn: Option<ConnRef>,
    pub(super) service: Option<Service>,
    pub(super) messages: Option<u64>,
    pub(super) bytes: Option<u64>,
    pub(super) name: Option<&'a str>,
    pub(super) qtype: Option<&'a str>,
    pub(super) host: Option<&'a str>,
    pub(super) path: Option<&'a str>,
    pub(super) message: Option<&'a SeenMessage<'a>>,
}

/// What a rule's window counts from, in time since the emulator started: the first
/// observation of its `after` event; else, for a time window, the run clock's origin (`None`
/// while the clock is deferred: no time window is open yet); else (no `at`, no `for`, not a
/// device fault) the emulator's start, as the rule holds at any time.
#[derive(Clone, Copy)]
pub(super) struct Origins<'a> {
    pub(super) observed: &'a HashMap<String, Duration>,
    pub(super) clock: Option<Duration>,
}

/// The rule's active window, in time since the emulator started; `None` when `after` has not
/// happened or the rule is timed and the run clock has not started. `timed`: the rule is a
/// time window even without `at`/`for` (device faults happen at a moment of the run).
/// Checked arithmetic: a start past the clock's range never comes, an end past it never ends.
pub(super) fn window(
    when: &When,
    origins: Origins<'_>,
    timed: bool,
) -> Option<(Duration, Option<Duration>)> {
    let base = match &when.after {
        Some(ev) => *origins.observed.get(ev)?,
        None if timed || when.at.is_some() || when.duration.is_some() => origins.clock?,
        None => Duration::ZERO,
    };
    let start = base.checked_add(when.at.unwrap_or_default())?;
    Some((start, when.duration.and_then(|d| start.checked_add(d))))
}

impl State {
    /// What windows count from now.
    pub(super) fn origins(&self) -> Origins<'_> {
        Origins {
            observed: &self.observed,
            clock: self.clock_origin,
        }
    }

    /// Does rule `i` fire for this occurrence? Advances its `every` counter only when every
    /// other condition holds, then draws for `probability` (keyed by the occasion).
    pub(super) fn fires(&mut self, i: usize, ctx: &Ctx<'_>) -> Option<Option<Duration>> {
        let State {
            rules,
            seed,
            observed,
            clock_origin,
            ..
        } = self;
        let origins = Origins {
            observed,
            clock: *clock_origin,
        };
        let r = &mut rules[i];
        let w = &r.rule.when;
        let (start, end) = window(w, origins, false)?;
        if ctx.elapsed < start || end.is_some_and(|e| ctx.elapsed >= e) {
            return None;
        }
        if let Some(s) = w.service
            && ctx.service != Some(s)
        {
            return None;
        }
        if let Some(range) = w.connections
            && !range.contains(ctx.conn?.ordinal)
        {
            return None;
        }
        if let Some(range) = w.messages
            && !range.contains(ctx.messages?)
        {
            return None;
        }
        if let Some(range) = w.bytes
            && !range.contains(ctx.bytes?)
        {
            return None;
        }
        let text = |p: &Option<crate::Pattern>, v: Option<&str>| match p {
            Some(p) => v.is_some_and(|v| p.matches(v)),
            None => true,
        };
        if !text(&w.name, ctx.name)
            || !text(&w.host, ctx.host)
            || !text(&w.path, ctx.path)
            || w.message_type
                .as_ref()
                .is_some_and(|m| !ctx.message.is_some_and(|msg| m.matches(msg)))
        {
            return None;
        }
        if let Some(q) = &w.qtype
            && !ctx.qtype.is_some_and(|t| t.eq_ignore_ascii_case(q))
        {
            return None;
        }
        if let Some(n) = w.every {
            r.occurrences += 1;
            if r.occurrences % n.max(1) != 0 {
                return None;
            }
        }
        if let Some(p) = w.probability {
            let occasion = match ctx.occasion {
                Some(o) => o,
                None => {
                    r.draws = r.draws.saturating_add(1);
                    [tag::NTH, r.draws, 0, 0, 0]
                }
            };
            if draw(*seed, r.id, &occasion) >= p.get() {
                return None;
            }
        }
        Some(end)
    }

    /// The first rule of the wanted kind that fires.
    pub(super) fn first<F>(
        &mut self,
        ctx: &Ctx<'_>,
        pick: impl Fn(&Fault) -> Option<F>,
    ) -> Option<Applied<F>> {
        for i in 0..self.rules.len() {
            let Some(fault) = pick(&self.rules[i].rule.fault) else {
                continue;
            };
            if let Some(until) = self.fires(i, ctx) {
                return Some(Applied {
                    rule: self.rules[i].id,
                    fault,
                    until,
                });
            }
        }
        None
    }
}
