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
//! | `POST` | `/send` | sends a message to one session or all, as the device logic would |
//! | `GET` | `/device/state` | the device logic's state variables |
//! | `PATCH` | `/device/state` | sets state variables (`{"name": value}`) |
//! | `GET` | `/events?from=SEQ` | the event log from `SEQ`, then live, as JSON lines |
//! | `GET` | `/` | the live dashboard (page and assets need no token; they hold no data) |
//! | `POST` | `/login` | form field `token`: answers a session cookie for the dashboard |
//! | `POST` | `/logout` | ends the dashboard session |
//!
//! Every error is `{"error": "...", "code": "..."}` ([`api::ErrorBody`]) with a fitting status
//! (`layers` makes sure of it). The request and answer types are in [`api`], shared with the
//! CLI's client (`espsim fault`).
//!
//! Security model (see [`ControlAuth`]): every request needs `Authorization: Bearer <token>`
//! (or the live dashboard's session cookie from `POST /login`) unless the user opted out; a
//! `Host` that is not an IP literal, `localhost` or an allowed name is refused (DNS rebinding);
//! a request with an `Origin` not explicitly allowed (or the API's own, the dashboard's) is
//! refused, and only allowed origins get CORS headers. A request that changes something with
//! the cookie must come from the API's own origin (CSRF). Bodies are limited to
//! [`BODY_LIMIT`]; connections by [`ControlLimits`].

pub mod api;
mod dashboard;
mod device;
mod error;
mod event_stream;
mod layers;
mod listener;
mod routes;
mod rules;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use espsim_faults::FaultPlan;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::device_host::DeviceHost;
use crate::events::EventLog;
use crate::internet::Internet;
use crate::internet::InternetMode;
use crate::lifecycle::Lifecycle;
use crate::profile::Profile;

/// Largest request body the API accepts (a fault list is a few hundred bytes); more is 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The default control address of `espsim run`.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8475);

/// Bytes of randomness in a generated token (128 bits), written as 32 hex digits.
const TOKEN_BYTES: usize = 16;

/// How the API knows a request comes from someone allowed to steer the emulator.
///
/// A token is the default because "loopback only" is not a boundary: every web page the
/// developer opens runs on this machine too, and a page can send requests to
/// `http://127.0.0.1:8475` (and reach it by a rebound DNS name).
#[derive(Clone, PartialEq, Eq)]
pub enum ControlAuth {
    /// A random 128-bit token made at start; [`crate::RunningEmulator::control_token`] tells it.
    Generate,
    /// Every request must carry `Authorization: Bearer <token>` (non-empty).
    Token(String),
    /// No token: any process on the machine can add faults, switch the internet mode and press
    /// the button. Only on a loopback address; the `Host` and `Origin` checks still apply.
    Insecure,
}

impl std::fmt::Debug for ControlAuth {
    // A token is a secret: never in logs or debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlAuth::Generate => f.write_str("Generate"),
            ControlAuth::Token(_) => f.write_str("Token(<redacted>)"),
            ControlAuth::Insecure => f.write_str("Insecure"),
        }
    }
}

/// Bounds on what the API's clients may hold, so a client (or a thousand) cannot take the
/// process's file descriptors or the API away from everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLimits {
    /// A connection must deliver a complete request head within this time of opening and of
    /// its previous response (so it is both the header-read and the keep-alive idle timeout),
    /// and a request body must arrive completely within this time of its head.
    pub head_timeout: Duration,
    /// Connections served at once; one more is answered `503` and closed at once.
    pub max_connections: usize,
}

impl ControlLimits {
    /// Longest [`ControlLimits::head_timeout`] accepted.
    pub const MAX_HEAD_TIMEOUT: Duration = Duration::from_secs(3600);
    /// Largest [`ControlLimits::max_connections`] accepted.
    pub const MAX_CONNECTIONS: usize = 4096;
}

impl Default for ControlLimits {
    /// 30 s to send a request head (curl and test clients send it at once; a keep-alive pool
    /// reconnects after that), 64 connections (room for many `GET /events` followers).
    fn default() -> Self {
        ControlLimits {
            head_timeout: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

/// Where and how the control API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlOptions {
    /// Listen address; a non-loopback address requires a token.
    pub addr: SocketAddr,
    /// Token policy.
    pub auth: ControlAuth,
    /// `Host` names accepted besides IP literals and `localhost` (the defence against DNS
    /// rebinding: a page on `evil.example` that rebinds its name to 127.0.0.1 still sends
    /// `Host: evil.example`). Case-insensitive, without port.
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`http://localhost:3000`) that may call the API: they get CORS headers;
    /// a request with any other `Origin` is refused. Empty: no CORS headers at all.
    pub allowed_origins: Vec<String>,
    /// Timeouts and the connection cap.
    pub limits: ControlLimits,
}

impl ControlOptions {
    /// Loopback on `port` (0 = ephemeral, for tests) with a generated token.
    pub fn loopback(port: u16) -> Self {
        ControlOptions {
            addr: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
            auth: ControlAuth::Generate,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            limits: ControlLimits::default(),
        }
    }

    /// The same options with another token policy.
    pub fn with_auth(mut self, auth: ControlAuth) -> Self {
        self.auth = auth;
        self
    }

    /// True when the address is reachable only from this machine.
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }

