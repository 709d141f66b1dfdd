//! App → device messages.
//!
//! Every kind may carry `id` (an app-chosen `u64`); the device's direct reply echoes it.

use alloc::string::String;

use serde::{Deserialize, Serialize};

use crate::types::ConfigPatch;

message_enum! {
    /// A message an app sends to the device.
    pub enum ClientMessage {
        /// Introduces the app; answered by `welcome`. Carries the token when the device needs one.
        Hello(Hello) = "hello",
        /// Application-level heartbeat; answered by `pong` with the same `seq`.
        Ping(Ping) = "ping",
        /// Asks for `status`.
        GetStatus(GetStatus) = "get_status",
        /// Asks for `config`.
        GetConfig(GetConfig) = "get_config",
        /// Partially updates the configuration; answered by the new `config`.
        SetConfig(SetConfig) = "set_config",
        /// Switches a named output (LED, relay) on or off; answered by `ack`.
        SetOutput(SetOutput) = "set_output",
        /// Starts (or re-times) periodic `telemetry` to this connection; answered by `ack`.
        Subscribe(Subscribe) = "subscribe",
        /// Stops this connection's telemetry; answered by `ack`.
        Unsubscribe(Unsubscribe) = "unsubscribe",
        /// Gives the device home Wi-Fi credentials; answered by `ack`, then `provisioning` updates.
        Provision(Provision) = "provision",
        /// Restarts the device; answered by `ack`, then every connection drops.
        Reboot(Reboot) = "reboot",
    }
}

impl ClientMessage {
    /// The request `id`, if the app set one.
    pub fn id(&self) -> Option<u64> {
        match self {
            ClientMessage::Hello(m) => m.id,
            ClientMessage::Ping(m) => m.id,
            ClientMessage::GetStatus(m) => m.id,
            ClientMessage::GetConfig(m) => m.id,
            ClientMessage::SetConfig(m) => m.id,
            ClientMessage::SetOutput(m) => m.id,
            ClientMessage::Subscribe(m) => m.id,
            ClientMessage::Unsubscribe(m) => m.id,
            ClientMessage::Provision(m) => m.id,
            ClientMessage::Reboot(m) => m.id,
        }
    }
}

/// `hello`: who the app is, and its token if the device requires one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// App name, e.g. `"garden-app"`.
    pub client: String,
    /// App version, e.g. `"1.4.0"`.
    pub version: String,
    /// Auth token; required when the device is configured with one (unless given at the handshake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `ping`: application heartbeat (in addition to WebSocket ping frames, which ESP-IDF answers itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Ping {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Sequence number, echoed in `pong`.
    pub seq: u64,
}

/// `get_status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct GetStatus {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// `get_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct GetConfig {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// `set_config`: only the fields present in `config` change; all are validated before any applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The fields to change.
    pub config: ConfigPatch,
}

/// `set_output`: switch a named output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct SetOutput {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Output name as listed in `status.outputs`, e.g. `"led"`.
    pub name: String,
    /// `true` = on.
    pub on: bool,
}

/// `subscribe`: periodic telemetry to this connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Interval in milliseconds; absent = the configured `telemetry_interval_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

/// `unsubscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// `provision`: home Wi-Fi credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Network name, 1–32 bytes.
    pub ssid: String,
    /// WPA2 passphrase (8–63 bytes), or empty for an open network.
    pub password: String,
}

/// `reboot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
#[serde(deny_unknown_fields)]
pub struct Reboot {
    /// Request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}
