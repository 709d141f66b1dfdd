//! WebSocket round trips through the in-process emulator: app `ping` → firmware `pong`, or the
//! same load against a device file (`bench/devices/echo.yaml`, see [`Responder`]).
//!
//! The emulator runs on its own Tokio runtime (its own worker threads), the clients on another,
//! so the two compete for the CPU as two processes would, while the fault rules can be set per
//! run through [`EmulatorConfig::faults`]. Clients connect first; then every client sends a
//! `ping`, waits for the matching `pong`, and repeats until the deadline. Round trips that start
//! in the warm-up are not counted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use espsim_emulator::net::ReleaseTimer;
use espsim_emulator::profile::Profile;
use espsim_emulator::{DeviceSource, Emulator, EmulatorConfig};
use espsim_faults::FaultRule;
use espsim_protocol::client::Ping;
use espsim_protocol::{ClientMessage, DeviceMessage, decode_device, encode_client};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::procs::own_threads_cpu_ns;
use crate::refproxy::RefProxy;
use crate::stats::percentile;

/// Longest a single connect or round trip may take before the run fails.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on round trips per client per run (the deadline normally ends the loop first).
const MAX_ROUND_TRIPS: u64 = 50_000_000;
/// Upper bound on non-matching frames read while waiting for one `pong`.
const MAX_FRAMES_PER_PONG: usize = 1_000;
/// How many connects run at once while the clients connect (sized for ESP-IDF's listen backlog
/// of 5, which the `unlimited` profile no longer has: it listens with the host's).
const CONNECT_PARALLELISM: usize = 4;
/// Client read buffer: larger than any `pong`.
const CLIENT_READ_BUFFER: usize = 4096;

/// Name of the emulator runtime's threads (Linux keeps the first 15 bytes).
const SERVER_THREADS: &str = "emulator";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The device file of the device section, embedded so the binary runs from any directory.
const ECHO_DEVICE: &str = include_str!("../devices/echo.yaml");
/// The name it is parsed under (in errors).
const ECHO_DEVICE_PATH: &str = "bench/devices/echo.yaml";

/// Which device answers the clients, and so which `ping` they send and which reply they wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Responder {
    /// The built-in firmware: `{"type":"ping","seq":N}` → its `pong` with the same `seq`.
    Builtin,
    /// `bench/devices/echo.yaml`, rule `ping`: `{"cmd":"ping","seq":N}` → `{"pong":N}`, the
    /// reply templated from the message (`"{{ msg.seq }}"`), as real device files are.
    FileTemplated,
    /// The same file, rule `ping-literal`: `{"cmd":"ping-literal","seq":N}` → `{"pong":true}`,
    /// a constant reply: what matching and the host cost without any template.
    FileLiteral,
}

impl Responder {
    /// Short label for tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Responder::Builtin => "built-in firmware",
            Responder::FileTemplated => "device file, templated reply",
            Responder::FileLiteral => "device file, literal reply",
        }
    }

    /// The emulator's device logic for this responder.
    fn source(self) -> anyhow::Result<DeviceSource> {
        Ok(match self {
            Responder::Builtin => DeviceSource::Builtin,
            Responder::FileTemplated | Responder::FileLiteral => {
                let file =
                    espsim_emulator::device_file::parse(ECHO_DEVICE, Path::new(ECHO_DEVICE_PATH))
                        .context("the bench's device file")?;
                DeviceSource::File(Arc::new(file))
            }
        })
    }
}

/// What one run serves: a device and the fault rules in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setup {
    pub(crate) responder: Responder,
    pub(crate) faults: FaultMode,
}

impl Setup {
    /// The built-in firmware behind `faults`.
    pub(crate) fn builtin(faults: FaultMode) -> Setup {
        Setup {
            responder: Responder::Builtin,
            faults,
        }
    }

    /// `responder` with no fault rules.
    pub(crate) fn device(responder: Responder) -> Setup {
        Setup {
            responder,
            faults: FaultMode::None,
        }
    }
}

