//! The WebSocket endpoint: ESP-IDF's handshake checks, then a session with the handles firmware.
//!
//! - [`handshake`]: the checks and the exact `101` (pure functions of the request head);
//! - [`session`]: frames ↔ [`crate::device_host::DeviceHost`], with ESP-IDF's control-frame and close
//!   behaviour, and the WebSocket message faults;
//! - [`preview`]: the redacted first characters of a message, for its event;
//! - [`message_fault`]: the bytes of the WebSocket action faults (close, corrupt frames, …);
//! - [`upgrade_fault`]: handshake faults (RST, FIN, a status, a broken `101`, a delay);
//! - [`tap`]: a filter under tungstenite that can swallow the device's PONG (`suppress_pong`);
//! - [`transport`]: the service a connection arrived on and how to reset it.
//!
//! The HTTP server calls [`handle_upgrade`] for every request on the WebSocket path; from then on
//! this module owns the connection.

pub(crate) mod handshake;
mod message_fault;
mod preview;
mod session;
mod tap;
mod transport;
mod upgrade_fault;

pub(crate) use self::transport::Transport;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use espsim_faults::{Applied, ConnRef, FaultPlan, HandshakeInfo, MessageMatch};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::WsSettings;
use crate::device_host::DeviceHost;
use crate::events::{ConnId, EventKind, EventLog, Side};
use crate::http::head::RequestHead;
use crate::lifecycle::{Counter, Lifecycle};
use crate::profile::Profile;
use crate::sockets::ConnHandle;

use self::handshake::{Decision, Reply};

/// What the WebSocket endpoint and its sessions use: the endpoint settings and limits, the
/// device host the sessions talk to, the fault plan, the event log and the shutdown.
#[derive(Debug)]
pub(crate) struct Handles {
    /// The endpoints' paths and subprotocols (never empty; the first is the primary one).
    pub(crate) endpoints: Vec<WsSettings>,
    /// Matchers each app message is tested against for its event (`watched`).
    pub(crate) watched: Arc<[MessageMatch]>,
    /// Handshake limits, message size limit, close behaviour.
    pub(crate) profile: Arc<Profile>,
    /// The firmware, shared by every session.
    pub(crate) device: Arc<DeviceHost>,
    /// Handshake, message and tick faults; `after:` events observed.
    pub(crate) faults: Arc<FaultPlan>,
    /// The run clock and where the sessions are recorded.
    pub(crate) events: Arc<EventLog>,
    /// Sessions end on shutdown, within its close deadline.
    pub(crate) lifecycle: Lifecycle,
    /// Upgrade ordinals, shared by the HTTP and HTTPS ports.
    pub(crate) upgrades: Counter,
}

impl Handles {
    /// The endpoint at exactly `path`.
    pub(crate) fn endpoint(&self, path: &str) -> Option<&WsSettings> {
        self.endpoints.iter().find(|e| e.path == path)
    }

    /// The primary endpoint's path (the first), for the portal page's URL.
    pub(crate) fn primary_path(&self) -> &str {
        self.endpoints.first().map_or("/ws", |e| e.path.as_str())
    }
}

