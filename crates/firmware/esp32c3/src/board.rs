//! [`C3Board`]: the `Board` trait over esp-hal — two GPIO outputs, the BOOT button, the chip's
//! internal temperature sensor, one flash sector for settings, and the station radio.
//!
//! The pure parts (the flash record's format, its checks) are `espsim_firmware::flash`, tested
//! on the host; this file only moves bytes between that record and the hardware.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};

use embassy_time::{Duration, with_timeout};
use esp_bootloader_esp_idf::partitions::{
    self, DataPartitionSubType, PARTITION_TABLE_MAX_LEN, PartitionType,
};
use esp_hal::gpio::{Input, Output};
use esp_hal::tsens::TemperatureSensor;
use esp_radio::wifi::ap::AccessPointConfig;
use esp_radio::wifi::scan::ScanConfig;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{AuthenticationMethodConfig, Config, WifiController};
use esp_storage::FlashStorage;
use espsim_firmware::flash::{MAX_RECORD, Saved};
use espsim_firmware::protocol::{DeviceConfig, FailureReason};
use espsim_firmware::{
    Board, BoardEvent, ButtonEdge, Network, OutputError, SensorReading, StorageError,
    WifiCredentials,
};

/// How long a real join (scan + associate) may take before it counts as failed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// An ESP32-C3 dev board: `led` (GPIO8, the on-board LED of most C3 boards), `relay` (GPIO4),
/// the BOOT button (GPIO9, active low), flash, and the Wi-Fi driver.
pub struct C3Board {
    led: Output<'static>,
    relay: Output<'static>,
    button: Input<'static>,
    button_edge: ButtonEdge,
    outputs: BTreeMap<String, bool>,
    tsens: Option<TemperatureSensor<'static>>,
    flash: FlashStorage<'static>,
    /// Offset of the settings sector (the first sector of the `nvs` data partition), if the
    /// partition table has one.
    sector: Option<u32>,
    saved: Saved,
    wifi: WifiController<'static>,
    ap: AccessPointConfig,
}

impl C3Board {
    /// Takes the peripherals and reads the saved settings from flash.
    pub fn new(
        led: Output<'static>,
        relay: Output<'static>,
        button: Input<'static>,
        tsens: Option<TemperatureSensor<'static>>,
        mut flash: FlashStorage<'static>,
        wifi: WifiController<'static>,
        ap: AccessPointConfig,
    ) -> Self {
        let sector = settings_sector(&mut flash);
        let saved = sector
            .and_then(|offset| {
                let mut buf = [0u8; MAX_RECORD];
                flash.read(offset, &mut buf).ok()?;
                Saved::decode(&buf)
            })
            .unwrap_or_default();
        if sector.is_none() {
            log::warn!("no `nvs` partition: settings will not survive a restart");
        }
        let outputs = [("led".to_string(), false), ("relay".to_string(), false)].into();
        let mut board = C3Board {
            led,
            relay,
            button,
            button_edge: ButtonEdge::new(),
            outputs,
            tsens,
            flash,
            sector,
            saved,
            wifi,
            ap,
        };
        // The LED is wired active-low on most C3 boards: "off" is a high level.
        board.led.set_high();
        board
    }

    /// Writes the whole record (read-modify-write of its sector by esp-storage).
    fn persist(&mut self, next: Saved) -> Result<(), StorageError> {
        let offset = self.sector.ok_or_else(|| StorageError {
            reason: "no nvs partition in the partition table".to_string(),
        })?;
        let bytes = next.encode().map_err(|e| StorageError {
            reason: e.to_string(),
        })?;
        self.flash.write(offset, &bytes).map_err(|e| StorageError {
            reason: alloc::format!("flash write failed: {e:?}"),
        })?;
        self.saved = next;
        Ok(())
    }

