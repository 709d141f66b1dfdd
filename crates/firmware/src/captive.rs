//! What the chip's HTTP port answers: the captive-portal table of a bare-metal (`esp-hal` +
//! `edge-http`) build, byte for byte as ESP-IDF's `esp_http_server` frames it.
//!
//! The ESP32-C3 entry point (`esp32c3/`) parses a request head with `edge-http`, then asks
//! [`route`] what to send and writes [`Answer::to_bytes`] itself, so the wire bytes are the ones
//! the emulator sends in `captive` mode with the `esp-hal-edge` profile (compared by the
//! emulator test `c3_answers`). The emulator builds its responses from the same pieces —
//! [`Answer`] and its framing, [`Portal`]'s page, [`redirect_to_portal`], [`HttpError`]'s
//! pages — so the two cannot drift apart in framing or wording. The chip has no uplink, so it always behaves like the emulator's
//! `captive` internet mode: `GET /` is the portal page, the WebSocket path upgrades, and every
//! other `GET` — every OS connectivity check included — is redirected to `/`.
//!
//! [`EDGE_LIMITS`] are the numbers the chip enforces (sockets, header bytes, message size); the
//! emulator's `esp-hal-edge` profile repeats them and a test keeps the two equal.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The softAP address (ESP-IDF's default, kept on the C3 so apps see the same device).
pub const AP_ADDRESS: [u8; 4] = [192, 168, 4, 1];

/// The WebSocket endpoint.
pub const WS_PATH: &str = "/ws";

/// The captive redirect's body ("iOS requires content in the response to detect a captive
/// portal", ESP-IDF `captive_portal` example).
pub const REDIRECT_BODY: &str = "Redirect to the captive portal";

/// The limits the bare-metal HTTP/WebSocket server enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request-target (`414` above).
    pub max_uri_len: usize,
    /// All header lines together, after the request line (`431` above).
    pub max_req_hdr_len: usize,
    /// Most header lines (`edge-http` parses into a fixed array; `431` above). ESP-IDF has no
    /// count limit, only the byte limit.
    pub max_headers: usize,
    /// Concurrent HTTP/WebSocket connections (one listening socket each; a connection beyond
    /// them finds no listener and is refused by the TCP stack).
    pub max_open_sockets: usize,
    /// Largest WebSocket message read; a larger frame closes the connection with 1009.
    pub max_ws_message: usize,
    /// How long a started request head may take before the connection is closed (`408`).
    pub recv_timeout_ms: u64,
}

/// The C3 build's limits. RAM decides them: each socket holds a 1.5 KiB receive and transmit
/// buffer plus a head buffer, and the chip has 400 KiB of RAM shared with the Wi-Fi driver.
pub const EDGE_LIMITS: Limits = Limits {
    max_uri_len: 512,
    max_req_hdr_len: 1024,
    max_headers: 24,
    max_open_sockets: 4,
    max_ws_message: espsim_protocol::MAX_MESSAGE_SIZE,
    recv_timeout_ms: 5_000,
};

/// Bytes the head buffer needs: the longest request line plus the longest header block that
/// [`check_head`] lets through (each at most [`Limits::scratch`]).
pub const HEAD_BUFFER: usize = 2 * EDGE_LIMITS.scratch();
// The longest accepted request line plus the longest accepted header block fit.
const _: () = assert!(HEAD_BUFFER >= (EDGE_LIMITS.scratch() - 1) + EDGE_LIMITS.scratch());

