//! Waiting for the signals that end a long-running command.

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGTERM and SIGINT (Ctrl-C), watched from the moment this is made.
///
/// Make it before announcing readiness: until the handlers exist, SIGTERM still has its default
/// action and kills the process without the clean shutdown (sessions closed with 1001, events
/// flushed) that a caller who saw the ready line may rely on.
#[derive(Debug)]
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub(crate) fn watch() -> anyhow::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Returns when SIGTERM or SIGINT arrives.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
