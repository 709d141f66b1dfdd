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

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::{DurationSchema, human};
use crate::when::Pattern;

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

/// Connect-level faults, decided when a TCP connection arrives on a device port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectFault {
    /// The listening socket is closed while the rule is active, so the kernel answers the SYN
    /// with RST and the app gets "connection refused" (ECONNREFUSED). Time-scoped only
    /// (`at`/`for`/`after`): a refused attempt never reaches the device, so it cannot be counted.
    Refuse,
    /// Accept, then close with SO_LINGER 0: the app gets "connection reset by peer" before any byte.
    ResetOnAccept,
    /// Accept, then send FIN before any byte: the app sees the connection closed (EOF).
    CloseOnAccept,
    /// Accept and never read or write; the connection is held until the rule's window ends or the
    /// emulator shuts down. The app only notices through its own connect/handshake timeout.
    Stall,
}

/// Handshake faults, decided when an HTTP upgrade request to the WebSocket path has been read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "handshake", rename_all = "snake_case")]
pub enum HandshakeFault {
    /// Abort the connection with RST (SO_LINGER 0) at the given point.
    Reset(HandshakeCut),
    /// Close the connection with FIN at the given point.
    Close(HandshakeCut),
    /// Answer with this HTTP status instead of `101 Switching Protocols`.
    Status(HandshakeStatus),
    /// Answer `101` with a wrong `Sec-WebSocket-Accept` value.
    BadAccept,
    /// Answer `101` without the `Upgrade: websocket` header.
    MissingUpgradeHeader,
    /// Wait this long before answering the upgrade.
    Delay(DelayParams),
    /// Close without any response, as ESP-IDF does on a bad `Sec-WebSocket-Version` or key.
    SilentClose,
}

/// Where a handshake is cut. Written flat: `at: after_request` or `at: mid_response, bytes: 20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "HandshakeCutRepr", into = "HandshakeCutRepr")]
#[schemars(with = "HandshakeCutRepr")]
pub struct HandshakeCut {
    /// The point of the cut.
    pub at: CutPoint,
}

/// The point in the upgrade exchange where the connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// After the request was read, before any response byte.
    AfterRequest,
    /// After the first `bytes` bytes of the `101` response were written.
    MidResponse {
        /// How many bytes of the response the app receives before the cut.
        bytes: usize,
    },
}

/// Written form of a [`HandshakeCut`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HandshakeCutRepr {
    /// `after_request` (nothing of the response is sent) or `mid_response` (`bytes` of it are).
    at: CutPointName,
    /// With `at: mid_response`: how many bytes of the `101` response are written before the cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<usize>,
}

/// Name of a [`CutPoint`] as written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum CutPointName {
    /// After the request, before any response byte.
    AfterRequest,
    /// Part-way through the `101` response.
    MidResponse,
}

impl TryFrom<HandshakeCutRepr> for HandshakeCut {
    type Error = String;

    fn try_from(r: HandshakeCutRepr) -> Result<Self, String> {
        let at = match (r.at, r.bytes) {
            (CutPointName::AfterRequest, None) => CutPoint::AfterRequest,
            (CutPointName::AfterRequest, Some(_)) => {
                return Err("`bytes` only applies to `at: mid_response`".into());
            }
            (CutPointName::MidResponse, Some(bytes)) => CutPoint::MidResponse { bytes },
            (CutPointName::MidResponse, None) => {
                return Err(
                    "`at: mid_response` needs `bytes` (how much of the 101 response is sent)"
                        .into(),
                );
            }
        };
        Ok(HandshakeCut { at })
    }
}

impl From<HandshakeCut> for HandshakeCutRepr {
    fn from(c: HandshakeCut) -> Self {
        match c.at {
            CutPoint::AfterRequest => HandshakeCutRepr {
                at: CutPointName::AfterRequest,
                bytes: None,
            },
            CutPoint::MidResponse { bytes } => HandshakeCutRepr {
                at: CutPointName::MidResponse,
                bytes: Some(bytes),
            },
        }
    }
}

