//! Running one scenario: a fresh emulator with the scenario's device and faults, then the client
//! (an external command or the built-in reference client) until `duration` ends or the command
//! exits; then the client leaves, the emulator shuts down and the expectations are judged over
//! the event log.
//!
//! An external command finds the device in its environment: `ESPSIM_WS_URL`,
//! `ESPSIM_HTTP_URL`, `ESPSIM_DNS_ADDR`, `ESPSIM_DEVICE_IP`, `ESPSIM_CONTROL_URL` (the control
//! API, to change faults or the internet mode mid-test) with `ESPSIM_CONTROL_TOKEN` (its bearer
//! token, generated per run) and `ESPSIM_SEED`. A command still
//! running when the scenario ends is stopped (SIGTERM to its process group, SIGKILL a second
//! later), so a hanging command cannot hang the run.

use std::fmt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use espsim_emulator::events::{Event, EventKind};
use espsim_emulator::{Emulator, StartError};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ClientConfig, ClientProfile, ClientSummary, HeartbeatKind};
use crate::device::DeviceError;
use crate::expect::{Outcome, evaluate};
use crate::scenario::Scenario;

/// How long the emulator waits for sessions to close at the end.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);
/// How long a stopped command gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(1);
/// How long the built-in client may take to leave (its close handshake is bounded by 1 s).
const LEAVE_GRACE: Duration = Duration::from_secs(3);

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
    /// It exited by itself with this code.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// A signal ended it (not ours).
    Signalled,
    /// It was still running when the scenario ended, and was stopped.
    Killed,
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
}

impl CommandResult {
    /// A command fails the run only by exiting non-zero (or by a signal it did not get from us);
    /// one still running at the end is stopped and reported, not failed.
    pub fn passed(&self) -> bool {
        matches!(
            self.status,
            CommandStatus::Exited { code: 0 } | CommandStatus::Killed
        )
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        let at = crate::expect::secs(self.after_ms);
        match self.status {
            CommandStatus::Exited { code } => format!("exited with {code} at {at}"),
            CommandStatus::Signalled => format!("ended by a signal at {at}"),
            CommandStatus::Killed => {
                format!("still running when the scenario ended: stopped at {at}")
            }
        }
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
    /// What it reproduces.
    pub description: String,
    /// The seed in use (replay with it).
    pub seed: u64,
    /// Who played the app, e.g. `builtin:good`.
    pub client: String,
    /// Wall time of the run.
    pub elapsed_ms: u64,
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
    /// True when every expectation held and the command (if any) did not fail.
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|o| o.passed)
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
        source: DeviceError,
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
    /// `--client` named an empty command.
    #[error("the client command is empty")]
    EmptyCommand,
}

/// Runs `scenario` once with `client` and judges it. `seed` overrides the scenario's seed.
pub async fn run(
    scenario: &Scenario,
    client: &ClientSpec,
    seed: Option<u64>,
) -> Result<RunResult, RunError> {
    run_watched(scenario, client, seed, None).await
}

/// A live view of a run's events, e.g. for a progress display counting the faults fired so far.
pub type Watch = Box<dyn FnMut(&Event) + Send>;

/// Like [`run`], calling `watch` (if any) with every event as it happens, on a task of its own
/// (it must not block).
pub async fn run_watched(
    scenario: &Scenario,
    client: &ClientSpec,
    seed: Option<u64>,
    watch: Option<Watch>,
) -> Result<RunResult, RunError> {
    let seed = seed
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
    // Tests may change the device while they run (faults, internet mode, button).
    config.control = Some(espsim_emulator::ControlOptions::loopback(0));
    // The expectations read the whole run's events at the end.
    config.event_history = espsim_emulator::events::History::All;
    let ws_path = config.ws.path.clone();
    let device_ip = config.device_ip;
    let token = config.device.auth_token.clone();
    let started = Instant::now();
    let emulator = Emulator::start(config)
        .await
        .map_err(|source| RunError::Start {
            scenario: scenario.name.clone(),
            source,
        })?;
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
    let deadline = tokio::time::Instant::from_std(started) + scenario.duration;
    let ws_url = format!("ws://{}{}", emulator.http_addr(), ws_path);
    let elapsed_ms = |from: Instant| u64::try_from(from.elapsed().as_millis()).unwrap_or(u64::MAX);

    let (command, client_summary) = match client {
        ClientSpec::Builtin(profile) => {
            let cfg = builtin_client_config(ws_url, *profile, seed, token);
            let stop = CancellationToken::new();
            let task = tokio::spawn(Client::new(cfg).run(stop.clone(), |_| {}));
            tokio::time::sleep_until(deadline).await;
            stop.cancel();
            let summary = tokio::time::timeout(LEAVE_GRACE, task)
                .await
                .ok()
                .and_then(Result::ok);
            (None, summary)
        }
        ClientSpec::Command(argv) => {
            let Some((program, args)) = argv.split_first() else {
                emulator.shutdown(SHUTDOWN_GRACE).await;
                return Err(RunError::EmptyCommand);
            };
            let line = argv.join(" ");
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .env(
                    "ESPSIM_WS_URL",
                    format!("ws://{}{}", emulator.http_addr(), ws_path),
                )
                .env(
                    "ESPSIM_HTTP_URL",
                    format!("http://{}", emulator.http_addr()),
                )
                .env("ESPSIM_DEVICE_IP", device_ip.to_string())
                .env("ESPSIM_SEED", seed.to_string())
                .stdin(Stdio::null())
                .stdout(stderr_stdio())
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
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(source) => {
                    emulator.shutdown(SHUTDOWN_GRACE).await;
                    return Err(RunError::Spawn {
                        command: line,
                        source,
                    });
                }
            };
            let status = tokio::select! {
                status = child.wait() => match status {
                    Ok(s) => match s.code() {
                        Some(code) => CommandStatus::Exited { code },
                        None => CommandStatus::Signalled,
                    },
                    Err(_) => CommandStatus::Signalled,
                },
                () = tokio::time::sleep_until(deadline) => {
                    stop_child(&mut child).await;
                    CommandStatus::Killed
                }
            };
            let result = CommandResult {
                command: line,
                status,
                after_ms: elapsed_ms(started),
            };
            (Some(result), None)
        }
    };
    let log = emulator.events().clone();
    emulator.shutdown(SHUTDOWN_GRACE).await;
    if let Some(w) = watcher {
        w.abort();
    }
    let events = log.snapshot();
    Ok(RunResult {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        seed,
        client: client.to_string(),
        elapsed_ms: elapsed_ms(started),
        expectations: evaluate(&scenario.expect, &scenario.faults, &events),
        command,
        client_summary,
        faults_fired: fired_faults(scenario, &events),
        events,
    })
}

/// Stops a command that outlived its scenario: SIGTERM to its process group, SIGKILL after
/// [`KILL_GRACE`]. (Through `kill(1)`: this crate forbids `unsafe`, so no direct `kill(2)`.)
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let group = format!("-{pid}");
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok() {
            return;
        }
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
}

/// The command's stdout goes to our stderr, so `espsim test`'s own stdout stays the report.
fn stderr_stdio() -> Stdio {
    use std::os::fd::AsFd;
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::inherit(), Stdio::from)
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
