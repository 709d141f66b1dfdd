//! One served connection: read a request head the ESP-IDF way, route it, answer, and either
//! keep the socket for the next request or close it — until the app leaves, LRU purge,
//! shutdown, or the WebSocket module takes the connection over.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Handles;
use crate::events::{EventKind, Side};
use crate::sockets::ConnHandle;

use super::device_routes::{MAX_DEVICE_BODY, esp_response};
use super::errors::EspError;
use super::parse::{BLOCK, HeadParser, Limits, Parsed, Step};
use super::router::{self, Reply, Route, RouteCtx};
use super::watch::Watched;
use espsim_firmware::HttpRequest;

/// Per-listener facts a connection needs.
#[derive(Debug)]
pub(crate) struct Site {
    /// `http` or `https`, for probe URLs.
    pub(crate) scheme: &'static str,
    /// The device IP as text.
    pub(crate) device_ip: String,
    /// WebSocket URL shown on the portal page.
    pub(crate) ws_url: String,
}

/// Why a connection ended without an error page.
#[derive(Debug)]
enum End {
    /// The app closed the socket or it failed.
    Client(String),
    /// The device closed it (stall while reading a body, …).
    Device(String),
    /// LRU purge picked this connection.
    Purged,
    /// The emulator is stopping.
    Shutdown,
}

/// Result of reading one request head.
#[derive(Debug)]
enum Read {
    /// A complete head (boxed: it is much larger than the other variants).
    Head(Box<Parsed>),
    /// The connection ended; nothing is sent.
    End(End),
    /// ESP-IDF answers this error page, then closes.
    Error(EspError),
}

/// Serves one connection that holds a socket slot.
pub(crate) async fn serve<S>(io: S, handle: ConnHandle, handles: Arc<Handles>, site: Arc<Site>)
where
    S: AsyncRead + AsyncWrite + crate::ws::Transport + Unpin + Send + 'static,
{
    let mut io = Watched::new(io);
    let mut pending = Vec::new();
    let id = handle.id;
    tracing::debug!(conn = id, peer = %handle.peer, "serving");
    loop {
        let parsed = match read_head(&mut io, &mut pending, &handle, &handles).await {
            Read::Head(p) => p,
            Read::End(end) => return closed(&handles, id, end),
            Read::Error(err) => {
                let (status, _) = err.status();
                handles.events.emit(EventKind::HttpError {
                    conn: id,
                    status,
                    reason: err.describe().to_owned(),
                });
                let page = err.response(handles.profile.modern_error_bodies);
                return finish_with(io, page_reply(page), &handles, id).await;
            }
        };
        handle.touch();
        let Parsed {
            head,
            mut content_length,
            ..
        } = *parsed;
        let ctx = RouteCtx {
            mode: handles.internet.get(),
            ws: &handles.ws.endpoints,
            profile: &handles.profile,
            device_ip: &site.device_ip,
            ws_url: &site.ws_url,
        };
        let mut device_answer = None;
        if handles.device.serves_http() && !router::host_answers(&head, &ctx) {
            if content_length > MAX_DEVICE_BODY {
                handles.events.emit(EventKind::HttpError {
                    conn: id,
                    status: 400,
                    reason: format!(
                        "request body of {content_length} bytes is over the device's \
                         {MAX_DEVICE_BODY}-byte limit"
                    ),
                });
                let page = EspError::BadRequest.response(handles.profile.modern_error_bodies);
                return finish_with(io, page_reply(page), &handles, id).await;
            }
            let body =
                match read_body(&mut io, &mut pending, content_length, &handle, &handles).await {
                    Ok(body) => body,
                    Err(end) => return closed(&handles, id, end),
                };
            content_length = 0;
            device_answer = handles
                .device
                .http(&HttpRequest {
                    method: &head.method,
                    path: &head.path,
                    query: head.query.as_deref(),
                    headers: &head.headers,
                    body: &body,
                })
                .await;
        }
        let route = match device_answer {
            Some(answer) => Route::Reply(Reply {
                response: esp_response(answer),
                close: false,
                probe: None,
            }),
            None => router::route(&head, &ctx),
        };
        let reply = match route {
            Route::Reply(reply) => reply,
            Route::WebSocket => {
                let peer_gone = io.peer_gone();
                let purged = handle.purged().clone();
                let leftover = std::mem::take(&mut pending);
                crate::ws::handle_upgrade(io, leftover, head, handle, handles.ws.clone()).await;
                let end = if purged.is_cancelled() {
                    End::Purged
                } else if handles.lifecycle.cancel.is_cancelled() {
                    End::Shutdown
                } else if peer_gone.load(Ordering::Relaxed) {
                    End::Client("websocket connection ended by the app".to_owned())
                } else {
                    End::Device("websocket connection ended by the device".to_owned())
                };
                return closed(&handles, id, end);
            }
        };
        let status = reply.response.status;
        let target = head.target_for_events(handles.device.auth_token());
        handles.events.emit(EventKind::HttpRequest {
            conn: id,
            method: head.method.clone(),
            host: head.header("host").map(str::to_owned),
            target: target.clone(),
            status,
        });
        if let Some((probe, verdict)) = reply.probe {
            let host = head.host_name().unwrap_or_default();
            handles.events.emit(EventKind::ConnectivityProbe {
                conn: id,
                os: probe.os.as_str().to_owned(),
                url: format!("{}://{}{}", site.scheme, host, target),
                mode: ctx.mode,
                status,
                verdict,
            });
        }
        if reply.close {
            return finish_with(io, reply, &handles, id).await;
        }
        if let Err(e) = super::response::write(&reply.response, &mut io).await {
            return closed(&handles, id, End::Client(format!("write failed: {e}")));
        }
        // ESP-IDF reads and discards what the handler left of the body (`httpd_req_delete`).
        if let Err(end) = discard(&mut io, &mut pending, content_length, &handle, &handles).await {
            return closed(&handles, id, end);
        }
    }
}

