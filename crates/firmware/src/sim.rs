//! [`SimBoard`]: a deterministic simulated board for the emulator and tests.
//!
//! Sensors follow smooth seeded curves (value noise with smoothstep interpolation: a slow drift
//! plus a small fast wobble), so the same seed and clock always give the same readings. Outputs
//! `led` and `relay`; storage in memory; a button the host can press; faults (sensor read
//! failure, storage failure) a test can switch on.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};

use espsim_protocol::DeviceConfig;
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

use crate::board::{Board, BoardEvent, OutputError, SensorReading, StorageError, WifiCredentials};

/// A simulated ESP32 dev board with a temperature/humidity sensor, an LED, a relay and a button.
#[derive(Debug, Clone)]
pub struct SimBoard {
    seed: u64,
    outputs: BTreeMap<String, bool>,
    config: Option<DeviceConfig>,
    wifi: Option<WifiCredentials>,
    pending_presses: u32,
    sensor_fault: bool,
    storage_fault: bool,
}

impl SimBoard {
    /// A board whose sensor curves, free heap and RSSI are derived from `seed`.
    pub fn new(seed: u64) -> Self {
        let outputs = ["led", "relay"]
            .into_iter()
            .map(|name| (name.to_string(), false))
            .collect();
        SimBoard {
            seed,
            outputs,
            config: None,
            wifi: None,
            pending_presses: 0,
            sensor_fault: false,
            storage_fault: false,
        }
    }

    /// Presses the button; the device broadcasts an `event` on its next [`crate::Device::on_tick`].
    pub fn press_button(&mut self) {
        self.pending_presses = self.pending_presses.saturating_add(1);
    }

    /// Makes every sensor read fail (`telemetry` then omits the values) until switched off.
    pub fn set_sensor_fault(&mut self, failing: bool) {
        self.sensor_fault = failing;
    }

    /// Makes every save fail (`error storage_failed`) until switched off.
    pub fn set_storage_fault(&mut self, failing: bool) {
        self.storage_fault = failing;
    }

    /// The saved Wi-Fi credentials (what survives a restart).
    pub fn saved_wifi(&self) -> Option<&WifiCredentials> {
        self.wifi.as_ref()
    }

    /// The saved configuration.
    pub fn saved_config(&self) -> Option<&DeviceConfig> {
        self.config.as_ref()
    }

    /// Temperature in °C at `now_ms`: 22 °C ± 3 over minutes, ± 0.3 over seconds.
    fn temperature(&self, now_ms: u64) -> f32 {
        22.0 + 3.0 * self.noise(1, 120_000, now_ms) + 0.3 * self.noise(2, 7_000, now_ms)
    }

    /// Relative humidity at `now_ms`: 50 % ± 15 over minutes, ± 1 over seconds.
    fn humidity(&self, now_ms: u64) -> f32 {
        let h = 50.0 + 15.0 * self.noise(3, 180_000, now_ms) + self.noise(4, 11_000, now_ms);
        h.clamp(0.0, 100.0)
    }

    /// Smooth value noise in [-1, 1]: seeded random knots every `period_ms`, smoothstep between.
    fn noise(&self, stream: u64, period_ms: u64, now_ms: u64) -> f32 {
        let knot = now_ms / period_ms;
        let t = (now_ms % period_ms) as f32 / period_ms as f32;
        let s = t * t * (3.0 - 2.0 * t);
        let a = self.knot(stream, knot);
        let b = self.knot(stream, knot + 1);
        a + (b - a) * s
    }

    fn knot(&self, stream: u64, index: u64) -> f32 {
        let mixed = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
            .wrapping_add(index);
        let value = Pcg32::seed_from_u64(mixed).next_u32();
        (value as f32 / u32::MAX as f32) * 2.0 - 1.0
    }

    fn storage(&self) -> Result<(), StorageError> {
        if self.storage_fault {
            Err(StorageError {
                reason: "simulated storage fault".to_string(),
            })
        } else {
            Ok(())
        }
    }
}

impl Board for SimBoard {
    fn read_sensors(&mut self, now_ms: u64) -> SensorReading {
        if self.sensor_fault {
            return SensorReading::default();
        }
        SensorReading {
            temperature_c: Some(self.temperature(now_ms)),
            humidity_pct: Some(self.humidity(now_ms)),
        }
    }

    fn outputs(&self) -> BTreeMap<String, bool> {
        self.outputs.clone()
    }

    fn set_output(&mut self, name: &str, on: bool) -> Result<(), OutputError> {
        match self.outputs.get_mut(name) {
            Some(state) => {
                *state = on;
                Ok(())
            }
            None => Err(OutputError::Unknown(name.to_string())),
        }
    }

    fn load_config(&mut self) -> Option<DeviceConfig> {
        self.config.clone()
    }

    fn save_config(&mut self, config: &DeviceConfig) -> Result<(), StorageError> {
        self.storage()?;
        self.config = Some(config.clone());
        Ok(())
    }

    fn load_wifi(&mut self) -> Option<WifiCredentials> {
        self.wifi.clone()
    }

    fn save_wifi(&mut self, credentials: &WifiCredentials) -> Result<(), StorageError> {
        self.storage()?;
        self.wifi = Some(credentials.clone());
        Ok(())
    }

    fn free_heap(&self) -> u32 {
        // A typical ESP32 Wi-Fi + httpd app has ~180-200 KB free.
        180_000 + (self.seed % 20_000) as u32
    }

    fn rssi(&self) -> Option<i8> {
        Some(-45 - (self.seed % 30) as i8)
    }

    fn poll_event(&mut self) -> Option<BoardEvent> {
        if self.pending_presses == 0 {
            return None;
        }
        self.pending_presses -= 1;
        Some(BoardEvent::ButtonPressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_readings_different_seed_different_readings() {
        let (mut a, mut b, mut c) = (SimBoard::new(7), SimBoard::new(7), SimBoard::new(8));
        for t in [0, 1_000, 61_234, 3_600_000] {
            assert_eq!(a.read_sensors(t), b.read_sensors(t));
        }
        assert_ne!(a.read_sensors(5_000), c.read_sensors(5_000));
    }

    #[test]
    fn readings_are_plausible_and_drift_smoothly() {
        let mut board = SimBoard::new(42);
        let mut previous = board.read_sensors(0);
        for step in 1..=2_000u64 {
            let now = step * 500;
            let reading = board.read_sensors(now);
            let (t, h) = (
                reading.temperature_c.expect("sim sensor reads"),
                reading.humidity_pct.expect("sim sensor reads"),
            );
            assert!((18.0..=26.0).contains(&t), "temperature {t} at {now}");
            assert!((0.0..=100.0).contains(&h), "humidity {h} at {now}");
            let dt = (t - previous.temperature_c.expect("sim sensor reads")).abs();
            assert!(dt < 0.5, "temperature jumped {dt} in 500 ms at {now}");
            previous = reading;
        }
    }

    #[test]
    fn button_presses_are_queued_and_taken_once() {
        let mut board = SimBoard::new(1);
        board.press_button();
        board.press_button();
        assert_eq!(board.poll_event(), Some(BoardEvent::ButtonPressed));
        assert_eq!(board.poll_event(), Some(BoardEvent::ButtonPressed));
        assert_eq!(board.poll_event(), None);
    }
}
