//! Reading a request head the ESP-IDF way: `httparse` does the syntax, the limits are counted
//! as `esp_http_server` counts them (IDF `src/httpd_parse.c`, CODE-READ).
//!
//! ESP-IDF reads into one scratch buffer of `max(max_req_hdr_len, max_uri_len) + 1` bytes, in
//! blocks of at most 128 bytes:
//! - first the request line: it (and the first byte after it) must fit in the scratch, and the
//!   request-target must not exceed `max_uri_len` — else `414`;
//! - then the scratch is reused from its start for the header lines: all of them, up to and
//!   including the blank line, must fit — else `431`.
//!
//! The caller reads at most [`HeadParser::want`] bytes at a time, so no more is taken from the
//! socket than ESP-IDF would take (what stays unread matters: closing a socket with unread data
//! sends a RST, on lwIP as on Linux).

use super::errors::EspError;
use super::head::RequestHead;

/// ESP-IDF's `PARSER_BLOCK_SIZE`: the most one read takes from the socket.
pub(crate) const BLOCK: usize = 128;

/// Methods `http_parser` (the parser inside `esp_http_server`) knows; any other token is a
/// parse error, so ESP-IDF answers `400`, never `501`.
const METHODS: [&str; 34] = [
    "DELETE",
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "COPY",
    "LOCK",
    "MKCOL",
    "MOVE",
    "PROPFIND",
    "PROPPATCH",
    "SEARCH",
    "UNLOCK",
    "BIND",
    "REBIND",
    "UNBIND",
    "ACL",
    "REPORT",
    "MKACTIVITY",
    "CHECKOUT",
    "MERGE",
    "M-SEARCH",
    "NOTIFY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PATCH",
    "PURGE",
    "MKCALENDAR",
    "LINK",
    "UNLINK",
    "SOURCE",
];

/// More headers than fit in any scratch buffer a profile uses.
const MAX_HEADERS: usize = 512;

/// The profile's request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `HTTPD_MAX_URI_LEN`.
    pub(crate) max_uri_len: usize,
    /// `HTTPD_MAX_REQ_HDR_LEN`.
    pub(crate) max_req_hdr_len: usize,
}

impl Limits {
    /// Size of ESP-IDF's scratch buffer (`HTTPD_SCRATCH_BUF + 1`).
    pub(crate) fn scratch(self) -> usize {
        self.max_req_hdr_len.max(self.max_uri_len) + 1
    }
}

/// A complete request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// The head.
    pub(crate) head: RequestHead,
    /// `Content-Length` (0 without one; chunked bodies are not read, as in ESP-IDF).
    pub(crate) content_length: u64,
    /// Bytes read past the head (body or the next request).
    pub(crate) extra: Vec<u8>,
}

/// What the parser needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Read up to [`HeadParser::want`] more bytes.
    More,
    /// The head is complete.
    Done(Parsed),
    /// ESP-IDF answers this error page and closes.
    Fail(EspError),
}

/// Incremental request-head reader with ESP-IDF's limits.
#[derive(Debug)]
pub(crate) struct HeadParser {
    limits: Limits,
    /// The request line so far (and, until it is complete, whatever followed it).
    line: Vec<u8>,
    /// Header bytes, once the request line is complete (the reused scratch).
    headers: Option<Vec<u8>>,
}

impl HeadParser {
    /// A parser for one request.
    pub(crate) fn new(limits: Limits) -> Self {
        HeadParser {
            limits,
            line: Vec::new(),
            headers: None,
        }
    }

    /// How many bytes the next read may take (at least 1 while [`Step::More`] is returned).
    pub(crate) fn want(&self) -> usize {
        let used = self.headers.as_ref().map_or(self.line.len(), Vec::len);
        BLOCK.min(self.limits.scratch().saturating_sub(used))
    }

