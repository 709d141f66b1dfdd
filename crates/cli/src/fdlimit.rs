//! Raising the open-file limit at start.
//!
//! Shells and service managers often hand a process a soft `RLIMIT_NOFILE` of 1024 while the
//! hard limit is far higher. The emulator holds one descriptor per app connection, control
//! client, event follower and DNS-over-TCP client; with 1024 a burst of idle connections stops
//! every port from accepting. The soft limit may be raised to the hard one without privileges.

/// Raises the soft open-file limit to the hard limit. Logs the old and new values at `info`
/// when `loud` (the serving commands), else at `debug`; a failure is a warning and the
/// process goes on with the old limit.
pub(crate) fn raise(loud: bool) {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let (soft, hard) = match Resource::NOFILE.get() {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!("cannot read the open-file limit: {e}");
                return;
            }
        };
        let new = if soft >= hard {
            soft
        } else {
            match rlimit::increase_nofile_limit(hard) {
                Ok(new) => new,
                Err(e) => {
                    tracing::warn!(soft, hard, "cannot raise the open-file limit: {e}");
                    return;
                }
            }
        };
        if loud {
            tracing::info!(
                old = soft,
                new,
                hard,
                "open-file limit (soft) raised to the hard limit"
            );
        } else {
            tracing::debug!(
                old = soft,
                new,
                hard,
                "open-file limit (soft) raised to the hard limit"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = loud;
}
