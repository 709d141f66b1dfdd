//! Lines the process printed that are not protocol: ignored, counted, recorded with their first
//! bytes, and rate-limited so a process spewing output cannot flood the event log.

use std::sync::Arc;

use crate::events::{EventKind, EventLog};

use super::protocol::{Garbage, cut};

/// The first this many garbage lines of a process each get an event; after that one in
/// [`EVERY`].
const FIRST: u64 = 10;

/// After the first [`FIRST`], one garbage event per this many lines.
const EVERY: u64 = 1000;

/// How many bytes of a garbage line its event shows.
const SHOWN: usize = 80;

/// Garbage counts of one process run.
#[derive(Debug)]
pub(crate) struct GarbageLog {
    events: Arc<EventLog>,
    pid: u32,
    total: u64,
    in_a_row: u64,
}

impl GarbageLog {
    pub(crate) fn new(events: Arc<EventLog>, pid: u32) -> Self {
        GarbageLog {
            events,
            pid,
            total: 0,
            in_a_row: 0,
        }
    }

    /// A valid line: the run of garbage is over.
    pub(crate) fn valid(&mut self) {
        self.in_a_row = 0;
    }

    /// Records one garbage line; returns how many came in a row.
    pub(crate) fn record(&mut self, line: &[u8], why: &Garbage) -> u64 {
        self.total += 1;
        self.in_a_row += 1;
        if self.total <= FIRST || self.total.is_multiple_of(EVERY) {
            let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
            let detail = format!(
                "pid {}: garbage line #{} ignored ({}): {:?}",
                self.pid,
                self.total,
                cut(&why.to_string(), 200),
                text
            );
            tracing::warn!(target: "espsim::device_process", "{detail}");
            self.events.emit(EventKind::DeviceAction {
                action: "process_garbage".to_owned(),
                detail,
            });
        }
        self.in_a_row
    }
}
