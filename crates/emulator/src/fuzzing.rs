//! Crate internals the fuzz targets in `fuzz/` drive directly (cargo feature `fuzzing`, off by
//! default; not a stable API).
//!
//! The request-head parser and the WebSocket handshake checks are pure functions of bytes, so
//! the fuzzer calls them without sockets. These wrappers only translate the crate-private types
//! into public ones; every decision is the real code's. (DNS is fuzzed through the public
//! [`crate::Emulator`] over loopback, which needs nothing from here.)

#![doc(hidden)]

use crate::WsSettings;
use crate::http::head::RequestHead;
use crate::http::parse::{self, Limits, Step};
use crate::profile::Profile;
use crate::ws::handshake::{self, Decision, Reply};

/// The most one read hands the head parser (ESP-IDF's `PARSER_BLOCK_SIZE`).
pub const HEAD_BLOCK: usize = parse::BLOCK;

/// ESP-IDF's incremental request-head reader with `profile`'s limits, exactly as a connection
/// on the device port uses it: ask [`HeadParser::want`], read at most that many bytes, feed them.
#[derive(Debug)]
pub struct HeadParser {
    inner: parse::HeadParser,
    scratch: usize,
}

impl HeadParser {
    /// A parser for one request under `profile`'s `max_uri_len` / `max_req_hdr_len`.
    pub fn new(profile: &Profile) -> Self {
        let limits = Limits {
            max_uri_len: profile.max_uri_len,
            max_req_hdr_len: profile.max_req_hdr_len,
        };
        HeadParser {
            inner: parse::HeadParser::new(limits),
            scratch: limits.scratch(),
        }
    }

    /// The size of ESP-IDF's scratch buffer for these limits (`max(hdr, uri) + 1`).
    pub fn scratch(&self) -> usize {
        self.scratch
    }

    /// How many bytes the next feed may carry.
    pub fn want(&self) -> usize {
        self.inner.want()
    }

    /// Feeds the next block (at most [`HeadParser::want`] bytes).
    pub fn feed(&mut self, bytes: &[u8]) -> HeadStep {
        match self.inner.feed(bytes) {
            Step::More => HeadStep::More,
            Step::Done(parsed) => HeadStep::Done(ParsedHead {
                head: public_head(parsed.head),
                content_length: parsed.content_length,
                extra: parsed.extra,
            }),
            Step::Fail(error) => HeadStep::Fail(error.status().0),
        }
    }
}

/// What the head parser needs or decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadStep {
    /// Feed more bytes.
    More,
    /// The head is complete.
    Done(ParsedHead),
    /// The device answers this status (ESP-IDF's error page) and closes.
    Fail(u16),
}

/// A complete request head, as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedHead {
    /// Request line and headers.
    pub head: HandshakeRequest,
    /// `Content-Length` (0 without one).
    pub content_length: u64,
    /// Bytes fed past the head.
    pub extra: Vec<u8>,
}

/// A request head in public types: the input of [`websocket_handshake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Request-target, e.g. `/ws?token=x` (path and query are split from it at `?`).
    pub target: String,
    /// HTTP/1.x minor version.
    pub minor_version: u8,
    /// Header names and values in order.
    pub headers: Vec<(String, String)>,
}

fn public_head(head: RequestHead) -> HandshakeRequest {
    HandshakeRequest {
        method: head.method,
        target: head.target,
        minor_version: head.minor_version,
        headers: head.headers,
    }
}

/// Splits the target at `?` as the head parser does.
fn private_head(request: &HandshakeRequest) -> RequestHead {
    let (path, query) = match request.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (request.target.clone(), None),
    };
    RequestHead {
        method: request.method.clone(),
        target: request.target.clone(),
        path,
        query,
        minor_version: request.minor_version,
        headers: request.headers.clone(),
    }
}

/// What ESP-IDF's WebSocket handshake checks decided for a request on the WebSocket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// `101`: these exact response bytes, then WebSocket.
    Upgrade {
        /// The `101` response.
        response: Vec<u8>,
        /// The client's `Sec-WebSocket-Key`.
        key: String,
        /// The subprotocol echoed, if any.
        subprotocol: Option<String>,
        /// The token offered at the handshake, if any.
        token: Option<String>,
    },
    /// Refused.
    Reject {
        /// Which check failed.
        reason: String,
        /// The error response written before closing, if any (`None`: silent close, or no
        /// response at all).
        response: Option<Vec<u8>>,
    },
}

/// Runs the handshake checks on `request` with `subprotocol` as the endpoint's one supported
/// subprotocol, under `profile`.
pub fn websocket_handshake(
    request: &HandshakeRequest,
    subprotocol: Option<&str>,
    profile: &Profile,
) -> HandshakeOutcome {
    let settings = WsSettings {
        subprotocol: subprotocol.map(str::to_owned),
        ..WsSettings::default()
    };
    match handshake::decide(&private_head(request), &settings, profile) {
        Decision::Upgrade(accept) => HandshakeOutcome::Upgrade {
            response: accept.response,
            key: accept.key,
            subprotocol: accept.subprotocol,
            token: accept.token,
        },
        Decision::Reject(rejection) => HandshakeOutcome::Reject {
            response: match &rejection.reply {
                Reply::Status(response) => Some(response.to_bytes()),
                Reply::SilentClose | Reply::NoResponse => None,
            },
            reason: rejection.reason,
        },
    }
}

/// One line a device process printed, checked as espsim checks it (`max_message`: the
/// profile's WebSocket limit): `Ok` with the decoded line's debug form, or why it is garbage.
pub fn decode_process_line(line: &[u8], max_message: usize) -> Result<String, String> {
    crate::device_process::fuzz_decode(line, max_message)
}
