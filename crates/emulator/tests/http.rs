//! The device port as an app sees it: raw TCP requests, byte-exact ESP-IDF responses.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use espsim_emulator::events::{CheckVerdict, Event, EventKind};
use espsim_emulator::internet::InternetMode;
use espsim_emulator::profile::Profile;
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use support::{WAIT, conn_id, connect, read_response, read_to_close, text, tls_connector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(profile: Profile, internet: InternetMode) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        profile,
        internet,
        dns: None,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// Sends `request` on a new connection and reads until the device closes.
async fn exchange_closing(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr).await;
    s.write_all(request).await.expect("writes");
    read_to_close(&mut s).await
}

/// Whether the device keeps the socket open: nothing arrives and no EOF within `d`.
async fn still_open(s: &mut TcpStream, d: Duration) -> bool {
    let mut buf = [0u8; 16];
    tokio::time::timeout(d, s.read(&mut buf)).await.is_err()
}

fn get(host: &str, target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

async fn wait_event(em: &RunningEmulator, what: &str, pred: impl FnMut(&Event) -> bool) -> Event {
    em.events()
        .wait_for(WAIT, pred)
        .await
        .unwrap_or_else(|| panic!("no {what} event"))
}

const REDIRECT_302: &[u8] = b"HTTP/1.1 302 Temporary Redirect\r\nContent-Type: text/html\r\nContent-Length: 30\r\nLocation: /\r\n\r\nRedirect to the captive portal";
const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 29\r\n\r\nNothing matches the given URI";

#[tokio::test]
async fn android_probe_in_each_mode() {
    let em = start(Profile::default(), InternetMode::Online).await;
    let addr = em.http_addr();
    let probe = get("connectivitycheck.gstatic.com", "/generate_204");

    // Online: 204, and the socket stays open for the next request.
    let mut s = connect(addr).await;
    s.write_all(&probe).await.expect("writes");
    assert_eq!(
        text(&read_response(&mut s).await),
        "HTTP/1.1 204 No Content\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n"
    );

    // Captive: the example's redirect; still keep-alive (its 404 handler returns ESP_OK).
    em.set_internet(InternetMode::Captive);
    s.write_all(&probe).await.expect("writes");
    assert_eq!(text(&read_response(&mut s).await), text(REDIRECT_302));
    assert!(still_open(&mut s, Duration::from_millis(100)).await);

    // Offline: ESP-IDF's 404, then the socket closes.
    em.set_internet(InternetMode::Offline);
    s.write_all(&probe).await.expect("writes");
    assert_eq!(text(&read_to_close(&mut s).await), text(NOT_FOUND));

    let verdicts: Vec<(InternetMode, u16, CheckVerdict)> = em
        .events()
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ConnectivityProbe {
                os,
                url,
                mode,
                status,
                verdict,
                ..
            } => {
                assert_eq!(os, "android");
                assert_eq!(url, "http://connectivitycheck.gstatic.com/generate_204");
                Some((mode, status, verdict))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (InternetMode::Online, 204, CheckVerdict::Online),
            (InternetMode::Captive, 302, CheckVerdict::SignIn),
            (InternetMode::Offline, 404, CheckVerdict::NoInternet),
        ]
    );
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn apple_probe_online_gets_the_success_page() {
    let em = start(Profile::default(), InternetMode::Online).await;
    let mut s = connect(em.http_addr()).await;
    s.write_all(&get("captive.apple.com", "/hotspot-detect.html"))
        .await
        .expect("writes");
    assert_eq!(
        text(&read_response(&mut s).await),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 68\r\n\r\n<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
    );
    em.shutdown(WAIT).await;
}

/// One probe: Host, target, OS, the online answer's status and body, and the verdicts per mode
/// (online, captive, offline).
struct Case {
    host: &'static str,
    target: &'static str,
    os: &'static str,
    online: (u16, &'static str),
    verdicts: [CheckVerdict; 3],
}

const CASES: &[Case] = &[
    Case {
        host: "connectivitycheck.gstatic.com",
        target: "/generate_204",
        os: "android",
        online: (204, ""),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::NoInternet,
        ],
    },
    Case {
        host: "www.google.com",
        target: "/gen_204",
        os: "android",
        online: (204, ""),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::NoInternet,
        ],
    },
    Case {
        host: "connect.rom.miui.com",
        target: "/generate_204",
        os: "android",
        online: (204, ""),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::NoInternet,
        ],
    },
    Case {
        host: "www.gstatic.com",
        target: "/generate_204",
        os: "chromeos",
        online: (204, ""),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::NoInternet,
        ],
    },
    Case {
        host: "captive.apple.com",
        target: "/hotspot-detect.html",
        os: "apple",
        online: (
            200,
            "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
        ),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::SignIn,
        ],
    },
    Case {
        host: "www.apple.com",
        target: "/library/test/success.html",
        os: "apple",
        online: (
            200,
            "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
        ),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::SignIn,
        ],
    },
    Case {
        host: "www.msftconnecttest.com",
        target: "/connecttest.txt",
        os: "windows",
        online: (200, "Microsoft Connect Test"),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::NoInternet,
        ],
    },
    Case {
        host: "www.msftncsi.com",
        target: "/ncsi.txt",
        os: "windows",
        online: (200, "Microsoft NCSI"),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::NoInternet,
        ],
    },
    Case {
        host: "detectportal.firefox.com",
        target: "/canonical.html",
        os: "firefox",
        online: (
            200,
            r#"<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>"#,
        ),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::SignIn,
        ],
    },
    Case {
        host: "detectportal.firefox.com",
        target: "/success.txt?ipv4",
        os: "firefox",
        online: (200, "success\n"),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::NoInternet,
            CheckVerdict::NoInternet,
        ],
    },
    Case {
        host: "nmcheck.gnome.org",
        target: "/check_network_status.txt",
        os: "networkmanager",
        online: (200, "NetworkManager is online\n"),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::SignIn,
        ],
    },
    Case {
        host: "connectivity-check.ubuntu.com",
        target: "/",
        os: "networkmanager",
        online: (204, ""),
        verdicts: [
            CheckVerdict::Online,
            CheckVerdict::SignIn,
            CheckVerdict::SignIn,
        ],
    },
];

