//! `FaultyStream`: a connection with Toxiproxy-style stream faults applied per direction.
//!
//! Without faults the inner stream is used directly. With only rate limits (`bandwidth`, and
//! `latency` of zero) the stream is paced in place: each read or write waits for its byte budget,
//! so a pass-through rule costs nothing but a clock read. With any other fault, a pump task sits between the
//! real socket and the device code (like Toxiproxy between client and upstream) and a
//! `tokio::io::duplex` pipe connects it to the returned stream. Each direction is a two-stage
//! pipeline: a reader stamps every chunk with its release time (arrival + latency ± jitter) and a
//! writer releases it on time (a [`ReleaseTimer`]: sub-millisecond on Linux), in slices at the
//! allowed rate, counting bytes for `limit_data`. The pump owns the
//! socket, so it can end it the way the fault says: FIN, RST (SO_LINGER 0), or never (half-open).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use espsim_faults::{StreamDirection, StreamFault, StreamFaults};

use super::release::ReleaseTimer;
use super::supervisor::Supervisor;

/// How long a FIN-closed connection keeps reading (and discarding) the peer's data, so that
/// unread input does not turn the FIN into an RST.
pub const FIN_DRAIN: Duration = Duration::from_secs(2);

/// Size of the in-process pipe between the pump and the device code, in bytes.
const PIPE_BYTES: usize = 64 * 1024;
/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction (latency pipeline depth).
const IN_FLIGHT: usize = 64;

/// `from + d`, saturating at 30 years from `from` (Tokio's own "far future"): every time sum
/// on a connection goes through here, so no duration, validated or not, can overflow the clock.
pub(crate) fn deadline(from: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    from.checked_add(d.min(FAR)).unwrap_or(from)
}

/// A transport that can be torn down with a TCP reset.
pub trait Abort {
    /// Ends the connection so the peer sees "connection reset" (RST) where the transport has
    /// such a thing; otherwise simply drops it.
    fn abort(self);
}

impl Abort for TcpStream {
    /// SO_LINGER 0, then drop: the kernel sends RST instead of FIN.
    fn abort(self) {
        if let Err(e) = self.set_zero_linger() {
            tracing::debug!(error = %e, "set SO_LINGER 0 failed; the close may be a FIN");
        }
        drop(self);
    }
}

impl Abort for DuplexStream {
    /// An in-process pipe has no RST: the peer sees EOF.
    fn abort(self) {
        drop(self);
    }
}

/// A connection with stream faults applied. Use it like the inner stream; the faults are
/// invisible to the device code except through timing and where the connection ends.
///
/// Directions: *upstream* is what the device reads (app → device), *downstream* what it writes.
#[derive(Debug)]
pub struct FaultyStream<S> {
    repr: Repr<S>,
}

#[derive(Debug)]
enum Repr<S> {
    Direct(S),
    /// Rate limits only: reads pace `up`, writes pace `down`.
    Paced {
        inner: S,
        up: Pacer,
        down: Pacer,
    },
    Piped {
        io: DuplexStream,
        abort: Option<oneshot::Sender<()>>,
    },
}

