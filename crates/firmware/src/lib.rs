//! The device's application logic, shared by the ESP32 firmware and the espsim emulator.
//!
//! [`Device`] is a sans-IO state machine: the host (the chip's httpd glue in `esp32/`, or the
//! emulator's WebSocket service) feeds it connection events, text frames and clock ticks with an
//! explicit `now_ms` (milliseconds since boot), and executes the [`Action`]s it returns. It never
//! sleeps, spawns or touches a socket, so every behaviour is testable with a fake clock.
//!
//! - [`device`]: [`Device`], the request handlers and the auth gate.
//! - [`logic`]: [`DeviceLogic`], the device boundary every hosted device implements (the
//!   built-in [`Device`] on a [`SimBoard`] among them).
//! - [`board`]: the [`Board`] trait (sensors, outputs, storage, radio) the device runs on.
//! - [`settings`]: [`DeviceSettings`], what a host configures (identity, token, limits, timings).
//! - `telemetry` / `provisioning`: the two timers [`Device::on_tick`] drives.
//! - [`sim`]: [`SimBoard`], a deterministic seeded board for the emulator and tests.
//! - [`captive`] / [`flash`]: the off-chip-testable parts of the bare-metal ESP32-C3 entry point
//!   (`esp32c3/`): its HTTP answer table and limits, and its settings record in flash.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod board;
mod builtin;
pub mod captive;
pub mod device;
pub mod flash;
pub mod logic;
mod provisioning;
pub mod settings;
pub mod sim;
mod telemetry;

use alloc::string::String;

pub use board::{
    Board, BoardEvent, ButtonEdge, OutputError, SensorReading, StorageError, WifiCredentials,
};
pub use device::Device;
pub use espsim_protocol as protocol;
use espsim_protocol::DeviceMessage;
pub use logic::{DeviceLogic, Effect, Frame, HttpRequest, HttpResponse, Payload, SessionStart, To};
pub use settings::{DeviceSettings, Network};
pub use sim::SimBoard;

/// Identifies one WebSocket connection; chosen by the host, unique while the connection lives.
pub type ConnId = u64;

/// Something the host must do on the device's behalf.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Send `message` as one text frame (`espsim_protocol::encode`).
    Send {
        /// Who gets it.
        to: Recipient,
        /// The message.
        message: DeviceMessage,
    },
    /// Close the connection with a WebSocket close frame (e.g. 1008 after a failed auth).
    /// The device has already forgotten the connection.
    Close {
        /// The connection.
        conn: ConnId,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Provisioning: the softAP goes away for `duration_ms` (the radio is busy joining the home
    /// network), so every client connection drops. The device has already forgotten them all;
    /// the host should call [`Device::on_tick`] when the AP is back.
    ApDown {
        /// How long the AP is unreachable.
        duration_ms: u64,
    },
    /// `reboot` was accepted: after `delay_ms` the host drops every connection, restarts the chip
    /// (the emulator calls [`Device::restart`]).
    Restart {
        /// Delay before the restart, so the `ack` reaches the app.
        delay_ms: u64,
    },
}

/// Who a [`Action::Send`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// One connection.
    Conn(ConnId),
    /// Every connection the host has reported with [`Device::on_connect`] and not yet closed.
    /// Used only when no auth token is configured; with a token, broadcasts are expanded into one
    /// [`Recipient::Conn`] per authorized connection so unauthenticated sockets learn nothing.
    All,
}
