//! `probe::run` against real sockets on 127.0.0.1: the emulator (healthy, captive, offline,
//! wrong path, token, wss) and tiny misbehaving servers (refused, stall, reset, close before the
//! header, bad accept, NXDOMAIN / no-answer DNS).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use espsim_emulator::internet::InternetMode;
use espsim_emulator::{
    DeviceOptions, Emulator, EmulatorConfig, RunningEmulator, TlsOptions, WsSettings,
};
use espsim_probe::{
    self as probe, Details, LayerId, LayerVerdict, OsConclusion, ProbeOptions, ProbeReport,
    TcpOutcome, WsOutcome,
};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const STEP: Duration = Duration::from_secs(3);

async fn emulator(internet: InternetMode) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        internet,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

fn options(url: String) -> ProbeOptions {
    let mut o = ProbeOptions::new(url);
    o.timeout = STEP;
    o.samples = 3;
    o
}

async fn probe(o: ProbeOptions) -> ProbeReport {
    tokio::time::timeout(Duration::from_secs(60), probe::run(o))
        .await
        .expect("probe finishes")
        .expect("valid url")
}

fn verdicts(r: &ProbeReport) -> Vec<(&'static str, LayerVerdict)> {
    r.layers
        .iter()
        .map(|l| (l.layer.as_str(), l.verdict))
        .collect()
}

fn layer(r: &ProbeReport, id: LayerId) -> &probe::LayerReport {
    r.layer(id).expect("every layer is reported")
}

fn ws_details(r: &ProbeReport) -> &probe::WsDetails {
    match &layer(r, LayerId::Websocket).details {
        Some(Details::Websocket(d)) => d,
        other => panic!("websocket details expected, got {other:?}"),
    }
}

fn assert_skipped_after(r: &ProbeReport, failed: LayerId) {
    assert_eq!(r.failed_layer, Some(failed));
    assert!(!r.ok);
    let pos = LayerId::ALL
        .iter()
        .position(|l| *l == failed)
        .expect("known layer");
    for later in &LayerId::ALL[pos + 1..] {
        assert_eq!(
            layer(r, *later).verdict,
            LayerVerdict::Skipped,
            "{later:?} after {failed:?}"
        );
    }
}

/// Replaces what changes from run to run (timings, ports, keys, page bodies).
fn normalise(v: &mut Value, port: u16) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match k.as_str() {
                    "duration_ms" | "p50_ms" | "p99_ms" | "ws_pong_ms" if !val.is_null() => {
                        *val = Value::from("<ms>")
                    }
                    "rtt_ms" => *val = Value::from("<ms list>"),
                    "expected_accept" | "accept" if !val.is_null() => {
                        *val = Value::from("<accept>")
                    }
                    "body" if !val.is_null() => *val = Value::from("<body>"),
                    _ => normalise(val, port),
                }
            }
        }
        Value::Array(items) => {
            if let [Value::String(name), value] = items.as_mut_slice()
                && name.eq_ignore_ascii_case("content-length")
            {
                *value = Value::from("<n>");
                return;
            }
            for item in items {
                normalise(item, port);
            }
        }
        Value::String(s) => *s = mask_ms(&s.replace(&port.to_string(), "<port>")),
        Value::Number(n) if n.as_u64() == Some(u64::from(port)) => *v = Value::from("<port>"),
        _ => {}
    }
}

/// `0.19 ms` → `<t> ms`.
fn mask_ms(s: &str) -> String {
    let mut out = String::new();
    let mut number = String::new();
    for (i, c) in s.char_indices() {
        if c.is_ascii_digit() || (c == '.' && !number.is_empty()) {
            number.push(c);
            continue;
        }
        if !number.is_empty() {
            let timed = s[i..].starts_with(" ms");
            out.push_str(if timed { "<t>" } else { &number });
            number.clear();
        }
        out.push(c);
    }
    out.push_str(&number);
    out
}

