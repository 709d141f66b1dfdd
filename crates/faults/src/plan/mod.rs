//! The fault plan: the run's rules plus its seed, answering "what happens now?" for every
//! connection, handshake, message, DNS query and point on the device timeline.
//!
//! The plan never reads a clock: every question carries `elapsed`, the time since the emulator
//! started, and every answer's times (`until`, device windows, boundaries) are in those terms.
//! Time windows (`at`/`for`, device faults) count from the run clock's origin
//! ([`FaultPlan::start_clock`]): while the clock is deferred none is open, and once it starts at
//! `t`, `at: 5s` opens at `t + 5s`. Windows armed by `after:` count from their event instead.
//!
//! Random decisions (`when.probability`, a connection's jitter and slice sizes) do not come from
//! one generator shared by every service, whose draws would shift whenever a phone's background
//! DNS query or a connectivity check came in between. Each draw is a keyed hash of the seed, the
//! rule's id and the occasion: the service and connection number for connect, stream and
//! handshake decisions, plus the message number, direction and frame kind for WebSocket
//! messages, and the n-th query the rule matched for DNS. So with the same seed, connection N
//! gets the same faults whatever else happened before it.
//!
//! Files: `rule` (rules, ids, errors), `query` (the questions and compound answers), `state`
//! (the matching engine), `rng` (keyed draws), `decide` (one method per question); the plan's
//! life cycle (build, add, remove, observe, run clock) is here.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::limits::{MAX_OBSERVED_EVENTS, MAX_RULES, MAX_TEXT_BYTES};

mod decide;
mod query;
mod rng;
mod rule;
mod state;

pub use query::{
    ConnInfo, ConnRef, DeviceWindow, DnsInfo, FrameKind, HandshakeInfo, MessageInfo, StreamFaults,
};
pub use rule::{AddError, Applied, FaultRule, ListedRule, PlanError, RuleError, RuleId};

use self::rng::random_seed;
use self::state::{RuleState, State};

struct Inner {
    seed: u64,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

/// The run's fault plan. Cheap to clone (shared), safe to use from every task, changeable at run
/// time; decisions are made under one short lock so that they replay in call order.
#[derive(Clone)]
pub struct FaultPlan {
    inner: Arc<Inner>,
}

impl fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultPlan")
            .field("seed", &self.inner.seed)
            .field("rules", &self.lock().rules.len())
            .finish()
    }
}