/// Handles a request for the WebSocket path: ESP-IDF's handshake checks, the `101` (or the
/// rejection), then the session until it ends. `leftover` holds bytes read past the request head.
/// Owns the connection: when it returns, the connection is closed.
///
/// A request that passes the checks is an upgrade attempt: it takes the next upgrade ordinal
/// (what `when: { connections: … }` counts for handshake and message faults) and the fault plan
/// decides whether a handshake fault replaces the normal `101`.
pub(crate) async fn handle_upgrade<S>(
    mut io: S,
    leftover: Vec<u8>,
    head: RequestHead,
    conn: ConnHandle,
    handles: Arc<Handles>,
) where
    S: AsyncRead + AsyncWrite + Transport + Unpin + Send + 'static,
{
    // The router sent only requests for one of the endpoints' paths.
    let Some(settings) = handles.endpoint(&head.path) else {
        tracing::debug!(conn = conn.id, path = %head.path, "no WebSocket endpoint at this path");
        return;
    };
    let accept = match handshake::decide(&head, settings, &handles.profile) {
        Decision::Upgrade(accept) => accept,
        Decision::Reject(rejection) => {
            handles.events.emit(EventKind::WsRejected {
                conn: conn.id,
                reason: rejection.reason.clone(),
                status: rejection.status(),
            });
            match rejection.reply {
                // Dropping `io` closes the socket with nothing written.
                Reply::SilentClose => {}
                Reply::Status(response) => {
                    if let Err(e) = crate::http::response::write(&response, &mut io).await {
                        tracing::debug!(conn = conn.id, "writing the rejection failed: {e}");
                    }
                    let _ = io.shutdown().await;
                }
                Reply::NoResponse => hold_unanswered(io, &conn, &handles).await,
            }
            return;
        }
    };

    let fault_conn = ConnRef {
        service: io.service(),
        ordinal: handles.upgrades.next(),
    };
    let fault = handles.faults.on_handshake(HandshakeInfo {
        conn: fault_conn,
        elapsed: handles.events.elapsed(),
        host: head.header("host"),
        path: &head.path,
    });
    if let Some(applied) = fault {
        fault_applied(
            &handles,
            conn.id,
            &applied,
            upgrade_fault::describe(&applied.fault),
        );
        let stop = handles.lifecycle.cancel.child_token();
        let purged = conn.purged().clone();
        let stopper = stop.clone();
        let watch = async move {
            purged.cancelled().await;
            stopper.cancel();
        };
        let executed = upgrade_fault::execute(
            io,
            &applied.fault,
            &accept,
            handles.profile.modern_error_bodies,
            &stop,
        );
        let next = tokio::select! {
            next = executed => next,
            () = watch => upgrade_fault::Next::Ended,
        };
        match next {
            upgrade_fault::Next::Session(rest) => io = rest,
            upgrade_fault::Next::Ended => {
                handles.faults.connection_closed(fault_conn);
                return;
            }
        }
    } else {
        let written = async {
            io.write_all(&accept.response).await?;
            io.flush().await
        };
        if let Err(e) = written.await {
            handles.events.emit(EventKind::WsClosed {
                conn: conn.id,
                by: Side::Client,
                code: None,
                reason: format!("writing the 101 failed: {e}"),
                clean: false,
            });
            handles.faults.connection_closed(fault_conn);
            return;
        }
    }
    let authorized = match (handles.device.auth_token(), accept.token.as_deref()) {
        (Some(expected), Some(given)) => expected == given,
        _ => false,
    };
    handles.events.emit(EventKind::WsOpened {
        conn: conn.id,
        path: head.path.clone(),
        subprotocol: accept.subprotocol.clone(),
    });
    let upgrade = session::Upgrade {
        path: head.path,
        query: head.query,
        headers: head.headers,
        authorized,
    };
    session::run(io, leftover, conn, fault_conn, handles.clone(), upgrade).await;
    handles.faults.connection_closed(fault_conn);
}

/// Records that a fault rule fired (`fault_applied`), with the fault as the scenario wrote it.
pub(crate) fn fault_applied<F: Serialize>(
    handles: &Handles,
    conn: ConnId,
    applied: &Applied<F>,
    detail: String,
) {
    let fault = serde_json::to_value(&applied.fault).unwrap_or(serde_json::Value::Null);
    tracing::debug!(conn, rule = applied.rule.0, %fault, "{detail}");
    handles.events.emit(EventKind::FaultApplied {
        conn: Some(conn),
        rule: applied.rule.0,
        fault,
        detail,
    });
}

/// ESP-IDF ran the handler as a plain GET and it sent nothing: the socket stays open, unanswered,
/// until the app closes it, LRU purge or shutdown. What the app sends meanwhile is discarded
/// (bounded: at most `MAX_DISCARD` bytes, then the connection is closed).
async fn hold_unanswered<S>(mut io: S, conn: &ConnHandle, handles: &Handles)
where
    S: AsyncRead + Unpin,
{
    const MAX_DISCARD: usize = 64 * 1024;
    let mut buf = [0u8; 1024];
    let mut discarded = 0;
    while discarded < MAX_DISCARD {
        tokio::select! {
            () = conn.purged().cancelled() => return,
            () = handles.lifecycle.cancel.cancelled() => return,
            n = io.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            },
        }
    }
}
