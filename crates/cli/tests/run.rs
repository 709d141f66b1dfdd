//! `espsim run` as a user runs it: the ready line, errors and exit codes, signals, TLS.

mod support;

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use support::{Espsim, STEP, espsim};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn http_get(addr: std::net::SocketAddr, host: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("writes");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(STEP, s.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("reads");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn ready_line_reports_the_bound_addresses_and_they_serve() {
    let espsim = Espsim::run(&["--seed", "7", "--device-ip", "192.168.4.1"]).await;
    let ready = &espsim.ready;
    assert_eq!(ready["profile"], "esp-idf-v5.4");
    assert_eq!(ready["internet"], "captive");
    assert_eq!(ready["device_ip"], "192.168.4.1");
    assert_eq!(ready["seed"], 7);
    let http = espsim.addr("http");
    assert_eq!(ready["ws_url"], format!("ws://{http}/ws"));
    let answer = http_get(http, "connectivitycheck.gstatic.com", "/generate_204").await;
    assert!(
        answer.starts_with("HTTP/1.1 302 Temporary Redirect\r\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_taken_port_exits_2_with_one_line_and_a_hint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, stdout, stderr) = espsim(&["run", "--http", &addr, "--no-dns"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "no ready line: {stdout}");
    let line = stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "{stderr}");
    assert!(
        line.starts_with(&format!("error: failed to bind http on {addr}: ")),
        "{line}"
    );
    assert!(line.contains("(hint: another program uses it"), "{line}");
}

#[tokio::test]
async fn usage_and_config_errors_exit_2() {
    let (code, _, stderr) = espsim(&["run", "--profile", "esp-idf-v9"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown profile `esp-idf-v9`"), "{stderr}");

    let (code, _, _) = espsim(&["run", "--no-such-flag"]).await;
    assert_eq!(code, 2);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("device.yaml");
    std::fs::write(
        &path,
        "profile: esp-idf-v5.4\nws:\n  path: /ws\n  pth: /x\n",
    )
    .expect("writes");
    let (code, _, stderr) = espsim(&["run", "--config", path.to_str().expect("utf-8")]).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("{}:4:", path.display())),
        "file:line:column expected: {stderr}"
    );
}

#[tokio::test]
async fn config_file_sets_the_device_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("device.yaml");
    std::fs::write(
        &path,
        "profile: esp-idf-v5.5\ninternet: offline\nws: { path: /socket }\n",
    )
    .expect("writes");
    let espsim = Espsim::run(&[
        "--config",
        path.to_str().expect("utf-8"),
        "--internet",
        "online",
    ])
    .await;
    assert_eq!(espsim.ready["profile"], "esp-idf-v5.5");
    assert_eq!(espsim.ready["internet"], "online");
    let http = espsim.addr("http");
    assert_eq!(espsim.ready["ws_url"], format!("ws://{http}/socket"));
    let answer = http_get(http, "connectivitycheck.gstatic.com", "/generate_204").await;
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn sigterm_closes_websocket_sessions_with_1001_and_exits_0() {
    let mut espsim = Espsim::run(&[]).await;
    let url = espsim.ready["ws_url"].as_str().expect("ws_url").to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("handshake");
    ws.send(Message::text(
        r#"{"type":"hello","client":"test","version":"1"}"#,
    ))
    .await
    .expect("sends");
    // Wait for the welcome, so the session is surely established.
    let first = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("welcome in time");
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");

    espsim.terminate();
    let close = tokio::time::timeout(STEP, async {
        while let Some(msg) = ws.next().await {
            if let Ok(Message::Close(frame)) = msg {
                return frame;
            }
        }
        None
    })
    .await
    .expect("close frame in time");
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    let status = tokio::time::timeout(STEP, espsim.child.wait())
        .await
        .expect("exits in time")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn wss_works_with_the_written_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let espsim = Espsim::run(&[
        "--tls",
        "--https",
        "127.0.0.1:0",
        "--write-cert",
        cert_path.to_str().expect("utf-8"),
    ])
    .await;
    let https = espsim.addr("https");

    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&cert_path).expect("pem") {
        roots.add(cert.expect("cert")).expect("root added");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(https).await.expect("connects");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("certificate trusted");
    let (mut ws, response) =
        tokio_tungstenite::client_async(format!("wss://127.0.0.1:{}/ws", https.port()), tls)
            .await
            .expect("handshake over TLS");
    assert_eq!(response.status(), 101);
    ws.send(Message::text(
        r#"{"type":"hello","client":"tls-test","version":"1","id":1}"#,
    ))
    .await
    .expect("sends");
    let reply = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("reply in time");
    match reply {
        Some(Ok(Message::Text(t))) => assert!(t.contains(r#""type":"welcome""#), "{t}"),
        other => panic!("expected welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn profiles_lists_every_profile() {
    let (code, stdout, _) = espsim(&["profiles"]).await;
    assert_eq!(code, 0);
    for name in [
        "esp-idf-v5.4",
        "esp-idf-v5.5",
        "esp-idf-v6.1-strict",
        "captive-portal-example",
        "unlimited",
    ] {
        assert!(stdout.contains(name), "{name} missing: {stdout}");
    }
}

#[tokio::test]
async fn cert_writes_a_usable_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    let (code, stdout, stderr) = espsim(&[
        "cert",
        "--cert",
        cert.to_str().expect("utf-8"),
        "--key",
        key.to_str().expect("utf-8"),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("wrote "), "{stdout}");
    let espsim = Espsim::run(&[
        "--https",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().expect("utf-8"),
        "--key",
        key.to_str().expect("utf-8"),
    ])
    .await;
    assert!(espsim.ready["https"].is_string(), "{}", espsim.ready);
}

/// How many of `pid`'s threads are named `espsim-worker` (`/proc/<pid>/task/*/comm`): the
/// runtime's workers (its blocking pool would share the name, but `run` starts no blocking
/// task).
fn workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/<pid>/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "espsim-worker")
        .count()
}

#[tokio::test]
async fn worker_threads_default_to_one_and_the_flag_sets_them() {
    for (args, expected) in [(&[][..], 1), (&["--worker-threads", "3"][..], 3)] {
        let espsim = Espsim::run(args).await;
        let pid = espsim.child.id().expect("espsim runs");
        assert_eq!(workers(pid), expected, "{args:?}");
        // It serves with that many: the connectivity check and a WebSocket session.
        let http = espsim.addr("http");
        let answer = http_get(http, "connectivitycheck.gstatic.com", "/generate_204").await;
        assert!(answer.starts_with("HTTP/1.1 302 "), "{args:?}: {answer}");
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
            .await
            .expect("the WebSocket opens");
        for message in [
            r#"{"type":"hello","client":"test","version":"1"}"#,
            r#"{"type":"ping","seq":1}"#,
        ] {
            ws.send(Message::text(message)).await.expect("sends");
        }
        let pong = tokio::time::timeout(STEP, async {
            while let Some(Ok(frame)) = ws.next().await {
                if frame
                    .to_text()
                    .is_ok_and(|t| t.contains(r#""type":"pong""#))
                {
                    return Some(frame);
                }
            }
            None
        })
        .await
        .expect("an answer in time");
        assert!(pong.is_some(), "{args:?}: no pong");
    }
    let (code, _, stderr) = espsim(&["run", "--worker-threads", "0"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--worker-threads"), "{stderr}");
}
