//! Errors of building, routing and tearing down a phone.

use std::path::PathBuf;

/// What went wrong while creating or driving a [`crate::Phone`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// The process lacks the capabilities network namespaces need.
    #[error(
        "a phone needs CAP_NET_ADMIN and CAP_SYS_ADMIN to create network namespaces (missing: {missing}); run as root, e.g. `sudo espsim phone …`"
    )]
    NotPrivileged {
        /// The missing capability names.
        missing: String,
    },
    /// `ip` could not be started at all (iproute2 missing?).
    #[error("cannot run `ip` (iproute2): {source}")]
    IpMissing {
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// The arguments, space-separated.
        args: String,
        /// What `ip` printed on stderr.
        stderr: String,
    },
    /// Entering a namespace or making a socket inside it failed.
    #[error("in network namespace {namespace}: {what}: {source}")]
    Namespace {
        /// The namespace name.
        namespace: String,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the phone's resolver file failed.
    #[error("cannot write {path}: {source}")]
    Resolver {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