fn page_reply(response: super::response::EspResponse) -> Reply {
    Reply {
        response,
        close: true,
        probe: None,
    }
}

/// Sends a final response, then closes (unread request bytes make the kernel send RST, as lwIP
/// does).
async fn finish_with<S>(mut io: Watched<S>, reply: Reply, handles: &Handles, id: u64)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let status = reply.response.status;
    if let Err(e) = super::response::write(&reply.response, &mut io).await {
        return closed(handles, id, End::Client(format!("write failed: {e}")));
    }
    let _ = io.shutdown().await;
    drop(io);
    closed(handles, id, End::Device(format!("closed after {status}")));
}

fn closed(handles: &Handles, conn: u64, end: End) {
    let (by, reason) = match end {
        End::Client(r) => (Side::Client, r),
        End::Device(r) => (Side::Device, r),
        End::Purged => (Side::Device, "lru purge".to_owned()),
        End::Shutdown => (Side::Device, "shutdown".to_owned()),
    };
    handles
        .events
        .emit(EventKind::TcpClosed { conn, by, reason });
}

/// One read of at most `want` bytes: from `pending` first, else from the socket. Waits forever
/// when `timeout` is `None` (an idle keep-alive socket), else `408` after it.
async fn read_some<S>(
    io: &mut S,
    pending: &mut Vec<u8>,
    buf: &mut [u8],
    timeout: Option<std::time::Duration>,
    handle: &ConnHandle,
    handles: &Handles,
) -> Result<usize, Read>
where
    S: AsyncRead + Unpin,
{
    if !pending.is_empty() {
        let n = buf.len().min(pending.len());
        buf[..n].copy_from_slice(&pending[..n]);
        pending.drain(..n);
        return Ok(n);
    }
    let read = async {
        match timeout {
            Some(t) => tokio::time::timeout(t, io.read(buf)).await.ok(),
            None => Some(io.read(buf).await),
        }
    };
    let result = tokio::select! {
        biased;
        () = handle.purged().cancelled() => return Err(Read::End(End::Purged)),
        () = handles.lifecycle.cancel.cancelled() => return Err(Read::End(End::Shutdown)),
        r = read => r,
    };
    match result {
        None => Err(Read::Error(EspError::RequestTimeout)),
        Some(Ok(0)) => Err(Read::End(End::Client(
            if timeout.is_some() {
                "closed by the app mid-request"
            } else {
                "closed by the app"
            }
            .to_owned(),
        ))),
        Some(Ok(n)) => Ok(n),
        Some(Err(e)) => Err(Read::End(End::Client(e.to_string()))),
    }
}

async fn read_head<S>(
    io: &mut S,
    pending: &mut Vec<u8>,
    handle: &ConnHandle,
    handles: &Handles,
) -> Read
where
    S: AsyncRead + Unpin,
{
    let mut parser = HeadParser::new(Limits {
        max_uri_len: handles.profile.max_uri_len,
        max_req_hdr_len: handles.profile.max_req_hdr_len,
    });
    let mut buf = [0u8; BLOCK];
    // An idle socket is never timed out; once a request has started, every read is.
    let mut timeout = None;
    loop {
        let want = parser.want().min(BLOCK);
        let n = match read_some(io, pending, &mut buf[..want], timeout, handle, handles).await {
            Ok(n) => n,
            Err(read) => return read,
        };
        timeout = Some(handles.profile.recv_timeout);
        match parser.feed(&buf[..n]) {
            Step::More => {}
            Step::Done(mut parsed) => {
                parsed.extra.append(pending);
                *pending = std::mem::take(&mut parsed.extra);
                return Read::Head(Box::new(parsed));
            }
            Step::Fail(err) => return Read::Error(err),
        }
    }
}

/// Reads a `len`-byte body (the caller bounds `len`).
async fn read_body<S>(
    io: &mut S,
    pending: &mut Vec<u8>,
    len: u64,
    handle: &ConnHandle,
    handles: &Handles,
) -> Result<Vec<u8>, End>
where
    S: AsyncRead + Unpin,
{
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut body = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let timeout = Some(handles.profile.recv_timeout);
        match read_some(io, pending, &mut body[filled..], timeout, handle, handles).await {
            Ok(n) => filled += n,
            Err(Read::End(end)) => return Err(end),
            // ESP-IDF's handler gets an error from `httpd_req_recv` and the socket is closed.
            Err(_) => return Err(End::Device("request body stalled".to_owned())),
        }
    }
    Ok(body)
}

/// Reads and drops `len` body bytes.
async fn discard<S>(
    io: &mut S,
    pending: &mut Vec<u8>,
    len: u64,
    handle: &ConnHandle,
    handles: &Handles,
) -> Result<(), End>
where
    S: AsyncRead + Unpin,
{
    let mut remaining = len;
    let mut buf = [0u8; 1024];
    while remaining > 0 {
        let want = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let timeout = Some(handles.profile.recv_timeout);
        match read_some(io, pending, &mut buf[..want], timeout, handle, handles).await {
            Ok(n) => remaining -= n as u64,
            Err(Read::End(end)) => return Err(end),
            // ESP-IDF closes without a response when purging the body fails.
            Err(_) => return Err(End::Device("request body stalled".to_owned())),
        }
    }
    Ok(())
}
