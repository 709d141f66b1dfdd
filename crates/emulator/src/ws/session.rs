//! One WebSocket session after the `101`: frames ↔ the handles firmware device.
//!
//! Frames are read and written by tokio-tungstenite; this loop adds ESP-IDF's behaviour on top:
//! auto PONG with the same payload, an EMPTY close frame in reply to the app's close (so apps
//! report 1005) unless the profile echoes the code, a silent drop on an unmasked client frame, the
//! profile's oversize handling, close 1001 on shutdown (the app gets until the shutdown's close
//! deadline to answer) and a silent drop on LRU purge. Bounded like ESP-IDF's send: a write
//! waits at most `send_wait_timeout` (5 s), and a session whose outbox fills
//! ([`crate::device_host::OUTBOX`] messages) is dropped without a close frame, saying why.
//!
//! Message faults: every frame both ways is put to [`FaultPlan::on_ws_message`] (and the session
//! asks [`FaultPlan::on_ws_tick`] when it starts, at each [`FaultPlan::next_boundary`] and when
//! the plan changes); see [`super::message_fault`] for what each fault puts on the wire.
//!
//! [`FaultPlan::on_ws_message`]: espsim_faults::FaultPlan::on_ws_message
//! [`FaultPlan::on_ws_tick`]: espsim_faults::FaultPlan::on_ws_tick
//! [`FaultPlan::next_boundary`]: espsim_faults::FaultPlan::next_boundary

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use espsim_faults::message::Payload as MessagePayload;
use espsim_faults::{
    Applied, ConnInfo, ConnRef, FrameKind, MessageDirection, MessageInfo, MessageMatch,
    SeenMessage, WsFault,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Handles;
use crate::device_host::{OUTBOX, Outbox, Outgoing};
use crate::events::{ConnId, Direction, EventKind, Side};
use crate::profile::OversizeHandling;
use crate::sockets::ConnHandle;
use espsim_firmware::{Frame as DeviceFrame, Payload, SessionStart};

use super::message_fault::{self, Action};
use super::preview::preview;
use super::tap::Tap;

/// `send_wait_timeout` of `HTTPD_DEFAULT_CONFIG()`: a send that cannot complete in this time
/// fails and ESP-IDF closes the session (no close frame).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing session waits for the app's close frame / TCP close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// At most this many frames are read (and discarded) while waiting for the app's close reply.
const CLOSE_WAIT_FRAMES: usize = 64;
/// Floor for the largest message tungstenite assembles; anything between the profile's
/// `max_ws_message` and this is read whole and then handled per `profile.oversize`, anything
/// larger is refused (close 1009 in every profile; ESP-IDF has no global limit, but an emulator
/// must not buffer without bound).
const READ_CAP_FLOOR: usize = 1 << 20;
/// Largest single frame read. Frames up to this size are read whole even when over the message
/// cap, so the stream stays in sync and the 1009 close handshake completes cleanly.
const MAX_FRAME: usize = 16 << 20;

/// Initial read buffer per session. tungstenite zero-fills all of it before every read, so its
/// 128 KiB default costs 128 KiB of RSS per connection and a 128 KiB memset per read; frames
/// larger than this still grow it.
const READ_BUFFER: usize = 4096;

/// The upgrade request a session came from, as the device logic sees it.
#[derive(Debug)]
pub(crate) struct Upgrade {
    /// The request path.
    pub(crate) path: String,
    /// The query string, without `?`.
    pub(crate) query: Option<String>,
    /// The request headers.
    pub(crate) headers: Vec<(String, String)>,
    /// The handshake carried the device's token.
    pub(crate) authorized: bool,
}

/// Runs the session until it ends. `leftover` holds frames the app sent right behind its
/// handshake.
pub(crate) async fn run<S>(
    io: S,
    leftover: Vec<u8>,
    conn: ConnHandle,
    fault_conn: ConnRef,
    handles: Arc<Handles>,
    upgrade: Upgrade,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cap = handles.profile.max_ws_message.max(READ_CAP_FLOOR);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(cap))
        .max_frame_size(Some(MAX_FRAME.max(cap)))
        .accept_unmasked_frames(false);
    let ws =
        WebSocketStream::from_partially_read(Tap::new(io), leftover, Role::Server, Some(config))
            .await;
    let start = SessionStart {
        path: &upgrade.path,
        query: upgrade.query.as_deref(),
        headers: &upgrade.headers,
        authorized: upgrade.authorized,
    };
    let outbox = handles.device.connect(conn.id, &start);
    let mut session = Session {
        ws,
        outbox,
        conn,
        handles: handles.clone(),
        fault_conn,
        messages: 0,
        bytes: 0,
    };
    let end = session.serve().await;
    handles.device.disconnect(session.conn.id);
    session.finish(end).await;
}

