//! `espsim-bench soak`: connection churn against a fresh `espsim run`, then a check that its
//! file descriptors and threads come back to where they were.
//!
//! A leak of one socket per odd close path does not show in a ten-second test, but a phone
//! developer's emulator runs all day. So the soak starts `espsim run` (the binary, ports 0,
//! profile `unlimited`), warms it up with one operation of each kind, and samples its resident
//! memory, open descriptors and threads from `/proc/PID` once they are steady (the baseline).
//! Then `--parallel` workers churn through at most `--connections` operations for at most
//! `--seconds`, in a fixed cycle: WebSocket sessions (one `ping` → `pong` each) that end with a
//! clean close handshake, with a FIN and no close frame, or with an RST (`SO_LINGER` 0);
//! connectivity-check HTTP requests; DNS queries over UDP and over TCP. A sampler records the
//! peak during the churn. Afterwards the soak polls (no fixed sleep) until descriptors and
//! threads are back within the tolerance of the baseline, for at most `--settle-seconds`, and
//! proves the device still answers a WebSocket round trip.
//!
//! It fails (exit 1) when descriptors or threads stay above baseline + tolerance (0 for both:
//! every socket of the churn must be closed, no thread may be left), when an operation failed,
//! or when the device stopped answering. Resident memory is reported, not judged: the allocator
//! keeps freed pages.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio::time::timeout;
use tokio_tungstenite::MaybeTlsStream;

use crate::procs::{Dns, Espsim, vm_rss_kib};
use crate::ws::{connect_all, round_trip};

/// Descriptors above the baseline still accepted after the settle period.
const FD_TOLERANCE: u64 = 0;
/// Threads above the baseline still accepted after the settle period.
const THREAD_TOLERANCE: u64 = 0;
/// Longest one churn operation may take (connect, exchange, close) before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the sampler reads `/proc` during the churn and while settling.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The baseline is taken once two samples this far apart agree (or after `BASELINE_WAIT`).
const STEADY_FOR: Duration = Duration::from_millis(500);
/// Longest wait for a steady baseline after the warm-up.
const BASELINE_WAIT: Duration = Duration::from_secs(10);
/// Largest HTTP response head read before giving up.
const MAX_HEAD: usize = 16 * 1024;
/// Frames read while waiting for the device to end a session, at most.
const MAX_DRAIN_FRAMES: usize = 1_000;
/// UDP DNS tries per query (loopback drops nothing, but a full socket buffer could).
const DNS_UDP_TRIES: u32 = 3;
/// Wait for one UDP DNS answer.
const DNS_UDP_WAIT: Duration = Duration::from_secs(2);

/// Arguments of `espsim-bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SoakArgs {
    /// The `espsim` binary [default: next to this binary]
    #[arg(long, value_name = "PATH")]
    espsim: Option<PathBuf>,
    /// Longest churn, in seconds (the churn also ends after --connections operations).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Most operations (connections and DNS queries) in the churn.
    #[arg(long, default_value_t = 100_000, value_parser = operations_range())]
    connections: u64,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    parallel: u64,
    /// Longest wait, after the churn, for descriptors and threads to return to the baseline.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    settle_seconds: u64,
    /// The CI variant: at most 20 s and 20,000 operations of churn, at most 15 s to settle
    /// (about 20-40 s in all).
    #[arg(long)]
    quick: bool,
}

/// The accepted range of `--connections`.
fn operations_range() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=10_000_000)
}

impl SoakArgs {
    fn apply_quick(&mut self) {
        if self.quick {
            self.seconds = 20;
            self.connections = 20_000;
            self.settle_seconds = 15;
        }
    }

    fn espsim_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.espsim {
            return Ok(p.clone());
        }
        let me = std::env::current_exe().context("cannot locate this binary")?;
        Ok(me.with_file_name("espsim"))
    }
}

/// What the churn does, in a fixed cycle (so every kind gets its share whatever the bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// WebSocket session ended by a close handshake (client close frame, device's answer).
    WsClose,
    /// WebSocket session ended by a FIN without a close frame.
    WsFin,
    /// WebSocket session ended by an RST (`SO_LINGER` 0, then close).
    WsRst,
    /// `GET /generate_204` (Android's connectivity check), then FIN.
    Http,
    /// One A query over UDP.
    DnsUdp,
    /// One A query over a TCP connection of its own.
    DnsTcp,
}

