//! The WebSocket endpoint over real loopback sockets: what a client sees on the wire.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, client_async};

use super::testkit::{TestServer, WAIT};
use crate::WsSettings;
use crate::device_host::DeviceOptions;
use crate::events::{ConnId, Direction, EventKind, Side};
use crate::profile::Profile;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

async fn connect(server: &TestServer, target: &str, headers: &[(&'static str, &str)]) -> Client {
    let mut req = format!("ws://{}{target}", server.addr)
        .into_client_request()
        .expect("request");
    for (n, v) in headers {
        req.headers_mut()
            .insert(*n, v.parse().expect("header value"));
    }
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (ws, _) = tokio::time::timeout(WAIT, client_async(req, MaybeTlsStream::Plain(tcp)))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds");
    ws
}

/// The next data message as JSON (control frames are skipped).
async fn recv_json(ws: &mut Client) -> Value {
    let read = async {
        loop {
            match ws.next().await.expect("stream open").expect("frame") {
                Message::Text(t) => return serde_json::from_str(&t).expect("json"),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("message in time")
}

async fn send_json(ws: &mut Client, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// Sends `request` raw and returns every byte until the server closes.
async fn raw_exchange(server: &TestServer, request: &str) -> Vec<u8> {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("server closes in time")
        .expect("read");
    out
}

fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
    )
}

async fn opened_conn(server: &TestServer, nth: usize) -> ConnId {
    let mut seen = 0;
    match server
        .event("ws_opened", |e| {
            matches!(e.kind, EventKind::WsOpened { .. }) && {
                seen += 1;
                seen == nth
            }
        })
        .await
    {
        EventKind::WsOpened { conn, .. } => conn,
        _ => unreachable!(),
    }
}

async fn closed_event(server: &TestServer, conn: ConnId) -> EventKind {
    server
        .event(
            "ws_closed",
            |e| matches!(e.kind, EventKind::WsClosed { conn: c, .. } if c == conn),
        )
        .await
}

/// Reads until the server's close frame or the end of the stream; returns the close frame seen.
async fn read_until_close(ws: &mut Client) -> Result<Option<CloseFrame>, String> {
    let read = async {
        for _ in 0..64 {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => {
                    // Keep reading, as a well-behaved client does: that sends tungstenite's
                    // queued close reply; the stream then ends.
                    for _ in 0..64 {
                        if !matches!(ws.next().await, Some(Ok(_))) {
                            break;
                        }
                    }
                    return Ok(f);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("ended without close frame".to_owned()),
            }
        }
        Err("no close within 64 frames".to_owned())
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("close in time")
}

#[tokio::test]
async fn upgrade_gets_esp_idfs_exact_101_bytes() {
    let server = TestServer::default().await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let req = upgrade_request(&format!(
        "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    ));
    tcp.write_all(req.as_bytes()).await.expect("write");
    let expected = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("101 bytes");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
    assert!(matches!(
        server
            .event("ws_opened", |e| matches!(
                e.kind,
                EventKind::WsOpened { .. }
            ))
            .await,
        EventKind::WsOpened {
            subprotocol: None,
            ..
        }
    ));
}

#[tokio::test]
async fn subprotocol_is_echoed_only_when_the_client_offers_it() {
    let ws = WsSettings {
        subprotocol: Some("espsim.v1".into()),
        ..WsSettings::default()
    };
    let server = TestServer::start(Profile::default(), ws, DeviceOptions::default()).await;
    let req = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .expect("request");
    let mut offered = req.clone();
    offered.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "other, espsim.v1".parse().expect("value"),
    );
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (_ws, resp) = client_async(offered, tcp).await.expect("handshake");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().expect("ascii")),
        Some("espsim.v1")
    );
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (_ws, resp) = client_async(req, tcp)
        .await
        .expect("still 101 without offer");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
}

#[tokio::test]
async fn bad_handshakes_are_closed_silently_by_default() {
    let server = TestServer::default().await;
    let cases = [
        (
            format!("Sec-WebSocket-Key: {KEY}\r\n"),
            "missing Sec-WebSocket-Version",
        ),
        (
            format!("Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 8\r\n"),
            "unsupported Sec-WebSocket-Version \"8\"",
        ),
        (
            "Sec-WebSocket-Version: 13\r\n".to_owned(),
            "missing Sec-WebSocket-Key",
        ),
        (
            format!(
                "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
                "A".repeat(28)
            ),
            "Sec-WebSocket-Key is 28 chars, over ESP-IDF's 27",
        ),
    ];
    for (headers, reason) in cases {
        let got = raw_exchange(&server, &upgrade_request(&headers)).await;
        assert!(got.is_empty(), "{reason}: expected no bytes, got {got:?}");
        let ev = server
            .event(
                "ws_rejected",
                |e| matches!(&e.kind, EventKind::WsRejected { reason: r, .. } if r == reason),
            )
            .await;
        assert!(matches!(ev, EventKind::WsRejected { status: None, .. }));
    }
}

#[tokio::test]
async fn strict_profile_answers_bad_handshakes_with_400_or_426() {
    let server = TestServer::start(
        Profile::ESP_IDF_V6_1_STRICT,
        WsSettings::default(),
        DeviceOptions::default(),
    )
    .await;
    let got = raw_exchange(
        &server,
        &upgrade_request(&format!("Sec-WebSocket-Key: {KEY}\r\n")),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 36\r\n\r\nMissing Sec-WebSocket-Version header"
    );
    let got = raw_exchange(
        &server,
        &upgrade_request(&format!(
            "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 8\r\n"
        )),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/html\r\nContent-Length: 31\r\nSec-WebSocket-Version: 13\r\n\r\nWebSocket version not supported"
    );
    let got = raw_exchange(&server, &upgrade_request("Sec-WebSocket-Version: 13\r\n")).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 32\r\n\r\nMissing Sec-WebSocket-Key header"
    );
}

#[tokio::test]
async fn wrong_method_gets_405_and_wrong_upgrade_400_in_every_profile() {
    let server = TestServer::default().await;
    let got = raw_exchange(&server, "POST /ws HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/html\r\nContent-Length: 45\r\n\r\nSpecified method is invalid for this resource"
    );
    let got = raw_exchange(
        &server,
        "GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\nBad request syntax"
    );
}

#[tokio::test]
async fn plain_get_without_upgrade_gets_no_response_and_stays_open() {
    let server = TestServer::default().await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n")
        .await
        .expect("write");
    server
        .event("ws_rejected", |e| {
            matches!(e.kind, EventKind::WsRejected { status: None, .. })
        })
        .await;
    // The handler ran and returned without a response: nothing arrives, the socket stays open.
    let mut buf = [0u8; 64];
    let quiet = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await;
    assert!(quiet.is_err(), "expected silence, got {quiet:?}");
    // Until shutdown, which closes it without a byte.
    server.shutdown().await;
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(n, 0);
}

fn hello(id: u64) -> Value {
    json!({"type": "hello", "id": id, "client": "ws-test", "version": "1.0.0"})
}

#[tokio::test]
async fn session_answers_requests_and_unknown_types_keep_the_connection() {
    let server = TestServer::default().await;
    let mut ws = connect(&server, "/ws", &[]).await;
    send_json(&mut ws, hello(1)).await;
    let welcome = recv_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["id"], 1);
    assert_eq!(welcome["device_id"], "espsim-000001");
    send_json(&mut ws, json!({"type": "ping", "id": 2, "seq": 7})).await;
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"type": "pong", "id": 2, "seq": 7})
    );
    send_json(&mut ws, json!({"type": "get_status", "id": 3})).await;
    let status = recv_json(&mut ws).await;
    assert_eq!(
        (status["type"].as_str(), status["id"].as_u64()),
        (Some("status"), Some(3))
    );
    send_json(
        &mut ws,
        json!({"type": "set_output", "id": 4, "name": "led", "on": true}),
    )
    .await;
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"type": "ack", "id": 4, "of": "set_output"})
    );
    send_json(&mut ws, json!({"type": "warp_drive", "id": 5})).await;
    let err = recv_json(&mut ws).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("unknown_type"))
    );
    assert_eq!(err["id"], 5);
    send_json(&mut ws, json!({"type": "ping", "seq": 8})).await;
    assert_eq!(recv_json(&mut ws).await["type"], "pong");

    let conn = opened_conn(&server, 1).await;
    let ev = server
        .event("ws_message in", |e| {
            matches!(&e.kind, EventKind::WsMessage { direction: Direction::In, msg_type: Some(t), .. } if t == "warp_drive")
        })
        .await;
    assert!(matches!(ev, EventKind::WsMessage { conn: c, .. } if c == conn));
    server
        .event("ws_message out", |e| {
            matches!(&e.kind, EventKind::WsMessage { direction: Direction::Out, msg_type: Some(t), .. } if t == "welcome")
        })
        .await;
}

