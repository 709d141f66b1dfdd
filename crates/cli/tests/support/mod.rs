//! Runs the real `espsim` binary and reads its ready line.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long any single step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(20);

/// A running `espsim run` and its parsed ready line.
pub struct Espsim {
    pub child: Child,
    pub ready: Value,
}

impl Espsim {
    /// Starts `espsim run` with ephemeral ports plus `args`; waits for the ready line.
    pub async fn run(args: &[&str]) -> Espsim {
        let mut all = vec!["--http", "127.0.0.1:0", "--dns", "127.0.0.1:0"];
        all.extend_from_slice(&["--control", "127.0.0.1:0"]);
        all.extend_from_slice(args);
        Espsim::run_exactly(&all).await
    }

    /// Starts `espsim run ARGS` (nothing added); waits for the ready line.
    pub async fn run_exactly(args: &[&str]) -> Espsim {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_espsim"));
        cmd.arg("run")
            .args(args)
            .env_remove("ESPSIM_CONTROL_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("espsim starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("ready line in time")
            .expect("stdout readable")
            .expect("a ready line");
        let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
        assert_eq!(ready["event"], "ready", "{line}");
        Espsim { child, ready }
    }

    /// An address from the ready line, e.g. `http`.
    pub fn addr(&self, key: &str) -> std::net::SocketAddr {
        self.ready[key]
            .as_str()
            .unwrap_or_else(|| panic!("ready line has {key}: {}", self.ready))
            .parse()
            .expect("socket address")
    }

    /// The control token `run` generated, from the ready line.
    pub fn control_token(&self) -> String {
        self.ready["control_token"]
            .as_str()
            .unwrap_or_else(|| panic!("ready line has a generated control_token: {}", self.ready))
            .to_owned()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

/// Runs `espsim ARGS` to completion; returns (exit code, stdout, stderr).
pub async fn espsim(args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        STEP,
        Command::new(env!("CARGO_BIN_EXE_espsim"))
            .args(args)
            .env_remove("ESPSIM_CONTROL_TOKEN")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("espsim ends in time")
    .expect("espsim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `espsim run --http 127.0.0.1:0 --no-dns ARGS`, which must refuse to start: exit code 2
/// and no ready line. Returns stderr, which says why.
pub async fn run_is_refused(args: &[&str]) -> String {
    let mut all = vec!["run", "--http", "127.0.0.1:0", "--no-dns"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = espsim(&all).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "no ready line: {stdout}");
    stderr
}

/// Runs `espsim ARGS` to the end (the binary's path in `ESPSIM_BIN`, for commands that call it
/// again); fails the test if it takes more than 60 s.
pub async fn espsim_output(args: &[&str]) -> Output {
    let run = Command::new(env!("CARGO_BIN_EXE_espsim"))
        .args(args)
        .env("ESPSIM_BIN", env!("CARGO_BIN_EXE_espsim"))
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("espsim ends within 60 s")
        .expect("espsim runs")
}

/// A process's stdout and stderr, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `p` as a command-line argument (test paths are UTF-8).
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Writes `text` to `dir/name` (a scenario, a script) and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}
