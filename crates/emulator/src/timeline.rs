//! The device-fault timeline: carries out `{ device: … }` faults at their window boundaries.
//!
//! The fault plan places device faults on the run's clock (`FaultPlan::device_timeline`); this
//! task sleeps until the next boundary (`FaultPlan::next_boundary`), or until the plan changes
//! (a rule added or removed at run time, an `after:` event observed), and then makes the device
//! match the windows open at that moment. Late, never lost: whenever it runs (the first time
//! too, which on a busy host can be after the first windows have passed) it first replays every
//! window edge since the last time it ran, in order, so a window the host stalled through still
//! happens. A rule added at run time counts from when the task first sees it: its windows that
//! had already ended are not replayed.
//! - `internet { mode }`: the internet switch shows `mode`; when the last such window closes the
//!   mode from before the first one is back;
//! - `reboot { down }`: `Outage::Rebooting`, every WebSocket session dropped without a close
//!   frame; when `down` is over the firmware boots fresh (outputs off, uptime from then) and
//!   the outage ends;
//! - `ap_down { for }`: `Outage::ApDown` and the sessions dropped silently, until `for` is over;
//! - `socket_exhaustion { sockets }`: that many socket slots held by phantom connections.
//!
//! Each opening records `FaultApplied`, each step on the device a `DeviceAction`. The listener
//! and open connections react to the device host's outage on their own (the HTTP service), DNS
//! by not answering. The device host merges this outage with the firmware's own softAP outage while
//! it provisions (`DeviceHost::set_fault_outage`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use espsim_faults::{DeviceFault, DeviceWindow, Fault, RuleId};

use espsim_faults::FaultPlan;
use tokio_util::sync::CancellationToken;

use crate::device_host::{DeviceHost, Outage};
use crate::events::{EventKind, EventLog};
use crate::internet::{Internet, InternetMode};
use crate::sockets::{Reservation, SocketTable};

/// What the timeline reads and drives: the plan and the run clock (`events`), the device, the
/// internet mode and the socket slots.
#[derive(Debug, Clone)]
pub(crate) struct Targets {
    /// The plan whose device timeline is carried out.
    pub(crate) faults: Arc<FaultPlan>,
    /// The run clock (`elapsed`) and where the steps are recorded.
    pub(crate) events: Arc<EventLog>,
    /// Reboots, AP outages (`set_fault_outage`) and dropped sessions.
    pub(crate) device: Arc<DeviceHost>,
    /// `internet` windows switch it.
    pub(crate) internet: Internet,
    /// `socket_exhaustion` windows hold slots.
    pub(crate) sockets: Arc<SocketTable>,
}

/// Follows the plan's device timeline until `cancel` fires. Spawn it on the emulator's tracker.
pub(crate) async fn run(targets: Targets, cancel: CancellationToken) {
    let mut changes = targets.faults.changes();
    let mut plan_alive = true;
    let mut timeline = Timeline::new(targets.clone());
    loop {
        changes.borrow_and_update();
        let now = targets.events.elapsed();
        timeline.catch_up(now);
        let next = targets.faults.next_boundary(now);
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep(at.saturating_sub(now)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            changed = changes.changed(), if plan_alive => plan_alive = changed.is_ok(),
            () = sleep => {}
        }
    }
}

/// A window being carried out. Its key in [`Timeline::active`] is `(rule, start)`, so a rule
/// whose `after:` event is observed again opens a new window.
#[derive(Debug)]
struct Active {
    window: DeviceWindow,
    /// The phantom connections of a `socket_exhaustion` window; dropping frees the slots.
    held: Option<Reservation>,
}

/// The windows in force and what is needed to undo them.
#[derive(Debug)]
struct Timeline {
    targets: Targets,
    active: BTreeMap<(RuleId, Duration), Active>,
    /// The internet mode from before the first open `internet` window, restored after the last.
    internet_before: Option<InternetMode>,
    /// When the timeline last stepped; `None` before the first step.
    stepped: Option<Duration>,
    /// When each device rule was first seen: rules of the plan the run started with count from
    /// zero, rules added later from the step that first saw them.
    first_seen: HashMap<RuleId, Duration>,
}