    /// Takes the next block (at most [`HeadParser::want`] bytes).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Step {
        match &mut self.headers {
            Some(headers) => {
                headers.extend_from_slice(bytes);
                self.check_headers()
            }
            None => {
                self.line.extend_from_slice(bytes);
                self.check_line()
            }
        }
    }

    fn check_line(&mut self) -> Step {
        if target_len(&self.line) > self.limits.max_uri_len {
            return Step::Fail(EspError::UriTooLong);
        }
        let end = line_end(&self.line);
        let line = match request_line(&self.line) {
            Line::Incomplete => None,
            Line::Fail(e) => return Step::Fail(e),
            Line::Done(normalised) => Some(normalised),
        };
        if let (Some(line), Some(end)) = (line, end)
            && self.line.len() > end
        {
            // The request line and the first byte after it are in: ESP-IDF pushes the rest
            // back and reuses the scratch from its start for the header lines. From here on
            // the line is kept in the normalised form `httparse` reads.
            let headers = self.line.split_off(end);
            self.line = line;
            self.headers = Some(headers);
            return self.check_headers();
        }
        if self.line.len() >= self.limits.scratch() {
            // Still inside the request line with the scratch full.
            return Step::Fail(if target_started(&self.line) {
                EspError::UriTooLong
            } else {
                EspError::BadRequest
            });
        }
        Step::More
    }

    fn check_headers(&mut self) -> Step {
        let Some(headers) = &self.headers else {
            return Step::More;
        };
        let mut all = Vec::with_capacity(self.line.len() + headers.len());
        all.extend_from_slice(&self.line);
        all.extend_from_slice(headers);
        // Every header ends with a `\n`, so that many slots are always enough (up to the cap).
        let lines = headers.iter().filter(|b| **b == b'\n').count();
        let mut slots = vec![httparse::EMPTY_HEADER; lines.clamp(1, MAX_HEADERS)];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(&all) {
            Ok(httparse::Status::Complete(n)) => finish(&req, all.get(n..).unwrap_or_default()),
            Ok(httparse::Status::Partial) if headers.len() >= self.limits.scratch() => {
                Step::Fail(EspError::HeaderFieldsTooLarge)
            }
            Ok(httparse::Status::Partial) => Step::More,
            Err(httparse::Error::TooManyHeaders) => Step::Fail(EspError::HeaderFieldsTooLarge),
            Err(_) => Step::Fail(EspError::BadRequest),
        }
    }
}

/// Builds the head from a completely parsed request and applies `http_parser`'s / ESP-IDF's
/// checks that `httparse` does not make; `extra` is what followed the head.
fn finish(req: &httparse::Request<'_, '_>, extra: &[u8]) -> Step {
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Step::Fail(EspError::BadRequest);
    };
    // Unknown method tokens are a parse error in `http_parser`. CONNECT is treated as an
    // upgrade, and without `Upgrade: websocket` ESP-IDF rejects it.
    if !METHODS.contains(&method) || method == "CONNECT" {
        return Step::Fail(EspError::BadRequest);
    }
    // `http_parser_parse_url`: an origin-form path, `*`, or an absolute URL.
    match target.as_bytes().first() {
        Some(b'/' | b'*') => {}
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Step::Fail(EspError::BadRequest),
    }
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).trim().to_owned();
            (h.name.to_owned(), value)
        })
        .collect();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let head = RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        path,
        query,
        minor_version: version,
        headers,
    };
    // `http_parser` flags an upgrade when an `Upgrade` header and a `Connection: upgrade` token
    // are both present; ESP-IDF then requires `Upgrade: websocket` (case-insensitive), else 400
    // on any path (IDF `components/http_parser/http_parser.c`, `src/httpd_parse.c`).
    if is_upgrade(&head)
        && head
            .header("upgrade")
            .is_some_and(|v| !v.eq_ignore_ascii_case("websocket"))
    {
        return Step::Fail(EspError::BadRequest);
    }
    let mut lengths = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    let content_length = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some((_, v)), None) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            match v.parse::<u64>() {
                Ok(n) => n,
                Err(_) => return Step::Fail(EspError::BadRequest),
            }
        }
        _ => return Step::Fail(EspError::BadRequest),
    };
    Step::Done(Parsed {
        head,
        content_length,
        extra: extra.to_vec(),
    })
}

/// `http_parser`'s `upgrade` flag for a request: `Upgrade` present and `Connection` carrying
/// the `upgrade` token.
fn is_upgrade(head: &RequestHead) -> bool {
    let has_upgrade = head
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("upgrade"));
    let connection_upgrade = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .any(|(_, v)| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    has_upgrade && connection_upgrade
}

/// Leading empty lines are skipped by both parsers.
fn skip_empty_lines(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    &buf[start..]
}

/// Index just past the request line's `\n`.
fn line_end(buf: &[u8]) -> Option<usize> {
    let skipped = buf.len() - skip_empty_lines(buf).len();
    buf[skipped..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| skipped + i + 1)
}

/// Whether the method is done and the request-target has begun.
fn target_started(buf: &[u8]) -> bool {
    skip_empty_lines(buf).contains(&b' ')
}

