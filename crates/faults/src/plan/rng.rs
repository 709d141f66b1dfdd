//! The plan's randomness: every draw is a keyed hash of the seed, the rule and the occasion, so
//! that a seed replays whatever else happens in between (see the module `plan`).

use std::hash::{BuildHasher, Hasher};

use super::{ConnRef, RuleId};
use crate::when::Service;

/// A seed from the OS-seeded std hasher keys and the clock, for runs that do not give one.
pub(super) fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Separates the kinds of occasion a random draw can be about (first word of an [`Occasion`]).
pub(super) mod tag {
    pub(in crate::plan) const CONNECT: u64 = 1;
    pub(in crate::plan) const STREAM: u64 = 2;
    pub(in crate::plan) const HANDSHAKE: u64 = 3;
    pub(in crate::plan) const MESSAGE: u64 = 4;
    pub(in crate::plan) const TICK: u64 = 5;
    pub(in crate::plan) const NTH: u64 = 6;
    pub(in crate::plan) const STREAM_SEED: u64 = 7;
}

/// What a random draw is about: a tag and up to four numbers naming the occasion.
pub(super) type Occasion = [u64; 5];

/// The numbers a connection contributes to an occasion.
pub(super) fn conn_words(conn: ConnRef) -> [u64; 2] {
    let service = match conn.service {
        Service::Http => 1,
        Service::Https => 2,
        Service::Dns => 3,
    };
    [service, conn.ordinal]
}

/// SplitMix64's finalizer: a bijective mix with full avalanche (fixed forever, so that seeds
/// replay across versions).
pub(super) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit hash of `words`, in order.
pub(super) fn mix(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x6a09_e667_f3bc_c909, |h, w| splitmix64(h ^ splitmix64(*w)))
}

/// A number uniform in [0, 1) determined by the seed, the rule and the occasion alone.
pub(super) fn draw(seed: u64, rule: RuleId, occasion: &Occasion) -> f64 {
    let mut words = [0u64; 7];
    words[0] = seed;
    words[1] = rule.0;
    words[2..].copy_from_slice(occasion);
    // The top 53 bits, as an f64 in [0, 1).
    (mix(&words) >> 11) as f64 / (1u64 << 53) as f64
}