impl Timeline {
    /// A timeline for the plan as it is now: its device rules count from the start of the run.
    fn new(targets: Targets) -> Self {
        let mut timeline = Timeline {
            targets,
            active: BTreeMap::new(),
            internet_before: None,
            stepped: None,
            first_seen: HashMap::new(),
        };
        timeline.note_rules(Duration::ZERO);
        timeline
    }

    /// Records the device rules not seen before as seen at `now`, and forgets removed ones.
    fn note_rules(&mut self, now: Duration) {
        let ids: Vec<RuleId> = self
            .targets
            .faults
            .rules()
            .into_iter()
            .filter(|r| matches!(r.rule.fault, Fault::Device(_)))
            .map(|r| r.id)
            .collect();
        self.first_seen.retain(|id, _| ids.contains(id));
        for id in ids {
            self.first_seen.entry(id).or_insert(now);
        }
    }

    /// Brings the device up to `now`: steps at every window edge passed since the last step
    /// (from the start of the run on the first call), in order, then at `now`.
    fn catch_up(&mut self, now: Duration) {
        self.note_rules(now);
        let timeline = self.targets.faults.device_timeline();
        let since = self.stepped;
        let mut edges: Vec<Duration> = timeline
            .iter()
            .flat_map(|w| [Some(w.start), w.end])
            .flatten()
            .filter(|t| *t < now && since.is_none_or(|s| *t > s))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        for at in edges {
            self.apply(&timeline, at);
        }
        self.apply(&timeline, now);
        self.stepped = Some(now);
    }

    /// Closes the windows no longer in force, then opens the new ones, at `now`.
    #[cfg(test)]
    fn step(&mut self, now: Duration) {
        let timeline = self.targets.faults.device_timeline();
        self.apply(&timeline, now);
    }

    /// Makes the device match the windows of `timeline` in force at `now`: closes the ones no
    /// longer in force, then opens the new ones. A rule's windows count only from when the
    /// timeline first saw the rule.
    fn apply(&mut self, timeline: &[DeviceWindow], now: Duration) {
        let due: Vec<DeviceWindow> = timeline
            .iter()
            .filter(|w| {
                w.contains(now)
                    && self
                        .first_seen
                        .get(&w.rule)
                        .is_some_and(|seen| *seen <= now)
            })
            .cloned()
            .collect();
        let over: Vec<(RuleId, Duration)> = self
            .active
            .keys()
            .filter(|key| !due.iter().any(|w| (w.rule, w.start) == **key))
            .copied()
            .collect();
        let mut closed = Vec::new();
        for key in over {
            if let Some(active) = self.active.remove(&key) {
                closed.extend(self.close(active));
            }
        }

        let opened: Vec<DeviceWindow> = due
            .into_iter()
            .filter(|w| !self.active.contains_key(&(w.rule, w.start)))
            .collect();
        for w in &opened {
            self.active.insert(
                (w.rule, w.start),
                Active {
                    window: w.clone(),
                    held: None,
                },
            );
        }
        // Outage and internet mode first: sessions drop into an outage already in force (a
        // reconnect right after meets it), and an event is only seen once what it says holds.
        self.apply_outage();
        self.apply_internet();
        for (action, detail) in closed {
            self.action(action, detail);
        }
        for w in opened {
            let held = self.open(&w);
            if let Some(active) = self.active.get_mut(&(w.rule, w.start)) {
                active.held = held;
            }
        }
    }

