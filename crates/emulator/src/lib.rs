//! espsim-emulator: an ESP32 in softAP mode, on the network, faithful to ESP-IDF.
//!
//! [`Emulator::start`] binds every socket first (a taken port fails fast with a [`StartError`]),
//! then serves, under one shutdown signal:
//! - `dns`: the captive-portal DNS (every A query → the device IP), UDP and TCP;
//! - `http`: ESP-IDF's `esp_http_server` on the device port — connectivity checks per OS
//!   (`probes`), the portal page, ESP-IDF's error pages, header limits and socket limit;
//! - `ws`: the WebSocket endpoint with ESP-IDF's handshake checks, driving the firmware's
//!   `Device` (`device_host`), shared by all sessions;
//! - [`device_process`]: a device written in any language, a program espsim starts and talks
//!   to in JSON lines, supervised (crash, hang, garbage → restart like a rebooting chip);
//! - optionally the same over TLS (`tls`);
//! - optionally the [`control`] API on its own port: faults, internet mode, button, live events.
//!
//! [`config::DeviceSpec`] is the config file format (`espsim run --config`, a scenario's
//! `device:` section) that turns into an [`EmulatorConfig`].
//!
//! No service gets a bag of all state: each takes the handles it uses (its module's `Handles`,
//! `control::Target` or `timeline::Targets`), assembled in [`Emulator::start`] — the
//! `lifecycle` (shutdown and tasks), the device host (the firmware and the outage it
//! publishes), the internet mode, the socket table, the fault plan and the event log.
//!
//! Everything observable lands in the [`events::EventLog`]. Limits and quirks per ESP-IDF version
//! live in [`profile::Profile`]; the internet mode in [`internet::InternetMode`].
//!
//! Every service serves through [`net`]: the listeners and streams that carry out the fault
//! plan's decisions on real sockets (`espsim_faults` decides, without sockets). [`yaml`] is the
//! strict YAML reader of the control API's rule bodies, shared with the harness's files.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod device_process;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod internet;
pub mod net;
pub mod profile;
pub mod yaml;

mod device_host;
mod device_source;
mod dns;
mod http;
mod lifecycle;
mod sockets;
mod timeline;
mod tls;
mod ws;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use espsim_faults::{FaultPlan, FaultRule, MessageMatch, PlanError};
use tokio::net::TcpListener;

pub use crate::control::{ControlAuth, ControlLimits, ControlOptions};
pub use crate::device_host::DeviceOptions;
pub use crate::device_process::{ProcessError, ProcessSpec, RestartPolicy};
pub use crate::device_source::{DeviceSource, LogicFactory};
use crate::http::syn_watch::ArrivalStamps;
pub use crate::http::syn_watch::RefusedAttempts;
pub use crate::tls::{SelfSigned, TlsError, TlsOptions, self_signed};
pub use espsim_device_file as device_file;
pub use espsim_firmware::DeviceLogic;

use crate::device_host::DeviceHost;
use crate::events::{EventKind, EventLog, History};
use crate::internet::{Internet, InternetMode};
use crate::lifecycle::{Counter, Lifecycle};
use crate::profile::{ESP_IDF_BACKLOG_CONN, Profile};
use crate::sockets::SocketTable;

/// WebSocket endpoint settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// Exact-match path, as ESP-IDF registers it (`/ws` ≠ `/ws/`).
    pub path: String,
    /// The one subprotocol the URI supports; echoed only when the client offers it.
    pub subprotocol: Option<String>,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            path: "/ws".to_owned(),
            subprotocol: None,
        }
    }
}

