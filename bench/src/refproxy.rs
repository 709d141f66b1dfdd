//! The reference delay proxy: what a `latency` fault is measured against, in the same run.
//!
//! A minimal Toxiproxy-style delay on plain std threads, written to be obviously right rather
//! than fast: per connection, one thread copies app → device untouched; on device → app a reader
//! thread stamps every chunk with its read time + the delay and a writer thread sleeps until that
//! time (`thread::sleep`: `clock_nanosleep` on Linux, an hrtimer with the thread's default 50 µs
//! timer slack) and writes it. Chunks keep their order (one FIFO, one constant delay). Nothing
//! here uses Tokio's timer, so it shares none of the emulator's timer machinery.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Connections accepted per proxy at most (a benchmark opens a few dozen).
const MAX_CONNECTIONS: usize = 10_000;
/// Chunks moved per direction per connection at most (the connection normally ends first).
const MAX_CHUNKS: usize = 100_000_000;
/// Chunks in flight on the delayed direction (as the emulator's pipeline).
const IN_FLIGHT: usize = 64;
/// Largest chunk read at once (as the emulator's pipeline).
const CHUNK: usize = 16 * 1024;
/// A socket that stays silent this long ends its threads, so none can outlive a run for long.
const IDLE: Duration = Duration::from_secs(60);

/// A running reference proxy on `127.0.0.1`; stopped (its accept thread joined) on drop.
/// Connection threads end when their sockets close.
#[derive(Debug)]
pub(crate) struct RefProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl RefProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`, delaying
    /// upstream → client (device → app) by `delay`.
    pub(crate) fn start(upstream: SocketAddr, delay: Duration) -> anyhow::Result<RefProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").context("reference proxy: bind")?;
        let addr = listener
            .local_addr()
            .context("reference proxy: local address")?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let accept = thread::Builder::new()
            .name("refproxy".to_owned())
            .spawn(move || {
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((app, _)) = listener.accept() else {
                        break;
                    };
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Err(e) = serve(app, upstream, delay) {
                        eprintln!("reference proxy: {e:#}");
                    }
                }
            })
            .context("reference proxy: accept thread")?;
        Ok(RefProxy {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RefProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept; if the connect fails the thread is already gone.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Starts the three threads of one connection.
fn serve(app: TcpStream, upstream: SocketAddr, delay: Duration) -> anyhow::Result<()> {
    let dev = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
        .context("connect to the emulator")?;
    for s in [&app, &dev] {
        s.set_nodelay(true).context("TCP_NODELAY")?;
        s.set_read_timeout(Some(IDLE)).context("read timeout")?;
    }
    let (app_r, dev_w) = (
        app.try_clone().context("clone")?,
        dev.try_clone().context("clone")?,
    );
    spawn("refproxy-up", move || {
        copy(app_r, &dev_w);
        let _ = dev_w.shutdown(Shutdown::Write);
    })?;
    let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let mut dev_r = dev;
    spawn("refproxy-read", move || {
        let mut buf = vec![0u8; CHUNK];
        for _ in 0..MAX_CHUNKS {
            let n = match dev_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = Instant::now() + delay;
            let Some(chunk) = buf.get(..n) else { break };
            if tx.send((at, chunk.to_vec())).is_err() {
                break;
            }
        }
    })?;
    let mut app_w = app;
    spawn("refproxy-write", move || {
        for _ in 0..MAX_CHUNKS {
            let Ok((at, data)) = rx.recv() else { break };
            let now = Instant::now();
            if at > now {
                thread::sleep(at - now);
            }
            if app_w.write_all(&data).is_err() {
                break;
            }
        }
        let _ = app_w.shutdown(Shutdown::Write);
    })?;
    Ok(())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map(drop)
        .with_context(|| format!("reference proxy: thread {name}"))
}

/// Copies until EOF or an error.
fn copy(mut from: TcpStream, mut to: &TcpStream) {
    let mut buf = vec![0u8; CHUNK];
    for _ in 0..MAX_CHUNKS {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Some(chunk) = buf.get(..n) else { return };
        if to.write_all(chunk).is_err() {
            return;
        }
    }
}
