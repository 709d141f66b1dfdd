//! `ReleaseTimer`: waits for a chunk's release time with sub-millisecond precision.
//!
//! A `latency` fault releases each chunk at its arrival time + latency (± jitter). Tokio's timer
//! cannot do that to better than a millisecond: its wheel rounds every deadline up to the next
//! 1 ms tick, and the parked worker wakes from `epoll_wait` with a timeout in whole
//! milliseconds, so a `sleep_until` fires 1–2 ms late (measured in `BENCHMARKS.md`). On Linux
//! this timer arms a `timerfd` (`CLOCK_MONOTONIC`, absolute deadline: a kernel hrtimer, no
//! timer slack) and awaits it through Tokio's reactor ([`AsyncFd`]), so the task wakes within
//! microseconds of the deadline without spinning. One timer serves one pipeline direction and is
//! re-armed for each chunk.
//!
//! Tokio's `sleep_until` stays the fallback: on other systems, when the timerfd cannot be
//! created or armed (logged at debug level, never a panic), and whenever Tokio's clock is paused
//! (`tokio::time::pause`, `start_paused` tests): a timerfd follows the real clock, which paused
//! time does not, and deterministic tests need the virtual clock.
//!
//! [`AsyncFd`]: tokio::io::unix::AsyncFd

use tokio::time::Instant;

/// Waits until a deadline, more precisely than Tokio's 1 ms timer where the system allows.
///
/// Create one per sequence of waits (a pipeline direction) and call
/// [`sleep_until`](ReleaseTimer::sleep_until) for each deadline; the kernel timer is created
/// on first use and reused. Needs a Tokio runtime with IO enabled (it is awaited through the
/// reactor), as every socket does.
#[derive(Debug, Default)]
pub struct ReleaseTimer {
    #[cfg(target_os = "linux")]
    fd: linux::State,
}

impl ReleaseTimer {
    /// A timer that has not created its kernel timer yet.
    pub fn new() -> ReleaseTimer {
        ReleaseTimer::default()
    }

    /// Returns at `at` (at once when `at` has passed). On Linux, with Tokio's clock running,
    /// within microseconds after `at`; otherwise as Tokio's `sleep_until` does (up to about
    /// 2 ms after `at`). Never returns before `at`.
    pub async fn sleep_until(&mut self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        #[cfg(target_os = "linux")]
        if !self.fd.is_broken() && !clock_is_paused() {
            match self.fd.sleep_until(at).await {
                // Checked, so that nothing (a stale expiry, a clock mix-up) can release early.
                Ok(()) if Instant::now() >= at => return,
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "timerfd failed; this direction falls back to Tokio's 1 ms timer");
                }
            }
        }
        tokio::time::sleep_until(at).await;
    }
}

/// Whether Tokio's clock is paused in this runtime (`tokio::time::pause`, `start_paused`).
///
/// Tokio has no public query for it, so this watches the clocks: a paused clock only moves when
/// the runtime advances it, which cannot happen inside this synchronous call (pausing needs the
/// current-thread runtime, and we are running on it), while the real clock moves by itself. It
/// waits (at most 10,000 clock reads, normally one) for the real monotonic clock to tick,
/// then compares Tokio's clock before and after.
#[cfg(target_os = "linux")]
fn clock_is_paused() -> bool {
    let tokio_before = Instant::now();
    let real = std::time::Instant::now();
    for _ in 0..10_000 {
        if std::time::Instant::now() > real {
            break;
        }
    }
    Instant::now() == tokio_before
}

#[cfg(target_os = "linux")]
mod linux {
    //! The timerfd behind [`ReleaseTimer`](super::ReleaseTimer) on Linux.

    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use nix::time::{ClockId as Clock, clock_gettime};
    use tokio::io::unix::AsyncFd;
    use tokio::time::Instant;

    /// Readiness events tolerated for one deadline before giving up on the timerfd (a wake-up
    /// without an expiry is rare; this only bounds the loop).
    const MAX_WAKES: usize = 1_000;

    /// The kernel timer, created on first use; `Broken` after it failed once, so a failing
    /// system pays for the attempt only once per direction.
    #[derive(Debug, Default)]
    pub(super) enum State {
        #[default]
        Unset,
        Ready(AsyncFd<Fd>),
        Broken,
    }

    impl State {
        /// True once the timerfd has failed: Tokio's timer is used from then on.
        pub(super) fn is_broken(&self) -> bool {
            matches!(self, State::Broken)
        }

        /// Waits for `at` on the timerfd; an error means: use another timer.
        pub(super) async fn sleep_until(&mut self, at: Instant) -> io::Result<()> {
            if matches!(self, State::Unset) {
                *self = match create() {
                    Ok(fd) => State::Ready(fd),
                    Err(e) => {
                        *self = State::Broken;
                        return Err(e);
                    }
                };
            }
            let State::Ready(fd) = self else {
                return Err(io::Error::other("timerfd failed before"));
            };
            let result = wait(fd, at).await;
            if result.is_err() {
                *self = State::Broken;
            }
            result
        }
    }

    /// nix's timerfd, which owns its descriptor, as the raw descriptor [`AsyncFd`] registers.
    #[derive(Debug)]
    pub(super) struct Fd(TimerFd);

    impl AsRawFd for Fd {
        /// Always the same, open descriptor: `TimerFd` owns it (an `OwnedFd`, closed on drop)
        /// and nothing here replaces or closes it.
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    /// Creates the timerfd and registers it with Tokio's reactor.
    ///
    /// Tokio 1.54 deprecated the safe `AsyncFd::with_interest` in favour of the `unsafe`
    /// `register_with_interest`, whose one requirement is that the descriptor stays open and the
    /// same while registered. [`Fd`] guarantees that (it owns the descriptor and the `AsyncFd`
    /// owns it), and this workspace forbids `unsafe`, so the safe form is used on purpose.
    #[allow(deprecated)]
    fn create() -> io::Result<AsyncFd<Fd>> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        AsyncFd::with_interest(Fd(fd), tokio::io::Interest::READABLE)
    }

    /// Arms `fd` for `at` (absolute, on `CLOCK_MONOTONIC`: the clock behind std's and Tokio's
    /// `Instant` on Linux) and waits for it to expire.
    async fn wait(fd: &AsyncFd<Fd>, at: Instant) -> io::Result<()> {
        // `Instant` does not expose its raw value: read both clocks back to back and carry the
        // remaining time over. `Instant` first: a preemption between the two reads moves the
        // deadline later, never earlier (and `ReleaseTimer` checks the clock on return).
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let mono = Duration::from(clock_gettime(Clock::CLOCK_MONOTONIC)?);
        let when = TimeSpec::from_duration(mono.saturating_add(left));
        // A zero expiry would disarm the timer; `when` is the current time plus a non-zero
        // wait, so it is not zero.
        fd.get_ref().0.set(
            Expiration::OneShot(when),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )?;
        for _ in 0..MAX_WAKES {
            let mut guard = fd.readable().await?;
            // A read returns the expiry count once the timer has fired, EAGAIN (would block:
            // `try_io` clears the readiness) until then.
            match guard.try_io(|inner| inner.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
        Err(io::Error::other("timerfd woke without expiring too often"))
    }
}