#[tokio::test]
async fn binary_frames_are_read_as_json_like_text() {
    let server = TestServer::default().await;
    let mut ws = connect(&server, "/ws", &[]).await;
    ws.send(Message::binary(br#"{"type":"ping","seq":1}"#.to_vec()))
        .await
        .expect("send");
    assert_eq!(recv_json(&mut ws).await["type"], "pong");
    ws.send(Message::binary(vec![0xff, 0x00]))
        .await
        .expect("send");
    let err = recv_json(&mut ws).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("invalid_json"))
    );
}

#[tokio::test]
async fn telemetry_and_broadcasts_reach_their_sessions() {
    let server = TestServer::default().await;
    let mut a = connect(&server, "/ws", &[]).await;
    let mut b = connect(&server, "/ws", &[]).await;
    send_json(
        &mut a,
        json!({"type": "subscribe", "id": 1, "interval_ms": 100}),
    )
    .await;
    assert_eq!(recv_json(&mut a).await["type"], "ack");
    // The first sample at once, the next one from the timer task.
    for seq in 0..2 {
        let t = recv_json(&mut a).await;
        assert_eq!(t["type"], "telemetry", "{t}");
        assert!(t["seq"].as_u64().is_some(), "sample {seq}: {t}");
    }
    server.handles.device.press_button();
    for ws in [&mut b, &mut a] {
        let read = async {
            loop {
                let m = recv_json(ws).await;
                if m["type"] == "event" {
                    break m;
                }
            }
        };
        let event = tokio::time::timeout(WAIT, read)
            .await
            .expect("event reaches every client");
        assert_eq!(event["event"], "button_pressed");
    }
}

