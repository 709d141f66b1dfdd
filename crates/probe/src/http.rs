//! Layer 5 (`GET /`) and the small HTTP/1.1 client the connectivity and WebSocket layers share:
//! write a request, read the head (httparse), read a `Content-Length` body. ESP-IDF keeps the
//! socket open after a response and ignores `Connection: close`, so a body is never read "until
//! EOF" when its length is known.

use std::io;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::net::{BoxIo, Dialer, OpenError, is_reset};
use super::target::Target;
use super::{Details, LayerResult, LayerVerdict};

/// Largest response head read (ESP-IDF's are a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;
/// Largest body kept.
const MAX_BODY: usize = 64 * 1024;

/// ESP-IDF's default error bodies (v5.1+ and v4.4 wording), to recognize the server.
const ESP_ERROR_BODIES: &[&str] = &[
    "Nothing matches the given URI",
    "This URI does not exist",
    "Specified method is invalid for this resource",
    "Header fields are too long",
    "URI is too long",
    "Bad request syntax",
    "Server unable to understand request due to invalid syntax",
    "Server does not support this method",
    "HTTP version not supported by server",
    "Server closed this connection",
    "Redirect to the captive portal",
];

/// A parsed response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// Headers in wire order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn body_text(&self, max: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(max) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text.to_owned(),
        }
    }
}

/// How reading a response failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// EOF before the blank line ending the head; `bytes` were received.
    Closed { bytes: usize },
    /// The peer reset the connection; `bytes` were received first.
    Reset { bytes: usize, error: io::Error },
    /// Nothing complete within the deadline.
    TimedOut { bytes: usize },
    /// Not HTTP.
    Malformed(String),
    /// Another socket error.
    Io(io::Error),
}

impl ReadError {
    pub(crate) fn describe(&self) -> String {
        match self {
            ReadError::Closed { bytes: 0 } => "closed with no response".to_owned(),
            ReadError::Closed { bytes } => {
                format!("closed after {bytes} bytes, before the end of the header")
            }
            ReadError::Reset { bytes, error } => format!("reset after {bytes} bytes ({error})"),
            ReadError::TimedOut { bytes: 0 } => "no response".to_owned(),
            ReadError::TimedOut { bytes } => format!("stalled after {bytes} bytes"),
            ReadError::Malformed(e) => format!("not an HTTP response: {e}"),
            ReadError::Io(e) => e.to_string(),
        }
    }
}

/// Reads a response head; returns it (empty body) and the bytes read past it.
pub(crate) async fn read_head(
    io: &mut BoxIo,
    deadline: Instant,
) -> Result<(Response, Vec<u8>), ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Err(_) => return Err(ReadError::TimedOut { bytes: buf.len() }),
            Ok(Err(e)) if is_reset(&e) => {
                return Err(ReadError::Reset {
                    bytes: buf.len(),
                    error: e,
                });
            }
            Ok(Err(e)) => return Err(ReadError::Io(e)),
            Ok(Ok(0)) => return Err(ReadError::Closed { bytes: buf.len() }),
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let response = Response {
                    status: parsed.code.unwrap_or(0),
                    reason: parsed.reason.unwrap_or("").to_owned(),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    body: Vec::new(),
                };
                return Ok((response, buf.split_off(len)));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(ReadError::Malformed(format!("head over {MAX_HEAD} bytes")));
            }
            Err(e) => return Err(ReadError::Malformed(e.to_string())),
        }
    }
}

/// Reads the body after `head`: `Content-Length` bytes, nothing for 1xx/204/304, else until EOF
/// or the deadline (a stall ends the body, it is not an error).
async fn read_body(
    io: &mut BoxIo,
    response: &mut Response,
    mut body: Vec<u8>,
    deadline: Instant,
) -> Result<(), ReadError> {
    let status = response.status;
    if status < 200 || status == 204 || status == 304 {
        return Ok(());
    }
    let length = response
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    let want = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut chunk = [0u8; 4096];
    while body.len() < want {
        match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Err(_) if length.is_none() => break,
            Err(_) => return Err(ReadError::TimedOut { bytes: body.len() }),
            Ok(Ok(0)) if length.is_none() => break,
            Ok(Ok(0)) => return Err(ReadError::Closed { bytes: body.len() }),
            Ok(Ok(n)) => body.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Ok(Err(e)) if is_reset(&e) && length.is_none() => break,
            Ok(Err(e)) => return Err(ReadError::Io(e)),
        }
    }
    body.truncate(want);
    response.body = body;
    Ok(())
}

/// Why an HTTP exchange failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    Open(OpenError),
    Write(io::Error),
    Read(ReadError),
}

impl ExchangeError {
    pub(crate) fn describe(&self) -> String {
        match self {
            ExchangeError::Open(e) => e.describe(),
            ExchangeError::Write(e) => format!("writing the request failed: {e}"),
            ExchangeError::Read(e) => e.describe(),
        }
    }
}

