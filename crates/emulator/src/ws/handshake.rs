//! ESP-IDF's WebSocket handshake checks and its `101` response, as pure functions of the request.
//!
//! Order and outcomes follow `httpd_uri.c` / `httpd_ws.c` (reference §3a/§3b): the method is
//! matched first (405), then the `Upgrade` header (400, or a plain GET when absent), then
//! `Sec-WebSocket-Version` and `Sec-WebSocket-Key`, whose failures are a silent close up to
//! ESP-IDF v6.0 and a `400`/`426` with `HTTPD_WS_STRICTER_RFC6455` (profile `handshake_rejection`).

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::WsSettings;
use crate::http::head::RequestHead;
use crate::http::response::EspResponse;
use crate::profile::{HandshakeRejection, Profile};

/// `char sec_key_encoded[28]` in `httpd_ws.c`: a longer key does not fit and fails the handshake.
const MAX_KEY_LEN: usize = 27;
/// `char subprotocol[50]`: the client's offer is truncated to 49 bytes before it is split.
const MAX_SUBPROTOCOL_OFFER: usize = 49;

/// What the handshake checks decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Switch protocols: write `response`, then speak WebSocket.
    Upgrade(Accept),
    /// The request does not become a WebSocket.
    Reject(Rejection),
}

/// A successful handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accept {
    /// The exact `101` bytes.
    pub(crate) response: Vec<u8>,
    /// The subprotocol echoed back, if the client offered the supported one.
    pub(crate) subprotocol: Option<String>,
    /// A token from `Authorization: Bearer` or `?token=`, to check against the device's.
    pub(crate) token: Option<String>,
    /// The client's `Sec-WebSocket-Key` (handshake faults build altered `101`s from it).
    pub(crate) key: String,
}

/// A refused upgrade: why, and what the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// Which check failed, for the `ws_rejected` event.
    pub(crate) reason: String,
    /// What goes on the wire.
    pub(crate) reply: Reply,
}

/// What a rejected client observes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The socket is closed with no bytes written (ESP-IDF ≤ v6.0).
    SilentClose,
    /// An ESP-IDF error response, then the socket is closed (`httpd_resp_send_err`).
    Status(EspResponse),
    /// The URI handler ran as a plain GET and, like ESP-IDF's `ws_echo_server` handler, returned
    /// `ESP_OK` without sending anything: no response, the socket stays open.
    NoResponse,
}

impl Rejection {
    fn new(reason: impl Into<String>, reply: Reply) -> Self {
        Rejection {
            reason: reason.into(),
            reply,
        }
    }

    /// The status sent, if any.
    pub(crate) fn status(&self) -> Option<u16> {
        match &self.reply {
            Reply::Status(r) => Some(r.status),
            Reply::SilentClose | Reply::NoResponse => None,
        }
    }
}

/// Runs ESP-IDF's checks on a request for the WebSocket path.
pub(crate) fn decide(head: &RequestHead, ws: &WsSettings, profile: &Profile) -> Decision {
    if head.method != "GET" {
        return Decision::Reject(Rejection::new(
            format!("method {} not allowed", head.method),
            Reply::Status(EspResponse::html(
                405,
                "Method Not Allowed",
                "Specified method is invalid for this resource",
            )),
        ));
    }
    let Some(upgrade) = head.header("upgrade").map(str::trim) else {
        return Decision::Reject(Rejection::new(
            "no Upgrade header: handler ran as a plain GET and sent nothing",
            Reply::NoResponse,
        ));
    };
    if !upgrade.eq_ignore_ascii_case("websocket") {
        let body = if profile.modern_error_bodies {
            "Bad request syntax"
        } else {
            "Server unable to understand request due to invalid syntax"
        };
        return Decision::Reject(Rejection::new(
            format!("Upgrade header is {upgrade:?}, not websocket"),
            Reply::Status(EspResponse::html(400, "Bad Request", body)),
        ));
    }
    let strict = profile.handshake_rejection == HandshakeRejection::Status;
    let reject = |reason: String, status: EspResponse| {
        Decision::Reject(Rejection::new(
            reason,
            if strict {
                Reply::Status(status)
            } else {
                Reply::SilentClose
            },
        ))
    };

    match head.header("sec-websocket-version").map(str::trim) {
        None => {
            return reject(
                "missing Sec-WebSocket-Version".to_owned(),
                EspResponse::html(400, "Bad Request", "Missing Sec-WebSocket-Version header"),
            );
        }
        Some("13") => {}
        Some(other) => {
            return reject(
                format!("unsupported Sec-WebSocket-Version {other:?}"),
                EspResponse::html(426, "Upgrade Required", "WebSocket version not supported")
                    .header("Sec-WebSocket-Version", "13"),
            );
        }
    }

    let key_error = EspResponse::html(400, "Bad Request", "Missing Sec-WebSocket-Key header");
    let key = match head.header("sec-websocket-key").map(str::trim) {
        None => return reject("missing Sec-WebSocket-Key".to_owned(), key_error),
        Some(k) if k.len() > MAX_KEY_LEN => {
            return reject(
                format!(
                    "Sec-WebSocket-Key is {} chars, over ESP-IDF's {MAX_KEY_LEN}",
                    k.len()
                ),
                key_error,
            );
        }
        Some(k) if strict && !is_base64_of_16_bytes(k) => {
            return reject(
                "Sec-WebSocket-Key is not base64 of 16 bytes".to_owned(),
                key_error,
            );
        }
        Some(k) => k,
    };

    let subprotocol = ws
        .subprotocol
        .as_deref()
        .filter(|supported| offers(head, supported))
        .map(str::to_owned);
    Decision::Upgrade(Accept {
        response: switching_protocols(key, subprotocol.as_deref()),
        subprotocol,
        token: token(head),
        key: key.to_owned(),
    })
}