#[tokio::test]
async fn websocket_ping_gets_a_pong_with_the_same_payload() {
    let server = TestServer::default().await;
    let mut ws = connect(&server, "/ws", &[]).await;
    ws.send(Message::Ping(b"are you there"[..].into()))
        .await
        .expect("ping");
    let got = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("frame");
    assert_eq!(got, Message::Pong(b"are you there"[..].into()));
    server
        .event("pong out", |e| {
            matches!(&e.kind, EventKind::WsControl { direction: Direction::Out, frame, .. } if frame == "pong")
        })
        .await;
}

#[tokio::test]
async fn client_close_gets_an_empty_close_frame_by_default() {
    let server = TestServer::default().await;
    let mut ws = connect(&server, "/ws", &[]).await;
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .expect("close sent");
    // tungstenite reports the empty close frame as `Close(None)`, i.e. 1005 "no status".
    assert_eq!(read_until_close(&mut ws).await, Ok(None));
    let conn = opened_conn(&server, 1).await;
    assert_eq!(
        closed_event(&server, conn).await,
        EventKind::WsClosed {
            conn,
            by: Side::Client,
            code: Some(1000),
            reason: "bye".into(),
            clean: true
        }
    );
}

#[tokio::test]
async fn strict_profile_echoes_the_close_code() {
    let server = TestServer::start(
        Profile::ESP_IDF_V6_1_STRICT,
        WsSettings::default(),
        DeviceOptions::default(),
    )
    .await;
    let mut ws = connect(&server, "/ws", &[]).await;
    ws.close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "".into(),
    }))
    .await
    .expect("close sent");
    let frame = read_until_close(&mut ws).await.expect("close frame");
    assert_eq!(frame.map(|f| f.code), Some(CloseCode::Away));
}

#[tokio::test]
async fn unmasked_client_frame_drops_the_connection_without_close_frame() {
    let server = TestServer::default().await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let req = upgrade_request(&format!(
        "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ));
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut head = vec![0u8; 129];
    tcp.read_exact(&mut head).await.expect("101");
    assert!(head.ends_with(b"\r\n\r\n"));
    // FIN + text, length 2, mask bit clear.
    tcp.write_all(&[0x81, 0x02, b'h', b'i'])
        .await
        .expect("write");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("read");
    assert!(rest.is_empty(), "expected no close frame, got {rest:?}");
    let conn = opened_conn(&server, 1).await;
    assert!(matches!(
        closed_event(&server, conn).await,
        EventKind::WsClosed {
            by: Side::Device,
            code: None,
            clean: false,
            ..
        }
    ));
}

#[tokio::test]
async fn frames_sent_right_behind_the_handshake_are_not_lost() {
    let server = TestServer::default().await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let mut req = upgrade_request(&format!(
        "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ))
    .into_bytes();
    // A masked text frame `{"type":"ping","seq":9}` in the same write as the head.
    let payload = br#"{"type":"ping","seq":9}"#;
    let mask = [1u8, 2, 3, 4];
    req.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    req.extend_from_slice(&mask);
    req.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&req).await.expect("write");
    let mut head = vec![0u8; 129];
    tcp.read_exact(&mut head).await.expect("101");
    let mut frame = [0u8; 2];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut frame))
        .await
        .expect("reply in time")
        .expect("frame header");
    assert_eq!(frame[0], 0x81, "unmasked final text frame");
    let mut body = vec![0u8; usize::from(frame[1])];
    tcp.read_exact(&mut body).await.expect("body");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["type"], "pong");
}

