//! Device faults over real sockets on 127.0.0.1: the internet switch, reboot, AP outage and
//! socket exhaustion, as an app (WebSocket, HTTP probe, DNS) sees them.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use espsim_emulator::events::{Event, EventKind, Side};
use espsim_emulator::internet::InternetMode;
use espsim_emulator::{DeviceOptions, Emulator, EmulatorConfig, RunningEmulator};
use espsim_faults::FaultRule;
use futures_util::{SinkExt, StreamExt};
use hickory_proto::op::{Message as DnsMessage, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use support::{WAIT, assert_port_held, conn_of, connect_when_listening, event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn rule(json: &str) -> FaultRule {
    serde_json::from_str(json).expect("rule parses")
}

async fn start_with(rules: &[&str]) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        device_ip: Ipv4Addr::new(192, 168, 4, 1),
        faults: rules.iter().map(|r| rule(r)).collect(),
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

async fn device_action(running: &RunningEmulator, name: &str) -> Event {
    event(
        running,
        name,
        |e| matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == name),
    )
    .await
}

/// Waits for the `FaultApplied` of a device fault of this kind; returns it and its fault json.
async fn fault_applied(running: &RunningEmulator, kind: &str) -> (Event, serde_json::Value) {
    let e = event(running, kind, |e| {
        matches!(&e.kind, EventKind::FaultApplied { conn: None, fault, .. } if fault["device"] == kind)
    })
    .await;
    let EventKind::FaultApplied { fault, .. } = &e.kind else {
        unreachable!("matched above")
    };
    let fault = fault.clone();
    (e, fault)
}

/// Android's connectivity check on a fresh connection; returns the status code.
async fn probe(addr: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(
        b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("writes");
    status_of(&mut s).await
}

/// Reads a response head and returns its status code.
async fn status_of(s: &mut TcpStream) -> u16 {
    let read = async {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = s.read(&mut buf).await.expect("reads");
            assert!(n > 0, "eof before the response head: {head:?}");
            head.extend_from_slice(&buf[..n]);
        }
        head
    };
    let head = timeout(WAIT, read).await.expect("a response within 5 s");
    let text = String::from_utf8_lossy(&head);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

async fn ws_connect(addr: SocketAddr) -> Ws {
    let (ws, _) = timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds");
    ws
}

/// Sends one request and returns the device's next text message.
async fn request(ws: &mut Ws, json: &str) -> serde_json::Value {
    ws.send(Message::text(json)).await.expect("sends");
    for _ in 0..16 {
        let msg = timeout(WAIT, ws.next())
            .await
            .expect("a reply within 5 s")
            .expect("session open")
            .expect("frame");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).expect("json");
        }
    }
    panic!("no text reply to {json}");
}

