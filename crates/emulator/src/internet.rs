//! The device's view of "the internet": what OS connectivity checks and DNS see.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

pub use espsim_faults::{InternetMode, UnknownInternetMode};

use crate::events::{EventKind, EventLog};

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

/// The emulator's internet mode as its services see it (cheap to clone): connectivity checks
/// and DNS read it on every request; the control API and the device-fault timeline switch it,
/// and every switch is recorded (`internet_changed`).
#[derive(Debug, Clone)]
pub(crate) struct Internet {
    switch: Arc<InternetSwitch>,
    events: Arc<EventLog>,
}

impl Internet {
    /// The internet starting in `mode`, its switches recorded in `events`.
    pub(crate) fn new(mode: InternetMode, events: Arc<EventLog>) -> Self {
        Internet {
            switch: Arc::new(InternetSwitch::new(mode)),
            events,
        }
    }

    /// The mode now.
    pub(crate) fn get(&self) -> InternetMode {
        self.switch.get()
    }

    /// Switches the mode and records the change.
    pub(crate) fn set(&self, to: InternetMode) {
        let from = self.switch.set(to);
        if from != to {
            self.events.emit(EventKind::InternetChanged { from, to });
        }
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
