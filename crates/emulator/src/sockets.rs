//! The device's socket slots: `max_open_sockets` and LRU purge, as `esp_http_server` does them.
//!
//! A connection must hold a slot ([`ConnHandle`]) to be served. When every slot is taken:
//! - without LRU purge (ESP-IDF's default) the connection waits unserved, first come first
//!   served, until a slot frees ([`Admission::Wait`]); ESP-IDF simply stops selecting its listen
//!   socket and lwIP holds the completed handshakes in its backlog;
//! - with LRU purge (`lru_purge_enable`, the captive-portal example) the least-recently-used
//!   session — HTTP or WebSocket — is closed at once, without a WebSocket close frame, to admit
//!   the new one.
//!
//! Dropping a [`ConnHandle`] frees its slot and hands it to the oldest waiting connection.
//!
//! The `socket_exhaustion` device fault takes slots with [`SocketTable::reserve`]: phantom
//! connections that count against the limit like real ones but are never purged and never
//! served; dropping the [`Reservation`] frees them for the waiting connections.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::events::ConnId;

/// How many connections may wait for a slot: ESP-IDF's `backlog_conn` (lwIP completes this many
/// handshakes for a listener that is not being served). Beyond it the emulator stops accepting,
/// so the kernel's own backlog fills and further clients time out connecting, as with lwIP.
/// It equals the chip profiles' listen backlog ([`crate::profile::ESP_IDF_BACKLOG_CONN`]). Only
/// a profile with a socket limit ever has connections waiting, so the `unlimited` profile's
/// larger listen backlog leaves this bound alone.
pub(crate) const WAITING_LIMIT: usize = 5;

/// Open connections and the limit on them. Cheap to share: the state lives behind an `Arc`.
#[derive(Debug)]
pub(crate) struct SocketTable {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: Option<usize>,
    lru_purge: bool,
    /// Monotonic use counter: a higher value is more recently used (ESP-IDF's `lru_counter`).
    clock: AtomicU64,
    state: Mutex<State>,
    /// Signalled whenever a slot frees or a waiter leaves.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<ConnId, Slot>,
    /// Slots held by phantom connections ([`Reservation`]s).
    reserved: usize,
    waiting: VecDeque<Waiter>,
}

impl State {
    /// Slots in use: real connections plus phantoms.
    fn in_use(&self) -> usize {
        self.open.len().saturating_add(self.reserved)
    }
}

#[derive(Debug)]
struct Slot {
    last_used: Arc<AtomicU64>,
    purge: CancellationToken,
}

#[derive(Debug)]
struct Waiter {
    id: ConnId,
    peer: SocketAddr,
    tx: oneshot::Sender<ConnHandle>,
}

/// The answer to "may this new connection be served?".
#[derive(Debug)]
pub(crate) enum Admission {
    /// Served now. `purged` names the connection LRU purge closed to make room.
    Now {
        /// The slot.
        handle: ConnHandle,
        /// The least-recently-used connection that was closed for it, if any.
        purged: Option<ConnId>,
    },
    /// Every slot is taken: wait for the ticket.
    Wait {
        /// How many slots are in use now (phantom connections included).
        open: usize,
        /// Resolves to the slot once one frees.
        ticket: Ticket,
    },
}

impl SocketTable {
    /// A table with `limit` slots (`None`: unlimited) and the given purge policy.
    pub(crate) fn new(limit: Option<usize>, lru_purge: bool) -> Self {
        SocketTable {
            inner: Arc::new(Inner {
                limit,
                lru_purge,
                clock: AtomicU64::new(0),
                state: Mutex::new(State::default()),
                changed: Notify::new(),
            }),
        }
    }

    /// Asks for a slot for connection `id`. Waiters are served strictly in arrival order: a new
    /// connection never overtakes one that is already waiting.
    pub(crate) fn admit(&self, id: ConnId, peer: SocketAddr) -> Admission {
        let mut state = self.inner.lock();
        let full = self
            .inner
            .limit
            .is_some_and(|limit| state.in_use() >= limit);
        if !full && state.waiting.is_empty() {
            let handle = self.inner.open_slot(&mut state, id, peer);
            return Admission::Now {
                handle,
                purged: None,
            };
        }
        if self.inner.lru_purge && !state.open.is_empty() {
            let victim = state
                .open
                .iter()
                .min_by_key(|(conn, slot)| (slot.last_used.load(Ordering::Relaxed), **conn))
                .map(|(conn, _)| *conn);
            if let Some(victim) = victim
                && let Some(slot) = state.open.remove(&victim)
            {
                slot.purge.cancel();
                let handle = self.inner.open_slot(&mut state, id, peer);
                return Admission::Now {
                    handle,
                    purged: Some(victim),
                };
            }
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.push_back(Waiter { id, peer, tx });
        Admission::Wait {
            open: state.in_use(),
            ticket: Ticket {
                id,
                rx,
                inner: self.inner.clone(),
            },
        }
    }

    /// Whether as many connections wait as lwIP's backlog would hold.
    pub(crate) fn waiting_full(&self) -> bool {
        self.inner.lock().waiting.len() >= WAITING_LIMIT
    }

    /// Returns once fewer than [`WAITING_LIMIT`] connections wait for a slot.
    pub(crate) async fn waiting_room(&self) {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.waiting_full() {
                return;
            }
            notified.await;
        }
    }

