//! The device's view of "the internet": what OS connectivity checks and DNS see.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

/// What a phone joined to the AP concludes about internet access, as the emulator stages it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
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

    fn to_u8(self) -> u8 {
        match self {
            InternetMode::Online => 0,
            InternetMode::Captive => 1,
            InternetMode::Offline => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => InternetMode::Online,
            1 => InternetMode::Captive,
            _ => InternetMode::Offline,
        }
    }
}

impl fmt::Display for InternetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown internet mode name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown internet mode `{0}` (expected online, captive or offline)")]
pub struct UnknownInternetMode(pub String);

impl FromStr for InternetMode {
    type Err = UnknownInternetMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InternetMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownInternetMode(s.to_owned()))
    }
}

/// The current mode, switchable at run time from any task (read on every request).
#[derive(Debug)]
pub struct InternetSwitch(AtomicU8);

impl InternetSwitch {
    /// A switch starting in `mode`.
    pub fn new(mode: InternetMode) -> Self {
        InternetSwitch(AtomicU8::new(mode.to_u8()))
    }

    /// The mode now.
    pub fn get(&self) -> InternetMode {
        InternetMode::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Switches to `mode`; returns the previous mode.
    pub fn set(&self, mode: InternetMode) -> InternetMode {
        InternetMode::from_u8(self.0.swap(mode.to_u8(), Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_names() {
        for m in InternetMode::ALL {
            assert_eq!(m.as_str().parse::<InternetMode>(), Ok(m));
        }
        assert!("captive-ish".parse::<InternetMode>().is_err());
    }

    #[test]
    fn switch_returns_the_previous_mode() {
        let s = InternetSwitch::new(InternetMode::Captive);
        assert_eq!(s.set(InternetMode::Online), InternetMode::Captive);
        assert_eq!(s.get(), InternetMode::Online);
    }
}
