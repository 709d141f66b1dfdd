//! The bounds on every value a fault rule can carry, and on the number of rules in a plan.
//!
//! A rule that passes validation can be carried out without overflowing a clock, exhausting
//! memory or slowing every decision down: each duration, size, count, rate and text has a
//! ceiling here, and [`FaultRule::validate`](crate::FaultRule::validate) names the ceiling in
//! its error. The values are far above anything a test of an ESP32 app needs (the chip has
//! 520 KiB of RAM and ESP-IDF's httpd serves at most a few dozen sockets).

use std::time::Duration;

/// Longest duration a rule can carry: `at`, `for`, every `delay`, `latency`, `jitter`, the
/// `timeout` of `reset_peer` and `timeout`, a reboot's `down`, an `ap_down`'s `for` (24 h).
/// Larger values used to overflow the run's clock and stop a device port for good.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Most rules one plan holds (scenario list plus rules added at run time). Every connection,
/// message and DNS query is checked against every rule, so the count bounds the cost of each.
pub const MAX_RULES: usize = 1000;

/// Largest `ws: oversize` message, in bytes (4 MiB: eight times an ESP32's whole RAM, and the
/// message is built in memory once per session that gets it).
pub const MAX_OVERSIZE_BYTES: usize = 4 * 1024 * 1024;

/// Largest `bytes` of a handshake cut `at: mid_response` (the `101` is a few hundred bytes).
pub const MAX_CUT_BYTES: usize = 4096;

/// Largest `average_size` and `size_variation` of a `stream: slicer`, in bytes (64 KiB, four
/// times the largest chunk a stream moves at once).
pub const MAX_SLICE_BYTES: usize = 64 * 1024;

/// Largest byte count a rule can name: `limit_data`'s `bytes` and the `bytes:` trigger (1 TiB).
pub const MAX_BYTE_COUNT: u64 = 1 << 40;

/// Largest count a rule can name: the `connections:` and `messages:` triggers and `every`.
pub const MAX_COUNT: u64 = 1_000_000_000;

/// Highest `stream: bandwidth` rate, in KB/s (10 GB/s: more than loopback carries).
pub const MAX_RATE_KBPS: u64 = 10_000_000;

/// Most socket slots a `device: socket_exhaustion` can take.
pub const MAX_SOCKETS: usize = 1024;

/// Longest text a rule carries in a name or a match: `name`, `after`, the `name`, `host`,
/// `path` and `message_type` patterns and `qtype`, in bytes.
pub const MAX_TEXT_BYTES: usize = 256;

/// Longest `body` of a `handshake: status`, in bytes (ESP-IDF's own error pages are far smaller).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest close reason of a `ws: close`, in bytes (RFC 6455: a control frame carries at most
/// 125 bytes, two of them the code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// Most distinct events (app message types) a plan remembers for `after:` rules. The app
/// chooses the names, so they are bounded: once this many are remembered, a new one is kept
/// only when a rule waits for it. Names longer than [`MAX_TEXT_BYTES`] are never kept (no rule
/// can name them).
pub const MAX_OBSERVED_EVENTS: usize = 1024;
