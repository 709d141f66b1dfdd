//! The app command's process: its environment, its stdout (forwarded to our stderr, watched for
//! the `ESPSIM_READY` line), and stopping its process group.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout};
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

/// Copies the command's stdout to our stderr unchanged, as it comes, and sends on `ready` for
/// each line that is exactly `ESPSIM_READY` (a trailing `\r` allowed). Only a line's first few
/// bytes are kept for that comparison, so a line without end costs no memory.
pub(super) async fn forward_stdout(mut stdout: ChildStdout, ready: mpsc::Sender<()>) {
    let mut stderr = tokio::io::stderr();
    let mut buf = [0u8; 8192];
    let mut line: Vec<u8> = Vec::with_capacity(READY_LINE.len() + 2);
    let mut too_long = false;
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let _ = stderr.write_all(chunk).await;
        let _ = stderr.flush().await;
        for &b in chunk {
            if b == b'\n' {
                let text = line.strip_suffix(b"\r").unwrap_or(&line);
                if !too_long && text == READY_LINE {
                    let _ = ready.try_send(());
                }
                line.clear();
                too_long = false;
            } else if line.len() <= READY_LINE.len() {
                line.push(b);
            } else {
                too_long = true;
            }
        }
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