#[tokio::test]
async fn healthy_emulator_passes_every_layer_and_the_json_is_stable() {
    let emu = emulator(InternetMode::Online).await;
    let port = emu.http_addr().port();
    let report = probe(options(format!("ws://127.0.0.1:{port}/ws"))).await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(
        verdicts(&report),
        [
            ("uri", LayerVerdict::Pass),
            ("dns", LayerVerdict::Skipped),
            ("tcp", LayerVerdict::Pass),
            ("tls", LayerVerdict::Skipped),
            ("http", LayerVerdict::Pass),
            ("connectivity", LayerVerdict::Pass),
            ("websocket", LayerVerdict::Pass),
            ("protocol", LayerVerdict::Pass),
            ("round_trip", LayerVerdict::Pass),
        ]
    );
    match &layer(&report, LayerId::RoundTrip).details {
        Some(Details::RoundTrip(d)) => {
            assert_eq!((d.samples, d.received, d.rtt_ms.len()), (3, 3, 3));
            assert!(d.p50_ms.is_some() && d.p99_ms >= d.p50_ms && d.ws_pong_ms.is_some());
        }
        other => panic!("round trip details expected, got {other:?}"),
    }
    let mut json = serde_json::to_value(&report).expect("serializes");
    normalise(&mut json, port);
    insta::assert_json_snapshot!("healthy_emulator", json);
    emu.shutdown(Duration::from_secs(1)).await;
}

fn conclusions(r: &ProbeReport) -> Vec<(&'static str, OsConclusion, Option<u16>)> {
    match &layer(r, LayerId::Connectivity).details {
        Some(Details::Connectivity(c)) => c
            .checks
            .iter()
            .map(|c| (c.os, c.conclusion, c.status))
            .collect(),
        other => panic!("connectivity details expected, got {other:?}"),
    }
}

#[tokio::test]
async fn connectivity_verdicts_follow_captive_online_and_offline() {
    let emu = emulator(InternetMode::Captive).await;
    let url = format!("ws://127.0.0.1:{}/ws", emu.http_addr().port());
    let captive = probe(options(url.clone())).await;
    assert_eq!(
        conclusions(&captive),
        [
            ("android", OsConclusion::SignIn, Some(302)),
            ("apple", OsConclusion::SignIn, Some(302)),
            ("windows", OsConclusion::SignIn, Some(302)),
        ]
    );
    let l = layer(&captive, LayerId::Connectivity);
    assert_eq!(l.verdict, LayerVerdict::Warn);
    assert!(
        l.hint
            .as_deref()
            .is_some_and(|h| h.contains("bindProcessToNetwork")),
        "{:?}",
        l.hint
    );
    assert!(captive.ok, "warnings do not fail the probe");

    emu.set_internet(InternetMode::Offline);
    let offline = probe(options(url.clone())).await;
    assert_eq!(
        conclusions(&offline),
        [
            ("android", OsConclusion::NoInternet, Some(404)),
            // Apple's sheet shows whatever page came back, even ESP-IDF's 404.
            ("apple", OsConclusion::SignIn, Some(404)),
            ("windows", OsConclusion::NoInternet, Some(404)),
        ]
    );
    // Plain firmware: `GET /` is ESP-IDF's 404, recognized as such.
    match &layer(&offline, LayerId::Http).details {
        Some(Details::Http(h)) => {
            assert_eq!(h.status, Some(404));
            let looks = h.server.as_ref().expect("fingerprint");
            assert!(looks.esp_idf, "{looks:?}");
            assert!(
                looks
                    .signs
                    .iter()
                    .any(|s| s.contains("Nothing matches the given URI")),
                "{looks:?}"
            );
        }
        other => panic!("http details expected, got {other:?}"),
    }

    emu.set_internet(InternetMode::Online);
    let online = probe(options(url)).await;
    assert!(
        conclusions(&online)
            .iter()
            .all(|(_, c, _)| *c == OsConclusion::Online),
        "{:?}",
        conclusions(&online)
    );
    assert_eq!(
        layer(&online, LayerId::Connectivity).verdict,
        LayerVerdict::Pass
    );
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn refused_port_fails_tcp_and_skips_the_rest() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let report = probe(options(format!("ws://{addr}/ws"))).await;
    assert_skipped_after(&report, LayerId::Tcp);
    let tcp = layer(&report, LayerId::Tcp);
    match &tcp.details {
        Some(Details::Tcp(d)) => assert_eq!(d.outcome, TcpOutcome::Refused),
        other => panic!("tcp details expected, got {other:?}"),
    }
    assert!(
        tcp.hint
            .as_deref()
            .is_some_and(|h| h.contains("Connection refused")),
        "{:?}",
        tcp.hint
    );
}