/// The `101` exactly as `httpd_ws_respond_server_handshake` builds it (no extensions, ever).
pub(crate) fn switching_protocols(key: &str, subprotocol: Option<&str>) -> Vec<u8> {
    response_101(&derive_accept_key(key.as_bytes()), subprotocol, true)
}

/// A `101` in ESP-IDF's layout with the given `Sec-WebSocket-Accept` value, with or without the
/// `Upgrade: websocket` line (the handshake faults `bad_accept` and `missing_upgrade_header`).
pub(crate) fn response_101(accept: &str, subprotocol: Option<&str>, upgrade: bool) -> Vec<u8> {
    let mut out = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    if upgrade {
        out.push_str("Upgrade: websocket\r\n");
    }
    out.push_str("Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.push_str(accept);
    out.push_str("\r\n");
    if let Some(p) = subprotocol {
        out.push_str("Sec-WebSocket-Protocol: ");
        out.push_str(p);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Whether the client's `Sec-WebSocket-Protocol` offer names `supported`, read the way ESP-IDF
/// does: truncated to 49 bytes, split on `", "`, compared exactly.
fn offers(head: &RequestHead, supported: &str) -> bool {
    let Some(offer) = head.header("sec-websocket-protocol") else {
        return false;
    };
    let mut end = offer.len().min(MAX_SUBPROTOCOL_OFFER);
    while !offer.is_char_boundary(end) {
        end -= 1;
    }
    offer[..end].split(", ").any(|p| p == supported)
}

/// The app's token from `Authorization: Bearer <t>` or `?token=<t>` (header first).
fn token(head: &RequestHead) -> Option<String> {
    let bearer = head.header("authorization").and_then(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_owned())
    });
    bearer.or_else(|| head.query_param("token").map(str::to_owned))
}

/// `HTTPD_WS_STRICTER_RFC6455`'s key check: base64 that decodes to exactly 16 bytes, i.e. 22
/// alphabet characters (the last with its low 4 bits zero) and `==`.
fn is_base64_of_16_bytes(key: &str) -> bool {
    let b = key.as_bytes();
    let alphabet = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    b.len() == 24
        && b[..22].iter().all(alphabet)
        && matches!(b[21], b'A' | b'Q' | b'g' | b'w')
        && &b[22..] == b"=="
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        RequestHead {
            method: method.into(),
            target: target.into(),
            path,
            query,
            minor_version: 1,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn upgrade(extra: &[(&str, &str)]) -> RequestHead {
        let mut h = vec![
            ("Host", "192.168.4.1"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ];
        h.extend_from_slice(extra);
        head("GET", "/ws", &h)
    }

    #[test]
    fn rfc6455_sample_key_gets_the_exact_esp_idf_101() {
        let Decision::Upgrade(a) =
            decide(&upgrade(&[]), &WsSettings::default(), &Profile::default())
        else {
            panic!("expected an upgrade");
        };
        assert_eq!(
            String::from_utf8(a.response).expect("ascii"),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        assert_eq!(a.subprotocol, None);
    }

    #[test]
    fn subprotocol_is_echoed_only_when_offered() {
        let ws = WsSettings {
            subprotocol: Some("espsim.v1".into()),
            ..WsSettings::default()
        };
        let p = Profile::default();
        let offered = upgrade(&[("Sec-WebSocket-Protocol", "chat, espsim.v1")]);
        let Decision::Upgrade(a) = decide(&offered, &ws, &p) else {
            panic!("expected an upgrade");
        };
        assert_eq!(a.subprotocol.as_deref(), Some("espsim.v1"));
        assert!(
            String::from_utf8_lossy(&a.response)
                .ends_with("\r\nSec-WebSocket-Protocol: espsim.v1\r\n\r\n")
        );
        // ESP splits on ", " only: "chat,espsim.v1" is one unknown token.
        let glued = upgrade(&[("Sec-WebSocket-Protocol", "chat,espsim.v1")]);
        let Decision::Upgrade(a) = decide(&glued, &ws, &p) else {
            panic!("still an upgrade without the header");
        };
        assert_eq!(a.subprotocol, None);
    }

    #[test]
    fn key_of_28_chars_is_rejected_silently_or_with_400() {
        let long = upgrade(&[]);
        let mut long = long;
        long.headers[3].1 = "A".repeat(28);
        let Decision::Reject(r) = decide(&long, &WsSettings::default(), &Profile::default()) else {
            panic!("expected a rejection");
        };
        assert_eq!(r.reply, Reply::SilentClose);
        let Decision::Reject(r) =
            decide(&long, &WsSettings::default(), &Profile::ESP_IDF_V6_1_STRICT)
        else {
            panic!("expected a rejection");
        };
        assert_eq!(r.status(), Some(400));
    }

    #[test]
    fn strict_mode_checks_the_key_is_16_bytes_of_base64() {
        assert!(is_base64_of_16_bytes(KEY));
        assert!(!is_base64_of_16_bytes("dGhlIHNhbXBsZSBub25jZR=="));
        assert!(!is_base64_of_16_bytes("short"));
    }

    #[test]
    fn bearer_header_wins_over_query_token() {
        let h = head("GET", "/ws?token=q", &[("Authorization", "Bearer  h ")]);
        assert_eq!(token(&h).as_deref(), Some("h"));
        let h = head("GET", "/ws?x=1&token=q", &[]);
        assert_eq!(token(&h).as_deref(), Some("q"));
    }
}
