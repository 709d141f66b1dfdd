//! A device written in any language: espsim starts a program and speaks protocol v1 with it,
//! one JSON object per line on its stdin and stdout (`docs/reference/device-process.md`).
//!
//! The device seam is synchronous and sans-IO; the process is not. So:
//! - `logic`: `ProcessDevice` implements `DeviceLogic` by queueing one line per call on a
//!   bounded queue (`link`) and returning no effects;
//! - `supervisor`: reads the process's lines (`lines`, checked by `protocol`) and hands
//!   the effects to the device host (`DeviceHost::apply`); HTTP requests wait for their
//!   `http_response` by id with a timeout (`link::Link::http`);
//! - `child`: one run of the process (spawn, `hello`, wait for `ready`), its stderr passed
//!   through to the log (`stderr`), garbage lines counted (`garbage`).
//!
//! A process that exits, hangs (stops reading its stdin) or speaks only garbage is a crashed
//! chip: sessions drop, connections are refused, and it restarts with back-off within a budget.

mod child;
mod garbage;
mod lines;
mod link;
mod logic;
mod protocol;
mod stderr;
mod supervisor;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::lifecycle::Lifecycle;

use crate::events::EventLog;

pub(crate) use link::Link;
pub use link::STDIN_QUEUE;
pub(crate) use logic::ProcessDevice;
pub use protocol::MAX_LINE;
pub use stderr::MAX_STDERR_LINE;
pub(crate) use supervisor::Supervisor;

/// How a device process is started and looked after (`device: { command: [...] }`,
/// `espsim run --device-command`). Build with [`ProcessSpec::new`], then adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessSpec {
    /// The program (looked up in `PATH` like a shell does).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory: the scenario's (or config file's) directory, so relative paths in
    /// the command resolve there; `None` keeps espsim's.
    pub dir: Option<PathBuf>,
    /// How long a start may take until `ready`; a first start that takes longer fails the
    /// emulator's start.
    pub ready_timeout: Duration,
    /// How long an HTTP request waits for its `http_response` before ESP-IDF's 500 page.
    pub http_timeout: Duration,
    /// Restarts after a crash or hang.
    pub restart: RestartPolicy,
}

/// When a failed process is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// The first restart's delay; it doubles with each failure in a row.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Most restarts within any minute; one more and the device stays down.
    pub max_per_minute: usize,
    /// This many garbage lines in a row count as a crash.
    pub garbage_in_a_row: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_per_minute: 10,
            garbage_in_a_row: 100,
        }
    }
}

impl ProcessSpec {
    /// `program args…` with the default timeouts: `ready` within 10 s, HTTP answers within 2 s.
    pub fn new(program: impl Into<String>, args: Vec<String>) -> Self {
        ProcessSpec {
            program: program.into(),
            args,
            dir: None,
            ready_timeout: Duration::from_secs(10),
            http_timeout: Duration::from_secs(2),
            restart: RestartPolicy::default(),
        }
    }

    /// The command as one line, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why the device process did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The program could not be started.
    #[error("failed to start the device process `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// It did not print `{"type":"ready"}` in time.
    #[error("the device process `{command}` did not send `ready` within {} ms", timeout.as_millis())]
    NotReady {
        /// The command line.
        command: String,
        /// The start timeout.
        timeout: Duration,
    },
    /// It ended (or closed its stdout) before `ready`.
    #[error("the device process `{command}` exited before sending `ready` ({status})")]
    ExitedBeforeReady {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
    },
}

/// The line checker, for the fuzz target (`crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_decode(line: &[u8], max_message: usize) -> Result<String, String> {
    match protocol::decode(line, max_message) {
        Ok(m) => {
            if let protocol::FromProcess::Send { payload, .. } = &m {
                assert!(payload.len() <= max_message, "a send over the limit passed");
            }
            Ok(format!("{m:?}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Starts the process and waits for `ready`: the device logic for the host, and the supervisor
/// that keeps the process running once the host exists ([`Supervisor::run`]).
pub(crate) async fn launch(
    spec: &ProcessSpec,
    seed: u64,
    max_message: usize,
    events: Arc<EventLog>,
    lifecycle: &Lifecycle,
) -> Result<(ProcessDevice, Supervisor), ProcessError> {
    let link = Arc::new(Link::new(spec.http_timeout, events.clone()));
    let (first, wire) = child::start(spec, seed, max_message, &events, lifecycle).await?;
    link.attach(wire);
    Ok((
        ProcessDevice::new(link.clone()),
        Supervisor {
            spec: spec.clone(),
            seed,
            max_message,
            link,
            first,
            events,
        },
    ))
}