    /// Scan for the SSID, then associate; run to completion on this task (the AP's clients
    /// were dropped for this window, see `hub::Hub::dispatch`).
    async fn join(&mut self, credentials: &WifiCredentials) -> Result<(), FailureReason> {
        let ssid = credentials
            .ssid
            .as_str()
            .try_into()
            .map_err(|_| FailureReason::NoApFound)?;
        let authentication = if credentials.password.is_empty() {
            AuthenticationMethodConfig::Open
        } else {
            AuthenticationMethodConfig::Wpa2Personal(
                credentials
                    .password
                    .as_str()
                    .try_into()
                    .map_err(|_| FailureReason::AuthFailed)?,
            )
        };
        let station = StationConfig::default()
            .with_ssid(ssid)
            .with_authentication(authentication);
        self.wifi
            .set_config(&Config::AccessPointStation(station, self.ap.clone()))
            .map_err(|_| FailureReason::AuthFailed)?;
        let seen = self
            .wifi
            .scan_async(&ScanConfig::default())
            .await
            .map_err(|_| FailureReason::NoApFound)?;
        if !seen.iter().any(|ap| ap.ssid.as_str() == credentials.ssid) {
            return Err(FailureReason::NoApFound);
        }
        self.wifi
            .connect_async()
            .await
            .map(|_| ())
            .map_err(|_| FailureReason::AuthFailed)
    }
}

/// The first sector of the `nvs` data partition (espflash's default table has one at 0x9000).
fn settings_sector(flash: &mut FlashStorage<'static>) -> Option<u32> {
    let mut table = [0u8; PARTITION_TABLE_MAX_LEN];
    let table = partitions::read_partition_table(flash, &mut table).ok()?;
    let nvs = table
        .find_partition(PartitionType::Data(DataPartitionSubType::Nvs))
        .ok()??;
    (nvs.len() >= FlashStorage::SECTOR_SIZE).then(|| nvs.offset())
}

impl Board for C3Board {
    fn read_sensors(&mut self, _now_ms: u64) -> SensorReading {
        // The die temperature (the C3 has no humidity sensor; wire a DHT22/SHT3x here).
        SensorReading {
            temperature_c: self
                .tsens
                .as_ref()
                .map(|t| t.get_temperature().to_celsius()),
            humidity_pct: None,
        }
    }

    fn outputs(&self) -> BTreeMap<String, bool> {
        self.outputs.clone()
    }

    fn set_output(&mut self, name: &str, on: bool) -> Result<(), OutputError> {
        match name {
            // Active-low LED.
            "led" => self.led.set_level((!on).into()),
            "relay" => self.relay.set_level(on.into()),
            _ => return Err(OutputError::Unknown(name.to_string())),
        }
        self.outputs.insert(name.to_string(), on);
        Ok(())
    }

    fn load_config(&mut self) -> Option<DeviceConfig> {
        self.saved.config.clone()
    }

    fn save_config(&mut self, config: &DeviceConfig) -> Result<(), StorageError> {
        let next = Saved {
            config: Some(config.clone()),
            ..self.saved.clone()
        };
        self.persist(next)
    }

    fn load_wifi(&mut self) -> Option<WifiCredentials> {
        self.saved.wifi.clone()
    }

    fn save_wifi(&mut self, credentials: &WifiCredentials) -> Result<(), StorageError> {
        let next = Saved {
            wifi: Some(credentials.clone()),
            ..self.saved.clone()
        };
        self.persist(next)
    }

    fn free_heap(&self) -> u32 {
        u32::try_from(esp_alloc::HEAP.free()).unwrap_or(u32::MAX)
    }

    fn rssi(&self) -> Option<i8> {
        let rssi = self.wifi.rssi().ok()?;
        i8::try_from(rssi).ok()
    }

    fn poll_event(&mut self) -> Option<BoardEvent> {
        // BOOT button, active low.
        self.button_edge.poll(self.button.is_low())
    }

    /// A real join, run to completion here: `Board::join_wifi` is synchronous (the firmware is
    /// sans-IO), so the embassy executor waits for it, at most [`JOIN_TIMEOUT`] — as the
    /// ESP-IDF build's blocking `wifi.connect()` does. The radio's own driver task keeps
    /// running under esp-rtos meanwhile.
    fn join_wifi(
        &mut self,
        credentials: &WifiCredentials,
        _networks: &[Network],
    ) -> Result<(), FailureReason> {
        embassy_futures::block_on(with_timeout(JOIN_TIMEOUT, self.join(credentials)))
            .unwrap_or(Err(FailureReason::NoApFound))
    }
}
