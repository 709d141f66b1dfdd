//! The one firmware `Device` of an emulator, shared by every WebSocket session.
//!
//! The firmware is sans-IO: it takes frames and clock ticks and returns [`Action`]s. [`DeviceHub`]
//! owns it behind a mutex together with a registry `conn → outgoing channel`, so a reply, a
//! broadcast (`Recipient::All`) or a telemetry tick reaches the right sessions in the order the
//! firmware produced it. A timer task, driven by `Device::next_deadline`, calls `on_tick`.
//! Time is milliseconds since the emulator started (`EventLog::elapsed`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use espsim_firmware::{Action, Device, DeviceSettings, Recipient, SimBoard};
use tokio::sync::{Notify, mpsc};

use crate::context::Shared;
use crate::events::{ConnId, EventKind, EventLog};

/// Firmware settings for the emulated device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Token the app must present (`Authorization: Bearer`, `?token=` or `hello`); `None` means
    /// no authentication.
    pub auth_token: Option<String>,
    /// Seed for the simulated board's sensors (same seed, same telemetry).
    pub seed: u64,
    /// Device id reported in `welcome`/`status`; `None` keeps the firmware's default.
    pub device_id: Option<String>,
    /// Firmware version reported in `welcome`; `None` keeps the firmware's default.
    pub firmware_version: Option<String>,
}

impl DeviceOptions {
    /// The firmware's settings for these options.
    fn settings(&self) -> DeviceSettings {
        let mut s = DeviceSettings::default();
        s.auth_token = self.auth_token.clone();
        if let Some(id) = &self.device_id {
            s.device_id = id.clone();
        }
        if let Some(v) = &self.firmware_version {
            s.firmware_version = v.clone();
        }
        s
    }
}

/// What the device sends a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// A text message (JSON) and its protocol `type`.
    Text {
        /// The encoded message.
        text: String,
        /// Its `type`, for the `ws_message` event.
        msg_type: &'static str,
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

/// The firmware and the sessions it talks to.
struct Inner {
    device: Device<SimBoard>,
    sessions: BTreeMap<ConnId, mpsc::UnboundedSender<Outgoing>>,
}

/// The one `Device` of an emulator and its fan-out to sessions.
pub(crate) struct DeviceHub {
    options: DeviceOptions,
    inner: Mutex<Inner>,
    events: Arc<EventLog>,
    /// Woken whenever a call may have moved the firmware's next deadline.
    rearm: Notify,
}

impl std::fmt::Debug for DeviceHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHub")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl DeviceHub {
    /// A device with a simulated board seeded from `options.seed`.
    pub(crate) fn new(options: DeviceOptions, events: Arc<EventLog>) -> Self {
        let device = Device::new(SimBoard::new(options.seed), options.settings());
        DeviceHub {
            options,
            inner: Mutex::new(Inner {
                device,
                sessions: BTreeMap::new(),
            }),
            events,
            rearm: Notify::new(),
        }
    }

    /// Starts the firmware's timer task (tracked by `shared.tracker`, ended by `shared.cancel`).
    pub(crate) fn start(&self, shared: &Arc<Shared>) {
        let shared2 = shared.clone();
        shared.tracker.spawn(async move {
            let hub = &shared2.device;
            loop {
                let wait = hub.lock().device.next_deadline().map(|at| {
                    // At least 1 ms, so a deadline the firmware leaves in the past cannot spin.
                    Duration::from_millis(at.saturating_sub(hub.now_ms()).max(1))
                });
                let sleep = async {
                    match wait {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shared2.cancel.cancelled() => break,
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

    /// Registers a new session and runs the firmware's `on_connect`. The receiver yields what the
    /// device sends this connection, until [`DeviceHub::disconnect`].
    pub(crate) fn connect(&self, conn: ConnId) -> mpsc::UnboundedReceiver<Outgoing> {
        let (tx, rx) = mpsc::unbounded_channel();
        let now = self.now_ms();
        let mut inner = self.lock();
        inner.sessions.insert(conn, tx);
        let actions = inner.device.on_connect(conn, now);
        self.dispatch(&mut inner, actions);
        drop(inner);
        self.rearm.notify_one();
        rx
    }

    /// Marks `conn` as authenticated (token accepted at the handshake).
    pub(crate) fn authorize(&self, conn: ConnId) {
        self.lock().device.authorize(conn);
    }

    /// Hands one received message to the firmware.
    pub(crate) fn frame(&self, conn: ConnId, payload: &[u8]) {
        let now = self.now_ms();
        let mut inner = self.lock();
        let actions = inner.device.on_frame(conn, payload, now);
        self.dispatch(&mut inner, actions);
        drop(inner);
        self.rearm.notify_one();
    }

    /// Unregisters a session and tells the firmware (it stops that connection's telemetry).
    pub(crate) fn disconnect(&self, conn: ConnId) {
        let now = self.now_ms();
        let mut inner = self.lock();
        if inner.sessions.remove(&conn).is_none() {
            return;
        }
        let actions = inner.device.on_disconnect(conn, now);
        self.dispatch(&mut inner, actions);
        drop(inner);
        self.rearm.notify_one();
    }

    /// Drops every session at once without a close frame, as when the softAP goes down or the
    /// chip reboots. Returns how many sessions were dropped.
    pub(crate) fn drop_all_sessions(&self, reason: &str) -> usize {
        let inner = self.lock();
        drop_all(&inner, reason);
        inner.sessions.len()
    }

    /// Number of registered sessions.
    pub(crate) fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    fn tick(&self) {
        let now = self.now_ms();
        let mut inner = self.lock();
        let actions = inner.device.on_tick(now);
        self.dispatch(&mut inner, actions);
    }

    /// Routes the firmware's actions, under the device lock so that their order is kept.
    fn dispatch(&self, inner: &mut Inner, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    let text = match String::from_utf8(espsim_protocol::encode(&message)) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!("firmware message is not UTF-8: {e}");
                            continue;
                        }
                    };
                    let out = Outgoing::Text {
                        text,
                        msg_type: message.type_name(),
                    };
                    match to {
                        Recipient::Conn(conn) => {
                            if let Some(tx) = inner.sessions.get(&conn) {
                                let _ = tx.send(out);
                            }
                        }
                        Recipient::All => {
                            for tx in inner.sessions.values() {
                                let _ = tx.send(out.clone());
                            }
                        }
                    }
                }
                Action::Close { conn, code, reason } => {
                    if let Some(tx) = inner.sessions.get(&conn) {
                        let _ = tx.send(Outgoing::Close {
                            code,
                            reason: reason.to_string(),
                        });
                    }
                }
                Action::ApDown { duration_ms } => {
                    self.events.emit(EventKind::DeviceAction {
                        action: "ap_down".to_owned(),
                        detail: format!("softAP down for {duration_ms} ms"),
                    });
                    drop_all(inner, "softAP down");
                }
                Action::Restart { delay_ms } => {
                    self.events.emit(EventKind::DeviceAction {
                        action: "restart".to_owned(),
                        detail: format!("restart in {delay_ms} ms"),
                    });
                    drop_all(inner, "device restart");
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.events.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The firmware is plain data; a panic while holding the lock cannot leave it half-written in
    /// a way worse than refusing all further sessions, so a poisoned lock is recovered.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn drop_all(inner: &Inner, reason: &str) {
    for tx in inner.sessions.values() {
        let _ = tx.send(Outgoing::Drop {
            reason: reason.to_owned(),
        });
    }
}