#[tokio::test]
async fn oversize_message_gets_too_large_and_stays_connected_by_default() {
    let server = TestServer::default().await;
    let mut ws = connect(&server, "/ws", &[]).await;
    let big = json!({"type": "ping", "pad": "x".repeat(Profile::default().max_ws_message)});
    send_json(&mut ws, big).await;
    let err = recv_json(&mut ws).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "too_large");
    send_json(&mut ws, json!({"type": "ping", "seq": 1})).await;
    assert_eq!(recv_json(&mut ws).await["type"], "pong");
}

#[tokio::test]
async fn oversize_message_is_closed_with_1009_in_strict_profile() {
    let server = TestServer::start(
        Profile::ESP_IDF_V6_1_STRICT,
        WsSettings::default(),
        DeviceOptions::default(),
    )
    .await;
    let mut ws = connect(&server, "/ws", &[]).await;
    let big = json!({"type": "ping", "pad": "x".repeat(Profile::default().max_ws_message)});
    send_json(&mut ws, big).await;
    let frame = read_until_close(&mut ws).await.expect("close frame");
    assert_eq!(frame.map(|f| f.code), Some(CloseCode::Size));
}

fn with_token() -> DeviceOptions {
    DeviceOptions {
        auth_token: Some("s3cret".into()),
        ..DeviceOptions::default()
    }
}

#[tokio::test]
async fn token_in_header_query_or_hello_authorizes() {
    let server = TestServer::start(Profile::default(), WsSettings::default(), with_token()).await;
    let mut by_header = connect(&server, "/ws", &[("Authorization", "Bearer s3cret")]).await;
    send_json(&mut by_header, hello(1)).await;
    assert_eq!(recv_json(&mut by_header).await["type"], "welcome");

    let mut by_query = connect(&server, "/ws?token=s3cret", &[]).await;
    send_json(&mut by_query, json!({"type": "get_status"})).await;
    assert_eq!(recv_json(&mut by_query).await["type"], "status");

    let mut in_hello = connect(&server, "/ws", &[]).await;
    let mut h = hello(1);
    h["token"] = json!("s3cret");
    send_json(&mut in_hello, h).await;
    assert_eq!(recv_json(&mut in_hello).await["type"], "welcome");
}

#[tokio::test]
async fn wrong_token_gets_unauthorized_and_close_1008() {
    let server = TestServer::start(Profile::default(), WsSettings::default(), with_token()).await;
    let mut wrong = connect(&server, "/ws?token=nope", &[]).await;
    send_json(&mut wrong, hello(1)).await;
    let err = recv_json(&mut wrong).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    let frame = read_until_close(&mut wrong).await.expect("close frame");
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1008));
    let conn = opened_conn(&server, 1).await;
    assert!(matches!(
        closed_event(&server, conn).await,
        EventKind::WsClosed {
            by: Side::Device,
            code: Some(1008),
            clean: true,
            ..
        }
    ));
}

#[tokio::test]
async fn shutdown_closes_sessions_with_1001() {
    let server = TestServer::default().await;
    let mut ws = connect(&server, "/ws", &[]).await;
    let reader = tokio::spawn(async move { read_until_close(&mut ws).await });
    server.shutdown().await;
    let frame = reader.await.expect("joins").expect("close frame");
    assert_eq!(frame.map(|f| f.code), Some(CloseCode::Away));
    let conn = opened_conn(&server, 1).await;
    assert!(matches!(
        closed_event(&server, conn).await,
        EventKind::WsClosed {
            by: Side::Device,
            code: Some(1001),
            clean: true,
            ..
        }
    ));
}

#[tokio::test]
async fn lru_purge_drops_the_socket_without_a_close_frame() {
    let server = TestServer::default().await;
    let mut ws = connect(&server, "/ws", &[]).await;
    let conn = opened_conn(&server, 1).await;
    server.purge(conn);
    let got = read_until_close(&mut ws).await;
    assert!(got.is_err(), "expected no close frame, got {got:?}");
    assert!(matches!(
        closed_event(&server, conn).await,
        EventKind::WsClosed {
            by: Side::Device,
            code: None,
            clean: false,
            ..
        }
    ));
    assert_eq!(server.handles.device.session_count(), 0);
}

