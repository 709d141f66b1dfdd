//! Support for espsim's black-box tests (`tests/tests/*.rs`): find the `espsim` binary, run it
//! and read its ready line, run external clients with a time limit, and say why a check skips.
//!
//! The tests drive real programs (the `espsim` binary, Python `websockets`, Node `ws`, Chromium,
//! `dig`, `curl`), so everything here is blocking `std::process` with bounded waits: a reader
//! thread per pipe and `recv_timeout` on a channel, never a sleep.
//!
//! The binary is `target/<profile>/espsim` next to the test executable (`cargo test --workspace`
//! builds it; with `cargo test -p espsim-tests` run `cargo build -p espsim` first), or the path in
//! `ESPSIM_BIN`.
//!
//! Skips are never silent: [`checks`] runs each (scenario, client) pair as a test of its own, so
//! a check whose client is missing shows as `ignored` in `cargo test` and is counted in a
//! summary line; [`skip`] prints past the test harness's output capture. With
//! `ESPSIM_REQUIRE_CLIENTS=1` (CI) every skip is a failure naming the missing client.

pub mod checks;
pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The repository root (the workspace directory), where `.venv/` and `tests/clients/` live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The `espsim` binary: `ESPSIM_BIN`, else `target/<profile>/espsim` beside the test executable.
///
/// Panics with the command to run when it is missing: a missing binary is a setup error, not a
/// reason to skip.
pub fn espsim_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ESPSIM_BIN") {
        return PathBuf::from(path);
    }
    // The test executable is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("the test executable's path");
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("espsim"));
    match candidate {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "the espsim binary is not built next to {}: run `cargo build -p espsim` first, \
             or set ESPSIM_BIN",
            exe.display()
        ),
    }
}

/// Says why a test (or part of one) does not run, on stderr even when `cargo test` captures the
/// test's output (a passing test's `eprintln!` is never shown, which would hide the skip).
///
/// Panics instead when [`clients_required`] (`ESPSIM_REQUIRE_CLIENTS=1`): CI must not pass on
/// checks that did not run.
pub fn skip(test: &str, reason: &str) {
    if clients_required() {
        panic!("{}", checks::required_message(test, reason));
    }
    // `std::io::stderr()` directly: the harness captures only the `print!` family.
    let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {reason}");
}

/// The variable that turns every skipped client check into a failure (`.ci/run` sets it).
pub const REQUIRE_CLIENTS: &str = "ESPSIM_REQUIRE_CLIENTS";

/// Whether `ESPSIM_REQUIRE_CLIENTS` is set to anything but empty or `0`.
pub fn clients_required() -> bool {
    std::env::var_os(REQUIRE_CLIENTS).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether a program is on `PATH` (e.g. `dig`, `curl`, `node`, `chromium`).
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Whether the test runs as root (needed for network namespaces).
pub fn is_root() -> bool {
    // /proc/self/status has "Uid:\t<real>\t<effective>…"; no libc call (unsafe is forbidden).
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// What a finished command produced.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Finished {
    /// The last stdout line that parses as a JSON object (the client scripts print one).
    pub fn json_line(&self) -> Option<serde_json::Value> {
        self.stdout
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(serde_json::Value::is_object)
    }
}

/// Runs `cmd` to completion with stdin closed; kills it after `limit`.
///
/// Errors: the spawn error, or `TimedOut` naming the command and showing what it wrote.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for (index, pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            let _ = tx.send((index, text));
        });
    }
    // The child is reaped by its own thread, so every wait below is a bounded channel receive.
    let pid = child.id();
    let (status_tx, status_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    drop(tx);
    let deadline = Instant::now() + limit;
    let timed_out = |so_far: &str| {
        // SIGKILL by pid: `Child` lives in the reaper thread (no libc: unsafe is forbidden).
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{cmd:?} did not finish within {limit:?}; stdout so far: {so_far:?}"),
        )
    };
    let mut out = [String::new(), String::new()];
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((index, text)) => out[index] = text,
            Err(_) => return Err(timed_out(&out[0])),
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let status = match status_rx.recv_timeout(left) {
        Ok(status) => status?,
        Err(_) => return Err(timed_out(&out[0])),
    };
    let [stdout, stderr] = out;
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// The Python of `.venv` (`scripts/install-test-clients.sh`), which has `websockets`.
pub fn venv_python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