    /// Holds `count` slots with phantom connections until the [`Reservation`] is dropped, as
    /// other clients would (`socket_exhaustion`). Connections already served keep their slots;
    /// new ones wait while real plus phantom connections fill the limit. LRU purge never picks a
    /// phantom: with every slot phantom, a new connection waits even under `lru_purge`.
    pub(crate) fn reserve(&self, count: usize) -> Reservation {
        let mut state = self.inner.lock();
        state.reserved = state.reserved.saturating_add(count);
        drop(state);
        Reservation {
            count,
            inner: self.inner.clone(),
        }
    }

    /// The slot limit (`None`: unlimited).
    pub(crate) fn limit(&self) -> Option<usize> {
        self.inner.limit
    }

    /// How many connections hold a slot now.
    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.inner.lock().open.len()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a slot for `id` (most recently used) and returns its handle.
    fn open_slot(self: &Arc<Self>, state: &mut State, id: ConnId, peer: SocketAddr) -> ConnHandle {
        let last_used = Arc::new(AtomicU64::new(self.tick()));
        let purge = CancellationToken::new();
        state.open.insert(
            id,
            Slot {
                last_used: last_used.clone(),
                purge: purge.clone(),
            },
        );
        ConnHandle {
            id,
            peer,
            purge,
            last_used,
            table: Some(self.clone()),
        }
    }

    /// Frees `id`'s slot (unless LRU purge already took it) and passes it to the oldest waiter.
    fn release(self: &Arc<Self>, id: ConnId) {
        let mut state = self.lock();
        if state.open.remove(&id).is_none() {
            return;
        }
        self.admit_waiters(state);
    }

    /// Frees `count` phantom slots and passes them to the oldest waiters.
    fn unreserve(self: &Arc<Self>, count: usize) {
        let mut state = self.lock();
        state.reserved = state.reserved.saturating_sub(count);
        self.admit_waiters(state);
    }

