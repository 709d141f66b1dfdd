//! How an outage reaches connections that are already open on the device port.
//!
//! Every connection's raw socket is wrapped in a [`Gated`] stream whose [`Gate`] the accept loop
//! flips when the device host's outage changes (see [`Gates::apply`]):
//! - `Open`: bytes flow;
//! - `Silent` (AP down): reads and writes wait, nothing is sent, no FIN, no RST: from the app's
//!   side the device vanished;
//! - `Reset` (reboot, or the AP is back): reads and writes fail, and the socket is closed with
//!   RST (SO_LINGER 0) by whoever drops it.
//!
//! The gate sits under the fault pump and TLS, so it silences or resets the wire itself,
//! whatever the device code above it is doing. Each poll also reads the outage directly, so a
//! change takes effect on the very next read or write, before the accept loop has flipped the
//! gate (which it does to wake connections that are waiting and to remember who was silenced).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::device_host::Outage;
use crate::net::Abort;

const OPEN: u8 = 0;
const SILENT: u8 = 1;
const RESET: u8 = 2;

/// One connection's switch: open, silent or reset, plus the token that ends the tasks holding
/// its socket (fault pump, stall, silent hold) once it is reset or the emulator stops.
#[derive(Debug)]
pub(crate) struct Gate {
    state: AtomicU8,
    read: Mutex<Option<Waker>>,
    write: Mutex<Option<Waker>>,
    kill: CancellationToken,
}

impl Gate {
    fn new(state: u8, shutdown: &CancellationToken) -> Self {
        Gate {
            state: AtomicU8::new(state),
            read: Mutex::new(None),
            write: Mutex::new(None),
            kill: shutdown.child_token(),
        }
    }

    /// Cancelled when the connection is reset by an outage or the emulator shuts down: tasks
    /// holding the socket must drop it then.
    pub(crate) fn kill(&self) -> &CancellationToken {
        &self.kill
    }

    /// True once an outage reset the connection.
    pub(crate) fn is_reset(&self) -> bool {
        self.state.load(Ordering::SeqCst) == RESET
    }

    /// The state given the gate and the outage now: a reboot resets, AP down silences, and a
    /// connection silenced by an AP outage that is over is reset.
    fn effective(&self, outage: Outage) -> u8 {
        let gate = self.state.load(Ordering::SeqCst);
        match (gate, outage) {
            (RESET, _) | (_, Outage::Rebooting) | (SILENT, Outage::None) => RESET,
            (_, Outage::ApDown) => SILENT,
            _ => OPEN,
        }
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
        self.wake();
        if state == RESET {
            self.kill.cancel();
        }
    }

