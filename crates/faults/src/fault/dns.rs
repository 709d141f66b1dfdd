//! DNS faults: the captive DNS answers wrongly, late or not at all (`{ dns: … }`).

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DelayParams;

/// DNS faults, decided per query. Restrict them to names with `when: { name: "*.gstatic.com" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "dns", rename_all = "snake_case")]
pub enum DnsFault {
    /// Answer NXDOMAIN (the name does not exist).
    Nxdomain,
    /// Answer SERVFAIL.
    Servfail,
    /// Answer REFUSED.
    Refused,
    /// Send no reply at all (the app's resolver times out).
    NoReply,
    /// Answer with this address instead of the device's.
    WrongAddress(WrongAddress),
    /// Answer normally, but late.
    Delay(DelayParams),
}

/// Parameters of `{ dns: wrong_address }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WrongAddress {
    /// The address answered, e.g. "192.168.4.99".
    pub ip: IpAddr,
}