/// One HTTP response as `esp_http_server` puts it on the wire. The emulator frames every
/// response with this type too, so the chip and the emulator cannot drift apart in framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Reason phrase, spelled as ESP-IDF spells it.
    pub reason: Cow<'static, str>,
    /// `Content-Type`.
    pub content_type: Cow<'static, str>,
    /// Headers after `Content-Length`, in order.
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A `text/html` response (ESP-IDF's default content type) with no extra headers.
    pub fn html(status: u16, reason: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Answer {
            status,
            reason: Cow::Borrowed(reason),
            content_type: Cow::Borrowed("text/html"),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The same response with a `text/plain` content type (`httpd_resp_set_type`).
    pub fn plain(mut self) -> Self {
        self.content_type = Cow::Borrowed("text/plain");
        self
    }

    /// Adds a header after `Content-Length` (`httpd_resp_set_hdr`, sent in the order set).
    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The exact bytes: status line, `Content-Type`, `Content-Length`, the headers, the body
    /// (no `Date`, `Server` or `Connection`, like `httpd_resp_send`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// An error the server answers with ESP-IDF's built-in page (v5.1+ wording), then closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The head does not parse.
    BadRequest,
    /// A method other than `GET` on `/` or the WebSocket path.
    MethodNotAllowed,
    /// The head did not arrive within [`Limits::recv_timeout_ms`].
    RequestTimeout,
    /// The request-target is longer than [`Limits::max_uri_len`].
    UriTooLong,
    /// The header lines exceed [`Limits::max_req_hdr_len`] or [`Limits::max_headers`].
    HeaderFieldsTooLarge,
    /// An HTTP version other than 1.0 / 1.1.
    VersionNotSupported,
}

impl HttpError {
    /// The status code and ESP-IDF's reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HttpError::BadRequest => (400, "Bad Request"),
            HttpError::MethodNotAllowed => (405, "Method Not Allowed"),
            HttpError::RequestTimeout => (408, "Request Timeout"),
            HttpError::UriTooLong => (414, "URI Too Long"),
            HttpError::HeaderFieldsTooLarge => (431, "Request Header Fields Too Large"),
            HttpError::VersionNotSupported => (505, "Version Not Supported"),
        }
    }

    /// The page's body in ESP-IDF v5.1+ wording (the emulator's older profiles reword some).
    pub fn body(self) -> &'static str {
        match self {
            HttpError::BadRequest => "Bad request syntax",
            HttpError::MethodNotAllowed => "Specified method is invalid for this resource",
            HttpError::RequestTimeout => "Server closed this connection",
            HttpError::UriTooLong => "URI is too long",
            HttpError::HeaderFieldsTooLarge => "Header fields are too long",
            HttpError::VersionNotSupported => "HTTP version not supported by server",
        }
    }

    /// The page, as `httpd_resp_send_err` sends it.
    pub fn answer(self) -> Answer {
        let (status, reason) = self.status();
        Answer::html(status, reason, self.body())
    }
}

impl Limits {
    /// ESP-IDF's scratch buffer (`max(max_req_hdr_len, max_uri_len) + 1`): the request line (and
    /// one byte after it) must fit, then, reusing it, all header lines up to the blank line.
    pub const fn scratch(&self) -> usize {
        if self.max_req_hdr_len > self.max_uri_len {
            self.max_req_hdr_len + 1
        } else {
            self.max_uri_len + 1
        }
    }
}

/// Checks a parsed head against `limits`, counting as `esp_http_server` counts
/// (`httpd_parse.c`): `request_line` is the request line's length with its CRLF, `target` the
/// request-target, `header_block` the header lines' length up to and including the blank line.
pub fn check_head(
    request_line: usize,
    target: &str,
    header_block: usize,
    header_count: usize,
    limits: &Limits,
) -> Result<(), HttpError> {
    if target.len() > limits.max_uri_len || request_line >= limits.scratch() {
        return Err(HttpError::UriTooLong);
    }
    if header_block > limits.scratch() || header_count > limits.max_headers {
        return Err(HttpError::HeaderFieldsTooLarge);
    }
    Ok(())
}

/// Whether a request has a body (`Transfer-Encoding`, or a non-zero `Content-Length`). The C3
/// server does not read bodies, so it closes the connection after answering such a request
/// instead of parsing the body as the next request.
pub fn has_body(headers: &[(&str, &str)]) -> bool {
    headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding")
            || (n.eq_ignore_ascii_case("content-length") && v.trim() != "0")
    })
}

