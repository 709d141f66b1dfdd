//! Layers `protocol` and `round_trip` on the upgraded socket: `hello` → `welcome`, then app
//! pings (RTT percentiles) and a WebSocket ping frame (ESP-IDF answers those itself). For a
//! device with its own protocol, the user's exchange ([`CustomHello`]) takes the place of both.

use std::time::Duration;

use espsim_protocol::client::{Hello, Ping};
use espsim_protocol::{ClientMessage, DeviceMessage, ErrorCode, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::net::BoxIo;
use super::{CustomHello, Details, LayerResult, LayerVerdict};

/// Messages skipped while waiting for a reply (telemetry, events); bounds every wait.
const MAX_SKIPPED: usize = 256;
/// Payload of the WebSocket ping frame.
const PING_PAYLOAD: &[u8] = b"espsim-probe";

/// Layer `protocol` facts.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolDetails {
    /// From `welcome`.
    pub device_id: Option<String>,
    /// From `welcome`.
    pub firmware_version: Option<String>,
    /// From `welcome`.
    pub protocol_version: Option<u32>,
    /// The version this probe speaks.
    pub expected_protocol_version: u32,
    /// From `welcome`, snake_case.
    pub capabilities: Vec<String>,
    /// `error` reply code, if the device refused.
    pub error_code: Option<String>,
    /// `error` reply message.
    pub error_message: Option<String>,
    /// Close code, if the device closed.
    pub close_code: Option<u16>,
    /// With `--hello`: the answer that matched (its first 200 characters).
    pub reply: Option<String>,
}

impl ProtocolDetails {
    /// Nothing learnt yet: every fact empty, the version this probe speaks.
    fn unanswered() -> Self {
        ProtocolDetails {
            device_id: None,
            firmware_version: None,
            protocol_version: None,
            expected_protocol_version: PROTOCOL_VERSION,
            capabilities: Vec::new(),
            error_code: None,
            error_message: None,
            close_code: None,
            reply: None,
        }
    }
}

/// Longest reply kept in [`ProtocolDetails::reply`], in characters.
const REPLY_PREVIEW: usize = 200;

/// Layer `round_trip` facts. RTTs in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTripDetails {
    /// App pings sent.
    pub samples: u32,
    /// Matching pongs received.
    pub received: u32,
    /// Every RTT, in order.
    pub rtt_ms: Vec<f64>,
    /// Median (nearest rank).
    pub p50_ms: Option<f64>,
    /// 99th percentile (nearest rank).
    pub p99_ms: Option<f64>,
    /// WebSocket ping frame → pong frame, when it came back.
    pub ws_pong_ms: Option<f64>,
}

/// What waiting for a message produced.
enum Next {
    Text(String),
    Closed(Option<u16>, String),
    Error(String),
    TimedOut,
}

