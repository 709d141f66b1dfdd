//! Running one scenario: a fresh emulator with the scenario's device and faults, the client (an
//! external command or the built-in reference client), the run clock, then the expectations
//! judged over the event log.
//!
//! **The run clock** belongs to the app: the emulator starts with its clock deferred and the
//! first event that the scenario's `start: { on: … }` names starts it (`clock`), as does an
//! explicit signal from the app — creating the file `ESPSIM_READY_FILE`, printing a line
//! `ESPSIM_READY` on stdout, or `POST $ESPSIM_CONTROL_URL/clock/start`. Fault windows,
//! expectation deadlines and `duration` count from there. If it has not started within the
//! startup timeout, the run fails ("the app never became ready").
//!
//! **An external command** finds the device in its environment: `ESPSIM_WS_URL`,
//! `ESPSIM_HTTP_URL`, `ESPSIM_DNS_ADDR`, `ESPSIM_DEVICE_IP`, `ESPSIM_CONTROL_URL` (the control
//! API) with `ESPSIM_CONTROL_TOKEN`, `ESPSIM_SEED`, and the run in `ESPSIM_DURATION` (`20s`),
//! `ESPSIM_DURATION_MS`, `ESPSIM_READY_FILE`, `ESPSIM_SCENARIO` (the file) and
//! `ESPSIM_TIMELINE` (the fault windows as JSON). It is judged when it exits: espsim waits for
//! it, up to the command timeout (then it is killed, and fails). With `stop_at_end` it gets
//! SIGTERM (its process group) at the end of `duration` and must exit 0 within
//! [`STOP_GRACE`]. Exiting non-zero, dying by a signal, being killed, or exiting before the
//! clock started fails the run. Its stdout is forwarded line for line to our stderr.
//!
//! **The built-in client** runs from the emulator's start until `duration` after the clock
//! start, then leaves.

mod clock;
mod command;
mod phone;
mod virtual_time;

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use espsim_emulator::events::{Event, EventKind};
use espsim_emulator::{Emulator, RunClock, RunningEmulator, StartError};
use espsim_faults::format_duration;
use serde::Serialize;
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::clock::ClockStart;
use self::clock::ClockWatch;
use self::phone::PhoneRun;
use crate::device::DeviceSpecError;
use crate::expect::{Outcome, evaluate, secs};
use crate::scenario::{DEFAULT_COMMAND_TIMEOUT, STOP_GRACE, Scenario, StartOn};
use espsim_client::{Client, ClientConfig, ClientProfile, ClientSummary, HeartbeatKind};

/// How long the emulator waits for sessions to close at the end.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);
/// How long the built-in client may take to leave (its close handshake is bounded by 1 s).
const LEAVE_GRACE: Duration = Duration::from_secs(3);
/// How long the command's stdout is still copied after it exited (a child it left behind may
/// hold the pipe open).
const STDOUT_DRAIN: Duration = Duration::from_secs(1);

/// Who plays the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSpec {
    /// The reference client with this profile, on test timings ([`builtin_client_config`]).
    Builtin(ClientProfile),
    /// An external program and its arguments.
    Command(Vec<String>),
}

impl fmt::Display for ClientSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSpec::Builtin(p) => write!(f, "builtin:{p}"),
            ClientSpec::Command(argv) => write!(f, "command `{}`", argv.join(" ")),
        }
    }
}

/// The reference client as `espsim test` runs it: the profile's behaviour on timings scaled to
/// scenarios of seconds — connect timeout 3 s, WebSocket ping every 1 s (dead after 1 s without
/// pong), backoff 500 ms doubling up to 4 s with 20 % jitter, 1 s to finish closing.
pub fn builtin_client_config(
    url: String,
    profile: ClientProfile,
    seed: u64,
    token: Option<String>,
) -> ClientConfig {
    let mut c = ClientConfig::for_profile(url, profile);
    if c.connect_timeout.is_some() {
        c.connect_timeout = Some(Duration::from_secs(3));
    }
    if let Some(h) = &mut c.heartbeat {
        h.every = Duration::from_secs(1);
        h.timeout = Duration::from_secs(1);
        h.kind = HeartbeatKind::WebSocket;
    }
    if c.backoff.max > Duration::ZERO {
        c.backoff.max = Duration::from_secs(4);
    }
    c.close_timeout = Duration::from_secs(1);
    c.seed = seed;
    c.token = token;
    c
}

