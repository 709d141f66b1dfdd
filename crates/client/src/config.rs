//! What the client does: [`ClientProfile`] names a behaviour, [`ClientConfig`] spells it out.
//!
//! `good` follows every rule the seed documents recommend; each other profile breaks exactly one,
//! so an expectation that passes for `good` and fails for that profile is proven to test the rule.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A named client behaviour. `good` is the default; the others each break one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClientProfile {
    /// Connect timeout, exponential backoff with jitter and a cap, heartbeat, queued sends,
    /// `hello` first, close 1000 when leaving.
    #[default]
    Good,
    /// Reconnects at once after every failure or drop: no backoff (a reconnect storm).
    Naive,
    /// No heartbeat: a silently dead link is never noticed.
    Silent,
    /// Leaves by dropping the TCP socket: no close frame.
    Impolite,
    /// No connect timeout: waits as long as the OS (and the device) let it.
    Patient,
}

impl ClientProfile {
    /// Every profile, `good` first.
    pub const ALL: [ClientProfile; 5] = [
        ClientProfile::Good,
        ClientProfile::Naive,
        ClientProfile::Silent,
        ClientProfile::Impolite,
        ClientProfile::Patient,
    ];

    /// The profile's name, as `FromStr` accepts it.
    pub fn name(self) -> &'static str {
        match self {
            ClientProfile::Good => "good",
            ClientProfile::Naive => "naive",
            ClientProfile::Silent => "silent",
            ClientProfile::Impolite => "impolite",
            ClientProfile::Patient => "patient",
        }
    }

    /// The one rule this profile breaks, for listings and reports.
    pub fn description(self) -> &'static str {
        match self {
            ClientProfile::Good => "follows every rule (the reference)",
            ClientProfile::Naive => "reconnects immediately: no backoff",
            ClientProfile::Silent => "no heartbeat: never detects a dead link",
            ClientProfile::Impolite => "leaves without a close frame (drops the TCP socket)",
            ClientProfile::Patient => "no connect timeout",
        }
    }
}

impl fmt::Display for ClientProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is not one of [`ClientProfile::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown client profile `{0}` (known: good, naive, silent, impolite, patient)")]
pub struct UnknownProfile(pub String);

impl FromStr for ClientProfile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

/// Reconnect delays: `initial × factor^n`, capped at `max`, then shortened by up to `jitter`
/// (a fraction, 0–1) so clients that lost the device together do not return together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Growth per consecutive failure (≥ 1).
    pub factor: f64,
    /// Cap on the delay, before jitter.
    pub max: Duration,
    /// Fraction of the delay that is random: the delay lies in `[base × (1 − jitter), base]`.
    pub jitter: f64,
}

impl Backoff {
    /// What `good` uses: 500 ms, doubling, at most 30 s, up to 20 % shorter.
    pub const RECOMMENDED: Backoff = Backoff {
        initial: Duration::from_millis(500),
        factor: 2.0,
        max: Duration::from_secs(30),
        jitter: 0.2,
    };

    /// No delay at all (the `naive` profile).
    pub const NONE: Backoff = Backoff {
        initial: Duration::ZERO,
        factor: 1.0,
        max: Duration::ZERO,
        jitter: 0.0,
    };

    /// The delay before the retry that follows `failures` consecutive failures (1 = first
    /// retry), before jitter.
    pub fn base(&self, failures: u32) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let secs = self.initial.as_secs_f64() * factor.powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The jittered delay for `failures`, given `unit`, a random number in `[0, 1)`.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.base(failures)
            .mul_f64(1.0 - jitter * unit.clamp(0.0, 1.0))
    }
}

/// What the client sends to prove the link is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeartbeatKind {
    /// A protocol `ping` message, answered by the firmware's `pong`: proves the firmware runs.
    #[default]
    App,
    /// A WebSocket ping frame, answered by ESP-IDF's httpd itself (not by the firmware).
    WebSocket,
}

/// Heartbeat: a ping every `every`; no answer within `timeout` means the link is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Interval between pings.
    pub every: Duration,
    /// How long a ping may stay unanswered before the link is declared dead.
    pub timeout: Duration,
    /// App `ping` messages or WebSocket ping frames.
    pub kind: HeartbeatKind,
}

impl Heartbeat {
    /// What `good` uses: an app `ping` every 10 s, dead after 5 s without `pong`.
    pub const RECOMMENDED: Heartbeat = Heartbeat {
        every: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        kind: HeartbeatKind::App,
    };
}

/// Everything the client does. Build one with [`ClientConfig::for_profile`], then adjust.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `ws://host:port/path` (the reference client speaks plain `ws://` only).
    pub url: String,
    /// The profile this configuration was derived from (reported in events).
    pub profile: ClientProfile,
    /// Bound on TCP connect + WebSocket upgrade, and separately on waiting for `welcome`;
    /// `None` waits forever (`patient`).
    pub connect_timeout: Option<Duration>,
    /// Delays between reconnect attempts.
    pub backoff: Backoff,
    /// Liveness checks; `None` sends none (`silent`).
    pub heartbeat: Option<Heartbeat>,
    /// Sent in `hello` when the device requires one.
    pub token: Option<String>,
    /// `hello.client`.
    pub hello_name: String,
    /// `hello.version`.
    pub hello_version: String,
    /// Whether leaving sends close 1000 and waits for the device's close (false: `impolite`).
    pub close_on_leave: bool,
    /// How long leaving waits for the device's close frame after sending ours.
    pub close_timeout: Duration,
    /// Bound on writing one message; a device that stops reading is treated as a dead link.
    pub send_timeout: Duration,
    /// Most messages kept while disconnected; the oldest is dropped beyond it.
    pub max_queue: usize,
    /// Seed of the jitter, so a run can be repeated exactly.
    pub seed: u64,
}

