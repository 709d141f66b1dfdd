//! The device port's listening socket, closed and reopened on demand: while a `refuse` rule is
//! active or the chip reboots nothing listens, so the kernel answers every SYN with RST (the app
//! gets ECONNREFUSED) and resets connections queued but not yet accepted; afterwards the same
//! port listens again with ESP-IDF's backlog.

use std::io;
use std::net::SocketAddr;

use espsim_faults::RefusableListener;
use tokio::net::{TcpListener, TcpStream};

use crate::StartError;

/// A device port that can stop and start listening.
#[derive(Debug)]
pub(crate) struct Port {
    listener: RefusableListener,
    /// `http` or `https`, for bind errors.
    service: &'static str,
}

impl Port {
    /// Takes over the listener bound at start.
    pub(crate) fn new(listener: TcpListener, service: &'static str) -> io::Result<Self> {
        Ok(Port {
            listener: RefusableListener::from_listener(listener)?,
            service,
        })
    }

    /// The address served (also while refusing).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// True while nothing listens.
    pub(crate) fn is_refusing(&self) -> bool {
        self.listener.is_refusing()
    }

    /// Closes the listening socket.
    pub(crate) fn refuse(&mut self) {
        self.listener.refuse();
    }

    /// Listens again on the same address with the backlog of the start (ESP-IDF's
    /// `backlog_conn`), so the port behaves the same after a refusal as before it.
    pub(crate) fn restore(&mut self) -> Result<(), StartError> {
        if self.listener.is_refusing() {
            let listener = crate::bind_tcp(self.service, self.local_addr())?;
            let addr = self.local_addr();
            self.listener =
                RefusableListener::from_listener(listener).map_err(|source| StartError::Bind {
                    service: self.service,
                    addr,
                    source,
                })?;
        }
        Ok(())
    }

    /// The next connection; never completes while refusing. Cancel-safe.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.listener.accept().await
    }
}