    /// Hands free slots to waiters in arrival order, then wakes whoever watches the table.
    fn admit_waiters(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        while self.limit.is_none_or(|limit| state.in_use() < limit) {
            let Some(waiter) = state.waiting.pop_front() else {
                break;
            };
            let handle = self.open_slot(&mut state, waiter.id, waiter.peer);
            if let Err(mut unclaimed) = waiter.tx.send(handle) {
                // The waiter gave up: take the slot back without re-entering this lock.
                unclaimed.table = None;
                state.open.remove(&unclaimed.id);
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

/// Slots held by phantom connections (see [`SocketTable::reserve`]). Dropping it frees them.
#[derive(Debug)]
pub(crate) struct Reservation {
    count: usize,
    inner: Arc<Inner>,
}

impl Reservation {
    /// How many slots it holds.
    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.unreserve(self.count);
    }
}

/// A place in the queue for a slot. Dropping it leaves the queue.
#[derive(Debug)]
pub(crate) struct Ticket {
    id: ConnId,
    rx: oneshot::Receiver<ConnHandle>,
    inner: Arc<Inner>,
}

impl Ticket {
    /// Waits for the slot. `None` only if the table went away.
    pub(crate) async fn slot(mut self) -> Option<ConnHandle> {
        (&mut self.rx).await.ok()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        let before = state.waiting.len();
        state.waiting.retain(|w| w.id != self.id);
        let left = state.waiting.len() != before;
        drop(state);
        if left {
            self.inner.changed.notify_waiters();
        }
        // A handle already sent but not received is dropped with `rx`, which frees its slot.
    }
}

/// One served connection's slot. Dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    /// The connection's id (as in events).
    pub(crate) id: ConnId,
    /// The app's address.
    pub(crate) peer: SocketAddr,
    purge: CancellationToken,
    last_used: Arc<AtomicU64>,
    /// `None` once the slot was given back by other means (never admitted to a waiter).
    table: Option<Arc<Inner>>,
}

impl ConnHandle {
    /// Records activity on the connection (it becomes the most recently used for LRU purge).
    pub(crate) fn touch(&self) {
        if let Some(table) = &self.table {
            self.last_used.store(table.tick(), Ordering::Relaxed);
        }
    }

    /// Cancelled when LRU purge picked this connection: the holder must drop the socket at once,
    /// writing nothing (ESP-IDF closes the fd: no WebSocket close frame).
    pub(crate) fn purged(&self) -> &CancellationToken {
        &self.purge
    }
}

#[cfg(test)]
impl ConnHandle {
    /// A handle outside any socket table, for tests of connection holders: cancelling `purge`
    /// plays LRU purge.
    pub(crate) fn detached(id: ConnId, peer: SocketAddr, purge: CancellationToken) -> Self {
        ConnHandle {
            id,
            peer,
            purge,
            last_used: Arc::new(AtomicU64::new(0)),
            table: None,
        }
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        if let Some(table) = self.table.take() {
            table.release(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }

    fn now(a: Admission) -> (ConnHandle, Option<ConnId>) {
        match a {
            Admission::Now { handle, purged } => (handle, purged),
            Admission::Wait { .. } => panic!("expected a slot now"),
        }
    }

    fn wait(a: Admission) -> (usize, Ticket) {
        match a {
            Admission::Wait { open, ticket } => (open, ticket),
            Admission::Now { .. } => panic!("expected to wait"),
        }
    }

    #[tokio::test]
    async fn a_full_table_queues_in_order_and_dropping_a_handle_admits_the_oldest() {
        let table = SocketTable::new(Some(2), false);
        let (a, _) = now(table.admit(1, peer()));
        let (_b, _) = now(table.admit(2, peer()));
        let (open, t3) = wait(table.admit(3, peer()));
        assert_eq!(open, 2);
        let (_, t4) = wait(table.admit(4, peer()));
        drop(a);
        let h3 = t3.slot().await.expect("slot for 3");
        assert_eq!(h3.id, 3);
        assert_eq!(table.open_count(), 2);
        drop(h3);
        assert_eq!(t4.slot().await.expect("slot for 4").id, 4);
    }

    #[tokio::test]
    async fn an_abandoned_ticket_does_not_keep_a_slot() {
        let table = SocketTable::new(Some(1), false);
        let (a, _) = now(table.admit(1, peer()));
        let (_, t2) = wait(table.admit(2, peer()));
        let (_, t3) = wait(table.admit(3, peer()));
        drop(t2);
        drop(a);
        let h3 = t3.slot().await.expect("slot for 3");
        assert_eq!(h3.id, 3);
        assert_eq!(table.open_count(), 1);
    }

    #[test]
    fn lru_purge_closes_the_least_recently_touched() {
        let table = SocketTable::new(Some(2), true);
        let (a, _) = now(table.admit(1, peer()));
        let (b, _) = now(table.admit(2, peer()));
        a.touch();
        let (_c, purged) = now(table.admit(3, peer()));
        assert_eq!(purged, Some(2));
        assert!(b.purged().is_cancelled());
        assert!(!a.purged().is_cancelled());
        // The purged holder dropping late frees nothing twice.
        drop(b);
        assert_eq!(table.open_count(), 2);
    }

    #[test]
    fn unlimited_never_waits() {
        let table = SocketTable::new(None, false);
        let handles: Vec<_> = (1..=100).map(|i| now(table.admit(i, peer())).0).collect();
        assert_eq!(table.open_count(), 100);
        drop(handles);
        assert_eq!(table.open_count(), 0);
    }

    #[tokio::test]
    async fn phantom_slots_count_against_the_limit_until_released() {
        let table = SocketTable::new(Some(3), false);
        let (_a, _) = now(table.admit(1, peer()));
        let held = table.reserve(2);
        assert_eq!(held.count(), 2);
        let (open, t2) = wait(table.admit(2, peer()));
        assert_eq!(open, 3, "phantoms are counted as open sockets");
        let (_, t3) = wait(table.admit(3, peer()));
        drop(held);
        let h2 = t2.slot().await.expect("slot for 2");
        let h3 = t3.slot().await.expect("slot for 3");
        assert_eq!((h2.id, h3.id), (2, 3));
        assert_eq!(table.open_count(), 3);
    }

    #[test]
    fn lru_purge_never_picks_a_phantom() {
        let table = SocketTable::new(Some(2), true);
        let _held = table.reserve(2);
        let (open, _t) = wait(table.admit(1, peer()));
        assert_eq!(open, 2);
        let purging = SocketTable::new(Some(2), true);
        let _held = purging.reserve(1);
        let (_a, _) = now(purging.admit(1, peer()));
        let (_b, purged) = now(purging.admit(2, peer()));
        assert_eq!(
            purged,
            Some(1),
            "the real connection makes room, the phantom stays"
        );
    }

    #[test]
    fn reserving_more_than_the_limit_is_undone_exactly() {
        let table = SocketTable::new(Some(2), false);
        let held = table.reserve(5);
        let (_, t) = wait(table.admit(1, peer()));
        drop(t);
        drop(held);
        let (_a, _) = now(table.admit(2, peer()));
        let (_b, _) = now(table.admit(3, peer()));
    }

    #[test]
    fn waiting_is_bounded_by_the_backlog() {
        let table = SocketTable::new(Some(1), false);
        let _a = now(table.admit(1, peer())).0;
        let tickets: Vec<_> = (0..WAITING_LIMIT as u64)
            .map(|i| wait(table.admit(2 + i, peer())).1)
            .collect();
        assert!(table.waiting_full());
        drop(tickets);
        assert!(!table.waiting_full());
    }
}
