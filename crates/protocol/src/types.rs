//! Values shared by several messages: the device configuration, Wi-Fi/provisioning states,
//! capabilities, events and the `error` reply's codes.

use alloc::string::String;

use serde::{Deserialize, Serialize};

/// The device's user-settable configuration, as `config` reports it and the board persists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Human-readable device name, 1–32 bytes of UTF-8.
    pub name: String,
    /// Default telemetry interval for `subscribe` without `interval_ms`, in milliseconds.
    pub telemetry_interval_ms: u64,
    /// Unit of `telemetry.temperature`.
    pub temperature_unit: TemperatureUnit,
}

/// A partial [`DeviceConfig`] (`set_config`): absent fields are left unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    /// New [`DeviceConfig::name`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New [`DeviceConfig::telemetry_interval_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_interval_ms: Option<u64>,
    /// New [`DeviceConfig::temperature_unit`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_unit: Option<TemperatureUnit>,
}

/// Unit of reported temperatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TemperatureUnit {
    /// Degrees Celsius (the default).
    Celsius,
    /// Degrees Fahrenheit.
    Fahrenheit,
}

/// The station (home Wi-Fi) side of the device, as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WifiState {
    /// No home network configured yet.
    Unprovisioned,
    /// Joining the network given by `provision`.
    Connecting,
    /// Joined.
    Connected,
    /// The last attempt failed (see the `provisioning` message's `reason`).
    Failed,
}

/// Progress of a `provision` request, as the `provisioning` message reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningState {
    /// Credentials accepted; the device is about to join (its AP will drop for a while).
    Connecting,
    /// Joined the home network; credentials were saved.
    Connected,
    /// Could not join; see `reason`.
    Failed,
}

/// Why provisioning failed (named after ESP-IDF's `wifi_err_reason_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// `WIFI_REASON_NO_AP_FOUND`: no network with that SSID in range.
    NoApFound,
    /// `WIFI_REASON_AUTH_FAIL`: wrong password.
    AuthFailed,
    /// Joined, but the credentials could not be saved, so the device would forget them.
    StorageFailed,
}

/// A feature the device offers, listed in `welcome` so apps can adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// `subscribe` / `telemetry`.
    Telemetry,
    /// `set_output` and `status.outputs`.
    Outputs,
    /// `get_config` / `set_config`.
    Config,
    /// `provision` / `provisioning`.
    Provisioning,
    /// `reboot`.
    Reboot,
    /// `event` messages (button presses).
    Events,
}

/// What happened, in an `event` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "EventKind")
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceEventKind {
    /// The device's (BOOT) button was pressed.
    ButtonPressed,
}

/// The machine-readable `code` of an `error` reply. Apps should branch on this, not on `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message exceeds [`crate::MAX_MESSAGE_SIZE`].
    TooLarge,
    /// Not JSON (or not UTF-8).
    InvalidJson,
    /// JSON, but no `type` field.
    MissingType,
    /// A `type` this device does not know.
    UnknownType,
    /// Not an object, a key repeated, or a field is missing, unknown or of the wrong type.
    InvalidMessage,
    /// Well-formed, but a value is out of range (e.g. a too-short telemetry interval).
    InvalidValue,
    /// `set_output` named an output the device does not have.
    UnknownOutput,
    /// A token is required (in `hello` or at the handshake) and was missing or wrong.
    Unauthorized,
    /// The device is busy with a conflicting operation (a provisioning already running).
    Busy,
    /// Persisting the configuration failed.
    StorageFailed,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `"unknown_type"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::MissingType => "missing_type",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::UnknownOutput => "unknown_output",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Busy => "busy",
            ErrorCode::StorageFailed => "storage_failed",
        }
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_strings_are_their_wire_form() {
        let all = [
            ErrorCode::TooLarge,
            ErrorCode::InvalidJson,
            ErrorCode::MissingType,
            ErrorCode::UnknownType,
            ErrorCode::InvalidMessage,
            ErrorCode::InvalidValue,
            ErrorCode::UnknownOutput,
            ErrorCode::Unauthorized,
            ErrorCode::Busy,
            ErrorCode::StorageFailed,
        ];
        for code in all {
            let wire = serde_json::to_string(&code).expect("serializes");
            assert_eq!(wire, alloc::format!("\"{}\"", code.as_str()));
            assert_eq!(alloc::format!("{code}"), code.as_str());
        }
    }
}
