//! The app command's process: its environment, its output (forwarded to our stderr, recorded
//! line by line as `app_output` events, stdout watched for the `ESPSIM_READY` line), and
//! stopping its process group.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use espsim_emulator::events::{EventKind, EventLog};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::scenario::Scenario;

/// The stdout line that starts the run clock.
pub(super) const READY_LINE: &[u8] = b"ESPSIM_READY";

/// How long a command stopped for a timeout gets between SIGTERM and SIGKILL.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(1);

/// One fault window of `ESPSIM_TIMELINE`, counted from the clock start.
#[derive(Debug, Serialize)]
struct TimelineEntry {
    rule: u64,
    name: Option<String>,
    fault: serde_json::Value,
    at_ms: u64,
    for_ms: Option<u64>,
}

/// `ESPSIM_TIMELINE`: the scenario's time windows (rules with `at`/`for` and no `after`), as
/// JSON `[{rule, name, fault, at_ms, for_ms}]`; `for_ms` is null for an open-ended window.
pub(super) fn timeline_json(scenario: &Scenario) -> String {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let entries: Vec<TimelineEntry> = scenario
        .faults
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.when.after.is_none() && (r.when.at.is_some() || r.when.duration.is_some())
        })
        .map(|(i, r)| TimelineEntry {
            rule: i as u64 + 1,
            name: r.name.clone(),
            fault: serde_json::to_value(&r.fault).unwrap_or_default(),
            at_ms: ms(r.when.at.unwrap_or_default()),
            for_ms: r.when.duration.map(ms),
        })
        .collect();
    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_owned())
}

/// Most lines of the app's output recorded as `app_output` events in one run (stdout and
/// stderr together); later lines are still forwarded, not recorded.
pub(super) const MAX_OUTPUT_LINES: usize = 2000;
/// Most bytes of one line recorded (the rest is cut, `truncated: true`).
pub(super) const MAX_LINE_BYTES: usize = 2048;

/// Where the app's printed lines are recorded: the run's event log, within a shared budget
/// of [`MAX_OUTPUT_LINES`].
#[derive(Debug, Clone)]
pub(super) struct OutputRecorder {
    pub(super) log: Arc<EventLog>,
    pub(super) budget: Arc<AtomicUsize>,
}

impl OutputRecorder {
    /// A recorder into `log` with a fresh budget.
    pub(super) fn new(log: Arc<EventLog>) -> OutputRecorder {
        OutputRecorder {
            log,
            budget: Arc::new(AtomicUsize::new(MAX_OUTPUT_LINES)),
        }
    }

    fn record(&self, stream: &'static str, line: &[u8], truncated: bool) {
        let take = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if take.is_err() {
            return;
        }
        self.log.emit(EventKind::AppOutput {
            stream: stream.to_owned(),
            line: String::from_utf8_lossy(line).into_owned(),
            truncated,
        });
    }
}

/// Copies one of the command's output streams (`stream`: `stdout` or `stderr`) to our stderr
/// unchanged, as it comes, and records each line (at most [`MAX_LINE_BYTES`] of it, a trailing
/// `\r` dropped) as an `app_output` event. With `ready`, sends on it for each line that is
/// exactly `ESPSIM_READY`. A line without end costs at most [`MAX_LINE_BYTES`] of memory.
pub(super) async fn forward_output(
    mut output: impl AsyncRead + Unpin,
    stream: &'static str,
    recorder: OutputRecorder,
    ready: Option<mpsc::Sender<()>>,
) {
    let mut stderr = tokio::io::stderr();
    let mut buf = [0u8; 8192];
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut too_long = false;
    loop {
        let n = match output.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let _ = stderr.write_all(chunk).await;
        let _ = stderr.flush().await;
        for &b in chunk {
            if b == b'\n' {
                let text = line.strip_suffix(b"\r").unwrap_or(&line);
                if !too_long
                    && text == READY_LINE
                    && let Some(ready) = &ready
                {
                    let _ = ready.try_send(());
                }
                recorder.record(stream, text, too_long);
                line.clear();
                too_long = false;
            } else if line.len() < MAX_LINE_BYTES {
                line.push(b);
            } else {
                too_long = true;
            }
        }
    }
    if !line.is_empty() {
        let text = line.strip_suffix(b"\r").unwrap_or(&line);
        recorder.record(stream, text, too_long);
    }
}

/// Sends `signal` (`TERM`, `KILL`) to the process group `pgid`. (Through `kill(1)`: this crate
/// forbids `unsafe`, so no direct `kill(2)`.) A group that is gone is no error.
pub(super) async fn signal_group(pgid: u32, signal: &str) {
    let _ = tokio::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// Stops a command espsim gave up on: SIGTERM to its process group, SIGKILL after
/// [`KILL_GRACE`].
pub(super) async fn kill(child: &mut Child, pgid: Option<u32>) {
    if let Some(pgid) = pgid {
        signal_group(pgid, "TERM").await;
        if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok() {
            return;
        }
        signal_group(pgid, "KILL").await;
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
}
