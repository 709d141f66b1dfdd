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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::fault::{
    ConnectFault, DeviceFault, DnsFault, Fault, HandshakeFault, MessageDirection, StreamFault,
    WsFault,
};
use crate::limits::{MAX_DURATION, MAX_OBSERVED_EVENTS, MAX_RULES, MAX_TEXT_BYTES};
use crate::when::{Service, When};

/// One rule of a scenario's `faults:` list: a fault and when it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// A name to refer to the rule by (expectations such as `reconnects: { after: <name> }`,
    /// reports); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the fault applies; absent or `{}` = always.
    #[serde(default)]
    pub when: When,
    /// What goes wrong.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule that applies `fault` whenever `when` holds.
    pub fn new(when: When, fault: Fault) -> Self {
        FaultRule {
            name: None,
            when,
            fault,
        }
    }

    /// Checks that every trigger makes sense for this fault's category.
    pub fn validate(&self) -> Result<(), RuleError> {
        crate::validate::validate(self)
    }
}

/// A rule's id: stable for the plan's lifetime, never reused.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct RuleId(pub u64);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A rule as listed by [`FaultPlan::rules`]: its id and content.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ListedRule {
    /// The rule's id (used to remove it).
    pub id: RuleId,
    /// The rule.
    #[serde(flatten)]
    pub rule: FaultRule,
}

/// A fault the plan decided to apply, with the rule that caused it (for the event log).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied<F> {
    /// The rule that fired.
    pub rule: RuleId,
    /// The fault to apply.
    pub fault: F,
    /// When the rule's window ends (time since the emulator started), if it has an end.
    #[serde(
        with = "crate::duration::human_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<Duration>,
}

/// Which connection a question is about: its service and its 1-based number there.
///
/// For connect and stream questions `ordinal` counts accepted TCP connections; for handshake
/// and WebSocket questions it counts upgrade requests (the n-th WebSocket attempt), so that
/// connectivity checks on the same port do not shift `when: { connections: … }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// The service (listener) the connection arrived on.
    pub service: Service,
    /// The connection's (or upgrade request's) number on that service, from 1.
    pub ordinal: u64,
}

/// Question asked when a TCP connection is accepted.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The connection.
    pub conn: ConnRef,
    /// Time since the emulator started.
    pub elapsed: Duration,
}

/// Question asked when an upgrade request has been read.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeInfo<'a> {
    /// The connection.
    pub conn: ConnRef,
    /// Time since the emulator started.
    pub elapsed: Duration,
    /// The request's `Host` header, if any.
    pub host: Option<&'a str>,
    /// The request path (without query).
    pub path: &'a str,
}

/// The WebSocket frame kind a message decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A text message.
    Text,
    /// A binary message.
    Binary,
    /// A ping (only `suppress_pong` acts on it).
    Ping,
    /// A pong.
    Pong,
}

/// Question asked for every WebSocket message passing through a session.
#[derive(Debug, Clone, Copy)]
pub struct MessageInfo<'a> {
    /// The connection.
    pub conn: ConnRef,
    /// Time since the emulator started.
    pub elapsed: Duration,
    /// Which way the message travels.
    pub direction: MessageDirection,
    /// Its frame kind.
    pub kind: FrameKind,
    /// The protocol `type` of a decoded text message, if any.
    pub message_type: Option<&'a str>,
    /// Data messages on this connection so far, both ways, including this one (from 1).
    pub messages: u64,
    /// Payload bytes on this connection so far, both ways, including this message.
    pub bytes: u64,
}

/// Question asked for every DNS query.
#[derive(Debug, Clone, Copy)]
pub struct DnsInfo<'a> {
    /// The queried name as received.
    pub name: &'a str,
    /// The record type, e.g. `A`.
    pub qtype: &'a str,
    /// Time since the emulator started.
    pub elapsed: Duration,
}

/// The stream faults for one connection plus the seed for its per-chunk randomness (jitter,
/// slice sizes), derived from the run's seed and the connection so that runs replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamFaults {
    /// Faults to apply, in rule order.
    pub faults: Vec<Applied<StreamFault>>,
    /// Seed for this connection's randomness.
    pub seed: u64,
}

impl StreamFaults {
    /// True when nothing is to be applied (the stream can pass through untouched).
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }
}

