//! Ties the tasks the fault machinery spawns (stream pumps, stalled and closing connections) to
//! the emulator's lifetime: one cancellation token ends them, one task tracker waits for them.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The emulator's shutdown token and task tracker, shared with the fault machinery so that
/// `shutdown()` also ends stalls and half-open holds and can wait until their sockets are closed.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Supervisor {
    /// Uses the emulator's own token and tracker.
    pub fn new(shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        Supervisor { shutdown, tracker }
    }

    /// Cancelled when the emulator shuts down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Tracks every spawned fault task.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Spawns a tracked task.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }
}
