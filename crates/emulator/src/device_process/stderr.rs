//! The process's stderr, passed through to espsim's log: each line cut to [`MAX_STDERR_LINE`]
//! bytes, at most [`PER_SECOND`] lines a second (the rest are counted and reported once the
//! second is over), so a chatty device cannot drown the log or grow memory.

use tokio::io::BufReader;
use tokio::process::ChildStderr;
use tokio::time::{Duration, Instant};

use super::lines::{Line, next_line};

/// Longest stderr line logged; the rest of it is dropped.
pub const MAX_STDERR_LINE: usize = 4096;

/// Most stderr lines logged per second.
pub(crate) const PER_SECOND: u32 = 50;

/// Logs `stderr` until it closes (the process ended).
pub(crate) async fn pass_through(stderr: ChildStderr, pid: u32) {
    let mut reader = BufReader::new(stderr);
    let mut window = Instant::now();
    let mut logged = 0u32;
    let mut dropped = 0u64;
    while let Ok(Some(line)) = next_line(&mut reader, MAX_STDERR_LINE).await {
        if window.elapsed() >= Duration::from_secs(1) {
            if dropped > 0 {
                tracing::warn!(target: "espsim::device_process", pid, "{dropped} stderr line(s) not logged (over {PER_SECOND}/s)");
            }
            window = Instant::now();
            logged = 0;
            dropped = 0;
        }
        if logged >= PER_SECOND {
            dropped += 1;
            continue;
        }
        logged += 1;
        let (Line::Text(bytes) | Line::TooLong(bytes)) = line;
        tracing::info!(target: "espsim::device_process", pid, "stderr: {}", String::from_utf8_lossy(&bytes));
    }
}