    /// Carries out the opening of `w`; returns the socket reservation it holds, if any.
    fn open(&self, w: &DeviceWindow) -> Option<Reservation> {
        let targets = &self.targets;
        let until = match w.end {
            Some(end) => format!("for {}", human(end.saturating_sub(w.start))),
            None => "for the rest of the run".to_owned(),
        };
        let (detail, held) = match &w.fault {
            DeviceFault::Internet(i) => (format!("internet {} {until}", i.mode), None),
            DeviceFault::Reboot(r) => {
                let dropped = targets.device.drop_all_sessions("device reboot");
                self.action(
                    "reboot",
                    format!(
                        "rebooting, down for {}; {dropped} session(s) dropped",
                        human(r.down)
                    ),
                );
                (format!("device reboots, down for {}", human(r.down)), None)
            }
            DeviceFault::ApDown(a) => {
                let dropped = targets.device.drop_all_sessions("softAP down");
                self.action(
                    "ap_down",
                    format!(
                        "softAP down for {}; {dropped} session(s) dropped",
                        human(a.duration)
                    ),
                );
                (format!("softAP down for {}", human(a.duration)), None)
            }
            DeviceFault::SocketExhaustion(s) => {
                let limit = match targets.sockets.limit() {
                    Some(limit) => format!("{limit}"),
                    None => "unlimited (this profile has no socket limit)".to_owned(),
                };
                let held = targets.sockets.reserve(s.sockets);
                self.action(
                    "sockets_held",
                    format!(
                        "{} socket slot(s) held by phantom connections; limit {limit}",
                        held.count()
                    ),
                );
                (
                    format!("{} socket slot(s) taken {until}", s.sockets),
                    Some(held),
                )
            }
        };
        targets.events.emit(EventKind::FaultApplied {
            conn: None,
            rule: w.rule.0,
            fault: serde_json::to_value(&w.fault).unwrap_or_default(),
            detail,
        });
        held
    }

    /// Undoes what `active` did, except the outage and internet mode, which the caller settles
    /// before recording the returned `DeviceAction`.
    fn close(&self, active: Active) -> Option<(&'static str, String)> {
        match &active.window.fault {
            DeviceFault::Internet(_) => None,
            DeviceFault::Reboot(_) => {
                self.targets.device.power_on();
                Some((
                    "boot",
                    "back after reboot: fresh state, outputs off".to_owned(),
                ))
            }
            DeviceFault::ApDown(_) => Some(("ap_up", "softAP back".to_owned())),
            DeviceFault::SocketExhaustion(_) => {
                let count = active.held.as_ref().map_or(0, Reservation::count);
                drop(active.held);
                Some((
                    "sockets_released",
                    format!("{count} phantom socket slot(s) released"),
                ))
            }
        }
    }

    /// Hands the outage of the open windows to the device host, which publishes it (merged
    /// with the firmware's own): a reboot wins over an AP outage.
    fn apply_outage(&self) {
        let faults = || self.active.values().map(|a| &a.window.fault);
        let outage = if faults().any(|f| matches!(f, DeviceFault::Reboot(_))) {
            Outage::Rebooting
        } else if faults().any(|f| matches!(f, DeviceFault::ApDown(_))) {
            Outage::ApDown
        } else {
            Outage::None
        };
        self.targets.device.set_fault_outage(outage);
    }

    /// Sets the internet mode from the latest-opened `internet` window, or restores the mode
    /// from before the first one once none is open.
    fn apply_internet(&mut self) {
        let wanted = self
            .active
            .values()
            .filter_map(|a| match &a.window.fault {
                DeviceFault::Internet(i) => Some((a.window.start, a.window.rule, i.mode)),
                _ => None,
            })
            .max_by_key(|(start, rule, _)| (*start, *rule))
            .map(|(_, _, mode)| mode);
        match (wanted, self.internet_before) {
            (Some(mode), before) => {
                if before.is_none() {
                    self.internet_before = Some(self.targets.internet.get());
                }
                self.targets.internet.set(mode);
            }
            (None, Some(before)) => {
                self.internet_before = None;
                self.targets.internet.set(before);
                self.action("internet_restored", format!("internet back to {before}"));
            }
            (None, None) => {}
        }
    }

    fn action(&self, action: &str, detail: String) {
        self.targets.events.emit(EventKind::DeviceAction {
            action: action.to_owned(),
            detail,
        });
    }
}

