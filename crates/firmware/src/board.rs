//! The hardware the device runs on: sensors, named outputs, persistent storage, radio, button.
//!
//! The ESP32 glue implements it over ESP-IDF drivers and NVS; [`crate::SimBoard`] simulates it.

use alloc::collections::BTreeMap;
use alloc::string::String;

use espsim_protocol::{DeviceConfig, FailureReason};

use crate::settings::Network;

/// The board's peripherals, as the device logic needs them.
pub trait Board {
    /// Reads the sensors at `now_ms` (ms since boot). A sensor that fails to read is `None`.
    fn read_sensors(&mut self, now_ms: u64) -> SensorReading;
    /// Every output and whether it is on.
    fn outputs(&self) -> BTreeMap<String, bool>;
    /// Switches the output `name`.
    fn set_output(&mut self, name: &str, on: bool) -> Result<(), OutputError>;
    /// The saved configuration, if any (NVS on the chip).
    fn load_config(&mut self) -> Option<DeviceConfig>;
    /// Saves the configuration so it survives a restart.
    fn save_config(&mut self, config: &DeviceConfig) -> Result<(), StorageError>;
    /// The saved home Wi-Fi credentials, if any.
    fn load_wifi(&mut self) -> Option<WifiCredentials>;
    /// Saves home Wi-Fi credentials after a successful join.
    fn save_wifi(&mut self, credentials: &WifiCredentials) -> Result<(), StorageError>;
    /// Free heap in bytes (`esp_get_free_heap_size`).
    fn free_heap(&self) -> u32;
    /// Signal strength of the station link in dBm, if the radio has one.
    fn rssi(&self) -> Option<i8>;
    /// Takes the next pending hardware event (button press), if any.
    fn poll_event(&mut self) -> Option<BoardEvent>;

    /// Joins the home network; called when the provisioning AP outage ends (and at boot with
    /// saved credentials). The default simulates it against `networks`
    /// ([`crate::DeviceSettings::networks`]): unknown SSID → `no_ap_found`, wrong password →
    /// `auth_failed`. The chip overrides it with a real (blocking) station connect.
    fn join_wifi(
        &mut self,
        credentials: &WifiCredentials,
        networks: &[Network],
    ) -> Result<(), FailureReason> {
        let network = networks
            .iter()
            .find(|n| n.ssid == credentials.ssid)
            .ok_or(FailureReason::NoApFound)?;
        if network.password == credentials.password {
            Ok(())
        } else {
            Err(FailureReason::AuthFailed)
        }
    }
}

/// One sensor sample in SI units; `None` for a sensor that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SensorReading {
    /// Temperature in °C.
    pub temperature_c: Option<f32>,
    /// Relative humidity in percent.
    pub humidity_pct: Option<f32>,
}

/// A hardware event the device broadcasts as an `event` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoardEvent {
    /// The button was pressed.
    ButtonPressed,
}

/// A polled push button as [`Board::poll_event`] reports it: one
/// [`BoardEvent::ButtonPressed`] per press, on the edge from released to held, however many
/// polls the press lasts. Both chip builds (`esp32/`, `esp32c3/`) poll their BOOT button with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ButtonEdge {
    was_down: bool,
}

impl ButtonEdge {
    /// A button that starts released (a button held at boot counts as one press).
    pub const fn new() -> Self {
        ButtonEdge { was_down: false }
    }

    /// Takes the level read now (`down`: held) and returns the event the press started, if any.
    pub fn poll(&mut self, down: bool) -> Option<BoardEvent> {
        let pressed = down && !self.was_down;
        self.was_down = down;
        pressed.then_some(BoardEvent::ButtonPressed)
    }
}

/// Home Wi-Fi credentials. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct WifiCredentials {
    /// Network name.
    pub ssid: String,
    /// Passphrase (empty for an open network).
    pub password: String,
}

impl core::fmt::Debug for WifiCredentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WifiCredentials")
            .field("ssid", &self.ssid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// [`Board::set_output`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The board has no output of that name.
    #[error("no output named `{0}`")]
    Unknown(String),
}

/// Persistent storage (NVS) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failed: {reason}")]
pub struct StorageError {
    /// What the storage layer reported, e.g. `ESP_ERR_NVS_NOT_ENOUGH_SPACE`.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_button_is_one_press_and_a_second_press_another() {
        let mut button = ButtonEdge::new();
        let levels = [false, true, true, true, false, false, true, false];
        let events: alloc::vec::Vec<_> = levels.iter().map(|&down| button.poll(down)).collect();
        let press = Some(BoardEvent::ButtonPressed);
        assert_eq!(
            events,
            [None, press, None, None, None, None, press, None],
            "levels {levels:?}"
        );
    }
}