    /// True when the options are safe to serve: a token (generated or a non-empty one), or no
    /// token on a loopback address.
    pub fn is_safe(&self) -> bool {
        match &self.auth {
            ControlAuth::Generate => true,
            ControlAuth::Token(t) => !t.is_empty(),
            ControlAuth::Insecure => self.is_loopback(),
        }
    }

    /// Checks the lists and limits and makes the token: what [`serve`] runs with.
    pub(crate) fn settle(&self) -> Result<Settings, ControlError> {
        let token = match &self.auth {
            ControlAuth::Generate => Some(Secret(generate_token()?)),
            ControlAuth::Token(t) if t.is_empty() => return Err(ControlError::EmptyToken),
            ControlAuth::Token(t) => Some(Secret(t.clone())),
            ControlAuth::Insecure => None,
        };
        let allowed_hosts = self
            .allowed_hosts
            .iter()
            .map(|h| check_host_name(h))
            .collect::<Result<_, _>>()?;
        let allowed_origins = self
            .allowed_origins
            .iter()
            .map(|o| check_origin(o))
            .collect::<Result<_, _>>()?;
        let limits = self.limits;
        if limits.head_timeout.is_zero() || limits.head_timeout > ControlLimits::MAX_HEAD_TIMEOUT {
            return Err(ControlError::Limit(format!(
                "head timeout {:?} must be above 0 and at most {:?}",
                limits.head_timeout,
                ControlLimits::MAX_HEAD_TIMEOUT
            )));
        }
        if limits.max_connections == 0 || limits.max_connections > ControlLimits::MAX_CONNECTIONS {
            return Err(ControlError::Limit(format!(
                "max connections {} must be 1 to {}",
                limits.max_connections,
                ControlLimits::MAX_CONNECTIONS
            )));
        }
        Ok(Settings {
            token,
            allowed_hosts,
            allowed_origins,
            limits,
        })
    }
}

/// Why the control API's options cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The OS random source failed while making a token.
    #[error("cannot generate a control API token: the OS random source failed: {0}")]
    Random(String),
    /// `ControlAuth::Token("")`.
    #[error(
        "the control API token is empty (give one, let espsim generate one, or opt out explicitly)"
    )]
    EmptyToken,
    /// An allowed host is not a plain DNS name.
    #[error(
        "control API allowed host `{0}` is not a host name (letters, digits, `-`, `.`; no port)"
    )]
    Host(String),
    /// An allowed origin is not `scheme://host[:port]`.
    #[error(
        "control API allowed origin `{0}` is not an origin like http://localhost:3000 (scheme://host[:port], no path)"
    )]
    Origin(String),
    /// A limit is out of range.
    #[error("control API limit out of range: {0}")]
    Limit(String),
}

/// A token as the running API holds it: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Checked options the API serves with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `None`: [`ControlAuth::Insecure`].
    pub(crate) token: Option<Secret>,
    /// Lower-case host names.
    pub(crate) allowed_hosts: Vec<String>,
    /// Exact origins.
    pub(crate) allowed_origins: Vec<HeaderValue>,
    pub(crate) limits: ControlLimits,
}

/// A fresh random token: 128 bits from the OS, as 32 lower-case hex digits (safe in a header,
/// a shell variable and a URL).
pub fn generate_token() -> Result<String, ControlError> {
    use rand::TryRngCore;
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ControlError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn check_host_name(name: &str) -> Result<String, ControlError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ControlError::Host(name.to_owned()))
    }
}

fn check_origin(origin: &str) -> Result<HeaderValue, ControlError> {
    let bad = || ControlError::Origin(origin.to_owned());
    let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'));
    if !(scheme_ok && rest_ok) {
        return Err(bad());
    }
    HeaderValue::from_str(origin).map_err(|_| bad())
}

/// What the control API acts on: the fault plan and run clock, the event log, the device, the
/// internet mode and the profile it reports.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Rules to list, add and remove; the run clock.
    pub(crate) faults: Arc<FaultPlan>,
    /// The log the event stream follows; the API's own actions are recorded there.
    pub(crate) events: Arc<EventLog>,
    /// The button and the session count.
    pub(crate) device: Arc<DeviceHost>,
    /// Switched by `/internet` and `/reset`.
    pub(crate) internet: Internet,
    /// Reported by `/state`.
    pub(crate) profile: Arc<Profile>,
}

/// What the handlers share: the emulator and what `/reset` restores.
pub(crate) struct ControlState {
    target: Target,
    /// The emulator's shutdown: ends the live event streams.
    cancel: CancellationToken,
    start_internet: InternetMode,
    settings: Settings,
    sessions: session::Sessions,
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("start_internet", &self.start_internet)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The API with its layers, ready to serve.
pub(crate) fn router(
    target: Target,
    cancel: CancellationToken,
    start_internet: InternetMode,
    settings: Settings,
) -> Router {
    let state = Arc::new(ControlState {
        target,
        cancel,
        start_internet,
        settings,
        sessions: session::Sessions::default(),
    });
    let routes = routes::routes(state.clone()).merge(dashboard::routes(state.clone()));
    layers::wrap(routes, state)
}

/// Serves the API on `listener` until the emulator's shutdown token is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    target: Target,
    lifecycle: Lifecycle,
    start_internet: InternetMode,
    settings: Settings,
) {
    let Lifecycle {
        cancel, tracker, ..
    } = lifecycle;
    let limits = settings.limits;
    let app = router(target, cancel.clone(), start_internet, settings);
    listener::run(listener, app, limits, cancel, tracker).await;
}
