//! Fault injection for espsim: the vocabulary, the triggers, the seeded plan and validation.
//! Pure: no sockets, no runtime; the emulator's `net` module (`espsim_emulator::net`) carries
//! the plan's decisions out on real sockets.
//!
//! - [`Fault`] (module `fault`): every fault a scenario can name: connect, handshake, stream
//!   (Toxiproxy toxics), WebSocket, DNS, device.
//! - [`When`] (module `when`): when a rule applies: time windows, connection/message/byte
//!   counts, `every`, `after` an event, seeded `probability`, service and name/host/path.
//! - [`FaultPlan`] (module `plan`): the rules and the run's seed; the services ask it
//!   `on_connect`, `stream_faults`, `on_handshake`, `on_ws_message`, `on_dns`,
//!   `device_timeline`. Each random decision is drawn from the seed, the rule and the occasion
//!   (connection, message or query number), so a seed means the same faults whatever else
//!   happens in between.
//! - [`MessageMatch`] (module `message`): which WebSocket messages a rule's `message_type` (and
//!   the harness's expectations) mean: the device's label for a message, or a test of its JSON,
//!   text or binary payload.
//! - [`limits`]: the bounds validation puts on every value a rule carries and on the number of
//!   rules.
//! - [`duration`]: the one duration grammar of every file a user writes (`250ms`, `1m 30s`)
//!   and its serde adapters `human` / `human_opt`, used by the scenario and expectation types
//!   too.
//!
//! A scenario's `faults:` list deserializes into `Vec<FaultRule>`:
//!
//! ```
//! use std::time::Duration;
//! use espsim_faults::{ConnRef, FaultPlan, FaultRule, HandshakeInfo, Service};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rules: Vec<FaultRule> = serde_json::from_str(r#"[
//!   { "when": { "connections": "1-2" }, "fault": { "handshake": "reset", "at": "after_request" } },
//!   { "when": { "at": "20s", "for": "5s" }, "fault": "refuse" }
//! ]"#)?;
//! let plan = FaultPlan::new(rules, Some(7))?;
//! assert_eq!(plan.seed(), 7);
//!
//! let first = HandshakeInfo {
//!     conn: ConnRef { service: Service::Http, ordinal: 1 },
//!     elapsed: Duration::from_secs(1),
//!     host: Some("192.168.4.1"),
//!     path: "/ws",
//! };
//! assert!(plan.on_handshake(first).is_some()); // the first upgrade is reset
//! assert!(plan.refusing(Service::Http, Duration::from_secs(21)).is_some());
//! # Ok(())
//! # }
//! ```
//!
//! Integration in the emulator, per service: its `RefusableListener` / `FaultyListener` ask
//! [`FaultPlan::refusing`], [`FaultPlan::on_connect`] and [`FaultPlan::stream_faults`]; it asks
//! [`FaultPlan::on_handshake`] after reading an upgrade request, [`FaultPlan::on_ws_message`]
//! for every message and [`FaultPlan::on_ws_tick`] at [`FaultPlan::next_boundary`], call
//! [`FaultPlan::observe`] with each app message `type` (arming `after:` rules), and follow
//! [`FaultPlan::device_timeline`] for device faults.

#![warn(missing_docs)]

pub mod duration;
pub mod fault;
pub mod limits;
pub mod message;
pub mod plan;
mod validate;
pub mod when;

pub use duration::{format_duration, parse_strict_duration};
pub use fault::{
    ApDown, Bandwidth, ConnectFault, Corrupt, CorruptKind, CutPoint, DelayParams, DeviceFault,
    DnsFault, Fault, HandshakeCut, HandshakeFault, HandshakeStatus, Internet, InternetMode,
    Latency, LimitData, MessageDirection, MessageParams, Oversize, Reboot, ResetPeer, Slicer,
    SlowClose, SocketExhaustion, StreamDirection, StreamFault, SuppressPong, TimeoutToxic,
    UnknownInternetMode, WrongAddress, WsClose, WsDelay, WsFault,
};
pub use message::{MessageMatch, PayloadMatch, SeenMessage};
pub use plan::{
    AddError, Applied, ConnInfo, ConnRef, DeviceWindow, DnsInfo, FaultPlan, FaultRule, FrameKind,
    HandshakeInfo, ListedRule, MessageInfo, PlanError, RuleError, RuleId, StreamFaults,
};
pub use when::{CountRange, Pattern, Probability, RangeError, Service, When};
