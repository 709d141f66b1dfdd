//! Runs on virtual time (`espsim test --virtual-time`): the emulator, the fault timeline and the
//! built-in client share one paused Tokio clock on a thread of their own.
//!
//! Tokio moves a paused clock only when every task of the runtime waits, and then straight to
//! the next timer; while a task is runnable, or a socket has data for one, the clock stands
//! still (Tokio polls the sockets once without waiting before each move, and a task woken then
//! keeps the clock where it is). On loopback the kernel hands a written segment to its reader
//! before `write` returns (or, on a loaded host, in this CPU's `ksoftirqd`, which the runtime
//! lets run before it parks), so no byte is in flight when the clock moves, and a run of one
//! seed takes the same steps every time — in the time its work takes, not its `duration`.
//!
//! What cannot follow that clock is refused: an app's own command (a process on the wall
//! clock), and a scenario with a `phone:` (network namespaces driven by `ip` processes).

use std::time::Duration;

use espsim_client::Backoff;
use tokio::sync::oneshot;

use super::{ClientSpec, RunError, RunOptions, RunResult, Watch};
use crate::scenario::Scenario;

/// The least wait between two connection attempts of the built-in client on virtual time.
/// `naive` retries at once: on the wall clock its loop runs as fast as the CPU allows, on
/// virtual time an attempt takes no time at all and the loop would never let the clock move.
/// A millisecond is less than one Wi-Fi round trip to a softAP.
pub(super) const RETRY_FLOOR: Duration = Duration::from_millis(1);

/// `backoff` waiting at least [`RETRY_FLOOR`] before each retry.
pub(super) fn retry_floor(backoff: Backoff) -> Backoff {
    Backoff {
        initial: backoff.initial.max(RETRY_FLOOR),
        max: backoff.max.max(RETRY_FLOOR),
        ..backoff
    }
}

/// [`super::run_with`] with `options.virtual_time`: the run on a thread of its own whose
/// current-thread runtime starts with its clock paused.
pub(super) async fn run(
    scenario: &Scenario,
    client: &ClientSpec,
    options: &RunOptions,
    watch: Option<Watch>,
) -> Result<RunResult, RunError> {
    let unsupported = |reason| RunError::VirtualTimeUnsupported {
        scenario: scenario.name.clone(),
        reason,
    };
    if !matches!(client, ClientSpec::Builtin(_)) {
        return Err(unsupported(
            "only the built-in client can (an app's own command runs on the wall clock)",
        ));
    }
    if scenario.phone.is_some() {
        return Err(unsupported(
            "its phone's network namespaces are driven by `ip` processes on the wall clock",
        ));
    }
    let failed = |source| RunError::VirtualTime {
        scenario: scenario.name.clone(),
        source,
    };
    let (scenario, client, options) = (scenario.clone(), client.clone(), options.clone());
    let (done, result) = oneshot::channel();
    std::thread::Builder::new()
        .name("espsim-virtual".to_owned())
        .spawn(move || {
            let _ = done.send(run_paused(&scenario, &client, &options, watch));
        })
        .map_err(failed)?;
    result.await.unwrap_or_else(|_| {
        Err(failed(std::io::Error::other(
            "the run's thread ended without a result",
        )))
    })
}

/// Runs the scenario on a new current-thread runtime whose clock starts paused.
#[cfg(feature = "virtual-time")]
fn run_paused(
    scenario: &Scenario,
    client: &ClientSpec,
    options: &RunOptions,
    watch: Option<Watch>,
) -> Result<RunResult, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        // Before the runtime parks (and so before the clock may move), let this CPU's other
        // runnable threads go first: on a loaded host the kernel may hand loopback delivery
        // to this CPU's `ksoftirqd`, and a segment still in its queue must land before the
        // runtime looks for ready sockets.
        .on_thread_park(std::thread::yield_now)
        .build()
        .map_err(|source| RunError::VirtualTime {
            scenario: scenario.name.clone(),
            source,
        })?;
    runtime.block_on(super::run_here(scenario, client, options, watch))
}

/// Without the `virtual-time` feature there is no paused clock to run on.
#[cfg(not(feature = "virtual-time"))]
fn run_paused(
    scenario: &Scenario,
    _client: &ClientSpec,
    _options: &RunOptions,
    _watch: Option<Watch>,
) -> Result<RunResult, RunError> {
    Err(RunError::VirtualTimeUnsupported {
        scenario: scenario.name.clone(),
        reason: "this espsim was built without its `virtual-time` feature",
    })
}
