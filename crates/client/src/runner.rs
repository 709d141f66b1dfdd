//! The connection loop: attempt → `hello`/`welcome` → session (heartbeat, sends, receives) →
//! backoff → attempt … until stopped, then leave.
//!
//! One task owns the socket, the queue and the timers, so there is no locking and the order of
//! events is the order things happened. Every wait is bounded by a timer of the configuration or
//! by the stop token (except where a profile deliberately has no timer, e.g. `patient`).

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use espsim_protocol::client::{Hello, Ping};
use espsim_protocol::{ClientMessage, DeviceMessage, decode_device, encode_client};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::config::{ClientConfig, HeartbeatKind};
use super::event::{ClientEvent, ClientEventKind, ClientSummary, Closer};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Frames read while waiting for the device's close frame, at most.
const CLOSE_READ_FRAMES: usize = 64;

/// How a usable link ended.
enum SessionEnd {
    /// Asked to stop; the client has left.
    Stopped,
    /// The link was lost (device close, network error, dead link); reconnect.
    Lost,
}

/// What the hello phase produced.
enum HelloOutcome {
    Ready,
    Failed(String),
    Stopped,
}

/// The state of one run.
pub(super) struct Runner<F> {
    config: ClientConfig,
    outbox: mpsc::Receiver<ClientMessage>,
    outbox_open: bool,
    queue: VecDeque<ClientMessage>,
    observer: F,
    start: Instant,
    rng: StdRng,
    summary: ClientSummary,
    next_id: u64,
    next_seq: u64,
}