/// Parameters of `{ handshake: status }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandshakeStatus {
    /// The HTTP status code sent instead of 101, e.g. 503, 426, 431 (100–599, not 101).
    #[serde(deserialize_with = "status_code")]
    #[schemars(range(min = 100, max = 599))]
    pub code: u16,
    /// Response body; when absent the device profile's error page for that status is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let code = u16::deserialize(d)?;
    if code == 101 {
        Err(de::Error::custom(
            "status 101 is a successful upgrade, not a fault: use 100-599 except 101",
        ))
    } else if !(100..=599).contains(&code) {
        Err(de::Error::custom(format_args!(
            "status {code} is not an HTTP status (100-599)"
        )))
    } else {
        Ok(code)
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

/// Which way through a connection a stream fault applies, seen from the app (Toxiproxy's `stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamDirection {
    /// App → device (what the device reads).
    Upstream,
    /// Device → app (what the device writes). Toxiproxy's default.
    #[default]
    Downstream,
    /// Both ways.
    Both,
}

impl StreamDirection {
    /// True when this direction covers app → device.
    pub fn upstream(self) -> bool {
        matches!(self, StreamDirection::Upstream | StreamDirection::Both)
    }

    /// True when this direction covers device → app.
    pub fn downstream(self) -> bool {
        matches!(self, StreamDirection::Downstream | StreamDirection::Both)
    }
}

/// Stream faults (Toxiproxy toxics), decided when a connection is accepted and applied by
/// [`FaultyStream`](crate::FaultyStream) for the connection's lifetime.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "stream", rename_all = "snake_case")]
pub enum StreamFault {
    /// Delay every chunk by `latency` ± `jitter`.
    Latency(Latency),
    /// Limit throughput to `rate` KB/s (1 KB = 1000 bytes).
    Bandwidth(Bandwidth),
    /// Cut data into small pieces sent `delay` apart.
    Slicer(Slicer),
    /// Close the connection (FIN) once `bytes` bytes have passed.
    LimitData(LimitData),
    /// Abort the connection with RST `timeout` after it was accepted.
    ResetPeer(ResetPeer),
    /// Stop passing data both ways; close after `timeout` (0 = never close).
    Timeout(TimeoutToxic),
    /// Delay the device's close (FIN) by `delay`.
    SlowClose(SlowClose),
    /// Silently drop everything both ways, never sending FIN or RST: a peer that vanished.
    HalfOpen,
}

impl StreamFault {
    /// The toxic's name as written (`latency`, `bandwidth`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StreamFault::Latency(_) => "latency",
            StreamFault::Bandwidth(_) => "bandwidth",
            StreamFault::Slicer(_) => "slicer",
            StreamFault::LimitData(_) => "limit_data",
            StreamFault::ResetPeer(_) => "reset_peer",
            StreamFault::Timeout(_) => "timeout",
            StreamFault::SlowClose(_) => "slow_close",
            StreamFault::HalfOpen => "half_open",
        }
    }
}

/// Parameters of `{ stream: latency }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Added delay per chunk, e.g. "250ms".
    #[serde(with = "human")]
    #[schemars(with = "DurationSchema")]
    pub latency: Duration,
    /// Random ± variation of the delay, rolled per chunk with the run's seed (default 0).
    #[serde(default, with = "human")]
    #[schemars(with = "DurationSchema")]
    pub jitter: Duration,
    /// Which way the delay applies (default `downstream`).
    #[serde(default)]
    pub direction: StreamDirection,
}

/// Parameters of `{ stream: bandwidth }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// Maximum rate in KB/s (1 KB = 1000 bytes), 1 to 10,000,000.
    #[serde(deserialize_with = "positive_u64")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub rate: u64,
    /// Which way the limit applies (default `downstream`).
    #[serde(default)]
    pub direction: StreamDirection,
}

/// Parameters of `{ stream: slicer }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slicer {
    /// Average size of a slice in bytes, 1 to 65536.
    #[serde(deserialize_with = "positive_usize")]
    #[schemars(range(min = 1, max = 65_536))]
    pub average_size: usize,
    /// Random ± variation of the slice size in bytes (default 0, at most 65536), rolled with
    /// the run's seed.
    #[serde(default)]
    #[schemars(range(max = 65_536))]
    pub size_variation: usize,
    /// Pause between slices, e.g. "10ms" (Toxiproxy gives this in µs; write "500us").
    #[serde(default, with = "human")]
    #[schemars(with = "DurationSchema")]
    pub delay: Duration,
    /// Which way slicing applies (default `downstream`).
    #[serde(default)]
    pub direction: StreamDirection,
}

/// Parameters of `{ stream: limit_data }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitData {
    /// Number of bytes passed before the connection is closed.
    pub bytes: u64,
    /// Which way's bytes are counted (default `downstream`; `both` counts the sum).
    #[serde(default)]
    pub direction: StreamDirection,
}

