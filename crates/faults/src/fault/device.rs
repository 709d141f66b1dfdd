//! Device faults, placed on the run's timeline (`{ device: … }`), and the internet modes the
//! `internet` fault switches between.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::positive_usize;
use crate::duration::{DurationSchema, human};

/// What a phone joined to the AP concludes about internet access, as the emulator stages it
/// (the device's `internet` setting and the `{ device: internet }` fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InternetMode {
    /// Connectivity checks get each OS's exact success answer: the phone believes it is online.
    Online,
    /// The ESP-IDF captive-portal example: unknown URIs redirect to `/` ("Sign in to network").
    #[default]
    Captive,
    /// Plain ESP-IDF without a captive handler: 404 and close ("No internet").
    Offline,
}

impl InternetMode {
    /// Every mode, for help texts.
    pub const ALL: [InternetMode; 3] = [
        InternetMode::Online,
        InternetMode::Captive,
        InternetMode::Offline,
    ];

    /// The mode's name as used on the command line and in scenarios.
    pub fn as_str(self) -> &'static str {
        match self {
            InternetMode::Online => "online",
            InternetMode::Captive => "captive",
            InternetMode::Offline => "offline",
        }
    }
}

impl std::fmt::Display for InternetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown internet mode name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown internet mode `{0}` (expected online, captive or offline)")]
pub struct UnknownInternetMode(pub String);

impl std::str::FromStr for InternetMode {
    type Err = UnknownInternetMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InternetMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownInternetMode(s.to_owned()))
    }
}

/// Device faults, placed on the run's timeline (see [`FaultPlan::device_timeline`](crate::FaultPlan::device_timeline)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "device", rename_all = "snake_case")]
pub enum DeviceFault {
    /// Switch what connectivity checks see, for the rule's window (or for good).
    Internet(Internet),
    /// Everything goes down for `down`, then the device comes back with fresh state.
    Reboot(Reboot),
    /// The access point disappears for `for`.
    ApDown(ApDown),
    /// `sockets` of the device's socket slots are held, as if by other clients, for the rule's window.
    SocketExhaustion(SocketExhaustion),
}

/// Parameters of `{ device: internet }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Internet {
    /// The mode while the rule is active.
    pub mode: InternetMode,
}

/// Parameters of `{ device: reboot }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reboot {
    /// How long every service is down.
    #[serde(with = "human")]
    #[schemars(with = "DurationSchema")]
    pub down: Duration,
}

/// Parameters of `{ device: ap_down }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApDown {
    /// How long the access point is gone.
    #[serde(rename = "for", with = "human")]
    #[schemars(with = "DurationSchema")]
    pub duration: Duration,
}

/// Parameters of `{ device: socket_exhaustion }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SocketExhaustion {
    /// How many socket slots are taken (1 to 1024).
    #[serde(deserialize_with = "positive_usize")]
    #[schemars(range(min = 1, max = 1024))]
    pub sockets: usize,
}