impl FaultPlan {
    /// Builds a plan from `rules` (ids 1, 2, … in list order). With `seed: None` a random seed is
    /// chosen; [`seed`](Self::seed) always reports the one in use so a run can be replayed.
    /// At most [`MAX_RULES`] rules.
    pub fn new(rules: Vec<FaultRule>, seed: Option<u64>) -> Result<FaultPlan, PlanError> {
        if rules.len() > MAX_RULES {
            return Err(PlanError::TooMany {
                rules: rules.len(),
                limit: MAX_RULES,
            });
        }
        for (index, r) in rules.iter().enumerate() {
            r.validate()
                .map_err(|source| PlanError::Rule { index, source })?;
        }
        let seed = seed.unwrap_or_else(random_seed);
        let rules: Vec<RuleState> = rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| RuleState::new(RuleId(i as u64 + 1), rule))
            .collect();
        let next_id = rules.len() as u64 + 1;
        Ok(FaultPlan {
            inner: Arc::new(Inner {
                seed,
                state: Mutex::new(State {
                    rules,
                    next_id,
                    seed,
                    observed: HashMap::new(),
                    fired: HashSet::new(),
                    clock_origin: Some(Duration::ZERO),
                }),
                changes: watch::Sender::new(0),
            }),
        })
    }

    /// A plan with no rules (everything passes untouched).
    pub fn empty(seed: Option<u64>) -> FaultPlan {
        match FaultPlan::new(Vec::new(), seed) {
            Ok(p) => p,
            Err(e) => unreachable!("an empty plan has no rule to reject: {e}"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than losing the plan, so recover the guard.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|v| *v += 1);
    }

    /// Holds the run clock until [`start_clock`](Self::start_clock): until then no time
    /// window (`at`/`for`) is open. For runs that start when the app is ready.
    pub fn defer_clock(&self) {
        self.lock().clock_origin = None;
        self.changed();
    }

    /// Starts the run clock at `elapsed` (time since the emulator started): time windows count
    /// from here. True when this call started it; false when it was already running.
    pub fn start_clock(&self, elapsed: Duration) -> bool {
        let started = {
            let mut s = self.lock();
            if s.clock_origin.is_some() {
                false
            } else {
                s.clock_origin = Some(elapsed);
                true
            }
        };
        if started {
            self.changed();
        }
        started
    }

    /// When the run clock started, in time since the emulator started (`None`: not yet).
    pub fn clock_origin(&self) -> Option<Duration> {
        self.lock().clock_origin
    }

    /// The seed in use (given or chosen). Log it: the same seed replays the same decisions.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// A receiver that changes whenever rules are added/removed/reset or an event is observed,
    /// so services waiting on the timeline (refuse windows, device faults) can re-plan.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Adds a rule at run time; it gets the next id. Fails when the rule is invalid or the plan
    /// already holds [`MAX_RULES`] rules.
    pub fn add(&self, rule: FaultRule) -> Result<RuleId, AddError> {
        rule.validate()?;
        self.push(vec![rule]).map(RuleId)
    }

    /// Adds a list of rules at run time, all or nothing: every rule is checked first, and the
    /// list is refused as a whole when the plan would hold more than [`MAX_RULES`] rules.
    pub fn add_all(&self, rules: Vec<FaultRule>) -> Result<Vec<RuleId>, AddError> {
        for (index, rule) in rules.iter().enumerate() {
            rule.validate()
                .map_err(|error| AddError::InvalidInList { index, error })?;
        }
        let count = rules.len() as u64;
        let first = self.push(rules)?;
        Ok((first..first + count).map(RuleId).collect())
    }

    /// Appends validated rules under one lock, if they fit; they get consecutive ids from the
    /// returned one.
    fn push(&self, rules: Vec<FaultRule>) -> Result<u64, AddError> {
        let first = {
            let mut s = self.lock();
            let held = s.rules.len();
            if held.saturating_add(rules.len()) > MAX_RULES {
                return Err(AddError::TooMany {
                    rules: held,
                    adding: rules.len(),
                    limit: MAX_RULES,
                });
            }
            let first = s.next_id;
            for rule in rules {
                let id = RuleId(s.next_id);
                s.next_id += 1;
                s.rules.push(RuleState::new(id, rule));
            }
            first
        };
        self.changed();
        Ok(first)
    }

    /// Removes a rule; returns it, or `None` if no rule has that id.
    pub fn remove(&self, id: RuleId) -> Option<FaultRule> {
        let removed = {
            let mut s = self.lock();
            let pos = s.rules.iter().position(|r| r.id == id)?;
            s.fired.retain(|(r, _)| *r != id);
            s.rules.remove(pos).rule
        };
        self.changed();
        Some(removed)
    }

    /// Removes every rule (Toxiproxy's `/reset`). Ids are not reused; observed events are kept.
    pub fn reset(&self) {
        {
            let mut s = self.lock();
            s.rules.clear();
            s.fired.clear();
        }
        self.changed();
    }

    /// The current rules with their ids, in evaluation order.
    pub fn rules(&self) -> Vec<ListedRule> {
        self.lock()
            .rules
            .iter()
            .map(|r| ListedRule {
                id: r.id,
                rule: r.rule.clone(),
            })
            .collect()
    }

    /// Records that an event happened (e.g. a message type such as `provision`), arming rules
    /// with `after: <name>`; their `at` counts from the first observation.
    ///
    /// The names come from the app, so at most [`MAX_OBSERVED_EVENTS`] are remembered (beyond
    /// that, only names a rule waits for) and names longer than [`MAX_TEXT_BYTES`] are ignored.
    pub fn observe(&self, event: &str, elapsed: Duration) {
        if event.len() > MAX_TEXT_BYTES {
            return;
        }
        let new = {
            let mut s = self.lock();
            let awaited = || {
                s.rules
                    .iter()
                    .any(|r| r.rule.when.after.as_deref() == Some(event))
            };
            if s.observed.contains_key(event)
                || (s.observed.len() >= MAX_OBSERVED_EVENTS && !awaited())
            {
                false
            } else {
                s.observed.insert(event.to_owned(), elapsed);
                true
            }
        };
        if new {
            self.changed();
        }
    }
}