/// Parameters of `{ stream: reset_peer }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPeer {
    /// Time after accept at which the connection is reset (default 0: at once).
    #[serde(default, with = "human")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
}

/// Parameters of `{ stream: timeout }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutToxic {
    /// Close (FIN) this long after accept; 0 (the default) = never close, data is dropped forever.
    #[serde(default, with = "human")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
}

/// Parameters of `{ stream: slow_close }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowClose {
    /// How long the device's close (FIN) is held back.
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

/// Direction of a WebSocket message, seen from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageDirection {
    /// App → device.
    In,
    /// Device → app (the default for message faults).
    #[default]
    Out,
}

/// WebSocket faults on an open session.
///
/// `drop`, `duplicate`, `delay` and `suppress_pong` act on a message as it passes; the others
/// are actions the device performs (once per connection) when the rule triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "ws", rename_all = "snake_case")]
pub enum WsFault {
    /// The device sends a close frame.
    Close(WsClose),
    /// The message is silently lost.
    Drop(MessageParams),
    /// The message is delivered twice.
    Duplicate(MessageParams),
    /// The message is held back.
    Delay(WsDelay),
    /// The device does not answer pings (and, with `messages`, swallows its app-level pongs).
    SuppressPong(SuppressPong),
    /// The device sends a frame that breaks RFC 6455.
    Corrupt(Corrupt),
    /// The device sends a message larger than the app should accept.
    Oversize(Oversize),
    /// The device sends a text message that is not JSON.
    Garbage,
    /// The device drops the socket without a close frame, as ESP-IDF's LRU purge does.
    LruPurge,
}

impl WsFault {
    /// The fault's kind as written (`close`, `drop`, …).
    pub fn name(&self) -> &'static str {
        match self {
            WsFault::Close(_) => "close",
            WsFault::Drop(_) => "drop",
            WsFault::Duplicate(_) => "duplicate",
            WsFault::Delay(_) => "delay",
            WsFault::SuppressPong(_) => "suppress_pong",
            WsFault::Corrupt(_) => "corrupt",
            WsFault::Oversize(_) => "oversize",
            WsFault::Garbage => "garbage",
            WsFault::LruPurge => "lru_purge",
        }
    }

    /// True for faults that act on a passing message (`drop`, `duplicate`, `delay`,
    /// `suppress_pong`); false for actions the device takes on its own.
    pub fn acts_on_message(&self) -> bool {
        matches!(
            self,
            WsFault::Drop(_) | WsFault::Duplicate(_) | WsFault::Delay(_) | WsFault::SuppressPong(_)
        )
    }
}

/// Parameters of `{ ws: close }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WsClose {
    /// Close code sent (default 1000). 1005/1006/1015 are not sendable; use `lru_purge` or a stream fault.
    #[serde(default = "default_close_code", deserialize_with = "close_code")]
    pub code: u16,
    /// Close reason sent (default empty, at most 123 bytes).
    #[serde(default)]
    pub reason: String,
    /// Whether the device then completes the closing handshake (default true). With `false` the
    /// device drops the TCP connection right after its close frame, without waiting for the echo.
    #[serde(default = "yes")]
    pub echo: bool,
}

fn default_close_code() -> u16 {
    1000
}

fn yes() -> bool {
    true
}

fn close_code<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let code = u16::deserialize(d)?;
    match code {
        1005 | 1006 | 1015 => Err(de::Error::custom(format_args!(
            "close code {code} must never be sent on the wire; for an abnormal closure use `{{ ws: lru_purge }}` or `{{ stream: reset_peer }}`"
        ))),
        1000..=4999 => Ok(code),
        _ => Err(de::Error::custom(format_args!(
            "close code {code} is outside 1000-4999"
        ))),
    }
}

/// Which messages a per-message fault (`drop`, `duplicate`) acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    /// Which way the message travels (default `out`: device → app).
    #[serde(default)]
    pub direction: MessageDirection,
}

/// Parameters of `{ ws: delay }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WsDelay {
    /// How long the message is held back, e.g. "2s".
    #[serde(with = "human")]
    #[schemars(with = "DurationSchema")]
    pub delay: Duration,
    /// Which way the message travels (default `out`: device → app).
    #[serde(default)]
    pub direction: MessageDirection,
}

