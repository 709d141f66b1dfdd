//! Attempts the device does not serve, counted: a connection abandoned while it waited for a
//! socket slot (`tcp_abandoned`), and SYNs the kernel refused while the port was closed
//! (`tcp_refused`, or one `refused_unobserved` when they cannot be watched). Real clients on
//! 127.0.0.1.

mod support;

use std::io;
use std::net::SocketAddr;

use espsim_emulator::events::{EventKind, Side};
use espsim_emulator::{EmulatorConfig, RefusedAttempts, RunningEmulator};
use espsim_faults::FaultRule;
use support::{
    WAIT, assert_port_held, conn_id, connect, connect_when_listening, event, read_response,
    start_without_dns, text,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// The device's answer to [`UPGRADE`]: the accept value is RFC 6455's for its sample key.
const GOOD_101: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fn rule(json: &str) -> FaultRule {
    serde_json::from_str(json).expect("rule parses")
}

fn events_of(running: &RunningEmulator, pred: impl Fn(&EventKind) -> bool) -> Vec<EventKind> {
    running
        .events()
        .snapshot()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| pred(k))
        .collect()
}

/// Takes every one of the default profile's 7 socket slots with an idle connection.
async fn fill_slots(running: &RunningEmulator) -> Vec<TcpStream> {
    let addr = running.http_addr();
    assert_eq!(running.profile().max_open_sockets, Some(7));
    let mut holders = Vec::new();
    for _ in 0..7 {
        let s = connect(addr).await;
        let id = conn_id(running, &s).await;
        event(
            running,
            "tcp_served",
            |e| matches!(e.kind, EventKind::TcpServed { conn } if conn == id),
        )
        .await;
        holders.push(s);
    }
    holders
}

/// Connects and waits until the device reports the connection waiting for a slot.
async fn waiting(running: &RunningEmulator) -> (TcpStream, u64) {
    let s = connect(running.http_addr()).await;
    let id = conn_id(running, &s).await;
    event(
        running,
        "tcp_waiting",
        |e| matches!(e.kind, EventKind::TcpWaiting { conn, .. } if conn == id),
    )
    .await;
    (s, id)
}

/// A masked client text frame (payload < 126 bytes).
fn client_text(payload: &str) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | u8::try_from(payload.len()).expect("short")];
    f.extend_from_slice(&key);
    f.extend(payload.bytes().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    f
}

async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    buf
}

/// One unmasked server text frame (payload < 126 bytes), as JSON.
async fn server_json(s: &mut TcpStream) -> serde_json::Value {
    let head = read_n(s, 2).await;
    assert_eq!(head[0], 0x81, "a final text frame");
    assert!(head[1] < 126, "a short unmasked payload");
    let payload = read_n(s, usize::from(head[1])).await;
    serde_json::from_slice(&payload).expect("json")
}

