//! The settings record the bare-metal ESP32-C3 build keeps in one flash sector (it has no NVS):
//! the saved [`DeviceConfig`] and home Wi-Fi credentials, encoded so that a torn or foreign
//! sector reads as "nothing saved" instead of garbage.
//!
//! Layout (little-endian): magic `ESPS`, format version `1`, payload length `u16`, payload,
//! CRC-32 (IEEE) of everything before it. Payload: a presence byte and the config
//! (name, `telemetry_interval_ms` `u64`, unit byte), then a presence byte and the credentials
//! (ssid, password); strings are a `u8` length and UTF-8 bytes.

use alloc::string::String;
use alloc::vec::Vec;

use espsim_protocol::{DeviceConfig, TemperatureUnit};

use crate::board::WifiCredentials;

/// First bytes of a record.
pub const MAGIC: [u8; 4] = *b"ESPS";
/// Format version.
pub const VERSION: u8 = 1;
/// Largest encoded record: header, two presence bytes, four strings of at most 255 bytes, the
/// interval, the unit and the CRC. Fits one 4 KiB flash sector.
pub const MAX_RECORD: usize = 4 + 1 + 2 + 2 + 4 * (1 + 255) + 8 + 1 + 4;
const _: () = assert!(MAX_RECORD <= 4096, "a record must fit one flash sector");

/// What the chip keeps across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Saved {
    /// The app's configuration (`set_config`).
    pub config: Option<DeviceConfig>,
    /// Home network joined by `provision`.
    pub wifi: Option<WifiCredentials>,
}

/// Why a record could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string is longer than a record holds.
    #[error("`{field}` is {len} bytes; a flash record holds at most 255")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
}

impl Saved {
    /// The record's bytes (at most [`MAX_RECORD`]).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut payload = Vec::new();
        match &self.config {
            None => payload.push(0),
            Some(config) => {
                payload.push(1);
                put_str(&mut payload, "name", &config.name)?;
                payload.extend_from_slice(&config.telemetry_interval_ms.to_le_bytes());
                payload.push(match config.temperature_unit {
                    TemperatureUnit::Celsius => 0,
                    TemperatureUnit::Fahrenheit => 1,
                });
            }
        }
        match &self.wifi {
            None => payload.push(0),
            Some(wifi) => {
                payload.push(1);
                put_str(&mut payload, "ssid", &wifi.ssid)?;
                put_str(&mut payload, "password", &wifi.password)?;
            }
        }
        let len = u16::try_from(payload.len()).map_err(|_| EncodeError::TooLong {
            field: "record",
            len: payload.len(),
        })?;
        let mut out = Vec::with_capacity(payload.len() + 11);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Reads a record from the start of `bytes` (a sector's contents). Anything that is not a
    /// whole, checksummed record of this version — an erased sector (`0xFF…`), a write cut by a
    /// reset, another firmware's data — is `None`.
    pub fn decode(bytes: &[u8]) -> Option<Saved> {
        let header = bytes.get(..7)?;
        if header[..4] != MAGIC || header[4] != VERSION {
            return None;
        }
        let len = usize::from(u16::from_le_bytes([header[5], header[6]]));
        let body_end = 7usize.checked_add(len)?;
        let stored = bytes.get(body_end..body_end.checked_add(4)?)?;
        let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
        if crc32(&bytes[..body_end]) != stored {
            return None;
        }
        let mut r = Reader(&bytes[7..body_end]);
        let config = match r.byte()? {
            0 => None,
            1 => Some(DeviceConfig {
                name: r.string()?,
                telemetry_interval_ms: r.u64()?,
                temperature_unit: match r.byte()? {
                    0 => TemperatureUnit::Celsius,
                    1 => TemperatureUnit::Fahrenheit,
                    _ => return None,
                },
            }),
            _ => return None,
        };
        let wifi = match r.byte()? {
            0 => None,
            1 => Some(WifiCredentials {
                ssid: r.string()?,
                password: r.string()?,
            }),
            _ => return None,
        };
        r.0.is_empty().then_some(Saved { config, wifi })
    }
}

fn put_str(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), EncodeError> {
    let len = u8::try_from(s.len()).map_err(|_| EncodeError::TooLong {
        field,
        len: s.len(),
    })?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A cursor over the payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::from(self.byte()?);
        let bytes = self.take(len)?;
        core::str::from_utf8(bytes).ok().map(String::from)
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it), bitwise: the record is small.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn sample() -> Saved {
        Saved {
            config: Some(DeviceConfig {
                name: "kitchen".to_string(),
                telemetry_interval_ms: 2_500,
                temperature_unit: TemperatureUnit::Fahrenheit,
            }),
            wifi: Some(WifiCredentials {
                ssid: "home".to_string(),
                password: "correct horse".to_string(),
            }),
        }
    }

    #[test]
    fn a_record_round_trips_and_fits_a_sector() {
        for saved in [sample(), Saved::default()] {
            let bytes = saved.encode().expect("encodes");
            assert!(bytes.len() <= MAX_RECORD);
            // What follows the record in the sector (erased flash) is ignored.
            let mut sector = bytes.clone();
            sector.resize(4096, 0xFF);
            assert_eq!(Saved::decode(&sector), Some(saved));
        }
    }

    #[test]
    fn erased_torn_or_corrupt_sectors_read_as_nothing_saved() {
        assert_eq!(Saved::decode(&vec![0xFF; 4096]), None);
        assert_eq!(Saved::decode(&[]), None);
        let bytes = sample().encode().expect("encodes");
        for cut in 0..bytes.len() {
            assert_eq!(Saved::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            assert_eq!(Saved::decode(&flipped), None, "bit flip at {i}");
        }
    }

    #[test]
    fn over_long_strings_are_refused_not_truncated() {
        let mut saved = sample();
        if let Some(wifi) = saved.wifi.as_mut() {
            wifi.password = "x".repeat(256);
        }
        assert_eq!(
            saved.encode(),
            Err(EncodeError::TooLong {
                field: "password",
                len: 256
            })
        );
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