/// How an external command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandStatus {
    /// It exited with this code (by itself, or after SIGTERM at the end with `stop_at_end`).
    Exited {
        /// The exit code.
        code: i32,
    },
    /// A signal ended it (including SIGTERM at the end with `stop_at_end`: the app must
    /// handle it and exit 0).
    Signalled {
        /// The signal number, when known.
        signal: Option<i32>,
    },
    /// espsim had to kill it.
    Killed {
        /// Why.
        reason: KillReason,
        /// The limit it ran into, in ms.
        limit_ms: u64,
    },
}

/// Why espsim killed a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KillReason {
    /// Still running at the command timeout.
    CommandTimeout,
    /// The run clock had not started by the startup timeout.
    StartupTimeout,
    /// Still running [`STOP_GRACE`] after SIGTERM at the end (`stop_at_end`).
    StopGrace,
}

/// The external command's part of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandResult {
    /// The command line.
    pub command: String,
    /// How it ended.
    #[serde(flatten)]
    pub status: CommandStatus,
    /// When it ended, in ms since the emulator started.
    pub after_ms: u64,
    /// It ended before the run clock started (the app never became ready).
    pub before_clock: bool,
    /// espsim sent it SIGTERM at the end of the run (`stop_at_end`).
    pub stopped_at_end: bool,
    /// Whether it passed: exited 0 after the clock started (by itself, or when told with
    /// `stop_at_end`).
    pub passed: bool,
}

impl CommandResult {
    fn new(
        command: String,
        status: CommandStatus,
        after_ms: u64,
        before_clock: bool,
        stopped_at_end: bool,
    ) -> CommandResult {
        let passed = status == CommandStatus::Exited { code: 0 } && !before_clock;
        CommandResult {
            command,
            status,
            after_ms,
            before_clock,
            stopped_at_end,
            passed,
        }
    }

    /// A command passes only by exiting 0 after the clock started; a non-zero exit, a signal,
    /// being killed or leaving before the app became ready fails the run.
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// One line for reports: how it ended and, when that fails the run, why.
    pub fn describe(&self) -> String {
        let at = secs(self.after_ms);
        let told = if self.stopped_at_end {
            " after SIGTERM at the end of the run"
        } else {
            ""
        };
        let mut line = match &self.status {
            CommandStatus::Exited { code } => format!("exited with {code} at {at}{told}"),
            CommandStatus::Signalled { signal } => {
                let which = signal.map(|s| format!(" {s}")).unwrap_or_default();
                let why = if self.stopped_at_end {
                    " (it must handle SIGTERM and exit 0)"
                } else {
                    ""
                };
                format!("ended by signal{which} at {at}{told}{why}")
            }
            CommandStatus::Killed { reason, limit_ms } => {
                let limit = format_duration(Duration::from_millis(*limit_ms));
                match reason {
                    KillReason::CommandTimeout => format!(
                        "killed at {at}: still running at the command timeout ({limit}); it must exit by itself (or use --stop-at-end for an app that runs until told)"
                    ),
                    KillReason::StartupTimeout => {
                        format!("killed at {at}: the app never became ready within {limit}")
                    }
                    KillReason::StopGrace => format!(
                        "killed at {at}: still running {limit} after SIGTERM at the end of the run; it must exit 0 when told"
                    ),
                }
            }
        };
        if self.before_clock && !matches!(self.status, CommandStatus::Killed { .. }) {
            line += " — before the run clock started (the app never became ready)";
        }
        line
    }
}

/// A fault rule that fired during the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiredFault {
    /// The rule's id (its position in `faults:` + 1).
    pub rule: u64,
    /// Its `name:`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The fault as JSON, e.g. `{"handshake":"reset","at":"after_request"}`.
    pub fault: String,
    /// How often it fired.
    pub count: usize,
    /// When it first fired, in ms.
    pub first_ms: u64,
    /// What was done the first time.
    pub detail: String,
}