#[tokio::test]
async fn wss_to_a_device_with_only_port_80_says_so() {
    let emu = emulator(InternetMode::Captive).await;
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let mut o = options(format!("wss://{addr}/ws"));
    o.http_port = Some(emu.http_addr().port());
    let report = probe(o).await;
    assert_skipped_after(&report, LayerId::Tcp);
    let hint = layer(&report, LayerId::Tcp)
        .hint
        .clone()
        .unwrap_or_default();
    assert!(hint.contains("only serves plain HTTP"), "{hint}");
    assert!(
        hint.contains(&format!("ws://127.0.0.1:{}/ws", emu.http_addr().port())),
        "{hint}"
    );
    emu.shutdown(Duration::from_secs(1)).await;
}

/// A listener whose connections are handled by `serve`; at most 32 connections.
async fn tiny_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// Reads one request head (bounded by size and time).
async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match tokio::time::timeout(STEP, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    buf
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_times_out_with_the_socket_hint() {
    let (hold_tx, _hold_rx) = tokio::sync::broadcast::channel::<()>(1);
    let addr = tiny_server(move |stream| {
        let mut released = hold_tx.subscribe();
        async move {
            // Keep the socket open, unanswered, until the test ends.
            let _ = released.recv().await;
            drop(stream);
        }
    })
    .await;
    let mut o = options(format!("ws://{addr}/ws"));
    o.timeout = Duration::from_millis(300);
    let report = probe(o).await;
    assert_eq!(layer(&report, LayerId::Tcp).verdict, LayerVerdict::Pass);
    assert_skipped_after(&report, LayerId::Http);
    let http = layer(&report, LayerId::Http);
    assert!(http.summary.contains("no response"), "{}", http.summary);
    let hint = http.hint.clone().unwrap_or_default();
    assert!(hint.contains("max_open_sockets"), "{hint}");
}

#[tokio::test]
async fn reset_on_accept_is_reported_as_a_reset() {
    let addr = tiny_server(|stream| async move {
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(stream);
    })
    .await;
    let report = probe(options(format!("ws://{addr}/ws"))).await;
    assert_eq!(layer(&report, LayerId::Tcp).verdict, LayerVerdict::Pass);
    assert_eq!(layer(&report, LayerId::Http).verdict, LayerVerdict::Warn);
    assert_skipped_after(&report, LayerId::Websocket);
    let d = ws_details(&report);
    assert_eq!(d.outcome, WsOutcome::Reset, "{d:?}");
    assert!(
        d.dart_error
            .as_deref()
            .is_some_and(|e| e.contains("Connection reset by peer")),
        "{d:?}"
    );
}

#[tokio::test]
async fn close_after_the_request_is_esp_idfs_silent_rejection_shape() {
    let addr = tiny_server(|mut stream| async move {
        let _ = read_request(&mut stream).await;
        let _ = stream.shutdown().await;
    })
    .await;
    let report = probe(options(format!("ws://{addr}/ws"))).await;
    assert_skipped_after(&report, LayerId::Websocket);
    let d = ws_details(&report);
    assert_eq!(d.outcome, WsOutcome::ClosedBeforeHeaders, "{d:?}");
    assert_eq!(
        d.dart_error.as_deref(),
        Some(&*format!(
            "HttpException: Connection closed before full header was received, uri = http://127.0.0.1:{}/ws",
            addr.port()
        ))
    );
    let hint = layer(&report, LayerId::Websocket)
        .hint
        .clone()
        .unwrap_or_default();
    assert!(hint.contains("Sec-WebSocket-Version"), "{hint}");
    assert!(hint.contains("27"), "{hint}");
}

#[tokio::test]
async fn wrong_path_gets_the_captive_redirect_or_esp_404() {
    let emu = emulator(InternetMode::Captive).await;
    let port = emu.http_addr().port();
    let report = probe(options(format!("ws://127.0.0.1:{port}/ws/"))).await;
    assert_eq!(layer(&report, LayerId::Uri).verdict, LayerVerdict::Warn);
    assert_skipped_after(&report, LayerId::Websocket);
    let d = ws_details(&report);
    assert_eq!((d.outcome, d.status), (WsOutcome::Non101, Some(302)));
    assert_eq!(d.location.as_deref(), Some("/"));
    let hint = layer(&report, LayerId::Websocket)
        .hint
        .clone()
        .unwrap_or_default();
    assert!(hint.contains("captive portal"), "{hint}");
    assert!(hint.contains("try `/ws`"), "{hint}");
    assert!(
        d.dart_error
            .as_deref()
            .is_some_and(|e| e.ends_with("was not upgraded to websocket, HTTP status code: 302")),
        "{d:?}"
    );

    emu.set_internet(InternetMode::Offline);
    let report = probe(options(format!("ws://127.0.0.1:{port}/socket"))).await;
    let d = ws_details(&report);
    assert_eq!((d.outcome, d.status), (WsOutcome::Non101, Some(404)));
    assert_eq!(d.body.as_deref(), Some("Nothing matches the given URI"));
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_101_with_a_wrong_accept_is_a_bad_accept() {
    let addr = tiny_server(|mut stream| async move {
        let _ = read_request(&mut stream).await;
        let _ = stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            )
            .await;
        let _ = read_request(&mut stream).await;
    })
    .await;
    let report = probe(options(format!("ws://{addr}/ws"))).await;
    assert_skipped_after(&report, LayerId::Websocket);
    let d = ws_details(&report);
    assert_eq!(d.outcome, WsOutcome::BadAccept, "{d:?}");
    assert_eq!(d.accept.as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
    assert_eq!(
        d.dart_error.as_deref(),
        Some("WebSocketException: Response header 'Sec-WebSocket-Accept' is the wrong length")
    );
}

/// A UDP DNS responder answering every query with `rcode` and no records.
async fn dns_responder(rcode: ResponseCode) -> SocketAddr {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        for _ in 0..16 {
            let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let query = Message::from_vec(&buf[..len]).expect("a query");
            let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
            reply.metadata.message_type = MessageType::Response;
            reply.metadata.response_code = rcode;
            reply.add_queries(query.queries.clone());
            let bytes = reply.to_vec().expect("encodes");
            let _ = socket.send_to(&bytes, from).await;
        }
    });
    addr
}

