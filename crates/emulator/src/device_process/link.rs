//! The link between the synchronous device seam and the running process: the bounded queue of
//! lines for the process's stdin (swapped at each restart), and the HTTP requests waiting for
//! their `http_response`.
//!
//! [`Link::send`] never blocks (it runs under the device host's lock): a full queue means the
//! process stopped reading its stdin, so it marks the process hung and the supervisor restarts
//! it. Lock order: the device host's lock, then this link's locks, never the other way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use espsim_firmware::{HttpRequest, HttpResponse};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::protocol::ToProcess;
use crate::events::{EventKind, EventLog};

/// Most lines waiting for the process's stdin (beyond what the pipe itself holds, 64 KiB on
/// Linux). A process that leaves this many unread is treated as hung.
pub const STDIN_QUEUE: usize = 256;

/// The stdin side of one running process.
#[derive(Debug)]
pub(crate) struct Wire {
    /// Lines for the writer task.
    pub(crate) tx: mpsc::Sender<String>,
    /// Cancelled when a line did not fit: the process is hung.
    pub(crate) hung: CancellationToken,
}

/// Shared by the device logic (sync), the HTTP path (async) and the supervisor.
#[derive(Debug)]
pub(crate) struct Link {
    wire: Mutex<Option<Wire>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<HttpResponse>>>,
    next_id: AtomicU64,
    http_timeout: Duration,
    events: Arc<EventLog>,
}

impl Link {
    pub(crate) fn new(http_timeout: Duration, events: Arc<EventLog>) -> Self {
        Link {
            wire: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            http_timeout,
            events,
        }
    }

    /// Queues a line for the process, never blocking. False when no process is serving or
    /// the line did not fit (then the process is marked hung).
    pub(crate) fn send(&self, line: &ToProcess<'_>) -> bool {
        let guard = lock(&self.wire);
        let Some(wire) = guard.as_ref() else {
            return false;
        };
        match wire.tx.try_send(line.encode()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                wire.hung.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether a process is serving.
    pub(crate) fn is_up(&self) -> bool {
        lock(&self.wire).is_some()
    }

    /// A (re)started process serves from now on.
    pub(crate) fn attach(&self, wire: Wire) {
        *lock(&self.wire) = Some(wire);
    }

    /// The process is gone: nothing more is queued for it, and every HTTP request waiting for
    /// it is answered at once (with the 500 page).
    pub(crate) fn detach(&self) {
        *lock(&self.wire) = None;
        lock(&self.pending).clear();
    }

    /// Hands the answer to request `id` over; false when nobody waits for it (late or unknown).
    pub(crate) fn resolve(&self, id: u64, response: HttpResponse) -> bool {
        match lock(&self.pending).remove(&id) {
            Some(tx) => tx.send(response).is_ok(),
            None => false,
        }
    }

    /// Asks the process to answer an HTTP request, waiting at most the HTTP timeout; a request
    /// it does not answer in time (or cannot take) gets ESP-IDF's 500 page, with an event.
    pub(crate) async fn http(&self, request: &HttpRequest<'_>) -> HttpResponse {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let why = if self.send(&ToProcess::HttpRequest { id, request }) {
            match tokio::time::timeout(self.http_timeout, rx).await {
                Ok(Ok(response)) => return response,
                Ok(Err(_)) => "the device process went away before answering".to_owned(),
                Err(_) => format!(
                    "no http_response within {} ms",
                    self.http_timeout.as_millis()
                ),
            }
        } else {
            "the device process is not taking requests".to_owned()
        };
        lock(&self.pending).remove(&id);
        self.events.emit(EventKind::DeviceAction {
            action: "process_http_timeout".to_owned(),
            detail: format!(
                "{} {}: {why}; answered 500",
                request.method,
                super::protocol::cut(request.path, 200)
            ),
        });
        internal_error()
    }
}

/// ESP-IDF's `httpd_resp_send_500` page.
fn internal_error() -> HttpResponse {
    HttpResponse {
        status: 500,
        headers: vec![("Content-Type".to_owned(), "text/html".to_owned())],
        body: b"Server has encountered an unexpected error".to_vec(),
        label: "process_http_timeout".to_owned(),
    }
}

/// Plain data a panic cannot leave worse than half-updated: a poisoned lock is recovered.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