impl<S> FaultyStream<S>
where
    S: AsyncRead + AsyncWrite + Abort + Send + Unpin + 'static,
{
    /// Wraps `inner`. With no faults the stream passes through untouched; otherwise a pump task
    /// is spawned on `supervisor` (needs a Tokio runtime); its shutdown ends the pump and
    /// releases connections held open by `half_open`.
    ///
    /// Wrap the raw TCP stream and put TLS on top, so the faults hit the bytes on the wire.
    pub fn new(inner: S, faults: &StreamFaults, supervisor: &Supervisor) -> Self {
        if faults.is_empty() {
            return FaultyStream {
                repr: Repr::Direct(inner),
            };
        }
        let config = Config::from_faults(faults.faults.iter().map(|a| &a.fault), faults.seed);
        if config.is_pacing_only() {
            return FaultyStream {
                repr: Repr::Paced {
                    inner,
                    up: Pacer::new(config.up.rate),
                    down: Pacer::new(config.down.rate),
                },
            };
        }
        let (io, app) = tokio::io::duplex(PIPE_BYTES);
        let (abort_tx, abort_rx) = oneshot::channel();
        let shutdown = supervisor.shutdown_token().clone();
        supervisor.spawn(pump(inner, app, config, abort_rx, shutdown));
        FaultyStream {
            repr: Repr::Piped {
                io,
                abort: Some(abort_tx),
            },
        }
    }

    /// True when faults are applied (paced in place, or a pump between the socket and this
    /// stream).
    pub fn is_faulty(&self) -> bool {
        !matches!(self.repr, Repr::Direct(_))
    }

    /// Ends the connection with RST (SO_LINGER 0), whatever the faults. Use it for device
    /// behaviour that resets (e.g. a handshake `reset` fault).
    pub fn abort(self) {
        match self.repr {
            Repr::Direct(s) | Repr::Paced { inner: s, .. } => s.abort(),
            Repr::Piped { abort, .. } => {
                if let Some(tx) = abort {
                    // The pump may already have ended the connection; then there is nothing to do.
                    let _ = tx.send(());
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FaultyStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().repr {
            Repr::Direct(s) => Pin::new(s).poll_read(cx, buf),
            Repr::Paced { inner, up, .. } => {
                ready!(up.poll_ready(cx));
                let Some(max) = up.max_chunk(buf.remaining()) else {
                    return Pin::new(inner).poll_read(cx, buf);
                };
                let mut part = ReadBuf::new(buf.initialize_unfilled_to(max));
                ready!(Pin::new(inner).poll_read(cx, &mut part))?;
                let n = part.filled().len();
                buf.advance(n);
                up.spent(n);
                Poll::Ready(Ok(()))
            }
            Repr::Piped { io, .. } => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FaultyStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().repr {
            Repr::Direct(s) => Pin::new(s).poll_write(cx, buf),
            Repr::Paced { inner, down, .. } => {
                ready!(down.poll_ready(cx));
                let max = down.max_chunk(buf.len()).unwrap_or(buf.len());
                let n = ready!(Pin::new(inner).poll_write(cx, &buf[..max]))?;
                down.spent(n);
                Poll::Ready(Ok(n))
            }
            Repr::Piped { io, .. } => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().repr {
            Repr::Direct(s) | Repr::Paced { inner: s, .. } => Pin::new(s).poll_flush(cx),
            Repr::Piped { io, .. } => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().repr {
            Repr::Direct(s) | Repr::Paced { inner: s, .. } => Pin::new(s).poll_shutdown(cx),
            Repr::Piped { io, .. } => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// Paces one direction at a byte rate, in place (rate-only streams) or in the pump's writer: a
/// read or write moves at most 100 ms worth of bytes, and the next one waits until the bytes
/// moved so far are due at the rate. It sleeps only once it is 1 ms or more ahead of the clock
/// (Tokio's timer rounds every deadline up to the next millisecond), so a very high rate costs
/// no timer at all.
#[derive(Debug)]
struct Pacer {
    /// Bytes per second; `None` passes everything at once.
    rate: Option<u64>,
    /// When everything moved so far is due at `rate`.
    due: Instant,
    wait: Option<Pin<Box<Sleep>>>,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate,
            due: Instant::now(),
            wait: None,
        }
    }

    /// Ready once the budget allows the next read or write.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(wait) = &mut self.wait {
            ready!(wait.as_mut().poll(cx));
            self.wait = None;
        }
        Poll::Ready(())
    }

    /// How many of `len` bytes one read or write may move; `None` = no limit.
    fn max_chunk(&self, len: usize) -> Option<usize> {
        let bps = self.rate?;
        Some(len.min(usize::try_from((bps / 10).max(1)).unwrap_or(usize::MAX)))
    }

    /// Records `n` bytes moved; arms the wait when the budget runs 1 ms or more ahead.
    fn spent(&mut self, n: usize) {
        let Some(bps) = self.rate else { return };
        let now = Instant::now();
        let cost =
            Duration::try_from_secs_f64(n as f64 / bps.max(1) as f64).unwrap_or(Duration::MAX);
        self.due = deadline(self.due.max(now), cost);
        if self.due >= deadline(now, Duration::from_millis(1)) {
            self.wait = Some(Box::pin(sleep_until(self.due)));
        }
    }
}

/// What one direction does to its bytes.
#[derive(Debug, Clone, Default)]
struct DirConfig {
    latency: Duration,
    jitter: Duration,
    /// Bytes per second.
    rate: Option<u64>,
    slicer: Option<(usize, usize, Duration)>,
    /// This direction's bytes count against `limit_data`.
    limited: bool,
    /// Data is discarded (timeout / half-open).
    discard: bool,
    /// EOF is not passed on (half-open).
    swallow_eof: bool,
    /// Delay before passing EOF on (slow_close, downstream only).
    close_delay: Duration,
    seed: u64,
}

/// Everything the pump needs, derived once from the connection's faults.
#[derive(Debug, Clone, Default)]
struct Config {
    up: DirConfig,
    down: DirConfig,
    limit: Option<u64>,
    reset_after: Option<Duration>,
    /// `timeout` toxic: close after this long (`None` inside = never).
    close_after: Option<Duration>,
    half_open: bool,
}

impl Config {
    /// True when nothing but rate limits applies (no delay, slicing, limit or ending), so the
    /// stream can be paced in place instead of pumped.
    fn is_pacing_only(&self) -> bool {
        let plain = |d: &DirConfig| {
            d.latency.is_zero()
                && d.jitter.is_zero()
                && d.slicer.is_none()
                && !d.limited
                && !d.discard
                && !d.swallow_eof
                && d.close_delay.is_zero()
        };
        plain(&self.up)
            && plain(&self.down)
            && self.limit.is_none()
            && self.reset_after.is_none()
            && self.close_after.is_none()
            && !self.half_open
    }

    fn from_faults<'a>(faults: impl Iterator<Item = &'a StreamFault>, seed: u64) -> Config {
        let mut c = Config::default();
        c.up.seed = seed;
        c.down.seed = seed ^ 0x9e37_79b9_7f4a_7c15;
        let each = |c: &mut Config, d: StreamDirection, f: &mut dyn FnMut(&mut DirConfig)| {
            if d.upstream() {
                f(&mut c.up);
            }
            if d.downstream() {
                f(&mut c.down);
            }
        };
        for fault in faults {
            match fault {
                // Stacked rules add up, saturating (validation bounds each one).
                StreamFault::Latency(l) => each(&mut c, l.direction, &mut |d| {
                    d.latency = d.latency.saturating_add(l.latency);
                    d.jitter = d.jitter.saturating_add(l.jitter);
                }),
                StreamFault::Bandwidth(b) => each(&mut c, b.direction, &mut |d| {
                    let bps = b.rate.saturating_mul(1000).max(1);
                    d.rate = Some(d.rate.map_or(bps, |r| r.min(bps)));
                }),
                StreamFault::Slicer(s) => each(&mut c, s.direction, &mut |d| {
                    d.slicer = Some((s.average_size, s.size_variation, s.delay));
                }),
                StreamFault::LimitData(l) => {
                    c.limit = Some(c.limit.map_or(l.bytes, |x| x.min(l.bytes)));
                    each(&mut c, l.direction, &mut |d| d.limited = true);
                }
                StreamFault::ResetPeer(r) => {
                    c.reset_after = Some(c.reset_after.map_or(r.timeout, |x| x.min(r.timeout)));
                }
                StreamFault::Timeout(t) => {
                    c.up.discard = true;
                    c.down.discard = true;
                    if !t.timeout.is_zero() {
                        c.close_after = Some(c.close_after.map_or(t.timeout, |x| x.min(t.timeout)));
                    }
                }
                StreamFault::SlowClose(s) => {
                    c.down.close_delay = c.down.close_delay.saturating_add(s.delay);
                }
                StreamFault::HalfOpen => {
                    c.half_open = true;
                    for d in [&mut c.up, &mut c.down] {
                        d.discard = true;
                        d.swallow_eof = true;
                    }
                }
            }
        }
        c
    }
}

/// How a direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirEnd {
    /// The source ended (and EOF was passed on, unless swallowed).
    Eof,
    /// `limit_data` was reached.
    Limit,
    /// Reading or writing failed (e.g. the peer reset).
    Failed,
}

/// How the whole connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Both directions finished, or the emulator is shutting down: drop the socket.
    Drop,
    /// The device's side was already shut down (FIN sent): drain, then drop.
    Drain,
    /// Close with FIN now.
    Fin,
    /// Close with RST now.
    Reset,
    /// Half-open: hold the socket, silent, until the emulator shuts down.
    Hold,
}

async fn pump<S>(
    inner: S,
    app: DuplexStream,
    config: Config,
    mut abort: oneshot::Receiver<()>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Abort + Send + Unpin + 'static,
{
    let (mut inner_r, mut inner_w) = tokio::io::split(inner);
    let (mut app_r, mut app_w) = tokio::io::split(app);
    let remaining = AtomicU64::new(config.limit.unwrap_or(u64::MAX));
    let start = Instant::now();

    let end = {
        let up = direction(&mut inner_r, &mut app_w, &config.up, &remaining);
        let down = direction(&mut app_r, &mut inner_w, &config.down, &remaining);
        tokio::pin!(up, down);
        let reset_at = config.reset_after.map(|d| deadline(start, d));
        let close_at = config.close_after.map(|d| deadline(start, d));
        let (mut up_done, mut down_done) = (false, false);
        // The FaultyStream was dropped (not just shut down for writing).
        let mut device_gone = false;
        let mut abort_open = true;
        loop {
            if down_done && (up_done || device_gone) {
                break match (config.half_open, up_done) {
                    (true, _) => End::Hold,
                    // Both sides closed: nothing left to say.
                    (false, true) => End::Drop,
                    // The device closed its socket (FIN already sent after any slow_close).
                    (false, false) => End::Drain,
                };
            }
            tokio::select! {
                r = &mut up, if !up_done => {
                    up_done = true;
                    match r {
                        DirEnd::Limit => break End::Fin,
                        DirEnd::Failed if !config.half_open => break End::Fin,
                        _ => {}
                    }
                }
                r = &mut down, if !down_done => {
                    down_done = true;
                    match r {
                        DirEnd::Limit => break End::Fin,
                        DirEnd::Failed if !config.half_open => break End::Fin,
                        _ => {}
                    }
                }
                () = sleep_until(reset_at.unwrap_or(start)), if reset_at.is_some() => break End::Reset,
                () = sleep_until(close_at.unwrap_or(start)), if close_at.is_some() => break End::Fin,
                r = &mut abort, if abort_open => {
                    abort_open = false;
                    if r.is_ok() {
                        break End::Reset;
                    }
                    // Dropped: what it wrote is still in the pipe; finish `down`, then close.
                    device_gone = true;
                }
                () = shutdown.cancelled() => break End::Drop,
            }
        }
    };
    drop((app_r, app_w));
    let inner = inner_r.unsplit(inner_w);
    match end {
        End::Reset => inner.abort(),
        End::Hold => {
            shutdown.cancelled().await;
            drop(inner);
        }
        End::Drop => drop(inner),
        End::Drain => drain(inner, FIN_DRAIN).await,
        End::Fin => close_with_fin(inner, FIN_DRAIN).await,
    }
}

/// Sends FIN, then reads and discards the peer's data until it closes or `drain` passes, so
/// unread input does not make the kernel answer with RST.
pub async fn close_with_fin<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, drain_for: Duration) {
    if s.shutdown().await.is_ok() {
        drain(s, drain_for).await;
    }
}

/// Reads and discards until EOF, an error, or `drain_for` passes; then drops the stream.
async fn drain<S: AsyncRead + Unpin>(mut s: S, drain_for: Duration) {
    let until = deadline(Instant::now(), drain_for);
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}

/// One direction: a reader stage stamping chunks with their release time and a writer stage
/// releasing them (slices, rate, limit), joined by a bounded channel.
async fn direction<R, W>(src: &mut R, dst: &mut W, cfg: &DirConfig, remaining: &AtomicU64) -> DirEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
    let mut wrng = Pcg64Mcg::seed_from_u64(cfg.seed.rotate_left(17) ^ 0x5851_f42d_4c95_7f2d);

    let reader = async move {
        let tx = tx;
        let mut last = Instant::now();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match src.read(&mut buf).await {
                Ok(0) => return DirEnd::Eof,
                Ok(n) => n,
                Err(_) => return DirEnd::Failed,
            };
            if cfg.discard {
                continue;
            }
            let mut delay = cfg.latency;
            if !cfg.jitter.is_zero() {
                let j = cfg.jitter.as_nanos() as i128;
                let off = rng.random_range(-j..=j);
                let total = (delay.as_nanos() as i128 + off).max(0);
                delay = Duration::from_nanos(u64::try_from(total).unwrap_or(u64::MAX));
            }
            // TCP never reorders: a chunk is never released before the one read before it.
            let at = deadline(Instant::now(), delay).max(last);
            last = at;
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                return DirEnd::Failed;
            }
        }
    };

    let ends = {
        let writer = async {
            let mut pacer = Pacer::new(cfg.rate);
            // Tokio's timer would release 1–2 ms late (whole-millisecond ticks): see `release`.
            let mut timer = ReleaseTimer::new();
            while let Some((at, data)) = rx.recv().await {
                timer.sleep_until(at).await;
                match release(dst, &data, cfg, remaining, &mut wrng, &mut pacer).await {
                    Ok(true) => {}
                    Ok(false) => return DirEnd::Limit,
                    Err(_) => return DirEnd::Failed,
                }
            }
            DirEnd::Eof
        };

        tokio::pin!(reader, writer);
        // The writer ending first (limit, write error) ends the direction; the reader ending first
        // (EOF) closes the channel, and the writer then releases what is still in flight.
        let first = tokio::select! {
            w = &mut writer => Err(w),
            r = &mut reader => Ok(r),
        };
        match first {
            Err(w) => (DirEnd::Eof, w),
            Ok(r) => (r, writer.await),
        }
    };
    match ends {
        (_, DirEnd::Limit) => DirEnd::Limit,
        (DirEnd::Failed, _) | (_, DirEnd::Failed) => DirEnd::Failed,
        _ => {
            if cfg.swallow_eof {
                return DirEnd::Eof;
            }
            if !cfg.close_delay.is_zero() {
                sleep(cfg.close_delay).await;
            }
            match dst.shutdown().await {
                Ok(()) => DirEnd::Eof,
                Err(_) => DirEnd::Failed,
            }
        }
    }
}