/// Everything a report needs about one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file.
    pub scenario_file: PathBuf,
    /// What it reproduces.
    pub description: String,
    /// The seed in use (replay with it).
    pub seed: u64,
    /// Who played the app, e.g. `builtin:good`.
    pub client: String,
    /// When the run began (UTC, RFC 3339, seconds); on virtual time, virtual time's zero
    /// (`1970-01-01T00:00:00Z`): such a run has no wall-clock start.
    pub started_at: String,
    /// How long the run took, on the run's clock (virtual time's, with `virtual_time`).
    pub elapsed_ms: u64,
    /// The run was on virtual time (`--virtual-time`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub virtual_time: bool,
    /// What was to start the run clock.
    pub start_on: StartOn,
    /// When the run clock started and why; `None` when it never did.
    #[serde(flatten)]
    pub clock: Option<ClockStart>,
    /// Why the run failed before it began: the app never became ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_failure: Option<String>,
    /// Each expectation's verdict, in file order.
    pub expectations: Vec<Outcome>,
    /// The external command, if one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandResult>,
    /// The built-in client's totals, if it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_summary: Option<ClientSummary>,
    /// Fault rules that fired.
    pub faults_fired: Vec<FiredFault>,
    /// The whole event log.
    #[serde(skip)]
    pub events: Vec<Event>,
}

impl RunResult {
    /// True when the clock started, every expectation held and the command (if any) passed.
    pub fn passed(&self) -> bool {
        self.startup_failure.is_none()
            && self.expectations.iter().all(|o| o.passed)
            && self.command.as_ref().is_none_or(CommandResult::passed)
    }

    /// The names of the expectations that failed.
    pub fn failed_expectations(&self) -> Vec<&str> {
        self.expectations
            .iter()
            .filter(|o| !o.passed)
            .map(|o| o.name.as_str())
            .collect()
    }
}

/// Why a scenario could not be run at all (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The device section does not map to an emulator.
    #[error("scenario {scenario}: device")]
    Device {
        /// The scenario.
        scenario: String,
        /// The cause.
        #[source]
        source: DeviceSpecError,
    },
    /// The emulator did not start.
    #[error("scenario {scenario}: the emulator did not start")]
    Start {
        /// The scenario.
        scenario: String,
        /// The cause.
        #[source]
        source: StartError,
    },
    /// The command could not be started.
    #[error("cannot start `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The ready file's temporary directory could not be created.
    #[error("cannot create a temporary directory for ESPSIM_READY_FILE")]
    TempDir(#[source] std::io::Error),
    /// `--client` named an empty command.
    #[error("the client command is empty")]
    EmptyCommand,
    /// The run cannot be on virtual time.
    #[error("scenario {scenario}: cannot run on virtual time: {reason}")]
    VirtualTimeUnsupported {
        /// The scenario.
        scenario: String,
        /// Why not.
        reason: &'static str,
    },
    /// The virtual-time run's thread or runtime could not be made, or it ended without a
    /// result.
    #[error("scenario {scenario}: the virtual-time run failed")]
    VirtualTime {
        /// The scenario.
        scenario: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The scenario's phone could not be made or driven (not root, `ip` missing, …).
    #[error("scenario {scenario}: the phone")]
    Phone {
        /// The scenario.
        scenario: String,
        /// The cause.
        #[source]
        source: espsim_phone::PhoneError,
    },
}

/// How `espsim test` drives a run, beyond the scenario file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Overrides `command.timeout` (the command's hard cap).
    pub command_timeout: Option<Duration>,
    /// SIGTERM the command at the end of `duration` (as `command.stop_at_end: true`).
    pub stop_at_end: bool,
    /// Run on virtual time: the emulator, the fault timeline and the built-in client on one
    /// paused Tokio clock, on a thread of the run's own (see [`run_with`]).
    pub virtual_time: bool,
}

