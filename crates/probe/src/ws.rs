//! Layer `websocket`: the upgrade, written and read by hand (httparse) so that every way it can
//! go wrong is seen as it happened on the wire — refused, reset, closed before the header,
//! non-101, bad accept — and mapped to its likely ESP32 cause. A good `101` hands the socket
//! (and any bytes read past the head) to tokio-tungstenite for the next layers.

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::http::{self, ReadError, Response};
use super::net::{BoxIo, Dialer, OpenError, TcpOutcome, is_reset};
use super::target::Target;
use super::{Details, LayerResult, LayerVerdict};

/// ESP-IDF ≤ v5.4's `HTTPD_MAX_REQ_HDR_LEN`.
const ESP_HEADER_LIMIT: usize = 512;

const RESET_HINT: &str = "the device reset the connection: it ran out of sockets or memory, \
     purged this socket (lru_purge_enable closes the oldest), or crashed";

/// The known shapes of an upgrade attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WsOutcome {
    /// `101` with a valid accept.
    Upgraded,
    /// Connection refused.
    Refused,
    /// Connect or TLS failed another way.
    ConnectFailed,
    /// RST instead of (or in the middle of) a response.
    Reset,
    /// FIN before the end of the response head.
    ClosedBeforeHeaders,
    /// Nothing came back within the timeout.
    NoResponse,
    /// A complete response other than `101`.
    #[serde(rename = "non_101")]
    Non101,
    /// `101` with a missing or wrong `Sec-WebSocket-Accept` (or missing `Upgrade`/`Connection`).
    BadAccept,
    /// Bytes that are not HTTP.
    Malformed,
}

/// Layer facts.
#[derive(Debug, Clone, Serialize)]
pub struct WsDetails {
    /// The shape.
    pub outcome: WsOutcome,
    /// Size of the request's header lines (ESP-IDF ≤ v5.4 allows 512 bytes).
    pub request_header_bytes: usize,
    /// Status received.
    pub status: Option<u16>,
    /// Reason phrase.
    pub reason: Option<String>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// Start of a non-101 body.
    pub body: Option<String>,
    /// Accept expected for our key.
    pub expected_accept: String,
    /// Accept received.
    pub accept: Option<String>,
    /// Subprotocol offered.
    pub subprotocol_offered: Option<String>,
    /// Subprotocol the server chose.
    pub subprotocol: Option<String>,
    /// `Sec-WebSocket-Extensions` received (ESP-IDF never sends any).
    pub extensions: Option<String>,
    /// The socket error, if any.
    pub error: Option<String>,
    /// What a Dart app reports for this shape.
    pub dart_error: Option<String>,
}

/// A successful upgrade, ready for framing.
#[derive(Debug)]
pub(crate) struct Upgraded {
    io: BoxIo,
    leftover: Vec<u8>,
}

impl Upgraded {
    pub(crate) async fn into_socket(self) -> WebSocketStream<BoxIo> {
        WebSocketStream::from_partially_read(self.io, self.leftover, Role::Client, None).await
    }
}

