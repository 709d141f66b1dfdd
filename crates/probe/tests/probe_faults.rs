//! `espsim probe` against the emulator with the fault injector: each injected fault is named at
//! the right layer, with the failure shape a real ESP32 would show.

use std::time::Duration;

use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_faults::FaultRule;
use espsim_probe::{
    self as probe, Details, LayerId, LayerVerdict, ProbeOptions, ProbeReport, WsOutcome,
};

async fn emulator_with(rule: &str) -> RunningEmulator {
    let rule: FaultRule = serde_json::from_str(rule).expect("a valid rule");
    Emulator::start(EmulatorConfig {
        faults: vec![rule],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

async fn probe_url(url: String, dns: Option<std::net::SocketAddr>) -> ProbeReport {
    let mut o = ProbeOptions::new(url);
    o.timeout = Duration::from_millis(500);
    o.samples = 2;
    o.dns = dns;
    tokio::time::timeout(Duration::from_secs(60), probe::run(o))
        .await
        .expect("probe finishes")
        .expect("valid url")
}

async fn probe_ws(emu: &RunningEmulator) -> ProbeReport {
    probe_url(format!("ws://{}/ws", emu.http_addr()), None).await
}

fn failed_at(report: &ProbeReport, id: LayerId) -> &probe::LayerReport {
    assert_eq!(report.failed_layer, Some(id), "{report:#?}");
    let layer = report.layer(id).expect("every layer is reported");
    assert_eq!(layer.verdict, LayerVerdict::Fail);
    layer
}

fn ws_outcome(report: &ProbeReport) -> WsOutcome {
    match &report
        .layer(LayerId::Websocket)
        .expect("websocket layer")
        .details
    {
        Some(Details::Websocket(d)) => d.outcome,
        other => panic!("websocket details expected, got {other:?}"),
    }
}

#[tokio::test]
async fn refuse_fails_tcp() {
    let emu = emulator_with(r#"{"when":{"at":"0s","for":"1h"},"fault":"refuse"}"#).await;
    // The port closes on the accept loop's first turn, just after start.
    emu.events()
        .wait_for(Duration::from_secs(5), |e| e.kind.name() == "fault_applied")
        .await
        .expect("the port closes");
    let report = probe_ws(&emu).await;
    let tcp = failed_at(&report, LayerId::Tcp);
    assert!(tcp.summary.contains("refused"), "{}", tcp.summary);
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn reset_on_accept_is_a_reset_at_the_upgrade() {
    let emu = emulator_with(r#"{"fault":"reset_on_accept"}"#).await;
    let report = probe_ws(&emu).await;
    failed_at(&report, LayerId::Websocket);
    assert_eq!(ws_outcome(&report), WsOutcome::Reset);
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn stall_fails_http_with_the_socket_hint() {
    let emu = emulator_with(r#"{"fault":"stall"}"#).await;
    let report = probe_ws(&emu).await;
    let http = failed_at(&report, LayerId::Http);
    let hint = http.hint.clone().unwrap_or_default();
    assert!(hint.contains("max_open_sockets"), "{hint}");
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn handshake_close_is_closed_before_headers() {
    let emu = emulator_with(r#"{"fault":{"handshake":"close","at":"after_request"}}"#).await;
    let report = probe_ws(&emu).await;
    let ws = failed_at(&report, LayerId::Websocket);
    assert_eq!(ws_outcome(&report), WsOutcome::ClosedBeforeHeaders);
    let hint = ws.hint.clone().unwrap_or_default();
    assert!(hint.contains("Sec-WebSocket-Version"), "{hint}");
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn handshake_reset_is_a_reset() {
    let emu = emulator_with(r#"{"fault":{"handshake":"reset","at":"after_request"}}"#).await;
    let report = probe_ws(&emu).await;
    failed_at(&report, LayerId::Websocket);
    assert_eq!(ws_outcome(&report), WsOutcome::Reset);
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn handshake_status_is_a_non_101() {
    let emu = emulator_with(r#"{"fault":{"handshake":"status","code":503}}"#).await;
    let report = probe_ws(&emu).await;
    let ws = failed_at(&report, LayerId::Websocket);
    assert_eq!(ws_outcome(&report), WsOutcome::Non101);
    assert!(ws.summary.contains("503"), "{}", ws.summary);
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn handshake_bad_accept_is_a_bad_accept() {
    let emu = emulator_with(r#"{"fault":{"handshake":"bad_accept"}}"#).await;
    let report = probe_ws(&emu).await;
    failed_at(&report, LayerId::Websocket);
    assert_eq!(ws_outcome(&report), WsOutcome::BadAccept);
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn dns_nxdomain_fails_dns() {
    let emu = emulator_with(r#"{"when":{"name":"esp32.test"},"fault":{"dns":"nxdomain"}}"#).await;
    let url = format!("ws://esp32.test:{}/ws", emu.http_addr().port());
    let report = probe_url(url, emu.dns_addr()).await;
    let dns = failed_at(&report, LayerId::Dns);
    assert!(
        dns.summary.contains("NXDOMAIN") || dns.summary.contains("NXDomain"),
        "{}",
        dns.summary
    );
    emu.shutdown(Duration::from_secs(1)).await;
}