const CYCLE: [Kind; 9] = [
    Kind::WsClose,
    Kind::WsFin,
    Kind::WsRst,
    Kind::Http,
    Kind::WsClose,
    Kind::WsFin,
    Kind::WsRst,
    Kind::DnsUdp,
    Kind::DnsTcp,
];

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::WsClose,
        Kind::WsFin,
        Kind::WsRst,
        Kind::Http,
        Kind::DnsUdp,
        Kind::DnsTcp,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::WsClose => "WebSocket, clean close (close frames both ways)",
            Kind::WsFin => "WebSocket, FIN without a close frame",
            Kind::WsRst => "WebSocket, RST (SO_LINGER 0)",
            Kind::Http => "HTTP GET /generate_204, then FIN",
            Kind::DnsUdp => "DNS A query over UDP",
            Kind::DnsTcp => "DNS A query over TCP",
        }
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Where the device listens.
#[derive(Debug, Clone, Copy)]
struct Target {
    http: SocketAddr,
    dns: SocketAddr,
}

/// One reading of the espsim process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    rss_kib: u64,
    fds: u64,
    threads: u64,
}

impl Sample {
    /// Reads `/proc/PID/{status,fd}`; fails when the process is gone.
    fn read(pid: u32) -> anyhow::Result<Sample> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("espsim (pid {pid}) is gone: /proc/{pid}/status"))?;
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .context("no Threads line in /proc/PID/status")?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("reading /proc/{pid}/fd"))?
            .count() as u64;
        Ok(Sample {
            rss_kib: vm_rss_kib(pid)?,
            fds,
            threads,
        })
    }

    fn max(self, other: Sample) -> Sample {
        Sample {
            rss_kib: self.rss_kib.max(other.rss_kib),
            fds: self.fds.max(other.fds),
            threads: self.threads.max(other.threads),
        }
    }

    /// Whether descriptors and threads are within the tolerance of `baseline`.
    fn back_to(self, baseline: Sample) -> bool {
        self.fds <= baseline.fds.saturating_add(FD_TOLERANCE)
            && self.threads <= baseline.threads.saturating_add(THREAD_TOLERANCE)
    }
}

/// Done and failed operations per kind, and the first error of each kind.
#[derive(Debug, Default)]
struct Tally {
    done: [u64; Kind::ALL.len()],
    failed: [u64; Kind::ALL.len()],
    first_error: [Option<String>; Kind::ALL.len()],
}

impl Tally {
    fn record(&mut self, kind: Kind, result: anyhow::Result<()>) {
        let i = kind.index();
        match result {
            Ok(()) => {
                if let Some(d) = self.done.get_mut(i) {
                    *d += 1;
                }
            }
            Err(err) => {
                if let Some(f) = self.failed.get_mut(i) {
                    *f += 1;
                }
                if let Some(slot) = self.first_error.get_mut(i)
                    && slot.is_none()
                {
                    *slot = Some(format!("{err:#}"));
                }
            }
        }
    }

    fn total_done(&self) -> u64 {
        self.done.iter().sum()
    }

    fn total_failed(&self) -> u64 {
        self.failed.iter().sum()
    }
}

/// Everything the soak measured.
#[derive(Debug)]
struct SoakResult {
    pid: u32,
    baseline: Sample,
    peak: Sample,
    end_of_churn: Sample,
    after: Sample,
    settled_in: Option<Duration>,
    settle_limit: Duration,
    churn: Duration,
    tally: Tally,
    still_answers: Result<(), String>,
}

impl SoakResult {
    fn passed(&self) -> bool {
        self.settled_in.is_some() && self.tally.total_failed() == 0 && self.still_answers.is_ok()
    }
}

/// Runs the soak; `Ok(true)` when it passed, `Ok(false)` when it found a leak or a failure.
pub(crate) fn main(mut args: SoakArgs) -> anyhow::Result<bool> {
    args.apply_quick();
    let espsim = args.espsim_path()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("soak")
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(soak(&args, &espsim))?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    print!(
        "{}",
        Report {
            args: &args,
            outcome: &outcome
        }
    );
    Ok(outcome.passed())
}