/// Runs `scenario` once with `client` and judges it. `seed` overrides the scenario's seed.
pub async fn run(
    scenario: &Scenario,
    client: &ClientSpec,
    seed: Option<u64>,
) -> Result<RunResult, RunError> {
    let options = RunOptions {
        seed,
        ..RunOptions::default()
    };
    run_with(scenario, client, &options, None).await
}

/// A live view of a run's events, e.g. for a progress display counting the faults fired so far.
pub type Watch = Box<dyn FnMut(&Event) + Send>;

/// Like [`run`] with `options`, calling `watch` (if any) with every event as it happens, on a
/// task of its own (it must not block).
///
/// With `options.virtual_time` the run gets a thread of its own with a current-thread runtime
/// whose clock starts paused: whenever every task waits, Tokio moves the clock to the next
/// timer, so a run takes as long as its work, not its `duration`, and one seed gives one
/// result. Only the built-in client can run so (an app's command lives on the wall clock), and
/// not a scenario with a `phone:` (its network namespaces are driven by `ip` processes).
pub async fn run_with(
    scenario: &Scenario,
    client: &ClientSpec,
    options: &RunOptions,
    watch: Option<Watch>,
) -> Result<RunResult, RunError> {
    if options.virtual_time {
        virtual_time::run(scenario, client, options, watch).await
    } else {
        run_here(scenario, client, options, watch).await
    }
}

/// [`run_with`] on the caller's runtime (and clock).
async fn run_here(
    scenario: &Scenario,
    client: &ClientSpec,
    options: &RunOptions,
    watch: Option<Watch>,
) -> Result<RunResult, RunError> {
    let seed = options
        .seed
        .or(scenario.seed)
        .or(scenario.device.seed)
        .unwrap_or_else(random_seed);
    let mut config = scenario
        .device
        .emulator_config(seed)
        .map_err(|source| RunError::Device {
            scenario: scenario.name.clone(),
            source,
        })?;
    config.seed = seed;
    config.faults.clone_from(&scenario.faults);
    config.watched_messages = crate::expect::watched_messages(&scenario.expect);
    // Tests may change the device while they run (faults, internet mode, button, clock).
    config.control = Some(espsim_emulator::ControlOptions::loopback(0));
    // The expectations read the whole run's events at the end.
    config.event_history = espsim_emulator::events::History::All;
    config.virtual_time = options.virtual_time;
    config.clock = if scenario.start.on == StartOn::Start {
        RunClock::AtStart
    } else {
        RunClock::Deferred
    };
    let ws_path = config.ws_endpoint().path;
    let device_ip = config.device_ip;
    let token = config.device.auth_token.clone();
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(if options.virtual_time {
        std::time::UNIX_EPOCH
    } else {
        std::time::SystemTime::now()
    })
    .to_string();
    let (mut phone, emulator) = match scenario.phone {
        Some(spec) => {
            let (phone, emulator) = PhoneRun::start(spec, config, &scenario.name).await?;
            (Some(phone), emulator)
        }
        None => {
            let emulator = Emulator::start(config)
                .await
                .map_err(|source| RunError::Start {
                    scenario: scenario.name.clone(),
                    source,
                })?;
            (None, emulator)
        }
    };
    // Where the app runs: the phone's namespace, or ours.
    let app_namespace = phone.as_ref().map(|p| p.namespaces().phone.clone());
    let watcher = watch.map(|mut watch| {
        let mut rx = emulator.events().subscribe();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(e) => watch(&e),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        })
    });
    let clock = ClockWatch::new(&emulator, scenario.start.on);
    let ws_url = format!("ws://{}{}", host_port(emulator.http_addr()), ws_path);
    let client_part = async {
        match client {
            ClientSpec::Builtin(profile) => {
                let mut cfg = builtin_client_config(ws_url, *profile, seed, token);
                if options.virtual_time {
                    cfg.backoff = virtual_time::retry_floor(cfg.backoff);
                }
                run_builtin(&emulator, clock, scenario, cfg, app_namespace.as_deref()).await
            }
            ClientSpec::Command(argv) => {
                let app = AppCommand {
                    argv,
                    namespace: app_namespace.as_deref(),
                    device_ip,
                    ws_url,
                    seed,
                    timeout: options
                        .command_timeout
                        .or(scenario.command.timeout)
                        .unwrap_or(DEFAULT_COMMAND_TIMEOUT),
                    stop_at_end: options.stop_at_end || scenario.command.stop_at_end,
                };
                run_command(&emulator, clock, scenario, &app, started).await
            }
        }
    };
    let outcome = match phone.as_mut() {
        // The OS keeps re-checking the Wi-Fi while the app runs.
        Some(p) => tokio::select! {
            outcome = client_part => outcome,
            source = p.follow() => Err(RunError::Phone { scenario: scenario.name.clone(), source }),
        },
        None => client_part.await,
    };
    let log = emulator.events().clone();
    emulator.shutdown(SHUTDOWN_GRACE).await;
    if let Some(p) = phone {
        p.finish().await;
    }
    if let Some(w) = watcher {
        w.abort();
    }
    let outcome = outcome?;
    let events = log.snapshot();
    let startup_failure = match (&outcome.clock, &outcome.command) {
        (Some(_), _) => None,
        (None, Some(c)) if c.before_clock && !matches!(c.status, CommandStatus::Killed { .. }) => {
            Some(format!(
                "the app never became ready: the command ended before the run clock started ({})",
                scenario.start.on.awaited()
            ))
        }
        (None, _) => Some(format!(
            "the app never became ready: {} within {}",
            scenario.start.on.awaited(),
            format_duration(scenario.startup_timeout(outcome.command.is_none()))
        )),
    };
    Ok(RunResult {
        scenario: scenario.name.clone(),
        scenario_file: scenario.path.clone(),
        description: scenario.description.clone(),
        seed,
        client: client.to_string(),
        started_at,
        elapsed_ms: ms_since(started),
        virtual_time: options.virtual_time,
        start_on: scenario.start.on,
        clock: outcome.clock,
        startup_failure,
        expectations: evaluate(&scenario.expect, &scenario.faults, &events),
        command: outcome.command,
        client_summary: outcome.summary,
        faults_fired: fired_faults(scenario, &events),
        events,
    })
}