#[tokio::test]
async fn an_app_that_gives_up_while_waiting_is_abandoned_and_never_served() {
    let running = start_without_dns(EmulatorConfig::default()).await;
    let mut holders = fill_slots(&running).await;
    let (mut gave_up, id) = waiting(&running).await;
    gave_up.write_all(UPGRADE.as_bytes()).await.expect("write");
    drop(gave_up);
    let abandoned = event(
        &running,
        "tcp_abandoned",
        |e| matches!(e.kind, EventKind::TcpAbandoned { conn, .. } if conn == id),
    )
    .await;
    let closed = event(
        &running,
        "tcp_closed",
        |e| matches!(e.kind, EventKind::TcpClosed { conn, .. } if conn == id),
    )
    .await;
    assert!(closed.seq > abandoned.seq, "abandoned, then closed");
    assert_eq!(
        closed.kind,
        EventKind::TcpClosed {
            conn: id,
            by: Side::Client,
            reason: "abandoned while waiting".to_owned()
        }
    );

    // The next app in line gets the slot that frees: the abandoned one left the queue.
    let (mut next, next_id) = waiting(&running).await;
    next.write_all(UPGRADE.as_bytes()).await.expect("write");
    drop(holders.remove(0));
    assert_eq!(read_n(&mut next, GOOD_101.len()).await, GOOD_101.as_bytes());
    event(
        &running,
        "ws_opened",
        |e| matches!(e.kind, EventKind::WsOpened { conn, .. } if conn == next_id),
    )
    .await;
    let served_abandoned = events_of(
        &running,
        |k| matches!(k, EventKind::TcpServed { conn } | EventKind::WsOpened { conn, .. } if *conn == id),
    );
    assert_eq!(served_abandoned, [], "the app that gave up is never served");
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_waiting_app_is_served_with_everything_it_sent_while_waiting() {
    let running = start_without_dns(EmulatorConfig::default()).await;
    let mut holders = fill_slots(&running).await;
    let (mut stays, id) = waiting(&running).await;
    // The upgrade request and, pipelined behind it, the first WebSocket message: all of it
    // arrives while the connection waits.
    let mut sent = UPGRADE.as_bytes().to_vec();
    sent.extend(client_text(r#"{"type":"ping","seq":7}"#));
    stays.write_all(&sent).await.expect("write");
    drop(holders.remove(0));
    event(
        &running,
        "tcp_served",
        |e| matches!(e.kind, EventKind::TcpServed { conn } if conn == id),
    )
    .await;
    assert_eq!(
        read_n(&mut stays, GOOD_101.len()).await,
        GOOD_101.as_bytes()
    );
    let pong = server_json(&mut stays).await;
    assert_eq!((&pong["type"], &pong["seq"]), (&"pong".into(), &7.into()));
    assert!(
        events_of(&running, |k| matches!(k, EventKind::TcpAbandoned { .. })).is_empty(),
        "nobody gave up"
    );
    running.shutdown(WAIT).await;
}

/// A refused `connect()` from a socket bound first, so its port is known: the error it got.
fn refused_connect(to: SocketAddr) -> (SocketAddr, io::Error) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let local = socket
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("an inet address");
    let err = socket
        .connect_timeout(&to.into(), WAIT)
        .expect_err("the device port is closed");
    (local, err)
}

async fn refusing(running: &RunningEmulator) {
    event(
        running,
        "fault_applied refuse",
        |e| matches!(&e.kind, EventKind::FaultApplied { fault, .. } if fault == "refuse"),
    )
    .await;
}

fn refused_peers(running: &RunningEmulator) -> Vec<SocketAddr> {
    let mut peers: Vec<SocketAddr> =
        events_of(running, |k| matches!(k, EventKind::TcpRefused { .. }))
            .into_iter()
            .filter_map(|k| match k {
                EventKind::TcpRefused { peer, service } if service == "http" => Some(peer),
                _ => None,
            })
            .collect();
    peers.sort();
    peers
}

#[tokio::test]
async fn every_refused_attempt_is_counted_with_its_peer() {
    let running = start_without_dns(EmulatorConfig {
        faults: vec![rule(r#"{"fault":"refuse"}"#)],
        ..EmulatorConfig::default()
    })
    .await;
    refusing(&running).await;
    let addr = running.http_addr();
    let mut peers = Vec::new();
    for _ in 0..5 {
        let (peer, err) = tokio::task::spawn_blocking(move || refused_connect(addr))
            .await
            .expect("joined");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        peers.push(peer);
    }
    peers.sort();
    event(&running, "the 5th tcp_refused", |_| {
        refused_peers(&running).len() >= 5
    })
    .await;
    assert_eq!(
        refused_peers(&running),
        peers,
        "one tcp_refused per attempt, with its port"
    );
    assert!(
        events_of(&running, |k| matches!(
            k,
            EventKind::RefusedUnobserved { .. }
        ))
        .is_empty(),
        "this machine runs the tests as root: the attempts are watched"
    );
    running.shutdown(WAIT).await;
}

/// A refused SYN is stamped when the kernel received it, not when a stalled espsim got round
/// to reading it: the runtime is blocked (as a loaded CI host stalls it) right after the
/// attempt, and the event's time is still the attempt's. With read-time stamps a late stamp
/// shortened the next retry gap, and a constant-delay app passed `backoff`.
#[test]
fn a_refused_attempt_keeps_its_time_when_espsim_reads_it_late() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let running = start_without_dns(EmulatorConfig {
            faults: vec![rule(r#"{"fault":"refuse"}"#)],
            ..EmulatorConfig::default()
        })
        .await;
        refusing(&running).await;
        arrival_stamps_in_force();
        let before = running.events().elapsed();
        // On this thread, so the watcher (same runtime, same thread) cannot run meanwhile.
        let (peer, err) = refused_connect(running.http_addr());
        let after = running.events().elapsed();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        // The stall under test: the runtime's only thread is busy for 400 ms.
        std::thread::sleep(std::time::Duration::from_millis(400));
        let seen = event(
            &running,
            "tcp_refused",
            |e| matches!(&e.kind, EventKind::TcpRefused { peer: p, .. } if *p == peer),
        )
        .await;
        let (from, to) = (before.as_millis() as u64, after.as_millis() as u64 + 1);
        assert!(
            (from..=to).contains(&seen.at_ms),
            "tcp_refused at {} ms, the attempt was made between {from} and {to} ms",
            seen.at_ms
        );
        running.shutdown(WAIT).await;
    });
}

/// Waits (bounded by [`WAIT`]) until the kernel stamps packets on arrival: the emulator asked
/// for timestamps at its start, and Linux turns them on in deferred work (until then a packet
/// is stamped when read). Checked with a datagram to ourselves read 20 ms after it was sent: a
/// stamp taken on arrival is that much older than the read.
fn arrival_stamps_in_force() {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    setsockopt(&rx, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let deadline = Instant::now() + WAIT;
    loop {
        tx.send_to(b"?", rx.local_addr().expect("addr"))
            .expect("send");
        // The stimulus, not a synchronisation: the read must come measurably after arrival.
        std::thread::sleep(Duration::from_millis(20));
        let mut buf = [0u8; 8];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let msg = recvmsg::<()>(
            rx.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        )
        .expect("recvmsg");
        let stamp = msg
            .cmsgs()
            .expect("control messages")
            .find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(t) => Some(t),
                _ => None,
            })
            .expect("a timestamp");
        let at = UNIX_EPOCH
            + Duration::new(
                u64::try_from(stamp.tv_sec()).expect("after 1970"),
                u32::try_from(stamp.tv_nsec()).expect("nanoseconds"),
            );
        let age = SystemTime::now().duration_since(at).unwrap_or_default();
        if age >= Duration::from_millis(15) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the kernel still stamps packets when read, not on arrival"
        );
    }
}

/// During a `refuse` window the device port stays espsim's: connects are refused (RST) and
/// counted, another socket cannot bind the port meanwhile, and once the rule is gone espsim
/// serves on it again.
#[tokio::test]
async fn the_port_cannot_be_taken_while_it_refuses_and_serves_again_after() {
    let running = start_without_dns(EmulatorConfig::default()).await;
    let addr = running.http_addr();
    let id = running
        .faults()
        .add(rule(r#"{"fault":"refuse"}"#))
        .expect("rule added");
    refusing(&running).await;
    let (peer, err) = tokio::task::spawn_blocking(move || refused_connect(addr))
        .await
        .expect("joined");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    event(&running, "tcp_refused", |_| {
        refused_peers(&running).contains(&peer)
    })
    .await;

    assert_port_held(addr);

    assert!(running.faults().remove(id).is_some(), "the rule was there");
    let mut s = connect_when_listening(addr).await;
    conn_id(&running, &s).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n")
        .await
        .expect("writes");
    let answer = text(&read_response(&mut s).await);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    running.shutdown(WAIT).await;
}

/// A `refuse` in force from the start closes the port before `Emulator::start` returns: the
/// first connect, made at once, is refused (not accepted by the kernel and reset when the
/// accept loop first looks at the plan).
#[tokio::test]
async fn a_refusal_from_the_start_refuses_the_very_first_connect() {
    for _ in 0..20 {
        let running = start_without_dns(EmulatorConfig {
            faults: vec![rule(r#"{"fault":"refuse"}"#)],
            ..EmulatorConfig::default()
        })
        .await;
        let addr = running.http_addr();
        let (_, err) = tokio::task::spawn_blocking(move || refused_connect(addr))
            .await
            .expect("joined");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        running
            .shutdown(std::time::Duration::from_millis(100))
            .await;
    }
}

#[tokio::test]
async fn refused_attempts_that_cannot_be_watched_are_reported_once_per_window() {
    let running = start_without_dns(EmulatorConfig {
        faults: vec![rule(r#"{"fault":"refuse"}"#)],
        refused_attempts: RefusedAttempts::Unobserved,
        ..EmulatorConfig::default()
    })
    .await;
    refusing(&running).await;
    let addr = running.http_addr();
    for _ in 0..3 {
        let (_, err) = tokio::task::spawn_blocking(move || refused_connect(addr))
            .await
            .expect("joined");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }
    let unobserved = events_of(&running, |k| {
        matches!(k, EventKind::RefusedUnobserved { .. })
    });
    match unobserved.as_slice() {
        [EventKind::RefusedUnobserved { service, reason }] => {
            assert_eq!(service, "http");
            assert!(reason.contains("Unobserved"), "{reason}");
        }
        other => panic!("expected one refused_unobserved, got {other:?}"),
    }
    assert!(refused_peers(&running).is_empty());
    running.shutdown(WAIT).await;
}
