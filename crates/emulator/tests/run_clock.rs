//! The deferred run clock over real sockets: time windows (`refuse`, device faults) stay closed
//! until the clock starts and then count from it; `POST /clock/start` and
//! `RunningEmulator::start_clock` start it once, with one `clock_started` event.

mod support;

use std::io;
use std::net::SocketAddr;

use espsim_emulator::events::{Event, EventKind};
use espsim_emulator::{ControlOptions, Emulator, EmulatorConfig, RunClock, RunningEmulator};
use espsim_faults::FaultRule;
use serde_json::Value;
use support::{WAIT, event, exchange};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A marker that happens 1.2 s after the emulator started whatever the run clock does: an
/// `after:`-armed window counts from its event (observed at start), not from the clock.
const MARKER: &str =
    r#"{"when":{"after":"go","at":"1200ms"},"fault":{"device":"internet","mode":"online"}}"#;

fn rule(json: &str) -> FaultRule {
    serde_json::from_str(json).expect("rule parses")
}

async fn start_deferred(rules: &[&str]) -> RunningEmulator {
    let running = Emulator::start(EmulatorConfig {
        dns: None,
        faults: rules.iter().map(|r| rule(r)).collect(),
        clock: RunClock::Deferred,
        control: Some(ControlOptions::loopback(0)),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    running.faults().observe("go", running.events().elapsed());
    running
}

/// Waits for the `fault_applied` of a fault whose JSON has `key: value`.
async fn applied(running: &RunningEmulator, key: &str, value: &str) -> Event {
    event(running, value, |e| {
        matches!(&e.kind, EventKind::FaultApplied { fault, .. }
            if fault == value || fault[key] == value)
    })
    .await
}

fn count(running: &RunningEmulator, pred: impl Fn(&EventKind) -> bool) -> usize {
    running
        .events()
        .snapshot()
        .iter()
        .filter(|e| pred(&e.kind))
        .count()
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("the attempt ends in time")
}

/// `POST /clock/start` (or any control request) with the emulator's token.
async fn control(running: &RunningEmulator, line: &str) -> (u16, Value) {
    let addr = running.control_addr().expect("control is on");
    let token = running.control_token().expect("a generated token");
    let answer = exchange(
        addr,
        &format!("{line} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}"),
        "",
    )
    .await;
    let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    (answer.status, json)
}

#[tokio::test]
async fn a_refuse_window_counts_from_the_deferred_clock_started_over_the_control_api() {
    let running = start_deferred(&[
        r#"{"when":{"at":"1s","for":"30s"},"fault":"refuse"}"#,
        MARKER,
    ])
    .await;
    let addr = running.http_addr();
    let (status, clock) = control(&running, "GET /clock").await;
    assert_eq!((status, &clock["started_at_ms"]), (200, &Value::Null));

    // Past 1.2 s of the emulator's life: a window at 1 s on the emulator's clock would refuse.
    let marker = applied(&running, "device", "internet").await;
    assert!(marker.at_ms >= 1200, "marker at {} ms", marker.at_ms);
    connect(addr)
        .await
        .expect("not refused before the clock starts");
    assert_eq!(
        count(
            &running,
            |k| matches!(k, EventKind::FaultApplied { fault, .. } if fault == "refuse")
        ),
        0
    );

    let (status, first) = control(&running, "POST /clock/start").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["started"], true);
    let origin = first["at_ms"].as_u64().expect("at_ms");
    assert!(origin >= marker.at_ms, "started at {origin} ms");
    let (status, second) = control(&running, "POST /clock/start").await;
    assert_eq!((status, &second["started"]), (200, &Value::Bool(false)));
    assert_eq!(second["at_ms"].as_u64(), Some(origin), "idempotent");
    let (_, clock) = control(&running, "GET /clock").await;
    assert_eq!(clock["started_at_ms"].as_u64(), Some(origin));

    let refused = applied(&running, "connect", "refuse").await;
    assert!(
        refused.at_ms >= origin + 1000,
        "refusing at {} ms, clock started at {origin} ms",
        refused.at_ms
    );
    let err = connect(addr).await.expect_err("refused from start + 1 s");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    let started: Vec<String> = running
        .events()
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ClockStarted { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(started, ["control api"], "one clock_started for two starts");
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_device_reboot_counts_from_the_deferred_clock() {
    let running = start_deferred(&[
        r#"{"when":{"at":"1s"},"fault":{"device":"reboot","down":"300ms"}}"#,
        MARKER,
    ])
    .await;
    let marker = applied(&running, "device", "internet").await;
    let rebooted = |k: &EventKind| matches!(k, EventKind::FaultApplied { fault, .. } if fault["device"] == "reboot");
    assert_eq!(count(&running, rebooted), 0, "no reboot before the clock");
    connect(running.http_addr())
        .await
        .expect("the device listens before the clock starts");

    assert!(running.start_clock("test"), "this call started it");
    assert!(!running.start_clock("again"), "already running");
    let origin = running.clock_started_at().expect("started");
    assert!(origin.as_millis() as u64 >= marker.at_ms);
    let reboot = event(&running, "reboot", |e| rebooted(&e.kind)).await;
    assert!(
        u128::from(reboot.at_ms) >= origin.as_millis() + 1000,
        "rebooted at {} ms, clock started at {origin:?}",
        reboot.at_ms
    );
    event(
        &running,
        "boot",
        |e| matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "boot"),
    )
    .await;
    assert_eq!(
        count(&running, |k| matches!(k, EventKind::ClockStarted { .. })),
        1
    );
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn starting_the_clock_needs_the_token() {
    let running = start_deferred(&[]).await;
    let addr = running.control_addr().expect("control is on");
    let answer = exchange(addr, "POST /clock/start HTTP/1.1\r\nHost: 127.0.0.1", "").await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(running.clock_started_at(), None);
    running.shutdown(WAIT).await;
}
