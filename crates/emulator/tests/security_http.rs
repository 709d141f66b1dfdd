//! Hostile request lines on the device port (plain, TLS, later on a keep-alive connection) and
//! secrets in request targets: the device answers like ESP-IDF and keeps serving, and no token
//! reaches the event log.

mod support;

use espsim_emulator::events::EventKind;
use espsim_emulator::internet::InternetMode;
use espsim_emulator::{ControlOptions, Emulator, EmulatorConfig, RunningEmulator, TlsOptions};
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use rustls::pki_types::ServerName;
use support::{WAIT, connect, read_response, read_to_close, text, tls_connector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

const BAD_REQUEST: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\nBad request syntax";

/// The lines that used to overflow the stack, with what ESP-IDF's `http_parser` makes of them.
const HOSTILE: [(&str, &str); 3] = [
    // Two spaces before `HTTP/`: `s_req_http_start` skips them; a normal request.
    ("GET /  HTTP/1.1", "HTTP/1.1 200 OK\r\n"),
    // A second word where `HTTP/` must start: HPE_INVALID_CONSTANT.
    ("GET /a b HTTP/1.1", BAD_REQUEST),
    // Something after the version: HPE_INVALID_VERSION.
    ("GET / HTTP/1.2 HTTP/1.1", BAD_REQUEST),
];

async fn start(tls_cert: Option<std::path::PathBuf>) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        internet: InternetMode::Captive,
        tls: tls_cert.map(|path| TlsOptions::SelfSigned {
            names: vec!["localhost".to_owned()],
            write_cert: Some(path),
        }),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// Sends `line` as a request on `s` and checks the answer: a 200 that keeps the connection,
/// or the exact 400 page and a close.
async fn check_hostile<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, line: &str, expected: &str) {
    let request = format!("{line}\r\nHost: 192.168.4.1\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("writes");
    if expected == BAD_REQUEST {
        assert_eq!(text(&read_to_close(s).await), expected, "{line}");
    } else {
        let response = text(&read_response(s).await);
        assert!(response.starts_with(expected), "{line}: {response}");
        // The connection stays usable.
        s.write_all(b"GET /  HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n")
            .await
            .expect("writes");
        let again = text(&read_response(s).await);
        assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
    }
}

/// The emulator still serves HTTP and DNS after the hostile requests.
async fn still_serving(em: &RunningEmulator) {
    let mut s = connect(em.http_addr()).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n")
        .await
        .expect("writes");
    let response = text(&read_response(&mut s).await);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");

    let dns = em.dns_addr().expect("dns on");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let mut query = Message::query();
    query.add_query(hickory_proto::op::Query::query(
        Name::from_ascii("captive.apple.com.").expect("name"),
        RecordType::A,
    ));
    let bytes = query.to_vec().expect("encodes");
    socket.send_to(&bytes, dns).await.expect("sends");
    let mut buf = vec![0u8; 4096];
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("a DNS answer in time")
        .expect("receives");
    let answer = Message::from_vec(&buf[..n]).expect("a DNS message");
    assert_eq!(answer.answers.len(), 1, "{answer:?}");
}

#[tokio::test]
async fn hostile_request_lines_on_the_plain_port_get_esp_idf_answers_and_the_device_lives() {
    let em = start(None).await;
    for (line, expected) in HOSTILE {
        let mut s = connect(em.http_addr()).await;
        check_hostile(&mut s, line, expected).await;
    }
    still_serving(&em).await;
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn hostile_request_lines_later_on_a_keep_alive_connection() {
    let em = start(None).await;
    for (line, expected) in HOSTILE {
        let mut s = connect(em.http_addr()).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n")
            .await
            .expect("writes");
        let first = text(&read_response(&mut s).await);
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
        check_hostile(&mut s, line, expected).await;
    }
    still_serving(&em).await;
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn hostile_request_lines_on_the_tls_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let em = start(Some(cert_path.clone())).await;
    let https = em.https_addr().expect("https address");
    let connector = tls_connector(&cert_path);
    for (line, expected) in HOSTILE {
        let tcp = connect(https).await;
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = timeout(WAIT, connector.connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake");
        check_hostile(&mut tls, line, expected).await;
    }
    still_serving(&em).await;
    em.shutdown(WAIT).await;
}

/// `GET /events` over a real socket, read until `until` appears in the body.
async fn events_text(em: &RunningEmulator, token: &str, until: &str) -> String {
    let mut s = connect(em.control_addr().expect("control on")).await;
    let request =
        format!("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("writes");
    let read = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !text(&out).contains(until) {
            let n = s.read(&mut buf).await.expect("reads");
            assert!(n > 0, "event stream ended early: {}", text(&out));
            out.extend_from_slice(&buf[..n]);
        }
        text(&out)
    };
    timeout(WAIT, read).await.expect("events in time")
}

#[tokio::test]
async fn the_device_token_in_a_query_never_reaches_get_events() {
    let secret = "s3cret-device-token";
    let mut config = EmulatorConfig {
        internet: InternetMode::Captive,
        dns: None,
        control: Some(ControlOptions::loopback(0)),
        ..EmulatorConfig::default()
    };
    config.device.auth_token = Some(secret.to_owned());
    let em = Emulator::start(config).await.expect("starts");
    let token = em.control_token().expect("a generated token").to_owned();
    // A mistyped WebSocket path (so a plain request), the token under its own name, under
    // another name, and in the path.
    for target in [
        format!("/ws/?token={secret}"),
        format!("/x?access_token=other-secret&t={secret}"),
        format!("/{secret}/hotspot-detect.html"),
    ] {
        let mut s = connect(em.http_addr()).await;
        let request = format!("GET {target} HTTP/1.1\r\nHost: captive.apple.com\r\n\r\n");
        s.write_all(request.as_bytes()).await.expect("writes");
        read_response(&mut s).await;
    }
    em.events()
        .wait_for(WAIT, |e| {
            matches!(&e.kind, EventKind::HttpRequest { target, .. } if target.contains("hotspot"))
        })
        .await
        .expect("the last request is logged");
    let events = events_text(&em, &token, "hotspot-detect.html").await;
    assert!(!events.contains(secret), "{events}");
    assert!(!events.contains("other-secret"), "{events}");
    assert!(
        events.contains(r#""target":"/ws/?token=<redacted>""#),
        "{events}"
    );
    assert!(
        events.contains(r#""target":"/x?access_token=<redacted>&t=<redacted>""#),
        "{events}"
    );
    assert!(
        events.contains(r#""target":"/<redacted>/hotspot-detect.html""#),
        "{events}"
    );
    em.shutdown(WAIT).await;
}
