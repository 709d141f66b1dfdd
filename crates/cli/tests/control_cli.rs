//! `espsim run`'s control API as a user meets it: the generated token in the ready line and
//! the `fault` CLI using it, instances side by side, and the raised open-file limit.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;

use support::{Espsim, STEP, espsim, run_is_refused};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

/// `GET /state` with `token`; the status line.
async fn state_status(control: SocketAddr, token: &str) -> String {
    let mut s = TcpStream::connect(control).await.expect("connects");
    let request = format!(
        "GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.expect("writes");
    let mut out = Vec::new();
    tokio::time::timeout(STEP, s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .expect("reads");
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn two_runs_with_ephemeral_device_ports_run_side_by_side() {
    // No --control: with every device port ephemeral the control port is ephemeral too.
    let args = ["--http", "127.0.0.1:0", "--dns", "127.0.0.1:0"];
    let first = Espsim::run_exactly(&args).await;
    let second = Espsim::run_exactly(&args).await;
    let (a, b) = (first.addr("control"), second.addr("control"));
    assert!(a.ip().is_loopback() && b.ip().is_loopback(), "{a} {b}");
    assert_ne!(a.port(), 0);
    assert_ne!(a.port(), b.port());
    let (ta, tb) = (first.control_token(), second.control_token());
    assert_eq!(state_status(a, &ta).await, "HTTP/1.1 200 OK");
    assert_eq!(state_status(b, &tb).await, "HTTP/1.1 200 OK");
    // Each has its own token.
    assert_eq!(state_status(a, &tb).await, "HTTP/1.1 401 Unauthorized");
    first.terminate();
    second.terminate();
}

#[tokio::test]
async fn the_generated_token_is_printed_and_the_fault_cli_takes_it_from_the_environment() {
    let em = Espsim::run(&[]).await;
    let token = em.control_token();
    assert_eq!(token.len(), 32, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let url = format!("http://{}", em.addr("control"));

    let (code, _, stderr) = espsim(&["fault", "--control", &url, "list"]).await;
    assert_eq!(code, 1, "without the token the API refuses: {stderr}");
    assert!(stderr.contains("control_token"), "{stderr}");

    let out = tokio::time::timeout(
        STEP,
        Command::new(env!("CARGO_BIN_EXE_espsim"))
            .args(["fault", "--control", &url, "list"])
            .env("ESPSIM_CONTROL_TOKEN", &token)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ends in time")
    .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no fault rules\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    em.terminate();
}

#[tokio::test]
async fn insecure_opt_out_and_an_empty_token() {
    let em = Espsim::run(&["--control-insecure"]).await;
    assert!(em.ready["control_token"].is_null(), "{}", em.ready);
    let url = format!("http://{}", em.addr("control"));
    let (code, stdout, stderr) = espsim(&["fault", "--control", &url, "list"]).await;
    assert_eq!((code, stdout.as_str()), (0, "no fault rules\n"), "{stderr}");
    em.terminate();

    let stderr = run_is_refused(&["--control", "127.0.0.1:0", "--control-token", ""]).await;
    assert!(stderr.contains("is empty"), "{stderr}");
}

/// `(soft, hard)` of "Max open files" in `/proc/PID/limits`.
#[cfg(target_os = "linux")]
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().expect("soft").to_owned();
    let hard = fields.next().expect("hard").to_owned();
    (soft, hard)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn run_raises_the_soft_open_file_limit_to_the_hard_limit_and_logs_it() {
    // Start it the way a login shell with `ulimit -Sn 256` would.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -S -n 256 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_espsim"),
            "run",
            "--http",
            "127.0.0.1:0",
            "--dns",
            "127.0.0.1:0",
        ])
        .env_remove("ESPSIM_CONTROL_TOKEN")
        .env("RUST_LOG", "espsim=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let ready = tokio::time::timeout(STEP, BufReader::new(stdout).lines().next_line())
        .await
        .expect("ready in time")
        .expect("reads")
        .expect("a ready line");
    assert!(ready.contains(r#""event":"ready""#), "{ready}");
    let pid = child.id().expect("running");
    let (soft, hard) = open_file_limits(pid);
    assert_eq!(soft, hard, "soft limit raised to the hard one");

    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let logged = tokio::time::timeout(STEP, async {
        while let Some(line) = lines.next_line().await.expect("reads") {
            if line.contains("open-file limit") {
                return line;
            }
        }
        panic!("no open-file limit line before stderr ended");
    })
    .await
    .expect("logged in time");
    assert!(logged.contains("old=256"), "{logged}");
    assert!(logged.contains(&format!("new={hard}")), "{logged}");
    child.kill().await.expect("stops");
}
