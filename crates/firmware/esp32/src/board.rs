//! [`EspBoard`]: the `Board` trait over ESP-IDF — GPIO outputs and button, NVS storage, the
//! station radio. The temperature/humidity sensor is board-specific and not wired here: until a
//! driver is added in `read_sensors`, telemetry omits both values (the protocol's "sensor could
//! not be read" case).

use std::collections::BTreeMap;

use esp_idf_svc::hal::gpio::{Input, Output, PinDriver};
use esp_idf_svc::nvs::{EspDefaultNvs, EspDefaultNvsPartition};
use esp_idf_svc::wifi::{
    AccessPointConfiguration, AuthMethod, BlockingWifi, ClientConfiguration, Configuration, EspWifi,
};
use espsim_firmware::protocol::{DeviceConfig, FailureReason, TemperatureUnit};
use espsim_firmware::{
    Board, BoardEvent, ButtonEdge, Network, OutputError, SensorReading, StorageError,
    WifiCredentials,
};

/// NVS namespace and keys (NVS keys are at most 15 characters).
const NAMESPACE: &str = "espsim";
const KEY_NAME: &str = "cfg_name";
const KEY_INTERVAL: &str = "cfg_interval";
const KEY_UNIT: &str = "cfg_unit";
const KEY_SSID: &str = "wifi_ssid";
const KEY_PASSWORD: &str = "wifi_pass";

/// The ESP32 dev board: LED and relay outputs, the BOOT button, NVS, and the Wi-Fi driver.
pub struct EspBoard {
    led: PinDriver<'static, Output>,
    relay: PinDriver<'static, Output>,
    button: PinDriver<'static, Input>,
    button_edge: ButtonEdge,
    outputs: BTreeMap<String, bool>,
    nvs: EspDefaultNvs,
    wifi: BlockingWifi<EspWifi<'static>>,
    ap: AccessPointConfiguration,
}

impl EspBoard {
    /// Takes the pin drivers, opens the NVS namespace, and keeps the (started) Wi-Fi driver.
    pub fn new(
        led: PinDriver<'static, Output>,
        relay: PinDriver<'static, Output>,
        button: PinDriver<'static, Input>,
        nvs: EspDefaultNvsPartition,
        wifi: BlockingWifi<EspWifi<'static>>,
        ap: AccessPointConfiguration,
    ) -> anyhow::Result<Self> {
        let outputs = [("led".to_string(), false), ("relay".to_string(), false)].into();
        Ok(EspBoard {
            led,
            relay,
            button,
            button_edge: ButtonEdge::new(),
            outputs,
            nvs: EspDefaultNvs::new(nvs, NAMESPACE, true)?,
            wifi,
            ap,
        })
    }

    fn get_string(&self, key: &str) -> Option<String> {
        let mut buf = [0u8; 96];
        self.nvs
            .get_str(key, &mut buf)
            .ok()
            .flatten()
            .map(str::to_string)
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.nvs.set_str(key, value).map_err(|e| StorageError {
            reason: e.to_string(),
        })
    }
}

impl Board for EspBoard {
    fn read_sensors(&mut self, _now_ms: u64) -> SensorReading {
        // No sensor driver wired (board-specific, e.g. a DHT22 or SHT3x): values are omitted.
        SensorReading::default()
    }

    fn outputs(&self) -> BTreeMap<String, bool> {
        self.outputs.clone()
    }

    fn set_output(&mut self, name: &str, on: bool) -> Result<(), OutputError> {
        let pin = match name {
            "led" => &mut self.led,
            "relay" => &mut self.relay,
            _ => return Err(OutputError::Unknown(name.to_string())),
        };
        let result = if on { pin.set_high() } else { pin.set_low() };
        if let Err(e) = result {
            log::warn!("gpio {name}: {e}");
        }
        self.outputs.insert(name.to_string(), on);
        Ok(())
    }

    fn load_config(&mut self) -> Option<DeviceConfig> {
        let name = self.get_string(KEY_NAME)?;
        let telemetry_interval_ms = self.get_string(KEY_INTERVAL)?.parse().ok()?;
        let temperature_unit = match self.get_string(KEY_UNIT)?.as_str() {
            "fahrenheit" => TemperatureUnit::Fahrenheit,
            _ => TemperatureUnit::Celsius,
        };
        Some(DeviceConfig {
            name,
            telemetry_interval_ms,
            temperature_unit,
        })
    }

    fn save_config(&mut self, config: &DeviceConfig) -> Result<(), StorageError> {
        let unit = match config.temperature_unit {
            TemperatureUnit::Celsius => "celsius",
            TemperatureUnit::Fahrenheit => "fahrenheit",
        };
        self.put(KEY_NAME, &config.name)?;
        self.put(KEY_INTERVAL, &config.telemetry_interval_ms.to_string())?;
        self.put(KEY_UNIT, unit)
    }

    fn load_wifi(&mut self) -> Option<WifiCredentials> {
        Some(WifiCredentials {
            ssid: self.get_string(KEY_SSID)?,
            password: self.get_string(KEY_PASSWORD)?,
        })
    }

    fn save_wifi(&mut self, credentials: &WifiCredentials) -> Result<(), StorageError> {
        self.put(KEY_SSID, &credentials.ssid)?;
        self.put(KEY_PASSWORD, &credentials.password)
    }

    fn free_heap(&self) -> u32 {
        // SAFETY: a plain getter with no preconditions.
        unsafe { esp_idf_svc::sys::esp_get_free_heap_size() }
    }

    fn rssi(&self) -> Option<i8> {
        let rssi = self.wifi.wifi().driver().get_rssi().ok()?;
        i8::try_from(rssi).ok()
    }

    fn poll_event(&mut self) -> Option<BoardEvent> {
        // BOOT button, active low.
        self.button_edge.poll(self.button.is_low())
    }

    /// A real join: scan for the SSID (absent → `no_ap_found`), then connect in AP+STA mode
    /// (failure → `auth_failed`). While the station associates, the radio may switch channel and
    /// the softAP's clients drop — the outage the emulator models with `ApDown`.
    fn join_wifi(
        &mut self,
        credentials: &WifiCredentials,
        _networks: &[Network],
    ) -> Result<(), FailureReason> {
        let seen = self.wifi.scan().map_err(|_| FailureReason::NoApFound)?;
        if !seen.iter().any(|ap| ap.ssid.as_str() == credentials.ssid) {
            return Err(FailureReason::NoApFound);
        }
        let client = ClientConfiguration {
            ssid: credentials
                .ssid
                .as_str()
                .try_into()
                .map_err(|_| FailureReason::NoApFound)?,
            password: credentials
                .password
                .as_str()
                .try_into()
                .map_err(|_| FailureReason::AuthFailed)?,
            auth_method: if credentials.password.is_empty() {
                AuthMethod::None
            } else {
                AuthMethod::WPA2Personal
            },
            ..Default::default()
        };
        let mixed = Configuration::Mixed(client, self.ap.clone());
        self.wifi
            .set_configuration(&mixed)
            .map_err(|_| FailureReason::AuthFailed)?;
        self.wifi.connect().map_err(|_| FailureReason::AuthFailed)
    }
}
