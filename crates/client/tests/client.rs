//! The reference client against real sockets: the in-process emulator, closed ports, a listener
//! that never answers, and a WebSocket server that goes silent after `welcome`.
//!
//! No sleeps: every test waits on the client's own events or the emulator's event log, with a
//! timeout. Intervals are 50–300 ms so each test takes well under 5 s.

use std::net::SocketAddr;
use std::time::Duration;

use espsim_client::{
    Backoff, Client, ClientConfig, ClientEvent, ClientEventKind, ClientProfile, ClientSender,
    ClientSummary, Closer, Heartbeat, HeartbeatKind,
};
use espsim_emulator::events::{Direction, Event, EventKind, Side};
use espsim_emulator::{DeviceOptions, Emulator, EmulatorConfig, RunningEmulator};
use espsim_protocol::client::GetStatus;
use espsim_protocol::device::Welcome;
use espsim_protocol::{ClientMessage, DeviceMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        dns: None,
        device: DeviceOptions {
            device_id: Some("esp32-a1b2c3".into()),
            ..DeviceOptions::default()
        },
        ..EmulatorConfig::default()
    }
}

async fn emulator() -> RunningEmulator {
    Emulator::start(emulator_config()).await.expect("starts")
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// A config with short timers, so tests stay fast.
fn quick(url: String, profile: ClientProfile) -> ClientConfig {
    let mut c = ClientConfig::for_profile(url, profile);
    if c.connect_timeout.is_some() {
        c.connect_timeout = Some(Duration::from_secs(2));
    }
    if c.backoff != Backoff::NONE {
        c.backoff = Backoff {
            initial: Duration::from_millis(50),
            factor: 2.0,
            max: Duration::from_millis(200),
            jitter: 0.25,
        };
    }
    c.close_timeout = Duration::from_secs(1);
    c
}

/// An address nothing listens on: bind, take the address, close.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr
}

/// A running client and everything it reported so far.
struct Run {
    rx: mpsc::UnboundedReceiver<ClientEvent>,
    seen: Vec<ClientEvent>,
    stop: CancellationToken,
    task: JoinHandle<ClientSummary>,
    sender: ClientSender,
}

impl Run {
    fn start(config: ClientConfig) -> Run {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Client::new(config);
        let sender = client.sender();
        let stop = CancellationToken::new();
        let task = tokio::spawn(client.run(stop.clone(), move |e| {
            let _ = tx.send(e.clone());
        }));
        Run {
            rx,
            seen: Vec::new(),
            stop,
            task,
            sender,
        }
    }

    /// The next event (after those already seen) matching `pred`, within `WAIT`.
    async fn next(&mut self, what: &str, pred: impl Fn(&ClientEventKind) -> bool) -> ClientEvent {
        self.next_within(WAIT, pred)
            .await
            .unwrap_or_else(|| panic!("no `{what}` within {WAIT:?}; saw {:#?}", self.seen))
    }

    /// Like [`Run::next`] but returns `None` after `limit`.
    async fn next_within(
        &mut self,
        limit: Duration,
        pred: impl Fn(&ClientEventKind) -> bool,
    ) -> Option<ClientEvent> {
        let wait = async {
            while let Some(e) = self.rx.recv().await {
                self.seen.push(e.clone());
                if pred(&e.kind) {
                    return Some(e);
                }
            }
            None
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }

    /// Stops the client and returns its summary and every event.
    async fn stop(mut self) -> (ClientSummary, Vec<ClientEvent>) {
        self.stop.cancel();
        let summary = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("client stops in time")
            .expect("client task joins");
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
        (summary, self.seen)
    }
}

fn is_ready(k: &ClientEventKind) -> bool {
    matches!(k, ClientEventKind::Ready { .. })
}

async fn emulator_event(
    emu: &RunningEmulator,
    what: &str,
    pred: impl FnMut(&Event) -> bool,
) -> Event {
    emu.events()
        .wait_for(WAIT, pred)
        .await
        .unwrap_or_else(|| panic!("emulator saw no {what}: {:#?}", emu.events().snapshot()))
}

#[tokio::test]
async fn connects_says_hello_and_gets_welcome() {
    let emu = emulator().await;
    let mut run = Run::start(quick(url(emu.http_addr()), ClientProfile::Good));
    let ready = run.next("ready", is_ready).await;
    assert_eq!(
        ready.kind,
        ClientEventKind::Ready {
            device_id: "esp32-a1b2c3".into(),
            protocol_version: espsim_protocol::PROTOCOL_VERSION,
        }
    );
    let hello = emulator_event(&emu, "hello", |e| {
        matches!(&e.kind, EventKind::WsMessage { direction: Direction::In, msg_type: Some(t), .. } if t == "hello")
    })
    .await;
    assert!(matches!(hello.kind, EventKind::WsMessage { .. }));
    let (summary, events) = run.stop().await;
    assert_eq!(
        (summary.attempts, summary.ready, summary.failures),
        (1, 1, 0)
    );
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        names,
        [
            "start",
            "attempt",
            "connected",
            "sent",
            "received",
            "ready",
            "closed",
            "stopped"
        ]
    );
}