/// What the portal page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal<'a> {
    /// The device's IP, e.g. `192.168.4.1`.
    pub device_ip: &'a str,
    /// The emulator profile that models this build (`esp-hal-edge`).
    pub profile: &'a str,
    /// The WebSocket URL an app should use.
    pub ws_url: &'a str,
}

impl Portal<'_> {
    /// The portal page (`GET /`), the same page the emulator serves in `captive` mode.
    pub fn page(&self) -> Answer {
        self.page_for("captive")
    }

    /// The portal page naming the internet mode `internet` (the emulator's page, which also
    /// shows `online`; the chip has no uplink and always shows `captive`), `200 OK` `text/html`.
    pub fn page_for(&self, internet: &str) -> Answer {
        let body = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>ESP32 device</title></head>\n<body>\n<h1>ESP32 device (espsim)</h1>\n\
             <p>You are connected to the device's access point.</p>\n<ul>\n\
             <li>Device IP: {ip}</li>\n<li>Profile: {profile}</li>\n<li>Internet: {internet}</li>\n\
             <li>WebSocket: <code>{ws}</code></li>\n</ul>\n</body></html>\n",
            ip = escape(self.device_ip),
            profile = escape(self.profile),
            internet = escape(internet),
            ws = escape(self.ws_url),
        );
        Answer::html(200, "OK", body)
    }
}

/// Minimal HTML escaping for text content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The captive-portal example's 404 handler: `302 Temporary Redirect` to `/`, keep-alive.
pub fn captive_redirect() -> Answer {
    redirect_to_portal(302, "Temporary Redirect")
}

/// The captive redirect with `status` and `reason` (ESP-IDF releases differ: the emulator's
/// profiles choose 302 or 303): `Location: /` and [`REDIRECT_BODY`].
pub fn redirect_to_portal(status: u16, reason: &'static str) -> Answer {
    Answer::html(status, reason, REDIRECT_BODY).header("Location", "/")
}

/// The routing decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET` on the WebSocket path: hand the connection to the WebSocket upgrade.
    WebSocket,
    /// Send `answer`; close the connection after it when `close` (error pages).
    Reply {
        /// The response.
        answer: Answer,
        /// Close after sending (ESP-IDF's default error handler fails the request).
        close: bool,
    },
}

/// Routes one request by method and request-target (the query is ignored, as ESP-IDF's URI
/// matcher ignores it). `Host` plays no part: every connectivity check is just another path.
pub fn route(method: &str, target: &str, portal: &Portal<'_>) -> Route {
    let path = target.split('?').next().unwrap_or(target);
    let get = method == "GET";
    let refuse = || Route::Reply {
        answer: HttpError::MethodNotAllowed.answer(),
        close: true,
    };
    if path == WS_PATH {
        return if get { Route::WebSocket } else { refuse() };
    }
    if path == "/" {
        return if get {
            Route::Reply {
                answer: portal.page(),
                close: false,
            }
        } else {
            refuse()
        };
    }
    Route::Reply {
        answer: captive_redirect(),
        close: false,
    }
}

/// `char sec_key_encoded[28]` in ESP-IDF's `httpd_ws.c`: a longer key fails the handshake.
pub const MAX_WS_KEY_LEN: usize = 27;

/// What ESP-IDF's WebSocket handshake checks decide for a `GET` on the WebSocket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Switch protocols: send [`switching_protocols`] for `key`, then speak WebSocket.
    Upgrade {
        /// The client's `Sec-WebSocket-Key` (the accept value is derived from it).
        key: String,
        /// The app's token from `Authorization: Bearer` or `?token=` (header first).
        token: Option<String>,
    },
    /// No `Upgrade` header: the handler ran as a plain `GET` and sent nothing.
    NoResponse,
    /// `Upgrade` is not `websocket`: `400`, then close.
    BadRequest,
    /// Missing or wrong `Sec-WebSocket-Version`, missing or over-long key: the socket is closed
    /// with no bytes written (ESP-IDF up to v6.0).
    SilentClose,
}