#[tokio::test]
async fn device_restart_drops_every_session() {
    let server = TestServer::default().await;
    let mut a = connect(&server, "/ws", &[]).await;
    let mut b = connect(&server, "/ws", &[]).await;
    send_json(&mut a, json!({"type": "reboot", "id": 1})).await;
    // The ack arrives before the restart drops the connection.
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type": "ack", "id": 1, "of": "reboot"})
    );
    server
        .event(
            "device_action",
            |e| matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "restart"),
        )
        .await;
    for ws in [&mut a, &mut b] {
        let got = read_until_close(ws).await;
        assert!(
            matches!(&got, Err(e) if !e.is_empty()),
            "expected a drop, got {got:?}"
        );
    }
}

/// Upgrades a raw socket and returns it positioned after the 101.
async fn raw_upgraded(server: &TestServer) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let req = upgrade_request(&format!(
        "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ));
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut head = vec![0u8; 129];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut head))
        .await
        .expect("in time")
        .expect("101");
    assert!(head.ends_with(b"\r\n\r\n"));
    tcp
}

/// A masked close frame with code 1000 and reason "bye", as a client sends it.
fn masked_close_1000() -> Vec<u8> {
    let payload = [0x03, 0xE8, b'b', b'y', b'e'];
    let mask = [9u8, 8, 7, 6];
    let mut f = vec![0x88, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[tokio::test]
async fn close_reply_on_the_wire_is_two_bytes_by_default_and_an_echo_in_strict() {
    for (profile, expected) in [
        (Profile::default(), vec![0x88, 0x00]),
        (
            Profile::ESP_IDF_V6_1_STRICT,
            vec![0x88, 0x05, 0x03, 0xE8, b'b', b'y', b'e'],
        ),
    ] {
        let server = TestServer::start(
            profile.clone(),
            WsSettings::default(),
            DeviceOptions::default(),
        )
        .await;
        let mut tcp = raw_upgraded(&server).await;
        tcp.write_all(&masked_close_1000()).await.expect("write");
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        assert_eq!(rest, expected, "profile {}", profile.name);
    }
}

#[tokio::test]
async fn provisioning_takes_the_softap_down_and_drops_every_session() {
    let device = DeviceOptions {
        ap_down_delay: Some(Duration::from_millis(20)),
        ap_down_duration: Some(Duration::from_millis(50)),
        ..DeviceOptions::default()
    };
    let server = TestServer::start(Profile::default(), WsSettings::default(), device).await;
    let mut a = connect(&server, "/ws", &[]).await;
    let mut b = connect(&server, "/ws", &[]).await;
    send_json(
        &mut a,
        json!({"type": "provision", "id": 1, "ssid": "espsim-home", "password": "espsim-password"}),
    )
    .await;
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type": "ack", "id": 1, "of": "provision"})
    );
    for ws in [&mut a, &mut b] {
        let update = recv_json(ws).await;
        assert_eq!(
            (update["type"].as_str(), update["state"].as_str()),
            (Some("provisioning"), Some("connecting"))
        );
        let got = read_until_close(ws).await;
        assert!(
            got.is_err(),
            "expected a drop without close frame, got {got:?}"
        );
    }
    server
        .event(
            "ap_down",
            |e| matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "ap_down"),
        )
        .await;
    server
        .event(
            "ap_up",
            |e| matches!(&e.kind, EventKind::DeviceAction { action, .. } if action == "ap_up"),
        )
        .await;
    assert_eq!(server.handles.device.session_count(), 0);
}

#[tokio::test]
async fn message_over_the_read_cap_is_closed_with_1009_in_every_profile() {
    let server = TestServer::default().await;
    let mut ws = connect(&server, "/ws", &[]).await;
    ws.send(Message::text("x".repeat((1 << 20) + 1)))
        .await
        .expect("send");
    let frame = read_until_close(&mut ws).await.expect("close frame");
    assert_eq!(frame.map(|f| f.code), Some(CloseCode::Size));
    let conn = opened_conn(&server, 1).await;
    // tungstenite fuses the stream after the capacity error: the app's close reply is not read,
    // so the close is recorded as not clean.
    assert!(matches!(
        closed_event(&server, conn).await,
        EventKind::WsClosed {
            by: Side::Device,
            code: Some(1009),
            clean: false,
            ..
        }
    ));
}