/// Parameters of `{ ws: suppress_pong }`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressPong {
    /// Also swallow the device's messages whose protocol `type` matches this pattern: the
    /// replies to an app-level heartbeat (e.g. `pong`). Absent: only WebSocket pong frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Pattern>,
}

/// Parameters of `{ ws: corrupt }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Corrupt {
    /// What is broken in the frame.
    pub kind: CorruptKind,
}

/// The RFC 6455 rule a corrupt frame breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CorruptKind {
    /// A reserved opcode (0x3).
    Opcode,
    /// RSV1 set without a negotiated extension.
    Rsv,
    /// A text frame with invalid UTF-8.
    Utf8,
    /// A masked frame from the server.
    Masked,
}

/// Parameters of `{ ws: oversize }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Oversize {
    /// Payload size in bytes (at most 4 MiB); default: one byte over the device profile's
    /// maximum message size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4_194_304))]
    pub bytes: Option<usize>,
}

/// DNS faults, decided per query. Restrict them to names with `when: { name: "*.gstatic.com" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "dns", rename_all = "snake_case")]
pub enum DnsFault {
    /// Answer NXDOMAIN (the name does not exist).
    Nxdomain,
    /// Answer SERVFAIL.
    Servfail,
    /// Answer REFUSED.
    Refused,
    /// Send no reply at all (the app's resolver times out).
    NoReply,
    /// Answer with this address instead of the device's.
    WrongAddress(WrongAddress),
    /// Answer normally, but late.
    Delay(DelayParams),
}

/// Parameters of `{ dns: wrong_address }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WrongAddress {
    /// The address answered, e.g. "192.168.4.99".
    pub ip: IpAddr,
}

/// What a phone joined to the AP concludes about internet access, as the emulator stages it
/// (the device's `internet` setting and the `{ device: internet }` fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InternetMode {
    /// Connectivity checks get each OS's exact success answer: the phone believes it is online.
    Online,
    /// The ESP-IDF captive-portal example: unknown URIs redirect to `/` ("Sign in to network").
    #[default]
    Captive,
    /// Plain ESP-IDF without a captive handler: 404 and close ("No internet").
    Offline,
}

impl InternetMode {
    /// Every mode, for help texts.
    pub const ALL: [InternetMode; 3] = [
        InternetMode::Online,
        InternetMode::Captive,
        InternetMode::Offline,
    ];

    /// The mode's name as used on the command line and in scenarios.
    pub fn as_str(self) -> &'static str {
        match self {
            InternetMode::Online => "online",
            InternetMode::Captive => "captive",
            InternetMode::Offline => "offline",
        }
    }
}

impl std::fmt::Display for InternetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown internet mode name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown internet mode `{0}` (expected online, captive or offline)")]
pub struct UnknownInternetMode(pub String);

impl std::str::FromStr for InternetMode {
    type Err = UnknownInternetMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InternetMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownInternetMode(s.to_owned()))
    }
}

/// Device faults, placed on the run's timeline (see [`FaultPlan::device_timeline`](crate::FaultPlan::device_timeline)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "device", rename_all = "snake_case")]
pub enum DeviceFault {
    /// Switch what connectivity checks see, for the rule's window (or for good).
    Internet(Internet),
    /// Everything goes down for `down`, then the device comes back with fresh state.
    Reboot(Reboot),
    /// The access point disappears for `for`.
    ApDown(ApDown),
    /// `sockets` of the device's socket slots are held, as if by other clients, for the rule's window.
    SocketExhaustion(SocketExhaustion),
}

/// Parameters of `{ device: internet }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Internet {
    /// The mode while the rule is active.
    pub mode: InternetMode,
}

/// Parameters of `{ device: reboot }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reboot {
    /// How long every service is down.
    #[serde(with = "human")]
    #[schemars(with = "DurationSchema")]
    pub down: Duration,
}

/// Parameters of `{ device: ap_down }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApDown {
    /// How long the access point is gone.
    #[serde(rename = "for", with = "human")]
    #[schemars(with = "DurationSchema")]
    pub duration: Duration,
}

/// Parameters of `{ device: socket_exhaustion }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SocketExhaustion {
    /// How many socket slots are taken (1 to 1024).
    #[serde(deserialize_with = "positive_usize")]
    #[schemars(range(min = 1, max = 1024))]
    pub sockets: usize,
}

// ---------------------------------------------------------------------------------------------
// Deserialization: "first key names the category" maps, bare strings for connect faults.

/// A kind that takes no parameters: the rest of the map must be empty.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

