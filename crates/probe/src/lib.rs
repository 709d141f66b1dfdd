//! espsim-probe: `espsim probe`, a layered diagnosis of an app → device connection (real ESP32
//! or emulator). It depends on [`espsim_protocol`] and the network libraries only, never on the
//! emulator, so diagnosing a real board does not pull in a server.
//!
//! [`run`] walks the layers a WebSocket client goes through, in the order it goes through them,
//! and stops at the first one that fails (later layers are reported as `skipped`):
//!
//! | layer | module | what it checks |
//! |---|---|---|
//! | `uri` | [`target`] | the URL itself: implicit port (Dart's `:0`), port 0, `http://`, trailing slash |
//! | `dns` | [`dns`] | A query over UDP (hickory-proto, no system resolver), captive wildcard |
//! | `tcp` | [`net`] | connected / refused / timed out / unreachable |
//! | `tls` | [`tls`] | (wss only) certificate subject, self-signed, expiry, name match |
//! | `http` | [`http`] | `GET /`: status, does it look like ESP-IDF's `esp_http_server` |
//! | `connectivity` | [`connectivity`] | Android/Apple/Windows probe URLs: what each OS concludes |
//! | `websocket` | [`ws`] | `101`, `Sec-WebSocket-Accept`, subprotocol, or the failure shape |
//! | `protocol` | [`session`] | `hello` → `welcome`: firmware and protocol versions |
//! | `round_trip` | [`session`] | N app pings (p50/p99), WebSocket ping → pong |
//!
//! TLS comes right after TCP because that is where a wss client does it (the issue lists it last).
//!
//! # JSON report (`schema_version` 1)
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "url": "ws://192.168.4.1/ws",            // as given
//!   "ok": true,                                // no layer failed (warnings allowed)
//!   "failed_layer": null,                      // or the id of the failing layer
//!   "layers": [                                // always all nine, in the order above
//!     {
//!       "layer": "uri" | "dns" | "tcp" | "tls" | "http" | "connectivity" | "websocket"
//!                | "protocol" | "round_trip",
//!       "verdict": "pass" | "warn" | "fail" | "skipped",
//!       "duration_ms": 1.2 | null,             // null when skipped
//!       "summary": "one line",
//!       "hint": "what to do" | null,
//!       "details": { … } | null                // per layer, see the *Details structs
//!     }
//!   ]
//! }
//! ```
//! Fields are only ever added within a schema version; enum-like strings are snake_case.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod connectivity;
pub mod dns;
pub mod http;
pub mod net;
pub mod session;
pub mod target;
pub mod tls;
pub mod ws;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::connectivity::{ConnectivityCheck, ConnectivityDetails, OsConclusion};
pub use self::dns::DnsDetails;
pub use self::http::{HttpDetails, ServerLooks};
pub use self::net::{TcpDetails, TcpOutcome};
pub use self::session::{ProtocolDetails, RoundTripDetails};
pub use self::target::{Finding, Scheme, Target, UriDetails, UrlError};
pub use self::tls::TlsDetails;
pub use self::ws::{WsDetails, WsOutcome};

/// Version of the JSON report's shape; bumped only on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What to probe and how: start from [`ProbeOptions::new`], then set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProbeOptions {
    /// `ws://`, `wss://` (or `http://`/`https://`, linted and probed as `ws://`/`wss://`).
    pub url: String,
    /// DNS server to ask; `None`: the first `nameserver` of [`ProbeOptions::resolv_conf`].
    pub dns: Option<SocketAddr>,
    /// Where to find the system's nameserver when `dns` is not given.
    pub resolv_conf: PathBuf,
    /// Limit for each network operation (one DNS query, one connect, one response…).
    pub timeout: Duration,
    /// Token sent in `hello`, for devices that require one.
    pub token: Option<String>,
    /// Number of app-level pings for the round-trip layer.
    pub samples: u32,
    /// Subprotocol to offer in the upgrade (`Sec-WebSocket-Protocol`).
    pub subprotocol: Option<String>,
    /// Port the OS connectivity checks go to (plain HTTP). `None`: the URL's port for `ws://`,
    /// 80 for `wss://` (phones probe over plain HTTP).
    pub http_port: Option<u16>,
    /// The device's own protocol: the message to send and the answer to wait for, in place of
    /// espsim's `hello` → `welcome` and app pings. `None`: espsim's protocol.
    pub hello: Option<CustomHello>,
}

/// One exchange of a device's own protocol, for the `protocol` and `round_trip` layers.
#[derive(Debug, Clone)]
pub struct CustomHello {
    /// The text message to send, as is.
    pub send: String,
    /// The answer: the first text message this regex finds a match in (other messages, such
    /// as a greeting or telemetry, are skipped). `None`: any text message.
    pub expect: Option<regex::Regex>,
}

impl ProbeOptions {
    /// Options with the defaults: system nameserver, 5 s timeout, 5 samples.
    pub fn new(url: impl Into<String>) -> Self {
        ProbeOptions {
            url: url.into(),
            dns: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            timeout: Duration::from_secs(5),
            token: None,
            samples: 5,
            subprotocol: None,
            http_port: None,
            hello: None,
        }
    }
}

