//! The device host: runs the one device logic of an emulator (the built-in firmware, a device
//! file or a user's own [`DeviceLogic`]), shared by every WebSocket session and HTTP request, and
//! owns what the network sees of the chip's state ([`Outage`]).
//!
//! The logic is sans-IO: it takes sessions, messages, HTTP requests and clock ticks and returns
//! [`Effect`]s. [`DeviceHost`] owns it behind a mutex together with a registry
//! `conn → outgoing channel`, so a reply, a broadcast (`To::All`, `To::Others`) or a periodic
//! message reaches the right sessions in the order the logic produced it. A timer task, driven by
//! `DeviceLogic::next_deadline`, calls `on_tick`.
//! Time is milliseconds since the emulator started (`EventLog::elapsed`).
//!
//! The host is the only writer of the outage the services watch ([`DeviceHost::outage`]):
//! merging the device-fault timeline's outage (`reboot`, `ap_down`) with the firmware's own
//! softAP outage while provisioning, and [`DeviceHost::power_on`] brings the chip back from a
//! reboot with fresh state (outputs off, uptime from then, saved config kept).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use espsim_firmware::{
    Device, DeviceLogic, DeviceSettings, Effect, Frame, HttpRequest, HttpResponse, Payload,
    SessionStart, SimBoard, To,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::device_process::Link;
use crate::events::{ConnId, EventKind, EventLog};
use crate::lifecycle::Lifecycle;

/// The device's network outage now, set by the device-fault timeline (`reboot`, `ap_down`) and
/// by the firmware's own softAP outage while it provisions.
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

/// Firmware settings for the emulated device. `None` keeps the firmware's default
/// (`espsim_firmware::DeviceSettings::default()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Token the app must present (`Authorization: Bearer`, `?token=` or `hello`); `None` means
    /// no authentication.
    pub auth_token: Option<String>,
    /// Device id reported in `welcome`, e.g. `esp32-a1b2c3`.
    pub device_id: Option<String>,
    /// Firmware version reported in `welcome`.
    pub firmware_version: Option<String>,
    /// Provisioning: time from the `ack` until the softAP goes down.
    pub ap_down_delay: Option<Duration>,
    /// Provisioning: how long the softAP stays down while the station joins.
    pub ap_down_duration: Option<Duration>,
    /// `reboot`: time from the `ack` until the restart.
    pub restart_delay: Option<Duration>,
}

impl DeviceOptions {
    /// The built-in firmware with these settings, on a simulated board seeded with the run's
    /// `seed` (same seed, same telemetry).
    pub(crate) fn builtin(&self, seed: u64) -> Box<dyn DeviceLogic + Send> {
        Box::new(Device::new(SimBoard::new(seed), self.settings()))
    }

    /// The firmware's settings for these options.
    fn settings(&self) -> DeviceSettings {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let d = DeviceSettings::default();
        DeviceSettings {
            auth_token: self.auth_token.clone(),
            device_id: self.device_id.clone().unwrap_or(d.device_id.clone()),
            firmware_version: self
                .firmware_version
                .clone()
                .unwrap_or(d.firmware_version.clone()),
            ap_down_delay_ms: self.ap_down_delay.map_or(d.ap_down_delay_ms, ms),
            ap_down_duration_ms: self.ap_down_duration.map_or(d.ap_down_duration_ms, ms),
            restart_delay_ms: self.restart_delay.map_or(d.restart_delay_ms, ms),
            ..d
        }
    }
}

/// What the device sends a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// A data message and what it is.
    Message {
        /// The bytes.
        payload: Payload,
        /// Its label (the built-in protocol's `type`, a device file's rule), for the
        /// `ws_message` event and the `message_type` fault trigger.
        label: String,
    },
    /// Close with a close frame.
    Close {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Drop the socket without a close frame (AP down, reboot).
    Drop {
        /// Why, for the `ws_closed` event.
        reason: String,
    },
}

