//! The HTTP port: one worker task per socket ([`EDGE_LIMITS`]`.max_open_sockets`), each
//! accepting on port 80, parsing request heads with edge-http, answering from
//! `espsim_firmware::captive`'s table (the bytes the emulator sends), and running WebSocket
//! sessions with edge-ws frames.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;

use edge_http::RequestHeaders;
use edge_http::io::Error as HttpError;
use edge_ws::{FrameHeader, FrameType};
use embassy_futures::select::{Either3, select3};
use embassy_net::Stack;
use embassy_net::tcp::{TcpReader, TcpSocket, TcpWriter};
use embassy_time::{Duration, with_timeout};
use embedded_io_async::Write;
use espsim_firmware::ConnId;
use espsim_firmware::captive::{
    self, EDGE_LIMITS, HEAD_BUFFER, Handshake, HttpError as PageError, Portal, Route,
};

use crate::hub::{Hub, Out, Slot};

/// The page shows the profile that models this build in the emulator.
const PORTAL: Portal<'static> = Portal {
    device_ip: "192.168.4.1",
    profile: "esp-hal-edge",
    ws_url: "ws://192.168.4.1/ws",
};

/// TCP buffers per socket: one Ethernet frame's payload each way.
const TCP_BUFFER: usize = 1536;

/// How long a closed connection waits for the peer's FIN before its socket is reset and reused.
const LINGER: Duration = Duration::from_secs(2);

/// Most bytes read and dropped from a WebSocket request that got no answer.
const MAX_DISCARD: usize = 64 * 1024;

/// Close codes.
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_UNSUPPORTED: u16 = 1003;

/// One HTTP/WebSocket worker, forever.
#[embassy_executor::task(pool_size = EDGE_LIMITS.max_open_sockets)]
pub async fn http_task(stack: Stack<'static>, hub: &'static Hub, slot: usize) -> ! {
    let mut rx = vec![0u8; TCP_BUFFER];
    let mut tx = vec![0u8; TCP_BUFFER];
    loop {
        let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
        if socket.accept(80).await.is_err() {
            continue;
        }
        if hub.ap_down() {
            socket.abort();
            let _ = socket.flush().await;
            continue;
        }
        if serve(&mut socket, hub, slot).await {
            // FIN, then wait (bounded) for the peer's FIN before the socket is reused.
            socket.close();
            let _ = with_timeout(LINGER, drain(&mut socket)).await;
        }
        socket.abort();
        let _ = socket.flush().await;
    }
}

/// Reads and discards until the peer's FIN, an error, or `limit` bytes.
async fn discard(socket: &mut TcpSocket<'_>, limit: usize) {
    let mut sink = [0u8; 256];
    let mut total = 0usize;
    while total < limit {
        match socket.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(n) => total = total.saturating_add(n),
        }
    }
}

/// Reads and discards until the peer's FIN (or an error).
async fn drain(socket: &mut TcpSocket<'_>) {
    let mut sink = [0u8; 64];
    while let Ok(n) = socket.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

/// Serves requests on one connection until it closes; `false` when it must be dropped without
/// a graceful close (softAP outage, stuck client).
async fn serve(socket: &mut TcpSocket<'_>, hub: &'static Hub, slot: usize) -> bool {
    let mut head = vec![0u8; HEAD_BUFFER];
    loop {
        // An idle keep-alive connection may wait; a started head must finish in time.
        socket.wait_read_ready().await;
        let timeout = Duration::from_millis(EDGE_LIMITS.recv_timeout_ms);
        let mut request = RequestHeaders::<'_, { EDGE_LIMITS.max_headers }>::new();
        let received = with_timeout(timeout, request.receive(&mut head, &mut *socket, true)).await;
        let rest_len = match received {
            Err(_) => return send_page(socket, PageError::RequestTimeout).await,
            Ok(Err(HttpError::TooLongHeaders | HttpError::TooManyHeaders)) => {
                return send_page(socket, PageError::HeaderFieldsTooLarge).await;
            }
            Ok(Err(HttpError::InvalidHeaders)) => {
                return send_page(socket, PageError::BadRequest).await;
            }
            Ok(Err(_)) => return true,
            Ok(Ok((rest, _))) => rest.len(),
        };
        let mut method = String::new();
        let _ = write!(method, "{}", request.method);
        let target = String::from(request.path);
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(n, v)| (String::from(n), String::from(v)))
            .collect();
        // edge-http accepts only `HTTP/1.0` / `HTTP/1.1`, so the request line's length follows.
        let head_len = HEAD_BUFFER - rest_len;
        let request_line = method.len() + 1 + target.len() + " HTTP/1.1\r\n".len();
        let header_block = head_len.saturating_sub(request_line);
        if let Err(e) = captive::check_head(
            request_line,
            &target,
            header_block,
            headers.len(),
            &EDGE_LIMITS,
        ) {
            return send_page(socket, e).await;
        }
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // Bodies are not read: after a request that has one, the connection is closed rather
        // than the body being parsed as the next request.
        let has_body = captive::has_body(&pairs);
        match captive::route(&method, &target, &PORTAL) {
            Route::Reply { answer, close } => {
                if socket.write_all(&answer.to_bytes()).await.is_err() {
                    return false;
                }
                if close || has_body {
                    return true;
                }
            }
            Route::WebSocket => {
                return match captive::handshake(&target, &pairs) {
                    Handshake::Upgrade { key, token } => {
                        websocket(socket, hub, slot, &key, token).await
                    }
                    Handshake::BadRequest => send_page(socket, PageError::BadRequest).await,
                    // ESP-IDF ran the handler as a plain GET that sent nothing: the socket
                    // stays open, unanswered, until the client closes it (as the emulator's
                    // `hold_unanswered`, with the same 64 KiB bound on what it discards).
                    Handshake::NoResponse => {
                        discard(socket, MAX_DISCARD).await;
                        true
                    }
                    Handshake::SilentClose => true,
                };
            }
        }
    }
}

