//! What a client on a real 127.0.0.1 socket observes for each connect and stream fault.

mod support;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use espsim_emulator::net::listener::{
    bind_listener, close_connection, reset_connection, stall_connection,
};
use espsim_emulator::net::{
    FaultyListener, FaultyStream, ListenerEvent, RefusableListener, Supervisor,
};
use espsim_emulator::profile::Profile;
use espsim_faults::{
    Applied, ConnectFault, Fault, FaultPlan, FaultRule, RuleId, Service, StreamFaults,
};
use serde_json::json;
use support::assert_port_held;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

const WAIT: Duration = Duration::from_secs(10);
/// How long "silence" is watched for.
const QUIET: Duration = Duration::from_millis(300);

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn stream_faults(v: serde_json::Value) -> StreamFaults {
    let f: Fault = serde_json::from_value(v).expect("fault");
    let Fault::Stream(fault) = f else {
        panic!("not a stream fault")
    };
    StreamFaults {
        faults: vec![Applied {
            rule: RuleId(1),
            fault,
            until: None,
        }],
        seed: 3,
    }
}

/// A connected (client, server-side) pair on 127.0.0.1.
async fn connected() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(local()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.expect("connect"), server.expect("accept").0)
}

async fn read_some(s: &mut TcpStream) -> std::io::Result<usize> {
    let mut buf = [0u8; 1024];
    timeout(WAIT, s.read(&mut buf))
        .await
        .expect("an answer in time")
}

#[tokio::test]
async fn refused_listener_gives_econnrefused_and_comes_back() {
    let mut l = RefusableListener::bind(local()).expect("bind");
    let addr = l.local_addr();
    l.refuse();
    assert!(l.is_refusing());
    let err = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);

    l.restore().expect("re-bind the same port");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), timeout(WAIT, l.accept()));
    client.expect("connects again");
    accepted.expect("in time").expect("accept");
}

/// Refusing keeps the port: no other socket can bind it, however it asks, through several
/// refuse/listen cycles, each leaving connections in TIME_WAIT on the port; connections queued
/// but not accepted when the listening stops are reset, as when the socket closes.
#[tokio::test]
async fn a_refusing_listener_keeps_its_port_from_other_sockets() {
    let mut l = RefusableListener::bind(local()).expect("bind");
    let addr = l.local_addr();
    for cycle in 0..3 {
        // A connection served and closed by the listener's side (TIME_WAIT on the port) ...
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), timeout(WAIT, l.accept()));
        let mut client = client.expect("connects");
        drop(accepted.expect("in time").expect("accept"));
        assert_eq!(read_some(&mut client).await.expect("FIN"), 0);
        // ... and one still queued, never accepted.
        let mut queued = TcpStream::connect(addr)
            .await
            .expect("queued by the kernel");

        l.refuse();
        assert!(l.is_refusing() && l.holds_port(), "cycle {cycle}");
        let r = read_some(&mut queued).await;
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "the queued connection is reset: {r:?}"
        );
        let err = TcpStream::connect(addr).await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        assert_port_held(addr);

        l.restore().expect("listens again");
        assert_eq!(l.local_addr(), addr);
        assert!(!l.is_refusing() && !l.holds_port());
    }
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), timeout(WAIT, l.accept()));
    client.expect("connects after the last cycle");
    accepted.expect("in time").expect("accept");
}

/// A listener taken over after a bind to port 0 elsewhere (the kernel may let such a port go
/// when it stops listening) still comes back on its own address.
#[tokio::test]
async fn a_listener_bound_to_port_0_elsewhere_comes_back_on_its_address() {
    let bound = TcpListener::bind(local()).await.expect("bind");
    let mut l = RefusableListener::from_listener(bound, 16).expect("take over");
    let addr = l.local_addr();
    l.refuse();
    let err = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    l.restore().expect("listens again");
    assert_eq!(l.local_addr(), addr);
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), timeout(WAIT, l.accept()));
    client.expect("connects on the same address");
    accepted.expect("in time").expect("accept");
}

/// The `unlimited` profile's listen backlog lets a load test's connects complete even while
/// nobody accepts them (ESP-IDF's backlog of 5 drops the 7th SYN and stalls its connect).
#[tokio::test]
async fn the_unlimited_backlog_completes_64_connects_nobody_accepts() {
    let listener =
        bind_listener(local(), Profile::UNLIMITED.listen_backlog).expect("bind the device port");
    let addr = listener.local_addr().expect("addr");
    let connects = (0..64).map(|_| timeout(WAIT, TcpStream::connect(addr)));
    let clients: Vec<TcpStream> = futures_util::future::join_all(connects)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|_| panic!("connect {i} still pending after {WAIT:?}"))
                .unwrap_or_else(|e| panic!("connect {i}: {e}"))
        })
        .collect();
    assert_eq!(clients.len(), 64);
    drop(listener);
}

