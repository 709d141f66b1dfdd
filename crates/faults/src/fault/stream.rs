//! Stream faults: Toxiproxy's toxics on an accepted connection's bytes (`{ stream: … }`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::positive_u64;
use super::positive_usize;
use crate::duration::{DurationSchema, human};

/// Which way through a connection a stream fault applies, seen from the app (Toxiproxy's `stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamDirection {
    /// App → device (what the device reads).
    Upstream,
    /// Device → app (what the device writes). Toxiproxy's default.
    #[default]
    Downstream,
    /// Both ways.
    Both,
}

impl StreamDirection {
    /// True when this direction covers app → device.
    pub fn upstream(self) -> bool {
        matches!(self, StreamDirection::Upstream | StreamDirection::Both)
    }

    /// True when this direction covers device → app.
    pub fn downstream(self) -> bool {
        matches!(self, StreamDirection::Downstream | StreamDirection::Both)
    }
}

/// Stream faults (Toxiproxy toxics), decided when a connection is accepted and applied by
/// the emulator's `FaultyStream` for the connection's lifetime.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "stream", rename_all = "snake_case")]
pub enum StreamFault {
    /// Delay every chunk by `latency` ± `jitter`.
    Latency(Latency),
    /// Limit throughput to `rate` KB/s (1 KB = 1000 bytes).
    Bandwidth(Bandwidth),
    /// Cut data into small pieces sent `delay` apart.
    Slicer(Slicer),
    /// Close the connection (FIN) once `bytes` bytes have passed.
    LimitData(LimitData),
    /// Abort the connection with RST `timeout` after it was accepted.
    ResetPeer(ResetPeer),
    /// Stop passing data both ways; close after `timeout` (0 = never close).
    Timeout(TimeoutToxic),
    /// Delay the device's close (FIN) by `delay`.
    SlowClose(SlowClose),
    /// Silently drop everything both ways, never sending FIN or RST: a peer that vanished.
    HalfOpen,
}

impl StreamFault {
    /// The toxic's name as written (`latency`, `bandwidth`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StreamFault::Latency(_) => "latency",
            StreamFault::Bandwidth(_) => "bandwidth",
            StreamFault::Slicer(_) => "slicer",
            StreamFault::LimitData(_) => "limit_data",
            StreamFault::ResetPeer(_) => "reset_peer",
            StreamFault::Timeout(_) => "timeout",
            StreamFault::SlowClose(_) => "slow_close",
            StreamFault::HalfOpen => "half_open",
        }
    }
}

/// Parameters of `{ stream: latency }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Added delay per chunk, e.g. "250ms".
    #[serde(with = "human")]
    #[schemars(with = "DurationSchema")]
    pub latency: Duration,
    /// Random ± variation of the delay, rolled per chunk with the run's seed (default 0).
    #[serde(default, with = "human")]
    #[schemars(with = "DurationSchema")]
    pub jitter: Duration,
    /// Which way the delay applies (default `downstream`).
    #[serde(default)]
    pub direction: StreamDirection,
}

/// Parameters of `{ stream: bandwidth }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// Maximum rate in KB/s (1 KB = 1000 bytes), 1 to 10,000,000.
    #[serde(deserialize_with = "positive_u64")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub rate: u64,
    /// Which way the limit applies (default `downstream`).
    #[serde(default)]
    pub direction: StreamDirection,
}

/// Parameters of `{ stream: slicer }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slicer {
    /// Average size of a slice in bytes, 1 to 65536.
    #[serde(deserialize_with = "positive_usize")]
    #[schemars(range(min = 1, max = 65_536))]
    pub average_size: usize,
    /// Random ± variation of the slice size in bytes (default 0, at most 65536), rolled with
    /// the run's seed.
    #[serde(default)]
    #[schemars(range(max = 65_536))]
    pub size_variation: usize,
    /// Pause between slices, e.g. "10ms" (Toxiproxy gives this in µs; write "500us").
    #[serde(default, with = "human")]
    #[schemars(with = "DurationSchema")]
    pub delay: Duration,
    /// Which way slicing applies (default `downstream`).
    #[serde(default)]
    pub direction: StreamDirection,
}

/// Parameters of `{ stream: limit_data }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitData {
    /// Number of bytes passed before the connection is closed.
    pub bytes: u64,
    /// Which way's bytes are counted (default `downstream`; `both` counts the sum).
    #[serde(default)]
    pub direction: StreamDirection,
}

/// Parameters of `{ stream: reset_peer }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPeer {
    /// Time after accept at which the connection is reset (default 0: at once).
    #[serde(default, with = "human")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
}

/// Parameters of `{ stream: timeout }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutToxic {
    /// Close (FIN) this long after accept; 0 (the default) = never close, data is dropped forever.
    #[serde(default, with = "human")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
}

/// Parameters of `{ stream: slow_close }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowClose {
    /// How long the device's close (FIN) is held back.
    #[serde(with = "human")]
    #[schemars(with = "DurationSchema")]
    pub delay: Duration,
}
