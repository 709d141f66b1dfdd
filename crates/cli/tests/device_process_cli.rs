//! Device processes through the real binary: `espsim run --device-command … --device-arg …`
//! and a config file's `command:` (run in that file's directory) serve the Python example;
//! a process that exits before `ready` stops the start with exit 2 and says why.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{Espsim, STEP, run_is_refused, write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn python_example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/device-process/python/device.py")
}

/// `GET path` over a raw socket with `Connection: close`; the whole response as text.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connects");
        let req = format!("GET {path} HTTP/1.1\r\nHost: 192.168.4.1\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.expect("sent");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if n == 0 || text.ends_with('}') {
                return text;
            }
        }
    };
    tokio::time::timeout(STEP, exchange)
        .await
        .expect("answer in time")
}

async fn stops_cleanly(mut espsim: Espsim) {
    espsim.terminate();
    let status = tokio::time::timeout(Duration::from_secs(5), espsim.child.wait())
        .await
        .expect("exits in time")
        .expect("status");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn run_serves_a_device_command_given_as_flags() {
    let script = python_example();
    let espsim = Espsim::run(&[
        "--device-command",
        "python3",
        "--device-arg",
        script.to_str().expect("utf-8 path"),
    ])
    .await;
    let response = get(espsim.addr("http"), "/api/status").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with(r#"{"on":false,"clients":0}"#),
        "{response}"
    );
    stops_cleanly(espsim).await;
}

#[tokio::test]
async fn a_config_files_command_runs_in_that_files_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(python_example(), dir.path().join("device.py")).expect("copied");
    let config = write(dir.path(), "device.yaml", "command: [python3, device.py]\n");
    let espsim = Espsim::run(&["--config", config.to_str().expect("utf-8 path")]).await;
    let response = get(espsim.addr("http"), "/api/status").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    stops_cleanly(espsim).await;
}

#[tokio::test]
async fn a_device_command_that_exits_before_ready_stops_the_start() {
    let stderr = run_is_refused(&[
        "--no-control",
        "--device-command",
        "python3",
        "--device-arg",
        "-c",
        "--device-arg",
        "import sys; print('no luck', file=sys.stderr); sys.exit(4)",
    ])
    .await;
    assert!(
        stderr.contains("error: the device process `python3 -c import sys;"),
        "{stderr}"
    );
    assert!(
        stderr.contains("exited before sending `ready` (exit status: 4)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("docs/reference/device-process.md"),
        "{stderr}"
    );
}
