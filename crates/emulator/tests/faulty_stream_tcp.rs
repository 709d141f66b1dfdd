//! FaultyStream over real loopback sockets on the real clock: a `latency` fault, released by the
//! precise timer (a timerfd on Linux), still delays every chunk by at least the nominal latency
//! and keeps the bytes and their order. Only lower bounds on time here: how close to the nominal
//! delay it comes is measured by `espsim-bench --only latency` (BENCHMARKS.md), not asserted.

mod support;

use std::time::Duration;

use espsim_emulator::net::{FaultyStream, ReleaseTimer, Supervisor};
use serde_json::json;
use support::stream_faults;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Generous bound on any single wait, so a broken pump fails the test instead of hanging it.
const LONG: Duration = Duration::from_secs(30);
const LATENCY: Duration = Duration::from_millis(30);

/// A loopback connection: the device end wrapped in `faults`, and the app end.
async fn loopback(faults: serde_json::Value) -> (FaultyStream<TcpStream>, TcpStream, Supervisor) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (app, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (device, _) = accepted.expect("accept");
    let supervisor = Supervisor::default();
    let device = FaultyStream::new(device, &stream_faults(faults, 5), &supervisor);
    (device, app.expect("connect"), supervisor)
}

async fn read_exact(r: &mut (impl AsyncReadExt + Unpin), n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    timeout(LONG, r.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    buf
}

#[tokio::test]
async fn latency_over_loopback_delays_each_chunk_by_at_least_the_latency() {
    let (mut device, mut app, _s) =
        loopback(json!([{ "stream": "latency", "latency": "30ms", "direction": "both" }])).await;
    assert!(device.is_faulty());
    for i in 0..5u8 {
        // Downstream: device → app.
        let chunk = [i; 100];
        let sent = Instant::now();
        device.write_all(&chunk).await.expect("write");
        assert_eq!(read_exact(&mut app, chunk.len()).await, chunk);
        assert!(
            sent.elapsed() >= LATENCY,
            "chunk {i} down after {:?}",
            sent.elapsed()
        );
        // Upstream: app → device.
        let sent = Instant::now();
        app.write_all(&chunk).await.expect("write");
        assert_eq!(read_exact(&mut device, chunk.len()).await, chunk);
        assert!(
            sent.elapsed() >= LATENCY,
            "chunk {i} up after {:?}",
            sent.elapsed()
        );
    }
}

#[tokio::test]
async fn latency_over_loopback_keeps_pipelined_chunks_in_order() {
    let (mut device, mut app, _s) =
        loopback(json!([{ "stream": "latency", "latency": "30ms", "jitter": "20ms" }])).await;
    // Written back to back: with jitter a later chunk may draw a shorter delay, but TCP never
    // reorders, so none may overtake the one before it.
    let mut sent = Vec::new();
    let mut all = Vec::new();
    for i in 0..50u32 {
        let chunk: Vec<u8> = format!("chunk {i:04};").into_bytes();
        sent.push(Instant::now());
        device.write_all(&chunk).await.expect("write");
        all.extend(chunk);
    }
    let first = read_exact(&mut app, 1).await;
    let first_at = sent.first().copied().expect("sent");
    // The first byte is held for at least latency − jitter.
    assert!(
        first_at.elapsed() >= Duration::from_millis(10),
        "{:?}",
        first_at.elapsed()
    );
    let rest = read_exact(&mut app, all.len() - 1).await;
    assert_eq!([first, rest].concat(), all, "same bytes, same order");
}

#[tokio::test]
async fn the_release_timer_never_fires_early_on_the_real_clock() {
    let mut timer = ReleaseTimer::new();
    for i in 0..20u64 {
        let at = Instant::now() + Duration::from_micros(300 + 150 * i);
        timeout(LONG, timer.sleep_until(at)).await.expect("in time");
        assert!(Instant::now() >= at, "woke before the deadline");
    }
    // A deadline that has passed returns at once.
    timeout(LONG, timer.sleep_until(Instant::now()))
        .await
        .expect("in time");
}

#[tokio::test(start_paused = true)]
async fn the_release_timer_follows_paused_time() {
    // On paused time a real-clock timer would wait an hour; Tokio's auto-advance ends it at once,
    // exactly at the deadline.
    let mut timer = ReleaseTimer::new();
    let start = Instant::now();
    timer.sleep_until(start + Duration::from_secs(3600)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
}
