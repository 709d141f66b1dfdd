//! Connect-level faults: a listener that can refuse (not listening → kernel RST → ECONNREFUSED)
//! and listen again on the same port, the per-connection endings `reset_on_accept`,
//! `close_on_accept` and `stall`, and `FaultyListener`, which asks the plan about every accept
//! and wraps served connections in a [`FaultyStream`].

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use espsim_faults::{Applied, ConnInfo, ConnRef, ConnectFault, FaultPlan, Service, StreamFault};

use super::stream::{Abort, FIN_DRAIN, FaultyStream, close_with_fin, deadline};
use super::supervisor::Supervisor;

/// Listen backlog of [`RefusableListener::bind`].
const BACKLOG: u32 = 128;

/// How long the accept loop sleeps when the plan has no boundary to wait for.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// A TCP listener that can stop listening and start again on the same address.
///
/// While refused nothing listens on the port, so the kernel answers every SYN with RST and the
/// app gets ECONNREFUSED, exactly as when the device's server is not running.
///
/// The port stays ours meanwhile, so that no other process can take it before we listen again:
/// on Linux the socket is kept, bound, and only stops listening (`shutdown(SHUT_RD)` on a
/// listening socket disconnects it: it leaves the kernel's listening table — SYNs get RST — and
/// the connections queued but not yet accepted are reset, as on `close()`; `listen()` works on
/// it again later, as HAProxy pauses and resumes its listeners). While refusing it also drops
/// `SO_REUSEADDR`, so every other bind of the port fails with EADDRINUSE, with `SO_REUSEADDR`
/// or without. Where a listening socket cannot be stopped that way the socket is closed instead
/// and bound again on [`RefusableListener::restore`], which then fails if the port was taken.
#[derive(Debug)]
pub struct RefusableListener {
    addr: SocketAddr,
    backlog: u32,
    state: State,
}

/// Where a [`RefusableListener`]'s socket is.
#[derive(Debug)]
enum State {
    /// Listening, registered with tokio.
    Listening(TcpListener),
    /// Refusing: bound but not listening, without `SO_REUSEADDR` (holds the port), and out of
    /// tokio's reactor (a socket that stopped listening reads as hung up forever).
    Holding(Socket),
    /// Refusing with the socket closed: re-bound on restore.
    Closed,
}

/// A non-blocking TCP socket for `addr` with `SO_REUSEADDR`, so that binding again after a
/// refuse window does not fail on connections still in TIME_WAIT.
fn reusable_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// `backlog` as `listen()` takes it; the kernel caps it anyway (`net.core.somaxconn`).
fn listen(socket: &Socket, backlog: u32) -> io::Result<()> {
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))
}

/// Binds `addr` and listens with `backlog`, for a listener that may stop listening and start
/// again ([`RefusableListener`]); the device ports are bound with it.
///
/// The socket is bound to an explicit port even when `addr` asks for port 0: Linux gives up a
/// port it picked itself (bind to port 0) when the socket stops listening, and keeps one the
/// socket was bound to by number. So a free port is picked first with a second socket, and the
/// listener binds that number while the picker still holds it (both have `SO_REUSEADDR` and
/// neither listens, which Linux allows). Where that is refused, the picked port is used as is.
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.port() == 0 {
        let picker = reusable_socket(addr)?;
        picker.bind(&addr.into())?;
        let picked = picker
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("the bound socket has no inet address"))?;
        let socket = reusable_socket(picked)?;
        match socket.bind(&picked.into()) {
            Ok(()) => socket,
            Err(e) => {
                tracing::debug!("binding {picked} by number failed ({e}); keeping it as picked");
                picker
            }
        }
    } else {
        let socket = reusable_socket(addr)?;
        socket.bind(&addr.into())?;
        socket
    };
    listen(&socket, backlog)?;
    TcpListener::from_std(socket.into())
}

/// Stops `listener` listening but keeps its port: out of tokio's reactor, `SO_REUSEADDR` off
/// (before the listening stops, so that no other bind can slip in), then `shutdown(SHUT_RD)`.
/// On error the socket is gone (closed).
fn hold(listener: TcpListener) -> io::Result<Socket> {
    let socket = Socket::from(listener.into_std()?);
    socket.set_reuse_address(false)?;
    socket.shutdown(Shutdown::Read)?;
    Ok(socket)
}

/// Listens again on a socket [`hold`] kept: `SO_REUSEADDR` back first (the connections of the
/// last window still in TIME_WAIT on this port would make `listen()` fail without it).
fn relisten(socket: &Socket, backlog: u32) -> io::Result<()> {
    socket.set_reuse_address(true)?;
    if let Err(e) = listen(socket, backlog) {
        // Keep holding the port until the next try.
        let _ = socket.set_reuse_address(false);
        return Err(e);
    }
    Ok(())
}

impl RefusableListener {
    /// Binds `addr` (port 0 picks a free port, which is then kept for re-binds) with a backlog
    /// of 128.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::from_listener(bind_listener(addr, BACKLOG)?, BACKLOG)
    }

    /// Takes over a listener bound with [`bind_listener`] and listening with `backlog`, which
    /// it listens with again after a refusal. (Another listener works too, but one bound to
    /// port 0 loses its port when it stops listening, so it is then closed and bound again.)
    pub fn from_listener(listener: TcpListener, backlog: u32) -> io::Result<Self> {
        Ok(RefusableListener {
            addr: listener.local_addr()?,
            backlog,
            state: State::Listening(listener),
        })
    }

    /// The address served (also while refusing).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// True while nothing listens.
    pub fn is_refusing(&self) -> bool {
        !matches!(self.state, State::Listening(_))
    }

    /// True while refusing with the port still held (no other socket can bind it). False while
    /// listening, and while refusing with the socket closed.
    pub fn holds_port(&self) -> bool {
        matches!(self.state, State::Holding(_))
    }

    /// Stops listening: new connection attempts are refused by the kernel, and connections
    /// queued but not yet accepted are reset. Accepted connections are not touched. The port
    /// stays held where the host allows it (see the type's documentation).
    pub fn refuse(&mut self) {
        if let State::Listening(listener) = std::mem::replace(&mut self.state, State::Closed) {
            match hold(listener) {
                Ok(socket) => self.state = State::Holding(socket),
                Err(e) => tracing::debug!(
                    "{}: cannot stop listening and keep the port ({e}); closed instead",
                    self.addr
                ),
            }
        }
    }

    /// Listens again on the same address with the same backlog. Fails only if the socket was
    /// closed (see [`RefusableListener::holds_port`]) and another socket took the port
    /// meanwhile; then it is still refusing and can be tried again.
    pub fn restore(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Listening(listener) => self.state = State::Listening(listener),
            State::Holding(socket) => {
                if let Err(e) = relisten(&socket, self.backlog) {
                    self.state = State::Holding(socket);
                    return Err(e);
                }
                let listening = socket.local_addr()?.as_socket();
                if listening == Some(self.addr) {
                    self.state = State::Listening(TcpListener::from_std(socket.into())?);
                } else {
                    // The kernel had let the port go (it was picked at bind time) and picked
                    // another for listen(): bind the served address again.
                    drop(socket);
                    self.state = State::Listening(bind_listener(self.addr, self.backlog)?);
                }
            }
            State::Closed => self.state = State::Listening(bind_listener(self.addr, self.backlog)?),
        }
        Ok(())
    }

    /// Accepts the next connection. While refusing this never completes: select it against
    /// whatever ends the refusal.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match &self.state {
            State::Listening(l) => l.accept().await,
            State::Holding(_) | State::Closed => std::future::pending().await,
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