/// Which fault rules the emulator runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultMode {
    /// No rules: the fault layer has nothing to consult.
    None,
    /// One stream rule that never matches during the run (`when: {at: 1h}`).
    Idle,
    /// Stream faults that match every connection but change nothing: `latency 0`, `bandwidth`
    /// 10 GB/s, both directions (no slicer).
    Passthrough,
    /// `latency` of this many milliseconds on every connection, device → app.
    LatencyMs(u64),
}

impl FaultMode {
    /// Short label for tables.
    pub(crate) fn label(self) -> String {
        match self {
            FaultMode::None => "no fault rules".to_owned(),
            FaultMode::Idle => "idle rule (at: 1h)".to_owned(),
            FaultMode::Passthrough => "latency 0 + bandwidth 10 GB/s".to_owned(),
            FaultMode::LatencyMs(ms) => format!("latency {ms}ms"),
        }
    }

    /// The rules, written as a scenario would write them.
    pub(crate) fn rules(self) -> anyhow::Result<Vec<FaultRule>> {
        let json = match self {
            FaultMode::None => "[]".to_owned(),
            FaultMode::Idle => r#"[{ "when": { "at": "1h" },
                "fault": { "stream": "latency", "latency": "50ms" } }]"#
                .to_owned(),
            FaultMode::Passthrough => r#"[
                { "fault": { "stream": "latency", "latency": "0ms", "direction": "both" } },
                { "fault": { "stream": "bandwidth", "rate": 10000000, "direction": "both" } }]"#
                .to_owned(),
            FaultMode::LatencyMs(ms) => {
                format!(r#"[{{ "fault": {{ "stream": "latency", "latency": "{ms}ms" }} }}]"#)
            }
        };
        serde_json::from_str(&json).with_context(|| format!("fault rules for {self:?}"))
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub(crate) struct WsRun {
    /// Completed round trips per second in the measured window.
    pub(crate) round_trips_per_s: f64,
    /// Round-trip latency percentiles in microseconds.
    pub(crate) p50_us: u32,
    pub(crate) p99_us: u32,
    /// CPU time of the emulator's threads per round trip in the measured window, in µs:
    /// unlike throughput, barely moved by other load on the machine.
    pub(crate) device_cpu_us: f64,
}