/// Length of the request-target seen so far (complete or not).
fn target_len(buf: &[u8]) -> usize {
    let line = skip_empty_lines(buf);
    let Some(sp) = line.iter().position(|b| *b == b' ') else {
        return 0;
    };
    let rest = &line[sp..];
    let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    rest[start..]
        .iter()
        .position(|b| matches!(b, b' ' | b'\r' | b'\n'))
        .unwrap_or(rest.len() - start)
}

/// What the request line says so far.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Valid so far; more bytes are needed.
    Incomplete,
    /// `http_parser` or ESP-IDF rejects it with this page.
    Fail(EspError),
    /// Complete and accepted: the line rewritten as `METHOD SP TARGET SP HTTP/1.x CRLF`, the
    /// form `httparse` reads, with x = 0 only for a real HTTP/1.0 request.
    Done(Vec<u8>),
}

/// Splits and checks a request line the way `http_parser`'s state machine walks it, byte by
/// byte (IDF `components/http_parser/http_parser.c`, CODE-READ):
/// - the method must be one `http_parser` knows, so a prefix of none fails at once;
/// - `s_req_spaces_before_url` skips any number of spaces before the target, and
///   `s_req_http_start` any number before `HTTP/` — so `GET /  HTTP/1.1` is a valid request;
/// - the target ends at the first space, CR or LF (`GET /a b HTTP/1.1` then finds `b` where
///   `HTTP/` must start: `HPE_INVALID_CONSTANT`, 400);
/// - after `HTTP/d.d` only CR LF or LF may follow (`GET / HTTP/1.2 HTTP/1.1`:
///   `HPE_INVALID_VERSION`, 400); a line that ends right after the target is HTTP/0.9, which
///   ESP-IDF's `verify_url` answers with 505 (`major != 1 && minor != 1`), as any other
///   version with neither digit 1.
///
/// `buf` is everything read so far (leading empty lines included); the line is complete once
/// its `\n` is in.
fn request_line(buf: &[u8]) -> Line {
    let buf = skip_empty_lines(buf);
    let (line, complete) = match buf.iter().position(|b| *b == b'\n') {
        Some(i) => (&buf[..i], true),
        None => (buf, false),
    };
    // A CR can only end the line (an incomplete line may be waiting for its LF).
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    const BAD: Line = Line::Fail(EspError::BadRequest);
    let more = if complete { BAD } else { Line::Incomplete };

    let Some(sp) = line.iter().position(|b| *b == b' ') else {
        let known_prefix = METHODS.iter().any(|m| m.as_bytes().starts_with(line));
        return if known_prefix { more } else { BAD };
    };
    let method = &line[..sp];
    if !METHODS.iter().any(|m| m.as_bytes() == method) {
        return BAD;
    }
    let rest = skip_spaces(&line[sp..]);
    let target_end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
    let (target, rest) = rest.split_at(target_end);
    // CR is only allowed as the line's end; other control bytes are never URL characters.
    if target.iter().any(|b| b.is_ascii_control()) {
        return BAD;
    }
    if target.is_empty() {
        return more;
    }
    if rest.is_empty() {
        // Nothing after the target: HTTP/0.9 once the line ends.
        return if complete {
            Line::Fail(EspError::VersionNotSupported)
        } else {
            Line::Incomplete
        };
    }
    let version = skip_spaces(rest);
    const PATTERN: &[u8; 8] = b"HTTP/0.0";
    let fits = version.len() <= PATTERN.len()
        && version.iter().zip(PATTERN).all(|(c, p)| match p {
            b'0' => c.is_ascii_digit(),
            p => c == p,
        });
    match (fits, complete, version.len() == PATTERN.len()) {
        (false, _, _) | (true, true, false) => BAD,
        (true, false, _) => Line::Incomplete,
        (true, true, true) => {
            let (major, minor) = (version[5] - b'0', version[7] - b'0');
            if major != 1 && minor != 1 {
                return Line::Fail(EspError::VersionNotSupported);
            }
            // `http_parser` accepts any single-digit x.y with x = 1 or y = 1; ESP-IDF then
            // serves it like HTTP/1.1 (only a real 1.0 stays 1.0).
            let minor = if (major, minor) == (1, 0) { b'0' } else { b'1' };
            let mut out = Vec::with_capacity(method.len() + target.len() + 12);
            out.extend_from_slice(method);
            out.push(b' ');
            out.extend_from_slice(target);
            out.extend_from_slice(b" HTTP/1.");
            out.push(minor);
            out.extend_from_slice(b"\r\n");
            Line::Done(out)
        }
    }
}

