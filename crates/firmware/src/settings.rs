//! [`DeviceSettings`]: what the host decides about a device (identity, token, limits, timings,
//! and, for the simulation, which home networks exist).

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use espsim_protocol::{DeviceConfig, TemperatureUnit};

/// Host-side settings of a [`crate::Device`]; not changeable by apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSettings {
    /// Sent in `welcome`, e.g. `esp32-a1b2c3` (the chip derives it from its MAC).
    pub device_id: String,
    /// Sent in `welcome`.
    pub firmware_version: String,
    /// When set, a connection is served only after `hello` carries this token or the host calls
    /// [`crate::Device::authorize`] (token checked at the handshake). Otherwise: `error`
    /// `unauthorized` and close 1008.
    pub auth_token: Option<String>,
    /// Shortest telemetry interval accepted (`subscribe`, `set_config`).
    pub min_telemetry_interval_ms: u64,
    /// Longest telemetry interval accepted.
    pub max_telemetry_interval_ms: u64,
    /// Configuration used when the board has none saved.
    pub default_config: DeviceConfig,
    /// Provisioning: time between the `ack` and the AP going down, so the `ack` and
    /// `provisioning{connecting}` reach the app first.
    pub ap_down_delay_ms: u64,
    /// Provisioning: how long the AP is down while the station joins.
    pub ap_down_duration_ms: u64,
    /// `reboot`: time between the `ack` and the restart.
    pub restart_delay_ms: u64,
    /// The home networks "in range" (simulation): a `provision` succeeds when SSID and password
    /// match one; an unknown SSID fails with `no_ap_found`, a wrong password with `auth_failed`.
    pub networks: Vec<Network>,
}

/// A home network the simulated station can join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Network name.
    pub ssid: String,
    /// Its passphrase (empty = open).
    pub password: String,
}

impl Default for DeviceSettings {
    /// Device `espsim-000001`, no token, telemetry 100 ms – 1 h (default 1 s), AP down 500 ms
    /// after the `ack` for 3 s, restart 200 ms after the `ack`, one network
    /// `espsim-home` / `espsim-password`.
    fn default() -> Self {
        DeviceSettings {
            device_id: "espsim-000001".to_string(),
            firmware_version: env!("CARGO_PKG_VERSION").to_string(),
            auth_token: None,
            min_telemetry_interval_ms: 100,
            max_telemetry_interval_ms: 3_600_000,
            default_config: DeviceConfig {
                name: "espsim".to_string(),
                telemetry_interval_ms: 1_000,
                temperature_unit: TemperatureUnit::Celsius,
            },
            ap_down_delay_ms: 500,
            ap_down_duration_ms: 3_000,
            restart_delay_ms: 200,
            networks: vec![Network {
                ssid: "espsim-home".to_string(),
                password: "espsim-password".to_string(),
            }],
        }
    }
}