impl<F: FnMut(&ClientEvent) + Send> Runner<F> {
    pub(super) fn new(
        config: ClientConfig,
        outbox: mpsc::Receiver<ClientMessage>,
        observer: F,
    ) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Runner {
            config,
            outbox,
            outbox_open: true,
            queue: VecDeque::new(),
            observer,
            start: Instant::now(),
            rng,
            summary: ClientSummary::default(),
            next_id: 1,
            next_seq: 1,
        }
    }

    pub(super) async fn run(mut self, stop: CancellationToken) -> ClientSummary {
        self.emit(ClientEventKind::Start {
            url: self.config.url.clone(),
            profile: self.config.profile.name().to_owned(),
            connect_timeout_ms: self.config.connect_timeout.map(millis),
            heartbeat_ms: self.config.heartbeat.map(|h| millis(h.every)),
            heartbeat_timeout_ms: self.config.heartbeat.map(|h| millis(h.timeout)),
            backoff_initial_ms: millis(self.config.backoff.initial),
            backoff_factor: self.config.backoff.factor,
            backoff_max_ms: millis(self.config.backoff.max),
        });
        let mut failures: u32 = 0;
        while !stop.is_cancelled() {
            let attempt = self.summary.attempts + 1;
            self.summary.attempts = attempt;
            self.emit(ClientEventKind::Attempt { attempt });
            let config = self.config.clone();
            match self.offline(&stop, connect(&config)).await {
                None => break,
                Some(Err(error)) => {
                    self.fail(attempt, "connect", error);
                    failures += 1;
                }
                Some(Ok(mut ws)) => {
                    self.emit(ClientEventKind::Connected { attempt });
                    match self.hello(&stop, &mut ws).await {
                        HelloOutcome::Stopped => {
                            self.leave(ws).await;
                            break;
                        }
                        HelloOutcome::Failed(error) => {
                            self.fail(attempt, "hello", error);
                            failures += 1;
                            self.leave_quietly(ws).await;
                        }
                        HelloOutcome::Ready => {
                            self.summary.ready += 1;
                            match self.session(&stop, ws).await {
                                SessionEnd::Stopped => break,
                                SessionEnd::Lost => failures = 1,
                            }
                        }
                    }
                }
            }
            let delay = self
                .config
                .backoff
                .delay(failures, self.rng.random::<f64>());
            self.emit(ClientEventKind::Backoff {
                failures,
                delay_ms: millis(delay),
            });
            if delay.is_zero() {
                // `naive`: straight back, but let the rest of the runtime breathe.
                tokio::task::yield_now().await;
            } else if self
                .offline(&stop, tokio::time::sleep(delay))
                .await
                .is_none()
            {
                break;
            }
        }
        // Whatever is still in the outbox was never delivered.
        while let Ok(m) = self.outbox.try_recv() {
            self.queue.push_back(m);
        }
        self.summary.unsent = self.queue.len();
        self.emit(ClientEventKind::Stopped);
        self.summary
    }

    /// Waits for `fut` while the link is down, queueing whatever is sent meanwhile.
    /// `None` when asked to stop first.
    async fn offline<T>(
        &mut self,
        stop: &CancellationToken,
        fut: impl Future<Output = T>,
    ) -> Option<T> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return None,
                out = &mut fut => return Some(out),
                m = self.outbox.recv(), if self.outbox_open => self.enqueue(m),
            }
        }
    }

    /// Keeps a message for the next usable link (or notes that no more can come).
    fn enqueue(&mut self, message: Option<ClientMessage>) {
        let Some(message) = message else {
            self.outbox_open = false;
            return;
        };
        if self.queue.len() >= self.config.max_queue.max(1)
            && let Some(old) = self.queue.pop_front()
        {
            self.emit(ClientEventKind::QueueDropped {
                msg_type: old.type_name().to_owned(),
            });
        }
        let msg_type = message.type_name().to_owned();
        self.queue.push_back(message);
        self.emit(ClientEventKind::Queued {
            msg_type,
            queued: self.queue.len(),
        });
    }

    /// Sends `hello` and waits (bounded by the connect timeout) for the matching `welcome`.
    async fn hello(&mut self, stop: &CancellationToken, ws: &mut Ws) -> HelloOutcome {
        let id = self.next_id();
        let hello = ClientMessage::Hello(Hello {
            id: Some(id),
            client: self.config.hello_name.clone(),
            version: self.config.hello_version.clone(),
            token: self.config.token.clone(),
        });
        if let Err(e) = self.send(ws, &hello).await {
            return HelloOutcome::Failed(e);
        }
        let deadline = self.config.connect_timeout.map(|t| Instant::now() + t);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return HelloOutcome::Stopped,
                () = sleep_until(deadline) => {
                    let waited = self.config.connect_timeout.map_or(0, millis);
                    return HelloOutcome::Failed(format!("no welcome within {waited} ms"));
                }
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => match self.received(text.as_bytes()) {
                        Some(DeviceMessage::Welcome(w)) if w.id == Some(id) => {
                            self.emit(ClientEventKind::Ready {
                                device_id: w.device_id,
                                protocol_version: w.protocol_version,
                            });
                            return HelloOutcome::Ready;
                        }
                        Some(DeviceMessage::Error(e)) if e.id == Some(id) || e.id.is_none() => {
                            return HelloOutcome::Failed(format!(
                                "hello rejected: {}: {}",
                                e.code.as_str(),
                                e.message
                            ));
                        }
                        _ => {}
                    },
                    Some(Ok(Message::Binary(bytes))) => {
                        self.received(&bytes);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return HelloOutcome::Failed(format!(
                            "closed by the device before welcome: {}",
                            describe_close(frame.as_ref())
                        ));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return HelloOutcome::Failed(e.to_string()),
                    None => {
                        return HelloOutcome::Failed(
                            "connection closed before welcome".to_owned(),
                        );
                    }
                },
                m = self.outbox.recv(), if self.outbox_open => self.enqueue(m),
            }
        }
    }

    /// The usable link: flush the queue, then heartbeat, send and receive until it ends.
    async fn session(&mut self, stop: &CancellationToken, mut ws: Ws) -> SessionEnd {
        while let Some(message) = self.queue.pop_front() {
            if let Err(e) = self.send(&mut ws, &message).await {
                self.queue.push_front(message);
                return self.lost(ws, Closer::Network, None, e, false);
            }
        }
        let heartbeat = self.config.heartbeat;
        let mut ticks = heartbeat.map(|h| {
            let every = h.every.max(Duration::from_millis(1));
            let mut t = tokio::time::interval_at(Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        // Unanswered heartbeats, oldest first: (seq, sent at).
        let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
        loop {
            let dead_at = match (heartbeat, pending.front()) {
                (Some(h), Some((_, sent))) => Some(*sent + h.timeout),
                _ => None,
            };
            tokio::select! {
                biased;
                () = stop.cancelled() => {
                    self.leave(ws).await;
                    return SessionEnd::Stopped;
                }
                () = sleep_until(dead_at) => {
                    let (seq, sent) = pending.front().copied().unwrap_or((0, Instant::now()));
                    self.summary.dead_links += 1;
                    self.emit(ClientEventKind::DeadLink {
                        seq,
                        waited_ms: millis(sent.elapsed()),
                    });
                    return self.lost(ws, Closer::Client, None, "dead link".to_owned(), false);
                }
                _ = tick(&mut ticks) => {
                    let Some(h) = heartbeat else { continue };
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let sent = match h.kind {
                        HeartbeatKind::App => {
                            let ping = ClientMessage::Ping(Ping { id: None, seq });
                            self.send(&mut ws, &ping).await
                        }
                        HeartbeatKind::WebSocket => {
                            let frame = Message::Ping(seq.to_be_bytes().to_vec().into());
                            self.write(&mut ws, frame).await
                        }
                    };
                    if let Err(e) = sent {
                        return self.lost(ws, Closer::Network, None, e, false);
                    }
                    self.summary.heartbeats += 1;
                    pending.push_back((seq, Instant::now()));
                    self.emit(ClientEventKind::Heartbeat {
                        seq,
                        kind: match h.kind {
                            HeartbeatKind::App => "app",
                            HeartbeatKind::WebSocket => "websocket",
                        }
                        .to_owned(),
                    });
                }
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(DeviceMessage::Pong(p)) = self.received(text.as_bytes()) {
                            self.acked(&mut pending, p.seq);
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        if let Some(DeviceMessage::Pong(p)) = self.received(&bytes) {
                            self.acked(&mut pending, p.seq);
                        }
                    }
                    Some(Ok(Message::Pong(payload))) => {
                        if let Ok(bytes) = <[u8; 8]>::try_from(payload.as_ref()) {
                            self.acked(&mut pending, u64::from_be_bytes(bytes));
                        }
                    }
                    Some(Ok(Message::Ping(_))) => {
                        // tungstenite queued the pong; put it on the wire now.
                        let _ = tokio::time::timeout(self.config.send_timeout, ws.flush()).await;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| u16::from(f.code));
                        let reason = frame.as_ref().map(|f| f.reason.to_string()).unwrap_or_default();
                        // Reading on sends tungstenite's echo and waits for the end of the stream;
                        // a close frame came, so the device ended it cleanly.
                        self.finish_close(&mut ws).await;
                        return self.lost(ws, Closer::Device, code, reason, true);
                    }
                    Some(Ok(Message::Frame(_))) => {}
                    Some(Err(e)) => {
                        return self.lost(ws, Closer::Network, None, e.to_string(), false);
                    }
                    None => {
                        let reason = "connection closed without close frame".to_owned();
                        return self.lost(ws, Closer::Network, None, reason, false);
                    }
                },
                m = self.outbox.recv(), if self.outbox_open => match m {
                    None => self.outbox_open = false,
                    Some(message) => {
                        if let Err(e) = self.send(&mut ws, &message).await {
                            self.queue.push_front(message);
                            return self.lost(ws, Closer::Network, None, e, false);
                        }
                    }
                },
            }
        }
    }

    /// Records a heartbeat answer: every ping up to `seq` is answered.
    fn acked(&mut self, pending: &mut VecDeque<(u64, Instant)>, seq: u64) {
        while let Some(&(s, sent)) = pending.front() {
            if s > seq {
                break;
            }
            pending.pop_front();
            if s == seq {
                self.emit(ClientEventKind::HeartbeatAck {
                    seq,
                    rtt_ms: millis(sent.elapsed()),
                });
            }
        }
    }

    /// Records the end of a usable link and lets the socket go.
    fn lost(
        &mut self,
        ws: Ws,
        by: Closer,
        code: Option<u16>,
        reason: String,
        clean: bool,
    ) -> SessionEnd {
        drop(ws);
        self.emit(ClientEventKind::Closed {
            by,
            code,
            reason,
            clean,
        });
        SessionEnd::Lost
    }

    /// Leaves a usable link as the profile says: close 1000 and wait for the device's close,
    /// or (`impolite`) drop the TCP socket.
    async fn leave(&mut self, mut ws: Ws) {
        if !self.config.close_on_leave {
            drop(ws);
            self.emit(ClientEventKind::Closed {
                by: Closer::Client,
                code: None,
                reason: "dropped the connection without a close frame".to_owned(),
                clean: false,
            });
            return;
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        let sent = tokio::time::timeout(self.config.close_timeout, ws.close(Some(frame)))
            .await
            .is_ok_and(|r| r.is_ok());
        let clean = sent && self.finish_close(&mut ws).await;
        self.emit(ClientEventKind::Closed {
            by: Closer::Client,
            code: Some(1000),
            reason: "bye".to_owned(),
            clean,
        });
    }

    /// Ends a link that never became usable, without a `closed` event (the `failed` says why).
    async fn leave_quietly(&mut self, mut ws: Ws) {
        if self.config.close_on_leave {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            if tokio::time::timeout(self.config.close_timeout, ws.close(Some(frame)))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                self.finish_close(&mut ws).await;
            }
        }
    }

    /// Reads until the closing handshake is done (bounded); whether a close frame came back.
    async fn finish_close(&mut self, ws: &mut Ws) -> bool {
        let mut got_close = false;
        let read = async {
            for _ in 0..CLOSE_READ_FRAMES {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) => got_close = true,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        };
        let _ = tokio::time::timeout(self.config.close_timeout, read).await;
        got_close
    }

    /// Encodes and sends one protocol message.
    async fn send(&mut self, ws: &mut Ws, message: &ClientMessage) -> Result<(), String> {
        let bytes = encode_client(message);
        let len = bytes.len();
        let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
        self.write(ws, Message::text(text)).await?;
        self.summary.sent += 1;
        self.emit(ClientEventKind::Sent {
            msg_type: message.type_name().to_owned(),
            id: message.id(),
            bytes: len,
        });
        Ok(())
    }

    /// Writes one frame, bounded by the send timeout.
    async fn write(&mut self, ws: &mut Ws, frame: Message) -> Result<(), String> {
        match tokio::time::timeout(self.config.send_timeout, ws.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "send timed out after {} ms",
                millis(self.config.send_timeout)
            )),
        }
    }

    /// Records an incoming data message and decodes it (`None` when it is not a protocol message).
    fn received(&mut self, payload: &[u8]) -> Option<DeviceMessage> {
        self.summary.received += 1;
        let message = decode_device(payload).ok();
        self.emit(ClientEventKind::Received {
            msg_type: message.as_ref().map(|m| m.type_name().to_owned()),
            id: message.as_ref().and_then(DeviceMessage::id),
            bytes: payload.len(),
        });
        message
    }

    fn fail(&mut self, attempt: u32, phase: &str, error: String) {
        self.summary.failures += 1;
        self.emit(ClientEventKind::Failed {
            attempt,
            phase: phase.to_owned(),
            error,
        });
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn emit(&mut self, kind: ClientEventKind) {
        let event = ClientEvent {
            at_ms: millis(self.start.elapsed()),
            kind,
        };
        tracing::debug!(event = event.kind.name(), "client");
        (self.observer)(&event);
    }
}

/// TCP connect + WebSocket upgrade, bounded by the connect timeout when there is one.
async fn connect(config: &ClientConfig) -> Result<Ws, String> {
    let handshake = tokio_tungstenite::connect_async_with_config(config.url.as_str(), None, true);
    let result = match config.connect_timeout {
        Some(limit) => match tokio::time::timeout(limit, handshake).await {
            Ok(r) => r,
            Err(_) => return Err(format!("connect timed out after {} ms", millis(limit))),
        },
        None => handshake.await,
    };
    result.map(|(ws, _response)| ws).map_err(|e| e.to_string())
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The next heartbeat tick, or never without a heartbeat.
async fn tick(ticks: &mut Option<tokio::time::Interval>) -> Instant {
    match ticks {
        Some(t) => t.tick().await,
        None => std::future::pending().await,
    }
}

fn describe_close(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!("code {}", u16::from(f.code)),
        Some(f) => format!("code {} ({})", u16::from(f.code), f.reason),
        None => "no code".to_owned(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
