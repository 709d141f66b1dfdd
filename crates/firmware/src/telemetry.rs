//! Per-connection telemetry schedules and turning a sensor reading into a `telemetry` message.

use espsim_protocol::TemperatureUnit;
use espsim_protocol::device::Telemetry;

use crate::board::SensorReading;

/// One connection's subscription: a fixed interval anchored at `subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) interval_ms: u64,
    next_at: u64,
    seq: u64,
}

impl Subscription {
    /// A subscription whose first sample is due at `now_ms` (sent right after the `ack`).
    pub(crate) fn new(interval_ms: u64, now_ms: u64) -> Self {
        Subscription {
            interval_ms,
            next_at: now_ms,
            seq: 0,
        }
    }

    /// When the next sample is due.
    pub(crate) fn next_at(&self) -> u64 {
        self.next_at
    }

    /// If a sample is due at `now_ms`, its `seq`; advances the schedule. Samples missed because
    /// the host ticked late are skipped, not sent in a burst (a real device cannot catch up either).
    pub(crate) fn take_due(&mut self, now_ms: u64) -> Option<u64> {
        if now_ms < self.next_at {
            return None;
        }
        self.seq += 1;
        self.next_at = self.next_at.saturating_add(self.interval_ms);
        if self.next_at <= now_ms {
            self.next_at = now_ms.saturating_add(self.interval_ms);
        }
        Some(self.seq)
    }
}

/// The `telemetry` message for one reading: temperature converted to `unit`, both values rounded
/// to 0.1, non-finite values dropped (JSON has no NaN).
pub(crate) fn telemetry(
    reading: SensorReading,
    unit: TemperatureUnit,
    seq: u64,
    uptime_ms: u64,
) -> Telemetry {
    let temperature = reading.temperature_c.map(|c| match unit {
        TemperatureUnit::Celsius => c,
        TemperatureUnit::Fahrenheit => c * 9.0 / 5.0 + 32.0,
    });
    Telemetry {
        seq,
        timestamp_ms: uptime_ms,
        temperature: temperature.and_then(round_tenth),
        unit,
        humidity: reading.humidity_pct.and_then(round_tenth),
    }
}

/// Rounds to one decimal (half away from zero); `None` for NaN/∞. `core` has no `f32::round`.
fn round_tenth(value: f32) -> Option<f32> {
    if !value.is_finite() || value.abs() > 1.0e9 {
        return None;
    }
    let scaled = value * 10.0;
    let rounded = if scaled >= 0.0 {
        (scaled + 0.5) as i64
    } else {
        (scaled - 0.5) as i64
    };
    Some(rounded as f32 / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_follow_the_interval_and_skip_missed_ones() {
        let mut sub = Subscription::new(1_000, 5_000);
        assert_eq!(sub.take_due(5_000), Some(1));
        assert_eq!(sub.take_due(5_999), None);
        assert_eq!(sub.take_due(6_000), Some(2));
        // Host ticked 3.5 intervals late: one sample, then back on a fresh grid.
        assert_eq!(sub.take_due(9_500), Some(3));
        assert_eq!(sub.next_at(), 10_500);
        assert_eq!(sub.take_due(10_000), None);
    }

    #[test]
    fn readings_are_rounded_converted_and_sanitized() {
        let reading = SensorReading {
            temperature_c: Some(21.36),
            humidity_pct: Some(f32::NAN),
        };
        let c = telemetry(reading, TemperatureUnit::Celsius, 1, 10);
        assert_eq!(c.temperature, Some(21.4));
        assert_eq!(c.humidity, None);
        let f = telemetry(reading, TemperatureUnit::Fahrenheit, 1, 10);
        assert_eq!(f.temperature, Some(70.4));
        assert_eq!(round_tenth(-0.25), Some(-0.3));
        assert_eq!(round_tenth(f32::INFINITY), None);
    }
}