/// A device fault placed on the run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceWindow {
    /// The rule.
    pub rule: RuleId,
    /// The fault.
    pub fault: DeviceFault,
    /// When it starts (time since the emulator started).
    #[serde(with = "crate::duration::human")]
    pub start: Duration,
    /// When it ends; `None` = for the rest of the run.
    #[serde(with = "crate::duration::human_opt")]
    pub end: Option<Duration>,
}

impl DeviceWindow {
    /// True when the window covers `elapsed`.
    pub fn contains(&self, elapsed: Duration) -> bool {
        elapsed >= self.start && self.end.is_none_or(|e| elapsed < e)
    }
}

/// A rule that does not make sense, e.g. `messages` on a DNS fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{fault}: {reason}")]
pub struct RuleError {
    /// The fault as written, e.g. `dns: nxdomain`.
    pub fault: String,
    /// What is wrong and what to write instead.
    pub reason: String,
}

/// Why a plan could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A rule of the initial list is invalid.
    #[error("fault rule {index}")]
    Rule {
        /// 0-based position in the list.
        index: usize,
        /// What is wrong.
        #[source]
        source: RuleError,
    },
    /// The list has more rules than a plan holds ([`MAX_RULES`]).
    #[error("{rules} fault rules; a plan holds at most {limit}")]
    TooMany {
        /// How many rules were given.
        rules: usize,
        /// The limit, [`MAX_RULES`].
        limit: usize,
    },
}

/// Why rules could not be added to a running plan ([`FaultPlan::add`], [`FaultPlan::add_all`]).
/// Nothing was added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The rule does not make sense or exceeds a bound.
    #[error(transparent)]
    Invalid(#[from] RuleError),
    /// Rule `index` of a list does not make sense or exceeds a bound.
    #[error("rule {index}: {error}")]
    InvalidInList {
        /// 0-based position in the list.
        index: usize,
        /// What is wrong (part of this error's message, so not also its source).
        error: RuleError,
    },
    /// The plan would hold more than [`MAX_RULES`] rules: remove some first.
    #[error(
        "too many fault rules: the plan holds {rules} and {adding} more would exceed the limit of {limit}; remove rules (or reset) first"
    )]
    TooMany {
        /// Rules in the plan now.
        rules: usize,
        /// Rules that were to be added.
        adding: usize,
        /// The limit, [`MAX_RULES`].
        limit: usize,
    },
}

struct RuleState {
    id: RuleId,
    rule: FaultRule,
    /// Matching occurrences seen, for `every`.
    occurrences: u64,
    /// Probability draws made for occasions without a connection (DNS queries): the n-th draw
    /// of this rule is keyed by n.
    draws: u64,
}

impl RuleState {
    fn new(id: RuleId, rule: FaultRule) -> Self {
        RuleState {
            id,
            rule,
            occurrences: 0,
            draws: 0,
        }
    }
}

struct State {
    rules: Vec<RuleState>,
    next_id: u64,
    /// The run's seed, the key of every random draw.
    seed: u64,
    /// First time each event was observed.
    observed: HashMap<String, Duration>,
    /// (rule, connection) pairs whose once-per-connection action already fired.
    fired: HashSet<(RuleId, ConnRef)>,
    /// When the run clock started (time since the emulator started); `None` while deferred.
    clock_origin: Option<Duration>,
}

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

/// A seed from the OS-seeded std hasher keys and the clock, for runs that do not give one.
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Separates the kinds of occasion a random draw can be about (first word of an [`Occasion`]).
mod tag {
    pub(super) const CONNECT: u64 = 1;
    pub(super) const STREAM: u64 = 2;
    pub(super) const HANDSHAKE: u64 = 3;
    pub(super) const MESSAGE: u64 = 4;
    pub(super) const TICK: u64 = 5;
    pub(super) const NTH: u64 = 6;
    pub(super) const STREAM_SEED: u64 = 7;
}

/// What a random draw is about: a tag and up to four numbers naming the occasion.
type Occasion = [u64; 5];

/// The numbers a connection contributes to an occasion.
fn conn_words(conn: ConnRef) -> [u64; 2] {
    let service = match conn.service {
        Service::Http => 1,
        Service::Https => 2,
        Service::Dns => 3,
    };
    [service, conn.ordinal]
}