/// Sends an error page; the connection closes after it.
async fn send_page(socket: &mut TcpSocket<'_>, error: PageError) -> bool {
    socket.write_all(&error.answer().to_bytes()).await.is_ok()
}

/// Upgrades and runs one WebSocket session.
async fn websocket(
    socket: &mut TcpSocket<'_>,
    hub: &'static Hub,
    slot: usize,
    key: &str,
    token: Option<String>,
) -> bool {
    let mut accept = [0u8; edge_http::ws::MAX_BASE64_KEY_RESPONSE_LEN];
    let accept = edge_http::ws::sec_key_response(key, &mut accept);
    if socket
        .write_all(&captive::switching_protocols(accept))
        .await
        .is_err()
    {
        return false;
    }
    let conn = hub.connect(slot);
    if let (Some(expected), Some(given)) = (hub.auth_token(), token.as_deref())
        && expected == given
    {
        hub.authorize(conn);
    }
    let (mut reader, mut writer) = socket.split();
    let mailbox = hub.slot(slot);
    let outcome = select3(
        read_frames(&mut reader, hub, mailbox, conn),
        write_frames(&mut writer, mailbox),
        mailbox.drop.wait(),
    )
    .await;
    hub.disconnect(slot, conn);
    let last = match outcome {
        // The peer closed: answer with an empty close frame (ESP-IDF v5 does not echo the code).
        Either3::First(Ended::PeerClosed) => Some(Vec::new()),
        Either3::First(Ended::TooBig) => {
            Some(captive::close_payload(CLOSE_TOO_BIG, "message too big"))
        }
        Either3::First(Ended::Fragmented) => Some(captive::close_payload(
            CLOSE_UNSUPPORTED,
            "fragmented messages are not supported",
        )),
        Either3::First(Ended::Io) => return false,
        // The writer sent the firmware's close frame, or the socket failed.
        Either3::Second(graceful) => return graceful,
        Either3::Third(()) => return false,
    };
    if let Some(payload) = last {
        return send_frame(&mut writer, FrameType::Close, &payload).await;
    }
    true
}

/// Why the reader stopped.
enum Ended {
    PeerClosed,
    TooBig,
    Fragmented,
    Io,
}

/// Reads frames and hands messages to the firmware; pings are answered through the outbox.
async fn read_frames(
    reader: &mut TcpReader<'_>,
    hub: &'static Hub,
    mailbox: &Slot,
    conn: ConnId,
) -> Ended {
    let mut payload = vec![0u8; EDGE_LIMITS.max_ws_message];
    loop {
        let Ok(header) = FrameHeader::recv(&mut *reader).await else {
            return Ended::Io;
        };
        if header.payload_len > EDGE_LIMITS.max_ws_message as u64 {
            return Ended::TooBig;
        }
        let Ok(data) = header.recv_payload(&mut *reader, &mut payload).await else {
            return Ended::Io;
        };
        match header.frame_type {
            FrameType::Text(false) | FrameType::Binary(false) => hub.frame(conn, data),
            FrameType::Ping => {
                // A full outbox means a stuck client; the hub drops those on the next send.
                let _ = mailbox.outbox.try_send(Out::Pong(data.to_vec()));
            }
            FrameType::Pong => {}
            FrameType::Close => return Ended::PeerClosed,
            FrameType::Text(true) | FrameType::Binary(true) | FrameType::Continue(_) => {
                return Ended::Fragmented;
            }
        }
    }
}

/// Writes what the hub queued for this connection; returns after a close frame (`true`) or a
/// failed write (`false`).
async fn write_frames(writer: &mut TcpWriter<'_>, mailbox: &Slot) -> bool {
    loop {
        let (frame_type, payload, last) = match mailbox.outbox.receive().await {
            Out::Text(bytes) => (FrameType::Text(false), bytes, false),
            Out::Pong(bytes) => (FrameType::Pong, bytes, false),
            Out::Close(bytes) => (FrameType::Close, bytes, true),
        };
        if !send_frame(writer, frame_type, &payload).await {
            return false;
        }
        if last {
            return true;
        }
    }
}

/// One unmasked frame (server → client).
async fn send_frame(writer: &mut TcpWriter<'_>, frame_type: FrameType, payload: &[u8]) -> bool {
    let header = FrameHeader {
        frame_type,
        payload_len: payload.len() as u64,
        mask_key: None,
    };
    header.send(&mut *writer).await.is_ok()
        && header.send_payload(&mut *writer, payload).await.is_ok()
        && writer.flush().await.is_ok()
}
