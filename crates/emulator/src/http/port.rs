//! The device port's listening socket, stopped and started on demand: while a `refuse` rule is
//! active or the chip reboots nothing listens, so the kernel answers every SYN with RST (the app
//! gets ECONNREFUSED) and resets connections queued but not yet accepted; afterwards the same
//! port listens again with the profile's backlog. The port stays bound meanwhile, so no other
//! process can take it ([`RefusableListener`]). While refusing, a raw socket counts the refused
//! SYNs (`syn_watch`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use espsim_faults::{Applied, ConnectFault};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::Handles;
use crate::net::RefusableListener;

use super::connect::{emit_applied, fmt_duration};
use super::syn_watch::{RefusedAttempts, SynWatch, Target};

/// Pause before trying again when the port cannot listen again (only where the host could not
/// keep the port bound while refusing, and another socket took it).
const REBIND_BACKOFF: Duration = Duration::from_millis(50);

/// A device port that can stop and start listening.
#[derive(Debug)]
pub(crate) struct Port {
    listener: RefusableListener,
    /// `http` or `https`, for bind errors and events.
    service: &'static str,
    /// When to try re-binding again after a failure.
    retry_at: Option<Instant>,
    /// Whether refused attempts are watched.
    refused: RefusedAttempts,
    /// The raw socket counting refused SYNs while the port is closed, if it could be opened.
    watch: Option<SynWatch>,
}

impl Port {
    /// Takes over the listener bound at start (with [`crate::net::listener::bind_listener`]),
    /// listening with `backlog`, the profile's.
    pub(crate) fn new(
        listener: TcpListener,
        backlog: u32,
        service: &'static str,
        refused: RefusedAttempts,
    ) -> io::Result<Self> {
        Ok(Port {
            listener: RefusableListener::from_listener(listener, backlog)?,
            service,
            retry_at: None,
            refused,
            watch: None,
        })
    }

    /// Closes or reopens the port as the plan (`refusal`: an active `refuse` rule) and the
    /// device (`rebooting`) want. Closing for a rule emits `fault_applied`. A failed re-bind is
    /// retried at [`Port::retry_at`].
    pub(crate) fn follow(
        &mut self,
        refusal: Option<Applied<ConnectFault>>,
        rebooting: bool,
        handles: &Handles,
    ) {
        let refuse = refusal.is_some() || rebooting;
        if refuse && !self.is_refusing() {
            // Watch first, so no SYN after the listening stops goes uncounted.
            let target = Target {
                addr: self.local_addr(),
                service: self.service,
            };
            self.watch = SynWatch::start(
                target,
                self.refused,
                handles.events.clone(),
                &handles.lifecycle.tracker,
                &handles.lifecycle.cancel,
            );
            self.refuse();
            match refusal {
                Some(applied) => {
                    let until = match applied.until {
                        Some(u) => format!("until {}", fmt_duration(u)),
                        None => "until the rule is removed".to_owned(),
                    };
                    let detail = format!(
                        "{} port closed: new connections refused (RST) {until}",
                        self.service
                    );
                    emit_applied(handles, None, applied.rule, &applied.fault, detail);
                }
                None => tracing::info!("{}: port closed while the device reboots", self.service),
            }
        } else if !refuse && self.is_refusing() && self.retry_at.is_none_or(|t| Instant::now() >= t)
        {
            // Count what came while closed, and stop, before a SYN can be accepted again.
            if let Some(watch) = self.watch.take() {
                watch.stop();
            }
            match self.restore() {
                Ok(()) => {
                    self.retry_at = None;
                    tracing::info!("{}: listening again on {}", self.service, self.local_addr());
                }
                Err(e) => {
                    tracing::warn!("{}: re-listening failed, retrying: {e}", self.service);
                    self.retry_at = Some(Instant::now() + REBIND_BACKOFF);
                }
            }
        }
    }

    /// When a failed re-bind should be tried again, if one failed.
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The address served (also while refusing).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// True while nothing listens.
    fn is_refusing(&self) -> bool {
        self.listener.is_refusing()
    }

    /// Stops listening, keeping the port.
    fn refuse(&mut self) {
        self.listener.refuse();
    }

    /// Listens again on the same address with the backlog of the start (the profile's: ESP-IDF's
    /// `backlog_conn` on a chip profile), so the port behaves the same after a refusal as before.
    fn restore(&mut self) -> io::Result<()> {
        self.listener.restore()
    }

    /// The next connection; never completes while refusing. Cancel-safe.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.listener.accept().await
    }
}