/// Writes one chunk as the direction allows. `Ok(false)` = the limit was reached.
async fn release<W: AsyncWrite + Unpin>(
    dst: &mut W,
    data: &[u8],
    cfg: &DirConfig,
    remaining: &AtomicU64,
    rng: &mut Pcg64Mcg,
    pacer: &mut Pacer,
) -> std::io::Result<bool> {
    let mut rest = data;
    let mut first = true;
    while !rest.is_empty() {
        let mut n = match cfg.slicer {
            Some((avg, var, delay)) => {
                if !first && !delay.is_zero() {
                    sleep(delay).await;
                }
                let var = var.min(avg.saturating_sub(1));
                let size = if var == 0 {
                    avg
                } else {
                    rng.random_range(avg - var..=avg.saturating_add(var))
                };
                size.max(1).min(rest.len())
            }
            None => rest.len(),
        };
        first = false;
        n = pacer.max_chunk(n).unwrap_or(n);
        let mut hit_limit = false;
        if cfg.limited {
            let left = remaining.load(Ordering::SeqCst);
            let take = u64::try_from(n).unwrap_or(u64::MAX).min(left);
            remaining.fetch_sub(take, Ordering::SeqCst);
            n = usize::try_from(take).unwrap_or(n);
            hit_limit = take == left;
        }
        dst.write_all(&rest[..n]).await?;
        dst.flush().await?;
        if hit_limit {
            return Ok(false);
        }
        pacer.spent(n);
        std::future::poll_fn(|cx| pacer.poll_ready(cx)).await;
        rest = &rest[n..];
    }
    Ok(true)
}
