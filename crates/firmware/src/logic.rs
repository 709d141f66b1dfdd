//! The device boundary: what any device logic hosted by espsim (or by a chip's glue) looks like.
//!
//! [`DeviceLogic`] is the sans-IO shape of [`Device`](crate::Device) opened up: the host feeds it
//! sessions, WebSocket messages (text or binary), HTTP requests and clock ticks with an explicit
//! `now_ms`, and carries out the [`Effect`]s it returns. It never sleeps, spawns or touches a
//! socket, so it runs unchanged in the emulator (behind ESP-IDF's httpd emulation, socket limits,
//! events and the fault layer) and on the chip. The built-in firmware implements it
//! ([`Device`](crate::Device)); a device file and a user's own `no_std` crate implement it too.
//!
//! Times are milliseconds since the host started; the logic keeps its own boot time if it needs
//! uptime (see [`DeviceLogic::power_on`]).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::ConnId;

/// One WebSocket message from the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text message (valid UTF-8, as the WebSocket layer checked).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// The bytes of one WebSocket message the device sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Payload {
    /// Size in bytes on the wire (before framing).
    pub fn len(&self) -> usize {
        match self {
            Payload::Text(t) => t.len(),
            Payload::Binary(b) => b.len(),
        }
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message as a borrowed [`Frame`].
    pub fn frame(&self) -> Frame<'_> {
        match self {
            Payload::Text(t) => Frame::Text(t),
            Payload::Binary(b) => Frame::Binary(b),
        }
    }
}

/// Who an [`Effect::Send`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// One session.
    Session(ConnId),
    /// Every open session.
    All,
    /// Every open session except this one (the sender of a message, usually).
    Others(ConnId),
}

/// Something the host must do on the device's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send one WebSocket message.
    Send {
        /// Who gets it.
        to: To,
        /// The message.
        payload: Payload,
        /// What it is, for the event log and the fault layer's `message_type` trigger (the
        /// built-in protocol's `type`; a device file's rule or message name).
        label: String,
    },
    /// Close a session with a close frame. The logic has already forgotten it.
    Close {
        /// The session.
        session: ConnId,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The softAP goes away for `duration_ms` (provisioning: the radio joins the home network);
    /// every session drops. The logic has already forgotten them; the host ticks it when the AP
    /// is back.
    ApDown {
        /// How long the AP is unreachable.
        duration_ms: u64,
    },
    /// Reboot after `delay_ms`: the host drops every session and calls
    /// [`DeviceLogic::power_on`].
    Restart {
        /// Delay before the restart, so a reply reaches the app first.
        delay_ms: u64,
    },
}

/// A session being opened: the upgrade request the app sent.
#[derive(Debug, Clone, Copy)]
pub struct SessionStart<'a> {
    /// The request path (without the query).
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The request headers as received (names as the app wrote them).
    pub headers: &'a [(String, String)],
    /// The handshake carried the device's token (the host checked it).
    pub authorized: bool,
}

/// An HTTP request to the device, head and (bounded) body.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// Method, e.g. `GET`.
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The request headers as received.
    pub headers: &'a [(String, String)],
    /// The body (the host bounds its size).
    pub body: &'a [u8],
}

/// The device's answer to an HTTP request; the host frames it as ESP-IDF's httpd does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers (`Content-Type` among them, if the logic sets one).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// What answered, for the event log (a route's name).
    pub label: String,
}

/// Application logic a host can run as the device behind its WebSocket and HTTP ports.
///
/// Every method takes the host's clock (`now_ms`) and returns what to do; none blocks. The host
/// calls [`DeviceLogic::on_tick`] at [`DeviceLogic::next_deadline`] (and may call it early).
pub trait DeviceLogic {
    /// A WebSocket session opened. Messages sent on connect go here.
    fn on_connect(&mut self, session: ConnId, start: &SessionStart<'_>, now_ms: u64)
    -> Vec<Effect>;

    /// What the device calls `frame`, received on `session`, before it handles it: the built-in
    /// protocol's `type`, a device file's matching rule (rules may be limited to an endpoint,
    /// hence the session). The host records it in the `ws_message` event, matches the fault
    /// layer's `message_type` triggers against it, and the harness's expectations read it from
    /// the event. `None` (the default): the message has no name. Must not change state.
    fn label(&self, session: ConnId, frame: Frame<'_>) -> Option<String> {
        let _ = (session, frame);
        None
    }

    /// A message from `session`.
    fn on_message(&mut self, session: ConnId, frame: Frame<'_>, now_ms: u64) -> Vec<Effect>;

    /// A message over the host's size limit arrived and was not handed over; the default says
    /// nothing (the built-in protocol answers with its `too_large` error).
    fn on_oversized(
        &mut self,
        session: ConnId,
        size: usize,
        max: usize,
        now_ms: u64,
    ) -> Vec<Effect> {
        let _ = (session, size, max, now_ms);
        Vec::new()
    }

    /// The session ended (either side, or the host dropped it). Unknown sessions are ignored.
    fn on_disconnect(&mut self, session: ConnId, now_ms: u64) -> Vec<Effect>;

    /// Timers: periodic messages, delayed replies.
    fn on_tick(&mut self, now_ms: u64) -> Vec<Effect>;

    /// The earliest time [`DeviceLogic::on_tick`] has work; `None` when idle.
    fn next_deadline(&self) -> Option<u64>;

    /// Whether [`DeviceLogic::on_http`] may answer anything. When `false` (the default) the host
    /// never reads a request body for the logic and keeps its own behaviour for every request.
    fn serves_http(&self) -> bool {
        false
    }

    /// An HTTP request the host's own table does not answer (anything but the WebSocket path,
    /// and, online, the connectivity checks). `None` keeps the host's behaviour (the portal
    /// page, the captive redirect, ESP-IDF's 404).
    fn on_http(&mut self, request: &HttpRequest<'_>, now_ms: u64) -> Option<HttpResponse> {
        let _ = (request, now_ms);
        None
    }

    /// The board's button was pressed.
    fn on_button(&mut self, now_ms: u64) -> Vec<Effect> {
        let _ = now_ms;
        Vec::new()
    }

    /// Problems inside the logic since the last call that the app cannot see (a template that
    /// failed to render, so a message was not sent; a full timer queue). The host records each
    /// (`device_action` `logic_error`) after every call into the logic. Default: none.
    fn take_problems(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// The device's state variables, each value as JSON text (`name → value`), for the host's
    /// control API; `None` (the default) when the logic exposes none.
    fn state(&self) -> Option<BTreeMap<String, String>> {
        None
    }

    /// Sets state variable `name` to `json` (JSON text), as the host's control API asks; returns
    /// what the change makes the device do (usually nothing). The default refuses: the logic
    /// exposes no state.
    fn set_state(&mut self, name: &str, json: &str, now_ms: u64) -> Result<Vec<Effect>, String> {
        let _ = (name, json, now_ms);
        Err("this device exposes no state variables".into())
    }

    /// The chip comes out of reset at `now_ms`: RAM state (sessions, timers, outputs) is gone,
    /// what the logic keeps in flash survives.
    fn power_on(&mut self, now_ms: u64);
}