/// `host:port`, without the port when it is HTTP's 80 (`192.168.4.1`, as an app writes it).
fn host_port(addr: std::net::SocketAddr) -> String {
    if addr.port() == 80 {
        addr.ip().to_string()
    } else {
        addr.to_string()
    }
}

/// What the client part of a run produced.
struct ClientPart {
    clock: Option<ClockStart>,
    command: Option<CommandResult>,
    summary: Option<ClientSummary>,
}

/// Milliseconds since `from`.
fn ms_since(from: Instant) -> u64 {
    u64::try_from(from.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The built-in client: from the emulator's start until `duration` after the clock start (or
/// the startup timeout), then it leaves.
async fn run_builtin(
    emulator: &RunningEmulator,
    mut clock: ClockWatch,
    scenario: &Scenario,
    cfg: ClientConfig,
    namespace: Option<&str>,
) -> Result<ClientPart, RunError> {
    let stop = CancellationToken::new();
    let client_stop = stop.clone();
    let task = match namespace {
        None => BuiltinTask::Here(tokio::spawn(Client::new(cfg).run(client_stop, |_| {}))),
        // Its sockets are the phone's: a thread inside the phone's namespace runs it.
        Some(ns) => BuiltinTask::OnPhone(
            espsim_phone::NamespaceThread::spawn(ns, "espsim-app", move || {
                Client::new(cfg).run(client_stop, |_| {})
            })
            .map_err(|source| RunError::Phone {
                scenario: scenario.name.clone(),
                source,
            })?,
        ),
    };
    let started = tokio::time::timeout(scenario.startup_timeout(true), clock.started(emulator))
        .await
        .ok()
        .flatten();
    if started.is_some() {
        tokio::time::sleep(scenario.duration).await;
    }
    stop.cancel();
    let summary = tokio::time::timeout(LEAVE_GRACE, task.join())
        .await
        .ok()
        .flatten();
    Ok(ClientPart {
        clock: started,
        command: None,
        summary,
    })
}

/// The built-in client's task: on our runtime, or on a thread inside the phone's namespace.
enum BuiltinTask {
    Here(tokio::task::JoinHandle<ClientSummary>),
    OnPhone(espsim_phone::NamespaceThread<ClientSummary>),
}

impl BuiltinTask {
    /// Its summary once it left (`None`: it panicked).
    async fn join(self) -> Option<ClientSummary> {
        match self {
            BuiltinTask::Here(h) => h.await.ok(),
            BuiltinTask::OnPhone(t) => t.join().await.ok(),
        }
    }
}

/// An app command and how to run it.
struct AppCommand<'a> {
    argv: &'a [String],
    /// The network namespace it runs in (the phone's), if not ours.
    namespace: Option<&'a str>,
    device_ip: std::net::Ipv4Addr,
    ws_url: String,
    seed: u64,
    /// The hard cap, from its start.
    timeout: Duration,
    /// SIGTERM at the end of `duration`.
    stop_at_end: bool,
}

/// How the command's part went, before it is judged.
enum Ended {
    /// It ended by itself (`Err`: waiting failed).
    Exited(std::io::Result<std::process::ExitStatus>),
    /// espsim killed it.
    Killed(KillReason, Duration),
}

/// The app command: started with the device in its environment, waited for until the clock
/// starts (or the startup timeout), then until it exits (or the cap; with `stop_at_end`,
/// SIGTERM at the end of `duration`).
async fn run_command(
    emulator: &RunningEmulator,
    mut clock: ClockWatch,
    scenario: &Scenario,
    app: &AppCommand<'_>,
    emulator_started: Instant,
) -> Result<ClientPart, RunError> {
    let Some((program, args)) = app.argv.split_first() else {
        return Err(RunError::EmptyCommand);
    };
    let line = app.argv.join(" ");
    let ready_dir = tempfile::Builder::new()
        .prefix("espsim-ready-")
        .tempdir()
        .map_err(RunError::TempDir)?;
    let ready_file = ready_dir.path().join("ready");
    let mut cmd = match app.namespace {
        Some(ns) => espsim_phone::netns_command(ns, program.as_ref()),
        None => tokio::process::Command::new(program),
    };
    cmd.args(args)
        .env("ESPSIM_WS_URL", &app.ws_url)
        .env(
            "ESPSIM_HTTP_URL",
            format!("http://{}", host_port(emulator.http_addr())),
        )
        .env("ESPSIM_DEVICE_IP", app.device_ip.to_string())
        .env("ESPSIM_SEED", app.seed.to_string())
        .env("ESPSIM_DURATION", format_duration(scenario.duration))
        .env(
            "ESPSIM_DURATION_MS",
            scenario.duration.as_millis().to_string(),
        )
        .env("ESPSIM_READY_FILE", &ready_file)
        .env("ESPSIM_SCENARIO", &scenario.path)
        .env("ESPSIM_TIMELINE", command::timeline_json(scenario))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dns) = emulator.dns_addr() {
        cmd.env("ESPSIM_DNS_ADDR", dns.to_string());
    }
    if let Some(control) = emulator.control_addr() {
        cmd.env("ESPSIM_CONTROL_URL", format!("http://{control}"));
    }
    if let Some(token) = emulator.control_token() {
        cmd.env("ESPSIM_CONTROL_TOKEN", token);
    }
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        command: line.clone(),
        source,
    })?;
    let pgid = child.id();
    let spawned = tokio::time::Instant::now();
    let cap = spawned + app.timeout;
    let (ready_tx, mut ready_rx) = mpsc::channel(1);
    let recorder = command::OutputRecorder::new(emulator.events().clone());
    let err_forwarder = child.stderr.take().map(|err| {
        tokio::spawn(command::forward_output(
            err,
            "stderr",
            recorder.clone(),
            None,
        ))
    });
    let mut forwarder = child.stdout.take().map(|out| {
        tokio::spawn(command::forward_output(
            out,
            "stdout",
            recorder,
            Some(ready_tx),
        ))
    });

    // Until the clock starts.
    let startup = scenario.startup_timeout(false);
    let startup_deadline = spawned + startup;
    let mut file_signal = std::pin::pin!(clock::ready_file(&ready_file));
    let mut file_seen = false;
    let mut stdout_open = true;
    let mut ended: Option<Ended> = None;
    let mut clock_start: Option<ClockStart> = None;
    {
        let mut started = std::pin::pin!(clock.started(emulator));
        loop {
            tokio::select! {
                s = &mut started => { clock_start = s; break; }
                () = &mut file_signal, if !file_seen => {
                    file_seen = true;
                    emulator.start_clock("signal: file");
                }
                r = ready_rx.recv(), if stdout_open => match r {
                    Some(()) => { emulator.start_clock("signal: stdout"); }
                    None => stdout_open = false,
                },
                status = child.wait() => { ended = Some(Ended::Exited(status)); break; }
                () = tokio::time::sleep_until(startup_deadline.min(cap)) => {
                    command::kill(&mut child, pgid).await;
                    ended = Some(if startup_deadline <= cap {
                        Ended::Killed(KillReason::StartupTimeout, startup)
                    } else {
                        Ended::Killed(KillReason::CommandTimeout, app.timeout)
                    });
                    break;
                }
            }
        }
    }
    if clock_start.is_none() && matches!(ended, Some(Ended::Exited(_))) {
        clock_start = late_start(
            emulator,
            &mut clock,
            &ready_file,
            forwarder.take(),
            ready_rx,
        )
        .await;
    }
    let before_clock = clock_start.is_none();
    let mut stopped_at_end = false;
    let ended = match ended {
        Some(e) => e,
        None => {
            let end = tokio::time::Instant::now() + scenario.duration;
            wait_for_exit(&mut child, pgid, cap, app, end, &mut stopped_at_end).await
        }
    };
    // Whatever the command left behind in its process group goes too.
    if let Some(pgid) = pgid {
        command::signal_group(pgid, "KILL").await;
    }
    for f in [forwarder, err_forwarder].into_iter().flatten() {
        let _ = tokio::time::timeout(STDOUT_DRAIN, f).await;
    }
    let status = match ended {
        Ended::Exited(Ok(s)) => match s.code() {
            Some(code) => CommandStatus::Exited { code },
            None => CommandStatus::Signalled {
                signal: std::os::unix::process::ExitStatusExt::signal(&s),
            },
        },
        Ended::Exited(Err(_)) => CommandStatus::Signalled { signal: None },
        Ended::Killed(reason, limit) => CommandStatus::Killed {
            reason,
            limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        },
    };
    let result = CommandResult::new(
        line,
        status,
        ms_since(emulator_started),
        before_clock,
        stopped_at_end,
    );
    Ok(ClientPart {
        clock: clock_start,
        command: Some(result),
        summary: None,
    })
}