/// Why Python `websockets` cannot run here, if it cannot.
pub fn python_websockets_missing() -> Option<String> {
    let has_websockets = repo_root().join(".venv/lib").read_dir().is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.path().join("site-packages/websockets").is_dir()))
    });
    (!venv_python().is_file() || !has_websockets)
        .then(|| "no .venv with websockets (run scripts/install-test-clients.sh)".to_owned())
}

/// Why Node `ws` cannot run here, if it cannot.
pub fn node_ws_missing() -> Option<String> {
    let modules = repo_root().join("tests/clients/node_modules");
    (!on_path("node") || !modules.join("ws").is_dir()).then(|| {
        "no node or tests/clients/node_modules/ws (run scripts/install-test-clients.sh)".to_owned()
    })
}

/// `espsim run` on ephemeral loopback ports (HTTP, DNS and the control API) with `seed`: tests
/// run in parallel, and the default ports would be taken by the first. Add flags, then
/// [`Espsim::start`] it.
pub fn espsim_run_command(seed: u64) -> Command {
    let mut cmd = Command::new(espsim_bin());
    cmd.args(["run", "--http", "127.0.0.1:0", "--dns", "127.0.0.1:0"])
        .args(["--seed", &seed.to_string()])
        .args(["--control", "127.0.0.1:0"]);
    cmd
}

/// `curl` flags that fetch one URL within 5 s and print only `STATUS LOCATION` (e.g. `302 /`
/// for the captive portal's redirect). Append the URL.
pub const CURL_STATUS_AND_LOCATION: [&str; 7] = [
    "-sS",
    "--max-time",
    "5",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code} %header{location}",
];

/// A running `espsim run` (or any command that prints espsim's JSON ready line); killed on drop.
#[derive(Debug)]
pub struct Espsim {
    child: Child,
    /// The parsed ready line (`{"event":"ready","http":…,"dns":…,"ws_url":…}`).
    pub ready: serde_json::Value,
    /// The ready line as printed (key order kept), for tests that compare it with the docs.
    pub ready_line: String,
    stderr: Arc<Stderr>,
}

/// What the process wrote to stderr so far, and a signal for each new line.
#[derive(Debug, Default)]
struct Stderr {
    text: Mutex<String>,
    grew: Condvar,
}

impl Espsim {
    /// Starts `cmd` (e.g. `espsim run --http 127.0.0.1:0 …`) and waits up to `limit` for the
    /// ready line on stdout. Panics with the process's stderr when it does not come.
    pub fn start(mut cmd: Command, limit: Duration) -> Espsim {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stderr = Arc::new(Stderr::default());
        if let Some(pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut text) = sink.text.lock() {
                        text.push_str(&line);
                        text.push('\n');
                    }
                    sink.grew.notify_all();
                }
            });
        }
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(pipe) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let deadline = Instant::now() + limit;
        let mut espsim = Espsim {
            child,
            ready: serde_json::Value::Null,
            ready_line: String::new(),
            stderr,
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                        && value["event"] == "ready"
                    {
                        espsim.ready = value;
                        espsim.ready_line = line;
                        return espsim;
                    }
                }
                Err(e) => panic!(
                    "no ready line from {cmd:?} within {limit:?} ({e}); stderr:\n{}",
                    espsim.stderr()
                ),
            }
        }
    }

    /// What the process wrote to stderr so far (logs), for failure messages.
    pub fn stderr(&self) -> String {
        self.stderr
            .text
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Waits up to `limit` for a stderr line `wanted` accepts (e.g. an event, with
    /// `--events /dev/stderr`); that line, or `None` when none came in time.
    pub fn wait_for_stderr_line(
        &self,
        wanted: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut text = self.stderr.text.lock().ok()?;
        loop {
            if let Some(line) = text.lines().find(|line| wanted(line)) {
                return Some(line.to_owned());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            text = self.stderr.grew.wait_timeout(text, left).ok()?.0;
        }
    }

    /// The process id (the process group id when it was started with `process_group(0)`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The ready line's `ws_url`.
    pub fn ws_url(&self) -> String {
        self.ready["ws_url"]
            .as_str()
            .expect("ready line has ws_url")
            .to_owned()
    }

    /// The ready line's `http` address (`127.0.0.1:port`).
    pub fn http(&self) -> String {
        self.ready["http"]
            .as_str()
            .expect("ready line has http")
            .to_owned()
    }
}

impl Drop for Espsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
