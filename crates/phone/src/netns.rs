//! Making sockets inside a named network namespace.
//!
//! A socket belongs to the namespace of the thread that created it, for its whole life. So a
//! short-lived thread enters the namespace (`setns`, which affects only that thread), makes
//! the sockets, and ends; the sockets are then used from the async runtime as usual.

use std::fs::File;
use std::os::fd::AsFd;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::error::PhoneError;

/// Runs `make` on a fresh thread inside network namespace `name` and returns its result.
pub(crate) fn in_namespace<T: Send>(
    name: &str,
    what: &'static str,
    make: impl FnOnce() -> std::io::Result<T> + Send,
) -> Result<T, PhoneError> {
    let wrap = |source| PhoneError::Namespace {
        namespace: name.to_owned(),
        what,
        source,
    };
    let joined = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = File::open(format!("/run/netns/{name}"))?;
                move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
                make()
            })
            .join()
    });
    match joined {
        Ok(result) => result.map_err(wrap),
        Err(_) => Err(wrap(std::io::Error::other("the namespace thread panicked"))),
    }
}

/// Writes a sysctl under `/proc/sys/net/` as seen from inside namespace `name`.
pub(crate) fn sysctl(name: &str, key: &str, value: &str) -> Result<(), PhoneError> {
    let path = format!("/proc/sys/net/{key}");
    in_namespace(name, "setting a sysctl", move || {
        std::fs::write(&path, value)
    })
}