/// A duration as scenarios write it, e.g. `300ms`, `5s`.
fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use espsim_faults::FaultRule;

    use super::*;
    use crate::device_host::DeviceOptions;
    use crate::profile::Profile;

    fn targets(rules: &[&str]) -> Targets {
        let rules: Vec<FaultRule> = rules
            .iter()
            .map(|r| serde_json::from_str(r).expect("rule parses"))
            .collect();
        let events = Arc::new(EventLog::new());
        let profile = Profile::default();
        Targets {
            faults: Arc::new(FaultPlan::new(rules, Some(0)).expect("plan")),
            device: Arc::new(DeviceHost::new(
                DeviceOptions::default(),
                DeviceOptions::default().builtin(0),
                events.clone(),
            )),
            internet: Internet::new(InternetMode::Captive, events.clone()),
            sockets: Arc::new(SocketTable::new(
                profile.max_open_sockets,
                profile.lru_purge,
            )),
            events,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn actions(targets: &Targets) -> Vec<String> {
        targets
            .events
            .snapshot()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::DeviceAction { action, .. } => Some(action),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn overlapping_internet_windows_follow_the_latest_and_restore_the_first_mode() {
        let targets = targets(&[
            r#"{"when":{"for":"100ms"},"fault":{"device":"internet","mode":"online"}}"#,
            r#"{"when":{"at":"50ms","for":"100ms"},"fault":{"device":"internet","mode":"offline"}}"#,
        ]);
        let mut timeline = Timeline::new(targets.clone());
        let mode_at = |t: &mut Timeline, at| {
            t.step(ms(at));
            targets.internet.get()
        };
        assert_eq!(mode_at(&mut timeline, 10), InternetMode::Online);
        assert_eq!(mode_at(&mut timeline, 60), InternetMode::Offline);
        assert_eq!(mode_at(&mut timeline, 120), InternetMode::Offline);
        assert_eq!(mode_at(&mut timeline, 160), InternetMode::Captive);
        assert_eq!(actions(&targets), ["internet_restored"]);
    }

    #[tokio::test]
    async fn a_reboot_wins_over_an_ap_outage_and_both_end_on_time() {
        let targets = targets(&[
            r#"{"when":{"at":"10ms"},"fault":{"device":"ap_down","for":"100ms"}}"#,
            r#"{"when":{"at":"50ms"},"fault":{"device":"reboot","down":"20ms"}}"#,
        ]);
        let mut timeline = Timeline::new(targets.clone());
        let outage_at = |t: &mut Timeline, at| {
            t.step(ms(at));
            *targets.device.outage().borrow()
        };
        assert_eq!(outage_at(&mut timeline, 5), Outage::None);
        assert_eq!(outage_at(&mut timeline, 20), Outage::ApDown);
        assert_eq!(outage_at(&mut timeline, 55), Outage::Rebooting);
        assert_eq!(outage_at(&mut timeline, 80), Outage::ApDown);
        assert_eq!(outage_at(&mut timeline, 110), Outage::None);
        assert_eq!(actions(&targets), ["ap_down", "reboot", "boot", "ap_up"]);
    }

    #[tokio::test]
    async fn windows_that_passed_before_the_first_step_are_replayed_in_order() {
        let targets = targets(&[
            r#"{"when":{"at":"10ms"},"fault":{"device":"reboot","down":"20ms"}}"#,
            r#"{"when":{"at":"40ms"},"fault":{"device":"ap_down","for":"10ms"}}"#,
            r#"{"when":{"at":"60ms","for":"10ms"},"fault":{"device":"socket_exhaustion","sockets":1}}"#,
        ]);
        let mut timeline = Timeline::new(targets.clone());
        // The task's first run comes after every window ended (a host stalled at start).
        timeline.catch_up(ms(500));
        assert_eq!(
            actions(&targets),
            [
                "reboot",
                "boot",
                "ap_down",
                "ap_up",
                "sockets_held",
                "sockets_released"
            ]
        );
        assert_eq!(*targets.device.outage().borrow(), Outage::None);
    }

    #[tokio::test]
    async fn a_stall_between_steps_replays_every_edge_it_passed() {
        let targets = targets(&[
            r#"{"when":{"at":"100ms"},"fault":{"device":"reboot","down":"20ms"}}"#,
            r#"{"when":{"at":"150ms"},"fault":{"device":"ap_down","for":"10ms"}}"#,
        ]);
        let mut timeline = Timeline::new(targets.clone());
        timeline.catch_up(ms(50));
        assert!(actions(&targets).is_empty());
        timeline.catch_up(ms(110));
        assert_eq!(actions(&targets), ["reboot"]);
        timeline.catch_up(ms(400));
        assert_eq!(actions(&targets), ["reboot", "boot", "ap_down", "ap_up"]);
        // Nothing is replayed twice.
        timeline.catch_up(ms(500));
        assert_eq!(actions(&targets).len(), 4);
    }

    #[tokio::test]
    async fn a_rule_added_later_does_not_replay_windows_that_ended_before_it() {
        let targets = targets(&[]);
        let mut timeline = Timeline::new(targets.clone());
        timeline.catch_up(ms(10));
        let past: FaultRule = serde_json::from_str(
            r#"{"when":{"at":"20ms"},"fault":{"device":"reboot","down":"10ms"}}"#,
        )
        .expect("rule");
        let open: FaultRule = serde_json::from_str(
            r#"{"when":{"at":"50ms","for":"1s"},"fault":{"device":"socket_exhaustion","sockets":1}}"#,
        )
        .expect("rule");
        targets.faults.add(past).expect("added");
        targets.faults.add(open).expect("added");
        // Seen at 200 ms: the reboot window had ended, the other one is still open.
        timeline.catch_up(ms(200));
        assert_eq!(actions(&targets), ["sockets_held"]);
    }

    #[tokio::test]
    async fn socket_exhaustion_holds_slots_for_its_window_only() {
        let targets = targets(&[
            r#"{"when":{"for":"100ms"},"fault":{"device":"socket_exhaustion","sockets":7}}"#,
        ]);
        let mut timeline = Timeline::new(targets.clone());
        let peer = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        timeline.step(ms(1));
        assert!(matches!(
            targets.sockets.admit(1, peer),
            crate::sockets::Admission::Wait { open: 7, .. }
        ));
        timeline.step(ms(100));
        assert!(matches!(
            targets.sockets.admit(2, peer),
            crate::sockets::Admission::Now { .. }
        ));
        assert_eq!(actions(&targets), ["sockets_held", "sockets_released"]);
    }
    /// The task, not a test's manual steps, on paused time: each window edge happens exactly
    /// on the run clock, however long the windows are.
    #[tokio::test(start_paused = true)]
    async fn the_running_timeline_opens_and_closes_windows_exactly_on_the_run_clock() {
        let targets = targets(&[
            r#"{"when":{"at":"10s"},"fault":{"device":"ap_down","for":"5s"}}"#,
            r#"{"when":{"at":"1m","for":"30s"},"fault":{"device":"internet","mode":"offline"}}"#,
        ]);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(targets.clone(), cancel.clone()));
        let mut outage = targets.device.outage();

        tokio::time::advance(ms(9_999)).await;
        tokio::task::yield_now().await;
        assert_eq!(*outage.borrow_and_update(), Outage::None, "not before 10 s");
        outage.changed().await.expect("outage changes");
        assert_eq!(*outage.borrow_and_update(), Outage::ApDown);
        assert_eq!(targets.events.elapsed(), ms(10_000));
        outage.changed().await.expect("outage changes");
        assert_eq!(*outage.borrow_and_update(), Outage::None);
        assert_eq!(targets.events.elapsed(), ms(15_000));

        let mut events = targets.events.subscribe();
        let at = |kind: &str| {
            targets
                .events
                .snapshot()
                .into_iter()
                .filter(|e| e.kind.name() == kind)
                .map(|e| e.at_ms)
                .collect::<Vec<_>>()
        };
        while at("internet_changed").len() < 2 {
            events.recv().await.expect("events flow");
        }
        assert_eq!(at("internet_changed"), [60_000, 90_000]);
        assert_eq!(targets.internet.get(), InternetMode::Captive);
        assert_eq!(actions(&targets), ["ap_down", "ap_up", "internet_restored"]);
        cancel.cancel();
        task.await.expect("the task ends on cancel");
    }
}
