//! Child processes (espsim, dnsmasq, nginx, dnsperf, wrk) and facts read from `/proc`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// Longest a child may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The fields of `espsim run`'s ready line the benchmarks use.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Ready {
    /// Always `ready`.
    pub(crate) event: String,
    /// Bound HTTP/WebSocket address.
    pub(crate) http: SocketAddr,
    /// Bound DNS address, unless `--no-dns`.
    pub(crate) dns: Option<SocketAddr>,
}

/// A running `espsim run`; killed when dropped.
#[derive(Debug)]
pub(crate) struct Espsim {
    child: Child,
    /// What the ready line said.
    pub(crate) ready: Ready,
    /// From spawning the process to reading its ready line.
    pub(crate) time_to_ready: Duration,
}

/// Whether a benchmarked espsim serves DNS.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dns {
    /// On an ephemeral loopback port (`--dns 127.0.0.1:0`).
    Loopback,
    /// Not at all (`--no-dns`).
    Off,
}

impl Espsim {
    /// Spawns `espsim run` on an ephemeral loopback HTTP port, with `dns`, seed 1 (so runs
    /// compare) and `args`, and waits for its ready line on stdout.
    pub(crate) async fn start(bin: &Path, dns: Dns, args: &[&str]) -> anyhow::Result<Espsim> {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args(["run", "--http", "127.0.0.1:0", "--seed", "1"])
            .args(match dns {
                Dns::Loopback => &["--dns", "127.0.0.1:0"][..],
                Dns::Off => &["--no-dns"][..],
            })
            // No control API: its fixed default port could be taken by a running espsim.
            .arg("--no-control")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let line = timeout(READY_TIMEOUT, BufReader::new(stdout).lines().next_line())
            .await
            .context("no ready line within 15 s")?
            .context("reading the ready line")?;
        let time_to_ready = started.elapsed();
        let Some(line) = line else {
            let status = child.wait().await?;
            bail!("espsim exited before its ready line ({status})");
        };
        let ready: Ready =
            serde_json::from_str(&line).with_context(|| format!("not a ready line: {line}"))?;
        if ready.event != "ready" {
            bail!("first line is not the ready line: {line}");
        }
        Ok(Espsim {
            child,
            ready,
            time_to_ready,
        })
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process and reaps it.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// A helper server (dnsmasq, nginx) in its own process group, its output discarded. [`stop`]
/// ends the whole group — nginx's workers outlive a killed master otherwise — and dropping it
/// kills the group.
///
/// [`stop`]: Helper::stop
#[derive(Debug)]
pub(crate) struct Helper {
    child: Child,
}

impl Helper {
    /// Spawns `program ARGS` as the leader of a new process group.
    pub(crate) fn spawn(program: &str, args: &[String]) -> anyhow::Result<Helper> {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {program}"))?;
        Ok(Helper { child })
    }

    /// The leader's process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM to the group (nginx's master then stops its workers), SIGKILL to the group if
    /// the leader is still there after 5 s; reaps the leader.
    pub(crate) async fn stop(mut self) {
        let Some(pid) = self.child.id() else { return };
        signal_group(pid, "TERM");
        if timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            signal_group(pid, "KILL");
            let _ = timeout(Duration::from_secs(5), self.child.wait()).await;
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            signal_group(pid, "KILL");
        }
    }
}

/// Sends `signal` to process group `group` through `kill(1)` (this workspace forbids `unsafe`,
/// so no direct `kill(2)`).
fn signal_group(group: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs a load tool to completion and returns its stdout; fails on a non-zero exit.
pub(crate) async fn output_of(
    program: &str,
    args: &[String],
    limit: Duration,
) -> anyhow::Result<String> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let out = timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("{program} did not finish within {limit:?}"))??;
    if !out.status.success() {
        bail!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` is on `PATH`.
pub(crate) fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A loopback port free for both TCP and UDP right now (another program may take it later).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    for _ in 0..32 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a probe port")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both TCP and UDP after 32 tries")
}

/// Waits until something accepts TCP connections on `addr`.
pub(crate) async fn wait_tcp(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("nothing listens on {addr} after 6 s")
}

/// `VmRSS` of a process, in KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// The soft limit on open files of this process (children inherit it).
pub(crate) fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `nproc`, CPU model, kernel and load average, for the report.
pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned());
    format!("{cpus} CPUs (nproc), {model}, Linux {kernel}")
}

/// `/proc/loadavg`'s 1/5/15-minute averages.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// CPU time (ns, from `schedstat`) of this process's threads whose name starts with `prefix`.
pub(crate) fn own_threads_cpu_ns(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| schedstat_ns(&t.path().join("schedstat")))
        .sum()
}

/// CPU time (ns) of process `pid` and its direct children (nginx workers), all threads.
pub(crate) fn tree_cpu_ns(pid: u32) -> u64 {
    let mut pids = vec![pid];
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Some(child) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let ppid = std::fs::read_to_string(p.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                });
            if ppid == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids.iter()
        .map(|p| {
            std::fs::read_dir(format!("/proc/{p}/task")).map_or(0, |tasks| {
                tasks
                    .flatten()
                    .filter_map(|t| schedstat_ns(&t.path().join("schedstat")))
                    .sum()
            })
        })
        .sum()
}

/// The first field of a `schedstat` file: time spent on a CPU, in ns.
fn schedstat_ns(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
