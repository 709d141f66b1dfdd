//! What an `espsim run` process costs: time from spawn to its ready line, and resident memory
//! per idle WebSocket connection.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::procs::{Dns, Espsim, vm_rss_kib};
use crate::ws::{connect_all, round_trip};

/// Spawn-to-ready times of `runs` fresh `espsim run` processes (ports 0, DNS on).
pub(crate) async fn startup(espsim: &Path, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let server = Espsim::start(espsim, Dns::Loopback, &[]).await?;
        times.push(server.time_to_ready);
        server.stop().await;
    }
    Ok(times)
}

/// Resident memory of one `espsim run --profile unlimited` process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryRun {
    /// VmRSS with one session open, KiB.
    pub(crate) before_kib: u64,
    /// VmRSS with `1 + connections` sessions open, KiB.
    pub(crate) after_kib: u64,
    /// Sessions added between the two readings.
    pub(crate) connections: usize,
}

impl MemoryRun {
    /// Resident bytes per added idle connection, in KB (1000 bytes).
    pub(crate) fn kb_per_connection(&self) -> f64 {
        let delta = self.after_kib.saturating_sub(self.before_kib) as f64 * 1024.0;
        delta / self.connections.max(1) as f64 / 1000.0
    }
}

/// Opens `connections` idle WebSocket sessions (each proven live by one ping/pong) and reads
/// VmRSS before and after. The baseline already has one session, so one-time allocations of
/// the first connection are not charged to the others.
pub(crate) async fn memory(espsim: &Path, connections: usize) -> anyhow::Result<MemoryRun> {
    let server = Espsim::start(espsim, Dns::Off, &["--profile", "unlimited"]).await?;
    let pid = server.pid().context("espsim exited")?;
    let url = format!("ws://{}/ws", server.ready.http);
    let mut first = connect_all(&url, 1).await?;
    for ws in &mut first {
        round_trip(ws, 0).await?;
    }
    let before_kib = vm_rss_kib(pid)?;
    let mut sessions = connect_all(&url, connections).await?;
    for (seq, ws) in (1u64..).zip(sessions.iter_mut()) {
        round_trip(ws, seq).await?;
    }
    let after_kib = vm_rss_kib(pid)?;
    drop(sessions);
    drop(first);
    server.stop().await;
    Ok(MemoryRun {
        before_kib,
        after_kib,
        connections,
    })
}
