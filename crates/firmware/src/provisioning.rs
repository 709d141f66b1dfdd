//! The station (home Wi-Fi) state machine behind `provision`.
//!
//! `Unprovisioned | Connected | Failed` --provision--> `Joining(AwaitingApDown)` --delay-->
//! `Joining(ApDown)` (host told `ApDown`) --duration--> `Connected | Failed`.

use alloc::string::{String, ToString};

use espsim_protocol::device::ProvisioningUpdate;
use espsim_protocol::{FailureReason, ProvisioningState, WifiState};

use crate::board::WifiCredentials;

/// Where the station is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Station {
    Unprovisioned,
    Joining {
        credentials: WifiCredentials,
        phase: Phase,
    },
    Connected {
        ssid: String,
    },
    Failed {
        ssid: String,
        reason: FailureReason,
    },
}

/// The two timed phases of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `ack` sent; the AP goes down at `at`.
    AwaitingApDown { at: u64 },
    /// AP down; the join result is known at `until`, when the AP is back.
    ApDown { until: u64 },
}

impl Station {
    /// The state after a join attempt on `ssid`.
    pub(crate) fn joined(ssid: &str, outcome: Result<(), FailureReason>) -> Self {
        match outcome {
            Ok(()) => Station::Connected {
                ssid: ssid.to_string(),
            },
            Err(reason) => Station::Failed {
                ssid: ssid.to_string(),
                reason,
            },
        }
    }

    pub(crate) fn wifi_state(&self) -> WifiState {
        match self {
            Station::Unprovisioned => WifiState::Unprovisioned,
            Station::Joining { .. } => WifiState::Connecting,
            Station::Connected { .. } => WifiState::Connected,
            Station::Failed { .. } => WifiState::Failed,
        }
    }

    /// When the next phase change is due.
    pub(crate) fn deadline(&self) -> Option<u64> {
        match self {
            Station::Joining {
                phase: Phase::AwaitingApDown { at },
                ..
            } => Some(*at),
            Station::Joining {
                phase: Phase::ApDown { until },
                ..
            } => Some(*until),
            _ => None,
        }
    }

    /// The state as a `provisioning` message (no `id`); `None` when unprovisioned.
    pub(crate) fn report(&self) -> Option<ProvisioningUpdate> {
        let (state, ssid, reason) = match self {
            Station::Unprovisioned => return None,
            Station::Joining { credentials, .. } => {
                (ProvisioningState::Connecting, &credentials.ssid, None)
            }
            Station::Connected { ssid } => (ProvisioningState::Connected, ssid, None),
            Station::Failed { ssid, reason } => (ProvisioningState::Failed, ssid, Some(*reason)),
        };
        Some(ProvisioningUpdate {
            id: None,
            state,
            ssid: ssid.clone(),
            reason,
        })
    }
}