async fn soak(args: &SoakArgs, espsim: &std::path::Path) -> anyhow::Result<SoakResult> {
    let server = Espsim::start(espsim, Dns::Loopback, &["--profile", "unlimited"]).await?;
    let pid = server.pid().context("espsim exited before the soak")?;
    let target = Target {
        http: server.ready.http,
        dns: server
            .ready
            .dns
            .context("the ready line has no DNS address")?,
    };
    eprintln!(
        "soak: espsim pid {pid}, http {}, dns {}",
        target.http, target.dns
    );

    // Warm-up: one of each kind, so that what the first use allocates is in the baseline.
    for kind in Kind::ALL {
        operation(kind, target, 0)
            .await
            .with_context(|| format!("warm-up: {}", kind.label()))?;
    }
    let baseline = steady_sample(pid).await?;
    eprintln!("soak: baseline {baseline:?}; churning");

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(peak_until(pid, stop_rx));
    let mut workers = Vec::new();
    for _ in 0..args.parallel {
        workers.push(tokio::spawn(worker(
            target,
            Arc::clone(&next),
            args.connections,
            deadline,
            Arc::clone(&tally),
        )));
    }
    for w in workers {
        w.await.context("a churn worker panicked")?;
    }
    let churn = started.elapsed();
    let end_of_churn = Sample::read(pid)?;
    let _ = stop_tx.send(());
    let peak = sampler
        .await
        .context("the sampler panicked")??
        .max(end_of_churn);
    eprintln!("soak: churn done in {churn:?}; settling");

    let settle_limit = Duration::from_secs(args.settle_seconds);
    let (after, settled_in) = settle(pid, baseline, settle_limit).await?;
    let still_answers = still_answers(target).await.map_err(|e| format!("{e:#}"));
    server.stop().await;
    let tally = Arc::try_unwrap(tally)
        .map(Mutex::into_inner)
        .unwrap_or_default();
    Ok(SoakResult {
        pid,
        baseline,
        peak,
        end_of_churn,
        after,
        settled_in,
        settle_limit,
        churn,
        tally,
        still_answers,
    })
}

/// Takes operation numbers until the count or the time is used up.
async fn worker(
    target: Target,
    next: Arc<AtomicU64>,
    limit: u64,
    deadline: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= limit || Instant::now() >= deadline {
            return;
        }
        let kind = CYCLE
            .get(usize::try_from(n % CYCLE.len() as u64).unwrap_or(0))
            .copied()
            .unwrap_or(Kind::WsClose);
        let result = match timeout(OP_TIMEOUT, operation(kind, target, n)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("not finished within {OP_TIMEOUT:?}")),
        };
        tally.lock().await.record(kind, result);
    }
}

/// Samples every `SAMPLE_EVERY` until `stop` fires; the per-field maximum.
async fn peak_until(
    pid: u32,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<Sample> {
    let mut peak = Sample::read(pid)?;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(peak),
            _ = tick.tick() => peak = peak.max(Sample::read(pid)?),
        }
    }
}

