//! The control API's connection cap and head/idle timeout over real sockets: idle clients
//! cannot lock out the device, DNS or (for longer than the timeout) the API itself.
//!
//! Real time with a small timeout: hyper's timer and the kernel's sockets both take part, and
//! paused tokio time would fire the timeouts before the kernel delivers the bytes.

mod support;

use std::time::{Duration, Instant};

use espsim_emulator::internet::InternetMode;
use espsim_emulator::{ControlLimits, ControlOptions, Emulator, EmulatorConfig, RunningEmulator};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use support::{WAIT, connect, read_to_close_within, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const CAP: usize = 3;
const HEAD_TIMEOUT: Duration = Duration::from_millis(1500);

async fn start() -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        internet: InternetMode::Captive,
        control: Some(ControlOptions {
            limits: ControlLimits {
                head_timeout: HEAD_TIMEOUT,
                max_connections: CAP,
            },
            ..ControlOptions::loopback(0)
        }),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// Reads until the server closes (EOF or reset) within `within`; what came.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> String {
    text(&read_to_close_within(s, within).await)
}

/// One control request on a fresh connection; the status code.
async fn control_status(em: &RunningEmulator) -> String {
    let mut s = connect(em.control_addr().expect("control on")).await;
    let token = em.control_token().expect("token");
    let request = format!(
        "GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.expect("writes");
    let answer = read_to_close(&mut s, WAIT).await;
    answer.lines().next().unwrap_or_default().to_owned()
}

async fn device_still_serves(em: &RunningEmulator) {
    let mut s = connect(em.http_addr()).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n")
        .await
        .expect("writes");
    let mut head = [0u8; 17];
    timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("device answers in time")
        .expect("reads");
    assert_eq!(&head, b"HTTP/1.1 200 OK\r\n");

    let mut dns = connect(em.dns_addr().expect("dns on")).await;
    let mut query = Message::query();
    query.add_query(Query::query(
        Name::from_ascii("connectivitycheck.gstatic.com.").expect("name"),
        RecordType::A,
    ));
    let bytes = query.to_vec().expect("encodes");
    let len = u16::try_from(bytes.len()).expect("small");
    dns.write_all(&len.to_be_bytes()).await.expect("writes");
    dns.write_all(&bytes).await.expect("writes");
    let reply = async {
        let len = dns.read_u16().await.expect("length prefix");
        let mut buf = vec![0u8; usize::from(len)];
        dns.read_exact(&mut buf).await.expect("message");
        buf
    };
    let reply = timeout(WAIT, reply).await.expect("DNS over TCP answers");
    let reply = Message::from_vec(&reply).expect("decodes");
    assert_eq!(reply.answers.len(), 1, "{reply:?}");
}

#[tokio::test]
async fn idle_control_connections_over_the_cap_are_refused_and_time_out() {
    let em = start().await;
    let control = em.control_addr().expect("control on");
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(connect(control).await);
    }
    // One more than the cap (and one more again): answered 503 and closed (only the cap
    // sends this answer; the head timeout closes without one).
    for _ in 0..2 {
        let mut extra = connect(control).await;
        let answer = read_to_close(&mut extra, WAIT).await;
        let body = format!(
            "{{\"error\":\"too many control API connections (limit {CAP}); close idle ones and retry\"}}"
        );
        assert_eq!(
            answer,
            format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
                body.len()
            )
        );
    }
    // The device's own ports do not share the control API's cap.
    device_still_serves(&em).await;

    // The idle ones are closed by the head timeout (not before it), without an answer…
    for s in &mut idle {
        assert_eq!(read_to_close(s, HEAD_TIMEOUT + WAIT).await, "");
    }
    assert!(
        opened.elapsed() >= HEAD_TIMEOUT,
        "closed after {:?}, before the {HEAD_TIMEOUT:?} timeout",
        opened.elapsed()
    );
    // …which frees their slots: a fresh control request is served again.
    assert_eq!(control_status(&em).await, "HTTP/1.1 200 OK");
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_trickled_head_and_an_idle_keep_alive_connection_are_closed() {
    let em = start().await;
    let control = em.control_addr().expect("control on");
    let token = em.control_token().expect("token").to_owned();

    // Slowloris: a request line and nothing more.
    let started = Instant::now();
    let mut slow = connect(control).await;
    slow.write_all(b"GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("writes");
    read_to_close(&mut slow, HEAD_TIMEOUT + WAIT).await;
    assert!(started.elapsed() >= HEAD_TIMEOUT, "{:?}", started.elapsed());

    // Keep-alive: one full exchange, then silence.
    let mut kept = connect(control).await;
    let request =
        format!("GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n");
    kept.write_all(request.as_bytes()).await.expect("writes");
    let answered = Instant::now();
    let answer = read_to_close(&mut kept, HEAD_TIMEOUT + WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answered.elapsed() >= HEAD_TIMEOUT / 2,
        "{:?}",
        answered.elapsed()
    );
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_event_stream_is_not_cut_by_the_idle_timeout() {
    let em = start().await;
    let control = em.control_addr().expect("control on");
    let token = em.control_token().expect("token").to_owned();
    let mut events = connect(control).await;
    let request =
        format!("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n");
    events.write_all(request.as_bytes()).await.expect("writes");
    let mut buf = vec![0u8; 4096];
    let n = timeout(WAIT, events.read(&mut buf))
        .await
        .expect("history in time")
        .expect("reads");
    assert!(n > 0);
    // Quiet for longer than the head timeout: a response in progress is not idle.
    let quiet = tokio::time::sleep(HEAD_TIMEOUT * 2);
    tokio::pin!(quiet);
    tokio::select! {
        read = events.read(&mut buf) => panic!("the stream ended or sent while quiet: {read:?}"),
        () = &mut quiet => {}
    }
    em.set_internet(InternetMode::Offline);
    let n = timeout(WAIT, events.read(&mut buf))
        .await
        .expect("a live event in time")
        .expect("reads");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.contains("internet_changed"), "{text}");
    em.shutdown(WAIT).await;
}
