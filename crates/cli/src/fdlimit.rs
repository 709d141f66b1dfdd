//! Raising the open-file limit at start.
//!
//! Shells and service managers often hand a process a soft `RLIMIT_NOFILE` of 1024 while the
//! hard limit is far higher. The emulator holds one descriptor per app connection, control
//! client, event follower and DNS-over-TCP client; with 1024 a burst of idle connections stops
//! every port from accepting. The soft limit may be raised to the hard one without privileges.

/// The open-file limits before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdLimit {
    /// Soft limit inherited from the parent.
    pub(crate) old: u64,
    /// Soft limit now.
    pub(crate) new: u64,
    /// Hard limit.
    pub(crate) hard: u64,
}

impl FdLimit {
    /// Logs the values at `info` (`espsim run` does, once it is ready).
    pub(crate) fn log(self) {
        let FdLimit { old, new, hard } = self;
        tracing::info!(
            old,
            new,
            hard,
            "open-file limit (soft) raised to the hard limit"
        );
    }
}

/// Raises the soft open-file limit to the hard limit, before any socket is opened. A failure
/// is a warning and the process goes on with the old limit (`None`).
pub(crate) fn raise() -> Option<FdLimit> {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let (old, hard) = match Resource::NOFILE.get() {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!("cannot read the open-file limit: {e}");
                return None;
            }
        };
        let new = if old >= hard {
            old
        } else {
            match rlimit::increase_nofile_limit(hard) {
                Ok(new) => new,
                Err(e) => {
                    tracing::warn!(old, hard, "cannot raise the open-file limit: {e}");
                    return None;
                }
            }
        };
        let limit = FdLimit { old, new, hard };
        tracing::debug!(?limit, "open-file limit");
        Some(limit)
    }
    #[cfg(not(unix))]
    None
}