/// The layers, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerId {
    /// URL lint.
    Uri,
    /// Name resolution.
    Dns,
    /// TCP connect.
    Tcp,
    /// TLS handshake and certificate (wss only).
    Tls,
    /// `GET /`.
    Http,
    /// OS connectivity checks.
    Connectivity,
    /// WebSocket upgrade.
    Websocket,
    /// `hello` → `welcome`.
    Protocol,
    /// Pings.
    RoundTrip,
}

impl LayerId {
    /// Every layer, in order.
    pub const ALL: [LayerId; 9] = [
        LayerId::Uri,
        LayerId::Dns,
        LayerId::Tcp,
        LayerId::Tls,
        LayerId::Http,
        LayerId::Connectivity,
        LayerId::Websocket,
        LayerId::Protocol,
        LayerId::RoundTrip,
    ];

    /// The id as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerId::Uri => "uri",
            LayerId::Dns => "dns",
            LayerId::Tcp => "tcp",
            LayerId::Tls => "tls",
            LayerId::Http => "http",
            LayerId::Connectivity => "connectivity",
            LayerId::Websocket => "websocket",
            LayerId::Protocol => "protocol",
            LayerId::RoundTrip => "round_trip",
        }
    }
}

/// A layer's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerVerdict {
    /// Works as an app needs it.
    Pass,
    /// Works, but something will bite (read the hint).
    Warn,
    /// Broken here; later layers were not run.
    Fail,
    /// Not run: not applicable, or an earlier layer failed.
    Skipped,
}

impl LayerVerdict {
    /// The verdict as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerVerdict::Pass => "pass",
            LayerVerdict::Warn => "warn",
            LayerVerdict::Fail => "fail",
            LayerVerdict::Skipped => "skipped",
        }
    }
}

/// Layer-specific facts; which variant is used follows from [`LayerReport::layer`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Details {
    /// Layer `uri`.
    Uri(UriDetails),
    /// Layer `dns`.
    Dns(DnsDetails),
    /// Layer `tcp`.
    Tcp(TcpDetails),
    /// Layer `tls`.
    Tls(TlsDetails),
    /// Layer `http`.
    Http(HttpDetails),
    /// Layer `connectivity`.
    Connectivity(ConnectivityDetails),
    /// Layer `websocket`.
    Websocket(WsDetails),
    /// Layer `protocol`.
    Protocol(ProtocolDetails),
    /// Layer `round_trip`.
    RoundTrip(RoundTripDetails),
}

/// One layer's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Which layer.
    pub layer: LayerId,
    /// Its outcome.
    pub verdict: LayerVerdict,
    /// Wall time spent in the layer, milliseconds (0.01 resolution); `None` when skipped.
    pub duration_ms: Option<f64>,
    /// One line saying what was seen.
    pub summary: String,
    /// What it likely means and what to do.
    pub hint: Option<String>,
    /// Layer-specific facts.
    pub details: Option<Details>,
}

impl LayerReport {
    fn skipped(layer: LayerId, why: &str) -> Self {
        LayerReport {
            layer,
            verdict: LayerVerdict::Skipped,
            duration_ms: None,
            summary: why.to_owned(),
            hint: None,
            details: None,
        }
    }
}

/// The outcome of a whole probe; `Serialize` gives the documented JSON (module docs).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The URL as given.
    pub url: String,
    /// `true` when no layer failed.
    pub ok: bool,
    /// The layer that failed, if any.
    pub failed_layer: Option<LayerId>,
    /// All nine layers, in order.
    pub layers: Vec<LayerReport>,
}

impl ProbeReport {
    /// The report of `layer`.
    pub fn layer(&self, layer: LayerId) -> Option<&LayerReport> {
        self.layers.iter().find(|l| l.layer == layer)
    }
}

/// What a layer function returns: verdict, summary, hint, details (timing is added by [`run`]).
#[derive(Debug)]
pub(crate) struct LayerResult {
    pub(crate) verdict: LayerVerdict,
    pub(crate) summary: String,
    pub(crate) hint: Option<String>,
    pub(crate) details: Option<Details>,
}