/// `buf` without its leading spaces.
fn skip_spaces(buf: &[u8]) -> &[u8] {
    let start = buf.iter().position(|b| *b != b' ').unwrap_or(buf.len());
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const V54: Limits = Limits {
        max_uri_len: 512,
        max_req_hdr_len: 512,
    };
    const V55: Limits = Limits {
        max_uri_len: 512,
        max_req_hdr_len: 1024,
    };

    /// Feeds `bytes` the way the connection does: at most `want()` at a time.
    fn run(limits: Limits, bytes: &[u8]) -> (Step, usize) {
        let mut p = HeadParser::new(limits);
        let mut at = 0;
        loop {
            let n = p.want().min(bytes.len() - at);
            assert!(p.want() > 0, "parser asked for nothing");
            let step = p.feed(&bytes[at..at + n]);
            at += n;
            if step != Step::More || at == bytes.len() {
                return (step, at);
            }
        }
    }

    fn request_with_header_block(block_len: usize) -> Vec<u8> {
        // "X: " + filler + "\r\n" + "\r\n" = block_len bytes of header lines.
        let filler = "a".repeat(block_len - 7);
        format!("GET / HTTP/1.1\r\nX: {filler}\r\n\r\n").into_bytes()
    }

    fn done(step: Step) -> Parsed {
        match step {
            Step::Done(p) => p,
            other => panic!("expected a head, got {other:?}"),
        }
    }

    #[test]
    fn a_simple_request_parses_with_extra_bytes_kept() {
        let (step, _) = run(
            V54,
            b"GET /ws?token=a HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: WebSocket\r\n\r\nnext",
        );
        let p = done(step);
        assert_eq!(p.head.method, "GET");
        assert_eq!(p.head.path, "/ws");
        assert_eq!(p.head.query.as_deref(), Some("token=a"));
        assert_eq!(p.head.header("host"), Some("192.168.4.1"));
        assert_eq!(p.extra, b"next");
    }

    #[test]
    fn header_lines_may_fill_the_scratch_but_not_exceed_it() {
        let scratch = V54.scratch();
        assert_eq!(scratch, 513);
        let (step, _) = run(V54, &request_with_header_block(scratch));
        done(step);
        let (step, read) = run(V54, &request_with_header_block(scratch + 1));
        assert_eq!(step, Step::Fail(EspError::HeaderFieldsTooLarge));
        // ESP-IDF stops reading where the scratch is full.
        assert_eq!(read, "GET / HTTP/1.1\r\n".len() + scratch);
        // The v5.5 profile takes the same block.
        done(run(V55, &request_with_header_block(scratch + 1)).0);
        done(run(V55, &request_with_header_block(1025)).0);
        assert_eq!(
            run(V55, &request_with_header_block(1026)).0,
            Step::Fail(EspError::HeaderFieldsTooLarge)
        );
    }

    #[test]
    fn the_request_line_must_fit_in_the_scratch() {
        // 4 + target + 11 ("HTTP/1.1\r\n" with its space) + 1 byte of the next header ≤ 513.
        let ok = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(496));
        done(run(V54, ok.as_bytes()).0);
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(497));
        assert_eq!(
            run(V54, long.as_bytes()).0,
            Step::Fail(EspError::UriTooLong)
        );
        // With a 1 KiB scratch the URI limit itself (512) applies.
        let at_limit = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(511));
        done(run(V55, at_limit.as_bytes()).0);
        let over = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(512));
        assert_eq!(
            run(V55, over.as_bytes()).0,
            Step::Fail(EspError::UriTooLong)
        );
    }

    #[test]
    fn an_over_long_target_fails_before_the_line_ends() {
        let partial = format!("GET /{}", "a".repeat(600));
        assert_eq!(
            run(V55, partial.as_bytes()).0,
            Step::Fail(EspError::UriTooLong)
        );
    }

    #[test]
    fn versions_follow_esp_idfs_check() {
        assert_eq!(
            run(V54, b"GET / HTTP/2.0\r\n\r\n").0,
            Step::Fail(EspError::VersionNotSupported)
        );
        assert_eq!(
            run(V54, b"GET / HTTP/0.9\r\nHost: x\r\n\r\n").0,
            Step::Fail(EspError::VersionNotSupported)
        );
        // `major != 1 && minor != 1` lets HTTP/2.1 and HTTP/1.5 through.
        assert_eq!(
            done(run(V54, b"GET / HTTP/2.1\r\n\r\n").0)
                .head
                .minor_version,
            1
        );
        done(run(V54, b"GET / HTTP/1.5\r\nHost: x\r\n\r\n").0);
        assert_eq!(
            done(run(V54, b"GET / HTTP/1.0\r\n\r\n").0)
                .head
                .minor_version,
            0
        );
        assert_eq!(
            run(V54, b"GET / HTTX/1.1\r\n\r\n").0,
            Step::Fail(EspError::BadRequest)
        );
        assert_eq!(run(V54, b"GET / HTTP/2").0, Step::More);
    }

    #[test]
    fn unknown_methods_and_bad_syntax_are_400() {
        for bad in [
            &b"BREW / HTTP/1.1\r\n\r\n"[..],
            b"get / HTTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"CONNECT host:443 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: keep-alive, upgrade\r\nUpgrade: websocket, h2c\r\n\r\n",
        ] {
            assert_eq!(
                run(V54, bad).0,
                Step::Fail(EspError::BadRequest),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn spaces_between_the_parts_are_skipped_like_http_parser_does() {
        // `s_req_spaces_before_url` and `s_req_http_start` skip any number of spaces.
        for line in [
            &b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET   /ws?token=a    HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /  HTTP/2.1\r\nHost: x\r\n\r\n",
        ] {
            let p = done(run(V54, line).0);
            assert_eq!(p.head.method, "GET");
            assert_eq!(p.head.minor_version, 1, "{}", String::from_utf8_lossy(line));
            assert_eq!(p.head.header("host"), Some("x"));
        }
        assert_eq!(
            done(run(V54, b"GET /a?b=c  HTTP/1.0\r\n\r\n").0)
                .head
                .target,
            "/a?b=c"
        );
        assert_eq!(
            done(run(V54, b"GET /a  HTTP/1.0\r\n\r\n").0)
                .head
                .minor_version,
            0
        );
    }

    #[test]
    fn a_second_word_or_version_after_the_target_is_400_and_never_loops() {
        // These used to recurse without end (stack overflow, process abort).
        for line in [
            &b"GET /a b HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.2 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"GET /  \r\n\r\n",
            b"GET \r\n\r\n",
            b"GET /a\rb HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                run(V54, line).0,
                Step::Fail(EspError::BadRequest),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // A bad second word is seen before the line ends, as `http_parser` sees it.
        assert_eq!(run(V54, b"GET /a b").0, Step::Fail(EspError::BadRequest));
        assert_eq!(run(V54, b"GET /a  HTTP/1.").0, Step::More);
        assert_eq!(run(V54, b"GET /a HTTP/1.1\r").0, Step::More);
    }

    #[test]
    fn a_line_without_a_version_is_http_0_9_and_505() {
        assert_eq!(
            run(V54, b"GET /\r\n\r\n").0,
            Step::Fail(EspError::VersionNotSupported)
        );
        assert_eq!(run(V54, b"GET /").0, Step::More);
    }

    #[test]
    fn every_request_line_up_to_a_few_bytes_ends_in_a_step() {
        // Bounded exhaustive walk over short lines from the bytes that matter to the
        // request-line grammar: each must give an answer (no panic, no endless recursion).
        const ALPHABET: &[u8] = b"G /H1.\r\nT";
        let mut line = Vec::new();
        fn walk(line: &mut Vec<u8>, depth: usize) {
            let _ = run(V54, line);
            let _ = request_line(line);
            if depth == 0 {
                return;
            }
            for b in ALPHABET {
                line.push(*b);
                walk(line, depth - 1);
                line.pop();
            }
        }
        let mut prefix = b"GET /".to_vec();
        walk(&mut prefix, 5);
        walk(&mut line, 4);
    }

    #[test]
    fn upgrade_is_checked_only_with_a_connection_upgrade_token() {
        // Without `Connection: upgrade`, `http_parser` does not treat it as an upgrade.
        done(run(V54, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n").0);
        done(
            run(
                V54,
                b"GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n",
            )
            .0,
        );
    }

    #[test]
    fn body_length_and_pipelined_bytes_are_reported() {
        let p = done(run(V54, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET").0);
        assert_eq!(p.content_length, 5);
        assert_eq!(p.extra, b"helloGET");
    }

    #[test]
    fn a_request_arriving_byte_by_byte_is_the_same() {
        let bytes = b"GET /hotspot-detect.html HTTP/1.1\r\nHost: captive.apple.com\r\n\r\n";
        let mut p = HeadParser::new(V54);
        let mut last = Step::More;
        for b in bytes {
            last = p.feed(&[*b]);
        }
        assert_eq!(
            done(last).head.host_name().as_deref(),
            Some("captive.apple.com")
        );
    }
}