fn rest<'de, T: Deserialize<'de>, A: MapAccess<'de>>(map: A) -> Result<T, A::Error> {
    T::deserialize(MapAccessDeserializer::new(map))
}

fn none<'de, A: MapAccess<'de>>(map: A) -> Result<(), A::Error> {
    rest::<NoParams, A>(map).map(|_| ())
}

macro_rules! kinds {
    ($(#[$m:meta])* $name:ident { $($v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum $name { $($v),* }
    };
}

kinds!(
    /// Handshake kinds as written.
    HandshakeKind { Reset, Close, Status, BadAccept, MissingUpgradeHeader, Delay, SilentClose }
);
kinds!(
    /// Stream kinds as written.
    StreamKind { Latency, Bandwidth, Slicer, LimitData, ResetPeer, Timeout, SlowClose, HalfOpen }
);
kinds!(
    /// WebSocket kinds as written.
    WsKind { Close, Drop, Duplicate, Delay, SuppressPong, Corrupt, Oversize, Garbage, LruPurge }
);
kinds!(
    /// DNS kinds as written.
    DnsKind { Nxdomain, Servfail, Refused, NoReply, WrongAddress, Delay }
);
kinds!(
    /// Device kinds as written.
    DeviceKind { Internet, Reboot, ApDown, SocketExhaustion }
);

/// Names a bare string that needs a category, for a helpful error.
fn category_hint(name: &str) -> Option<&'static str> {
    Some(match name {
        "bad_accept" | "missing_upgrade_header" | "silent_close" => "handshake",
        "latency" | "bandwidth" | "slicer" | "limit_data" | "reset_peer" | "timeout"
        | "slow_close" | "half_open" => "stream",
        "drop" | "duplicate" | "suppress_pong" | "corrupt" | "oversize" | "garbage"
        | "lru_purge" => "ws",
        "nxdomain" | "servfail" | "refused" | "no_reply" | "wrong_address" => "dns",
        "internet" | "reboot" | "ap_down" | "socket_exhaustion" => "device",
        _ => return None,
    })
}

const CATEGORIES: &[&str] = &["connect", "handshake", "stream", "ws", "dns", "device"];
const CONNECT: &[&str] = &["refuse", "reset_on_accept", "close_on_accept", "stall"];

struct FaultVisitor;

impl<'de> Visitor<'de> for FaultVisitor {
    type Value = Fault;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a connect fault (refuse, reset_on_accept, close_on_accept, stall) or a map whose \
             first key is a category: handshake, stream, ws, dns, device",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Fault, E> {
        let connect = match v {
            "refuse" => ConnectFault::Refuse,
            "reset_on_accept" => ConnectFault::ResetOnAccept,
            "close_on_accept" => ConnectFault::CloseOnAccept,
            "stall" => ConnectFault::Stall,
            other => {
                return Err(match category_hint(other) {
                    Some(cat) => E::custom(format_args!(
                        "`{other}` needs its category: write `{{ {cat}: {other} }}`"
                    )),
                    None => E::unknown_variant(other, CONNECT),
                });
            }
        };
        Ok(Fault::Connect(connect))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fault, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "empty fault: write e.g. `refuse` or `{ dns: nxdomain }`",
            ));
        };
        if CATEGORIES.contains(&first.as_str()) {
            // The written form: the category comes first, so the parameters stream straight
            // into their typed struct and errors keep their line and column.
            return from_category(&first, map);
        }
        // The category is further down (e.g. a JSON object whose keys were sorted): buffer
        // the entries, then read them with the category first.
        let mut entries = serde_json::Map::new();
        entries.insert(first.clone(), map.next_value::<serde_json::Value>()?);
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value::<serde_json::Value>()?;
            if entries.insert(k.clone(), v).is_some() {
                return Err(de::Error::custom(format_args!("duplicate key `{k}`")));
            }
        }
        let found: Vec<&str> = CATEGORIES
            .iter()
            .copied()
            .filter(|c| entries.contains_key(*c))
            .collect();
        let category = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(
                    match category_hint(&first)
                        .or(CONNECT.contains(&first.as_str()).then_some("connect"))
                    {
                        Some(cat) => de::Error::custom(format_args!(
                            "a fault map needs its category key: write `{{ {cat}: {first}, … }}`"
                        )),
                        None => de::Error::custom(format_args!(
                            "a fault map needs one category key ({}); found `{first}`",
                            CATEGORIES.join(", ")
                        )),
                    },
                );
            }
            [a, b, ..] => {
                return Err(de::Error::custom(format_args!(
                    "a fault has one category, found both `{a}` and `{b}`"
                )));
            }
        };
        let kind = entries.remove(category).unwrap_or_default();
        let ordered = std::iter::once((category.to_owned(), kind)).chain(entries);
        let mut buffered = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(ordered);
        let result = buffered
            .next_key::<String>()
            .and_then(|_| from_category(category, buffered));
        result.map_err(de::Error::custom)
    }
}