fn request(target: &Target, key: &str, subprotocol: Option<&str>) -> (String, usize) {
    let mut headers = format!(
        "Host: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        target.host_header()
    );
    if let Some(p) = subprotocol {
        headers.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    headers.push_str("User-Agent: espsim-probe\r\n\r\n");
    let size = headers.len();
    (
        format!("GET {} HTTP/1.1\r\n{headers}", target.request_target()),
        size,
    )
}

fn non_101_hint(r: &Response, target: &Target) -> String {
    let slash = if target.path.len() > 1 && target.path.ends_with('/') {
        format!(
            " — the URL ends in `/`: try `{}`",
            target.path.trim_end_matches('/')
        )
    } else {
        String::new()
    };
    match r.status {
        301 | 302 | 303 | 307 | 308 => format!(
            "the captive portal's 404 handler redirected (Location: {}): no WebSocket handler is \
             registered at `{}` (ESP-IDF matches the path exactly){slash}",
            r.header("location").unwrap_or("?"),
            target.path
        ),
        404 => format!(
            "no handler at `{}`: ESP-IDF matches the path exactly (query excluded), so check the \
             URI the firmware registers{slash}",
            target.path
        ),
        431 => format!(
            "request headers over the device's limit: ESP-IDF ≤ v5.4 allows {ESP_HEADER_LIMIT} \
             bytes of header lines (1024 from v5.5); drop cookies/custom headers or raise \
             CONFIG_HTTPD_MAX_REQ_HDR_LEN"
        ),
        414 => "URI over 512 bytes (CONFIG_HTTPD_MAX_URI_LEN)".to_owned(),
        400 => {
            "ESP-IDF refused the upgrade: `Upgrade` not `websocket`, WebSocket support disabled \
                (CONFIG_HTTPD_WS_SUPPORT), or with HTTPD_WS_STRICTER_RFC6455 a bad key/missing Host"
                .to_owned()
        }
        426 => "the device wants Sec-WebSocket-Version 13".to_owned(),
        405 => "the handler is not registered for GET".to_owned(),
        401 | 403 => {
            "the device wants a token: pass --token (Authorization: Bearer, ?token=)".to_owned()
        }
        200 => {
            "the URI is registered without `.is_websocket = true`: ESP-IDF ignored the upgrade and \
                ran the handler as a plain GET"
                .to_owned()
        }
        s if s >= 500 => {
            "the device failed internally (out of memory or a handler error)".to_owned()
        }
        _ => "the device answered but did not switch protocols".to_owned(),
    }
}

/// Layer `websocket`: the upgrade on a fresh connection.
pub(crate) async fn probe(
    dial: &Dialer,
    target: &Target,
    subprotocol: Option<&str>,
) -> (LayerResult, Option<Upgraded>) {
    let key = generate_key();
    let expected = derive_accept_key(key.as_bytes());
    let (req, header_bytes) = request(target, &key, subprotocol);
    let mut d = WsDetails {
        outcome: WsOutcome::Upgraded,
        request_header_bytes: header_bytes,
        status: None,
        reason: None,
        location: None,
        body: None,
        expected_accept: expected.clone(),
        accept: None,
        subprotocol_offered: subprotocol.map(str::to_owned),
        subprotocol: None,
        extensions: None,
        error: None,
        dart_error: None,
    };
    // Dart rebuilds ws://host/path as http://host:0/path (no default port for ws).
    let uri = format!(
        "{}://{}:{}{}",
        match target.scheme {
            super::target::Scheme::Ws => "http",
            super::target::Scheme::Wss => "https",
        },
        target.url_host(),
        target.explicit_port.unwrap_or(0),
        target.request_target()
    );
    let fail = |mut d: WsDetails, outcome, summary: String, hint: String, dart: Option<String>| {
        d.outcome = outcome;
        d.dart_error = dart;
        (
            LayerResult::new(LayerVerdict::Fail, summary)
                .hint(hint)
                .details(Details::Websocket(d)),
            None,
        )
    };
    let mut io = match dial.open().await {
        Ok(io) => io,
        Err(e) => {
            d.error = Some(e.describe());
            let (outcome, hint) = match &e {
                OpenError::Connect(TcpOutcome::Refused, _) => (
                    WsOutcome::Refused,
                    "the device stopped listening between layers: it rebooted or its server \
                     stopped",
                ),
                _ => (
                    WsOutcome::ConnectFailed,
                    "a new connection could not be opened: the device's sockets may all be in use",
                ),
            };
            return fail(
                d,
                outcome,
                format!("connect: {}", e.describe()),
                hint.to_owned(),
                None,
            );
        }
    };
    let deadline = Instant::now() + dial.timeout;
    let write = async {
        io.write_all(req.as_bytes()).await?;
        io.flush().await
    };
    if let Ok(Err(e)) = tokio::time::timeout_at(deadline, write).await {
        d.error = Some(e.to_string());
        // A reset that arrives before the request is written shows up on the write.
        let (outcome, hint, dart) = if is_reset(&e) {
            (
                WsOutcome::Reset,
                RESET_HINT,
                Some(format!(
                    "HttpException: Connection reset by peer, uri = {uri}"
                )),
            )
        } else {
            (
                WsOutcome::ConnectFailed,
                "the connection broke while sending the request",
                None,
            )
        };
        return fail(
            d,
            outcome,
            format!("writing the upgrade failed: {e}"),
            hint.to_owned(),
            dart,
        );
    }
    let (mut response, leftover) = match http::read_head(&mut io, deadline).await {
        Ok(r) => r,
        Err(e) => {
            d.error = Some(e.describe());
            return match e {
                ReadError::Closed { bytes } => fail(
                    d,
                    WsOutcome::ClosedBeforeHeaders,
                    format!(
                        "connection closed {} before a full response header",
                        if bytes == 0 {
                            "with no response".to_owned()
                        } else {
                            format!("after {bytes} bytes")
                        }
                    ),
                    if bytes == 0 {
                        "ESP-IDF ≤ v6.0 closes silently when the upgrade fails its checks: \
                         `Sec-WebSocket-Version` missing or not 13, `Sec-WebSocket-Key` missing or \
                         over 27 characters. This probe sends a standard request, so look for a proxy \
                         or client library that rewrites it, or an LRU purge closing the socket \
                         (lru_purge_enable)".to_owned()
                    } else {
                        "the device closed mid-response: a crash/reboot or an LRU purge".to_owned()
                    },
                    Some(format!(
                        "HttpException: Connection closed before full header was received, uri = {uri}"
                    )),
                ),
                ReadError::Reset { bytes, .. } => fail(
                    d,
                    WsOutcome::Reset,
                    format!("connection reset after {bytes} bytes of response"),
                    RESET_HINT.to_owned(),
                    Some(format!(
                        "HttpException: Connection reset by peer, uri = {uri}"
                    )),
                ),
                ReadError::TimedOut { bytes } => fail(
                    d,
                    WsOutcome::NoResponse,
                    format!(
                        "no complete response within {:?} ({bytes} bytes)",
                        dial.timeout
                    ),
                    "the handler ran but sent nothing (a URI registered without is_websocket that \
                     returns ESP_OK without a response), or httpd is out of sockets; Dart waits \
                     forever here unless connectTimeout is set"
                        .to_owned(),
                    None,
                ),
                ReadError::Malformed(m) => fail(
                    d,
                    WsOutcome::Malformed,
                    format!("not an HTTP response: {m}"),
                    "something other than an HTTP server listens on this port".to_owned(),
                    None,
                ),
                ReadError::Io(e) => fail(
                    d,
                    WsOutcome::ConnectFailed,
                    format!("reading the response failed: {e}"),
                    "socket error".to_owned(),
                    None,
                ),
            };
        }
    };
    d.status = Some(response.status);
    d.reason = Some(response.reason.clone());
    d.location = response.header("location").map(str::to_owned);
    d.accept = response.header("sec-websocket-accept").map(str::to_owned);
    d.subprotocol = response.header("sec-websocket-protocol").map(str::to_owned);
    d.extensions = response
        .header("sec-websocket-extensions")
        .map(str::to_owned);

    if response.status != 101 {
        // Read what body arrived already, for the report.
        response.body = leftover;
        d.body = Some(response.body_text(120));
        let hint = non_101_hint(&response, target);
        return fail(
            d,
            WsOutcome::Non101,
            format!("{} {} instead of 101", response.status, response.reason),
            hint,
            Some(format!(
                "WebSocketException: Connection to '{uri}#' was not upgraded to websocket, HTTP status code: {}",
                response.status
            )),
        );
    }
    let upgrade_ok = response
        .header("upgrade")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let connection_ok = response.header("connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    let accept = d.accept.clone();
    let bad = match accept.as_deref() {
        None => Some((
            "101 without Sec-WebSocket-Accept".to_owned(),
            "WebSocketException: Response did not contain a 'Sec-WebSocket-Accept' header"
                .to_owned(),
        )),
        Some(a) if a.trim() != expected => Some((
            format!("101 with a wrong Sec-WebSocket-Accept `{a}` (expected `{expected}`)"),
            if a.trim().len() == expected.len() {
                "WebSocketException: Bad response 'Sec-WebSocket-Accept' header".to_owned()
            } else {
                "WebSocketException: Response header 'Sec-WebSocket-Accept' is the wrong length"
                    .to_owned()
            },
        )),
        Some(_) if !upgrade_ok || !connection_ok => Some((
            "101 without `Upgrade: websocket` / `Connection: Upgrade`".to_owned(),
            format!("WebSocketException: Connection to '{uri}#' was not upgraded to websocket"),
        )),
        Some(_) => None,
    };
    if let Some((summary, dart)) = bad {
        return fail(
            d,
            WsOutcome::BadAccept,
            summary,
            "not ESP-IDF's handshake (it derives the accept from the key with SHA-1 as RFC 6455 \
             says): a proxy or a hand-written server answered; every client rejects this"
                .to_owned(),
            Some(dart),
        );
    }
    let mut warnings = Vec::new();
    match (subprotocol, d.subprotocol.as_deref()) {
        (Some(offered), None) => warnings.push(format!(
            "subprotocol `{offered}` not accepted: ESP-IDF echoes only the one its URI supports \
             (a browser then closes the connection)"
        )),
        (Some(offered), Some(got)) if offered != got => {
            warnings.push(format!("server chose `{got}`, not the offered `{offered}`"));
        }
        (None, Some(got)) => warnings.push(format!(
            "server chose subprotocol `{got}` that was not offered: browsers fail the connection"
        )),
        _ => {}
    }
    if header_bytes > ESP_HEADER_LIMIT {
        warnings.push(format!(
            "the request's header lines are {header_bytes} bytes, over ESP-IDF ≤ v5.4's {ESP_HEADER_LIMIT}"
        ));
    }
    let summary = format!(
        "101 Switching Protocols, accept valid{}",
        match &d.subprotocol {
            Some(p) => format!(", subprotocol {p}"),
            None => ", no subprotocol".to_owned(),
        }
    );
    let verdict = if warnings.is_empty() {
        LayerVerdict::Pass
    } else {
        LayerVerdict::Warn
    };
    let hint = (!warnings.is_empty()).then(|| warnings.join("; "));
    (
        LayerResult::new(verdict, summary)
            .maybe_hint(hint)
            .details(Details::Websocket(d)),
        Some(Upgraded { io, leftover }),
    )
}