#[tokio::test]
async fn every_os_probe_in_every_mode_reaches_its_verdict() {
    let em = start(Profile::default(), InternetMode::Online).await;
    let addr = em.http_addr();
    let modes = [
        InternetMode::Online,
        InternetMode::Captive,
        InternetMode::Offline,
    ];
    for (i, mode) in modes.into_iter().enumerate() {
        em.set_internet(mode);
        for case in CASES {
            let mut s = connect(addr).await;
            let id = conn_id(&em, &s).await;
            s.write_all(&get(case.host, case.target))
                .await
                .expect("writes");
            let response = text(&read_response(&mut s).await);
            let status: u16 = response[9..12].parse().expect("status");
            match mode {
                InternetMode::Online => {
                    assert_eq!(status, case.online.0, "{}{}", case.host, case.target);
                    assert!(
                        response.ends_with(&format!("\r\n\r\n{}", case.online.1)),
                        "{response}"
                    );
                }
                // `/` is the portal page in captive mode (Ubuntu's probe URL is `/`).
                InternetMode::Captive if case.target == "/" => assert_eq!(status, 200),
                InternetMode::Captive => assert_eq!(response, text(REDIRECT_302)),
                InternetMode::Offline => assert_eq!(response, text(NOT_FOUND)),
            }
            let probe = wait_event(
                &em,
                "connectivity_probe",
                |e| matches!(&e.kind, EventKind::ConnectivityProbe { conn, .. } if *conn == id),
            )
            .await;
            let EventKind::ConnectivityProbe {
                os,
                url,
                mode: seen,
                status: sent,
                verdict,
                ..
            } = probe.kind
            else {
                unreachable!()
            };
            assert_eq!(os, case.os, "{}{}", case.host, case.target);
            assert_eq!(url, format!("http://{}{}", case.host, case.target));
            assert_eq!((seen, sent), (mode, status));
            assert_eq!(
                verdict, case.verdicts[i],
                "{}{} in {mode}",
                case.host, case.target
            );
        }
    }
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn chromeos_is_told_from_android_by_its_user_agent() {
    let em = start(Profile::default(), InternetMode::Captive).await;
    let mut s = connect(em.http_addr()).await;
    s.write_all(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nUser-Agent: Mozilla/5.0 (X11; CrOS x86_64 14541.0.0)\r\n\r\n")
        .await
        .expect("writes");
    assert_eq!(text(&read_response(&mut s).await), text(REDIRECT_302));
    let e = wait_event(&em, "probe", |e| {
        matches!(e.kind, EventKind::ConnectivityProbe { .. })
    })
    .await;
    assert!(
        matches!(&e.kind, EventKind::ConnectivityProbe { os, verdict: CheckVerdict::SignIn, .. } if os == "chromeos")
    );
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn esp_idf_error_pages_then_close() {
    let em = start(Profile::default(), InternetMode::Offline).await;
    let addr = em.http_addr();
    let cases: &[(&[u8], &str)] = &[
        (
            &get("192.168.4.1", "/nothing"),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 29\r\n\r\nNothing matches the given URI",
        ),
        (
            b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/html\r\nContent-Length: 45\r\n\r\nSpecified method is invalid for this resource",
        ),
        (
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            "HTTP/1.1 505 Version Not Supported\r\nContent-Type: text/html\r\nContent-Length: 36\r\n\r\nHTTP version not supported by server",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\nBad request syntax",
        ),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket2\r\nConnection: Upgrade\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\nBad request syntax",
        ),
        (
            b"hello\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\nBad request syntax",
        ),
        // `http_parser` rejects unknown method tokens itself: 400, not 501.
        (
            b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\nBad request syntax",
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(
            text(&exchange_closing(addr, request).await),
            *expected,
            "{}",
            text(request)
        );
    }
    // 405 on `/` where the captive example registers only GET.
    em.set_internet(InternetMode::Captive);
    assert_eq!(
        text(&exchange_closing(addr, b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n").await),
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/html\r\nContent-Length: 45\r\n\r\nSpecified method is invalid for this resource"
    );
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn uri_too_long_is_414() {
    let em = start(Profile::default(), InternetMode::Captive).await;
    let target = format!("/{}", "a".repeat(600));
    assert_eq!(
        text(&exchange_closing(em.http_addr(), &get("x", &target)).await),
        "HTTP/1.1 414 URI Too Long\r\nContent-Type: text/html\r\nContent-Length: 15\r\n\r\nURI is too long"
    );
    let e = wait_event(&em, "http_error", |e| {
        matches!(e.kind, EventKind::HttpError { status: 414, .. })
    })
    .await;
    assert!(matches!(e.kind, EventKind::HttpError { .. }));
    em.shutdown(WAIT).await;
}

/// A request whose header lines (first header through the blank line) are `len` bytes.
fn with_header_block(len: usize) -> Vec<u8> {
    let fixed = "Host: 192.168.4.1\r\nX-Pad: \r\n\r\n".len();
    let pad = "p".repeat(len - fixed);
    format!("GET / HTTP/1.1\r\nHost: 192.168.4.1\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn header_limit_is_512_or_1024_per_profile() {
    let v54 = start(Profile::ESP_IDF_V5_4, InternetMode::Captive).await;
    let v55 = start(Profile::ESP_IDF_V5_5, InternetMode::Captive).await;
    let big = with_header_block(600);
    let too_large = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/html\r\nContent-Length: 26\r\n\r\nHeader fields are too long";
    assert_eq!(
        text(&exchange_closing(v54.http_addr(), &big).await),
        too_large
    );

    // v5.5: the same request is served (the portal page), and the socket stays open.
    let mut s = connect(v55.http_addr()).await;
    s.write_all(&big).await.expect("writes");
    let page = text(&read_response(&mut s).await);
    assert!(
        page.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"),
        "{page}"
    );
    assert!(still_open(&mut s, Duration::from_millis(100)).await);
    assert_eq!(
        text(&exchange_closing(v55.http_addr(), &with_header_block(1100)).await),
        too_large
    );

    // The boundary on v5.4: 513 bytes of header lines fit ESP-IDF's scratch, 514 do not.
    let mut s = connect(v54.http_addr()).await;
    s.write_all(&with_header_block(513)).await.expect("writes");
    assert!(text(&read_response(&mut s).await).starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(
        text(&exchange_closing(v54.http_addr(), &with_header_block(514)).await),
        too_large
    );

    // v4.4 wording.
    let v44 = start(
        Profile {
            modern_error_bodies: false,
            ..Profile::default()
        },
        InternetMode::Captive,
    )
    .await;
    assert_eq!(
        text(&exchange_closing(v44.http_addr(), &big).await),
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/html\r\nContent-Length: 50\r\n\r\nHeader fields are too long for server to interpret"
    );
    for em in [v54, v55, v44] {
        em.shutdown(WAIT).await;
    }
}

#[tokio::test]
async fn a_stalled_request_gets_408_but_an_idle_socket_is_not_timed_out() {
    let timeout = Duration::from_millis(200);
    let em = start(
        Profile {
            recv_timeout: timeout,
            ..Profile::default()
        },
        InternetMode::Captive,
    )
    .await;
    // Idle for three timeouts: nothing happens, then a request is still served.
    let mut idle = connect(em.http_addr()).await;
    assert!(still_open(&mut idle, timeout * 3).await);
    idle.write_all(&get("x", "/")).await.expect("writes");
    assert!(text(&read_response(&mut idle).await).starts_with("HTTP/1.1 200 OK\r\n"));

    // A started request that stalls: 408, then close.
    let mut s = connect(em.http_addr()).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    assert_eq!(
        text(&read_to_close(&mut s).await),
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/html\r\nContent-Length: 29\r\n\r\nServer closed this connection"
    );
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn keep_alive_ignores_connection_close_and_serves_pipelined_requests() {
    let em = start(Profile::default(), InternetMode::Captive).await;
    let mut s = connect(em.http_addr()).await;
    // Two requests in one write, both with `Connection: close`; a body on the first is skipped.
    let mut both =
        b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
            .to_vec();
    both.extend_from_slice(&get("x", "/b"));
    s.write_all(&both).await.expect("writes");
    assert_eq!(text(&read_response(&mut s).await), text(REDIRECT_302));
    assert_eq!(text(&read_response(&mut s).await), text(REDIRECT_302));
    assert!(still_open(&mut s, Duration::from_millis(100)).await);
    let id = conn_id(&em, &s).await;
    let targets: Vec<String> = em
        .events()
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HttpRequest {
                conn,
                target,
                status: 302,
                ..
            } if conn == id => Some(target),
            _ => None,
        })
        .collect();
    assert_eq!(targets, ["/a", "/b"]);
    // The app closing is recorded.
    drop(s);
    wait_event(&em, "tcp_closed", |e| {
        matches!(e.kind, EventKind::TcpClosed { conn, by: espsim_emulator::events::Side::Client, .. } if conn == id)
    })
    .await;
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_portal_page_describes_the_device() {
    let em = start(Profile::default(), InternetMode::Captive).await;
    let mut s = connect(em.http_addr()).await;
    s.write_all(&get("192.168.4.1", "/")).await.expect("writes");
    let page = text(&read_response(&mut s).await);
    let port = em.http_addr().port();
    assert!(page.contains("Device IP: 127.0.0.1"), "{page}");
    assert!(page.contains("Profile: esp-idf-v5.4"));
    assert!(page.contains("Internet: captive"));
    assert!(page.contains(&format!("ws://127.0.0.1:{port}/ws")));
    // Offline: plain firmware, no `/` handler.
    em.set_internet(InternetMode::Offline);
    s.write_all(&get("192.168.4.1", "/")).await.expect("writes");
    assert_eq!(text(&read_to_close(&mut s).await), text(NOT_FOUND));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_eighth_connection_waits_until_a_slot_frees() {
    let em = start(Profile::default(), InternetMode::Captive).await;
    let addr = em.http_addr();
    let mut holders = Vec::new();
    for _ in 0..7 {
        let s = connect(addr).await;
        let id = conn_id(&em, &s).await;
        wait_event(
            &em,
            "tcp_served",
            |e| matches!(e.kind, EventKind::TcpServed { conn } if conn == id),
        )
        .await;
        holders.push(s);
    }
    let mut eighth = connect(addr).await;
    let id = conn_id(&em, &eighth).await;
    let waiting = wait_event(
        &em,
        "tcp_waiting",
        |e| matches!(e.kind, EventKind::TcpWaiting { conn, .. } if conn == id),
    )
    .await;
    assert!(matches!(
        waiting.kind,
        EventKind::TcpWaiting { open: 7, .. }
    ));
    eighth.write_all(&get("x", "/")).await.expect("writes");
    assert!(
        still_open(&mut eighth, Duration::from_millis(300)).await,
        "the 8th connection must get no bytes while 7 are open"
    );

    drop(holders.remove(0));
    wait_event(
        &em,
        "tcp_served",
        |e| matches!(e.kind, EventKind::TcpServed { conn } if conn == id),
    )
    .await;
    assert!(text(&read_response(&mut eighth).await).starts_with("HTTP/1.1 200 OK\r\n"));
    em.shutdown(WAIT).await;
}

/// The `unlimited` profile is for load: 64 apps connecting at once are all served (on a chip
/// profile the listen backlog of 5 would drop SYNs and stall their connects).
#[tokio::test]
async fn unlimited_serves_64_apps_that_connect_at_once() {
    let em = start(Profile::UNLIMITED, InternetMode::Online).await;
    let addr = em.http_addr();
    let apps = (0..64).map(|_| {
        tokio::spawn(async move {
            let mut s = connect(addr).await;
            s.write_all(&get("connectivitycheck.gstatic.com", "/generate_204"))
                .await
                .expect("writes");
            text(&read_response(&mut s).await)
        })
    });
    for (i, app) in futures_util::future::join_all(apps)
        .await
        .into_iter()
        .enumerate()
    {
        let answer = app.expect("the app's task");
        assert!(
            answer.starts_with("HTTP/1.1 204 No Content\r\n"),
            "app {i}: {answer}"
        );
    }
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn lru_purge_closes_the_least_recently_used_connection_without_a_word() {
    let em = start(Profile::CAPTIVE_EXAMPLE, InternetMode::Captive).await;
    let addr = em.http_addr();
    let mut holders = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..13 {
        let s = connect(addr).await;
        let id = conn_id(&em, &s).await;
        wait_event(
            &em,
            "tcp_served",
            |e| matches!(e.kind, EventKind::TcpServed { conn } if conn == id),
        )
        .await;
        holders.push(s);
        ids.push(id);
    }
    // Using the first connection makes the second the least recently used.
    holders[0].write_all(&get("x", "/")).await.expect("writes");
    read_response(&mut holders[0]).await;

    let mut newest = connect(addr).await;
    let new_id = conn_id(&em, &newest).await;
    let purged = wait_event(&em, "lru_purged", |e| {
        matches!(e.kind, EventKind::LruPurged { .. })
    })
    .await;
    assert_eq!(
        purged.kind,
        EventKind::LruPurged {
            conn: ids[1],
            for_conn: new_id
        }
    );
    // The purged app sees the socket close with no bytes.
    assert_eq!(read_to_close(&mut holders[1]).await, b"");
    newest.write_all(&get("x", "/")).await.expect("writes");
    assert!(text(&read_response(&mut newest).await).starts_with("HTTP/1.1 200 OK\r\n"));
    // The first connection survived.
    holders[0].write_all(&get("x", "/")).await.expect("writes");
    assert!(text(&read_response(&mut holders[0]).await).starts_with("HTTP/1.1 200 OK\r\n"));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let em = start(Profile::default(), InternetMode::Captive).await;
    let mut s = connect(em.http_addr()).await;
    let id = conn_id(&em, &s).await;
    wait_event(
        &em,
        "tcp_served",
        |e| matches!(e.kind, EventKind::TcpServed { conn } if conn == id),
    )
    .await;
    let events = em.events().clone();
    em.shutdown(WAIT).await;
    assert_eq!(read_to_close(&mut s).await, b"");
    assert!(events.snapshot().iter().any(|e| matches!(
        &e.kind,
        EventKind::TcpClosed { conn, reason, .. } if *conn == id && reason == "shutdown"
    )));
}

#[tokio::test]
async fn tls_connections_get_the_same_device_and_bad_handshakes_are_closed() {
    use espsim_emulator::TlsOptions;
    use rustls::pki_types::ServerName;

    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let em = Emulator::start(EmulatorConfig {
        internet: InternetMode::Captive,
        dns: None,
        tls: Some(TlsOptions::SelfSigned {
            names: vec!["localhost".to_owned()],
            write_cert: Some(cert_path.clone()),
        }),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let https = em.https_addr().expect("https address");
    let connector = tls_connector(&cert_path);
    let tcp = connect(https).await;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    tls.write_all(&get("connectivitycheck.gstatic.com", "/generate_204"))
        .await
        .expect("writes");
    let mut response = vec![0u8; REDIRECT_302.len()];
    tokio::time::timeout(WAIT, tls.read_exact(&mut response))
        .await
        .expect("response in time")
        .expect("reads");
    assert_eq!(text(&response), text(REDIRECT_302));
    let probe = wait_event(&em, "probe", |e| {
        matches!(e.kind, EventKind::ConnectivityProbe { .. })
    })
    .await;
    assert!(matches!(
        &probe.kind,
        EventKind::ConnectivityProbe { url, .. } if url == "https://connectivitycheck.gstatic.com/generate_204"
    ));

    // Plain HTTP on the TLS port: the handshake fails and the device closes.
    let mut plain = connect(https).await;
    let id = conn_id(&em, &plain).await;
    plain.write_all(&get("x", "/")).await.expect("writes");
    let answer = read_to_close(&mut plain).await;
    assert!(!answer.starts_with(b"HTTP/"), "{}", text(&answer));
    let closed = wait_event(
        &em,
        "tcp_closed",
        |e| matches!(e.kind, EventKind::TcpClosed { conn, .. } if conn == id),
    )
    .await;
    assert!(matches!(
        &closed.kind,
        EventKind::TcpClosed { reason, .. } if reason.starts_with("tls handshake failed")
    ));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn the_websocket_path_is_handed_to_the_ws_module_not_answered_by_http() {
    let em = start(Profile::default(), InternetMode::Captive).await;
    let mut s = connect(em.http_addr()).await;
    let id = conn_id(&em, &s).await;
    s.write_all(
        b"GET /ws?token=t HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("writes");
    // Whatever the ws module does (101, rejection, or closing), it reports it; HTTP does not.
    wait_event(&em, "ws or close", |e| match &e.kind {
        EventKind::WsOpened { conn, .. }
        | EventKind::WsRejected { conn, .. }
        | EventKind::TcpClosed { conn, .. } => *conn == id,
        _ => false,
    })
    .await;
    assert!(!em.events().snapshot().iter().any(|e| matches!(
        &e.kind,
        EventKind::HttpRequest { conn, .. } | EventKind::HttpError { conn, .. } if *conn == id
    )));
    em.shutdown(WAIT).await;
}

#[tokio::test]
async fn http_1_0_gets_http_1_1_and_a_bare_upgrade_header_is_ignored() {
    let em = start(Profile::default(), InternetMode::Captive).await;
    let mut s = connect(em.http_addr()).await;
    // HTTP/1.0 without keep-alive: ESP-IDF still answers HTTP/1.1 and keeps the socket.
    s.write_all(b"GET /x HTTP/1.0\r\n\r\n")
        .await
        .expect("writes");
    assert_eq!(text(&read_response(&mut s).await), text(REDIRECT_302));
    // `Upgrade` without a `Connection: upgrade` token is not an upgrade for `http_parser`.
    s.write_all(b"GET /y HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n")
        .await
        .expect("writes");
    assert_eq!(text(&read_response(&mut s).await), text(REDIRECT_302));
    assert!(still_open(&mut s, Duration::from_millis(100)).await);
    em.shutdown(WAIT).await;
}
