//! The WebSocket endpoint: ESP-IDF's handshake checks, then a session with the shared firmware.
//!
//! - [`handshake`]: the checks and the exact `101` (pure functions of the request head);
//! - [`session`]: frames ↔ [`crate::device::DeviceHub`], with ESP-IDF's control-frame and close
//!   behaviour.
//!
//! The HTTP server calls [`handle_upgrade`] for every request on the WebSocket path; from then on
//! this module owns the connection.

mod handshake;
mod session;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::context::Shared;
use crate::events::{EventKind, Side};
use crate::http::head::RequestHead;
use crate::sockets::ConnHandle;

use self::handshake::{Decision, Reply};

/// Handles a request for the WebSocket path: ESP-IDF's handshake checks, the `101` (or the
/// rejection), then the session until it ends. `leftover` holds bytes read past the request head.
/// Owns the connection: when it returns, the connection is closed.
pub(crate) async fn handle_upgrade<S>(
    mut io: S,
    leftover: Vec<u8>,
    head: RequestHead,
    conn: ConnHandle,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let accept = match handshake::decide(&head, &shared.ws, &shared.profile) {
        Decision::Upgrade(accept) => accept,
        Decision::Reject(rejection) => {
            shared.emit(EventKind::WsRejected {
                conn: conn.id,
                reason: rejection.reason.clone(),
                status: rejection.status(),
            });
            match rejection.reply {
                // Dropping `io` closes the socket with nothing written.
                Reply::SilentClose => {}
                Reply::Status(response) => {
                    if let Err(e) = response.write_to(&mut io).await {
                        tracing::debug!(conn = conn.id, "writing the rejection failed: {e}");
                    }
                    let _ = io.shutdown().await;
                }
                Reply::NoResponse => hold_unanswered(io, &conn, &shared).await,
            }
            return;
        }
    };

    let written = async {
        io.write_all(&accept.response).await?;
        io.flush().await
    };
    if let Err(e) = written.await {
        shared.emit(EventKind::WsClosed {
            conn: conn.id,
            by: Side::Client,
            code: None,
            reason: format!("writing the 101 failed: {e}"),
            clean: false,
        });
        return;
    }
    let authorized = match (shared.device.auth_token(), accept.token.as_deref()) {
        (Some(expected), Some(given)) => expected == given,
        _ => false,
    };
    shared.emit(EventKind::WsOpened {
        conn: conn.id,
        path: head.path.clone(),
        subprotocol: accept.subprotocol.clone(),
    });
    session::run(io, leftover, conn, shared, authorized).await;
}

/// ESP-IDF ran the handler as a plain GET and it sent nothing: the socket stays open, unanswered,
/// until the app closes it, LRU purge or shutdown. What the app sends meanwhile is discarded
/// (bounded: at most `MAX_DISCARD` bytes, then the connection is closed).
async fn hold_unanswered<S>(mut io: S, conn: &ConnHandle, shared: &Shared)
where
    S: AsyncRead + Unpin,
{
    const MAX_DISCARD: usize = 64 * 1024;
    let mut buf = [0u8; 1024];
    let mut discarded = 0;
    while discarded < MAX_DISCARD {
        tokio::select! {
            () = conn.purged().cancelled() => return,
            () = shared.cancel.cancelled() => return,
            n = io.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            },
        }
    }
}
