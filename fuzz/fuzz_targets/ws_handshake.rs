//! ESP-IDF's WebSocket handshake checks (`ws/handshake.rs`) on arbitrary request heads.
//! Input: byte 0 picks the profile and the endpoint's subprotocol; the rest is a request head
//! as text (`METHOD TARGET HTTP/1.x`, then `Name: value` lines), split leniently here so every
//! header shape reaches the checks (the real head parser has its own target, `http_head`).
//!
//! Checks: no panic; an upgrade only for `GET` with `Upgrade: websocket`, version 13 and a key
//! of at most 27 characters; its `101` is ESP-IDF's layout with the RFC 6455 accept value for
//! that key; a subprotocol is echoed only when it is the endpoint's; a refusal's response is a
//! 4xx that an HTTP client can read.
#![no_main]

use espsim_emulator::fuzzing::{HandshakeOutcome, HandshakeRequest, websocket_handshake};
use espsim_emulator::profile::Profile;
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const SUBPROTOCOLS: [Option<&str>; 3] = [None, Some("espsim.v1"), Some("chat")];

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let [selector, text @ ..] = data else {
        return;
    };
    let profile = Profile::ALL[usize::from(*selector) % Profile::ALL.len()];
    let subprotocol = SUBPROTOCOLS[usize::from(*selector / 16) % SUBPROTOCOLS.len()];
    let request = request(&String::from_utf8_lossy(text));
    let outcome = websocket_handshake(&request, subprotocol, profile);
    assert_eq!(outcome, websocket_handshake(&request, subprotocol, profile));
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    match outcome {
        HandshakeOutcome::Upgrade {
            response,
            key,
            subprotocol: echoed,
            token: _,
        } => {
            assert_eq!(request.method, "GET");
            assert!(header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")));
            assert_eq!(header("sec-websocket-version"), Some("13"));
            assert_eq!(header("sec-websocket-key"), Some(key.as_str()));
            assert!(key.len() <= 27, "{key:?}");
            assert!(echoed.is_none() || echoed.as_deref() == subprotocol);
            let mut expected = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                derive_accept_key(key.as_bytes())
            );
            if let Some(p) = &echoed {
                expected.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
            }
            expected.push_str("\r\n");
            assert_eq!(String::from_utf8_lossy(&response), expected);
        }
        HandshakeOutcome::Reject { reason, response } => {
            assert!(!reason.is_empty());
            if let Some(bytes) = response {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut parsed = httparse::Response::new(&mut headers);
                let status = parsed.parse(&bytes);
                assert!(
                    matches!(status, Ok(httparse::Status::Complete(_))),
                    "unreadable response {status:?}: {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                let code = parsed.code.unwrap_or_default();
                assert!((400..500).contains(&code), "status {code}");
            }
        }
    }
});

/// A request head from text, split leniently: the first line's words are method, target and
/// version; every other line with a `:` is a header (name before it, value after).
fn request(text: &str) -> HandshakeRequest {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let mut words = first.splitn(3, ' ');
    let method = words.next().unwrap_or_default().to_owned();
    let target = words.next().unwrap_or_default().to_owned();
    let minor_version = u8::from(words.next() != Some("HTTP/1.0"));
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect();
    HandshakeRequest {
        method,
        target,
        minor_version,
        headers,
    }
}
