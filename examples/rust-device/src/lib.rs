//! A device with a protocol unlike espsim's: plain-text commands, one per WebSocket message,
//! as many small ESP32 sketches speak. The logic is `no_std` and sans-IO: it implements
//! [`espsim_firmware::DeviceLogic`], so the same code runs on the chip (under its httpd glue)
//! and inside espsim, behind the emulated softAP, ESP-IDF limits and the fault injector.
//!
//! | app sends | device answers |
//! |---|---|
//! | (on connect) | `READY lamp` |
//! | `PING` | `PONG` |
//! | `LED ON` / `LED OFF` | `OK LED ON` to the sender, `EVT LED ON` to every other session |
//! | `COUNT` | `COUNT <n>`: commands handled since boot |
//! | `STREAM <ms>` (100–60000) | `OK`, then `TICK <seq>` every `<ms>` to this session |
//! | `STOP` | `OK`; the stream ends |
//! | `BYE` | close `1000 bye` |
//! | a binary message | the same bytes back, reversed |
//! | anything else | `ERR unknown command` |
//!
//! `GET /led` over HTTP answers `on` or `off`; the LED is in RAM and a reboot turns it off.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use espsim_firmware::{
    ConnId, DeviceLogic, Effect, Frame, HttpRequest, HttpResponse, Payload, SessionStart, To,
};

/// Shortest and longest stream interval a `STREAM` command accepts, in ms.
pub const STREAM_RANGE_MS: (u64, u64) = (100, 60_000);

/// The lamp: an LED, a command counter and per-session tick streams.
#[derive(Debug, Default)]
pub struct Lamp {
    led: bool,
    commands: u64,
    streams: BTreeMap<ConnId, Stream>,
}

/// One session's `TICK` stream.
#[derive(Debug, Clone, Copy)]
struct Stream {
    every_ms: u64,
    next_at: u64,
    seq: u64,
}

impl Lamp {
    /// A lamp just powered on: LED off, nothing counted.
    pub fn new() -> Self {
        Lamp::default()
    }

    fn command(&mut self, session: ConnId, text: &str, now_ms: u64) -> Vec<Effect> {
        self.commands += 1;
        let reply = |text: String| send(To::Session(session), text);
        match text.trim() {
            "PING" => vec![reply("PONG".into())],
            "LED ON" | "LED OFF" => {
                self.led = text.trim() == "LED ON";
                let state = if self.led { "ON" } else { "OFF" };
                vec![
                    reply(format!("OK LED {state}")),
                    send(To::Others(session), format!("EVT LED {state}")),
                ]
            }
            "COUNT" => vec![reply(format!("COUNT {}", self.commands))],
            "STOP" => {
                self.streams.remove(&session);
                vec![reply("OK".into())]
            }
            "BYE" => {
                self.streams.remove(&session);
                vec![Effect::Close {
                    session,
                    code: 1000,
                    reason: "bye".into(),
                }]
            }
            other => match other.strip_prefix("STREAM ").map(str::parse::<u64>) {
                Some(Ok(ms)) if (STREAM_RANGE_MS.0..=STREAM_RANGE_MS.1).contains(&ms) => {
                    let stream = Stream {
                        every_ms: ms,
                        next_at: now_ms.saturating_add(ms),
                        seq: 0,
                    };
                    self.streams.insert(session, stream);
                    vec![reply("OK".into())]
                }
                Some(_) => vec![reply("ERR interval out of range".into())],
                None => vec![reply("ERR unknown command".into())],
            },
        }
    }
}

impl DeviceLogic for Lamp {
    fn on_connect(
        &mut self,
        session: ConnId,
        _start: &SessionStart<'_>,
        _now_ms: u64,
    ) -> Vec<Effect> {
        vec![send(To::Session(session), "READY lamp".into())]
    }

    fn on_message(&mut self, session: ConnId, frame: Frame<'_>, now_ms: u64) -> Vec<Effect> {
        match frame {
            Frame::Text(text) => self.command(session, text, now_ms),
            Frame::Binary(bytes) => {
                let reversed: Vec<u8> = bytes.iter().rev().copied().collect();
                vec![Effect::Send {
                    to: To::Session(session),
                    payload: Payload::Binary(reversed),
                    label: "echo".into(),
                }]
            }
        }
    }

    fn on_disconnect(&mut self, session: ConnId, _now_ms: u64) -> Vec<Effect> {
        self.streams.remove(&session);
        Vec::new()
    }

    fn on_tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (session, stream) in &mut self.streams {
            if stream.next_at <= now_ms {
                stream.seq += 1;
                stream.next_at = now_ms.saturating_add(stream.every_ms);
                effects.push(send(To::Session(*session), format!("TICK {}", stream.seq)));
            }
        }
        effects
    }

    fn next_deadline(&self) -> Option<u64> {
        self.streams.values().map(|s| s.next_at).min()
    }

    fn serves_http(&self) -> bool {
        true
    }

    fn on_http(&mut self, request: &HttpRequest<'_>, _now_ms: u64) -> Option<HttpResponse> {
        if (request.method, request.path) != ("GET", "/led") {
            return None;
        }
        let body = if self.led { "on" } else { "off" };
        Some(HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
            label: "GET /led".into(),
        })
    }

    fn power_on(&mut self, _now_ms: u64) {
        *self = Lamp::new();
    }
}

/// A text message labelled with its first word (what the event log and faults see).
fn send(to: To, text: String) -> Effect {
    let label = text
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Effect::Send {
        to,
        payload: Payload::Text(text),
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(effects: &[Effect]) -> Vec<(To, &str)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send {
                    to,
                    payload: Payload::Text(t),
                    ..
                } => Some((*to, t.as_str())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_stream_ticks_at_its_interval_and_stops() {
        let mut lamp = Lamp::new();
        assert_eq!(
            texts(&lamp.on_message(1, Frame::Text("STREAM 500"), 1_000)),
            [(To::Session(1), "OK")]
        );
        assert_eq!(lamp.next_deadline(), Some(1_500));
        assert!(lamp.on_tick(1_499).is_empty());
        assert_eq!(texts(&lamp.on_tick(1_500)), [(To::Session(1), "TICK 1")]);
        assert_eq!(texts(&lamp.on_tick(2_000)), [(To::Session(1), "TICK 2")]);
        lamp.on_message(1, Frame::Text("STOP"), 2_100);
        assert_eq!(lamp.next_deadline(), None);
    }

    #[test]
    fn out_of_range_streams_and_unknown_commands_are_refused() {
        let mut lamp = Lamp::new();
        assert_eq!(
            texts(&lamp.on_message(1, Frame::Text("STREAM 5"), 0)),
            [(To::Session(1), "ERR interval out of range")]
        );
        assert_eq!(
            texts(&lamp.on_message(1, Frame::Text("STREAM x"), 0)),
            [(To::Session(1), "ERR interval out of range")]
        );
        assert_eq!(
            texts(&lamp.on_message(1, Frame::Text("{\"cmd\":1}"), 0)),
            [(To::Session(1), "ERR unknown command")]
        );
    }

    #[test]
    fn power_on_forgets_the_led_and_the_count() {
        let mut lamp = Lamp::new();
        lamp.on_message(1, Frame::Text("LED ON"), 0);
        lamp.power_on(10);
        assert_eq!(
            texts(&lamp.on_message(2, Frame::Text("COUNT"), 20)),
            [(To::Session(2), "COUNT 1")]
        );
        assert!(!lamp.led);
    }
}