/// How long, after a command exited before its clock started, the events it caused before
/// exiting may take to arrive.
const LATE_EVENTS: Duration = Duration::from_millis(300);

/// A command that exited while the clock was not yet running may still have made it start
/// before exiting: its last stdout lines, its ready file, events still queued. Looks at those.
async fn late_start(
    emulator: &RunningEmulator,
    clock: &mut ClockWatch,
    ready_file: &std::path::Path,
    forwarder: Option<tokio::task::JoinHandle<()>>,
    mut ready_rx: mpsc::Receiver<()>,
) -> Option<ClockStart> {
    if let Some(f) = forwarder {
        let _ = tokio::time::timeout(STDOUT_DRAIN, f).await;
    }
    if ready_rx.try_recv().is_ok() {
        emulator.start_clock("signal: stdout");
    } else if tokio::fs::try_exists(ready_file).await.unwrap_or(false) {
        emulator.start_clock("signal: file");
    }
    tokio::time::timeout(LATE_EVENTS, clock.started(emulator))
        .await
        .ok()
        .flatten()
}

/// After the clock started: waits for the command to exit, up to `cap`; with `stop_at_end`,
/// SIGTERM at `end` and [`STOP_GRACE`] to exit.
async fn wait_for_exit(
    child: &mut Child,
    pgid: Option<u32>,
    cap: tokio::time::Instant,
    app: &AppCommand<'_>,
    end: tokio::time::Instant,
    stopped_at_end: &mut bool,
) -> Ended {
    let stop_at = if app.stop_at_end { end.min(cap) } else { cap };
    tokio::select! {
        status = child.wait() => return Ended::Exited(status),
        () = tokio::time::sleep_until(stop_at) => {}
    }
    if !app.stop_at_end || cap < end {
        command::kill(child, pgid).await;
        return Ended::Killed(KillReason::CommandTimeout, app.timeout);
    }
    *stopped_at_end = true;
    if let Some(pgid) = pgid {
        command::signal_group(pgid, "TERM").await;
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => Ended::Exited(status),
        Err(_) => {
            if let Some(pgid) = pgid {
                command::signal_group(pgid, "KILL").await;
            }
            let _ = child.start_kill();
            let _ = tokio::time::timeout(command::KILL_GRACE, child.wait()).await;
            Ended::Killed(KillReason::StopGrace, STOP_GRACE)
        }
    }
}

