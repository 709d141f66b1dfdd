//! Device → app messages.
//!
//! Direct replies echo the request's `id` (absent when the request had none); `telemetry` and
//! `event` are unsolicited and never carry one.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::types::{
    Capability, DeviceConfig, DeviceEventKind, ErrorCode, FailureReason, ProvisioningState,
    TemperatureUnit, WifiState,
};

message_enum! {
    /// A message the device sends to an app.
    pub enum DeviceMessage {
        /// Reply to `hello`: who the device is.
        Welcome(Welcome) = "welcome",
        /// Reply to `ping`.
        Pong(Pong) = "pong",
        /// Reply to `get_status`.
        Status(Status) = "status",
        /// Reply to `get_config` and `set_config`: the whole configuration.
        Config(ConfigReport) = "config",
        /// Periodic sensor readings after `subscribe`.
        Telemetry(Telemetry) = "telemetry",
        /// Reply to a request that has nothing else to return.
        Ack(Ack) = "ack",
        /// Something happened on the device (e.g. a button press), sent to every connection.
        Event(DeviceEvent) = "event",
        /// Progress of provisioning.
        Provisioning(ProvisioningUpdate) = "provisioning",
        /// A request could not be served.
        Error(ErrorReply) = "error",
    }
}

impl DeviceMessage {
    /// The request `id` this message answers, if any.
    pub fn id(&self) -> Option<u64> {
        match self {
            DeviceMessage::Welcome(m) => m.id,
            DeviceMessage::Pong(m) => m.id,
            DeviceMessage::Status(m) => m.id,
            DeviceMessage::Config(m) => m.id,
            DeviceMessage::Ack(m) => m.id,
            DeviceMessage::Provisioning(m) => m.id,
            DeviceMessage::Error(m) => m.id,
            DeviceMessage::Telemetry(_) | DeviceMessage::Event(_) => None,
        }
    }
}

/// `welcome`: device identity and what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// Id of the `hello` answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Stable device identifier, e.g. `"esp32-a1b2c3"`.
    pub device_id: String,
    /// Firmware version string.
    pub firmware_version: String,
    /// [`crate::PROTOCOL_VERSION`] the device speaks.
    pub protocol_version: u32,
    /// Features the device offers.
    pub capabilities: Vec<Capability>,
}

/// `pong`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Pong {
    /// Id of the `ping` answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The `ping`'s `seq`.
    pub seq: u64,
}

/// `status`: a snapshot of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// Id of the `get_status` answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Milliseconds since boot.
    pub uptime_ms: u64,
    /// Free heap in bytes (`esp_get_free_heap_size`).
    pub free_heap: u32,
    /// Signal strength of the home network in dBm; absent when not connected to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi: Option<i8>,
    /// Station (home Wi-Fi) state.
    pub wifi: WifiState,
    /// Every output and whether it is on, sorted by name.
    pub outputs: BTreeMap<String, bool>,
    /// WebSocket clients currently connected.
    pub clients: u32,
}

/// `config`: the whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct ConfigReport {
    /// Id of the `get_config` / `set_config` answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The configuration now in effect.
    pub config: DeviceConfig,
}

/// `telemetry`: one sample. A sensor that could not be read is absent rather than `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// Per-connection counter, 1 for the first sample after `subscribe`.
    pub seq: u64,
    /// Device uptime when sampled, in milliseconds.
    pub timestamp_ms: u64,
    /// Temperature in `unit`, rounded to 0.1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "finite_f32"
    )]
    pub temperature: Option<f32>,
    /// Unit of `temperature`.
    pub unit: TemperatureUnit,
    /// Relative humidity in percent, rounded to 0.1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "finite_f32"
    )]
    pub humidity: Option<f32>,
}

/// `ack`: the request named by `of` was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Id of the request answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The `type` of the request acknowledged, e.g. `"set_output"`.
    pub of: String,
}

/// `event`: something happened on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct DeviceEvent {
    /// What happened.
    pub event: DeviceEventKind,
    /// Device uptime when it happened, in milliseconds.
    pub timestamp_ms: u64,
}

/// `provisioning`: progress of joining the home network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct ProvisioningUpdate {
    /// Id of the `provision` answered; absent on broadcasts and later updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Where provisioning is.
    pub state: ProvisioningState,
    /// The network being joined.
    pub ssid: String,
    /// Why it failed (only with `state: failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
}

/// `error`: why a request (or an undecodable message) was not served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    /// Id of the request answered, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation (lowercase, may change between versions).
    pub message: String,
}

/// An optional sensor value that must be a finite 32-bit float: a JSON number beyond `f32`'s
/// range (`1e300`) would become infinity, which JSON cannot carry (it re-encodes as `null`).
fn finite_f32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<f32>, D::Error> {
    match Option::<f64>::deserialize(deserializer)? {
        None => Ok(None),
        // `as` rounds to the nearest f32; only values past f32::MAX become infinite.
        Some(value) if (value as f32).is_finite() => Ok(Some(value as f32)),
        Some(value) => Err(serde::de::Error::custom(alloc::format!(
            "{value} is out of range for a 32-bit float (at most {:e})",
            f32::MAX
        ))),
    }
}
