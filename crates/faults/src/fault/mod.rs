//! The fault vocabulary: every fault a scenario can name, grouped by the layer it hits.
//!
//! Written forms (YAML shown; JSON is the same data):
//!
//! - connect faults are bare strings: `fault: refuse`, `fault: stall`
//!   (`{ connect: refuse }` is accepted too);
//! - every other fault is a map with a **category key naming the kind** (`handshake`, `stream`,
//!   `ws`, `dns`, `device`) plus that kind's parameters; write the category first (then errors
//!   in the parameters carry their exact line and column): `{ handshake: reset, at: after_request }`,
//!   `{ stream: latency, latency: 250ms, jitter: 50ms }`, `{ ws: close, code: 1001 }`,
//!   `{ dns: nxdomain }`, `{ device: reboot, down: 5s }`.
//!
//! Unknown keys are errors. Stream faults reuse Toxiproxy's toxic and attribute names.
//!
//! One file per family: `connect`, `handshake`, `stream`, `ws`, `dns`, `device`; `parsing`
//! reads the written forms.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::{DurationSchema, human};

mod connect;
mod device;
mod dns;
mod handshake;
mod parsing;
mod stream;
mod ws;

pub use connect::ConnectFault;
pub use device::{
    ApDown, DeviceFault, Internet, InternetMode, Reboot, SocketExhaustion, UnknownInternetMode,
};
pub use dns::{DnsFault, WrongAddress};
pub use handshake::{CutPoint, HandshakeCut, HandshakeFault, HandshakeStatus};
pub use stream::{
    Bandwidth, Latency, LimitData, ResetPeer, Slicer, SlowClose, StreamDirection, StreamFault,
    TimeoutToxic,
};
pub use ws::{
    Corrupt, CorruptKind, MessageDirection, MessageParams, Oversize, SuppressPong, WsClose,
    WsDelay, WsFault,
};

/// One fault: what goes wrong. Where and when it goes wrong is the rule's [`When`](crate::When).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Fault {
    /// Something happens to a TCP connection attempt on a device port.
    Connect(ConnectFault),
    /// The HTTP → WebSocket upgrade goes wrong.
    Handshake(HandshakeFault),
    /// The byte stream of an accepted connection is impaired (Toxiproxy toxics).
    Stream(StreamFault),
    /// WebSocket messages or frames go wrong on an open session.
    Ws(WsFault),
    /// The captive DNS answers wrongly, late or not at all.
    Dns(DnsFault),
    /// The whole device changes state (internet, reboot, AP, sockets).
    Device(DeviceFault),
}

impl Fault {
    /// The category key as written in scenario files (`connect`, `handshake`, …).
    pub fn category(&self) -> &'static str {
        match self {
            Fault::Connect(_) => "connect",
            Fault::Handshake(_) => "handshake",
            Fault::Stream(_) => "stream",
            Fault::Ws(_) => "ws",
            Fault::Dns(_) => "dns",
            Fault::Device(_) => "device",
        }
    }
}

/// A single `delay` parameter (`{ handshake: delay, delay: 2s }`, `{ ws: delay, … }`, `{ dns: delay, … }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayParams {
    /// How long to wait, e.g. "2s".
    #[serde(with = "human")]
    #[schemars(with = "DurationSchema")]
    pub delay: Duration,
}

fn positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v == 0 {
        Err(de::Error::custom("must be at least 1"))
    } else {
        Ok(v)
    }
}

fn positive_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = usize::deserialize(d)?;
    if v == 0 {
        Err(de::Error::custom("must be at least 1"))
    } else {
        Ok(v)
    }
}

impl fmt::Display for Fault {
    /// The fault's category and kind, e.g. `handshake: reset`, or `refuse`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Connect(c) => f.write_str(match c {
                ConnectFault::Refuse => "refuse",
                ConnectFault::ResetOnAccept => "reset_on_accept",
                ConnectFault::CloseOnAccept => "close_on_accept",
                ConnectFault::Stall => "stall",
            }),
            Fault::Handshake(h) => write!(
                f,
                "handshake: {}",
                match h {
                    HandshakeFault::Reset(_) => "reset",
                    HandshakeFault::Close(_) => "close",
                    HandshakeFault::Status(_) => "status",
                    HandshakeFault::BadAccept => "bad_accept",
                    HandshakeFault::MissingUpgradeHeader => "missing_upgrade_header",
                    HandshakeFault::Delay(_) => "delay",
                    HandshakeFault::SilentClose => "silent_close",
                }
            ),
            Fault::Stream(s) => write!(f, "stream: {}", s.name()),
            Fault::Ws(w) => write!(f, "ws: {}", w.name()),
            Fault::Dns(d) => write!(
                f,
                "dns: {}",
                match d {
                    DnsFault::Nxdomain => "nxdomain",
                    DnsFault::Servfail => "servfail",
                    DnsFault::Refused => "refused",
                    DnsFault::NoReply => "no_reply",
                    DnsFault::WrongAddress(_) => "wrong_address",
                    DnsFault::Delay(_) => "delay",
                }
            ),
            Fault::Device(d) => write!(
                f,
                "device: {}",
                match d {
                    DeviceFault::Internet(_) => "internet",
                    DeviceFault::Reboot(_) => "reboot",
                    DeviceFault::ApDown(_) => "ap_down",
                    DeviceFault::SocketExhaustion(_) => "socket_exhaustion",
                }
            ),
        }
    }
}
