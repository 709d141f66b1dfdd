//! The device's view of "the internet": what OS connectivity checks and DNS see.

use std::sync::atomic::{AtomicU8, Ordering};

pub use espsim_faults::{InternetMode, UnknownInternetMode};

/// Compact encoding for the atomic switch.
fn to_u8(mode: InternetMode) -> u8 {
    match mode {
        InternetMode::Online => 0,
        InternetMode::Captive => 1,
        InternetMode::Offline => 2,
    }
}

fn from_u8(v: u8) -> InternetMode {
    match v {
        0 => InternetMode::Online,
        1 => InternetMode::Captive,
        _ => InternetMode::Offline,
    }
}

/// The current mode, switchable at run time from any task (read on every request).
#[derive(Debug)]
pub struct InternetSwitch(AtomicU8);

impl InternetSwitch {
    /// A switch starting in `mode`.
    pub fn new(mode: InternetMode) -> Self {
        InternetSwitch(AtomicU8::new(to_u8(mode)))
    }

    /// The mode now.
    pub fn get(&self) -> InternetMode {
        from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Switches to `mode`; returns the previous mode.
    pub fn set(&self, mode: InternetMode) -> InternetMode {
        from_u8(self.0.swap(to_u8(mode), Ordering::Relaxed))
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