async fn next_text(ws: &mut WebSocketStream<BoxIo>, deadline: Instant) -> Next {
    for _ in 0..MAX_SKIPPED {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Next::TimedOut,
            Ok(None) => return Next::Closed(None, "connection ended".to_owned()),
            Ok(Some(Err(e))) => return Next::Error(e.to_string()),
            Ok(Some(Ok(Message::Text(t)))) => return Next::Text(t.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Next::Closed(
                    frame.as_ref().map(|f| u16::from(f.code)),
                    frame
                        .map(|f| f.reason.as_str().to_owned())
                        .unwrap_or_default(),
                );
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
    Next::Error(format!("no reply among {MAX_SKIPPED} messages"))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// Layer `protocol`: `hello` → `welcome`.
pub(crate) async fn hello(
    ws: &mut WebSocketStream<BoxIo>,
    token: Option<&str>,
    timeout: Duration,
) -> LayerResult {
    let mut d = ProtocolDetails::unanswered();
    let message = ClientMessage::Hello(Hello {
        id: Some(1),
        client: "espsim-probe".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        token: token.map(str::to_owned),
    });
    let text = String::from_utf8_lossy(&espsim_protocol::encode_client(&message)).into_owned();
    let deadline = Instant::now() + timeout;
    if let Err(e) = ws.send(Message::text(text)).await {
        return LayerResult::new(LayerVerdict::Fail, format!("sending hello failed: {e}"))
            .details(Details::Protocol(d));
    }
    loop {
        let text = match next_text(ws, deadline).await {
            Next::Text(t) => t,
            Next::Closed(code, reason) => {
                d.close_code = code;
                let hint = match code {
                    Some(1008) => {
                        "closed for policy (1008): the device wants a token: pass --token"
                    }
                    _ => "the device closed the connection instead of answering hello",
                };
                return LayerResult::new(
                    LayerVerdict::Fail,
                    format!(
                        "closed before welcome (code {}{})",
                        code.map_or("none".to_owned(), |c| c.to_string()),
                        if reason.is_empty() {
                            String::new()
                        } else {
                            format!(", {reason}")
                        }
                    ),
                )
                .hint(hint)
                .details(Details::Protocol(d));
            }
            Next::Error(e) => {
                return LayerResult::new(LayerVerdict::Fail, format!("connection failed: {e}"))
                    .details(Details::Protocol(d));
            }
            Next::TimedOut => {
                return LayerResult::new(LayerVerdict::Fail, format!("no welcome within {timeout:?}"))
                    .hint("the device accepted the WebSocket but does not speak the espsim protocol (hello → welcome)")
                    .details(Details::Protocol(d));
            }
        };
        let reply = match espsim_protocol::decode_device(text.as_bytes()) {
            Ok(m) => m,
            Err(e) => {
                return LayerResult::new(
                    LayerVerdict::Fail,
                    format!("unreadable reply to hello: {e}"),
                )
                .hint("the device speaks another protocol (or another version of this one)")
                .details(Details::Protocol(d));
            }
        };
        match reply {
            DeviceMessage::Welcome(w) => {
                let same = w.protocol_version == PROTOCOL_VERSION;
                let summary = format!(
                    "welcome from {}: firmware {}, protocol {}",
                    w.device_id, w.firmware_version, w.protocol_version
                );
                d.device_id = Some(w.device_id);
                d.firmware_version = Some(w.firmware_version);
                d.protocol_version = Some(w.protocol_version);
                d.capabilities = w
                    .capabilities
                    .iter()
                    .filter_map(|c| serde_json::to_value(c).ok())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let out = if same {
                    LayerResult::new(LayerVerdict::Pass, summary)
                } else {
                    LayerResult::new(LayerVerdict::Warn, summary).hint(format!(
                        "this probe speaks protocol {PROTOCOL_VERSION}; messages may not match"
                    ))
                };
                return out.details(Details::Protocol(d));
            }
            DeviceMessage::Error(e) => {
                let hint = if e.code == ErrorCode::Unauthorized {
                    "the device requires a token: pass --token (sent in hello)"
                } else {
                    "the device refused hello"
                };
                let summary = format!("error {}: {}", e.code.as_str(), e.message);
                d.error_code = Some(e.code.as_str().to_owned());
                d.error_message = Some(e.message);
                return LayerResult::new(LayerVerdict::Fail, summary)
                    .hint(hint)
                    .details(Details::Protocol(d));
            }
            // Unsolicited telemetry/events before the welcome: keep waiting (bounded by deadline).
            _ => continue,
        }
    }
}

/// Layer `protocol` for a device's own protocol: send the user's message, wait for the answer
/// the user described.
pub(crate) async fn custom_hello(
    ws: &mut WebSocketStream<BoxIo>,
    hello: &CustomHello,
    timeout: Duration,
) -> LayerResult {
    let mut d = ProtocolDetails::unanswered();
    let wanted = describe_expect(hello);
    match exchange(ws, hello, timeout).await {
        Ok(reply) => {
            let preview: String = reply.chars().take(REPLY_PREVIEW).collect();
            let summary = format!("{wanted}: {}", one_line(&preview, 80));
            d.reply = Some(preview);
            LayerResult::new(LayerVerdict::Pass, summary).details(Details::Protocol(d))
        }
        Err(Next::Closed(code, reason)) => {
            d.close_code = code;
            LayerResult::new(
                LayerVerdict::Fail,
                format!(
                    "closed before the answer (code {}{})",
                    code.map_or("none".to_owned(), |c| c.to_string()),
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(", {reason}")
                    }
                ),
            )
            .hint("the device closed the connection instead of answering your --hello")
            .details(Details::Protocol(d))
        }
        Err(Next::Error(e)) => {
            LayerResult::new(LayerVerdict::Fail, format!("connection failed: {e}"))
                .details(Details::Protocol(d))
        }
        Err(Next::TimedOut | Next::Text(_)) => LayerResult::new(
            LayerVerdict::Fail,
            format!("no answer within {timeout:?} ({wanted})"),
        )
        .hint("check --hello (sent as is) and --expect (a regex searched in each text reply)")
        .details(Details::Protocol(d)),
    }
}

/// "reply matched /RE/" or "a reply".
fn describe_expect(hello: &CustomHello) -> String {
    match &hello.expect {
        Some(re) => format!("reply matched /{re}/"),
        None => "a reply".to_owned(),
    }
}

/// `text` on one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

/// Sends the user's message and waits for the first text reply it expects (skipping others,
/// at most [`MAX_SKIPPED`]); the reply, or why there was none.
async fn exchange(
    ws: &mut WebSocketStream<BoxIo>,
    hello: &CustomHello,
    timeout: Duration,
) -> Result<String, Next> {
    let deadline = Instant::now() + timeout;
    if let Err(e) = ws.send(Message::text(hello.send.clone())).await {
        return Err(Next::Error(format!("sending the hello failed: {e}")));
    }
    for _ in 0..MAX_SKIPPED {
        match next_text(ws, deadline).await {
            Next::Text(t) if hello.expect.as_ref().is_none_or(|re| re.is_match(&t)) => {
                return Ok(t);
            }
            Next::Text(_) => continue,
            other => return Err(other),
        }
    }
    Err(Next::TimedOut)
}

/// What the `round_trip` layer exchanges: espsim's app ping → pong, or the user's hello.
pub(crate) enum Exchange<'a> {
    /// `{"type":"ping","seq":N}` → the `pong` with that `seq`.
    Ping,
    /// The user's message → the answer it expects.
    Custom(&'a CustomHello),
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Layer `round_trip`: `samples` app pings one after another, then one WebSocket ping frame.
pub(crate) async fn round_trip(
    ws: &mut WebSocketStream<BoxIo>,
    exchange_kind: &Exchange<'_>,
    samples: u32,
    timeout: Duration,
) -> LayerResult {
    let mut rtts = Vec::new();
    let mut failure = None;
    'pings: for seq in 1..=u64::from(samples) {
        if let Exchange::Custom(hello) = exchange_kind {
            let sent = Instant::now();
            match exchange(ws, hello, timeout).await {
                Ok(_) => {
                    rtts.push(ms(sent.elapsed()));
                    continue;
                }
                Err(why) => {
                    failure = Some(match why {
                        Next::Closed(code, _) => format!(
                            "closed during exchange {seq} (code {})",
                            code.map_or("none".to_owned(), |c| c.to_string())
                        ),
                        Next::Error(e) => format!("exchange {seq}: {e}"),
                        Next::TimedOut | Next::Text(_) => {
                            format!("no answer {seq} within {timeout:?}")
                        }
                    });
                    break;
                }
            }
        }
        let ping = ClientMessage::Ping(Ping {
            id: Some(100 + seq),
            seq,
        });
        let text = String::from_utf8_lossy(&espsim_protocol::encode_client(&ping)).into_owned();
        let sent = Instant::now();
        let deadline = sent + timeout;
        if let Err(e) = ws.send(Message::text(text)).await {
            failure = Some(format!("sending ping {seq} failed: {e}"));
            break;
        }
        loop {
            match next_text(ws, deadline).await {
                Next::Text(t) => match espsim_protocol::decode_device(t.as_bytes()) {
                    Ok(DeviceMessage::Pong(p)) if p.seq == seq => {
                        rtts.push(ms(sent.elapsed()));
                        break;
                    }
                    Ok(DeviceMessage::Error(e)) if e.id == Some(100 + seq) => {
                        failure = Some(format!(
                            "ping {seq}: error {}: {}",
                            e.code.as_str(),
                            e.message
                        ));
                        break 'pings;
                    }
                    _ => continue,
                },
                Next::Closed(code, _) => {
                    failure = Some(format!(
                        "closed during ping {seq} (code {})",
                        code.map_or("none".to_owned(), |c| c.to_string())
                    ));
                    break 'pings;
                }
                Next::Error(e) => {
                    failure = Some(format!("ping {seq}: {e}"));
                    break 'pings;
                }
                Next::TimedOut => {
                    failure = Some(format!("no pong {seq} within {timeout:?}"));
                    break 'pings;
                }
            }
        }
    }

    // WebSocket-level ping frame.
    let mut ws_pong = None;
    if failure.is_none()
        && ws
            .send(Message::Ping(PING_PAYLOAD.to_vec().into()))
            .await
            .is_ok()
    {
        let sent = Instant::now();
        let deadline = sent + timeout;
        for _ in 0..MAX_SKIPPED {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Pong(p)))) if p.as_ref() == PING_PAYLOAD => {
                    ws_pong = Some(ms(sent.elapsed()));
                    break;
                }
                Ok(Some(Ok(Message::Close(_)) | Err(_))) | Ok(None) | Err(_) => break,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    let mut sorted = rtts.clone();
    sorted.sort_by(f64::total_cmp);
    let d = RoundTripDetails {
        samples,
        received: u32::try_from(rtts.len()).unwrap_or(u32::MAX),
        p50_ms: percentile(&sorted, 50.0),
        p99_ms: percentile(&sorted, 99.0),
        rtt_ms: rtts,
        ws_pong_ms: ws_pong,
    };
    if let Some(f) = failure {
        return LayerResult::new(LayerVerdict::Fail, f)
            .hint("the device stopped answering mid-session: watchdog reset, a blocked task, or the Wi-Fi link dropped")
            .details(Details::RoundTrip(d));
    }
    let (p50, p99) = (d.p50_ms.unwrap_or(0.0), d.p99_ms.unwrap_or(0.0));
    let what = match exchange_kind {
        Exchange::Ping => "pings",
        Exchange::Custom(_) => "exchanges",
    };
    let mut summary = format!("{samples} {what}: p50 {p50:.2} ms, p99 {p99:.2} ms");
    let mut verdict = LayerVerdict::Pass;
    let mut hint = None;
    match ws_pong {
        Some(t) => summary.push_str(&format!("; ws ping → pong {t:.2} ms")),
        None => {
            summary.push_str("; no pong to a WebSocket ping");
            verdict = LayerVerdict::Warn;
            hint = Some(
                "ESP-IDF answers PING frames itself unless the handler sets handle_control_frames; \
                 clients using pingInterval (Dart) or ping_interval (Python) will drop the connection"
                    .to_owned(),
            );
        }
    }
    if p99 > 1000.0 {
        verdict = LayerVerdict::Warn;
        hint.get_or_insert_with(|| {
            "slow round trips: a busy device task or a weak Wi-Fi link; app timeouts under 1 s will fire"
                .to_owned()
        });
    }
    LayerResult::new(verdict, summary)
        .maybe_hint(hint)
        .details(Details::RoundTrip(d))
}

/// Closes politely (1000) and drains until the device's close or a short deadline.
pub(crate) async fn close(ws: &mut WebSocketStream<BoxIo>, timeout: Duration) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "probe done".into(),
    };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let deadline = Instant::now() + timeout.min(Duration::from_secs(1));
    for _ in 0..MAX_SKIPPED {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(_))) => continue,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&s, 50.0), Some(5.0));
        assert_eq!(percentile(&s, 99.0), Some(10.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
