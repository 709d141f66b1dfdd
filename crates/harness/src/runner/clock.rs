//! Waiting for the run clock: the emulator runs with a deferred clock ([`RunClock::Deferred`])
//! and the first event that `start: { on: … }` names starts it, as does an explicit signal from
//! the app (the ready file, an `ESPSIM_READY` stdout line, the control API's
//! `POST /clock/start`, which the emulator handles itself).
//!
//! [`RunClock::Deferred`]: espsim_emulator::RunClock::Deferred

use std::time::Duration;

use espsim_emulator::RunningEmulator;
use espsim_emulator::events::{Event, EventKind};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::scenario::StartOn;

/// When the run clock started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockStart {
    /// When, in ms since the emulator started.
    #[serde(rename = "clock_started_ms")]
    pub at_ms: u64,
    /// What started it: `start`, `first_connection`, `first_dns`, `first_probe`,
    /// `signal: file`, `signal: stdout`, `signal: control` …
    #[serde(rename = "clock_reason")]
    pub reason: String,
}

/// The run's event stream, watched for what starts the clock.
#[derive(Debug)]
pub(super) struct ClockWatch {
    on: StartOn,
    /// Events emitted before the watch began (the emulator's start), examined first.
    past: Vec<Event>,
    rx: broadcast::Receiver<Event>,
}

impl ClockWatch {
    /// Watches `emulator`'s events from its start on.
    pub(super) fn new(emulator: &RunningEmulator, on: StartOn) -> ClockWatch {
        let (past, rx) = emulator.events().snapshot_and_subscribe(0);
        ClockWatch { on, past, rx }
    }

    /// Waits until the clock runs, starting it when an event names the trigger. Returns `None`
    /// only if the event stream ended (the emulator is gone).
    pub(super) async fn started(&mut self, emulator: &RunningEmulator) -> Option<ClockStart> {
        for e in std::mem::take(&mut self.past) {
            if let Some(start) = self.examine(emulator, &e) {
                return Some(start);
            }
        }
        loop {
            match self.rx.recv().await {
                Ok(e) => {
                    if let Some(start) = self.examine(emulator, &e) {
                        return Some(start);
                    }
                }
                // Missed events are still in the log (the runner keeps the whole history).
                Err(RecvError::Lagged(_)) => {
                    for e in emulator.events().snapshot() {
                        if let Some(start) = self.examine(emulator, &e) {
                            return Some(start);
                        }
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// `clock_started` ends the wait; a trigger event starts the clock (its `clock_started`
    /// follows on the stream).
    fn examine(&self, emulator: &RunningEmulator, e: &Event) -> Option<ClockStart> {
        if let EventKind::ClockStarted { reason } = &e.kind {
            return Some(ClockStart {
                at_ms: e.at_ms,
                reason: reason.clone(),
            });
        }
        if let Some(reason) = trigger(self.on, &e.kind) {
            emulator.start_clock(reason);
        }
        None
    }
}

/// The clock-start reason when `kind` is what `on` waits for.
fn trigger(on: StartOn, kind: &EventKind) -> Option<&'static str> {
    let what = match kind {
        EventKind::TcpAccepted { .. } | EventKind::TcpRefused { .. } => StartOn::FirstConnection,
        EventKind::DnsQuery { .. } => StartOn::FirstDns,
        EventKind::ConnectivityProbe { .. } => StartOn::FirstProbe,
        _ => return None,
    };
    (on == what || on == StartOn::FirstActivity).then_some(what.as_str())
}

/// How often the ready file is looked for.
const READY_FILE_POLL: Duration = Duration::from_millis(50);

/// Resolves once `path` exists (polled every [`READY_FILE_POLL`]; the caller bounds the wait).
pub(super) async fn ready_file(path: &std::path::Path) {
    loop {
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return;
        }
        tokio::time::sleep(READY_FILE_POLL).await;
    }
}
