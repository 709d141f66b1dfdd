//! The faults on real sockets: the transport layer every service serves through.
//!
//! [`espsim_faults`] decides *what* happens to a connection (it has no sockets); this module
//! makes it happen on the wire:
//! - [`RefusableListener`] and [`FaultyListener`] (`listener`): refusal windows (the port stops
//!   listening but stays bound, so no other process takes it → kernel RST → ECONNREFUSED),
//!   the connect faults `reset_on_accept` (SO_LINGER 0), `close_on_accept` (FIN), `stall`, and
//!   every served connection wrapped in a [`FaultyStream`];
//! - [`FaultyStream`] (`stream`): the Toxiproxy-style stream faults per direction — latency,
//!   bandwidth, slicing, cut after N bytes, timeout, reset, half-open;
//! - [`ReleaseTimer`] (`release`): the sub-millisecond timer that releases a `latency` fault's
//!   chunks on time (a timerfd on Linux, Tokio's timer elsewhere and on paused time);
//! - [`Supervisor`] (`supervisor`): ties the tasks these spawn to the emulator's shutdown.
//!
//! Public so that the black-box tests in `tests/faulty_*.rs` can drive them over loopback.

pub mod listener;
pub mod release;
pub mod stream;
mod supervisor;

pub use listener::{FaultyListener, ListenerEvent, RefusableListener};
pub use release::ReleaseTimer;
pub use stream::{Abort, FaultyStream};
pub use supervisor::Supervisor;