async fn set_led_on(ws: &mut Ws) {
    let ack = request(ws, r#"{"type":"set_output","id":1,"name":"led","on":true}"#).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(status(ws).await["outputs"]["led"], true);
}

async fn status(ws: &mut Ws) -> serde_json::Value {
    let status = request(ws, r#"{"type":"get_status","id":2}"#).await;
    assert_eq!(status["type"], "status", "{status}");
    status
}

/// What the app's WebSocket reads next once the device vanished: the session must end without
/// a close frame. Returns the client's error text (or `eof`).
async fn session_end(ws: &mut Ws) -> String {
    match timeout(WAIT, ws.next())
        .await
        .expect("the session ends within 5 s")
    {
        None => "eof".to_owned(),
        Some(Err(e)) => e.to_string(),
        Some(Ok(Message::Close(frame))) => panic!("got a close frame {frame:?}, expected none"),
        Some(Ok(other)) => panic!("got {other:?}, expected the session to end"),
    }
}

/// A DNS question sent now; asserts no reply comes before `until` is emitted, and that the
/// emulator logged the question as unanswered.
async fn dns_is_silent_until(running: &RunningEmulator, name: &str, until: &str) {
    let server = running.dns_addr().expect("dns on");
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("binds");
    socket.connect(server).await.expect("connects");
    let mut q = DnsMessage::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    socket
        .send(&q.to_vec().expect("encodes"))
        .await
        .expect("sends");
    let mut buf = vec![0u8; 1500];
    tokio::select! {
        r = socket.recv(&mut buf) => panic!("dns answered during the outage: {r:?}"),
        _ = device_action(running, until) => {}
    }
    let name_logged = name.trim_end_matches('.');
    event(
        running,
        "unanswered dns_query",
        |e| matches!(&e.kind, EventKind::DnsQuery { name, rcode: None, .. } if name == name_logged),
    )
    .await;
    // After the outage the same socket gets answers again.
    socket
        .send(&q.to_vec().expect("encodes"))
        .await
        .expect("sends");
    let len = timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("answered after the outage")
        .expect("recv");
    let reply = DnsMessage::from_vec(&buf[..len]).expect("decodes");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
}

#[tokio::test]
async fn internet_window_switches_the_probe_answer_and_restores_it() {
    let running = start_with(&[
        r#"{"when":{"after":"go","for":"300ms"},"fault":{"device":"internet","mode":"online"}}"#,
    ])
    .await;
    let addr = running.http_addr();
    assert_eq!(probe(addr).await, 302, "captive before the window");

    running.faults().observe("go", running.events().elapsed());
    let (_, fault) = fault_applied(&running, "internet").await;
    assert_eq!(
        fault,
        serde_json::json!({ "device": "internet", "mode": "online" })
    );
    assert_eq!(running.internet(), InternetMode::Online);
    assert_eq!(probe(addr).await, 204, "online during the window");

    let restored = device_action(&running, "internet_restored").await;
    assert_eq!(probe(addr).await, 302, "captive again after the window");
    assert_eq!(running.internet(), InternetMode::Captive);

    let changes: Vec<(InternetMode, InternetMode, u64)> = running
        .events()
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::InternetChanged { from, to } => Some((from, to, e.at_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        (changes[0].0, changes[0].1),
        (InternetMode::Captive, InternetMode::Online)
    );
    assert_eq!(
        (changes[1].0, changes[1].1),
        (InternetMode::Online, InternetMode::Captive)
    );
    assert!(
        changes[1].2 - changes[0].2 >= 300,
        "window lasted {} ms",
        changes[1].2 - changes[0].2
    );
    assert!(restored.at_ms >= changes[1].2);
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn removing_an_open_ended_rule_ends_its_window() {
    let running = start_with(&[]).await;
    let addr = running.http_addr();
    let id = running
        .faults()
        .add(rule(r#"{"fault":{"device":"internet","mode":"offline"}}"#))
        .expect("rule added");
    fault_applied(&running, "internet").await;
    assert_eq!(probe(addr).await, 404, "offline: plain ESP-IDF 404");

    running.faults().remove(id).expect("rule removed");
    device_action(&running, "internet_restored").await;
    assert_eq!(probe(addr).await, 302);
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn reboot_drops_sessions_silences_dns_and_comes_back_fresh() {
    let running = start_with(&[]).await;
    let addr = running.http_addr();
    let mut ws = ws_connect(addr).await;
    set_led_on(&mut ws).await;

    // Added at run time: the timeline re-reads the plan.
    running
        .faults()
        .add(rule(
            r#"{"when":{"after":"go"},"fault":{"device":"reboot","down":"500ms"}}"#,
        ))
        .expect("rule added");
    running.faults().observe("go", running.events().elapsed());
    let (applied, fault) = fault_applied(&running, "reboot").await;
    assert_eq!(
        fault,
        serde_json::json!({ "device": "reboot", "down": "500ms" })
    );

    let end = session_end(&mut ws).await;
    println!("client saw: {end}");
    event(&running, "ws_closed", |e| {
        matches!(
            &e.kind,
            EventKind::WsClosed {
                by: Side::Device,
                code: None,
                clean: false,
                ..
            }
        )
    })
    .await;
    assert_eq!(running.session_count(), 0);
    dns_is_silent_until(&running, "example.com.", "boot").await;

    // Back: a new session works and the device state is fresh.
    let mut ws = ws_connect(addr).await;
    let status = status(&mut ws).await;
    let now_ms = u64::try_from(running.events().elapsed().as_millis()).expect("fits");
    assert_eq!(status["outputs"]["led"], false, "outputs off after reboot");
    let uptime = status["uptime_ms"].as_u64().expect("uptime");
    assert!(
        uptime + 250 <= now_ms - applied.at_ms,
        "uptime {uptime} ms counts from the boot, not from before the reboot ({} ms ago)",
        now_ms - applied.at_ms
    );
    drop(ws);
    running.shutdown(WAIT).await;
}

/// While the chip reboots nothing listens: a reconnect fails, and works again after `down`.
#[tokio::test]
async fn reboot_refuses_reconnects_while_down() {
    let running =
        start_with(&[r#"{"when":{"after":"go"},"fault":{"device":"reboot","down":"500ms"}}"#])
            .await;
    let addr = running.http_addr();
    running.faults().observe("go", running.events().elapsed());
    fault_applied(&running, "reboot").await;
    let attempt = timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("the attempt ends in time");
    assert!(attempt.is_err(), "a reconnect during `down` fails");
    device_action(&running, "boot").await;
    ws_connect(addr).await;
    running.shutdown(WAIT).await;
}

/// While the chip reboots the port refuses but stays espsim's: another socket cannot bind it,
/// and after the boot espsim serves on it again.
#[tokio::test]
async fn the_port_cannot_be_taken_while_the_chip_reboots() {
    let running =
        start_with(&[r#"{"when":{"after":"go"},"fault":{"device":"reboot","down":"2s"}}"#]).await;
    let addr = running.http_addr();
    running.faults().observe("go", running.events().elapsed());
    fault_applied(&running, "reboot").await;
    let refused = TcpStream::connect(addr)
        .await
        .expect_err("nothing listens while the chip reboots");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_port_held(addr);
    device_action(&running, "boot").await;
    let mut s = connect_when_listening(addr).await;
    s.write_all(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n\r\n")
        .await
        .expect("writes");
    assert_eq!(status_of(&mut s).await, 302, "espsim's captive redirect");
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn ap_down_drops_sessions_silences_dns_and_keeps_device_state() {
    let running =
        start_with(&[r#"{"when":{"after":"go"},"fault":{"device":"ap_down","for":"500ms"}}"#])
            .await;
    let addr = running.http_addr();
    let mut ws = ws_connect(addr).await;
    set_led_on(&mut ws).await;

    running.faults().observe("go", running.events().elapsed());
    let (_, fault) = fault_applied(&running, "ap_down").await;
    assert_eq!(
        fault,
        serde_json::json!({ "device": "ap_down", "for": "500ms" })
    );
    // The session is gone on the device at once; the app's socket stays silent (no FIN, no
    // RST) while the AP is down and is reset when it is back.
    dns_is_silent_until(&running, "captive.apple.com.", "ap_up").await;
    let end = session_end(&mut ws).await;
    println!("client saw: {end}");
    assert_eq!(running.session_count(), 0);

    // The chip did not restart: what was set before the outage is still set.
    let mut ws = ws_connect(addr).await;
    assert_eq!(status(&mut ws).await["outputs"]["led"], true);
    drop(ws);
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_firmwares_own_ap_outage_while_provisioning_silences_dns_too() {
    let running = Emulator::start(EmulatorConfig {
        device: DeviceOptions {
            ap_down_delay: Some(Duration::from_millis(20)),
            ap_down_duration: Some(Duration::from_millis(500)),
            ..DeviceOptions::default()
        },
        ..Default::default()
    })
    .await
    .expect("emulator starts");
    let mut ws = ws_connect(running.http_addr()).await;
    let ack = request(
        &mut ws,
        r#"{"type":"provision","id":1,"ssid":"espsim-home","password":"espsim-password"}"#,
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    device_action(&running, "ap_down").await;
    dns_is_silent_until(&running, "example.com.", "ap_up").await;
    drop(ws);
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn socket_exhaustion_makes_the_next_client_wait_until_the_window_ends() {
    let running = start_with(&[
        r#"{"when":{"after":"go","for":"400ms"},"fault":{"device":"socket_exhaustion","sockets":6}}"#,
    ])
    .await;
    assert_eq!(running.profile().max_open_sockets, Some(7));
    let addr = running.http_addr();
    running.faults().observe("go", running.events().elapsed());
    fault_applied(&running, "socket_exhaustion").await;

    // The 7th slot is free: the first client is served.
    let mut first = TcpStream::connect(addr).await.expect("connects");
    let first_id = conn_of(&running, first.local_addr().expect("addr")).await;
    event(&running, "tcp_served", |e| {
        e.kind == EventKind::TcpServed { conn: first_id }
    })
    .await;
    first
        .write_all(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n\r\n")
        .await
        .expect("writes");
    assert_eq!(status_of(&mut first).await, 302);

    // The second waits, unserved, with all 7 slots in use.
    let mut second = TcpStream::connect(addr).await.expect("connects");
    let second_id = conn_of(&running, second.local_addr().expect("addr")).await;
    event(&running, "tcp_waiting", |e| {
        e.kind
            == EventKind::TcpWaiting {
                conn: second_id,
                open: 7,
            }
    })
    .await;
    second
        .write_all(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\n\r\n")
        .await
        .expect("writes");

    let released = device_action(&running, "sockets_released").await;
    let served = event(&running, "tcp_served", |e| {
        e.kind == EventKind::TcpServed { conn: second_id }
    })
    .await;
    assert!(
        served.seq > released.seq,
        "served only once the phantom slots were released"
    );
    assert_eq!(status_of(&mut second).await, 302);
    drop(first);
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn at_and_for_windows_follow_the_run_clock() {
    let running = start_with(&[
        r#"{"when":{"at":"200ms","for":"200ms"},"fault":{"device":"socket_exhaustion","sockets":2}}"#,
    ])
    .await;
    let (opened, _) = fault_applied(&running, "socket_exhaustion").await;
    let closed = device_action(&running, "sockets_released").await;
    assert!(opened.at_ms >= 200, "opened at {} ms", opened.at_ms);
    assert!(closed.at_ms >= 400, "closed at {} ms", closed.at_ms);
    assert!(
        closed.at_ms - opened.at_ms < 200 + 1000,
        "window lasted {} ms",
        closed.at_ms - opened.at_ms
    );
    running.shutdown(WAIT).await;
}

/// A host too busy to run espsim: this test's runtime (the emulator's too, one thread) is
/// blocked until the run's clock reaches `until`.
fn stall_until(running: &RunningEmulator, until: Duration) {
    while running.events().elapsed() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn a_reboot_the_host_stalled_through_still_happens_late() {
    // A 50 ms reboot at 300 ms, and a host that stalls across all of it, from before the
    // device-fault timeline ever ran: without DNS, `Emulator::start` returns without yielding
    // after spawning it, so the stall below always begins before its first step (this used to
    // lose the reboot whenever the task had not run before the stall, about 1 run in 20).
    let running = Emulator::start(EmulatorConfig {
        dns: None,
        faults: vec![rule(
            r#"{"when":{"at":"300ms"},"fault":{"device":"reboot","down":"50ms"}}"#,
        )],
        ..Default::default()
    })
    .await
    .expect("emulator starts");
    assert!(
        running.events().elapsed() < Duration::from_millis(300),
        "started before the reboot"
    );
    stall_until(&running, Duration::from_millis(450));
    let (rebooted, _) = fault_applied(&running, "reboot").await;
    let booted = device_action(&running, "boot").await;
    assert!(
        rebooted.at_ms >= 450,
        "rebooted late, at {} ms",
        rebooted.at_ms
    );
    assert!(booted.seq > rebooted.seq, "booted after the reboot");
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn every_window_a_stall_passed_over_still_happens_in_order() {
    // The timeline has run (the first window opened), then the host stalls across three more
    // windows; once it wakes, each is carried out late, in order, none lost.
    let running = Emulator::start(EmulatorConfig {
        dns: None,
        faults: [
            r#"{"when":{"for":"100ms"},"fault":{"device":"internet","mode":"online"}}"#,
            r#"{"when":{"at":"1000ms"},"fault":{"device":"reboot","down":"50ms"}}"#,
            r#"{"when":{"at":"1100ms"},"fault":{"device":"ap_down","for":"50ms"}}"#,
            r#"{"when":{"at":"1200ms","for":"50ms"},"fault":{"device":"socket_exhaustion","sockets":1}}"#,
        ]
        .iter()
        .map(|r| rule(r))
        .collect(),
        ..Default::default()
    })
    .await
    .expect("emulator starts");
    fault_applied(&running, "internet").await;
    assert!(
        running.events().elapsed() < Duration::from_millis(1000),
        "the stall starts before the windows"
    );
    stall_until(&running, Duration::from_millis(1400));
    device_action(&running, "sockets_released").await;
    let actions: Vec<(String, u64)> = running
        .events()
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::DeviceAction { action, .. } => Some((action, e.at_ms)),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "internet_restored",
            "reboot",
            "boot",
            "ap_down",
            "ap_up",
            "sockets_held",
            "sockets_released"
        ]
    );
    assert!(
        actions[1..].iter().all(|(_, at)| *at >= 1400),
        "carried out late: {actions:?}"
    );
    assert_eq!(running.internet(), InternetMode::Captive);
    running.shutdown(WAIT).await;
}