/// Runs `clients` concurrent ping/pong loops for `warmup + measure` against a fresh emulator.
pub(crate) fn run(
    clients: usize,
    setup: Setup,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<WsRun> {
    run_via(clients, setup, None, None, warmup, measure)
}

/// As [`run`]; with `proxy`, the clients connect through the reference delay proxy
/// ([`RefProxy`]), which delays device → app by that much; with `pace`, each client starts a
/// round trip at most once per `pace` (starts staggered across the clients), so a path with no
/// delay carries the same light load as a delayed one instead of saturating the CPU.
pub(crate) fn run_via(
    clients: usize,
    setup: Setup,
    proxy: Option<Duration>,
    pace: Option<Duration>,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<WsRun> {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(SERVER_THREADS)
        .build()
        .context("emulator runtime")?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("load")
        .build()
        .context("client runtime")?;
    let config = EmulatorConfig {
        dns: None,
        profile: Profile::UNLIMITED,
        faults: setup.faults.rules()?,
        device_logic: setup.responder.source()?,
        seed: 1,
        ..EmulatorConfig::default()
    };
    let running = server_rt
        .block_on(Emulator::start(config))
        .context("starting the emulator")?;
    let proxy = match proxy {
        Some(delay) => Some(RefProxy::start(running.http_addr(), delay)?),
        None => None,
    };
    let addr = proxy.as_ref().map_or(running.http_addr(), RefProxy::addr);
    let url = format!("ws://{addr}/ws");
    let result = client_rt.block_on(load(&url, clients, setup.responder, pace, warmup, measure));
    drop(proxy);
    server_rt.block_on(running.shutdown(Duration::from_secs(2)));
    client_rt.shutdown_timeout(Duration::from_secs(2));
    server_rt.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn load(
    url: &str,
    clients: usize,
    responder: Responder,
    pace: Option<Duration>,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<WsRun> {
    let sockets = connect_all(url, clients).await?;
    let begin = Instant::now();
    let start = begin + warmup;
    let end = start + measure;
    let mut tasks = Vec::with_capacity(clients);
    for (k, ws) in sockets.into_iter().enumerate() {
        let pacing = pace.map(|every| {
            let offset = every.mul_f64(k as f64 / clients.max(1) as f64);
            (begin + offset, every)
        });
        tasks.push(tokio::spawn(ping_loop(ws, responder, pacing, start, end)));
    }
    // Samples the emulator threads' CPU time at the window's edges.
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let before = own_threads_cpu_ns(SERVER_THREADS);
        tokio::time::sleep_until(end.into()).await;
        own_threads_cpu_ns(SERVER_THREADS).saturating_sub(before)
    });
    let mut all = Vec::new();
    for task in tasks {
        let lat = timeout(warmup + measure + OP_TIMEOUT * 2, task)
            .await
            .context("a client did not finish")?
            .context("a client panicked")??;
        all.extend(lat);
    }
    let cpu_ns = timeout(OP_TIMEOUT, cpu)
        .await
        .context("CPU sampler did not finish")?
        .context("CPU sampler panicked")?;
    all.sort_unstable();
    let (Some(p50_us), Some(p99_us)) = (percentile(&all, 50.0), percentile(&all, 99.0)) else {
        bail!("no round trip completed in the measured window");
    };
    Ok(WsRun {
        round_trips_per_s: all.len() as f64 / measure.as_secs_f64(),
        p50_us,
        p99_us,
        device_cpu_us: cpu_ns as f64 / 1000.0 / all.len() as f64,
    })
}

/// Opens `n` WebSocket sessions, a few at a time.
pub(crate) async fn connect_all(url: &str, n: usize) -> anyhow::Result<Vec<Ws>> {
    let mut out = Vec::with_capacity(n);
    let mut pending = futures_util::stream::iter(0..n)
        .map(|_| async {
            let connect =
                tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true);
            let (ws, _) = timeout(OP_TIMEOUT, connect)
                .await
                .context("WebSocket connect timed out")?
                .context("WebSocket connect failed")?;
            anyhow::Ok(ws)
        })
        .buffer_unordered(CONNECT_PARALLELISM);
    while let Some(ws) = pending.next().await {
        out.push(ws.with_context(|| format!("after {} connections", out.len()))?);
    }
    Ok(out)
}

/// The load generator's WebSocket settings. tungstenite zero-fills its whole read buffer
/// (128 KiB by default) before every read, which would make the client, not the device, the
/// bottleneck; pings and pongs are well under 4 KiB. Nagle is off (`connect_async_with_config`'s
/// `disable_nagle`), as in the HTTP clients apps use.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER)
}