#[tokio::test]
async fn reset_on_accept_gives_econnreset() {
    let (mut client, server) = connected().await;
    reset_connection(server);
    let err = read_some(&mut client).await.expect_err("reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn close_on_accept_gives_eof() {
    let (mut client, server) = connected().await;
    let closer = tokio::spawn(close_connection(server));
    client
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        read_some(&mut client)
            .await
            .expect("clean EOF, not a reset"),
        0
    );
    drop(client);
    timeout(WAIT, closer)
        .await
        .expect("closer ends")
        .expect("task");
}

#[tokio::test]
async fn stall_holds_the_connection_silent_until_shutdown() {
    let (mut client, server) = connected().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let holder = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { stall_connection(server, None, &shutdown).await }
    });
    client
        .write_all(b"GET /ws HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 16];
    assert!(
        timeout(QUIET, client.read(&mut buf)).await.is_err(),
        "no answer while stalled"
    );
    shutdown.cancel();
    timeout(WAIT, holder)
        .await
        .expect("released")
        .expect("task");
    // Unread request data makes the kernel reset; either way the connection ends now.
    let r = timeout(WAIT, client.read(&mut buf))
        .await
        .expect("ends after release");
    assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
}

#[tokio::test]
async fn reset_peer_resets_after_the_timeout() {
    let (mut client, server) = connected().await;
    let t0 = Instant::now();
    let _device = FaultyStream::new(
        server,
        &stream_faults(json!({ "stream": "reset_peer", "timeout": "200ms" })),
        &Supervisor::default(),
    );
    let err = read_some(&mut client).await.expect_err("reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn latency_is_measured_by_the_client() {
    let (mut client, server) = connected().await;
    let mut device = FaultyStream::new(
        server,
        &stream_faults(json!({ "stream": "latency", "latency": "150ms" })),
        &Supervisor::default(),
    );
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok(n) = device.read(&mut buf).await {
            if n == 0 || device.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    for _ in 0..3 {
        let t0 = Instant::now();
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        timeout(WAIT, client.read_exact(&mut buf))
            .await
            .expect("echo in time")
            .expect("read");
        let rtt = t0.elapsed();
        assert_eq!(&buf, b"ping");
        assert!(
            rtt >= Duration::from_millis(150) && rtt < Duration::from_millis(600),
            "round trip {rtt:?} should be 150 ms plus a little"
        );
    }
}

#[tokio::test]
async fn limit_data_cuts_at_exactly_n_bytes() {
    let (mut client, server) = connected().await;
    let mut device = FaultyStream::new(
        server,
        &stream_faults(json!({ "stream": "limit_data", "bytes": 1000 })),
        &Supervisor::default(),
    );
    tokio::spawn(async move {
        let _ = device.write_all(&[9u8; 5000]).await;
    });
    let mut got = Vec::new();
    timeout(WAIT, client.read_to_end(&mut got))
        .await
        .expect("in time")
        .expect("FIN, not reset");
    assert_eq!(got.len(), 1000);
}

#[tokio::test]
async fn half_open_gives_the_client_silence() {
    let (mut client, server) = connected().await;
    let supervisor = Supervisor::default();
    let mut device = FaultyStream::new(
        server,
        &stream_faults(json!({ "stream": "half_open" })),
        &supervisor,
    );
    client.write_all(b"are you there").await.expect("write");
    device
        .write_all(b"yes")
        .await
        .expect("device write is accepted");
    let mut buf = [0u8; 16];
    assert!(
        timeout(QUIET, client.read(&mut buf)).await.is_err(),
        "no data"
    );
    assert!(
        timeout(QUIET, device.read(&mut buf)).await.is_err(),
        "device hears nothing"
    );
    drop(device);
    assert!(
        timeout(QUIET, client.read(&mut buf)).await.is_err(),
        "no FIN, no RST either"
    );
    supervisor.shutdown_token().cancel();
    supervisor.tracker().close();
    timeout(WAIT, supervisor.tracker().wait())
        .await
        .expect("the pump ends at shutdown");
    let r = timeout(WAIT, client.read(&mut buf))
        .await
        .expect("released at shutdown");
    assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
}

/// Runs a FaultyListener in a task, forwarding what it reports.
fn drive(mut l: FaultyListener) -> mpsc::Receiver<ListenerEvent> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok(ev) = l.accept().await {
            if tx.send(ev).await.is_err() {
                break;
            }
        }
    });
    rx
}

async fn next(rx: &mut mpsc::Receiver<ListenerEvent>) -> ListenerEvent {
    timeout(WAIT, rx.recv())
        .await
        .expect("event in time")
        .expect("listener alive")
}

