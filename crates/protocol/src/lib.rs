//! The wire protocol between an ESP32 device (real or emulated by espsim) and its apps.
//!
//! Every WebSocket text message is one JSON object, internally tagged by `"type"` (snake_case):
//! [`ClientMessage`] flows app → device, [`DeviceMessage`] device → app. Requests may carry a
//! numeric `id` (an unsigned 64-bit integer chosen by the app); every direct reply echoes it, and
//! unsolicited messages (`telemetry`, `event`, broadcast `provisioning`) carry none.
//!
//! Decoding is strict on purpose: a message must fit in [`MAX_MESSAGE_SIZE`] bytes (checked before
//! any parsing), a key may appear only once per object (readers disagree on which of two wins),
//! and fields a message kind does not define are rejected (`deny_unknown_fields`) so
//! that a typo in an app (`"intervall_ms"`) surfaces as an `error` reply instead of being silently
//! ignored. Every failure is a typed [`DecodeError`] with a stable [`DecodeError::code`] and the
//! request `id` when one could be read, which is exactly what the device puts in its `error` reply.
//!
//! - [`client`] / [`device`]: the message kinds and their bodies.
//! - [`types`]: values shared by several messages (config, states, error codes).
//! - [`decode()`](decode()) / [`encode()`](encode()): bytes ↔ messages; [`error`]: [`DecodeError`].
//! - [`message_type()`]: the `type` exactly as the decoder reads it, for logs and fault rules.
//!
//! `#![no_std]` + `alloc`: the same crate runs on the chip. The `std` feature only links `std`;
//! the `schema` feature adds JSON Schema export (`client_schema()`, `device_schema()`).

#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[macro_use]
mod macros;
pub mod client;
mod codec;
pub mod device;
pub mod error;
mod strict;
pub mod types;

pub use client::ClientMessage;
pub use codec::{decode, decode_device, encode, encode_client, message_type};
pub use device::DeviceMessage;
pub use error::DecodeError;
pub use types::{
    Capability, ConfigPatch, DeviceConfig, DeviceEventKind, ErrorCode, FailureReason,
    ProvisioningState, TemperatureUnit, WifiState,
};

/// Largest message (in bytes) either side accepts; larger input is rejected before parsing.
///
/// It is the `max_len` an ESP-IDF WebSocket handler allocates for one frame.
pub const MAX_MESSAGE_SIZE: usize = 4096;

/// Version of this protocol, sent in `welcome`. Bumped on any incompatible wire change.
pub const PROTOCOL_VERSION: u32 = 1;

/// JSON Schema (draft 2020-12) of every app → device message, for app code generators.
#[cfg(feature = "schema")]
pub fn client_schema() -> schemars::Schema {
    schemars::schema_for!(ClientMessage)
}

/// JSON Schema (draft 2020-12) of every device → app message, for app code generators.
#[cfg(feature = "schema")]
pub fn device_schema() -> schemars::Schema {
    schemars::schema_for!(DeviceMessage)
}