/// Most device messages waiting for one session's writer (each at most
/// `espsim_protocol::MAX_MESSAGE_SIZE` bytes). ESP-IDF has no such queue: a send to an app that
/// does not read blocks and fails after `send_wait_timeout`, and the session is closed. Here a
/// session whose writer falls this far behind (the app reads too slowly, or a `ws: delay` holds
/// its messages) is closed the same way, without a close frame, and says why.
pub(crate) const OUTBOX: usize = 64;

/// What a session receives from the device: its messages, in order, and a signal that it fell
/// [`OUTBOX`] messages behind.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// The device's messages for this session.
    pub(crate) rx: mpsc::Receiver<Outgoing>,
    /// Cancelled when a message did not fit: the session must end.
    pub(crate) overflow: CancellationToken,
}

/// The device's side of one session's [`Outbox`].
struct SessionTx {
    tx: mpsc::Sender<Outgoing>,
    overflow: CancellationToken,
}

impl SessionTx {
    /// Queues a message. A message needs one free slot beyond the reserved one, so the one `Close` or
    /// `Drop` a session can get always fits; a text that does not fit ends the session.
    fn send(&self, out: Outgoing) {
        let fits = match out {
            Outgoing::Message { .. } => self.tx.capacity() > 1,
            Outgoing::Close { .. } | Outgoing::Drop { .. } => true,
        };
        if !fits || self.tx.try_send(out).is_err() {
            self.overflow.cancel();
        }
    }
}

/// The device logic and the sessions it talks to.
struct Inner {
    device: Box<dyn DeviceLogic + Send>,
    sessions: BTreeMap<ConnId, SessionTx>,
    /// When an accepted `reboot` takes effect (ms since start).
    restart_at: Option<u64>,
    /// When the softAP is back after `ApDown` (the firmware wants a tick then); `Some` while
    /// the firmware has its softAP down.
    ap_back_at: Option<u64>,
    /// The outage the device-fault timeline wants (`reboot`, `ap_down` windows).
    fault_outage: Outage,
    /// The device process crashed and is restarting (or stays down): like a reboot.
    process_down: bool,
}

