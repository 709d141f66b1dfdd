//! The one `Device` and the WebSocket connections it talks to, as the emulator's `DeviceHost`
//! does it: every firmware call goes through here, and its [`Action`]s are routed to the
//! connections' outboxes in the order the firmware produced them.
//!
//! Everything runs on the one embassy executor (single core), so a `RefCell` is the lock: no
//! borrow is held across an `.await`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use embassy_futures::select::select;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use espsim_firmware::captive::EDGE_LIMITS;
use espsim_firmware::protocol::encode;
use espsim_firmware::{Action, ConnId, Device, Recipient};

use crate::board::C3Board;

/// Frames queued per connection before the connection counts as stuck and is dropped.
const OUTBOX: usize = 8;

/// The timer loop also polls the button at this period.
const POLL: Duration = Duration::from_millis(50);

/// What a connection's writer sends next.
#[derive(Debug)]
pub enum Out {
    /// A text frame.
    Text(Vec<u8>),
    /// A pong answering a ping (ESP-IDF answers pings itself).
    Pong(Vec<u8>),
    /// A close frame, then the connection ends.
    Close(Vec<u8>),
}

/// One WebSocket worker's mailbox.
pub struct Slot {
    /// The connection this slot serves, while the firmware knows it.
    conn: Cell<Option<ConnId>>,
    /// Frames for the writer.
    pub outbox: Channel<NoopRawMutex, Out, OUTBOX>,
    /// Drop the connection without a close frame (softAP outage, stuck client, restart).
    pub drop: Signal<NoopRawMutex, ()>,
}

/// The device, its connections and the timers the firmware asked for.
pub struct Hub {
    device: RefCell<Device<C3Board>>,
    slots: [Slot; EDGE_LIMITS.max_open_sockets],
    next_conn: Cell<ConnId>,
    restart_at: Cell<Option<u64>>,
    ap_back_at: Cell<Option<u64>>,
    rearm: Signal<NoopRawMutex, ()>,
}

/// Milliseconds since boot: the device's clock.
pub fn now_ms() -> u64 {
    Instant::now().as_millis()
}