/// Everything needed to start an emulator. `Default` gives loopback, ephemeral ports.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// HTTP/WebSocket listen address (the device's port 80).
    pub http: SocketAddr,
    /// HTTPS/wss listen address; used only when `tls` is set.
    pub https: SocketAddr,
    /// DNS listen address (UDP and TCP, same port); `None` runs no DNS.
    pub dns: Option<SocketAddr>,
    /// The softAP address DNS answers with.
    pub device_ip: Ipv4Addr,
    /// ESP-IDF limits and quirks.
    pub profile: Profile,
    /// Internet mode at start.
    pub internet: InternetMode,
    /// WebSocket endpoint.
    pub ws: WsSettings,
    /// Firmware settings (identity, auth token, provisioning timing); the token is checked at
    /// the handshake whatever the device logic.
    pub device: DeviceOptions,
    /// The logic behind the WebSocket and HTTP ports (default: the built-in firmware).
    pub device_logic: DeviceSource,
    /// The run's one seed: simulated sensors and every random fault decision.
    pub seed: u64,
    /// Fault rules active from the start (more can be added at run time via [`RunningEmulator::faults`]).
    pub faults: Vec<FaultRule>,
    /// Matchers every app message is tested against (at most [`MAX_WATCHED_MESSAGES`]): its
    /// `ws_message` event lists by index those that held (`watched`), so that a judge reading
    /// the log can match payloads the log does not keep (the harness's `sends` expectations).
    pub watched_messages: Vec<MessageMatch>,
    /// wss:// support.
    pub tls: Option<TlsOptions>,
    /// Also write every event as a JSON line here (bounded queue; a stuck disk gets an
    /// `event_file_gap` line instead of unbounded memory: see [`events::FILE_QUEUE`]).
    pub events_file: Option<PathBuf>,
    /// How many events the in-memory log keeps (the file gets all of them).
    pub event_history: History,
    /// The control API; `None` serves none.
    pub control: Option<ControlOptions>,
    /// When the run clock (fault windows, deadlines) starts.
    pub clock: RunClock,
    /// Whether connection attempts refused while the device port is closed (`refuse`,
    /// `reboot`) are counted with a raw socket (`tcp_refused`, needs CAP_NET_RAW) or only
    /// reported as unobserved (`refused_unobserved`). Default: counted when permitted.
    pub refused_attempts: RefusedAttempts,
    /// The emulator runs on the caller's paused Tokio clock (`espsim test --virtual-time`):
    /// every service is a task of the caller's runtime (UDP DNS gets no thread and runtime of
    /// its own, whose clock would be real), and events are stamped when espsim reads them
    /// (a kernel receive stamp is on the wall clock, which virtual time does not follow).
    /// Requires a current-thread runtime started paused; default `false`.
    pub virtual_time: bool,
}

impl EmulatorConfig {
    /// The WebSocket endpoints the device serves, never empty: the device file's `websocket:`
    /// entries when the logic is a device file, else [`EmulatorConfig::ws`] alone.
    pub fn ws_endpoints(&self) -> Vec<WsSettings> {
        self.device_logic
            .ws_endpoints()
            .filter(|all| !all.is_empty())
            .unwrap_or_else(|| vec![self.ws.clone()])
    }

    /// The first of [`EmulatorConfig::ws_endpoints`]: the URL a run hands the app
    /// (`ESPSIM_WS_URL`) and the portal page shows.
    pub fn ws_endpoint(&self) -> WsSettings {
        self.ws_endpoints()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.ws.clone())
    }
}

