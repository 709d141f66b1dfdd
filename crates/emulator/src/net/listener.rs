//! Connect-level faults: a listener that can refuse (closed socket → kernel RST → ECONNREFUSED)
//! and re-bind, the per-connection endings `reset_on_accept`, `close_on_accept` and `stall`,
//! and `FaultyListener`, which asks the plan about every accept and wraps served connections
//! in a [`FaultyStream`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use espsim_faults::{Applied, ConnInfo, ConnRef, ConnectFault, FaultPlan, Service, StreamFault};

use super::stream::{Abort, FIN_DRAIN, FaultyStream, close_with_fin, deadline};
use super::supervisor::Supervisor;

/// Listen backlog used when (re-)binding.
const BACKLOG: i32 = 128;

/// How long the accept loop sleeps when the plan has no boundary to wait for.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// A TCP listener that can stop listening and start again on the same address.
///
/// While refused there is no listening socket, so the kernel answers every SYN with RST and the
/// app gets ECONNREFUSED, exactly as when the device's server is not running.
#[derive(Debug)]
pub struct RefusableListener {
    addr: SocketAddr,
    listener: Option<TcpListener>,
}

fn bind_socket(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Re-binding after a refuse window must not fail on connections still in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

impl RefusableListener {
    /// Binds `addr` (port 0 picks a free port, which is then kept for re-binds).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = bind_socket(addr)?;
        let addr = listener.local_addr()?;
        Ok(RefusableListener {
            addr,
            listener: Some(listener),
        })
    }

    /// Takes over a bound listener. Re-binds will use its address.
    pub fn from_listener(listener: TcpListener) -> io::Result<Self> {
        Ok(RefusableListener {
            addr: listener.local_addr()?,
            listener: Some(listener),
        })
    }

    /// The address served (also while refusing).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// True while the listening socket is closed.
    pub fn is_refusing(&self) -> bool {
        self.listener.is_none()
    }

    /// Closes the listening socket: new connection attempts are refused by the kernel, and
    /// connections queued but not yet accepted are reset. Accepted connections are not touched.
    pub fn refuse(&mut self) {
        self.listener = None;
    }

    /// Listens again on the same address. Fails if another socket took the port meanwhile.
    pub fn restore(&mut self) -> io::Result<()> {
        if self.listener.is_none() {
            self.listener = Some(bind_socket(self.addr)?);
        }
        Ok(())
    }

    /// Accepts the next connection. While refusing this never completes: select it against
    /// whatever ends the refusal.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match &self.listener {
            Some(l) => l.accept().await,
            None => std::future::pending().await,
        }
    }
}

/// `reset_on_accept`: SO_LINGER 0 and drop, so the app gets "connection reset by peer".
pub fn reset_connection(stream: TcpStream) {
    stream.abort();
}

/// `close_on_accept`: FIN before any byte (then the app's request is read and discarded for
/// up to [`FIN_DRAIN`] so it does not turn the FIN into an RST).
pub async fn close_connection(stream: TcpStream) {
    close_with_fin(stream, FIN_DRAIN).await;
}

/// `stall`: hold the accepted connection without reading or writing until `hold` passes
/// (`None` = indefinitely) or `shutdown` is cancelled; then drop it.
pub async fn stall_connection(
    stream: TcpStream,
    hold: Option<Duration>,
    shutdown: &CancellationToken,
) {
    match hold {
        Some(d) => {
            tokio::select! {
                () = tokio::time::sleep(d) => {}
                () = shutdown.cancelled() => {}
            }
        }
        None => shutdown.cancelled().await,
    }
    drop(stream);
}

/// Applies a per-connection connect fault to an accepted stream and returns when the connection
/// is gone. `hold` bounds a stall. `refuse` is a listener state, not a per-connection action:
/// passed here, it resets the connection.
pub async fn apply_connect_fault(
    stream: TcpStream,
    fault: ConnectFault,
    hold: Option<Duration>,
    shutdown: &CancellationToken,
) {
    match fault {
        ConnectFault::ResetOnAccept | ConnectFault::Refuse => reset_connection(stream),
        ConnectFault::CloseOnAccept => close_connection(stream).await,
        ConnectFault::Stall => stall_connection(stream, hold, shutdown).await,
    }
}

