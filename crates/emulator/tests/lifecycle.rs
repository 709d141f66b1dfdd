//! Starting and stopping an emulator leaves nothing behind: after `shutdown`, and after a plain
//! drop, the process's file descriptors (`/proc/self/fd`) and threads (`/proc/self/task`) are
//! back at their baseline and every port it had can be bound again.
//!
//! One test function on a runtime it builds itself, so no other test's sockets or threads are
//! counted (the test harness runs tests of a binary on threads of one process).

#![cfg(target_os = "linux")]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use espsim_emulator::events::EventKind;
use espsim_emulator::{ControlOptions, DROP_CLOSE_WAIT, Emulator, EmulatorConfig, RunningEmulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CYCLES: usize = 100;
const WAIT: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_millis(200);

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

/// Waits (bounded) until fds and threads are no more than `baseline`; the counts seen last.
async fn back_to(baseline: (usize, usize), within: Duration) -> (usize, usize) {
    let deadline = Instant::now() + within;
    loop {
        let now = (fds(), threads());
        if (now.0 <= baseline.0 && now.1 <= baseline.1) || Instant::now() >= deadline {
            return now;
        }
        // Threads and the writer end on their own once told; nothing to await for them.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything on: HTTP, DNS (its own thread), the control API, the event file (its own thread).
async fn start(dir: &std::path::Path, n: usize) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        control: Some(ControlOptions::loopback(0)),
        events_file: Some(dir.join(format!("events-{n}.jsonl"))),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// Uses the services, so their sockets and tasks exist: an HTTP request answered (the
/// connection kept open, idle), a DNS query answered over UDP, an idle DNS-over-TCP connection,
/// a WebSocket session that stays open (and never answers a close frame). Returns the app's
/// open connections.
async fn exercise(e: &RunningEmulator) -> Vec<TcpStream> {
    let mut http = TcpStream::connect(e.http_addr())
        .await
        .expect("connect http");
    http.write_all(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n\r\n")
        .await
        .expect("request");
    let mut status = [0u8; 12];
    tokio::time::timeout(WAIT, http.read_exact(&mut status))
        .await
        .expect("answer in time")
        .expect("answer");
    assert!(status.starts_with(b"HTTP/1.1 "), "{status:?}");

    let dns = e.dns_addr().expect("dns on");
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    // Query id 7, RD, one question: example.com A IN.
    let mut query = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    udp.send_to(&query, dns).await.expect("send query");
    let mut answer = [0u8; 512];
    let (n, _) = tokio::time::timeout(WAIT, udp.recv_from(&mut answer))
        .await
        .expect("dns answers in time")
        .expect("dns answer");
    assert!(n > 12 && answer[..2] == [0, 7], "dns reply");
    let dns_tcp = TcpStream::connect(dns).await.expect("connect dns tcp");

    let mut ws = TcpStream::connect(e.http_addr()).await.expect("connect ws");
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("upgrade");
    e.events()
        .wait_for(WAIT, |ev| matches!(ev.kind, EventKind::WsOpened { .. }))
        .await
        .expect("session open");
    vec![http, dns_tcp, ws]
}

/// Every address can be bound again (TCP listeners and the DNS UDP socket are closed).
fn rebind(addrs: &[SocketAddr], udp: Option<SocketAddr>) {
    for addr in addrs {
        std::net::TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("{addr} still bound after the emulator stopped: {e}"));
    }
    if let Some(addr) = udp {
        UdpSocket::bind(addr)
            .unwrap_or_else(|e| panic!("dns {addr} still bound after the emulator stopped: {e}"));
    }
}

fn addrs(e: &RunningEmulator) -> Vec<SocketAddr> {
    [Some(e.http_addr()), e.dns_addr(), e.control_addr()]
        .into_iter()
        .flatten()
        .collect()
}

#[test]
fn start_stop_and_drop_leak_no_fds_threads_or_ports() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let baseline = (fds(), threads());

        let started = Instant::now();
        for n in 1..=CYCLES {
            let e = start(dir.path(), n).await;
            let app = exercise(&e).await;
            let bound = addrs(&e);
            let udp = e.dns_addr();
            e.shutdown(GRACE).await;
            // Before the app lets go: the emulator closed its side itself.
            rebind(&bound, udp);
            drop(app);
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{n} cycles took over 120 s"
            );
        }
        let after = back_to(baseline, WAIT).await;
        assert!(
            after.0 <= baseline.0 && after.1 <= baseline.1,
            "after {CYCLES} start/stop cycles: (fds, threads) {after:?}, baseline {baseline:?}"
        );

        // Dropped without shutdown: everything ends on its own within the drop's close wait.
        let e = start(dir.path(), CYCLES + 1).await;
        let app = exercise(&e).await;
        let bound = addrs(&e);
        let udp = e.dns_addr();
        let events = e.events().clone();
        drop(e);
        let stopped = events
            .wait_for(WAIT, |ev| ev.kind == EventKind::Stopping)
            .await;
        assert!(stopped.is_some(), "a drop records `stopping`");
        let closed = events
            .wait_for(DROP_CLOSE_WAIT + WAIT, |ev| {
                matches!(
                    ev.kind,
                    EventKind::WsClosed {
                        code: Some(1001),
                        ..
                    }
                )
            })
            .await;
        assert!(
            closed.is_some(),
            "the session got its close 1001 after the drop"
        );
        drop(events);
        drop(app);
        let after = back_to(baseline, DROP_CLOSE_WAIT + WAIT).await;
        assert!(
            after.0 <= baseline.0 && after.1 <= baseline.1,
            "after a drop without shutdown: (fds, threads) {after:?}, baseline {baseline:?}"
        );
        rebind(&bound, udp);
    });
}