/// Runs the handshake checks on a request's target and headers (names case-insensitive), in
/// ESP-IDF's order: `Upgrade`, `Sec-WebSocket-Version`, `Sec-WebSocket-Key`.
pub fn handshake<'a>(target: &str, headers: &[(&'a str, &'a str)]) -> Handshake {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let Some(upgrade) = header("upgrade") else {
        return Handshake::NoResponse;
    };
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Handshake::BadRequest;
    }
    if header("sec-websocket-version") != Some("13") {
        return Handshake::SilentClose;
    }
    let key = match header("sec-websocket-key") {
        Some(k) if k.len() <= MAX_WS_KEY_LEN => k,
        _ => return Handshake::SilentClose,
    };
    let bearer = header("authorization").and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| String::from(rest.trim()))
    });
    let query_token = || {
        let (_, query) = target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == "token").then(|| String::from(v))
        })
    };
    Handshake::Upgrade {
        key: String::from(key),
        token: bearer.or_else(query_token),
    }
}

/// The `101` exactly as `httpd_ws_respond_server_handshake` builds it, for the
/// `Sec-WebSocket-Accept` value `accept` (no subprotocol, no extensions).
pub fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// The OS connectivity checks (host, path) a phone or laptop sends when it joins the softAP.
/// The chip redirects each to the portal, so every OS offers its sign-in sheet; the emulator
/// test `c3_answers` sends each one to the emulator and asserts the same bytes and that the
/// emulator recognizes it as that OS's check.
pub const CONNECTIVITY_CHECKS: &[(&str, &str)] = &[
    ("connectivitycheck.gstatic.com", "/generate_204"),
    ("www.google.com", "/gen_204"),
    ("clients3.google.com", "/generate_204"),
    ("connectivitycheck.android.com", "/generate_204"),
    ("connect.rom.miui.com", "/generate_204"),
    ("connectivitycheck.platform.hicloud.com", "/generate_204"),
    ("www.gstatic.com", "/generate_204"),
    ("captive.apple.com", "/hotspot-detect.html"),
    ("www.apple.com", "/library/test/success.html"),
    ("www.msftconnecttest.com", "/connecttest.txt"),
    ("www.msftncsi.com", "/ncsi.txt"),
    ("detectportal.firefox.com", "/canonical.html"),
    ("detectportal.firefox.com", "/success.txt"),
    ("nmcheck.gnome.org", "/check_network_status.txt"),
    ("connectivity-check.ubuntu.com", "/"),
];

