//! The WebSocket endpoint: ESP-IDF handshake checks and the session loop (owned by the ws work).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::context::Shared;
use crate::http::head::RequestHead;
use crate::sockets::ConnHandle;

/// Handles a request for the WebSocket path: ESP-IDF's handshake checks, the `101` (or the
/// rejection), then the session until it ends. `leftover` holds bytes read past the request head.
/// Owns the connection: when it returns, the connection is closed.
pub(crate) async fn handle_upgrade<S>(
    _io: S,
    _leftover: Vec<u8>,
    _head: RequestHead,
    _conn: ConnHandle,
    _shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
}
