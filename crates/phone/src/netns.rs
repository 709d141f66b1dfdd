//! Making sockets inside a named network namespace.
//!
//! A socket belongs to the namespace of the thread that created it, for its whole life. So a
//! short-lived thread enters the namespace (`setns`, which affects only that thread), makes
//! the sockets, and ends; the sockets are then used from the async runtime as usual. A service
//! that makes sockets all its life runs on a [`NamespaceThread`] instead.

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
                enter(name)?;
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

/// A future running on a thread of its own inside a network namespace, on a single-threaded
/// tokio runtime of its own: every socket it creates — and every thread it starts, which
/// inherits the namespace — belongs to that namespace, for as long as it runs. Handles to what
/// it runs (channels, tokens, `JoinHandle`s, a `RunningEmulator`) work from other runtimes.
#[derive(Debug)]
pub struct NamespaceThread<T> {
    result: tokio::sync::oneshot::Receiver<Result<T, PhoneError>>,
    namespace: String,
}

impl<T: Send + 'static> NamespaceThread<T> {
    /// Starts `task()` on a new thread named `thread` inside namespace `namespace`.
    pub fn spawn<F, Fut>(
        namespace: &str,
        thread: &str,
        task: F,
    ) -> Result<NamespaceThread<T>, PhoneError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let (tx, result) = tokio::sync::oneshot::channel();
        let name = namespace.to_owned();
        let wrap = |what, source| PhoneError::Namespace {
            namespace: namespace.to_owned(),
            what,
            source,
        };
        std::thread::Builder::new()
            .name(thread.to_owned())
            .spawn(move || {
                let outcome = enter(&name).and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                });
                let outcome = match outcome {
                    Ok(runtime) => {
                        let value = runtime.block_on(task());
                        // Every task it spawned ends (and drops its sockets) before the result
                        // is reported.
                        drop(runtime);
                        Ok(value)
                    }
                    Err(source) => Err(PhoneError::Namespace {
                        namespace: name,
                        what: "entering it on a thread of its own",
                        source,
                    }),
                };
                let _ = tx.send(outcome);
            })
            .map_err(|e| wrap("starting a thread", e))?;
        Ok(NamespaceThread {
            result,
            namespace: namespace.to_owned(),
        })
    }

    /// Waits until the task returned and its runtime is gone; its value, or why it could not
    /// run (the namespace could not be entered, the task panicked).
    pub async fn join(self) -> Result<T, PhoneError> {
        self.result.await.unwrap_or_else(|_| {
            Err(PhoneError::Namespace {
                namespace: self.namespace,
                what: "running a task inside it",
                source: std::io::Error::other("the task panicked"),
            })
        })
    }
}

/// Moves the calling thread into network namespace `name`.
fn enter(name: &str) -> std::io::Result<()> {
    let ns = File::open(format!("/run/netns/{name}"))?;
    move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
    Ok(())
}

/// `ip netns exec NAMESPACE program`: add the arguments and spawn to run it inside the
/// namespace (iproute2 also mounts `/etc/netns/NAMESPACE/*` over `/etc` for it).
pub fn netns_command(namespace: &str, program: &std::ffi::OsStr) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("ip");
    command.args(["netns", "exec", namespace]).arg(program);
    command
}
