//! A phone in a network namespace, for testing what an app does when the phone — not the
//! device — is the problem.
//!
//! Joined to an ESP32 softAP that fails its connectivity check, Android with mobile data on
//! makes cellular the default network: the app's unbound sockets and DNS leave over cellular
//! and its request to 192.168.4.1 times out, while the same request from a socket bound to the
//! Wi-Fi works. [`Phone`] builds that phone: a `wlan0` to the device's namespace
//! (192.168.4.0/24), an `rmnet0` to a fake carrier that drops what it cannot deliver, and the
//! OS's routing, decided from the answer the device really gives to the OS's check.
//!
//! - [`PhoneSpec`]: `{ os, mobile_data, bind_wifi }`, the scenario's `phone:` section.
//! - [`Phone`]: create → [`Phone::evaluate`] / [`Phone::follow`] → teardown (also on drop).
//! - [`verdict`] (what the OS concludes) and [`policy`] (how it routes) are pure.
//! - [`PhoneEvent`]: verdicts, routings and every connection seen leaving over cellular.
//! - [`NamespaceThread`]: run a service (the emulator, a client) with all its sockets inside
//!   one of the phone's namespaces.
//!
//! Linux only; needs CAP_NET_ADMIN and CAP_SYS_ADMIN (root) and iproute2's `ip`.

#![warn(missing_docs)]

mod carrier;
mod error;
mod events;
mod ip;
mod netns;
mod phone;
pub mod policy;
mod probe;
mod spec;
mod topology;
pub mod verdict;

pub use carrier::fake_address;
pub use error::PhoneError;
pub use events::{EventSink, PhoneEvent};
pub use netns::{NamespaceThread, netns_command};
pub use phone::{MAX_RECHECK, MIN_RECHECK, Phone, check_privileges, terminate};
pub use policy::{Network, Routing};
pub use spec::{MobileData, Os, PhoneSpec};
pub use topology::{
    CARRIER_RESOLVER, CELL_IF, DEVICE_IP, Namespaces, PHONE_CELL_IP, PHONE_WIFI_IP, WIFI_IF,
};
pub use verdict::{ProbeOutcome, WifiVerdict};
