//! The bare-metal ESP32-C3 firmware (`crates/firmware/esp32c3`) answers HTTP from
//! `espsim_firmware::captive`; these tests send the same requests to the emulator running the
//! `esp-hal-edge` profile in `captive` mode and assert the same bytes on the wire, so an app
//! tested against that profile meets the chip's answers.

mod support;

use std::net::{Ipv4Addr, SocketAddr};

use espsim_emulator::events::{CheckVerdict, EventKind};
use espsim_emulator::internet::InternetMode;
use espsim_emulator::profile::Profile;
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_firmware::captive::{
    self, CONNECTIVITY_CHECKS, EDGE_LIMITS, Handshake, HttpError, Portal, Route,
};
use support::{WAIT, connect, read_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEVICE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);

async fn start() -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        profile: Profile::ESP_HAL_EDGE,
        internet: InternetMode::Captive,
        device_ip: DEVICE_IP,
        dns: None,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// Sends `request` on a fresh connection and reads until the device closes it.
async fn exchange_closing(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr).await;
    s.write_all(request).await.expect("writes");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("closed in time")
        .expect("reads");
    out
}

/// What the C3 firmware sends for `request`: the same steps as `esp32c3/src/web.rs` (limits,
/// then the route table), from the raw bytes instead of edge-http's parse.
fn c3_answer(request: &[u8], portal: &Portal<'_>) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(request).expect("ascii request");
    let (line, rest) = text.split_once("\r\n").expect("a request line");
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().expect("method"), parts.next().expect("target"));
    let header_count = rest.lines().filter(|l| !l.is_empty()).count();
    if let Err(e) = captive::check_head(
        line.len() + 2,
        target,
        rest.len(),
        header_count,
        &EDGE_LIMITS,
    ) {
        return Some(e.answer().to_bytes());
    }
    match captive::route(method, target, portal) {
        Route::Reply { answer, .. } => Some(answer.to_bytes()),
        Route::WebSocket => None,
    }
}

fn get(host: &str, target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn every_connectivity_check_gets_the_c3_answer_and_the_os_sees_a_portal() {
    let em = start().await;
    let ws_url = format!("ws://{DEVICE_IP}:{}/ws", em.http_addr().port());
    let portal = Portal {
        device_ip: "192.168.4.1",
        profile: "esp-hal-edge",
        ws_url: &ws_url,
    };
    // One keep-alive connection, as a phone's probe client would reuse it.
    let mut s = connect(em.http_addr()).await;
    for (host, path) in CONNECTIVITY_CHECKS {
        let request = get(host, path);
        s.write_all(&request).await.expect("writes");
        let emulator = read_response(&mut s).await;
        let c3 = c3_answer(&request, &portal).expect("an HTTP answer");
        assert_eq!(
            String::from_utf8_lossy(&emulator),
            String::from_utf8_lossy(&c3),
            "{host}{path}"
        );
        let url = format!("http://{host}{path}");
        let probe = em
            .events()
            .wait_for(
                WAIT,
                |e| matches!(&e.kind, EventKind::ConnectivityProbe { url: u, .. } if *u == url),
            )
            .await
            .unwrap_or_else(|| panic!("the emulator does not know {url} as a connectivity check"));
        let EventKind::ConnectivityProbe { verdict, .. } = probe.kind else {
            unreachable!("matched above")
        };
        // Every OS offers its sign-in sheet, except Firefox's no-portal connectivity service.
        let want = if *path == "/success.txt" {
            CheckVerdict::NoInternet
        } else {
            CheckVerdict::SignIn
        };
        assert_eq!(verdict, want, "{url}");
    }
    drop(s);
    em.shutdown(WAIT).await;
}

/// A request whose header lines (first header through the blank line) are `len` bytes.
fn with_header_block(target: &str, len: usize) -> Vec<u8> {
    let fixed = "Host: 192.168.4.1\r\nX-Pad: \r\n\r\n".len();
    let pad = "p".repeat(len - fixed);
    format!("GET {target} HTTP/1.1\r\nHost: 192.168.4.1\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn limits_and_error_pages_match_at_their_boundaries() {
    let em = start().await;
    let addr = em.http_addr();
    let ws_url = format!("ws://{DEVICE_IP}:{}/ws", addr.port());
    let portal = Portal {
        device_ip: "192.168.4.1",
        profile: "esp-hal-edge",
        ws_url: &ws_url,
    };
    // Served at the header limit (scratch 1025 bytes), 431 one byte over it.
    let fits = with_header_block("/x", EDGE_LIMITS.scratch());
    let mut s = connect(addr).await;
    s.write_all(&fits).await.expect("writes");
    let served = read_response(&mut s).await;
    assert!(served.starts_with(b"HTTP/1.1 302 "));
    assert_eq!(Some(served), c3_answer(&fits, &portal));
    drop(s);

    let over = with_header_block("/x", EDGE_LIMITS.scratch() + 1);
    let too_large = HttpError::HeaderFieldsTooLarge.answer().to_bytes();
    assert_eq!(exchange_closing(addr, &over).await, too_large);
    assert_eq!(c3_answer(&over, &portal), Some(too_large));

    // The request-target limit: 512 bytes served, 513 → 414.
    for (len, status) in [
        (EDGE_LIMITS.max_uri_len, 302),
        (EDGE_LIMITS.max_uri_len + 1, 414),
    ] {
        let target = format!("/{}", "u".repeat(len - 1));
        let request = get("192.168.4.1", &target);
        let c3 = c3_answer(&request, &portal).expect("an answer");
        assert!(c3.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
        let emulator = if status == 414 {
            exchange_closing(addr, &request).await
        } else {
            let mut s = connect(addr).await;
            s.write_all(&request).await.expect("writes");
            read_response(&mut s).await
        };
        assert_eq!(
            String::from_utf8_lossy(&emulator),
            String::from_utf8_lossy(&c3)
        );
    }

    // A method the URI does not take: 405, then close.
    let post = b"POST / HTTP/1.1\r\nHost: 192.168.4.1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        exchange_closing(addr, post).await,
        c3_answer(post, &portal).expect("an answer")
    );
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_websocket_upgrade_is_byte_identical_and_oversize_closes_1009() {
    let em = start().await;
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    );
    let headers = [
        ("Host", "192.168.4.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", key),
    ];
    assert_eq!(
        captive::handshake("/ws", &headers),
        Handshake::Upgrade {
            key: key.to_owned(),
            token: None
        }
    );
    let mut s = connect(em.http_addr()).await;
    s.write_all(request.as_bytes()).await.expect("writes");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(WAIT, s.read_exact(&mut byte))
            .await
            .expect("in time")
            .expect("reads the 101");
        head.push(byte[0]);
    }
    // The accept value for this key is RFC 6455's own example.
    assert_eq!(
        head,
        captive::switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );

    // One masked text frame one byte over the limit: the C3 closes with 1009, so must the profile.
    let len = EDGE_LIMITS.max_ws_message + 1;
    let mut frame = vec![0x81, 0xFE];
    frame.extend_from_slice(&u16::try_from(len).expect("fits u16").to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend(std::iter::repeat_n(b'x', len));
    s.write_all(&frame).await.expect("writes");
    let mut reply = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut reply))
        .await
        .expect("close in time")
        .expect("reads the close frame");
    assert_eq!(reply[0], 0x88, "a close frame: {reply:?}");
    assert_eq!(u16::from_be_bytes([reply[2], reply[3]]), 1009);
    assert_eq!(
        &captive::close_payload(1009, "message too big")[..2],
        &reply[2..4]
    );
    drop(s);
    em.shutdown(WAIT).await;
}
