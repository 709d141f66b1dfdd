//! What the WebSocket endpoint needs from its connection beyond reading and writing: which
//! device service it arrived on (for `when: { service: … }`) and a way to end it with RST
//! (handshake `reset` faults).

use espsim_faults::Service;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::net::FaultyStream;

/// A device-side connection: plain TCP, the fault wrapper, or TLS on top of either.
///
/// A bound on the stream the HTTP server hands to [`super::handle_upgrade`], so a handshake
/// `reset` is a real TCP RST (SO_LINGER 0) whatever sits in between; aborting TLS skips
/// `close_notify` and resets the TCP connection underneath.
pub(crate) trait Transport {
    /// The listener the connection arrived on.
    fn service(&self) -> Service;

    /// Ends the connection so the app sees "connection reset by peer".
    fn abort(self);
}

impl Transport for TcpStream {
    fn service(&self) -> Service {
        Service::Http
    }

    fn abort(self) {
        crate::net::Abort::abort(self);
    }
}

impl<S> Transport for FaultyStream<S>
where
    S: AsyncRead + AsyncWrite + crate::net::Abort + Send + Unpin + 'static,
{
    fn service(&self) -> Service {
        Service::Http
    }

    /// The pump (if any) resets the socket it owns.
    fn abort(self) {
        FaultyStream::abort(self);
    }
}

impl<S: Transport> Transport for tokio_rustls::server::TlsStream<S> {
    fn service(&self) -> Service {
        Service::Https
    }

    fn abort(self) {
        self.into_inner().0.abort();
    }
}