    /// Wakes the tasks waiting on this connection, so they re-read the state.
    fn wake(&self) {
        for slot in [&self.read, &self.write] {
            let waker = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Registers the task to wake on a state change, then reads the state (in that order, so a
    /// change in between is never missed).
    fn poll_state(&self, slot: &Mutex<Option<Waker>>, cx: &Context<'_>, outage: Outage) -> u8 {
        {
            let mut w = slot.lock().unwrap_or_else(|e| e.into_inner());
            match w.as_ref() {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        self.effective(outage)
    }
}

/// The gates of one listener's open connections, flipped together when the outage changes.
#[derive(Debug, Default)]
pub(crate) struct Gates {
    list: Mutex<Vec<Weak<Gate>>>,
}

impl Gates {
    /// A gate for a new connection, in the state the current outage gives it.
    pub(crate) fn register(&self, outage: Outage, shutdown: &CancellationToken) -> Arc<Gate> {
        let state = match outage {
            Outage::None => OPEN,
            Outage::ApDown => SILENT,
            Outage::Rebooting => RESET,
        };
        let gate = Arc::new(Gate::new(state, shutdown));
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|g| g.strong_count() > 0);
        list.push(Arc::downgrade(&gate));
        gate
    }

    /// Applies an outage change to every open connection: a reboot resets them all, the AP going
    /// down silences them, and the AP coming back resets the silenced ones (the device lost
    /// their state). Every connection is woken to re-read its state. Returns how many
    /// connections were reset.
    pub(crate) fn apply(&self, outage: Outage) -> usize {
        let gates: Vec<Arc<Gate>> = {
            let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|g| g.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        let mut reset = 0;
        for gate in gates {
            let next = match (outage, gate.state.load(Ordering::SeqCst)) {
                (_, RESET) | (Outage::None, OPEN) => {
                    gate.wake();
                    continue;
                }
                (Outage::Rebooting, _) | (Outage::None, _) => RESET,
                (Outage::ApDown, _) => SILENT,
            };
            if next == RESET {
                reset += 1;
            }
            gate.set(next);
        }
        reset
    }
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection reset by the device outage",
    )
}

/// A device-side TCP socket behind a [`Gate`]. Dropped while reset it sends RST; dropped while
/// silent it is held (no FIN) until the outage resets it.
#[derive(Debug)]
pub(crate) struct Gated {
    inner: Option<TcpStream>,
    gate: Arc<Gate>,
    outage: watch::Receiver<Outage>,
    tracker: TaskTracker,
}

impl Gated {
    /// Wraps an accepted socket; `tracker` runs the hold of a socket dropped while silent.
    pub(crate) fn new(
        inner: TcpStream,
        gate: Arc<Gate>,
        outage: watch::Receiver<Outage>,
        tracker: TaskTracker,
    ) -> Self {
        Gated {
            inner: Some(inner),
            gate,
            outage,
            tracker,
        }
    }

    fn outage(&self) -> Outage {
        *self.outage.borrow()
    }

    /// Ends the socket: RST when `reset` or the gate is reset; while silent, held until the
    /// outage ends it; otherwise a normal close.
    fn finish(&mut self, reset: bool) {
        let Some(tcp) = self.inner.take() else {
            return;
        };
        match self.gate.effective(self.outage()) {
            RESET => return tcp.abort(),
            SILENT => {
                let outage = self.outage.clone();
                return hold_silent(tcp, self.gate.clone(), outage, &self.tracker);
            }
            _ => {}
        }
        if reset {
            tcp.abort();
        } else {
            drop(tcp);
        }
    }
}

/// Keeps a socket open and silent while the AP is down, then resets it (the device has no
/// state for it any more); a plain close if the emulator shuts down first.
pub(crate) fn hold_silent(
    tcp: TcpStream,
    gate: Arc<Gate>,
    mut outage: watch::Receiver<Outage>,
    tracker: &TaskTracker,
) {
    if tokio::runtime::Handle::try_current().is_err() {
        return drop(tcp);
    }
    tracker.spawn(async move {
        tokio::select! {
            () = gate.kill().cancelled() => {}
            _ = outage.wait_for(|o| *o != Outage::ApDown) => {}
        }
        if gate.is_reset() || *outage.borrow() != Outage::ApDown {
            tcp.abort();
        }
    });
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl Abort for Gated {
    /// RST now, unless the AP is down (then RST when it is back).
    fn abort(mut self) {
        self.finish(true);
    }
}

impl AsyncRead for Gated {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outage = this.outage();
        match (
            this.gate.poll_state(&this.gate.read, cx, outage),
            this.inner.as_mut(),
        ) {
            (OPEN, Some(s)) => Pin::new(s).poll_read(cx, buf),
            (SILENT, Some(_)) => Poll::Pending,
            _ => Poll::Ready(Err(reset_error())),
        }
    }
}

impl Gated {
    fn poll_write_side<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let outage = self.outage();
        match (
            self.gate.poll_state(&self.gate.write, cx, outage),
            self.inner.as_mut(),
        ) {
            (OPEN, Some(s)) => op(Pin::new(s), cx),
            (SILENT, Some(_)) => Poll::Pending,
            _ => Poll::Ready(Err(reset_error())),
        }
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_side(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_write_side(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_write_side(cx, |s, cx| s.poll_shutdown(cx))
    }
}