/// What [`FaultyListener::accept`] produced. Every variant is worth an event in the log.
#[derive(Debug)]
#[non_exhaustive]
pub enum ListenerEvent {
    /// A connection to serve, with its stream faults (if any) applied.
    Accepted {
        /// The connection (service + attempt number).
        conn: ConnRef,
        /// The app's address.
        peer: SocketAddr,
        /// The stream to serve.
        stream: FaultyStream<TcpStream>,
        /// The stream faults applied to it.
        faults: Vec<Applied<StreamFault>>,
    },
    /// A connection taken by a connect fault (`reset_on_accept`, `close_on_accept`, `stall`);
    /// the listener handles it in a spawned task.
    Faulted {
        /// The connection.
        conn: ConnRef,
        /// The app's address.
        peer: SocketAddr,
        /// The fault applied.
        applied: Applied<ConnectFault>,
    },
    /// The listening socket was closed by a `refuse` rule.
    Refusing(Applied<ConnectFault>),
    /// The listening socket is back after a refusal.
    Restored,
}

/// A device port's listener driven by the fault plan: refuses while a `refuse` rule is active,
/// numbers connection attempts, applies connect faults and wraps the rest in [`FaultyStream`].
#[derive(Debug)]
pub struct FaultyListener {
    listener: RefusableListener,
    plan: FaultPlan,
    service: Service,
    started: Instant,
    accepted: u64,
    supervisor: Supervisor,
}

impl FaultyListener {
    /// Drives `listener` for `service` with `plan`. `started` is the run's start (the plan's
    /// time zero); `supervisor` runs the tasks that hold faulted connections and stream pumps.
    pub fn new(
        listener: RefusableListener,
        plan: FaultPlan,
        service: Service,
        started: Instant,
        supervisor: Supervisor,
    ) -> Self {
        FaultyListener {
            listener,
            plan,
            service,
            started,
            accepted: 0,
            supervisor,
        }
    }

    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Waits for the next thing to report: a connection (served or faulted) or a change of the
    /// listener's refuse state. Connection attempts are numbered from 1 in accept order; attempts
    /// refused by the kernel are not counted (they never arrive).
    ///
    /// Cancel-safe: use it in a `select!` against shutdown.
    pub async fn accept(&mut self) -> io::Result<ListenerEvent> {
        let mut changes = self.plan.changes();
        loop {
            // Mark the plan's current version seen *before* reading it, so a change made while
            // this iteration runs wakes the select below instead of being lost.
            changes.borrow_and_update();
            let elapsed = self.started.elapsed();
            match self.plan.refusing(self.service, elapsed) {
                Some(applied) if !self.listener.is_refusing() => {
                    self.listener.refuse();
                    return Ok(ListenerEvent::Refusing(applied));
                }
                None if self.listener.is_refusing() => {
                    self.listener.restore()?;
                    return Ok(ListenerEvent::Restored);
                }
                _ => {}
            }
            let wake = self
                .plan
                .next_boundary(elapsed)
                .map(|t| deadline(self.started, t))
                .unwrap_or_else(|| deadline(Instant::now(), IDLE_WAKE));
            tokio::select! {
                r = self.listener.accept() => {
                    let (stream, peer) = r?;
                    return Ok(self.admit(stream, peer));
                }
                () = tokio::time::sleep_until(wake) => {}
                r = changes.changed() => {
                    if r.is_err() {
                        // The plan is gone; nothing will change any more.
                        changes = self.plan.changes();
                    }
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) -> ListenerEvent {
        self.accepted += 1;
        let conn = ConnRef {
            service: self.service,
            ordinal: self.accepted,
        };
        let info = ConnInfo {
            conn,
            elapsed: self.started.elapsed(),
        };
        if let Some(applied) = self.plan.on_connect(info) {
            let hold = applied
                .until
                .map(|u| deadline(self.started, u).saturating_duration_since(Instant::now()));
            let shutdown = self.supervisor.shutdown_token().clone();
            let fault = applied.fault;
            self.supervisor.spawn(async move {
                apply_connect_fault(stream, fault, hold, &shutdown).await;
            });
            return ListenerEvent::Faulted {
                conn,
                peer,
                applied,
            };
        }
        let faults = self.plan.stream_faults(info);
        let stream = FaultyStream::new(stream, &faults, &self.supervisor);
        ListenerEvent::Accepted {
            conn,
            peer,
            stream,
            faults: faults.faults,
        }
    }
}