#[tokio::test]
async fn token_goes_in_hello_and_a_missing_one_fails_the_attempt() {
    let mut config = emulator_config();
    config.device.auth_token = Some("s3cret".into());
    let emu = Emulator::start(config).await.expect("starts");

    let mut with = quick(url(emu.http_addr()), ClientProfile::Good);
    with.token = Some("s3cret".into());
    let mut run = Run::start(with);
    run.next("ready", is_ready).await;
    run.stop().await;

    let mut run = Run::start(quick(url(emu.http_addr()), ClientProfile::Good));
    let failed = run
        .next("failed", |k| matches!(k, ClientEventKind::Failed { .. }))
        .await;
    let ClientEventKind::Failed { phase, error, .. } = failed.kind else {
        unreachable!()
    };
    assert_eq!(phase, "hello");
    assert!(
        error.starts_with("hello rejected: unauthorized"),
        "error: {error}"
    );
    run.stop().await;
}

/// Gaps between consecutive `at_ms` of the first `n` matching emulator events.
async fn device_gaps(
    emu: &RunningEmulator,
    n: usize,
    pred: impl Fn(&EventKind) -> bool,
) -> Vec<u64> {
    let mut count = 0;
    emulator_event(emu, "enough heartbeats", |e| {
        if pred(&e.kind) {
            count += 1;
        }
        count >= n
    })
    .await;
    let times: Vec<u64> = emu
        .events()
        .snapshot()
        .into_iter()
        .filter(|e| pred(&e.kind))
        .take(n)
        .map(|e| e.at_ms)
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

fn heartbeat(kind: HeartbeatKind) -> Heartbeat {
    Heartbeat {
        every: Duration::from_millis(150),
        timeout: Duration::from_secs(1),
        kind,
    }
}

#[tokio::test]
async fn app_heartbeat_reaches_the_device_at_the_configured_interval() {
    let emu = emulator().await;
    let mut config = quick(url(emu.http_addr()), ClientProfile::Good);
    config.heartbeat = Some(heartbeat(HeartbeatKind::App));
    let mut run = Run::start(config);
    let gaps = device_gaps(&emu, 5, |k| {
        matches!(k, EventKind::WsMessage { direction: Direction::In, msg_type: Some(t), .. } if t == "ping")
    })
    .await;
    for gap in &gaps {
        assert!(
            (140..450).contains(gap),
            "ping gaps {gaps:?} for every 150 ms"
        );
    }
    let ack = run
        .next("heartbeat_ack", |k| {
            matches!(k, ClientEventKind::HeartbeatAck { .. })
        })
        .await;
    assert!(matches!(
        ack.kind,
        ClientEventKind::HeartbeatAck { seq: 1, .. }
    ));
    let (summary, _) = run.stop().await;
    assert!(summary.heartbeats >= 5);
    assert_eq!(summary.dead_links, 0);
}

#[tokio::test]
async fn websocket_heartbeat_is_ping_frames_answered_by_the_httpd() {
    let emu = emulator().await;
    let mut config = quick(url(emu.http_addr()), ClientProfile::Good);
    config.heartbeat = Some(heartbeat(HeartbeatKind::WebSocket));
    let mut run = Run::start(config);
    let gaps = device_gaps(&emu, 3, |k| {
        matches!(k, EventKind::WsControl { direction: Direction::In, frame, .. } if frame == "ping")
    })
    .await;
    for gap in &gaps {
        assert!((140..450).contains(gap), "ping frame gaps {gaps:?}");
    }
    run.next("heartbeat_ack", |k| {
        matches!(k, ClientEventKind::HeartbeatAck { seq: 1, .. })
    })
    .await;
    run.stop().await;
}

#[tokio::test]
async fn silent_sends_no_heartbeat() {
    let emu = emulator().await;
    let mut run = Run::start(quick(url(emu.http_addr()), ClientProfile::Silent));
    run.next("ready", is_ready).await;
    // A good client with this interval would have sent three pings by now.
    let ping = emu
        .events()
        .wait_for(Duration::from_millis(500), |e| {
            matches!(&e.kind, EventKind::WsMessage { msg_type: Some(t), .. } if t == "ping")
                || matches!(&e.kind, EventKind::WsControl { frame, .. } if frame == "ping")
        })
        .await;
    assert!(ping.is_none(), "silent sent a heartbeat: {ping:?}");
    let (summary, _) = run.stop().await;
    assert_eq!(summary.heartbeats, 0);
}

/// The first `n` backoff events against a closed port, with the attempt times around them.
async fn backoffs(config: ClientConfig, n: usize) -> (Vec<(u32, u64)>, Vec<u64>) {
    let mut run = Run::start(config);
    let mut delays = Vec::new();
    for _ in 0..n {
        let e = run
            .next("backoff", |k| matches!(k, ClientEventKind::Backoff { .. }))
            .await;
        if let ClientEventKind::Backoff { failures, delay_ms } = e.kind {
            delays.push((failures, delay_ms));
        }
    }
    // The attempt that follows the last backoff.
    run.next("attempt", |k| matches!(k, ClientEventKind::Attempt { .. }))
        .await;
    let (_, events) = run.stop().await;
    let attempts = events
        .iter()
        .filter(|e| matches!(e.kind, ClientEventKind::Attempt { .. }))
        .map(|e| e.at_ms)
        .collect();
    (delays, attempts)
}

#[tokio::test]
async fn backoff_grows_by_the_factor_with_jitter_up_to_the_cap() {
    let addr = closed_port().await;
    let mut config = quick(url(addr), ClientProfile::Good);
    config.seed = 7;
    let (delays, attempts) = backoffs(config.clone(), 6).await;
    let expected_base = [50, 100, 200, 200, 200, 200];
    for (i, ((failures, delay), base)) in delays.iter().zip(expected_base).enumerate() {
        assert_eq!(*failures as usize, i + 1);
        // jitter 0.25: the delay lies in [0.75 × base, base].
        assert!(
            (base * 3 / 4..=base).contains(delay),
            "delay {i} = {delay} ms, base {base}: {delays:?}"
        );
    }
    let capped: Vec<u64> = delays[2..].iter().map(|d| d.1).collect();
    assert!(
        capped.iter().any(|d| *d != capped[0]),
        "jitter varies the capped delays: {delays:?}"
    );
    // The client really waited: each attempt comes at least the chosen delay after the previous.
    for (i, (_, delay)) in delays.iter().enumerate() {
        let gap = attempts[i + 1] - attempts[i];
        assert!(gap + 1 >= *delay, "attempt gap {gap} ms < delay {delay} ms");
    }
    // Same seed, same delays: a run can be replayed exactly.
    let (again, _) = backoffs(config, 6).await;
    assert_eq!(again, delays);
}

#[tokio::test]
async fn naive_retries_at_once_without_growth() {
    let addr = closed_port().await;
    let config = quick(url(addr), ClientProfile::Naive);
    let started = tokio::time::Instant::now();
    let (delays, _) = backoffs(config, 20).await;
    assert!(
        delays.iter().all(|(_, d)| *d == 0),
        "naive waited: {delays:?}"
    );
    assert_eq!(
        delays.last().map(|d| d.0),
        Some(20),
        "failures keep counting"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn leaving_sends_close_1000_and_the_device_sees_a_clean_close() {
    let emu = emulator().await;
    let mut run = Run::start(quick(url(emu.http_addr()), ClientProfile::Good));
    run.next("ready", is_ready).await;
    let (_, events) = run.stop().await;
    let closed = emulator_event(&emu, "ws_closed", |e| {
        matches!(e.kind, EventKind::WsClosed { .. })
    })
    .await;
    let EventKind::WsClosed {
        by, code, clean, ..
    } = closed.kind
    else {
        unreachable!()
    };
    assert_eq!((by, code, clean), (Side::Client, Some(1000), true));
    let client_closed = events
        .iter()
        .find(|e| matches!(e.kind, ClientEventKind::Closed { .. }))
        .expect("closed event");
    assert_eq!(
        client_closed.kind,
        ClientEventKind::Closed {
            by: Closer::Client,
            code: Some(1000),
            reason: "bye".into(),
            clean: true,
        }
    );
}

#[tokio::test]
async fn impolite_leaves_without_a_close_frame() {
    let emu = emulator().await;
    let mut run = Run::start(quick(url(emu.http_addr()), ClientProfile::Impolite));
    run.next("ready", is_ready).await;
    run.stop().await;
    let closed = emulator_event(&emu, "ws_closed", |e| {
        matches!(e.kind, EventKind::WsClosed { .. })
    })
    .await;
    let EventKind::WsClosed {
        by, code, clean, ..
    } = closed.kind
    else {
        unreachable!()
    };
    assert_eq!((by, code, clean), (Side::Client, None, false));
}

#[tokio::test]
async fn messages_sent_while_down_are_delivered_after_reconnect() {
    let first = emulator().await;
    let addr = first.http_addr();
    let mut run = Run::start(quick(url(addr), ClientProfile::Good));
    run.next("ready", is_ready).await;

    // The device goes away (close 1001); the client backs off and fails to reconnect.
    first.shutdown(WAIT).await;
    let closed = run
        .next("closed", |k| matches!(k, ClientEventKind::Closed { .. }))
        .await;
    assert!(matches!(
        closed.kind,
        ClientEventKind::Closed {
            by: Closer::Device,
            code: Some(1001),
            ..
        }
    ));
    run.next("failed reconnect", |k| {
        matches!(k, ClientEventKind::Failed { .. })
    })
    .await;

    run.sender
        .send(GetStatus { id: Some(42) })
        .expect("client runs");
    let queued = run
        .next("queued", |k| matches!(k, ClientEventKind::Queued { .. }))
        .await;
    assert_eq!(
        queued.kind,
        ClientEventKind::Queued {
            msg_type: "get_status".into(),
            queued: 1
        }
    );

    // The device comes back on the same port.
    let second = Emulator::start(EmulatorConfig {
        http: addr,
        ..emulator_config()
    })
    .await
    .expect("restarts on the same port");
    run.next("ready again", is_ready).await;
    let status = run
        .next("status reply", |k| {
            matches!(k, ClientEventKind::Received { msg_type: Some(t), id: Some(42), .. } if t == "status")
        })
        .await;
    assert!(matches!(status.kind, ClientEventKind::Received { .. }));
    let delivered = emulator_event(&second, "get_status", |e| {
        matches!(&e.kind, EventKind::WsMessage { direction: Direction::In, msg_type: Some(t), .. } if t == "get_status")
    })
    .await;
    assert!(matches!(delivered.kind, EventKind::WsMessage { .. }));
    let (summary, _) = run.stop().await;
    assert_eq!(summary.unsent, 0);
    assert_eq!(summary.ready, 2);
}

/// A WebSocket server that answers `hello` with `welcome`, then never reads again (so it answers
/// no ping of any kind). Returns its address and a channel reporting each accepted connection.
async fn goes_silent_after_welcome() -> (SocketAddr, mpsc::UnboundedReceiver<u32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for n in 1..=8u32 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            let Some(Ok(Message::Text(hello))) = ws.next().await else {
                continue;
            };
            let Ok(ClientMessage::Hello(hello)) = espsim_protocol::decode(hello.as_bytes()) else {
                continue;
            };
            let welcome = DeviceMessage::Welcome(Welcome {
                id: hello.id,
                device_id: "mute".into(),
                firmware_version: "0".into(),
                protocol_version: espsim_protocol::PROTOCOL_VERSION,
                capabilities: Vec::new(),
            });
            let text = String::from_utf8(espsim_protocol::encode(&welcome)).expect("utf-8");
            if ws.send(Message::text(text)).await.is_err() {
                continue;
            }
            let _ = tx.send(n);
            held.push(ws);
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn dead_link_is_detected_within_the_heartbeat_timeout_and_reconnects() {
    let (addr, mut accepted) = goes_silent_after_welcome().await;
    let mut config = quick(format!("ws://{addr}/"), ClientProfile::Good);
    config.heartbeat = Some(Heartbeat {
        every: Duration::from_millis(100),
        timeout: Duration::from_millis(250),
        kind: HeartbeatKind::App,
    });
    let mut run = Run::start(config);
    run.next("ready", is_ready).await;
    let first_ping = run
        .next("heartbeat", |k| {
            matches!(k, ClientEventKind::Heartbeat { .. })
        })
        .await;
    let dead = run
        .next("dead_link", |k| {
            matches!(k, ClientEventKind::DeadLink { .. })
        })
        .await;
    let ClientEventKind::DeadLink { seq, waited_ms } = dead.kind else {
        unreachable!()
    };
    assert_eq!(
        seq, 1,
        "the first unanswered ping is the one that times out"
    );
    assert!((250..600).contains(&waited_ms), "waited {waited_ms} ms");
    assert!(dead.at_ms - first_ping.at_ms < 600);
    let closed = run
        .next("closed", |k| matches!(k, ClientEventKind::Closed { .. }))
        .await;
    assert!(matches!(
        closed.kind,
        ClientEventKind::Closed {
            by: Closer::Client,
            code: None,
            clean: false,
            ..
        }
    ));
    run.next("ready again", is_ready).await;
    let mut connections = Vec::new();
    while let Ok(n) = accepted.try_recv() {
        connections.push(n);
    }
    assert_eq!(connections, [1, 2], "the client reconnected");
    let (summary, _) = run.stop().await;
    assert!(summary.dead_links >= 1);
}

#[tokio::test]
async fn silent_never_notices_the_dead_link() {
    let (addr, _accepted) = goes_silent_after_welcome().await;
    let mut run = Run::start(quick(format!("ws://{addr}/"), ClientProfile::Silent));
    run.next("ready", is_ready).await;
    // `good` with the timers above would have declared the link dead in 350 ms.
    let noticed = run
        .next_within(Duration::from_millis(800), |k| {
            matches!(
                k,
                ClientEventKind::DeadLink { .. } | ClientEventKind::Closed { .. }
            )
        })
        .await;
    assert!(noticed.is_none(), "silent noticed: {noticed:?}");
    run.stop().await;
}

/// A listener whose backlog completes TCP handshakes that nobody ever accepts: the WebSocket
/// upgrade never gets an answer.
async fn never_answers() -> (SocketAddr, TcpListener) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    (l.local_addr().expect("addr"), l)
}

#[tokio::test]
async fn connect_timeout_fails_a_stalled_handshake_but_patient_waits() {
    let (addr, _listener) = never_answers().await;
    let mut config = quick(url(addr), ClientProfile::Good);
    config.connect_timeout = Some(Duration::from_millis(200));
    let mut run = Run::start(config);
    let failed = run
        .next("failed", |k| matches!(k, ClientEventKind::Failed { .. }))
        .await;
    assert_eq!(
        failed.kind,
        ClientEventKind::Failed {
            attempt: 1,
            phase: "connect".into(),
            error: "connect timed out after 200 ms".into(),
        }
    );
    assert!((200..1000).contains(&failed.at_ms));
    run.stop().await;

    let mut run = Run::start(quick(url(addr), ClientProfile::Patient));
    let failed = run
        .next_within(Duration::from_millis(800), |k| {
            matches!(k, ClientEventKind::Failed { .. })
        })
        .await;
    assert!(failed.is_none(), "patient gave up: {failed:?}");
    let (summary, _) = run.stop().await;
    assert_eq!((summary.attempts, summary.failures), (1, 0));
}

#[tokio::test]
async fn refused_connection_is_reported_with_the_os_error() {
    let addr = closed_port().await;
    let mut run = Run::start(quick(url(addr), ClientProfile::Good));
    let failed = run
        .next("failed", |k| matches!(k, ClientEventKind::Failed { .. }))
        .await;
    let ClientEventKind::Failed { error, .. } = failed.kind else {
        unreachable!()
    };
    assert!(error.contains("Connection refused"), "error: {error}");
    let (summary, _) = run.stop().await;
    assert!(!summary.ever_ready());
}

#[tokio::test]
async fn the_queue_keeps_the_newest_messages_up_to_its_limit() {
    let addr = closed_port().await;
    let mut config = quick(url(addr), ClientProfile::Good);
    config.max_queue = 2;
    let mut run = Run::start(config);
    for id in 1..=3 {
        run.sender
            .send(GetStatus { id: Some(id) })
            .expect("client runs");
    }
    let dropped = run
        .next("queue_dropped", |k| {
            matches!(k, ClientEventKind::QueueDropped { .. })
        })
        .await;
    assert_eq!(
        dropped.kind,
        ClientEventKind::QueueDropped {
            msg_type: "get_status".into()
        }
    );
    let (summary, events) = run.stop().await;
    let queued: Vec<usize> = events
        .iter()
        .filter_map(|e| match e.kind {
            ClientEventKind::Queued { queued, .. } => Some(queued),
            _ => None,
        })
        .collect();
    assert_eq!(queued, [1, 2, 2]);
    assert_eq!(summary.unsent, 2);
}