fn dns_details(r: &ProbeReport) -> &probe::DnsDetails {
    match &layer(r, LayerId::Dns).details {
        Some(Details::Dns(d)) => d,
        other => panic!("dns details expected, got {other:?}"),
    }
}

#[tokio::test]
async fn nxdomain_and_empty_answers_fail_dns() {
    let nx = dns_responder(ResponseCode::NXDomain).await;
    let mut o = options("ws://esp32.test/ws".to_owned());
    o.dns = Some(nx);
    let report = probe(o).await;
    assert_skipped_after(&report, LayerId::Dns);
    let d = dns_details(&report);
    assert_eq!((d.server, d.server_source), (Some(nx), "option"));
    assert_eq!(d.rcode.as_deref(), Some("NXDomain"));
    assert!(
        layer(&report, LayerId::Dns)
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("never sends NXDOMAIN")),
        "{:?}",
        layer(&report, LayerId::Dns).hint
    );

    let empty = dns_responder(ResponseCode::NoError).await;
    let mut o = options("ws://esp32.test/ws".to_owned());
    o.dns = Some(empty);
    let report = probe(o).await;
    assert_skipped_after(&report, LayerId::Dns);
    assert!(
        layer(&report, LayerId::Dns).summary.contains("no A record"),
        "{}",
        layer(&report, LayerId::Dns).summary
    );

    // Nothing on the port: ICMP port unreachable, reported at once.
    let gone = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let gone_addr = gone.local_addr().expect("addr");
    drop(gone);
    let mut o = options("ws://esp32.test/ws".to_owned());
    o.dns = Some(gone_addr);
    let report = probe(o).await;
    assert_skipped_after(&report, LayerId::Dns);
    assert!(
        layer(&report, LayerId::Dns)
            .summary
            .contains("port unreachable"),
        "{}",
        layer(&report, LayerId::Dns).summary
    );
}