/// A sample once descriptors and threads have not moved for `STEADY_FOR` (or the last one
/// after `BASELINE_WAIT`).
async fn steady_sample(pid: u32) -> anyhow::Result<Sample> {
    let give_up = Instant::now() + BASELINE_WAIT;
    let mut last = Sample::read(pid)?;
    let mut since = Instant::now();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while Instant::now() < give_up {
        tick.tick().await;
        let now = Sample::read(pid)?;
        if (now.fds, now.threads) != (last.fds, last.threads) {
            since = Instant::now();
        } else if since.elapsed() >= STEADY_FOR {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Polls until the process is back within the tolerance of `baseline`, for at most `limit`;
/// the last sample and how long it took (`None`: it did not get back).
async fn settle(
    pid: u32,
    baseline: Sample,
    limit: Duration,
) -> anyhow::Result<(Sample, Option<Duration>)> {
    let started = Instant::now();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let now = Sample::read(pid)?;
        if now.back_to(baseline) {
            return Ok((now, Some(started.elapsed())));
        }
        if started.elapsed() >= limit {
            return Ok((now, None));
        }
    }
}

/// One WebSocket round trip after the soak: the device still serves.
async fn still_answers(target: Target) -> anyhow::Result<()> {
    let url = format!("ws://{}/ws", target.http);
    let mut sessions = connect_all(&url, 1).await?;
    let ws = sessions.first_mut().context("no session")?;
    round_trip(ws, 1).await?;
    let _ = timeout(OP_TIMEOUT, ws.close(None)).await;
    Ok(())
}

async fn operation(kind: Kind, target: Target, n: u64) -> anyhow::Result<()> {
    match kind {
        Kind::WsClose | Kind::WsFin | Kind::WsRst => ws_session(kind, target.http, n).await,
        Kind::Http => http_check(target.http).await,
        Kind::DnsUdp => dns_udp(target.dns, n).await,
        Kind::DnsTcp => dns_tcp(target.dns, n).await,
    }
}

/// A session with one `ping` → `pong`, ended the way `kind` says.
async fn ws_session(kind: Kind, http: SocketAddr, n: u64) -> anyhow::Result<()> {
    let url = format!("ws://{http}/ws");
    let mut sessions = connect_all(&url, 1).await?;
    let mut ws = sessions.pop().context("no session")?;
    round_trip(&mut ws, n).await?;
    match kind {
        Kind::WsRst => {
            let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
                bail!("not a plain TCP stream");
            };
            tcp.set_zero_linger().context("SO_LINGER 0")?;
            drop(ws);
            Ok(())
        }
        Kind::WsFin => {
            let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
                bail!("not a plain TCP stream");
            };
            tcp.shutdown().await.context("shutdown(SHUT_WR)")?;
            drain(&mut ws).await
        }
        _ => {
            ws.close(None).await.context("sending the close frame")?;
            drain(&mut ws).await
        }
    }
}

/// Reads until the device ends the connection (bounded in frames; the caller bounds the time).
async fn drain(
    ws: &mut tokio_tungstenite::WebSocketStream<MaybeTlsStream<TcpStream>>,
) -> anyhow::Result<()> {
    for _ in 0..MAX_DRAIN_FRAMES {
        match ws.next().await {
            None | Some(Err(_)) => return Ok(()),
            Some(Ok(_)) => {}
        }
    }
    bail!("the device sent {MAX_DRAIN_FRAMES} frames after the session ended")
}

/// Android's connectivity check; reads the response head, then closes (FIN).
async fn http_check(http: SocketAddr) -> anyhow::Result<()> {
    let mut tcp = TcpStream::connect(http).await.context("HTTP connect")?;
    tcp.write_all(
        b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n\
          Connection: close\r\n\r\n",
    )
    .await
    .context("HTTP request")?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.context("HTTP response")?;
        if n == 0 {
            bail!("connection closed before the response head ended");
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
    }
    if !head.starts_with(b"HTTP/1.1 ") {
        bail!(
            "not an HTTP/1.1 response: {:?}",
            String::from_utf8_lossy(head.get(..40).unwrap_or(&head))
        );
    }
    tcp.shutdown().await.context("HTTP shutdown")?;
    Ok(())
}

fn dns_query(n: u64) -> anyhow::Result<(u16, Vec<u8>)> {
    let id = (n % 65_536) as u16;
    let mut query = Message::query();
    query.metadata.id = id;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(
        Name::from_ascii("connectivitycheck.gstatic.com.")?,
        RecordType::A,
    ));
    Ok((id, query.to_vec()?))
}

fn check_answer(id: u16, bytes: &[u8]) -> anyhow::Result<()> {
    let reply = Message::from_vec(bytes).context("DNS reply does not parse")?;
    if reply.metadata.id != id {
        bail!("DNS reply id {} for query {id}", reply.metadata.id);
    }
    if reply.answers.is_empty() {
        bail!("DNS reply without an answer");
    }
    Ok(())
}