/// When the run clock starts: the zero of every fault window (`at`/`for`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunClock {
    /// With the emulator.
    #[default]
    AtStart,
    /// At [`RunningEmulator::start_clock`] (or the control API's `POST /clock/start`): for runs
    /// that wait until the app is ready.
    Deferred,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        EmulatorConfig {
            http: loopback(0),
            https: loopback(0),
            dns: Some(loopback(0)),
            device_ip: Ipv4Addr::LOCALHOST,
            profile: Profile::default(),
            internet: InternetMode::default(),
            ws: WsSettings::default(),
            device: DeviceOptions::default(),
            device_logic: DeviceSource::Builtin,
            seed: 0,
            faults: Vec::new(),
            watched_messages: Vec::new(),
            tls: None,
            events_file: None,
            event_history: History::default(),
            control: None,
            clock: RunClock::AtStart,
            refused_attempts: RefusedAttempts::Watch,
            virtual_time: false,
        }
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listen address could not be bound.
    #[error("failed to bind {service} on {addr}")]
    Bind {
        /// `http`, `https`, `dns (udp)` or `dns (tcp)`.
        service: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A service's thread or runtime could not be started.
    #[error("failed to start the {service} thread")]
    Thread {
        /// The service, e.g. `dns (udp)`.
        service: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The TLS certificate or key could not be loaded or generated.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The event file could not be created.
    #[error(transparent)]
    EventFile(#[from] events::EventFileError),
    /// A fault rule is invalid.
    #[error(transparent)]
    Faults(#[from] PlanError),
    /// The control API's options are invalid (token, allowed hosts or origins, limits).
    #[error(transparent)]
    Control(#[from] control::ControlError),
    /// The device file's logic could not be built.
    #[error(transparent)]
    DeviceFile(#[from] Box<espsim_device_file::DeviceFileError>),
    /// The device process did not start or never said `ready`.
    #[error(transparent)]
    DeviceProcess(#[from] device_process::ProcessError),
    /// The control API would listen beyond this machine without a token.
    #[error("the control API on {addr} would be reachable from the network without a token")]
    ControlWithoutToken {
        /// The requested control address.
        addr: SocketAddr,
    },
    /// More [`EmulatorConfig::watched_messages`] than [`MAX_WATCHED_MESSAGES`].
    #[error("{count} watched message matchers; at most {MAX_WATCHED_MESSAGES}")]
    TooManyWatchedMessages {
        /// How many were given.
        count: usize,
    },
}

/// Most [`EmulatorConfig::watched_messages`]: every app message is tested against each.
pub const MAX_WATCHED_MESSAGES: usize = 256;

impl StartError {
    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        if let StartError::DeviceProcess(_) = self {
            return Some(
                "a device process reads `hello` on stdin and prints {\"type\":\"ready\"} on stdout (one JSON object per line, flushed); its stderr is in espsim's log; see docs/reference/device-process.md"
                    .to_owned(),
            );
        }
        if let StartError::ControlWithoutToken { .. } = self {
            return Some(
                "drop --control-insecure (a token is then generated) or set one with --control-token TOKEN, or bind 127.0.0.1"
                    .to_owned(),
            );
        }
        let StartError::Bind {
            service, source, ..
        } = self
        else {
            return None;
        };
        let flag = match *service {
            "http" => "--http",
            "https" => "--https",
            "control" => "--control",
            _ => "--dns",
        };
        match source.kind() {
            io::ErrorKind::AddrInUse => Some(format!(
                "another program uses it; stop it or pick another port ({flag} 127.0.0.1:0 picks a free one)"
            )),
            io::ErrorKind::PermissionDenied => Some(format!(
                "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher one, e.g. {flag} 127.0.0.1:0"
            )),
            io::ErrorKind::AddrNotAvailable => {
                Some("bind an address this machine has, e.g. 127.0.0.1 or 0.0.0.0".to_owned())
            }
            _ => None,
        }
    }
}

/// Entry point: see [`Emulator::start`].
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Binds every socket, then starts every service. Returns once all are serving.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, StartError> {
        let arrival_stamps = (config.refused_attempts == RefusedAttempts::Watch)
            .then(ArrivalStamps::request)
            .flatten();
        let faults = Arc::new(FaultPlan::new(config.faults.clone(), Some(config.seed))?);
        if config.watched_messages.len() > MAX_WATCHED_MESSAGES {
            return Err(StartError::TooManyWatchedMessages {
                count: config.watched_messages.len(),
            });
        }
        if config.clock == RunClock::Deferred {
            faults.defer_clock();
        }
        let mut log = match &config.events_file {
            Some(path) => EventLog::with_file(path)?,
            None => EventLog::new(),
        }
        .keeping(config.event_history);
        if config.virtual_time {
            log = log.stamped_when_read();
        }
        let events = Arc::new(log);
        // Bind everything before serving anything, so a taken port fails the whole start.
        // The device ports listen with the profile's backlog (ESP-IDF's `backlog_conn` on a chip).
        let backlog = config.profile.listen_backlog;
        let http = bind_tcp("http", config.http, backlog)?;
        let https = match &config.tls {
            Some(tls) => Some((
                bind_tcp("https", config.https, backlog)?,
                tls::acceptor(tls)?,
            )),
            None => None,
        };
        let dns = match config.dns {
            Some(addr) => Some(bind_dns(addr)?),
            None => None,
        };
        let control = match &config.control {
            Some(options) => {
                let settings = options.settle()?;
                if !options.is_safe() {
                    return Err(StartError::ControlWithoutToken { addr: options.addr });
                }
                Some((bind_control(options.addr)?, settings))
            }
            None => None,
        };
        let control_addr = match &control {
            Some((l, _)) => Some(local_addr("control", l, config.http)?),
            None => None,
        };
        let control_token = control
            .as_ref()
            .and_then(|(_, settings)| settings.token.clone());

        let http_addr = local_addr("http", &http, config.http)?;
        let https_addr = match &https {
            Some((l, _)) => Some(local_addr("https", l, config.https)?),
            None => None,
        };
        let dns_addr = match &dns {
            Some((udp, _)) => Some(udp.local_addr().map_err(|source| StartError::Bind {
                service: "dns (udp)",
                addr: config.dns.unwrap_or(http_addr),
                source,
            })?),
            None => None,
        };

        // The handles, each given only to the services that use it.
        let lifecycle = Lifecycle::new();
        let profile = Arc::new(config.profile.clone());
        let internet = Internet::new(config.internet, events.clone());
        let built = config
            .device_logic
            .build(
                &config.device,
                config.seed,
                profile.max_ws_message,
                &events,
                &lifecycle,
            )
            .await?;
        let mut host = DeviceHost::new(config.device.clone(), built.logic, events.clone());
        if let Some(supervisor) = &built.process {
            host = host.with_process(supervisor.link.clone());
        }
        let device = Arc::new(host);
        if let Some(supervisor) = built.process {
            lifecycle
                .tracker
                .spawn(supervisor.run(device.clone(), lifecycle.clone()));
        }
        let sockets = Arc::new(SocketTable::new(
            profile.max_open_sockets,
            profile.lru_purge,
        ));

        device.start(&lifecycle);
        lifecycle.tracker.spawn(timeline::run(
            timeline::Targets {
                faults: faults.clone(),
                events: events.clone(),
                device: device.clone(),
                internet: internet.clone(),
                sockets: sockets.clone(),
            },
            lifecycle.cancel.clone(),
        ));
        let web = Arc::new(http::Handles {
            device_ip: config.device_ip,
            profile: profile.clone(),
            internet: internet.clone(),
            device: device.clone(),
            sockets,
            faults: faults.clone(),
            events: events.clone(),
            lifecycle: lifecycle.clone(),
            conns: Counter::new(),
            ws: Arc::new(ws::Handles {
                endpoints: config.ws_endpoints(),
                watched: config.watched_messages.clone().into(),
                profile: profile.clone(),
                device: device.clone(),
                faults: faults.clone(),
                events: events.clone(),
                lifecycle: lifecycle.clone(),
                upgrades: Counter::new(),
            }),
        });
        let port = |listener, tls: bool| {
            let service = if tls { "https" } else { "http" };
            http::open_port(listener, backlog, &web, tls, config.refused_attempts).map_err(
                |source| {
                    lifecycle.cancel.cancel();
                    StartError::Bind {
                        service,
                        addr: if tls { config.https } else { config.http },
                        source,
                    }
                },
            )
        };
        let http_port = port(http, false)?;
        let https_port = match https {
            Some((listener, acceptor)) => Some((port(listener, true)?, acceptor)),
            None => None,
        };
        lifecycle
            .tracker
            .spawn(http::serve(http_port, web.clone(), None));
        if let Some((port, acceptor)) = https_port {
            lifecycle
                .tracker
                .spawn(http::serve(port, web.clone(), Some(acceptor)));
        }
        if let Some((udp, tcp)) = dns {
            let handles = Arc::new(dns::Handles {
                device_ip: config.device_ip,
                internet: internet.clone(),
                device: device.clone(),
                faults: faults.clone(),
                events: events.clone(),
                lifecycle: lifecycle.clone(),
            });
            if let Err(source) = dns::start(udp, tcp, &handles, !config.virtual_time).await {
                lifecycle.cancel.cancel();
                return Err(StartError::Thread {
                    service: "dns (udp)",
                    source,
                });
            }
        }
        if let Some((listener, settings)) = control {
            let target = control::Target {
                faults: faults.clone(),
                events: events.clone(),
                device: device.clone(),
                internet: internet.clone(),
                profile: profile.clone(),
            };
            lifecycle.tracker.spawn(control::serve(
                listener,
                target,
                lifecycle.clone(),
                config.internet,
                settings,
            ));
        }

        events.emit(EventKind::Started {
            http: http_addr,
            https: https_addr,
            dns: dns_addr,
            device_ip: config.device_ip.to_string(),
            profile: config.profile.name.to_owned(),
            internet: config.internet,
            seed: config.seed,
        });
        if config.clock == RunClock::AtStart {
            events.emit(EventKind::ClockStarted {
                reason: "start".to_owned(),
            });
        }
        Ok(RunningEmulator {
            http_addr,
            https_addr,
            dns_addr,
            control_addr,
            control_token,
            lifecycle,
            profile,
            internet,
            device,
            faults,
            events,
            _arrival_stamps: arrival_stamps,
        })
    }
}

/// A started emulator. [`RunningEmulator::shutdown`] stops it and waits; dropping it stops it
/// too, without waiting: every task, the DNS thread and every socket end within
/// [`DROP_CLOSE_WAIT`] plus a moment, on the runtime it was started on (which must keep running
/// for that, as it does in `#[tokio::test]` until the test returns).
#[derive(Debug)]
pub struct RunningEmulator {
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    dns_addr: Option<SocketAddr>,
    control_addr: Option<SocketAddr>,
    control_token: Option<control::Secret>,
    lifecycle: Lifecycle,
    profile: Arc<Profile>,
    internet: Internet,
    device: Arc<DeviceHost>,
    faults: Arc<FaultPlan>,
    events: Arc<EventLog>,
    /// Keeps the kernel stamping packets on arrival while the emulator runs (refused SYNs).
    _arrival_stamps: Option<ArrivalStamps>,
}

impl RunningEmulator {
    /// Starts the run clock now (see [`RunClock::Deferred`]), recording `clock_started` with
    /// `reason`. True when this call started it; false when it was already running.
    pub fn start_clock(&self, reason: &str) -> bool {
        start_run_clock(&self.faults, &self.events, reason)
    }

    /// When the run clock started, as time since the emulator started; `None` while deferred.
    pub fn clock_started_at(&self) -> Option<Duration> {
        self.faults.clock_origin()
    }

    /// The bound HTTP/WebSocket address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound HTTPS/wss address, when TLS is on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The bound DNS address (UDP and TCP), when DNS is on.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr
    }

    /// The bound control API address, when the control API is on.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// The bearer token the control API requires (the generated one with
    /// [`ControlAuth::Generate`]); `None` without a control API or with
    /// [`ControlAuth::Insecure`].
    pub fn control_token(&self) -> Option<&str> {
        self.control_token.as_ref().map(|t| t.0.as_str())
    }

    /// The event log.
    pub fn events(&self) -> &Arc<EventLog> {
        &self.events
    }

    /// The device profile in use.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The internet mode now.
    pub fn internet(&self) -> InternetMode {
        self.internet.get()
    }

    /// Switches the internet mode (takes effect on the next request).
    pub fn set_internet(&self, mode: InternetMode) {
        self.internet.set(mode);
    }

    /// The fault plan: list, add and remove rules at run time.
    pub fn faults(&self) -> &Arc<FaultPlan> {
        &self.faults
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.faults.seed()
    }

    /// Presses the simulated board's button: the firmware broadcasts an `event` to every client.
    pub fn press_button(&self) {
        self.device.press_button();
    }

    /// How many WebSocket sessions the device has open.
    pub fn session_count(&self) -> usize {
        self.device.session_count()
    }

    /// Stops every service: listeners close, WebSocket sessions get close 1001. An app gets
    /// half of `grace` to answer the close frame; one that does not is dropped then. The call
    /// returns when every task ended (their sockets closed, the DNS thread gone) and the event
    /// file holds every event, `stopping` and each session's `ws_closed` included — or when
    /// `grace` passed for the tasks and again for the file.
    pub async fn shutdown(self, grace: Duration) {
        self.events.emit(EventKind::Stopping);
        self.lifecycle.stop(grace / 2);
        if tokio::time::timeout(grace, self.lifecycle.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop within {grace:?}");
        }
        self.events.flush_file(grace).await;
        if let Some(status) = self.events.file_status()
            && (status.missed > 0 || status.error.is_some())
        {
            tracing::error!(
                missed = status.missed,
                error = status.error.as_deref().unwrap_or("none"),
                "the event file misses {} event(s)",
                status.missed
            );
        }
    }
}

/// How long the apps' WebSocket sessions get to answer the close frame when a
/// [`RunningEmulator`] is dropped without [`RunningEmulator::shutdown`].
pub const DROP_CLOSE_WAIT: Duration = Duration::from_millis(500);

impl Drop for RunningEmulator {
    /// Stops everything as [`RunningEmulator::shutdown`] does, without waiting (nothing to do
    /// after a shutdown).
    fn drop(&mut self) {
        if !self.lifecycle.cancel.is_cancelled() {
            self.events.emit(EventKind::Stopping);
            self.lifecycle.stop(DROP_CLOSE_WAIT);
        }
    }
}

/// Starts the run clock now, recording `clock_started` with `reason` when this call started it
/// (true); false when it was already running. The one path for every way of starting it (the
/// library call, the control API), so the event is recorded exactly once.
pub(crate) fn start_run_clock(faults: &FaultPlan, events: &EventLog, reason: &str) -> bool {
    let started = faults.start_clock(events.elapsed());
    if started {
        events.emit(EventKind::ClockStarted {
            reason: reason.to_owned(),
        });
    }
    started
}

fn local_addr(
    service: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        service,
        addr,
        source,
    })
}

/// Binds a device port (HTTP, HTTPS, DNS over TCP) listening with `backlog`, so that it can
/// stop and start listening on the same port ([`net::listener::bind_listener`]).
fn bind_tcp(
    service: &'static str,
    addr: SocketAddr,
    backlog: u32,
) -> Result<TcpListener, StartError> {
    net::listener::bind_listener(addr, backlog).map_err(|source| StartError::Bind {
        service,
        addr,
        source,
    })
}

/// Binds the control API's listener (an ordinary backlog: it is not the device).
fn bind_control(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind {
        service: "control",
        addr,
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(listener).map_err(err)
}

/// Binds UDP and TCP on the same port. With port 0 the UDP port picked by the OS is then tried
/// for TCP; if that is taken, another port is picked (a few times).
fn bind_dns(addr: SocketAddr) -> Result<(std::net::UdpSocket, TcpListener), StartError> {
    const ATTEMPTS: usize = 16;
    let mut last_err = None;
    for _ in 0..ATTEMPTS {
        let udp = std::net::UdpSocket::bind(addr).map_err(|source| StartError::Bind {
            service: "dns (udp)",
            addr,
            source,
        })?;
        let udp_addr = udp.local_addr().map_err(|source| StartError::Bind {
            service: "dns (udp)",
            addr,
            source,
        })?;
        match bind_tcp("dns (tcp)", udp_addr, ESP_IDF_BACKLOG_CONN) {
            Ok(tcp) => {
                udp.set_nonblocking(true)
                    .map_err(|source| StartError::Bind {
                        service: "dns (udp)",
                        addr,
                        source,
                    })?;
                return Ok((udp, tcp));
            }
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| StartError::Bind {
        service: "dns (tcp)",
        addr,
        source: io::Error::from(io::ErrorKind::AddrInUse),
    }))
}
