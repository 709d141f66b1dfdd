//! What every service shares: settings, switches, the event log and the shutdown signal.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use espsim_faults::FaultPlan;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::WsSettings;
use crate::device::DeviceHub;
use crate::events::{ConnId, EventKind, EventLog};
use crate::internet::{InternetMode, InternetSwitch};
use crate::profile::Profile;
use crate::sockets::SocketTable;

/// The device's network outage now, set by the device-fault timeline (`reboot`, `ap_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Outage {
    /// Serving normally.
    #[default]
    None,
    /// The chip is rebooting: nothing listens (new connections are refused: RST), existing
    /// connections are gone (reset), DNS does not answer.
    Rebooting,
    /// The access point is gone: nothing is reachable. New connections get no answer, existing
    /// ones go silent (no FIN, no RST) and are reset when the AP is back; DNS does not answer.
    ApDown,
}

/// State shared by all services of one running emulator.
#[derive(Debug)]
pub(crate) struct Shared {
    /// ESP-IDF limits and quirks.
    pub(crate) profile: Profile,
    /// The address DNS hands out (the softAP's IP).
    pub(crate) device_ip: Ipv4Addr,
    /// Online / captive / offline, switchable at run time.
    pub(crate) internet: InternetSwitch,
    /// WebSocket endpoint settings.
    pub(crate) ws: WsSettings,
    /// The firmware device, shared by every WebSocket session.
    pub(crate) device: DeviceHub,
    /// The device's socket slots (`max_open_sockets`, LRU purge).
    pub(crate) sockets: SocketTable,
    /// The fault rules and the run's seeded RNG, asked on every accept, handshake, message and
    /// DNS question.
    pub(crate) faults: Arc<FaultPlan>,
    /// Everything observable.
    pub(crate) events: Arc<EventLog>,
    /// The current outage; services watch it (`outage.subscribe()`), the timeline sets it.
    pub(crate) outage: watch::Sender<Outage>,
    /// Cancelled on shutdown; every task watches it.
    pub(crate) cancel: CancellationToken,
    /// Every spawned task, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Set on shutdown before `cancel` fires: by then every closing handshake must be over
    /// (the app that does not answer the close frame is dropped), so the closes are recorded
    /// and in the event file when the shutdown returns.
    close_by: OnceLock<tokio::time::Instant>,
    next_conn: AtomicU64,
    next_upgrade: AtomicU64,
}

impl Shared {
    /// Assembles the shared state.
    pub(crate) fn new(
        profile: Profile,
        device_ip: Ipv4Addr,
        internet: InternetMode,
        ws: WsSettings,
        device: DeviceHub,
        faults: Arc<FaultPlan>,
        events: Arc<EventLog>,
    ) -> Self {
        let sockets = SocketTable::new(profile.max_open_sockets, profile.lru_purge);
        Shared {
            profile,
            device_ip,
            internet: InternetSwitch::new(internet),
            ws,
            device,
            sockets,
            faults,
            events,
            outage: watch::Sender::new(Outage::None),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            close_by: OnceLock::new(),
            next_conn: AtomicU64::new(1),
            next_upgrade: AtomicU64::new(1),
        }
    }

    /// Starts the shutdown: closing handshakes must end within `close_wait` from now, then
    /// every task is told to stop. Only the first call counts.
    pub(crate) fn stop(&self, close_wait: Duration) {
        let now = tokio::time::Instant::now();
        let _ = self
            .close_by
            .set(now.checked_add(close_wait).unwrap_or(now));
        self.cancel.cancel();
        self.tracker.close();
    }

    /// When a closing handshake that starts now must be over: `usual` from now, or the
    /// shutdown's deadline if that comes first.
    pub(crate) fn close_deadline(&self, usual: Duration) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let usual = now.checked_add(usual).unwrap_or(now);
        match self.close_by.get() {
            Some(by) => usual.min(*by),
            None => usual,
        }
    }

    /// A fresh connection id (1, 2, 3, … in accept order).
    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// The ordinal of a WebSocket upgrade request (1, 2, 3, …): what `connections:` counts for
    /// handshake and message faults, so connectivity checks on the same port do not shift it.
    pub(crate) fn next_upgrade_ordinal(&self) -> u64 {
        self.next_upgrade.fetch_add(1, Ordering::Relaxed)
    }

    /// Records an event.
    pub(crate) fn emit(&self, kind: EventKind) {
        self.events.emit(kind);
    }

    /// Starts the run clock now, recording `clock_started` with `reason` when this call started
    /// it (true); false when it was already running. The one path for every way of starting it
    /// (the library call, the control API), so the event is recorded exactly once.
    pub(crate) fn start_clock(&self, reason: &str) -> bool {
        let started = self.faults.start_clock(self.events.elapsed());
        if started {
            self.emit(EventKind::ClockStarted {
                reason: reason.to_owned(),
            });
        }
        started
    }

    /// Switches the internet mode and records the change.
    pub(crate) fn set_internet(&self, to: InternetMode) {
        let from = self.internet.set(to);
        if from != to {
            self.emit(EventKind::InternetChanged { from, to });
        }
    }
}