impl ClientConfig {
    /// The configuration of `profile` against `url`.
    pub fn for_profile(url: impl Into<String>, profile: ClientProfile) -> Self {
        let good = ClientConfig {
            url: url.into(),
            profile,
            connect_timeout: Some(Duration::from_secs(10)),
            backoff: Backoff::RECOMMENDED,
            heartbeat: Some(Heartbeat::RECOMMENDED),
            token: None,
            hello_name: "espsim-client".to_owned(),
            hello_version: env!("CARGO_PKG_VERSION").to_owned(),
            close_on_leave: true,
            close_timeout: Duration::from_secs(2),
            send_timeout: Duration::from_secs(5),
            max_queue: 256,
            seed: 0,
        };
        match profile {
            ClientProfile::Good => good,
            ClientProfile::Naive => ClientConfig {
                backoff: Backoff::NONE,
                ..good
            },
            ClientProfile::Silent => ClientConfig {
                heartbeat: None,
                ..good
            },
            ClientProfile::Impolite => ClientConfig {
                close_on_leave: false,
                ..good
            },
            ClientProfile::Patient => ClientConfig {
                connect_timeout: None,
                ..good
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_by_name_and_unknown_names_list_the_known_ones() {
        for p in ClientProfile::ALL {
            assert_eq!(p.name().parse::<ClientProfile>(), Ok(p));
        }
        let err = "rude".parse::<ClientProfile>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown client profile `rude` (known: good, naive, silent, impolite, patient)"
        );
    }

    #[test]
    fn each_bad_profile_differs_from_good_in_exactly_one_rule() {
        let good = ClientConfig::for_profile("ws://x/ws", ClientProfile::Good);
        for p in ClientProfile::ALL.into_iter().skip(1) {
            let c = ClientConfig::for_profile("ws://x/ws", p);
            let differences = [
                c.backoff != good.backoff,
                c.heartbeat != good.heartbeat,
                c.close_on_leave != good.close_on_leave,
                c.connect_timeout != good.connect_timeout,
            ];
            assert_eq!(differences.iter().filter(|d| **d).count(), 1, "{p}");
        }
    }

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_millis(500),
            jitter: 0.5,
        };
        let bases: Vec<u128> = (1..=5).map(|n| b.base(n).as_millis()).collect();
        assert_eq!(bases, [100, 200, 400, 500, 500]);
        assert_eq!(b.delay(2, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(2, 0.5), Duration::from_millis(150));
        assert_eq!(
            b.base(u32::MAX),
            b.max,
            "huge exponents saturate at the cap"
        );
        assert_eq!(Backoff::NONE.delay(7, 0.9), Duration::ZERO);
    }
}