async fn dns_udp(dns: SocketAddr, n: u64) -> anyhow::Result<()> {
    let (id, bytes) = dns_query(n)?;
    let socket = UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(dns).await?;
    let mut buf = vec![0u8; 1500];
    for _ in 0..DNS_UDP_TRIES {
        socket.send(&bytes).await.context("DNS send")?;
        if let Ok(received) = timeout(DNS_UDP_WAIT, socket.recv(&mut buf)).await {
            let len = received.context("DNS receive")?;
            return check_answer(id, buf.get(..len).unwrap_or_default());
        }
    }
    bail!("no DNS answer over UDP after {DNS_UDP_TRIES} tries of {DNS_UDP_WAIT:?}")
}

async fn dns_tcp(dns: SocketAddr, n: u64) -> anyhow::Result<()> {
    let (id, bytes) = dns_query(n)?;
    let mut tcp = TcpStream::connect(dns).await.context("DNS TCP connect")?;
    let len = u16::try_from(bytes.len()).context("query too long")?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    tcp.write_all(&framed).await.context("DNS TCP send")?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).await.context("DNS TCP length")?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut reply).await.context("DNS TCP reply")?;
    check_answer(id, &reply)?;
    tcp.shutdown().await.context("DNS TCP shutdown")?;
    Ok(())
}

/// The markdown report.
struct Report<'a> {
    args: &'a SoakArgs,
    outcome: &'a SoakResult,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, o) = (self.args, self.outcome);
        writeln!(
            f,
            "## Soak: {} operations in {:.1} s against `espsim run` (pid {}){}\n",
            o.tally.total_done() + o.tally.total_failed(),
            o.churn.as_secs_f64(),
            o.pid,
            if a.quick { ", --quick" } else { "" }
        )?;
        writeln!(
            f,
            "- bounds: at most {} operations and {} s, {} in flight; settle at most {} s",
            a.connections, a.seconds, a.parallel, a.settle_seconds
        )?;
        writeln!(f, "- machine: {}\n", crate::procs::machine())?;
        writeln!(f, "| operation | done | failed | first error |")?;
        writeln!(f, "|---|---:|---:|---|")?;
        for kind in Kind::ALL {
            let i = kind.index();
            writeln!(
                f,
                "| {} | {} | {} | {} |",
                kind.label(),
                o.tally.done.get(i).copied().unwrap_or(0),
                o.tally.failed.get(i).copied().unwrap_or(0),
                o.tally
                    .first_error
                    .get(i)
                    .and_then(Option::as_deref)
                    .unwrap_or("")
            )?;
        }
        writeln!(f)?;
        writeln!(f, "| espsim process | RSS (MiB) | fds | threads |")?;
        writeln!(f, "|---|---:|---:|---:|")?;
        let settled = match o.settled_in {
            Some(d) => format!("after settling ({:.1} s)", d.as_secs_f64()),
            None => format!("after {:.0} s, NOT settled", o.settle_limit.as_secs_f64()),
        };
        for (label, s) in [
            ("baseline (after warm-up, steady)", o.baseline),
            ("peak during the churn", o.peak),
            ("end of the churn", o.end_of_churn),
            (settled.as_str(), o.after),
        ] {
            writeln!(
                f,
                "| {label} | {:.1} | {} | {} |",
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.threads
            )?;
        }
        writeln!(f)?;
        let verdict = |ok: bool| if ok { "ok" } else { "**FAIL**" };
        writeln!(
            f,
            "- fds back to baseline (≤ {} + {FD_TOLERANCE}): {}",
            o.baseline.fds,
            verdict(o.after.fds <= o.baseline.fds.saturating_add(FD_TOLERANCE))
        )?;
        writeln!(
            f,
            "- threads back to baseline (≤ {} + {THREAD_TOLERANCE}): {}",
            o.baseline.threads,
            verdict(o.after.threads <= o.baseline.threads.saturating_add(THREAD_TOLERANCE))
        )?;
        writeln!(
            f,
            "- every operation succeeded: {}",
            verdict(o.tally.total_failed() == 0)
        )?;
        match &o.still_answers {
            Ok(()) => writeln!(f, "- the device still answers a WebSocket round trip: ok")?,
            Err(e) => writeln!(
                f,
                "- the device still answers a WebSocket round trip: **FAIL** ({e})"
            )?,
        }
        writeln!(
            f,
            "- RSS: reported, not judged (the allocator keeps freed pages)\n\n**soak: {}**",
            if o.passed() { "PASS" } else { "FAIL" }
        )
    }
}