#[tokio::test]
async fn resolv_conf_nameserver_is_used_and_the_emulators_dns_is_a_captive_wildcard() {
    let emu = emulator(InternetMode::Online).await;
    let dns = emu.dns_addr().expect("dns runs");
    let port = emu.http_addr().port();
    let mut o = options(format!("ws://esp32.test:{port}/ws"));
    o.dns = Some(dns);
    let report = probe(o).await;
    assert!(report.ok, "{report:#?}");
    let d = dns_details(&report);
    assert_eq!(d.answers, [Ipv4Addr::LOCALHOST]);
    assert_eq!(d.captive_wildcard, Some(true));

    // No --dns and a resolv.conf without a nameserver: a clear failure, not a panic.
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("resolv.conf");
    std::fs::write(&conf, "search lan\n").expect("write");
    let mut o = options(format!("ws://esp32.test:{port}/ws"));
    o.resolv_conf = conf;
    let report = probe(o).await;
    assert_skipped_after(&report, LayerId::Dns);
    assert!(
        layer(&report, LayerId::Dns)
            .summary
            .contains("no nameserver")
    );
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn token_is_needed_and_sent_in_hello() {
    let emu = Emulator::start(EmulatorConfig {
        device: DeviceOptions {
            auth_token: Some("s3cret".into()),
            ..DeviceOptions::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts");
    let url = format!("ws://127.0.0.1:{}/ws", emu.http_addr().port());
    let report = probe(options(url.clone())).await;
    assert_skipped_after(&report, LayerId::Protocol);
    let l = layer(&report, LayerId::Protocol);
    assert!(l.summary.starts_with("error unauthorized"), "{}", l.summary);
    assert!(l.hint.as_deref().is_some_and(|h| h.contains("--token")));

    let mut o = options(url);
    o.token = Some("s3cret".into());
    assert!(probe(o).await.ok);
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn wss_to_the_emulator_reports_the_self_signed_certificate() {
    let emu = Emulator::start(EmulatorConfig {
        tls: Some(TlsOptions::SelfSigned {
            names: vec!["127.0.0.1".into(), "localhost".into()],
            write_cert: None,
        }),
        internet: InternetMode::Online,
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts");
    let https = emu.https_addr().expect("tls on");
    let mut o = options(format!("wss://{https}/ws"));
    o.http_port = Some(emu.http_addr().port());
    let report = probe(o).await;
    assert!(report.ok, "{report:#?}");
    let tls = layer(&report, LayerId::Tls);
    assert_eq!(tls.verdict, LayerVerdict::Warn);
    assert!(tls.summary.contains("self-signed"), "{}", tls.summary);
    match &tls.details {
        Some(Details::Tls(d)) => {
            assert_eq!(d.self_signed, Some(true));
            assert_eq!(d.name_matches, Some(true));
            assert!(d.names.contains(&"127.0.0.1".to_owned()), "{:?}", d.names);
            assert!(d.days_left.is_some_and(|d| d > 0), "{d:?}");
            assert_eq!(d.chain_len, 1);
        }
        other => panic!("tls details expected, got {other:?}"),
    }
    for id in [
        LayerId::Http,
        LayerId::Websocket,
        LayerId::Protocol,
        LayerId::RoundTrip,
    ] {
        assert_eq!(layer(&report, id).verdict, LayerVerdict::Pass, "{id:?}");
    }
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn unusable_urls_are_usage_errors() {
    for url in ["ftp://h/", "192.168.4.1/ws", "ws://:80/ws", "ws://h:70000/"] {
        assert!(
            probe::run(ProbeOptions::new(url)).await.is_err(),
            "{url} should be rejected"
        );
    }
}

#[tokio::test]
async fn a_431_gets_the_esp_idf_header_limit_hint() {
    let addr = tiny_server(|mut stream| async move {
        let _ = read_request(&mut stream).await;
        let _ = stream
            .write_all(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/html\r\n\
                  Content-Length: 26\r\n\r\nHeader fields are too long",
            )
            .await;
        let _ = stream.shutdown().await;
    })
    .await;
    let report = probe(options(format!("ws://{addr}/ws"))).await;
    assert_skipped_after(&report, LayerId::Websocket);
    let d = ws_details(&report);
    assert_eq!((d.outcome, d.status), (WsOutcome::Non101, Some(431)));
    let hint = layer(&report, LayerId::Websocket)
        .hint
        .clone()
        .unwrap_or_default();
    assert!(hint.contains("512"), "{hint}");
    // The same server's `GET /` answer is recognized as ESP-IDF's.
    match &layer(&report, LayerId::Http).details {
        Some(Details::Http(h)) => {
            assert!(h.server.as_ref().is_some_and(|s| s.esp_idf), "{h:?}");
        }
        other => panic!("http details expected, got {other:?}"),
    }
}

#[tokio::test]
async fn http_scheme_is_linted_and_still_probed_as_ws() {
    let emu = emulator(InternetMode::Online).await;
    let port = emu.http_addr().port();
    let report = probe(options(format!("http://127.0.0.1:{port}/ws"))).await;
    assert!(report.ok, "{report:#?}");
    let uri = layer(&report, LayerId::Uri);
    assert_eq!(uri.verdict, LayerVerdict::Warn);
    assert!(
        uri.hint
            .as_deref()
            .is_some_and(|h| h.contains("Unsupported URL scheme 'http'")),
        "{:?}",
        uri.hint
    );
    assert_eq!(
        layer(&report, LayerId::Protocol).verdict,
        LayerVerdict::Pass
    );

    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn wss_to_a_plain_http_port_fails_tls_with_a_ws_hint() {
    let emu = emulator(InternetMode::Online).await;
    let report = probe(options(format!("wss://{}/ws", emu.http_addr()))).await;
    assert_eq!(layer(&report, LayerId::Tcp).verdict, LayerVerdict::Pass);
    assert_skipped_after(&report, LayerId::Tls);
    let hint = layer(&report, LayerId::Tls)
        .hint
        .clone()
        .unwrap_or_default();
    assert!(hint.contains("use ws://"), "{hint}");
    emu.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_subprotocol_is_echoed_only_when_it_is_the_devices() {
    let emu = Emulator::start(EmulatorConfig {
        ws: WsSettings {
            path: "/ws".into(),
            subprotocol: Some("espsim.v1".into()),
        },
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts");
    let url = format!("ws://127.0.0.1:{}/ws", emu.http_addr().port());
    let mut o = options(url.clone());
    o.subprotocol = Some("espsim.v1".into());
    let report = probe(o).await;
    assert_eq!(
        layer(&report, LayerId::Websocket).verdict,
        LayerVerdict::Pass
    );
    assert_eq!(
        ws_details(&report).subprotocol.as_deref(),
        Some("espsim.v1")
    );

    let mut o = options(url);
    o.subprotocol = Some("chat".into());
    let report = probe(o).await;
    let l = layer(&report, LayerId::Websocket);
    assert_eq!(l.verdict, LayerVerdict::Warn);
    assert!(
        l.hint
            .as_deref()
            .is_some_and(|h| h.contains("`chat` not accepted")),
        "{:?}",
        l.hint
    );
    assert_eq!(ws_details(&report).subprotocol, None);
    emu.shutdown(Duration::from_secs(1)).await;
}

/// A device with its own protocol (the greenhouse device file): `--hello` sends the user's
/// message and `--expect` finds the answer past the device's greeting; the round trips repeat
/// that exchange. A pattern the answer never matches fails `protocol` with the hint.
#[tokio::test]
async fn a_devices_own_protocol_is_probed_with_the_users_hello() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = espsim_emulator::device_file::load(&root.join("examples/devices/greenhouse.yaml"))
        .expect("the example loads");
    let e = Emulator::start(EmulatorConfig {
        device_logic: espsim_emulator::DeviceSource::File(std::sync::Arc::new(file)),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let url = format!("ws://{}/ws", e.http_addr());
    let hello = |expect: &str| {
        let mut o = options(url.clone());
        o.dns = e.dns_addr();
        o.hello = Some(probe::CustomHello {
            send: r#"{"cmd":"status"}"#.to_owned(),
            expect: Some(regex::Regex::new(expect).expect("regex")),
        });
        o
    };

    let r = probe(hello(r#""ok":true"#)).await;
    let protocol = layer(&r, LayerId::Protocol);
    assert_eq!(protocol.verdict, LayerVerdict::Pass, "{r:?}");
    assert_eq!(
        protocol.summary,
        r#"reply matched /"ok":true/: {"ok":true,"relay":false,"target":22}"#
    );
    let trips = layer(&r, LayerId::RoundTrip);
    assert!(
        trips.summary.starts_with("3 exchanges: p50 "),
        "{}",
        trips.summary
    );
    match &trips.details {
        Some(Details::RoundTrip(d)) => assert_eq!(d.received, 3),
        other => panic!("round-trip details expected, got {other:?}"),
    }

    let r = probe(hello("nothing like this")).await;
    let protocol = layer(&r, LayerId::Protocol);
    assert_eq!(protocol.verdict, LayerVerdict::Fail);
    assert_eq!(
        protocol.summary,
        format!("no answer within {STEP:?} (reply matched /nothing like this/)")
    );
    assert_skipped_after(&r, LayerId::Protocol);
    e.shutdown(Duration::from_secs(1)).await;
}
