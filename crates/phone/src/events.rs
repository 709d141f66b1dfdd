//! What a phone reports: one JSON object per line (`{"event":"verdict",…}`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use serde::Serialize;

use crate::policy::Routing;
use crate::verdict::ProbeOutcome;

/// One thing the phone did or saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PhoneEvent {
    /// The namespaces exist and are wired; nothing routes yet.
    NamespacesCreated {
        /// The phone's namespace (`ip netns exec NAME` runs a command "on the phone").
        phone: String,
        /// The device's (softAP's) namespace: the emulator serves 192.168.4.1 there.
        ap: String,
        /// The carrier's namespace, when mobile data is on.
        carrier: Option<String>,
    },
    /// A connectivity check's result; emitted first and whenever the verdict changes.
    Verdict(ProbeOutcome),
    /// The routing the OS applies after a verdict; emitted first and whenever it changes.
    Routing(Routing),
    /// A connection attempt that left the phone over cellular (seen arriving at the carrier).
    CellularConnection {
        /// `tcp` (a SYN) or `udp` (a datagram to somewhere other than the carrier's resolver).
        proto: &'static str,
        /// The phone's address and port.
        from: SocketAddrV4,
        /// Where it was going.
        to: SocketAddrV4,
    },
    /// A DNS question the carrier's resolver answered (the phone resolved over cellular).
    CellularDns {
        /// The name asked.
        name: String,
        /// The record type (`A`, `AAAA`, …).
        qtype: String,
        /// The fake-internet address given (A questions only).
        answer: Option<Ipv4Addr>,
    },
}

/// Where events go: called once per event, from any task.
pub type EventSink = Arc<dyn Fn(PhoneEvent) + Send + Sync>;