/// One `GET` on a fresh connection with the given `Host`.
pub(crate) async fn get(
    dial: &Dialer,
    host: &str,
    path: &str,
    user_agent: &str,
) -> Result<Response, ExchangeError> {
    let mut io = dial.open().await.map_err(ExchangeError::Open)?;
    let deadline = Instant::now() + dial.timeout;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let write = async {
        io.write_all(request.as_bytes()).await?;
        io.flush().await
    };
    match tokio::time::timeout_at(deadline, write).await {
        Err(_) => return Err(ExchangeError::Read(ReadError::TimedOut { bytes: 0 })),
        Ok(Err(e)) => return Err(ExchangeError::Write(e)),
        Ok(Ok(())) => {}
    }
    let (mut response, rest) = read_head(&mut io, deadline)
        .await
        .map_err(ExchangeError::Read)?;
    read_body(&mut io, &mut response, rest, deadline)
        .await
        .map_err(ExchangeError::Read)?;
    Ok(response)
}

/// Whether a response looks like ESP-IDF's `esp_http_server`, and why.
#[derive(Debug, Clone, Serialize)]
pub struct ServerLooks {
    /// `true` when every structural sign matches (no `Date`, no `Server`, `Content-Type` then
    /// `Content-Length` first).
    pub esp_idf: bool,
    /// The evidence, for and against.
    pub signs: Vec<String>,
}

/// Judges `response` against ESP-IDF's `httpd_send_resp` format (reference §2c).
pub(crate) fn looks(response: &Response) -> ServerLooks {
    let mut signs = Vec::new();
    let mut esp = true;
    match response.header("server") {
        Some(s) => {
            esp = false;
            signs.push(format!("Server: {s}"));
        }
        None => signs.push("no Server header".to_owned()),
    }
    if response.header("date").is_some() {
        esp = false;
        signs.push("has a Date header".to_owned());
    } else {
        signs.push("no Date header".to_owned());
    }
    let first: Vec<String> = response
        .headers
        .iter()
        .take(2)
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    if first == ["content-type", "content-length"] {
        signs.push("Content-Type then Content-Length".to_owned());
    } else if response.status != 101 {
        esp = false;
        signs.push(format!("header order {}", first.join(", ")));
    }
    let body = String::from_utf8_lossy(&response.body);
    if let Some(known) = ESP_ERROR_BODIES.iter().find(|b| body.trim() == **b) {
        signs.push(format!("ESP-IDF body `{known}`"));
    }
    ServerLooks {
        esp_idf: esp,
        signs,
    }
}

/// Layer HTTP facts.
#[derive(Debug, Clone, Serialize)]
pub struct HttpDetails {
    /// Status of `GET /`, when a response came.
    pub status: Option<u16>,
    /// Reason phrase.
    pub reason: Option<String>,
    /// Headers in wire order.
    pub headers: Vec<(String, String)>,
    /// Start of the body.
    pub body: Option<String>,
    /// Server fingerprint.
    pub server: Option<ServerLooks>,
    /// How the exchange failed, if it did.
    pub error: Option<String>,
}

/// Layer HTTP: `GET /` on a fresh connection.
pub(crate) async fn probe(dial: &Dialer, target: &Target) -> LayerResult {
    let mut details = HttpDetails {
        status: None,
        reason: None,
        headers: Vec::new(),
        body: None,
        server: None,
        error: None,
    };
    match get(dial, &target.host_header(), "/", "espsim-probe").await {
        Ok(response) => {
            let looks = looks(&response);
            let who = if looks.esp_idf {
                "looks like ESP-IDF httpd"
            } else {
                "not ESP-IDF httpd"
            };
            let summary = format!(
                "GET / → {} {} ({who}: {})",
                response.status,
                response.reason,
                looks.signs.join(", ")
            );
            details.status = Some(response.status);
            details.reason = Some(response.reason.clone());
            details.body = Some(response.body_text(200));
            details.headers = response.headers;
            details.server = Some(looks);
            LayerResult::new(LayerVerdict::Pass, summary).details(Details::Http(details))
        }
        Err(e) => {
            let text = e.describe();
            details.error = Some(text.clone());
            let out = match &e {
                ExchangeError::Read(ReadError::TimedOut { bytes }) => LayerResult::new(
                    LayerVerdict::Fail,
                    format!("GET /: {text} within {:?}", dial.timeout),
                )
                .hint(if *bytes == 0 {
                    "the device accepted the TCP connection but its HTTP server never answered: \
                     all of ESP-IDF httpd's sockets are in use (max_open_sockets 7; lwIP still \
                     completes handshakes for the backlog of 5), or the httpd task is blocked by a \
                     handler; apps hang here without a timeout (Dart has none by default)"
                } else {
                    "the response stalled mid-way: the device's send timed out or its task is blocked"
                }),
                // A server may close or reset a plain GET and still upgrade WebSockets: go on.
                _ => LayerResult::new(LayerVerdict::Warn, format!("GET /: {text}")).hint(
                    "no HTTP answer to `GET /`: ESP-IDF always answers (404 when `/` is not \
                     registered), so this is not a stock esp_http_server, or it is out of sockets \
                     and purging (lru_purge_enable)",
                ),
            };
            out.details(Details::Http(details))
        }
    }
}