/// SplitMix64's finalizer: a bijective mix with full avalanche (fixed forever, so that seeds
/// replay across versions).
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit hash of `words`, in order.
fn mix(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x6a09_e667_f3bc_c909, |h, w| splitmix64(h ^ splitmix64(*w)))
}

/// A number uniform in [0, 1) determined by the seed, the rule and the occasion alone.
fn draw(seed: u64, rule: RuleId, occasion: &Occasion) -> f64 {
    let mut words = [0u64; 7];
    words[0] = seed;
    words[1] = rule.0;
    words[2..].copy_from_slice(occasion);
    // The top 53 bits, as an f64 in [0, 1).
    (mix(&words) >> 11) as f64 / (1u64 << 53) as f64
}

/// Internal matching context: what is known about the occurrence being decided.
#[derive(Default)]
struct Ctx<'a> {
    elapsed: Duration,
    /// What a probability draw is keyed by; `None`: the rule's n-th draw (DNS queries).
    occasion: Option<Occasion>,
    conn: Option<ConnRef>,
    service: Option<Service>,
    messages: Option<u64>,
    bytes: Option<u64>,
    name: Option<&'a str>,
    qtype: Option<&'a str>,
    host: Option<&'a str>,
    path: Option<&'a str>,
    message_type: Option<&'a str>,
}

/// What a rule's window counts from, in time since the emulator started: the first
/// observation of its `after` event; else, for a time window, the run clock's origin (`None`
/// while the clock is deferred: no time window is open yet); else (no `at`, no `for`, not a
/// device fault) the emulator's start, as the rule holds at any time.
#[derive(Clone, Copy)]
struct Origins<'a> {
    observed: &'a HashMap<String, Duration>,
    clock: Option<Duration>,
}

