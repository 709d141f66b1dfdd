//! Layer 3 (TCP connect) and the `Dialer` every later layer uses to open a fresh connection
//! (plain or TLS), with the socket errors sorted into the shapes an app developer recognizes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::target::{Scheme, Target};
use super::{Details, LayerResult, LayerVerdict};

/// A byte stream: TCP or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
/// A boxed [`Io`].
pub(crate) type BoxIo = Box<dyn Io>;

/// How a TCP connect ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpOutcome {
    /// The three-way handshake completed.
    Connected,
    /// RST to the SYN: nothing listens on that port.
    Refused,
    /// No SYN-ACK within the timeout.
    TimedOut,
    /// No route (ICMP unreachable, network down).
    Unreachable,
    /// Any other socket error.
    Error,
}

/// Layer 3 facts.
#[derive(Debug, Clone, Serialize)]
pub struct TcpDetails {
    /// Address connected to.
    pub addr: SocketAddr,
    /// How it ended.
    pub outcome: TcpOutcome,
    /// The OS error, when there was one.
    pub error: Option<String>,
}

/// Why opening a connection failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    Connect(TcpOutcome, Option<io::Error>),
    Tls(io::Error),
}

impl OpenError {
    pub(crate) fn describe(&self) -> String {
        match self {
            OpenError::Connect(o, Some(e)) => format!("{o:?}: {e}"),
            OpenError::Connect(o, None) => format!("{o:?}"),
            OpenError::Tls(e) => format!("TLS handshake failed: {e}"),
        }
    }
}

/// One TCP connect, classified.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, (TcpOutcome, Option<io::Error>)> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err((TcpOutcome::TimedOut, None)),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => {
            let outcome = match e.kind() {
                io::ErrorKind::ConnectionRefused => TcpOutcome::Refused,
                io::ErrorKind::TimedOut => TcpOutcome::TimedOut,
                io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                    TcpOutcome::Unreachable
                }
                _ => TcpOutcome::Error,
            };
            Err((outcome, Some(e)))
        }
    }
}

/// Whether an I/O error is the peer resetting the connection.
pub(crate) fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Opens fresh connections to the device (each later layer uses its own, as apps do).
#[derive(Clone)]
pub(crate) struct Dialer {
    pub(crate) addr: SocketAddr,
    pub(crate) timeout: Duration,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .finish()
    }
}

impl std::fmt::Debug for dyn Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Io")
    }
}

impl Dialer {
    pub(crate) fn new(
        addr: SocketAddr,
        target: &Target,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Self {
        let tls = tls.and_then(|config| {
            let name = super::tls::server_name(target)?;
            Some((TlsConnector::from(config), name))
        });
        Dialer { addr, timeout, tls }
    }

    pub(crate) async fn open(&self) -> Result<BoxIo, OpenError> {
        let tcp = connect(self.addr, self.timeout)
            .await
            .map_err(|(o, e)| OpenError::Connect(o, e))?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| OpenError::Tls(io::ErrorKind::TimedOut.into()))?
                    .map_err(OpenError::Tls)?;
                Ok(Box::new(tls))
            }
        }
    }
}

/// Layer 3: connects once to `addr`.
pub(crate) async fn probe(
    addr: SocketAddr,
    target: &Target,
    http_port: u16,
    timeout: Duration,
) -> LayerResult {
    let result = connect(addr, timeout).await;
    let (outcome, error) = match &result {
        Ok(_) => (TcpOutcome::Connected, None),
        Err((o, e)) => (*o, e.as_ref().map(ToString::to_string)),
    };
    drop(result);
    let details = Details::Tcp(TcpDetails {
        addr,
        outcome,
        error: error.clone(),
    });
    let out = match outcome {
        TcpOutcome::Connected => {
            return LayerResult::new(LayerVerdict::Pass, format!("connected to {addr}")).details(details);
        }
        TcpOutcome::Refused => {
            let mut hint = format!(
                "nothing listens on port {}: wrong port, or the firmware has not started its \
                 server (lwIP answers RST); apps see `Connection refused` (errno 111 Linux/Android, \
                 61 iOS)",
                addr.port()
            );
            if target.scheme == Scheme::Wss && addr.port() != http_port {
                let plain = SocketAddr::new(addr.ip(), http_port);
                if connect(plain, timeout).await.is_ok() {
                    hint = format!(
                        "the device only serves plain HTTP on port {http_port}: ESP-IDF's httpd has \
                         no TLS unless the firmware uses esp_https_server; use ws://{}:{http_port}{}",
                        target.url_host(),
                        target.request_target()
                    );
                }
            }
            LayerResult::new(LayerVerdict::Fail, format!("refused by {addr}")).hint(hint)
        }
        TcpOutcome::TimedOut => LayerResult::new(
            LayerVerdict::Fail,
            format!("no answer from {addr} within {timeout:?}"),
        )
        .hint(
            "no SYN-ACK: the phone is not on the device's Wi-Fi, the address is wrong, Android \
             routes the app's traffic over mobile data (bind to the Wi-Fi network), or the device's \
             listen backlog (5) is full because all its sockets are busy",
        ),
        TcpOutcome::Unreachable => LayerResult::new(
            LayerVerdict::Fail,
            format!("{addr} is unreachable: {}", error.as_deref().unwrap_or("no route")),
        )
        .hint("no route to the device: join its Wi-Fi (softAP 192.168.4.1/24) first"),
        TcpOutcome::Error => LayerResult::new(
            LayerVerdict::Fail,
            format!("connect to {addr} failed: {}", error.as_deref().unwrap_or("?")),
        ),
    };
    out.details(details)
}
