//! The API's accept loop: a cap on connections served at once and a deadline for each request
//! head, so idle or slow clients cannot exhaust the process's file descriptors or lock out
//! other control clients. The device's ports do not share any of this.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ControlLimits;

/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts until `cancel`; each connection is served on `tracker` while it holds a slot.
pub(super) async fn run(
    listener: TcpListener,
    app: Router,
    limits: ControlLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("control API: accept failed: {e}");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&stream, limits.max_connections);
            continue;
        };
        let app = app.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            serve_connection(stream, app, limits.head_timeout, cancel).await;
            drop(slot);
        });
    }
}

/// Answers a connection over the cap with `503` (when the socket takes it without waiting)
/// and closes it.
fn refuse(stream: &TcpStream, cap: usize) {
    let body = format!(
        "{{\"error\":\"too many control API connections (limit {cap}); close idle ones and retry\"}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    // A fresh socket's send buffer is empty: the write completes or the client is gone.
    let _ = stream.try_write(response.as_bytes());
    tracing::warn!(
        limit = cap,
        "control API: connection refused, limit reached"
    );
}

/// Serves HTTP/1.1 on one connection; on shutdown lets the current response finish (the
/// event stream ends itself), for at most `head_timeout`.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    head_timeout: Duration,
    cancel: CancellationToken,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper starts this timer whenever the connection is ready for a request head: at accept
    // and after each response, so it bounds a slow head and an idle keep-alive alike.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let finished = tokio::select! {
        finished = conn.as_mut() => finished,
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(head_timeout, conn.as_mut()).await {
                Ok(finished) => finished,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = finished {
        tracing::debug!("control API connection ended: {e}");
    }
}