impl LayerResult {
    pub(crate) fn new(verdict: LayerVerdict, summary: impl Into<String>) -> Self {
        LayerResult {
            verdict,
            summary: summary.into(),
            hint: None,
            details: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub(crate) fn details(mut self, details: Details) -> Self {
        self.details = Some(details);
        self
    }
}

/// Collects layer reports and stops the walk at the first failure.
#[derive(Debug)]
struct Walk {
    layers: Vec<LayerReport>,
    failed: Option<LayerId>,
}

impl Walk {
    fn record(&mut self, layer: LayerId, started: Instant, outcome: LayerResult) -> bool {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if outcome.verdict == LayerVerdict::Fail && self.failed.is_none() {
            self.failed = Some(layer);
        }
        self.layers.push(LayerReport {
            layer,
            verdict: outcome.verdict,
            duration_ms: Some((ms * 100.0).round() / 100.0),
            summary: outcome.summary,
            hint: outcome.hint,
            details: outcome.details,
        });
        outcome.verdict != LayerVerdict::Fail
    }

    fn skip(&mut self, layer: LayerId, why: &str) {
        self.layers.push(LayerReport::skipped(layer, why));
    }

    fn finish(mut self, url: String) -> ProbeReport {
        for layer in LayerId::ALL {
            if !self.layers.iter().any(|l| l.layer == layer) {
                let why = match self.failed {
                    Some(f) => format!("not run: {} failed", f.as_str()),
                    None => "not run".to_owned(),
                };
                self.layers.push(LayerReport::skipped(layer, &why));
            }
        }
        self.layers.sort_by_key(|l| {
            LayerId::ALL
                .iter()
                .position(|id| *id == l.layer)
                .unwrap_or(usize::MAX)
        });
        ProbeReport {
            schema_version: SCHEMA_VERSION,
            url,
            ok: self.failed.is_none(),
            failed_layer: self.failed,
            layers: self.layers,
        }
    }
}

/// Why a probe could not even start (the CLI's usage error, exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The URL is not one a WebSocket client could use.
    #[error("invalid url")]
    Url(#[from] UrlError),
    /// `samples` must be at least 1.
    #[error("--samples must be at least 1")]
    NoSamples,
}

/// Probes `options.url` layer by layer. Network trouble is never an `Err`: it is a failing
/// layer in the report. `Err` only for a URL no client could use.
pub async fn run(options: ProbeOptions) -> Result<ProbeReport, ProbeError> {
    if options.samples == 0 {
        return Err(ProbeError::NoSamples);
    }
    let started = Instant::now();
    let target = Target::parse(&options.url)?;
    let mut walk = Walk {
        layers: Vec::new(),
        failed: None,
    };
    walk.record(LayerId::Uri, started, target::lint(&target));

    // DNS.
    let started = Instant::now();
    let ip: IpAddr = match target.ip_literal() {
        Some(ip) => {
            let why = if target.host == "localhost" {
                "localhost is never sent to DNS (RFC 6761): 127.0.0.1"
            } else {
                "host is an IP address"
            };
            walk.skip(LayerId::Dns, why);
            ip
        }
        None => {
            let (outcome, ip) = dns::probe(&target.host, &options).await;
            let go_on = walk.record(LayerId::Dns, started, outcome);
            match ip {
                Some(ip) if go_on => ip,
                _ => return Ok(walk.finish(options.url)),
            }
        }
    };
    let addr = SocketAddr::new(ip, target.port);
    let http_port = options.http_port.unwrap_or(match target.scheme {
        Scheme::Ws => target.port,
        Scheme::Wss => 80,
    });

    // TCP.
    let started = Instant::now();
    let outcome = net::probe(addr, &target, http_port, options.timeout).await;
    if !walk.record(LayerId::Tcp, started, outcome) {
        return Ok(walk.finish(options.url));
    }

    // TLS.
    let tls = match target.scheme {
        Scheme::Ws => {
            walk.skip(LayerId::Tls, "ws:// has no TLS");
            None
        }
        Scheme::Wss => {
            let started = Instant::now();
            let (outcome, config) = tls::probe(addr, &target, options.timeout).await;
            if !walk.record(LayerId::Tls, started, outcome) {
                return Ok(walk.finish(options.url));
            }
            config
        }
    };
    let dial = net::Dialer::new(addr, &target, tls, options.timeout);

    // HTTP.
    let started = Instant::now();
    if !walk.record(LayerId::Http, started, http::probe(&dial, &target).await) {
        return Ok(walk.finish(options.url));
    }

    // Connectivity checks (plain HTTP, like the phone does).
    let started = Instant::now();
    let plain = net::Dialer::new(
        SocketAddr::new(ip, http_port),
        &target,
        None,
        options.timeout,
    );
    walk.record(
        LayerId::Connectivity,
        started,
        connectivity::probe(&plain).await,
    );

    // WebSocket upgrade.
    let started = Instant::now();
    let (outcome, upgraded) = ws::probe(&dial, &target, options.subprotocol.as_deref()).await;
    let go_on = walk.record(LayerId::Websocket, started, outcome);
    let Some(upgraded) = upgraded.filter(|_| go_on) else {
        return Ok(walk.finish(options.url));
    };

    // Protocol and round trip on the upgraded connection.
    let started = Instant::now();
    let mut socket = upgraded.into_socket().await;
    let outcome = match &options.hello {
        None => session::hello(&mut socket, options.token.as_deref(), options.timeout).await,
        Some(custom) => session::custom_hello(&mut socket, custom, options.timeout).await,
    };
    if !walk.record(LayerId::Protocol, started, outcome) {
        return Ok(walk.finish(options.url));
    }
    let started = Instant::now();
    let exchange = match &options.hello {
        None => session::Exchange::Ping,
        Some(custom) => session::Exchange::Custom(custom),
    };
    let outcome =
        session::round_trip(&mut socket, &exchange, options.samples, options.timeout).await;
    walk.record(LayerId::RoundTrip, started, outcome);
    session::close(&mut socket, options.timeout).await;
    Ok(walk.finish(options.url))
}
