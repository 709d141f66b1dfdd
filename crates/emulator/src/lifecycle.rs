//! One emulator's lifetime: the shutdown signal, the tasks to wait for, and the deadline the
//! closing handshakes share.
//!
//! Every service gets a clone of the [`Lifecycle`] and nothing else of the others' state: it
//! spawns on `tracker`, stops on `cancel`, and a WebSocket close asks [`Lifecycle::close_deadline`]
//! how long it may take.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shutdown signal and the task tracker of one emulator (cheap to clone).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lifecycle {
    /// Cancelled on shutdown; every task watches it.
    pub(crate) cancel: CancellationToken,
    /// Every spawned task, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Set on shutdown before `cancel` fires: by then every closing handshake must be over
    /// (the app that does not answer the close frame is dropped), so the closes are recorded
    /// and in the event file when the shutdown returns. Written once, by the first `stop`.
    close_by: Arc<OnceLock<Instant>>,
}

impl Lifecycle {
    /// A lifecycle that has not stopped.
    pub(crate) fn new() -> Self {
        Lifecycle::default()
    }

    /// Starts the shutdown: closing handshakes must end within `close_wait` from now, then
    /// every task is told to stop. Only the first call counts.
    pub(crate) fn stop(&self, close_wait: Duration) {
        let now = Instant::now();
        let _ = self
            .close_by
            .set(now.checked_add(close_wait).unwrap_or(now));
        self.cancel.cancel();
        self.tracker.close();
    }

    /// When a closing handshake that starts now must be over: `usual` from now, or the
    /// shutdown's deadline if that comes first.
    pub(crate) fn close_deadline(&self, usual: Duration) -> Instant {
        let now = Instant::now();
        let usual = now.checked_add(usual).unwrap_or(now);
        match self.close_by.get() {
            Some(by) => usual.min(*by),
            None => usual,
        }
    }
}

/// Numbers handed out in order (1, 2, 3, …), shared by every listener that hands them out
/// (connection ids, WebSocket upgrade ordinals).
#[derive(Debug, Clone)]
pub(crate) struct Counter(Arc<AtomicU64>);

impl Counter {
    /// A counter whose first number is 1.
    pub(crate) fn new() -> Self {
        Counter(Arc::new(AtomicU64::new(1)))
    }

    /// The next number.
    pub(crate) fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}