impl Inner {
    /// The next time the timer task must act.
    fn deadline(&self) -> Option<u64> {
        [
            self.device.next_deadline(),
            self.restart_at,
            self.ap_back_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Tells every session to drop its socket without a close frame, and forgets them.
    fn drop_all(&mut self, reason: &str) -> usize {
        let sessions = std::mem::take(&mut self.sessions);
        for tx in sessions.values() {
            tx.send(Outgoing::Drop {
                reason: reason.to_owned(),
            });
        }
        sessions.len()
    }

    /// The chip comes out of reset at `now`: the logic loses its RAM state and keeps its flash
    /// (`DeviceLogic::power_on`), and nothing scheduled before the reset happens.
    fn power_on(&mut self, now: u64) {
        self.device.power_on(now);
        self.restart_at = None;
        self.ap_back_at = None;
    }
}

/// The one device logic of an emulator and its fan-out to sessions.
pub(crate) struct DeviceHost {
    options: DeviceOptions,
    inner: Mutex<Inner>,
    events: Arc<EventLog>,
    /// Woken whenever a call may have moved the next deadline.
    rearm: Notify,
    /// The outage the services watch: the fault timeline's outage merged with the firmware's
    /// own softAP outage, always written under the device lock.
    outage: watch::Sender<Outage>,
    /// The device process's link, when the logic is one (its HTTP answers are asynchronous).
    process: Option<Arc<Link>>,
}

impl std::fmt::Debug for DeviceHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHost")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl DeviceHost {
    /// A host for `device`; `options` gives the token the handshake checks.
    pub(crate) fn new(
        options: DeviceOptions,
        device: Box<dyn DeviceLogic + Send>,
        events: Arc<EventLog>,
    ) -> Self {
        DeviceHost {
            options,
            inner: Mutex::new(Inner {
                device,
                sessions: BTreeMap::new(),
                restart_at: None,
                ap_back_at: None,
                fault_outage: Outage::None,
                process_down: false,
            }),
            events,
            rearm: Notify::new(),
            outage: watch::Sender::new(Outage::None),
            process: None,
        }
    }

    /// The logic is a device process reached through `link`: HTTP requests are asked of it
    /// asynchronously ([`DeviceHost::http`]).
    pub(crate) fn with_process(mut self, link: Arc<Link>) -> Self {
        self.process = Some(link);
        self
    }

    /// The outage now and its changes, for the services that react to it (HTTP, DNS).
    pub(crate) fn outage(&self) -> watch::Receiver<Outage> {
        self.outage.subscribe()
    }

    /// Sets the outage outright, bypassing the merge: tests of the services' reaction.
    #[cfg(test)]
    pub(crate) fn force_outage(&self, outage: Outage) {
        self.outage.send_replace(outage);
    }

    /// Sets the outage the device-fault timeline wants; the watched outage becomes it merged with
    /// the firmware's own softAP outage (a reboot wins over an AP outage).
    pub(crate) fn set_fault_outage(&self, outage: Outage) {
        let mut inner = self.lock();
        inner.fault_outage = outage;
        self.publish_outage(&inner);
    }

    /// The device process crashed (`true`: sessions must be dropped, the port refuses like a
    /// rebooting chip) or serves again (`false`).
    pub(crate) fn set_process_down(&self, down: bool) {
        let mut inner = self.lock();
        inner.process_down = down;
        self.publish_outage(&inner);
    }

    /// Carries out effects that did not come from a call into the logic (a device process's
    /// lines), in order with the logic's own, as [`DeviceHost::push`] does.
    pub(crate) fn apply(&self, effects: Vec<Effect>) {
        let now = self.now_ms();
        let mut inner = self.lock();
        self.dispatch(&mut inner, effects, now);
        drop(inner);
        self.rearm.notify_one();
    }

    /// Publishes the merged outage.
    fn publish_outage(&self, inner: &Inner) {
        let merged = match inner.fault_outage {
            _ if inner.process_down => Outage::Rebooting,
            Outage::Rebooting => Outage::Rebooting,
            Outage::ApDown => Outage::ApDown,
            Outage::None if inner.ap_back_at.is_some() => Outage::ApDown,
            Outage::None => Outage::None,
        };
        self.outage.send_if_modified(|now| {
            let changed = *now != merged;
            *now = merged;
            changed
        });
    }

    /// Starts the timer task (tracked and ended by `lifecycle`): it calls the firmware's
    /// `on_tick` at `next_deadline` and carries out delayed restarts.
    pub(crate) fn start(self: &Arc<Self>, lifecycle: &Lifecycle) {
        let hub = self.clone();
        let cancel = lifecycle.cancel.clone();
        lifecycle.tracker.spawn(async move {
            loop {
                let wait = hub.lock().deadline().map(|at| {
                    // At least 1 ms, so a deadline left in the past cannot spin.
                    Duration::from_millis(at.saturating_sub(hub.now_ms()).max(1))
                });
                let sleep = async {
                    match wait {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = hub.rearm.notified() => {}
                    () = sleep => hub.tick(),
                }
            }
        });
    }

    /// The configured token, if the device requires one.
    pub(crate) fn auth_token(&self) -> Option<&str> {
        self.options.auth_token.as_deref()
    }

    /// Registers a new session and runs the logic's `on_connect`. The receiver yields what the
    /// device sends this connection until the session is unregistered.
    pub(crate) fn connect(&self, conn: ConnId, start: &SessionStart<'_>) -> Outbox {
        // One slot more than `OUTBOX`, reserved for the session's one `Close` or `Drop`.
        let (tx, rx) = mpsc::channel(OUTBOX + 1);
        let overflow = CancellationToken::new();
        let now = self.now_ms();
        let mut inner = self.lock();
        inner.sessions.insert(
            conn,
            SessionTx {
                tx,
                overflow: overflow.clone(),
            },
        );
        let effects = inner.device.on_connect(conn, start, now);
        self.dispatch(&mut inner, effects, now);
        drop(inner);
        self.rearm.notify_one();
        Outbox { rx, overflow }
    }

    /// What the logic calls a message received on `session` (`DeviceLogic::label`).
    pub(crate) fn label(&self, session: ConnId, frame: Frame<'_>) -> Option<String> {
        self.lock().device.label(session, frame)
    }

    /// Hands one received message to the logic.
    pub(crate) fn message(&self, conn: ConnId, frame: Frame<'_>) {
        let now = self.now_ms();
        let mut inner = self.lock();
        let effects = inner.device.on_message(conn, frame, now);
        self.dispatch(&mut inner, effects, now);
        drop(inner);
        self.rearm.notify_one();
    }

    /// Tells the logic a message over the profile's size limit was not handed over (the
    /// built-in firmware answers with its `too_large` error).
    pub(crate) fn oversized(&self, conn: ConnId, size: usize, max: usize) {
        let now = self.now_ms();
        let mut inner = self.lock();
        let effects = inner.device.on_oversized(conn, size, max, now);
        self.dispatch(&mut inner, effects, now);
        drop(inner);
        self.rearm.notify_one();
    }

    /// Sends `payload` as the device would (the control API's push): to one session or all, in
    /// order with the logic's own messages. Returns how many sessions it was queued for.
    pub(crate) fn push(&self, to: To, payload: Payload, label: String) -> usize {
        let now = self.now_ms();
        let mut inner = self.lock();
        let count = match to {
            To::Session(conn) => usize::from(inner.sessions.contains_key(&conn)),
            To::All => inner.sessions.len(),
            To::Others(conn) => inner.sessions.keys().filter(|c| **c != conn).count(),
        };
        self.dispatch(&mut inner, vec![Effect::Send { to, payload, label }], now);
        count
    }

    /// The logic's state variables (`name → JSON text`); `None` when it exposes none.
    pub(crate) fn state(&self) -> Option<BTreeMap<String, String>> {
        self.lock().device.state()
    }

    /// Sets one state variable (`json` is JSON text); the logic's answer is carried out.
    pub(crate) fn set_state(&self, name: &str, json: &str) -> Result<(), String> {
        let now = self.now_ms();
        let mut inner = self.lock();
        let effects = inner.device.set_state(name, json, now)?;
        self.dispatch(&mut inner, effects, now);
        drop(inner);
        self.rearm.notify_one();
        Ok(())
    }

    /// Whether the logic answers HTTP requests at all (`DeviceLogic::serves_http`).
    pub(crate) fn serves_http(&self) -> bool {
        self.lock().device.serves_http()
    }

    /// Asks the logic to answer an HTTP request; `None` leaves it to the host's own table.
    /// A device process answers asynchronously (or gets ESP-IDF's 500 page after its HTTP
    /// timeout); every other logic answers at once.
    pub(crate) async fn http(&self, request: &HttpRequest<'_>) -> Option<HttpResponse> {
        if let Some(link) = &self.process {
            return Some(link.http(request).await);
        }
        let now = self.now_ms();
        let mut inner = self.lock();
        let response = inner.device.on_http(request, now);
        self.dispatch(&mut inner, Vec::new(), now);
        drop(inner);
        // A route may have changed state that a timer depends on.
        self.rearm.notify_one();
        response
    }

    /// Unregisters a session and tells the logic (it ends that session's timers).
    pub(crate) fn disconnect(&self, conn: ConnId) {
        let now = self.now_ms();
        let mut inner = self.lock();
        if inner.sessions.remove(&conn).is_none() {
            // Already forgotten (AP down, restart, close by the firmware).
            return;
        }
        let effects = inner.device.on_disconnect(conn, now);
        self.dispatch(&mut inner, effects, now);
        drop(inner);
        self.rearm.notify_one();
    }

    /// Drops every session at once without a close frame, as when the softAP goes down or the
    /// chip reboots (the fault injector's `ap_down` / `reboot` use this). The firmware is told
    /// each connection ended. Returns how many sessions were dropped.
    pub(crate) fn drop_all_sessions(&self, reason: &str) -> usize {
        let now = self.now_ms();
        let mut inner = self.lock();
        let conns: Vec<ConnId> = inner.sessions.keys().copied().collect();
        let n = inner.drop_all(reason);
        for conn in conns {
            let _ = inner.device.on_disconnect(conn, now);
        }
        drop(inner);
        self.rearm.notify_one();
        n
    }

    /// The chip comes back from a reboot (the `reboot` device fault, once its `down` time is
    /// over): fresh firmware state, outputs off, uptime from now. Sessions must have been
    /// dropped when it went down ([`DeviceHost::drop_all_sessions`]); any left are dropped too.
    pub(crate) fn power_on(&self) {
        let now = self.now_ms();
        let mut inner = self.lock();
        inner.drop_all("device restart");
        inner.power_on(now);
        self.publish_outage(&inner);
        drop(inner);
        self.rearm.notify_one();
    }

    /// Presses the board's button (the built-in firmware broadcasts an `event` at once).
    pub(crate) fn press_button(&self) {
        let now = self.now_ms();
        let mut inner = self.lock();
        let effects = inner.device.on_button(now);
        self.dispatch(&mut inner, effects, now);
        drop(inner);
        self.rearm.notify_one();
    }

    /// Whether session `conn` is open.
    pub(crate) fn has_session(&self, conn: ConnId) -> bool {
        self.lock().sessions.contains_key(&conn)
    }

    /// Number of registered sessions.
    pub(crate) fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Timer work due now: a pending restart, then the firmware's tick.
    fn tick(&self) {
        let now = self.now_ms();
        let mut inner = self.lock();
        if inner.restart_at.is_some_and(|at| at <= now) {
            let dropped = inner.drop_all("device restart");
            inner.power_on(now);
            self.publish_outage(&inner);
            self.events.emit(EventKind::DeviceAction {
                action: "restart".to_owned(),
                detail: format!("rebooted; {dropped} session(s) dropped"),
            });
        }
        if inner.ap_back_at.is_some_and(|at| at <= now) {
            inner.ap_back_at = None;
            self.publish_outage(&inner);
            self.events.emit(EventKind::DeviceAction {
                action: "ap_up".to_owned(),
                detail: "softAP back".to_owned(),
            });
        }
        let effects = inner.device.on_tick(now);
        self.dispatch(&mut inner, effects, now);
    }

    /// Carries out the logic's effects, under the device lock so that their order is kept, and
    /// records the problems the logic reports.
    fn dispatch(&self, inner: &mut Inner, effects: Vec<Effect>, now: u64) {
        for detail in inner.device.take_problems() {
            self.events.emit(EventKind::DeviceAction {
                action: "logic_error".to_owned(),
                detail,
            });
        }
        for effect in effects {
            match effect {
                Effect::Send { to, payload, label } => {
                    let out = Outgoing::Message { payload, label };
                    match to {
                        To::Session(conn) => {
                            if let Some(tx) = inner.sessions.get(&conn) {
                                tx.send(out);
                            }
                        }
                        To::All => {
                            for tx in inner.sessions.values() {
                                tx.send(out.clone());
                            }
                        }
                        To::Others(sender) => {
                            for (_, tx) in inner.sessions.iter().filter(|(c, _)| **c != sender) {
                                tx.send(out.clone());
                            }
                        }
                    }
                }
                Effect::Close {
                    session,
                    code,
                    reason,
                } => {
                    // The logic has already forgotten the session.
                    if let Some(tx) = inner.sessions.remove(&session) {
                        tx.send(Outgoing::Close { code, reason });
                    }
                }
                Effect::ApDown { duration_ms } => {
                    // The firmware has already forgotten every connection. The outage is up
                    // before the sessions drop, so a reconnect right after meets it.
                    inner.ap_back_at = Some(now.saturating_add(duration_ms));
                    self.publish_outage(inner);
                    let dropped = inner.drop_all("softAP down");
                    self.events.emit(EventKind::DeviceAction {
                        action: "ap_down".to_owned(),
                        detail: format!(
                            "softAP down for {duration_ms} ms; {dropped} session(s) dropped"
                        ),
                    });
                }
                Effect::Restart { delay_ms } => {
                    // Later, so the `ack` reaches the app first.
                    inner.restart_at = Some(now.saturating_add(delay_ms));
                    self.events.emit(EventKind::DeviceAction {
                        action: "restart_scheduled".to_owned(),
                        detail: format!("restart in {delay_ms} ms"),
                    });
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.events.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The device state is plain data that a panic cannot leave worse than "one request
    /// half-handled", so a poisoned lock is recovered instead of failing every session.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next text message on `rx`, parsed.
    fn next_json(outbox: &mut Outbox) -> serde_json::Value {
        match outbox.rx.try_recv() {
            Ok(Outgoing::Message {
                payload: Payload::Text(text),
                ..
            }) => serde_json::from_str(&text).expect("json"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// A host running the built-in firmware.
    fn builtin(options: DeviceOptions, events: Arc<EventLog>) -> DeviceHost {
        let logic = options.builtin(0);
        DeviceHost::new(options, logic, events)
    }

    /// Opens session `conn` as an unauthenticated upgrade of `/ws`.
    fn open(hub: &DeviceHost, conn: ConnId) -> Outbox {
        let start = SessionStart {
            path: "/ws",
            query: None,
            headers: &[],
            authorized: false,
        };
        hub.connect(conn, &start)
    }

    #[test]
    fn power_on_drops_sessions_and_boots_with_outputs_off() {
        let hub = builtin(DeviceOptions::default(), Arc::new(EventLog::new()));
        let mut first = open(&hub, 1);
        hub.message(
            1,
            Frame::Text(r#"{"type":"set_output","id":1,"name":"relay","on":true}"#),
        );
        assert_eq!(next_json(&mut first)["type"], "ack");

        hub.power_on();
        assert!(matches!(first.rx.try_recv(), Ok(Outgoing::Drop { .. })));
        assert_eq!(hub.session_count(), 0);

        let mut second = open(&hub, 2);
        hub.message(2, Frame::Text(r#"{"type":"get_status","id":2}"#));
        let status = next_json(&mut second);
        assert_eq!(status["outputs"]["relay"], false, "{status}");
        assert_eq!(status["clients"], 1);
    }

    #[test]
    fn a_session_that_falls_outbox_messages_behind_is_told_to_end_and_close_still_fits() {
        let hub = builtin(DeviceOptions::default(), Arc::new(EventLog::new()));
        let mut outbox = open(&hub, 1);
        let _welcome_or_nothing = outbox.rx.try_recv();
        for _ in 0..OUTBOX {
            hub.press_button();
        }
        assert!(!outbox.overflow.is_cancelled(), "{OUTBOX} messages fit");
        hub.press_button();
        assert!(
            outbox.overflow.is_cancelled(),
            "message {} overflows",
            OUTBOX + 1
        );
        assert_eq!(outbox.rx.len(), OUTBOX, "the queue never holds more");
        hub.drop_all_sessions("test");
        assert_eq!(outbox.rx.len(), OUTBOX + 1, "the drop still fits");
    }

    /// A device-file template that fails at run time sends nothing, and the host records why.
    #[test]
    fn a_logic_problem_is_recorded_as_a_logic_error_event() {
        let file = espsim_device_file::parse(
            "name: x\nrules:\n  - name: big\n    reply: { text: \"{{ 'x' * 70000 }}\" }\n",
            std::path::Path::new("x.yaml"),
        )
        .expect("parses");
        let events = Arc::new(EventLog::new());
        let logic = Box::new(file.device(0).expect("builds"));
        let hub = DeviceHost::new(DeviceOptions::default(), logic, events.clone());
        let mut outbox = open(&hub, 1);
        hub.message(1, Frame::Text("go"));
        let sent = outbox.rx.try_recv();
        assert!(sent.is_err(), "nothing is sent: {sent:?}");
        let problems: Vec<String> = events
            .snapshot()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::DeviceAction { action, detail } if action == "logic_error" => {
                    Some(detail)
                }
                _ => None,
            })
            .collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("big: "), "{problems:?}");
    }

    #[test]
    fn options_override_only_what_they_set() {
        let defaults = DeviceSettings::default();
        assert_eq!(DeviceOptions::default().settings(), defaults);
        let s = DeviceOptions {
            auth_token: Some("t".into()),
            device_id: Some("esp32-a1b2c3".into()),
            firmware_version: Some("2.0.0".into()),
            restart_delay: Some(Duration::from_millis(5)),
            ..DeviceOptions::default()
        }
        .settings();
        assert_eq!(s.auth_token.as_deref(), Some("t"));
        assert_eq!(s.device_id, "esp32-a1b2c3");
        assert_eq!(s.firmware_version, "2.0.0");
        assert_eq!(s.restart_delay_ms, 5);
        assert_eq!(s.ap_down_duration_ms, defaults.ap_down_duration_ms);
    }

    /// The firmware's timers run on the run clock, so on paused time a provisioning's softAP
    /// outage starts and ends exactly `ap_down_delay` and `ap_down_delay + ap_down_duration`
    /// after the `ack`, whatever the durations.
    #[tokio::test(start_paused = true)]
    async fn provisioning_takes_the_softap_down_exactly_on_the_firmwares_timers() {
        let options = DeviceOptions {
            ap_down_delay: Some(Duration::from_secs(2)),
            ap_down_duration: Some(Duration::from_secs(30)),
            ..DeviceOptions::default()
        };
        let events = Arc::new(EventLog::new());
        let hub = Arc::new(builtin(options, events.clone()));
        let lifecycle = Lifecycle::new();
        hub.start(&lifecycle);
        let mut outage = hub.outage();
        let mut session = open(&hub, 1);
        hub.message(
            1,
            Frame::Text(
                r#"{"type":"provision","id":1,"ssid":"espsim-home","password":"espsim-password"}"#,
            ),
        );
        assert_eq!(next_json(&mut session)["type"], "ack");

        outage.changed().await.expect("outage changes");
        assert_eq!(*outage.borrow_and_update(), Outage::ApDown);
        assert_eq!(events.elapsed(), Duration::from_secs(2));
        // Whatever the firmware said before, the last word is the drop.
        let mut last = None;
        while let Ok(out) = session.rx.try_recv() {
            last = Some(out);
        }
        assert!(matches!(last, Some(Outgoing::Drop { .. })), "{last:?}");
        assert_eq!(hub.session_count(), 0, "the firmware forgot the session");

        outage.changed().await.expect("outage changes");
        assert_eq!(*outage.borrow_and_update(), Outage::None);
        assert_eq!(events.elapsed(), Duration::from_secs(32));
        lifecycle.stop(Duration::ZERO);
        lifecycle.tracker.wait().await;
    }

    /// An accepted `reboot` restarts the chip exactly `restart_delay` after the `ack`: the
    /// session is dropped then, not before.
    #[tokio::test(start_paused = true)]
    async fn a_reboot_restarts_exactly_after_the_restart_delay() {
        let options = DeviceOptions {
            restart_delay: Some(Duration::from_secs(5)),
            ..DeviceOptions::default()
        };
        let events = Arc::new(EventLog::new());
        let hub = Arc::new(builtin(options, events.clone()));
        let lifecycle = Lifecycle::new();
        hub.start(&lifecycle);
        let mut session = open(&hub, 1);
        hub.message(1, Frame::Text(r#"{"type":"reboot","id":1}"#));
        assert_eq!(next_json(&mut session)["type"], "ack");

        tokio::time::advance(Duration::from_millis(4_999)).await;
        tokio::task::yield_now().await;
        assert_eq!(hub.session_count(), 1, "still up 1 ms before the restart");
        assert!(matches!(
            session.rx.recv().await,
            Some(Outgoing::Drop { .. })
        ));
        assert_eq!(events.elapsed(), Duration::from_secs(5));
        let restart = events
            .snapshot()
            .into_iter()
            .find(|e| {
                matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "restart")
            })
            .expect("the restart is recorded");
        assert_eq!(restart.at_ms, 5_000);
        lifecycle.stop(Duration::ZERO);
        lifecycle.tracker.wait().await;
    }
}