#[tokio::test]
async fn faulty_listener_follows_the_plan() {
    let rules: Vec<FaultRule> = serde_json::from_value(json!([
        { "when": { "for": "300ms" }, "fault": "refuse" },
        { "when": { "connections": 1 }, "fault": "reset_on_accept" },
        { "when": { "connections": 2 }, "fault": { "stream": "limit_data", "bytes": 3 } }
    ]))
    .expect("rules");
    let plan = FaultPlan::new(rules, Some(1)).expect("plan");
    let listener = RefusableListener::bind(local()).expect("bind");
    let addr = listener.local_addr();
    let supervisor = Supervisor::default();
    let mut events = drive(FaultyListener::new(
        listener,
        plan,
        Service::Http,
        Instant::now(),
        supervisor.clone(),
    ));

    match next(&mut events).await {
        ListenerEvent::Refusing(a) => {
            assert_eq!((a.rule, a.fault), (RuleId(1), ConnectFault::Refuse))
        }
        other => panic!("expected refusing, got {other:?}"),
    }
    let err = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert!(matches!(next(&mut events).await, ListenerEvent::Restored));

    let mut first = TcpStream::connect(addr).await.expect("connect 1");
    match next(&mut events).await {
        ListenerEvent::Faulted { conn, applied, .. } => {
            assert_eq!(conn.ordinal, 1);
            assert_eq!(applied.fault, ConnectFault::ResetOnAccept);
        }
        other => panic!("expected faulted, got {other:?}"),
    }
    assert_eq!(
        read_some(&mut first).await.expect_err("reset").kind(),
        ErrorKind::ConnectionReset
    );

    let mut second = TcpStream::connect(addr).await.expect("connect 2");
    let ListenerEvent::Accepted {
        conn,
        mut stream,
        faults,
        ..
    } = next(&mut events).await
    else {
        panic!("expected accepted");
    };
    assert_eq!(conn.ordinal, 2);
    assert_eq!(faults.len(), 1);
    stream.write_all(b"abcdef").await.expect("write");
    let mut got = Vec::new();
    timeout(WAIT, second.read_to_end(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(got, b"abc");

    let mut third = TcpStream::connect(addr).await.expect("connect 3");
    let ListenerEvent::Accepted {
        conn,
        mut stream,
        faults,
        ..
    } = next(&mut events).await
    else {
        panic!("expected accepted");
    };
    assert_eq!((conn.ordinal, faults.len()), (3, 0));
    assert!(!stream.is_faulty());
    stream.write_all(b"clean").await.expect("write");
    let mut buf = [0u8; 5];
    timeout(WAIT, third.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&buf, b"clean");
    supervisor.shutdown_token().cancel();
}

#[tokio::test]
async fn dropping_a_faulty_stream_closes_the_socket_with_fin() {
    let (mut client, server) = connected().await;
    let mut device = FaultyStream::new(
        server,
        &stream_faults(json!({ "stream": "latency", "latency": "20ms" })),
        &Supervisor::default(),
    );
    device.write_all(b"bye").await.expect("write");
    drop(device);
    let mut got = Vec::new();
    timeout(WAIT, client.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .expect("FIN");
    assert_eq!(got, b"bye");
}

#[tokio::test]
async fn a_refuse_rule_added_at_run_time_takes_effect_at_once() {
    let plan = FaultPlan::empty(Some(1));
    let listener = RefusableListener::bind(local()).expect("bind");
    let addr = listener.local_addr();
    let supervisor = Supervisor::default();
    let mut events = drive(FaultyListener::new(
        listener,
        plan.clone(),
        Service::Http,
        Instant::now(),
        supervisor.clone(),
    ));
    let _ok = TcpStream::connect(addr)
        .await
        .expect("open before the rule");
    assert!(matches!(
        next(&mut events).await,
        ListenerEvent::Accepted { .. }
    ));

    let id = plan
        .add(serde_json::from_value(json!({ "fault": "refuse" })).expect("rule"))
        .expect("add");
    assert!(matches!(
        next(&mut events).await,
        ListenerEvent::Refusing(_)
    ));
    let err = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);

    plan.remove(id).expect("remove");
    assert!(matches!(next(&mut events).await, ListenerEvent::Restored));
    TcpStream::connect(addr).await.expect("open again");
    supervisor.shutdown_token().cancel();
}

#[tokio::test]
async fn a_stall_ends_when_its_window_does() {
    let rules: Vec<FaultRule> =
        serde_json::from_value(json!([{ "when": { "for": "400ms" }, "fault": "stall" }]))
            .expect("rules");
    let plan = FaultPlan::new(rules, Some(1)).expect("plan");
    let listener = RefusableListener::bind(local()).expect("bind");
    let addr = listener.local_addr();
    let supervisor = Supervisor::default();
    let t0 = Instant::now();
    let mut events = drive(FaultyListener::new(
        listener,
        plan,
        Service::Http,
        t0,
        supervisor.clone(),
    ));
    let mut client = TcpStream::connect(addr).await.expect("connect");
    match next(&mut events).await {
        ListenerEvent::Faulted { applied, .. } => {
            assert_eq!(applied.fault, ConnectFault::Stall);
            assert_eq!(applied.until, Some(Duration::from_millis(400)));
        }
        other => panic!("expected a stall, got {other:?}"),
    }
    let mut buf = [0u8; 8];
    let r = timeout(WAIT, client.read(&mut buf))
        .await
        .expect("released when the window ends");
    assert_eq!(r.expect("FIN"), 0);
    assert!(t0.elapsed() >= Duration::from_millis(400));
}
