//! ESP-IDF `esp_http_server` on the device port (owned by the http work).

pub(crate) mod head;
pub(crate) mod response;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::context::Shared;

/// Accepts and serves connections until shutdown; with `tls`, each connection is a TLS session.
pub(crate) async fn serve(_listener: TcpListener, shared: Arc<Shared>, _tls: Option<TlsAcceptor>) {
    shared.cancel.cancelled().await;
}
