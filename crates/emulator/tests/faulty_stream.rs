//! FaultyStream over an in-process pipe with paused time: what the app side observes, when.
//!
//! Layout in every test: `device` is the FaultyStream the emulator would serve through; `app`
//! is the other end of the pipe, standing in for the app's socket.

mod support;

use std::time::Duration;

use espsim_emulator::net::{FaultyStream, Supervisor};
use espsim_faults::StreamFault;
use serde_json::json;
use support::stream_faults;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::time::{Instant, timeout};

const LONG: Duration = Duration::from_secs(3600);

fn pair(v: serde_json::Value) -> (FaultyStream<DuplexStream>, DuplexStream, Supervisor) {
    let (inner, app) = duplex(1 << 20);
    let token = Supervisor::default();
    (
        FaultyStream::new(inner, &stream_faults(v, 11), &token),
        app,
        token,
    )
}

/// Reads exactly `n` bytes; returns the time the last one arrived.
async fn read_n(r: &mut (impl AsyncReadExt + Unpin), n: usize) -> (Vec<u8>, Instant) {
    let mut buf = vec![0; n];
    timeout(LONG, r.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    (buf, Instant::now())
}

/// Reads until EOF; returns everything read and when EOF came.
async fn read_to_eof(r: &mut (impl AsyncReadExt + Unpin)) -> (Vec<u8>, Instant) {
    let mut out = Vec::new();
    timeout(LONG, r.read_to_end(&mut out))
        .await
        .expect("in time")
        .expect("read");
    (out, Instant::now())
}

#[tokio::test(start_paused = true)]
async fn no_faults_pass_straight_through() {
    let (mut device, mut app, _t) = pair(json!([]));
    assert!(!device.is_faulty());
    device.write_all(b"hello").await.expect("write");
    assert_eq!(read_n(&mut app, 5).await.0, b"hello");
}

#[tokio::test(start_paused = true)]
async fn latency_delays_the_chosen_direction_only() {
    let (mut device, mut app, _t) = pair(json!([{ "stream": "latency", "latency": "250ms" }]));
    assert!(device.is_faulty());
    let t0 = Instant::now();
    device.write_all(b"down").await.expect("write");
    let (data, at) = read_n(&mut app, 4).await;
    assert_eq!(data, b"down");
    assert_eq!(at - t0, Duration::from_millis(250));

    let t1 = Instant::now();
    app.write_all(b"up").await.expect("write");
    let (data, at) = read_n(&mut device, 2).await;
    assert_eq!(data, b"up");
    assert_eq!(at - t1, Duration::ZERO, "upstream is untouched");
}

#[tokio::test(start_paused = true)]
async fn latency_pipelines_chunks_and_keeps_their_order() {
    let (mut device, mut app, _t) = pair(
        json!([{ "stream": "latency", "latency": "1s", "jitter": "300ms", "direction": "both" }]),
    );
    let t0 = Instant::now();
    for i in 0..5u8 {
        device.write_all(&[i]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut arrivals = Vec::new();
    for i in 0..5u8 {
        let (b, at) = read_n(&mut app, 1).await;
        assert_eq!(b, [i], "order kept");
        arrivals.push(at - t0);
    }
    // Each chunk is released 1 s ± 300 ms after it was written (never before an earlier one),
    // so the five arrive within ~1.7 s, not 5 s as a per-write sleep would give.
    assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
    assert!(arrivals[0] >= Duration::from_millis(700), "{arrivals:?}");
    assert!(arrivals[4] <= Duration::from_millis(1700), "{arrivals:?}");
}

#[tokio::test(start_paused = true)]
async fn jitter_replays_with_the_same_seed() {
    async fn arrivals() -> Vec<Duration> {
        let (mut device, mut app, _t) =
            pair(json!([{ "stream": "latency", "latency": "100ms", "jitter": "90ms" }]));
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..8u8 {
            device.write_all(&[i]).await.expect("write");
            out.push(read_n(&mut app, 1).await.1 - t0);
        }
        out
    }
    let a = arrivals().await;
    assert_eq!(a, arrivals().await);
    assert!(
        a.windows(2).any(|w| w[1] - w[0] != a[0]),
        "jitter varies: {a:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn bandwidth_limits_the_rate() {
    let (mut device, mut app, _t) = pair(json!([{ "stream": "bandwidth", "rate": 1 }]));
    let t0 = Instant::now();
    device.write_all(&[7u8; 3000]).await.expect("write");
    let (data, at) = read_n(&mut app, 3000).await;
    assert_eq!(data.len(), 3000);
    // 3000 bytes at 1000 B/s in 100-byte steps: the last step leaves at 2.9 s.
    let took = at - t0;
    assert!(
        took >= Duration::from_millis(2900) && took <= Duration::from_millis(3000),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn bandwidth_upstream_paces_what_the_device_reads() {
    let (mut device, mut app, _t) = pair(json!([
        { "stream": "bandwidth", "rate": 1, "direction": "upstream" },
        { "stream": "latency", "latency": "0ms" }
    ]));
    assert!(device.is_faulty());
    let t0 = Instant::now();
    app.write_all(&[9u8; 3000]).await.expect("write");
    let (data, at) = read_n(&mut device, 3000).await;
    assert_eq!(data, vec![9u8; 3000]);
    // Read in 100-byte portions at 1000 B/s: the last one is read at 2.9 s.
    let took = at - t0;
    assert!(
        took >= Duration::from_millis(2900) && took <= Duration::from_millis(3000),
        "{took:?}"
    );
    // The other direction is not limited.
    let t1 = Instant::now();
    device.write_all(&[1u8; 3000]).await.expect("write");
    let (_, back) = read_n(&mut app, 3000).await;
    assert_eq!(back - t1, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn pass_through_rules_keep_every_byte_and_the_end_of_stream() {
    let (mut device, mut app, _t) = pair(json!([
        { "stream": "latency", "latency": "0ms", "direction": "both" },
        { "stream": "bandwidth", "rate": 10_000_000, "direction": "both" }
    ]));
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let t0 = Instant::now();
    let writer = async {
        device.write_all(&payload).await.expect("write");
        device.shutdown().await.expect("shutdown");
        device
    };
    let (mut device, (got, _)) = tokio::join!(writer, read_to_eof(&mut app));
    assert_eq!(got, payload);
    // 200 KB at 10 GB/s is 20 µs: no timer was armed.
    assert!(
        t0.elapsed() < Duration::from_millis(1),
        "{:?}",
        t0.elapsed()
    );
    app.write_all(b"back").await.expect("write");
    drop(app);
    assert_eq!(read_to_eof(&mut device).await.0, b"back");
}

#[tokio::test(start_paused = true)]
async fn slicer_cuts_data_into_delayed_pieces() {
    let (mut device, mut app, _t) =
        pair(json!([{ "stream": "slicer", "average_size": 4, "delay": "10ms" }]));
    let t0 = Instant::now();
    device
        .write_all(b"abcdefghijklmnopqrst")
        .await
        .expect("write");
    let mut sizes = Vec::new();
    let mut got = Vec::new();
    while got.len() < 20 {
        let mut buf = [0u8; 64];
        let n = timeout(LONG, app.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        sizes.push(n);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"abcdefghijklmnopqrst");
    assert_eq!(sizes, [4, 4, 4, 4, 4]);
    assert_eq!(Instant::now() - t0, Duration::from_millis(40));
}

#[tokio::test(start_paused = true)]
async fn limit_data_closes_after_exactly_n_bytes_downstream() {
    let (mut device, mut app, _t) = pair(json!([{ "stream": "limit_data", "bytes": 10 }]));
    device.write_all(&[1u8; 25]).await.expect("write");
    let (data, _) = read_to_eof(&mut app).await;
    assert_eq!(data.len(), 10);
    // The device side sees the connection gone too.
    let mut buf = [0u8; 1];
    assert_eq!(
        timeout(LONG, device.read(&mut buf))
            .await
            .expect("in time")
            .expect("eof"),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn limit_data_upstream_cuts_what_the_device_reads() {
    let (mut device, mut app, _t) =
        pair(json!([{ "stream": "limit_data", "bytes": 10, "direction": "upstream" }]));
    app.write_all(&[2u8; 25]).await.expect("write");
    let (data, _) = read_to_eof(&mut device).await;
    assert_eq!(data, [2u8; 10]);
    let (rest, _) = read_to_eof(&mut app).await;
    assert!(rest.is_empty(), "the app sees FIN");
}

#[tokio::test(start_paused = true)]
async fn timeout_drops_data_then_closes_after_t() {
    let (mut device, mut app, _t) = pair(json!([{ "stream": "timeout", "timeout": "5s" }]));
    let t0 = Instant::now();
    device.write_all(b"lost").await.expect("write");
    app.write_all(b"lost too").await.expect("write");
    let (data, at) = read_to_eof(&mut app).await;
    assert!(data.is_empty(), "no data passes");
    assert_eq!(at - t0, Duration::from_secs(5));
    let (data, _) = read_to_eof(&mut device).await;
    assert!(data.is_empty());
}

#[tokio::test(start_paused = true)]
async fn timeout_zero_never_closes() {
    let (mut device, mut app, _t) = pair(json!([{ "stream": "timeout", "timeout": 0 }]));
    device.write_all(b"lost").await.expect("write");
    let mut buf = [0u8; 8];
    assert!(
        timeout(Duration::from_secs(600), app.read(&mut buf))
            .await
            .is_err(),
        "silence"
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_is_silent_even_after_the_device_closes() {
    let (mut device, mut app, shutdown) = pair(json!([{ "stream": "half_open" }]));
    app.write_all(b"anyone?").await.expect("write");
    let mut buf = [0u8; 8];
    assert!(
        timeout(Duration::from_secs(60), device.read(&mut buf))
            .await
            .is_err()
    );
    device.write_all(b"hello").await.expect("write");
    drop(device);
    assert!(
        timeout(Duration::from_secs(600), app.read(&mut buf))
            .await
            .is_err(),
        "no data, no FIN"
    );
    shutdown.shutdown_token().cancel();
    let (data, _) = read_to_eof(&mut app).await;
    assert!(data.is_empty(), "released at shutdown");
}

#[tokio::test(start_paused = true)]
async fn slow_close_delays_the_fin() {
    let (mut device, mut app, _t) = pair(json!([{ "stream": "slow_close", "delay": "3s" }]));
    device.write_all(b"bye").await.expect("write");
    let t0 = Instant::now();
    device.shutdown().await.expect("shutdown");
    drop(device);
    let (data, at) = read_to_eof(&mut app).await;
    assert_eq!(data, b"bye");
    assert_eq!(at - t0, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn reset_peer_ends_the_connection_after_t() {
    let (mut device, mut app, _t) = pair(json!([{ "stream": "reset_peer", "timeout": "2s" }]));
    let t0 = Instant::now();
    device.write_all(b"early").await.expect("write");
    let (data, at) = read_to_eof(&mut app).await;
    assert_eq!(data, b"early");
    assert_eq!(at - t0, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn abort_ends_a_piped_stream() {
    let (device, mut app, _t) = pair(json!([{ "stream": "latency", "latency": "1ms" }]));
    device.abort();
    let (data, _) = read_to_eof(&mut app).await;
    assert!(data.is_empty());
}

#[tokio::test(start_paused = true)]
async fn data_survives_every_reshaping_fault_both_ways() {
    let (device, app, _t) = pair(json!([
        { "stream": "latency", "latency": "20ms", "jitter": "10ms", "direction": "both" },
        { "stream": "slicer", "average_size": 100, "size_variation": 90, "delay": "1ms", "direction": "both" },
        { "stream": "bandwidth", "rate": 500, "direction": "both" }
    ]));
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut dr, mut dw) = tokio::io::split(device);
    let (mut ar, mut aw) = tokio::io::split(app);
    let p = payload.clone();
    let down = tokio::spawn(async move {
        dw.write_all(&p).await.expect("write");
        dw.shutdown().await.expect("shutdown");
    });
    let p = payload.clone();
    let up = tokio::spawn(async move {
        aw.write_all(&p).await.expect("write");
        aw.shutdown().await.expect("shutdown");
    });
    let (at_app, _) = read_to_eof(&mut ar).await;
    let (at_device, _) = read_to_eof(&mut dr).await;
    down.await.expect("down");
    up.await.expect("up");
    assert!(at_app == payload, "downstream intact");
    assert!(at_device == payload, "upstream intact");
}

#[test]
fn stream_fault_names_match_toxiproxy() {
    let names: Vec<&str> = [
        json!({ "stream": "latency", "latency": "1ms" }),
        json!({ "stream": "bandwidth", "rate": 1 }),
        json!({ "stream": "slicer", "average_size": 1 }),
        json!({ "stream": "limit_data", "bytes": 1 }),
        json!({ "stream": "reset_peer" }),
        json!({ "stream": "timeout" }),
        json!({ "stream": "slow_close", "delay": "1s" }),
    ]
    .into_iter()
    .map(
        |v| match serde_json::from_value::<espsim_faults::Fault>(v).expect("fault") {
            espsim_faults::Fault::Stream(s) => s.name(),
            _ => "?",
        },
    )
    .collect();
    assert_eq!(
        names,
        [
            "latency",
            "bandwidth",
            "slicer",
            "limit_data",
            "reset_peer",
            "timeout",
            "slow_close"
        ]
    );
    let _ = StreamFault::HalfOpen.name();
}

#[tokio::test(start_paused = true)]
async fn device_half_close_still_reads_what_the_app_sends() {
    let (mut device, mut app, _t) =
        pair(json!([{ "stream": "latency", "latency": "50ms", "direction": "both" }]));
    device.write_all(b"last words").await.expect("write");
    device.shutdown().await.expect("shutdown");
    let (data, _) = read_to_eof(&mut app).await;
    assert_eq!(data, b"last words");
    app.write_all(b"reply").await.expect("app can still send");
    assert_eq!(read_n(&mut device, 5).await.0, b"reply");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_device_stream_delivers_its_data_then_closes() {
    let (mut device, mut app, _t) = pair(json!([{ "stream": "latency", "latency": "50ms" }]));
    device.write_all(b"flushed").await.expect("write");
    drop(device);
    let (data, _) = read_to_eof(&mut app).await;
    assert_eq!(
        data, b"flushed",
        "data written before the drop arrives, then EOF"
    );
}

/// u64::MAX seconds: parses as a `Duration`, overflows any clock it is added to.
const HUGE: &str = "18446744073709551615s";

/// Stream faults that never went through validation (a library user can build `StreamFaults`
/// by hand): the pump must neither panic nor stop the connection's other direction.
#[tokio::test]
async fn a_pump_with_unvalidated_durations_keeps_running() {
    let faults = stream_faults(
        json!([
            { "stream": "latency", "latency": HUGE, "jitter": HUGE, "direction": "upstream" },
            { "stream": "latency", "latency": HUGE, "direction": "upstream" },
            { "stream": "reset_peer", "timeout": HUGE },
            { "stream": "slow_close", "delay": HUGE },
            { "stream": "slow_close", "delay": HUGE },
            { "stream": "slicer", "average_size": usize::MAX, "size_variation": usize::MAX },
        ]),
        3,
    );
    let (inner, mut app) = duplex(1 << 16);
    let supervisor = Supervisor::default();
    let mut device = FaultyStream::new(inner, &faults, &supervisor);
    // Downstream is only sliced: the device's bytes reach the app.
    device.write_all(b"hello").await.expect("device writes");
    let mut got = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), app.read_exact(&mut got))
        .await
        .expect("downstream data in time")
        .expect("read");
    assert_eq!(&got, b"hello");
    // Upstream is delayed "forever": nothing yet, and the pump is still alive.
    app.write_all(b"ping").await.expect("app writes");
    let mut buf = [0u8; 4];
    let early = tokio::time::timeout(Duration::from_millis(100), device.read(&mut buf)).await;
    assert!(early.is_err(), "held back: {early:?}");
    assert_eq!(supervisor.tracker().len(), 1, "the pump task is alive");
    supervisor.shutdown_token().cancel();
}
