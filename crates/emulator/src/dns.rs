//! Captive-portal DNS (owned by the dns work).

use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};

use crate::context::Shared;

/// Serves DNS on `udp` and `tcp` until shutdown.
pub(crate) async fn serve(_udp: UdpSocket, _tcp: TcpListener, shared: Arc<Shared>) {
    shared.cancel.cancelled().await;
}