/// How a session ends.
#[derive(Debug)]
enum End {
    /// The app sent a close frame (code and reason as received).
    ClientClose(Option<CloseFrame>),
    /// The device closes with a close frame.
    DeviceClose(u16, String),
    /// The device sends a close frame and drops the connection without waiting for the echo.
    DeviceCloseNoEcho(u16, String),
    /// The socket goes away without a close frame; `by` ended it.
    Drop { by: Side, reason: String },
}

struct Session<S> {
    ws: WebSocketStream<Tap<S>>,
    outbox: Outbox,
    conn: ConnHandle,
    handles: Arc<Handles>,
    /// This session as the fault plan knows it (service and upgrade ordinal).
    fault_conn: ConnRef,
    /// Data messages so far, both ways (the plan's `messages:` trigger).
    messages: u64,
    /// Data payload bytes so far, both ways (the plan's `bytes:` trigger).
    bytes: u64,
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn id(&self) -> ConnId {
        self.conn.id
    }

    fn emit(&self, kind: EventKind) {
        self.handles.events.emit(kind);
    }

    /// Reads frames and device output until something ends the session.
    async fn serve(&mut self) -> End {
        let mut changes = self.handles.faults.changes();
        let mut plan_gone = false;
        let mut tick = true;
        // The boundary whose timer started the pending tick (`None`: start or plan change).
        let mut due = None;
        // The next time a rule's window opens or closes, with its timer. Recomputed only after a
        // tick (the boundary passed or the plan changed), not per frame: that would cost two plan
        // locks and a timer per message while any rule exists.
        let mut boundary: Option<Boundary> = None;
        let handles = self.handles.clone();
        let purged = self.conn.purged().clone();
        let overflow = self.outbox.overflow.clone();
        loop {
            if std::mem::take(&mut tick) {
                if let Some(end) = self.tick(due.take()).await {
                    return end;
                }
                let elapsed = handles.events.elapsed();
                boundary = handles.faults.next_boundary(elapsed).map(|at| Boundary {
                    at,
                    timer: Box::pin(tokio::time::sleep(at.saturating_sub(elapsed))),
                });
            }
            tokio::select! {
                biased;
                () = purged.cancelled() => {
                    return End::Drop { by: Side::Device, reason: "lru purge".to_owned() };
                }
                () = handles.lifecycle.cancel.cancelled() => {
                    return End::DeviceClose(1001, "going away".to_owned());
                }
                () = overflow.cancelled() => return overflowed(),
                at = until(&mut boundary) => {
                    tick = true;
                    due = Some(at);
                }
                changed = changes.changed(), if !plan_gone => match changed {
                    Ok(()) => tick = true,
                    // The plan lives as long as the emulator; without it there is nothing to tick.
                    Err(_) => plan_gone = true,
                },
                out = self.outbox.rx.recv() => {
                    let Some(out) = out else {
                        return End::Drop { by: Side::Device, reason: "device gone".to_owned() };
                    };
                    if let Some(end) = self.send(out).await {
                        return end;
                    }
                }
                msg = self.ws.next() => {
                    self.conn.touch();
                    if let Some(end) = self.received(msg).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Runs the time-driven fault actions that are due (bounded: a handful per instant). Rules
    /// are judged at `due`, the boundary whose timer woke the session, and then now: a session
    /// woken late by a stalled host still fires the action whose window opened at `due`, even
    /// when that window has closed since (late, never lost).
    async fn tick(&mut self, due: Option<Duration>) -> Option<End> {
        let now = self.handles.events.elapsed();
        for elapsed in due.filter(|d| *d < now).into_iter().chain([now]) {
            for _ in 0..8 {
                let info = ConnInfo {
                    conn: self.fault_conn,
                    elapsed,
                };
                let Some(applied) = self.handles.faults.on_ws_tick(info) else {
                    break;
                };
                if let Some(end) = self.act(&applied).await {
                    return Some(end);
                }
            }
        }
        None
    }

    /// Asks the plan about one frame passing through (counting data messages and bytes).
    fn decide(
        &mut self,
        direction: MessageDirection,
        kind: FrameKind,
        message: Option<&SeenMessage<'_>>,
        len: usize,
    ) -> Option<Applied<WsFault>> {
        if matches!(kind, FrameKind::Text | FrameKind::Binary) {
            self.messages += 1;
            self.bytes += len as u64;
        }
        self.handles.faults.on_ws_message(MessageInfo {
            conn: self.fault_conn,
            elapsed: self.handles.events.elapsed(),
            direction,
            kind,
            message,
            messages: self.messages,
            bytes: self.bytes,
        })
    }

    /// Records a fired fault.
    fn applied(&self, applied: &Applied<WsFault>, detail: String) {
        super::fault_applied(&self.handles, self.id(), applied, detail);
    }

    /// Performs a fault that is an action of the device (`close`, `corrupt`, …), recording it.
    /// Message faults (`drop`, …) are handled where the message passes and do nothing here.
    async fn act(&mut self, applied: &Applied<WsFault>) -> Option<End> {
        let action = message_fault::action(&applied.fault, self.handles.profile.max_ws_message)?;
        self.applied(applied, action.describe());
        match action {
            Action::Close { code, reason, echo } => Some(if echo {
                End::DeviceClose(code, reason)
            } else {
                End::DeviceCloseNoEcho(code, reason)
            }),
            Action::Raw(bytes) => {
                // What tungstenite buffered goes first, then the frame it cannot produce.
                let io = async {
                    self.ws.flush().await.map_err(std::io::Error::other)?;
                    let tap = self.ws.get_mut();
                    tap.write_all(&bytes).await?;
                    tap.flush().await
                };
                let handles = self.handles.clone();
                let result = within_send_timeout(&handles, io).await;
                sent_or_going_away(&handles, result).err()
            }
            Action::Text(text) => {
                let bytes = text.len();
                let shown = preview(DeviceFrame::Text(&text));
                if let Err(end) = self.write(Message::text(text)).await {
                    return Some(end);
                }
                self.emit(EventKind::WsMessage {
                    conn: self.id(),
                    direction: Direction::Out,
                    msg_type: None,
                    bytes,
                    preview: shown,
                    watched: Vec::new(),
                });
                None
            }
            Action::Purge => Some(End::Drop {
                by: Side::Device,
                reason: "lru_purge fault".to_owned(),
            }),
        }
    }

    /// Waits `delay` (a `ws: delay` fault), giving way to purge, shutdown and a full outbox.
    async fn hold(&self, delay: Duration) -> Option<End> {
        tokio::select! {
            () = self.conn.purged().cancelled() => {
                Some(End::Drop { by: Side::Device, reason: "lru purge".to_owned() })
            }
            () = self.outbox.overflow.cancelled() => Some(overflowed()),
            () = self.handles.lifecycle.cancel.cancelled() => {
                Some(End::DeviceClose(1001, "going away".to_owned()))
            }
            () = tokio::time::sleep(delay) => None,
        }
    }

    /// Puts one device output on the wire, through the message faults.
    async fn send(&mut self, out: Outgoing) -> Option<End> {
        match out {
            Outgoing::Message { payload, label } => {
                let msg_type = label.as_str();
                let kind = match payload {
                    Payload::Text(_) => FrameKind::Text,
                    Payload::Binary(_) => FrameKind::Binary,
                };
                let seen = SeenMessage::new(Some(msg_type), seen_payload(payload.frame()));
                let applied = self.decide(MessageDirection::Out, kind, Some(&seen), payload.len());
                let mut copies = 1;
                let mut after = None;
                if let Some(a) = applied {
                    match &a.fault {
                        WsFault::Drop(_) => {
                            self.applied(&a, format!("dropped the device's {msg_type}"));
                            return None;
                        }
                        WsFault::Duplicate(_) => {
                            self.applied(&a, format!("sent the device's {msg_type} twice"));
                            copies = 2;
                        }
                        WsFault::SuppressPong(_) => {
                            self.applied(
                                &a,
                                format!(
                                    "pong message swallowed: the device's {msg_type} was not sent"
                                ),
                            );
                            return None;
                        }
                        WsFault::Delay(d) => {
                            self.applied(
                                &a,
                                format!("held the device's {msg_type} for {:?}", d.delay),
                            );
                            if let Some(end) = self.hold(d.delay).await {
                                return Some(end);
                            }
                        }
                        _ => after = Some(a),
                    }
                }
                for _ in 0..copies {
                    let bytes = payload.len();
                    let message = match &payload {
                        Payload::Text(text) => Message::text(text.clone()),
                        Payload::Binary(bytes) => Message::binary(bytes.clone()),
                    };
                    if let Err(end) = self.write(message).await {
                        return Some(end);
                    }
                    self.emit(EventKind::WsMessage {
                        conn: self.id(),
                        direction: Direction::Out,
                        msg_type: Some(msg_type.to_owned()),
                        bytes,
                        preview: preview(payload.frame()),
                        watched: Vec::new(),
                    });
                }
                match after {
                    Some(a) => self.act(&a).await,
                    None => None,
                }
            }
            Outgoing::Close { code, reason } => Some(End::DeviceClose(code, reason)),
            Outgoing::Drop { reason } => Some(End::Drop {
                by: Side::Device,
                reason,
            }),
        }
    }

    /// Sends and flushes a message within `SEND_TIMEOUT`, giving way to purge, shutdown and a
    /// full outbox.
    async fn write(&mut self, msg: Message) -> Result<(), End> {
        let purged = self.conn.purged().clone();
        let overflow = self.outbox.overflow.clone();
        let cancel = self.handles.lifecycle.cancel.clone();
        let result = tokio::select! {
            () = purged.cancelled() => {
                return Err(End::Drop { by: Side::Device, reason: "lru purge".to_owned() });
            }
            () = overflow.cancelled() => return Err(overflowed()),
            // The close handshake then has its own bound (`finish`).
            () = cancel.cancelled() => {
                return Err(End::DeviceClose(1001, "going away".to_owned()));
            }
            r = tokio::time::timeout(SEND_TIMEOUT, self.ws.send(msg)) => r.ok(),
        };
        sent(result)
    }

    /// Handles what the app sent.
    async fn received(&mut self, msg: Option<Result<Message, WsError>>) -> Option<End> {
        let msg = match msg {
            None => {
                return Some(End::Drop {
                    by: Side::Client,
                    reason: "connection closed without close frame".to_owned(),
                });
            }
            Some(Ok(m)) => m,
            Some(Err(e)) => return Some(self.read_error(e)),
        };
        match msg {
            Message::Text(t) => self.incoming(FrameKind::Text, t.as_bytes()).await,
            // ESP-IDF hands binary frames to the handler like text; the firmware reads the
            // payload as JSON either way (non-JSON gets the protocol's `error` reply).
            Message::Binary(b) => self.incoming(FrameKind::Binary, &b).await,
            Message::Ping(payload) => {
                self.control(Direction::In, "ping");
                let suppress = self
                    .decide(MessageDirection::In, FrameKind::Ping, None, payload.len())
                    .filter(|a| matches!(a.fault, WsFault::SuppressPong(_)));
                if let Some(a) = &suppress {
                    self.applied(a, "no pong for the app's ping".to_owned());
                }
                // tungstenite queued the PONG with the same payload; flush puts it on the wire
                // (or, while suppressing, into the tap that swallows it).
                self.ws.get_mut().swallow_pong = suppress.is_some();
                let handles = self.handles.clone();
                let flushed = within_send_timeout(&handles, self.ws.flush()).await;
                self.ws.get_mut().swallow_pong = false;
                if let Err(end) = sent_or_going_away(&handles, flushed) {
                    return Some(end);
                }
                if suppress.is_none() {
                    self.control(Direction::Out, "pong");
                    tracing::trace!(bytes = payload.len(), "pong sent");
                }
                None
            }
            Message::Pong(payload) => {
                self.control(Direction::In, "pong");
                // No fault acts on the app's pongs; asked anyway so every frame is seen.
                let _ = self.decide(MessageDirection::In, FrameKind::Pong, None, payload.len());
                None
            }
            Message::Close(frame) => Some(End::ClientClose(frame)),
            // Never produced by reading.
            Message::Frame(_) => None,
        }
    }

    /// A text or binary message from the app: recorded, put through the message faults, handed
    /// to the firmware, and its `type` observed (arming `after:` rules).
    async fn incoming(&mut self, kind: FrameKind, payload: &[u8]) -> Option<End> {
        let frame = device_frame(kind, payload);
        let msg_type = self.handles.device.label(self.id(), frame);
        let seen = SeenMessage::new(msg_type.as_deref(), seen_payload(frame));
        self.emit(EventKind::WsMessage {
            conn: self.id(),
            direction: Direction::In,
            msg_type: msg_type.clone(),
            bytes: payload.len(),
            preview: preview(frame),
            watched: watched(&self.handles.watched, &seen),
        });
        let what = msg_type.as_deref().unwrap_or("message");
        let applied = self.decide(MessageDirection::In, kind, Some(&seen), payload.len());
        let mut copies = 1;
        let mut after = None;
        if let Some(a) = applied {
            match &a.fault {
                WsFault::Drop(_) => {
                    self.applied(&a, format!("dropped the app's {what}"));
                    copies = 0;
                }
                WsFault::Duplicate(_) => {
                    self.applied(&a, format!("delivered the app's {what} twice"));
                    copies = 2;
                }
                WsFault::Delay(d) => {
                    self.applied(&a, format!("held the app's {what} for {:?}", d.delay));
                    if let Some(end) = self.hold(d.delay).await {
                        return Some(end);
                    }
                }
                _ => after = Some(a),
            }
        }
        for _ in 0..copies {
            if let Some(end) = self.data(kind, payload) {
                return Some(end);
            }
        }
        // Only what reached the firmware happened: a dropped `provision` arms no `after:` rule.
        if copies > 0
            && let Some(t) = &msg_type
        {
            self.handles
                .faults
                .observe(t, self.handles.events.elapsed());
        }
        match after {
            Some(a) => self.act(&a).await,
            None => None,
        }
    }

    /// Hands a message to the device logic, after the profile's size limit.
    fn data(&mut self, kind: FrameKind, payload: &[u8]) -> Option<End> {
        let max = self.handles.profile.max_ws_message;
        if payload.len() > max {
            return match self.handles.profile.oversize {
                OversizeHandling::Close1009 => {
                    Some(End::DeviceClose(1009, "message too big".to_owned()))
                }
                OversizeHandling::ErrorMessage => {
                    self.handles.device.oversized(self.id(), payload.len(), max);
                    None
                }
            };
        }
        self.handles
            .device
            .message(self.id(), device_frame(kind, payload));
        None
    }

    fn control(&self, direction: Direction, frame: &str) {
        self.emit(EventKind::WsControl {
            conn: self.id(),
            direction,
            frame: frame.to_owned(),
        });
    }

    /// Maps a read error to how ESP-IDF would end the session.
    fn read_error(&self, e: WsError) -> End {
        match e {
            // `httpd_ws_recv_frame` fails → handler error → socket closed, no close frame.
            WsError::Protocol(ProtocolError::UnmaskedFrameFromClient) => End::Drop {
                by: Side::Device,
                reason: "unmasked frame from client".to_owned(),
            },
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                End::DeviceClose(
                    1009,
                    format!("message too big: {size} bytes, limit {max_size}"),
                )
            }
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
            | WsError::ConnectionClosed
            | WsError::AlreadyClosed => End::Drop {
                by: Side::Client,
                reason: "connection closed without close frame".to_owned(),
            },
            WsError::Io(e) => End::Drop {
                by: Side::Client,
                reason: format!("connection error: {e}"),
            },
            other => End::Drop {
                by: Side::Device,
                reason: format!("invalid frame: {other}"),
            },
        }
    }

    /// Ends the session on the wire and records how.
    async fn finish(mut self, end: End) {
        let conn = self.id();
        let handles = self.handles.clone();
        match end {
            End::ClientClose(frame) => {
                let (code, reason) = match &frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                    None => (None, String::new()),
                };
                if self.handles.profile.echo_close_code {
                    // tungstenite queued a close echoing the code; reading on flushes it and,
                    // as the server, ends the connection.
                    self.drain().await;
                } else {
                    // ESP-IDF v5+: an empty close frame, whatever the app sent, then close().
                    // tungstenite's echo is still only queued; it is dropped with the stream.
                    let mut empty = Vec::new();
                    if Frame::close(None).format(&mut empty).is_ok() {
                        let io = self.ws.get_mut();
                        let wrote = async {
                            io.write_all(&empty).await?;
                            io.flush().await?;
                            io.shutdown().await
                        };
                        let _ = within_send_timeout(&handles, wrote).await;
                    }
                }
                self.emit(EventKind::WsClosed {
                    conn,
                    by: Side::Client,
                    code,
                    reason,
                    clean: true,
                });
            }
            End::DeviceClose(code, reason) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.clone().into(),
                };
                let sent = within_send_timeout(&handles, self.ws.close(Some(frame))).await;
                let clean = matches!(sent, Some(Ok(()))) && self.drain().await;
                self.emit(EventKind::WsClosed {
                    conn,
                    by: Side::Device,
                    code: Some(code),
                    reason,
                    clean,
                });
            }
            End::DeviceCloseNoEcho(code, reason) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.clone().into(),
                };
                let sent = async {
                    self.ws.close(Some(frame)).await?;
                    self.ws.get_mut().shutdown().await.map_err(WsError::Io)
                };
                let _ = within_send_timeout(&handles, sent).await;
                self.emit(EventKind::WsClosed {
                    conn,
                    by: Side::Device,
                    code: Some(code),
                    reason,
                    clean: false,
                });
            }
            End::Drop { by, reason } => {
                self.emit(EventKind::WsClosed {
                    conn,
                    by,
                    code: None,
                    reason,
                    clean: false,
                });
            }
        }
    }

    /// Keeps reading after a close was sent or received, so the closing handshake completes
    /// (tungstenite writes queued close frames while reading). Returns whether the app's close
    /// frame arrived. Bounded in frames and time; purge still drops at once.
    async fn drain(&mut self) -> bool {
        let purged = self.conn.purged().clone();
        let handles = self.handles.clone();
        let mut acknowledged = false;
        let read = async {
            for _ in 0..CLOSE_WAIT_FRAMES {
                match self.ws.next().await {
                    Some(Ok(Message::Close(_))) => acknowledged = true,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        };
        let purged_now = tokio::select! {
            () = purged.cancelled() => true,
            // On shutdown: no longer than the shutdown allows.
            _ = within(&handles, CLOSE_WAIT, read) => false,
        };
        if !purged_now {
            // Flush what tungstenite wrote last (a TLS stream buffers) and send FIN.
            let _ = within_send_timeout(&handles, self.ws.get_mut().shutdown()).await;
        }
        acknowledged
    }
}

/// The protocol `type` of a message exactly as the firmware's decoder reads it (for events and
/// `message_type` rules), so neither can see another kind than the device acts on.
/// A data message as the device logic takes it (text frames were checked for UTF-8 by the
/// WebSocket layer).
/// The payload as the fault plan's matchers see it.
fn seen_payload(frame: DeviceFrame<'_>) -> MessagePayload<'_> {
    match frame {
        DeviceFrame::Text(text) => MessagePayload::Text(text),
        DeviceFrame::Binary(bytes) => MessagePayload::Binary(bytes),
    }
}

/// The indices of the watched matchers that `message` meets.
fn watched(matchers: &[MessageMatch], message: &SeenMessage<'_>) -> Vec<u16> {
    matchers
        .iter()
        .enumerate()
        .filter(|(_, m)| m.matches(message))
        .filter_map(|(i, _)| u16::try_from(i).ok())
        .collect()
}

fn device_frame(kind: FrameKind, payload: &[u8]) -> DeviceFrame<'_> {
    match (kind, std::str::from_utf8(payload)) {
        (FrameKind::Text, Ok(text)) => DeviceFrame::Text(text),
        _ => DeviceFrame::Binary(payload),
    }
}

/// Runs a write for at most `SEND_TIMEOUT` (`None`: it did not complete in time) and, once the
/// shutdown started, no longer than its close deadline
/// ([`crate::lifecycle::Lifecycle::close_deadline`]).
async fn within_send_timeout<F: std::future::Future>(
    handles: &Handles,
    write: F,
) -> Option<F::Output> {
    within(handles, SEND_TIMEOUT, write).await
}

/// Runs `work` for at most `usual` and, once the shutdown started, no longer than its close
/// deadline; `None` when it did not complete in time.
async fn within<F: std::future::Future>(
    handles: &Handles,
    usual: Duration,
    work: F,
) -> Option<F::Output> {
    let shutdown = async {
        handles.lifecycle.cancel.cancelled().await;
        tokio::time::sleep_until(handles.lifecycle.close_deadline(usual)).await;
    };
    tokio::select! {
        r = tokio::time::timeout(usual, work) => r.ok(),
        () = shutdown => None,
    }
}

/// What a write bounded by `SEND_TIMEOUT` means for the session: done, the app's side failed,
/// or the app stopped reading (the device gives up, as ESP-IDF's `send_wait_timeout` does).
fn sent<E: std::fmt::Display>(result: Option<Result<(), E>>) -> Result<(), End> {
    match result {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(End::Drop {
            by: Side::Client,
            reason: format!("send failed: {e}"),
        }),
        None => Err(End::Drop {
            by: Side::Device,
            reason: format!(
                "send timed out after {SEND_TIMEOUT:?} (ESP-IDF send_wait_timeout): the app is not reading"
            ),
        }),
    }
}

/// [`sent`], except that a write the shutdown cut short ends the session with close 1001 (the
/// close handshake then has the rest of the shutdown's close wait).
fn sent_or_going_away<E: std::fmt::Display>(
    handles: &Handles,
    result: Option<Result<(), E>>,
) -> Result<(), End> {
    if result.is_none() && handles.lifecycle.cancel.is_cancelled() {
        return Err(End::DeviceClose(1001, "going away".to_owned()));
    }
    sent(result)
}

/// How a session whose outbox overflowed ends: like ESP-IDF after a failed send, the socket is
/// closed without a close frame.
fn overflowed() -> End {
    End::Drop {
        by: Side::Device,
        reason: format!(
            "send queue full: {OUTBOX} device messages waiting (limit {OUTBOX}); the app is not reading fast enough"
        ),
    }
}

/// A moment (time since the emulator started) at which a rule's window opens or closes, and the
/// timer that wakes the session then.
struct Boundary {
    at: Duration,
    timer: Pin<Box<Sleep>>,
}

/// Waits for `boundary` and returns its moment; forever when there is none.
async fn until(boundary: &mut Option<Boundary>) -> Duration {
    match boundary {
        Some(b) => {
            b.timer.as_mut().await;
            b.at
        }
        None => std::future::pending().await,
    }
}
