//! ESP-IDF `esp_http_server` on the device port.
//!
//! - [`serve`]: the accept loop, socket slots ([`crate::sockets`]) and TLS;
//! - `conn`: one connection — read, route, answer, keep-alive or close;
//! - `parse`: the request head with ESP-IDF's limits (`414`, `431`, `505`, `400`);
//! - `router`: the firmware's URI table per internet mode; `probes`: OS connectivity checks
//!   and their verdicts; `portal`: the `GET /` page; `errors`: ESP-IDF's error pages;
//! - `response`: responses framed byte for byte as `httpd_resp_send` does.

pub(crate) mod errors;
pub(crate) mod head;
pub(crate) mod response;

mod conn;
mod parse;
mod portal;
mod probes;
mod router;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::context::Shared;
use crate::events::{EventKind, Side};
use crate::sockets::Admission;

use self::conn::Site;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts and serves connections until shutdown; with `tls`, each connection is a TLS session.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    let (scheme, ws_scheme, default_port) = match tls {
        Some(_) => ("https", "wss", 443),
        None => ("http", "ws", 80),
    };
    let port = listener.local_addr().map_or(default_port, |a| a.port());
    let authority = if port == default_port {
        shared.device_ip.to_string()
    } else {
        format!("{}:{port}", shared.device_ip)
    };
    let site = Arc::new(Site {
        scheme,
        device_ip: shared.device_ip.to_string(),
        ws_url: format!("{ws_scheme}://{authority}{}", shared.ws.path),
    });
    loop {
        // Like lwIP's backlog: once enough connections wait for a slot, stop accepting.
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            () = shared.sockets.waiting_room() => {}
        }
        let accepted = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                let id = shared.next_conn_id();
                shared.emit(EventKind::TcpAccepted {
                    conn: id,
                    peer,
                    service: scheme.to_owned(),
                });
                shared.tracker.spawn(connection(
                    tcp,
                    peer,
                    id,
                    shared.clone(),
                    tls.clone(),
                    site.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!("accept failed on {scheme}: {e}");
                tokio::select! {
                    () = shared.cancel.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

/// Takes a socket slot (waiting or purging as the profile says), then serves. Generic over the
/// stream so a fault-injecting wrapper can sit between the socket and the device.
async fn connection<S>(
    tcp: S,
    peer: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    site: Arc<Site>,
) where
    S: AsyncRead + AsyncWrite + crate::ws::Transport + Unpin + Send + 'static,
{
    let closed = |by: Side, reason: &str| {
        shared.emit(EventKind::TcpClosed {
            conn: id,
            by,
            reason: reason.to_owned(),
        });
    };
    let handle = match shared.sockets.admit(id, peer) {
        Admission::Now { handle, purged } => {
            if let Some(victim) = purged {
                shared.emit(EventKind::LruPurged {
                    conn: victim,
                    for_conn: id,
                });
            }
            handle
        }
        Admission::Wait { open, ticket } => {
            shared.emit(EventKind::TcpWaiting { conn: id, open });
            let slot = tokio::select! {
                () = shared.cancel.cancelled() => None,
                slot = ticket.slot() => slot,
            };
            match slot {
                Some(handle) => handle,
                None => return closed(Side::Device, "shutdown while waiting for a socket"),
            }
        }
    };
    shared.emit(EventKind::TcpServed { conn: id });
    let Some(acceptor) = tls else {
        return conn::serve(tcp, handle, shared.clone(), site).await;
    };
    let handshake = tokio::time::timeout(shared.profile.recv_timeout, acceptor.accept(tcp));
    let result = tokio::select! {
        () = shared.cancel.cancelled() => return closed(Side::Device, "shutdown"),
        () = handle.purged().cancelled() => return closed(Side::Device, "lru purge"),
        r = handshake => r,
    };
    match result {
        Ok(Ok(stream)) => conn::serve(stream, handle, shared.clone(), site).await,
        Ok(Err(e)) => closed(Side::Client, &format!("tls handshake failed: {e}")),
        Err(_) => closed(Side::Device, "tls handshake timed out"),
    }
}