/// A WebSocket close frame's payload: the code (big-endian), then the reason cut to 123 bytes
/// on a character boundary (a control frame carries at most 125 bytes).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTAL: Portal<'static> = Portal {
        device_ip: "192.168.4.1",
        profile: "esp-hal-edge",
        ws_url: "ws://192.168.4.1/ws",
    };

    fn reply(route: Route) -> (Answer, bool) {
        match route {
            Route::Reply { answer, close } => (answer, close),
            Route::WebSocket => panic!("expected a reply"),
        }
    }

    #[test]
    fn every_connectivity_check_is_redirected_and_kept_alive() {
        for (host, path) in CONNECTIVITY_CHECKS {
            let (answer, close) = reply(route("GET", path, &PORTAL));
            if *path == "/" {
                assert_eq!(answer.status, 200, "{host}{path}");
                continue;
            }
            assert!(!close, "{host}{path}");
            assert_eq!(
                answer.to_bytes(),
                b"HTTP/1.1 302 Temporary Redirect\r\nContent-Type: text/html\r\nContent-Length: 30\r\nLocation: /\r\n\r\nRedirect to the captive portal",
                "{host}{path}"
            );
        }
    }

    #[test]
    fn ws_path_and_root_accept_only_get() {
        assert_eq!(route("GET", "/ws?token=x", &PORTAL), Route::WebSocket);
        let (post, close) = reply(route("POST", "/ws", &PORTAL));
        assert_eq!((post.status, close), (405, true));
        let (root, close) = reply(route("GET", "/?x=1", &PORTAL));
        assert_eq!((root.status, close), (200, false));
        let body = String::from_utf8(root.body).expect("utf-8");
        assert!(body.contains("Profile: esp-hal-edge"), "{body}");
        // Apple's check looks for "Success": the page must never contain it.
        assert!(!body.contains("Success"));
        let (slash, _) = reply(route("GET", "/ws/", &PORTAL));
        assert_eq!(slash.status, 302);
        let (put_root, close) = reply(route("PUT", "/", &PORTAL));
        assert_eq!((put_root.status, close), (405, true));
    }

    #[test]
    fn head_limits_give_414_and_431() {
        let l = EDGE_LIMITS;
        assert_eq!(l.scratch(), 1025);
        let long = "/".repeat(l.max_uri_len + 1);
        assert_eq!(check_head(10, &long, 0, 0, &l), Err(HttpError::UriTooLong));
        assert_eq!(check_head(1024, "/", 2, 0, &l), Ok(()));
        assert_eq!(check_head(1025, "/", 2, 0, &l), Err(HttpError::UriTooLong));
        assert_eq!(check_head(16, &long[1..], 1025, l.max_headers, &l), Ok(()));
        assert_eq!(
            check_head(16, "/", 1026, 1, &l),
            Err(HttpError::HeaderFieldsTooLarge)
        );
        assert_eq!(
            check_head(16, "/", 10, l.max_headers + 1, &l),
            Err(HttpError::HeaderFieldsTooLarge)
        );
        assert_eq!(
            HttpError::HeaderFieldsTooLarge.answer().to_bytes(),
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/html\r\nContent-Length: 26\r\n\r\nHeader fields are too long"
        );
    }

    #[test]
    fn close_payload_is_cut_on_a_char_boundary() {
        assert_eq!(close_payload(1008, "unauthorized"), b"\x03\xf0unauthorized");
        let long = "é".repeat(100);
        let p = close_payload(1000, &long);
        assert_eq!(p.len(), 2 + 122);
        assert!(core::str::from_utf8(&p[2..]).is_ok());
    }

    #[test]
    fn handshake_checks_follow_esp_idf_order() {
        let ok = [
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Authorization", "Bearer s3cret"),
        ];
        assert_eq!(
            handshake("/ws?token=other", &ok),
            Handshake::Upgrade {
                key: String::from("dGhlIHNhbXBsZSBub25jZQ=="),
                token: Some(String::from("s3cret")),
            }
        );
        assert_eq!(
            handshake("/ws?a=1&token=q", &ok[..3]),
            Handshake::Upgrade {
                key: String::from("dGhlIHNhbXBsZSBub25jZQ=="),
                token: Some(String::from("q")),
            }
        );
        assert_eq!(handshake("/ws", &[]), Handshake::NoResponse);
        assert_eq!(
            handshake("/ws", &[("upgrade", "h2c")]),
            Handshake::BadRequest
        );
        assert_eq!(handshake("/ws", &ok[..1]), Handshake::SilentClose);
        let v8 = [ok[0], ("Sec-WebSocket-Version", "8"), ok[2]];
        assert_eq!(handshake("/ws", &v8), Handshake::SilentClose);
        let key28 = "x".repeat(MAX_WS_KEY_LEN + 1);
        let long = [ok[0], ok[1], ("Sec-WebSocket-Key", key28.as_str())];
        assert_eq!(handshake("/ws", &long), Handshake::SilentClose);
        assert_eq!(
            switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn requests_with_a_body_are_recognized() {
        assert!(!has_body(&[("Host", "x")]));
        assert!(!has_body(&[("content-length", " 0 ")]));
        assert!(has_body(&[("Content-Length", "12")]));
        assert!(has_body(&[("Transfer-Encoding", "chunked")]));
    }
}
