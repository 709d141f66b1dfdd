//! The control API: an HTTP/JSON API on its own port that steers a running emulator.
//!
//! Tests and CI scripts use it to change the fault plan, the internet mode and the board while
//! an app is connected, and to follow the event log live. It is not part of the emulated
//! device, so it listens on its own (loopback by default) address.
//!
//! | method | path | does |
//! |---|---|---|
//! | `GET` | `/faults` | the active rules with their ids |
//! | `POST` | `/faults` | adds one rule or a list (JSON or YAML by `Content-Type`) |
//! | `DELETE` | `/faults/{id}` | removes a rule |
//! | `POST` | `/reset` | removes every rule and restores the start internet mode |
//! | `GET` | `/state` | seed, uptime, profile, internet mode, sessions, rules |
//! | `PUT` | `/internet` | `{"mode":"offline"}` switches what connectivity checks see |
//! | `POST` | `/button` | presses the simulated board's button |
//! | `GET` | `/events?from=SEQ` | the event log from `SEQ`, then live, as JSON lines |
//!
//! Every error is `{"error": "..."}` with a fitting status (`layers` makes sure of it). With a
//! token, every request needs `Authorization: Bearer <token>`. Bodies are limited to
//! [`BODY_LIMIT`].

mod error;
mod event_stream;
mod layers;
mod routes;
mod rules;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::context::Shared;
use crate::internet::InternetMode;

/// Largest request body the API accepts (a fault list is a few hundred bytes); more is 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The default control address of `espsim run`.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8475);

/// Where and how the control API listens.
#[derive(Clone, PartialEq, Eq)]
pub struct ControlOptions {
    /// Listen address; a non-loopback address requires `token`.
    pub addr: SocketAddr,
    /// Bearer token every request must carry; `None` = no authentication (loopback only).
    pub token: Option<String>,
}

impl std::fmt::Debug for ControlOptions {
    // The token is a secret: never in logs or debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlOptions")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ControlOptions {
    /// Loopback, no token, on `port` (0 = ephemeral, for tests).
    pub fn loopback(port: u16) -> Self {
        ControlOptions {
            addr: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
            token: None,
        }
    }

    /// True when the address is reachable only from this machine, so running without a token
    /// cannot hand the fault plan to the network.
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }

    /// True when the options are safe to serve: loopback, or a non-empty token.
    pub fn is_safe(&self) -> bool {
        self.is_loopback() || self.token.as_ref().is_some_and(|t| !t.is_empty())
    }
}

/// What the handlers share: the emulator and what `/reset` restores.
pub(crate) struct ControlState {
    shared: Arc<Shared>,
    start_internet: InternetMode,
    token: Option<String>,
}

impl std::fmt::Debug for ControlState {
    // Like `ControlOptions`: the token stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("start_internet", &self.start_internet)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The API with its layers, ready to serve.
pub(crate) fn router(
    shared: Arc<Shared>,
    start_internet: InternetMode,
    token: Option<String>,
) -> Router {
    let state = Arc::new(ControlState {
        shared,
        start_internet,
        token: token.filter(|t| !t.is_empty()),
    });
    layers::wrap(routes::routes(state.clone()), state)
}

/// Serves the API on `listener` until the emulator's shutdown token is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    start_internet: InternetMode,
    token: Option<String>,
) {
    let cancel = shared.cancel.clone();
    let app = router(shared, start_internet, token);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!("control API stopped: {e}");
    }
}