impl Hub {
    /// Leaks one hub for the program's lifetime (tasks need `'static`).
    pub fn leak(device: Device<C3Board>) -> &'static Hub {
        Box::leak(Box::new(Hub {
            device: RefCell::new(device),
            slots: core::array::from_fn(|_| Slot {
                conn: Cell::new(None),
                outbox: Channel::new(),
                drop: Signal::new(),
            }),
            next_conn: Cell::new(1),
            restart_at: Cell::new(None),
            ap_back_at: Cell::new(None),
            rearm: Signal::new(),
        }))
    }

    /// The mailbox of worker `slot`.
    pub fn slot(&self, slot: usize) -> &Slot {
        &self.slots[slot]
    }

    /// A WebSocket connection opened on worker `slot`: a fresh id, registered with the firmware.
    pub fn connect(&self, slot: usize) -> ConnId {
        let conn = self.next_conn.get();
        self.next_conn.set(conn.wrapping_add(1));
        let s = &self.slots[slot];
        s.outbox.clear();
        s.drop.reset();
        s.conn.set(Some(conn));
        let actions = self.device.borrow_mut().on_connect(conn, now_ms());
        self.dispatch(actions);
        conn
    }

    /// The token was accepted at the handshake (`Authorization: Bearer`, `?token=`).
    pub fn authorize(&self, conn: ConnId) {
        self.device.borrow_mut().authorize(conn);
    }

    /// The token the device requires, if any.
    pub fn auth_token(&self) -> Option<String> {
        self.device.borrow().settings().auth_token.clone()
    }

    /// One received text (or binary) message. A connection the firmware already forgot (AP
    /// outage, auth close) is not handed back to it.
    pub fn frame(&self, conn: ConnId, payload: &[u8]) {
        if self.slot_of(conn).is_none() {
            return;
        }
        let actions = self.device.borrow_mut().on_frame(conn, payload, now_ms());
        self.dispatch(actions);
        self.rearm.signal(());
    }

    /// The connection on `slot` ended; tells the firmware unless it already forgot it.
    pub fn disconnect(&self, slot: usize, conn: ConnId) {
        let s = &self.slots[slot];
        if s.conn.get() == Some(conn) {
            s.conn.set(None);
            let actions = self.device.borrow_mut().on_disconnect(conn, now_ms());
            self.dispatch(actions);
            self.rearm.signal(());
        }
    }

    fn deadline(&self) -> Option<u64> {
        [
            self.device.borrow().next_deadline(),
            self.restart_at.get(),
            self.ap_back_at.get(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Timer work due now: a pending restart, the end of an AP outage, the firmware's tick.
    fn tick(&self) {
        let now = now_ms();
        if self.restart_at.get().is_some_and(|at| at <= now) {
            log::info!("restarting");
            esp_hal::system::software_reset();
        }
        if self.ap_back_at.get().is_some_and(|at| at <= now) {
            self.ap_back_at.set(None);
            log::info!("provisioning: outage window over");
        }
        let actions = self.device.borrow_mut().on_tick(now);
        self.dispatch(actions);
    }

    fn slot_of(&self, conn: ConnId) -> Option<&Slot> {
        self.slots.iter().find(|s| s.conn.get() == Some(conn))
    }

    /// Queues `out` for `slot`; a client that lets its outbox fill is dropped (its worker then
    /// reports the disconnect to the firmware).
    fn queue(&self, slot: &Slot, out: Out) {
        if slot.outbox.try_send(out).is_err() {
            log::warn!("outbox full: dropping the connection");
            slot.drop.signal(());
        }
    }

    /// Whether the softAP is in its provisioning outage (new connections are refused, as the
    /// emulator refuses them).
    pub fn ap_down(&self) -> bool {
        self.ap_back_at.get().is_some_and(|at| now_ms() < at)
    }

    /// Forgets the slot's connection (the firmware already has, or is told now) and drops it.
    fn forget(&self, slot: &Slot) {
        slot.conn.set(None);
        slot.drop.signal(());
    }

    /// Routes the firmware's actions, in order.
    fn dispatch(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    let bytes = encode(&message);
                    match to {
                        Recipient::Conn(conn) => {
                            if let Some(slot) = self.slot_of(conn) {
                                self.queue(slot, Out::Text(bytes));
                            }
                        }
                        Recipient::All => {
                            for slot in self.slots.iter().filter(|s| s.conn.get().is_some()) {
                                self.queue(slot, Out::Text(bytes.clone()));
                            }
                        }
                    }
                }
                Action::Close { conn, code, reason } => {
                    // The firmware has already forgotten the connection.
                    if let Some(slot) = self.slot_of(conn) {
                        slot.conn.set(None);
                        let payload = espsim_firmware::captive::close_payload(code, &reason);
                        if slot.outbox.try_send(Out::Close(payload)).is_err() {
                            slot.drop.signal(());
                        }
                    }
                }
                Action::ApDown { duration_ms } => {
                    // The firmware has forgotten every connection; on the chip the outage is the
                    // station join itself (`C3Board::join_wifi` at the end of this window), and
                    // every client socket is dropped now, as the emulator drops them.
                    self.ap_back_at
                        .set(Some(now_ms().saturating_add(duration_ms)));
                    for slot in &self.slots {
                        if slot.conn.get().is_some() {
                            self.forget(slot);
                        }
                    }
                    log::info!("provisioning: softAP clients dropped for {duration_ms} ms");
                }
                Action::Restart { delay_ms } => {
                    self.restart_at.set(Some(now_ms().saturating_add(delay_ms)));
                }
                other => log::warn!("unhandled device action {other:?}"),
            }
        }
    }
}

/// Ticks the device at its deadline (at least every [`POLL`], for the button), forever.
pub async fn timer_loop(hub: &'static Hub) -> ! {
    loop {
        let now = now_ms();
        let wait = hub.deadline().map_or(POLL, |at| {
            Duration::from_millis(at.saturating_sub(now)).min(POLL)
        });
        select(Timer::after(wait), hub.rearm.wait()).await;
        hub.tick();
    }
}