/// Reads a fault whose category key `category` was just read from `map`.
fn from_category<'de, A: MapAccess<'de>>(category: &str, mut map: A) -> Result<Fault, A::Error> {
    Ok(match category {
        "connect" => {
            let f: ConnectFault = map.next_value()?;
            none(map)?;
            Fault::Connect(f)
        }
        "handshake" => Fault::Handshake(match map.next_value::<HandshakeKind>()? {
            HandshakeKind::Reset => HandshakeFault::Reset(rest(map)?),
            HandshakeKind::Close => HandshakeFault::Close(rest(map)?),
            HandshakeKind::Status => HandshakeFault::Status(rest(map)?),
            HandshakeKind::BadAccept => none(map).map(|()| HandshakeFault::BadAccept)?,
            HandshakeKind::MissingUpgradeHeader => {
                none(map).map(|()| HandshakeFault::MissingUpgradeHeader)?
            }
            HandshakeKind::Delay => HandshakeFault::Delay(rest(map)?),
            HandshakeKind::SilentClose => none(map).map(|()| HandshakeFault::SilentClose)?,
        }),
        "stream" => Fault::Stream(match map.next_value::<StreamKind>()? {
            StreamKind::Latency => StreamFault::Latency(rest(map)?),
            StreamKind::Bandwidth => StreamFault::Bandwidth(rest(map)?),
            StreamKind::Slicer => StreamFault::Slicer(rest(map)?),
            StreamKind::LimitData => StreamFault::LimitData(rest(map)?),
            StreamKind::ResetPeer => StreamFault::ResetPeer(rest(map)?),
            StreamKind::Timeout => StreamFault::Timeout(rest(map)?),
            StreamKind::SlowClose => StreamFault::SlowClose(rest(map)?),
            StreamKind::HalfOpen => none(map).map(|()| StreamFault::HalfOpen)?,
        }),
        "ws" => Fault::Ws(match map.next_value::<WsKind>()? {
            WsKind::Close => WsFault::Close(rest(map)?),
            WsKind::Drop => WsFault::Drop(rest(map)?),
            WsKind::Duplicate => WsFault::Duplicate(rest(map)?),
            WsKind::Delay => WsFault::Delay(rest(map)?),
            WsKind::SuppressPong => WsFault::SuppressPong(rest(map)?),
            WsKind::Corrupt => WsFault::Corrupt(rest(map)?),
            WsKind::Oversize => WsFault::Oversize(rest(map)?),
            WsKind::Garbage => none(map).map(|()| WsFault::Garbage)?,
            WsKind::LruPurge => none(map).map(|()| WsFault::LruPurge)?,
        }),
        "dns" => Fault::Dns(match map.next_value::<DnsKind>()? {
            DnsKind::Nxdomain => none(map).map(|()| DnsFault::Nxdomain)?,
            DnsKind::Servfail => none(map).map(|()| DnsFault::Servfail)?,
            DnsKind::Refused => none(map).map(|()| DnsFault::Refused)?,
            DnsKind::NoReply => none(map).map(|()| DnsFault::NoReply)?,
            DnsKind::WrongAddress => DnsFault::WrongAddress(rest(map)?),
            DnsKind::Delay => DnsFault::Delay(rest(map)?),
        }),
        "device" => Fault::Device(match map.next_value::<DeviceKind>()? {
            DeviceKind::Internet => DeviceFault::Internet(rest(map)?),
            DeviceKind::Reboot => DeviceFault::Reboot(rest(map)?),
            DeviceKind::ApDown => DeviceFault::ApDown(rest(map)?),
            DeviceKind::SocketExhaustion => DeviceFault::SocketExhaustion(rest(map)?),
        }),
        other => {
            return Err(de::Error::unknown_variant(other, CATEGORIES));
        }
    })
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fault, D::Error> {
        d.deserialize_any(FaultVisitor)
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
