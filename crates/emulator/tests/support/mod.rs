//! What the emulator's integration tests share: connecting, reading HTTP answers off real
//! sockets as a client sees them, a TLS client that trusts the emulator's self-signed
//! certificate, and one control API exchange. Each test binary includes it with `mod support;`
//! and uses a part of it.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use espsim_emulator::events::{Event, EventKind};
use espsim_emulator::internet::InternetMode;
use espsim_emulator::{ControlOptions, Emulator, EmulatorConfig, RunningEmulator};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long any single step (connect, an answer, a close) may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A TCP connection to `addr`, made within [`WAIT`].
pub async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connects")
}

/// Bytes as text, for comparing and for failure messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads until the peer closes within [`WAIT`]. A reset after the data (unread request bytes)
/// also ends it.
pub async fn read_to_close<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    read_to_close_within(s, WAIT).await
}

/// [`read_to_close`] with its own time limit.
pub async fn read_to_close_within<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> Vec<u8> {
    let read = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    };
    timeout(within, read)
        .await
        .expect("the peer closes in time")
}

/// The `Content-Length` of a response head; a head without one fails the test.
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .trim()
        .parse()
        .expect("a number")
}

/// Reads one response: the head, then `Content-Length` bytes of body.
pub async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let read = async {
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while !out.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).await.expect("reads the head");
            assert_eq!(n, 1, "EOF inside the response head: {:?}", text(&out));
            out.push(byte[0]);
        }
        let mut body = vec![0u8; content_length(&text(&out))];
        s.read_exact(&mut body).await.expect("reads the body");
        out.extend_from_slice(&body);
        out
    };
    timeout(WAIT, read).await.expect("response in time")
}

/// A TLS client that trusts exactly the certificates in the PEM file at `cert`, which the
/// emulator wrote for its self-signed certificate.
pub fn tls_connector(cert: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(c.expect("cert")).expect("adds root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// An emulator in captive mode with `control` and no DNS.
pub async fn start_with_control(control: ControlOptions) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        internet: InternetMode::Captive,
        control: Some(control),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// One answer as it came over the wire.
pub struct Answer {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether any CORS header came.
    pub fn has_cors(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.starts_with("access-control-"))
    }

    /// The `error` of a JSON error body.
    pub fn error(&self) -> String {
        let json: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body));
        json["error"].as_str().expect("an error message").to_owned()
    }

    /// `name=value` of the `Set-Cookie` header (without attributes), and the attributes.
    pub fn cookie(&self) -> Option<(String, String)> {
        let set = self.header("set-cookie")?;
        let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
        Some((pair.trim().to_owned(), attrs.to_owned()))
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` (its
/// `Content-Length` is added) with `Connection: close` and reads the whole answer.
pub async fn exchange(addr: SocketAddr, head: &str, body: &str) -> Answer {
    let mut s = connect(addr).await;
    let request = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.expect("writes");
    let mut out = Vec::new();
    timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .expect("reads");
    let text = String::from_utf8(out).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Waits up to [`WAIT`] for the first event matching `pred` (`what` names it in the failure).
pub async fn event(
    running: &RunningEmulator,
    what: &str,
    pred: impl FnMut(&Event) -> bool,
) -> Event {
    running
        .events()
        .wait_for(WAIT, pred)
        .await
        .unwrap_or_else(|| panic!("no {what} event within 5 s"))
}

/// Waits for the accept of the connection from `local` and returns the id the emulator gave it.
pub async fn conn_of(running: &RunningEmulator, local: SocketAddr) -> u64 {
    let e = event(
        running,
        "tcp_accepted",
        |e| matches!(&e.kind, EventKind::TcpAccepted { peer, .. } if *peer == local),
    )
    .await;
    match e.kind {
        EventKind::TcpAccepted { conn, .. } => conn,
        _ => unreachable!("matched above"),
    }
}

/// The id the emulator gave to the connection whose client end is `s`.
pub async fn conn_id(running: &RunningEmulator, s: &TcpStream) -> u64 {
    conn_of(running, s.local_addr().expect("local addr")).await
}

/// Starts an emulator from `config` without its DNS server.
pub async fn start_without_dns(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        ..config
    })
    .await
    .expect("emulator starts")
}

/// The stream faults in `v` (a JSON list of faults as a user writes them, not validated),
/// applied as rule 1 with `seed`, as the emulator hands them to a connection. Any fault
/// that is not a stream fault fails the test.
pub fn stream_faults(v: serde_json::Value, seed: u64) -> espsim_faults::StreamFaults {
    let list: Vec<espsim_faults::Fault> =
        serde_json::from_value(v).expect("faults parse (unvalidated)");
    espsim_faults::StreamFaults {
        faults: list
            .into_iter()
            .map(|f| match f {
                espsim_faults::Fault::Stream(s) => espsim_faults::Applied {
                    rule: espsim_faults::RuleId(1),
                    fault: s,
                    until: None,
                },
                other => panic!("not a stream fault: {other:?}"),
            })
            .collect(),
        seed,
    }
}

/// Connects to a port that is about to listen again (after a `refuse` window or a reboot):
/// refused attempts are retried, yielding to the emulator's tasks in between, for at most
/// [`WAIT`]. Any other error fails the test.
pub async fn connect_when_listening(addr: SocketAddr) -> TcpStream {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => return s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{addr} still refuses after {WAIT:?}"
                );
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("connecting to {addr} failed: {e}"),
        }
    }
}

/// Asserts that no other socket can bind `addr`'s port while the device holds it: not with
/// `SO_REUSEADDR` (as `std`, tokio and most servers bind), not without, not on the wildcard
/// address.
pub fn assert_port_held(addr: SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let kind = |r: std::io::Result<()>| r.err().map(|e| e.kind());
    let in_use = Some(std::io::ErrorKind::AddrInUse);
    let reusing = std::net::TcpListener::bind(addr).map(drop);
    assert_eq!(kind(reusing), in_use, "bind with SO_REUSEADDR on {addr}");
    let plain = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .and_then(|s| s.bind(&addr.into()));
    assert_eq!(kind(plain), in_use, "bind without SO_REUSEADDR on {addr}");
    let any = SocketAddr::new(
        match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        },
        addr.port(),
    );
    let wildcard = std::net::TcpListener::bind(any).map(drop);
    assert_eq!(kind(wildcard), in_use, "bind with SO_REUSEADDR on {any}");
}