/// One client: ping, wait for its pong, repeat until `end`; latencies of those sent after `start`.
/// With `pacing` (first start, interval), a round trip starts no earlier than its slot.
async fn ping_loop(
    mut ws: Ws,
    responder: Responder,
    pacing: Option<(Instant, Duration)>,
    start: Instant,
    end: Instant,
) -> anyhow::Result<Vec<u32>> {
    let mut latencies = Vec::new();
    for seq in 0..MAX_ROUND_TRIPS {
        if let Some((first, every)) = pacing {
            let slot = first + every.mul_f64(seq as f64);
            tokio::time::sleep_until(slot.into()).await;
        }
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        round_trip_with(&mut ws, responder, seq).await?;
        if sent >= start {
            let us = sent.elapsed().as_micros();
            latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }
    let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
    Ok(latencies)
}

/// Sends the built-in firmware's `ping{seq}` and reads until the `pong` with that `seq`.
pub(crate) async fn round_trip(ws: &mut Ws, seq: u64) -> anyhow::Result<()> {
    round_trip_with(ws, Responder::Builtin, seq).await
}

/// Sends `responder`'s ping for `seq` and reads until its reply.
async fn round_trip_with(ws: &mut Ws, responder: Responder, seq: u64) -> anyhow::Result<()> {
    let text = match responder {
        Responder::Builtin => {
            let ping = encode_client(&ClientMessage::Ping(Ping { id: None, seq }));
            String::from_utf8(ping).context("encoded ping is not UTF-8")?
        }
        Responder::FileTemplated => format!(r#"{{"cmd":"ping","seq":{seq}}}"#),
        Responder::FileLiteral => format!(r#"{{"cmd":"ping-literal","seq":{seq}}}"#),
    };
    timeout(OP_TIMEOUT, ws.send(Message::text(text)))
        .await
        .context("send timed out")?
        .context("send failed")?;
    for _ in 0..MAX_FRAMES_PER_PONG {
        let frame = timeout(OP_TIMEOUT, ws.next())
            .await
            .context("no pong within the timeout")?;
        match frame {
            Some(Ok(Message::Text(t))) => {
                if is_reply(responder, t.as_str(), seq) {
                    return Ok(());
                }
            }
            Some(Ok(Message::Close(c))) => bail!("device closed the session: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("WebSocket error"),
            None => bail!("device closed the connection"),
        }
    }
    bail!("no pong for seq {seq} among {MAX_FRAMES_PER_PONG} frames")
}

/// Whether `text` is `responder`'s answer to the ping with `seq`.
fn is_reply(responder: Responder, text: &str, seq: u64) -> bool {
    match responder {
        Responder::Builtin => {
            matches!(decode_device(text.as_bytes()), Ok(DeviceMessage::Pong(p)) if p.seq == seq)
        }
        Responder::FileTemplated | Responder::FileLiteral => {
            let Ok(reply) = serde_json::from_str::<serde_json::Value>(text) else {
                return false;
            };
            let want = match responder {
                Responder::FileTemplated => serde_json::Value::from(seq),
                _ => serde_json::Value::Bool(true),
            };
            reply.get("pong") == Some(&want)
        }
    }
}

/// Which timer [`timer_overshoot`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// `tokio::time::sleep`: deadlines rounded up to the next 1 ms tick.
    Tokio,
    /// The emulator's [`ReleaseTimer`] (a timerfd on Linux), what a `latency` fault waits on.
    Release,
}

/// How late a timer fires on this machine right now: `tasks` tasks each sleep `period`
/// repeatedly for `window`; returns the p50 and p99 overshoot in µs. A latency fault cannot be
/// more precise than its timer, so this is printed next to the fault's accuracy.
pub(crate) fn timer_overshoot(
    tasks: usize,
    period: Duration,
    window: Duration,
    timer: Timer,
) -> anyhow::Result<(u32, u32)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(SERVER_THREADS)
        .build()
        .context("timer runtime")?;
    let mut all: Vec<u32> = rt.block_on(async {
        let end = Instant::now() + window;
        let mut handles = Vec::with_capacity(tasks);
        for _ in 0..tasks {
            handles.push(tokio::spawn(async move {
                let mut late = Vec::new();
                let mut release = ReleaseTimer::new();
                // Bounded by the window and by a count.
                for _ in 0..100_000 {
                    let start = Instant::now();
                    if start >= end {
                        break;
                    }
                    match timer {
                        Timer::Tokio => tokio::time::sleep(period).await,
                        Timer::Release => {
                            let at = tokio::time::Instant::from_std(start + period);
                            release.sleep_until(at).await;
                        }
                    }
                    let over = start.elapsed().saturating_sub(period).as_micros();
                    late.push(u32::try_from(over).unwrap_or(u32::MAX));
                }
                late
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap_or_default());
        }
        all
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    all.sort_unstable();
    match (percentile(&all, 50.0), percentile(&all, 99.0)) {
        (Some(p50), Some(p99)) => Ok((p50, p99)),
        _ => bail!("no timer sample"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_device_file_loads() {
        for responder in [Responder::FileTemplated, Responder::FileLiteral] {
            assert!(matches!(responder.source(), Ok(DeviceSource::File(_))));
        }
    }

    #[test]
    fn replies_are_told_apart_by_responder_and_seq() {
        assert!(is_reply(Responder::FileTemplated, r#"{"pong":7}"#, 7));
        assert!(!is_reply(Responder::FileTemplated, r#"{"pong":6}"#, 7));
        assert!(!is_reply(Responder::FileTemplated, r#"{"pong":"7"}"#, 7));
        assert!(is_reply(Responder::FileLiteral, r#"{"pong":true}"#, 7));
        assert!(!is_reply(
            Responder::FileLiteral,
            r#"{"error":"unknown"}"#,
            7
        ));
        assert!(is_reply(
            Responder::Builtin,
            r#"{"type":"pong","seq":7}"#,
            7
        ));
    }
}