/// The fault rules that fired, grouped by rule.
pub fn fired_faults(scenario: &Scenario, events: &[Event]) -> Vec<FiredFault> {
    let mut out: Vec<FiredFault> = Vec::new();
    for e in events {
        let EventKind::FaultApplied {
            rule,
            fault,
            detail,
            ..
        } = &e.kind
        else {
            continue;
        };
        if let Some(f) = out.iter_mut().find(|f| f.rule == *rule) {
            f.count += 1;
            continue;
        }
        let name = usize::try_from(*rule)
            .ok()
            .and_then(|r| r.checked_sub(1))
            .and_then(|i| scenario.faults.get(i))
            .and_then(|r| r.name.clone());
        out.push(FiredFault {
            rule: *rule,
            name,
            fault: fault.to_string(),
            count: 1,
            first_ms: e.at_ms,
            detail: detail.clone(),
        });
    }
    out
}

/// A seed for scenarios that give none (printed in the report, so the run can be replayed).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// One run of a catches check: who plays the app and which expectation must fail
/// (`None`: the good client, which must pass everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchRun {
    /// The client.
    pub client: ClientSpec,
    /// The one expectation that must fail, or `None` when all must hold.
    pub must_fail: Option<String>,
}

/// The runs that prove a scenario: the good client, then each `catches:` profile.
pub fn catch_plan(scenario: &Scenario) -> Vec<CatchRun> {
    let mut plan = vec![CatchRun {
        client: ClientSpec::Builtin(ClientProfile::Good),
        must_fail: None,
    }];
    for (profile, expectation) in &scenario.catches {
        // `Scenario::validate` already rejected unknown profiles.
        if let Ok(p) = profile.parse::<ClientProfile>() {
            plan.push(CatchRun {
                client: ClientSpec::Builtin(p),
                must_fail: Some(expectation.clone()),
            });
        }
    }
    plan
}

/// Whether a run did what its [`CatchRun`] demands: the good client passes everything, a
/// catching profile fails exactly the named expectation. `Ok` and `Err` carry one line.
pub fn judge_catch(result: &RunResult, must_fail: Option<&str>) -> Result<String, String> {
    let failed = result.failed_expectations();
    match must_fail {
        None if failed.is_empty() => Ok("every expectation held".to_owned()),
        None => Err(format!(
            "the good client must pass, but failed: {}",
            failed.join(", ")
        )),
        Some(name) if failed == [name] => Ok(format!("caught: only `{name}` failed")),
        Some(name) if failed.is_empty() => Err(format!(
            "not caught: `{name}` should have failed, but every expectation held"
        )),
        Some(name) => Err(format!(
            "expected exactly `{name}` to fail, but failed: {}",
            failed.join(", ")
        )),
    }
}
