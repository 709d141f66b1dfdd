//! The control API's security model over real sockets: a token by default, an explicit
//! opt-out, the `Host` check against DNS rebinding, and CORS only for allowed origins.

mod support;

use std::net::SocketAddr;

use espsim_emulator::internet::InternetMode;
use espsim_emulator::{ControlAuth, ControlOptions, Emulator, EmulatorConfig, StartError};
use support::{Answer, WAIT, exchange, start_with_control};

/// Sends `head` (request line and headers, without the blank line) with `Connection: close`
/// and reads the whole answer.
async fn raw(addr: SocketAddr, head: &str) -> Answer {
    exchange(addr, head, "").await
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

#[tokio::test]
async fn by_default_a_generated_token_is_required() {
    let em = start_with_control(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let token = em.control_token().expect("a generated token");
    assert_eq!(token.len(), 32, "128 bits as hex: {token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");

    let none = raw(addr, "POST /button HTTP/1.1\r\nHost: 127.0.0.1").await;
    assert_eq!(none.status, 401);
    assert!(none.error().contains("control_token"), "{}", none.body);
    let with = raw(
        addr,
        &format!(
            "GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\n{}",
            bearer(token)
        ),
    )
    .await;
    assert_eq!(with.status, 200, "{}", with.body);
    // Two emulators do not share a token.
    let other = start_with_control(ControlOptions::loopback(0)).await;
    assert_ne!(other.control_token(), Some(token));
    other.shutdown(WAIT).await;
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_foreign_host_is_refused_even_with_the_token() {
    let em = start_with_control(ControlOptions {
        allowed_hosts: vec!["espsim".to_owned()],
        ..ControlOptions::loopback(0)
    })
    .await;
    let addr = em.control_addr().expect("control on");
    let auth = bearer(em.control_token().expect("token"));
    let port = addr.port();
    // A page on evil.example whose name was rebound to 127.0.0.1 still sends its own name.
    for host in [
        format!("evil.example:{port}"),
        "127.0.0.1.nip.io".to_owned(),
        "espsim.evil.example".to_owned(),
    ] {
        let a = exchange(
            addr,
            &format!(
                "PUT /internet HTTP/1.1\r\nHost: {host}\r\n{auth}\r\nContent-Type: application/json"
            ),
            r#"{"mode":"online"}"#,
        )
        .await;
        assert_eq!(a.status, 403, "{host}: {}", a.body);
        assert!(a.error().contains("--control-allow-host"), "{}", a.body);
        assert!(!a.has_cors());
    }
    assert_eq!(em.internet(), InternetMode::Captive, "nothing was changed");
    // An absolute-form target names a host too.
    let a = raw(
        addr,
        &format!("GET http://evil.example/state HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".to_owned(),
        format!("ESPSIM:{port}"),
    ] {
        let a = raw(
            addr,
            &format!("GET /state HTTP/1.1\r\nHost: {host}\r\n{auth}"),
        )
        .await;
        assert_eq!(a.status, 200, "{host}: {}", a.body);
    }
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn no_cors_headers_and_foreign_origins_refused_unless_allowed() {
    let em = start_with_control(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let auth = bearer(em.control_token().expect("token"));
    let preflight = raw(
        addr,
        "OPTIONS /faults HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization",
    )
    .await;
    assert_eq!(preflight.status, 403, "{}", preflight.body);
    assert!(!preflight.has_cors(), "{:?}", preflight.headers);
    // A "simple" cross-origin POST needs no preflight: the Origin check refuses it.
    let post = raw(
        addr,
        &format!(
            "POST /button HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://localhost:3000\r\n{auth}"
        ),
    )
    .await;
    assert_eq!(post.status, 403, "{}", post.body);
    assert!(
        post.error()
            .contains("--control-allow-origin http://localhost:3000"),
        "{}",
        post.body
    );
    assert!(!post.has_cors());
    // Without an Origin (curl, scripts, the CLI) no CORS header either.
    let plain = raw(
        addr,
        &format!("GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"),
    )
    .await;
    assert_eq!(plain.status, 200);
    assert!(!plain.has_cors(), "{:?}", plain.headers);
    em.shutdown(WAIT).await;

    let em = start_with_control(ControlOptions {
        allowed_origins: vec!["http://localhost:3000".to_owned()],
        ..ControlOptions::loopback(0)
    })
    .await;
    let addr = em.control_addr().expect("control on");
    let auth = bearer(em.control_token().expect("token"));
    let preflight = raw(
        addr,
        "OPTIONS /faults HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization",
    )
    .await;
    assert_eq!(preflight.status, 200, "{}", preflight.body);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let get = raw(
        addr,
        &format!(
            "GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://localhost:3000\r\n{auth}"
        ),
    )
    .await;
    assert_eq!(get.status, 200, "{}", get.body);
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    // The allowed origin still needs the token.
    let no_token = raw(
        addr,
        "GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://localhost:3000",
    )
    .await;
    assert_eq!(no_token.status, 401);
    let other = raw(
        addr,
        &format!(
            "GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://localhost:3001\r\n{auth}"
        ),
    )
    .await;
    assert_eq!(other.status, 403, "{}", other.body);
    assert!(!other.has_cors());
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn insecure_opt_out_needs_no_token_but_keeps_the_host_and_origin_checks() {
    let em = start_with_control(ControlOptions::loopback(0).with_auth(ControlAuth::Insecure)).await;
    assert_eq!(em.control_token(), None);
    let addr = em.control_addr().expect("control on");
    let ok = raw(addr, "POST /button HTTP/1.1\r\nHost: 127.0.0.1").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let rebound = raw(addr, "POST /button HTTP/1.1\r\nHost: evil.example").await;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    let page = raw(
        addr,
        "POST /button HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example",
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.body);
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn bad_control_options_do_not_start() {
    for (options, needle) in [
        (
            ControlOptions::loopback(0).with_auth(ControlAuth::Token(String::new())),
            "empty",
        ),
        (
            ControlOptions {
                allowed_origins: vec!["localhost:3000".to_owned()],
                ..ControlOptions::loopback(0)
            },
            "localhost:3000",
        ),
        (
            ControlOptions {
                allowed_hosts: vec!["evil.example:80".to_owned()],
                ..ControlOptions::loopback(0)
            },
            "evil.example:80",
        ),
    ] {
        let err = Emulator::start(EmulatorConfig {
            dns: None,
            control: Some(options),
            ..EmulatorConfig::default()
        })
        .await
        .expect_err("refused");
        assert!(
            matches!(
                err,
                StartError::Control(_) | StartError::ControlWithoutToken { .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(needle), "{err}");
    }
}