/// The rule's active window, in time since the emulator started; `None` when `after` has not
/// happened or the rule is timed and the run clock has not started. `timed`: the rule is a
/// time window even without `at`/`for` (device faults happen at a moment of the run).
/// Checked arithmetic: a start past the clock's range never comes, an end past it never ends.
fn window(when: &When, origins: Origins<'_>, timed: bool) -> Option<(Duration, Option<Duration>)> {
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
    fn origins(&self) -> Origins<'_> {
        Origins {
            observed: &self.observed,
            clock: self.clock_origin,
        }
    }

    /// Does rule `i` fire for this occurrence? Advances its `every` counter only when every
    /// other condition holds, then draws for `probability` (keyed by the occasion).
    fn fires(&mut self, i: usize, ctx: &Ctx<'_>) -> Option<Option<Duration>> {
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
            || !text(&w.message_type, ctx.message_type)
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
    fn first<F>(
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

    /// Whether `service`'s listening socket must be closed now (an active `refuse` rule), and
    /// until when. The listener re-binds when this turns `None`.
    pub fn refusing(&self, service: Service, elapsed: Duration) -> Option<Applied<ConnectFault>> {
        let ctx = Ctx {
            elapsed,
            service: Some(service),
            ..Ctx::default()
        };
        self.lock().first(&ctx, |f| match f {
            Fault::Connect(ConnectFault::Refuse) => Some(ConnectFault::Refuse),
            _ => None,
        })
    }

    /// Decides what happens to an accepted connection: `reset_on_accept`, `close_on_accept`,
    /// `stall` (held until `until`, if any), or `None` = serve it.
    pub fn on_connect(&self, info: ConnInfo) -> Option<Applied<ConnectFault>> {
        let [service, ordinal] = conn_words(info.conn);
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::CONNECT, service, ordinal, 0, 0]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            ..Ctx::default()
        };
        self.lock().first(&ctx, |f| match f {
            Fault::Connect(c) if *c != ConnectFault::Refuse => Some(*c),
            _ => None,
        })
    }

    /// The stream faults for a served connection (all rules that fire, in order) and the seed
    /// for its randomness. Decided once, at accept.
    pub fn stream_faults(&self, info: ConnInfo) -> StreamFaults {
        let [service, ordinal] = conn_words(info.conn);
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::STREAM, service, ordinal, 0, 0]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            ..Ctx::default()
        };
        let mut s = self.lock();
        let mut faults = Vec::new();
        for i in 0..s.rules.len() {
            let Fault::Stream(f) = &s.rules[i].rule.fault else {
                continue;
            };
            let f = f.clone();
            if let Some(until) = s.fires(i, &ctx) {
                faults.push(Applied {
                    rule: s.rules[i].id,
                    fault: f,
                    until,
                });
            }
        }
        let seed = if faults.is_empty() {
            0
        } else {
            mix(&[s.seed, tag::STREAM_SEED, service, ordinal])
        };
        StreamFaults { faults, seed }
    }

    /// Decides what happens to an upgrade request (first matching rule), or `None` = upgrade.
    pub fn on_handshake(&self, info: HandshakeInfo<'_>) -> Option<Applied<HandshakeFault>> {
        let [service, ordinal] = conn_words(info.conn);
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::HANDSHAKE, service, ordinal, 0, 0]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            host: info.host,
            path: Some(info.path),
            ..Ctx::default()
        };
        self.lock().first(&ctx, |f| match f {
            Fault::Handshake(h) => Some(h.clone()),
            _ => None,
        })
    }

    /// Decides what happens to a WebSocket message (first matching rule):
    /// - `drop` / `duplicate` / `delay` when the message is text or binary and travels in the
    ///   fault's direction;
    /// - `suppress_pong` when it is a ping from the app, or a device message whose protocol
    ///   `type` matches the fault's `messages` pattern (an app-level pong);
    /// - an action (`close`, `corrupt`, `oversize`, `garbage`, `lru_purge`) to perform right
    ///   after this message, at most once per connection and rule.
    pub fn on_ws_message(&self, info: MessageInfo<'_>) -> Option<Applied<WsFault>> {
        let [service, ordinal] = conn_words(info.conn);
        // The message number alone does not tell a ping from the data message before it.
        let kind = match info.kind {
            FrameKind::Text => 1,
            FrameKind::Binary => 2,
            FrameKind::Ping => 3,
            FrameKind::Pong => 4,
        } | match info.direction {
            MessageDirection::In => 0x10,
            MessageDirection::Out => 0x20,
        };
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::MESSAGE, service, ordinal, info.messages, kind]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            messages: Some(info.messages),
            bytes: Some(info.bytes),
            message_type: info.message_type,
            ..Ctx::default()
        };
        let data = matches!(info.kind, FrameKind::Text | FrameKind::Binary);
        let mut s = self.lock();
        for i in 0..s.rules.len() {
            let Fault::Ws(f) = &s.rules[i].rule.fault else {
                continue;
            };
            let id = s.rules[i].id;
            let applies = match f {
                WsFault::Drop(p) | WsFault::Duplicate(p) => data && p.direction == info.direction,
                WsFault::Delay(p) => data && p.direction == info.direction,
                WsFault::SuppressPong(p) => {
                    let ping =
                        info.kind == FrameKind::Ping && info.direction == MessageDirection::In;
                    let pong_message = data
                        && info.direction == MessageDirection::Out
                        && p.messages
                            .as_ref()
                            .is_some_and(|m| info.message_type.is_some_and(|t| m.matches(t)));
                    ping || pong_message
                }
                _ => data && !s.fired.contains(&(id, info.conn)),
            };
            if !applies {
                continue;
            }
            let f = f.clone();
            if let Some(until) = s.fires(i, &ctx) {
                if !f.acts_on_message() {
                    s.fired.insert((id, info.conn));
                }
                return Some(Applied {
                    rule: id,
                    fault: f,
                    until,
                });
            }
        }
        None
    }

    /// Time-driven WebSocket actions for an open session: an action fault (`close`, `corrupt`,
    /// `oversize`, `garbage`, `lru_purge`) whose rule has no message conditions fires once per
    /// connection when its window opens. Call it when the session starts and at every
    /// [`next_boundary`](Self::next_boundary). A `probability` is drawn once per connection and
    /// rule: every tick of that connection draws the same number.
    pub fn on_ws_tick(&self, info: ConnInfo) -> Option<Applied<WsFault>> {
        let [service, ordinal] = conn_words(info.conn);
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::TICK, service, ordinal, 0, 0]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            ..Ctx::default()
        };
        let mut s = self.lock();
        for i in 0..s.rules.len() {
            let r = &s.rules[i];
            let Fault::Ws(f) = &r.rule.fault else {
                continue;
            };
            let w = &r.rule.when;
            if f.acts_on_message()
                || w.messages.is_some()
                || w.bytes.is_some()
                || w.message_type.is_some()
                || s.fired.contains(&(r.id, info.conn))
            {
                continue;
            }
            let (id, f) = (r.id, f.clone());
            if let Some(until) = s.fires(i, &ctx) {
                s.fired.insert((id, info.conn));
                return Some(Applied {
                    rule: id,
                    fault: f,
                    until,
                });
            }
        }
        None
    }

    /// Forgets per-connection state (which once-per-connection actions fired). Call on close.
    pub fn connection_closed(&self, conn: ConnRef) {
        self.lock().fired.retain(|(_, c)| *c != conn);
    }

    /// True when some rule's fault satisfies `pred`, whatever its trigger (e.g. "can a DNS answer
    /// be delayed?", so a server can answer inline in its receive loop when none can).
    pub fn has_rule(&self, pred: impl Fn(&Fault) -> bool) -> bool {
        self.lock().rules.iter().any(|r| pred(&r.rule.fault))
    }

    /// Decides what happens to a DNS query (first matching rule), or `None` = answer normally.
    /// A rule's `probability` draw for the n-th query it matches is keyed by n, so queries it
    /// does not match (another name, another type) never change its decisions.
    pub fn on_dns(&self, info: DnsInfo<'_>) -> Option<Applied<DnsFault>> {
        let ctx = Ctx {
            elapsed: info.elapsed,
            service: Some(Service::Dns),
            name: Some(info.name),
            qtype: Some(info.qtype),
            ..Ctx::default()
        };
        self.lock().first(&ctx, |f| match f {
            Fault::Dns(d) => Some(d.clone()),
            _ => None,
        })
    }

    /// The device faults with known times, sorted by start: rules with `after` appear once their
    /// event has been observed, the others once the run clock has started (a rule without `at`
    /// starts with the clock). A reboot lasts `down`, an AP outage `for`; `internet` and
    /// `socket_exhaustion` last for the rule's `for` (or the rest of the run).
    pub fn device_timeline(&self) -> Vec<DeviceWindow> {
        let s = self.lock();
        let mut out: Vec<DeviceWindow> = s
            .rules
            .iter()
            .filter_map(|r| {
                let Fault::Device(f) = &r.rule.fault else {
                    return None;
                };
                let (start, end) = window(&r.rule.when, s.origins(), true)?;
                // An end past the clock's range never comes.
                let end = match f {
                    DeviceFault::Reboot(p) => start.checked_add(p.down),
                    DeviceFault::ApDown(p) => start.checked_add(p.duration),
                    DeviceFault::Internet(_) | DeviceFault::SocketExhaustion(_) => end,
                };
                Some(DeviceWindow {
                    rule: r.id,
                    fault: f.clone(),
                    start,
                    end,
                })
            })
            .collect();
        out.sort_by_key(|w| (w.start, w.rule));
        out
    }

    /// The device faults active at `elapsed`.
    pub fn device_faults_at(&self, elapsed: Duration) -> Vec<DeviceWindow> {
        self.device_timeline()
            .into_iter()
            .filter(|w| w.contains(elapsed))
            .collect()
    }

    /// The next time after `elapsed` at which some rule's window opens or closes (device
    /// windows included), so a service can sleep until then; `None` when nothing is scheduled.
    /// Never more than [`MAX_DURATION`] after `elapsed` (a later boundary is reported as that),
    /// so the answer can be added to any clock reading without overflow; waking early for
    /// nothing only means asking again.
    pub fn next_boundary(&self, elapsed: Duration) -> Option<Duration> {
        let mut times: Vec<Duration> = {
            let s = self.lock();
            s.rules
                .iter()
                .filter_map(|r| window(&r.rule.when, s.origins(), false))
                .flat_map(|(start, end)| [Some(start), end])
                .flatten()
                .collect()
        };
        times.extend(
            self.device_timeline()
                .into_iter()
                .flat_map(|w| [Some(w.start), w.end])
                .flatten(),
        );
        let horizon = elapsed.saturating_add(MAX_DURATION);
        times
            .into_iter()
            .filter(|t| *t > elapsed)
            .min()
            .map(|t| t.min(horizon))
    }
}
