//! Connect faults: what happens to a TCP connection attempt on a device port.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Connect-level faults, decided when a TCP connection arrives on a device port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectFault {
    /// The listening socket is closed while the rule is active, so the kernel answers the SYN
    /// with RST and the app gets "connection refused" (ECONNREFUSED). Time-scoped only
    /// (`at`/`for`/`after`): a refused attempt never reaches the device, so it cannot be counted.
    Refuse,
    /// Accept, then close with SO_LINGER 0: the app gets "connection reset by peer" before any byte.
    ResetOnAccept,
    /// Accept, then send FIN before any byte: the app sees the connection closed (EOF).
    CloseOnAccept,
    /// Accept and never read or write; the connection is held until the rule's window ends or the
    /// emulator shuts down. The app only notices through its own connect/handshake timeout.
    Stall,
}
