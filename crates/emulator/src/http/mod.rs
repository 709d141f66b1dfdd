//! ESP-IDF `esp_http_server` on the device port.
//!
//! - [`serve`]: the accept loop, driven by the fault plan and the device's outage state:
//!   refusal windows and reboots close the listening socket (`port`), connect faults take
//!   accepted connections (`connect`), stream faults wrap the raw socket in a `FaultyStream`
//!   (TLS, HTTP and WebSocket run on top), every connection sits behind an outage `gate`;
//!   then socket slots ([`crate::sockets`]) and TLS;
//! - `conn`: one connection — read, route, answer, keep-alive or close;
//! - `parse`: the request head with ESP-IDF's limits (`414`, `431`, `505`, `400`);
//! - `router`: the firmware's URI table per internet mode; `probes`: OS connectivity checks
//!   and their verdicts; `portal`: the `GET /` page; `errors`: ESP-IDF's error pages;
//! - `response`: responses framed byte for byte as `httpd_resp_send` does.

pub(crate) mod errors;
pub(crate) mod head;
pub(crate) mod response;

mod conn;
mod connect;
mod device_routes;
mod gate;
pub(crate) mod parse;
mod port;
mod portal;
mod probes;
mod read_ahead;
mod router;
pub(crate) mod syn_watch;
mod watch;

#[cfg(test)]
mod outage_tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use espsim_faults::{ConnInfo, ConnRef, FaultPlan, Service};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::device_host::{DeviceHost, Outage};
use crate::events::{EventKind, EventLog, Side};
use crate::internet::Internet;
use crate::lifecycle::{Counter, Lifecycle};
use crate::net::{FaultyStream, Supervisor};
use crate::profile::Profile;
use crate::sockets::{Admission, SocketTable};

use self::conn::Site;
use self::connect::{emit_applied, spawn_connect_fault, spawn_unanswered};
use self::gate::{Gate, Gated, Gates};
use self::port::Port;
use self::read_ahead::{Gone, ReadAhead, Replay};
use self::syn_watch::RefusedAttempts;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long the loop sleeps when no fault window is scheduled (it also wakes on every plan or
/// outage change).
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// What the device port's service uses: the address it serves as, the internet mode the
/// connectivity checks answer for, the device host (its outage, its token), the socket slots,
/// the fault plan, the event log, the shutdown, and the WebSocket endpoint it hands upgrades to.
#[derive(Debug)]
pub(crate) struct Handles {
    /// The softAP's address, for the portal page and the WebSocket URL.
    pub(crate) device_ip: Ipv4Addr,
    /// ESP-IDF's limits and quirks.
    pub(crate) profile: Arc<Profile>,
    /// What the connectivity checks answer.
    pub(crate) internet: Internet,
    /// The outage the port and its connections follow; the token hidden in logged targets.
    pub(crate) device: Arc<DeviceHost>,
    /// `max_open_sockets` and the LRU purge.
    pub(crate) sockets: Arc<SocketTable>,
    /// Refusal windows, connect and stream faults.
    pub(crate) faults: Arc<FaultPlan>,
    /// The run clock and where connections are recorded.
    pub(crate) events: Arc<EventLog>,
    /// Spawn on it, stop with it.
    pub(crate) lifecycle: Lifecycle,
    /// Connection ids, shared by the HTTP and HTTPS ports.
    pub(crate) conns: Counter,
    /// Where a request for the WebSocket path goes.
    pub(crate) ws: Arc<crate::ws::Handles>,
}

/// Accepts and serves connections until shutdown; with `tls`, each connection is a TLS session.
///
/// Every pass: follow the outage (reset / silence open connections), decide whether the port
/// listens (a `refuse` rule or a reboot closes it), then wait for a connection, a plan change,
/// an outage change or the next fault window boundary.
/// `refused`: whether SYNs refused while the port is closed are watched (`tcp_refused`).
/// Takes over the device port's listener and, before anything is served, closes it if a
/// `refuse` window is already open: an app that connects the moment the emulator is up then
/// gets ECONNREFUSED, not a connection that the first look at the plan resets.
pub(crate) fn open_port(
    listener: TcpListener,
    backlog: u32,
    handles: &Handles,
    tls: bool,
    refused: RefusedAttempts,
) -> std::io::Result<Port> {
    let (scheme, service) = if tls {
        ("https", Service::Https)
    } else {
        ("http", Service::Http)
    };
    let mut port = Port::new(listener, backlog, scheme, refused)?;
    let refusal = handles.faults.refusing(service, handles.events.elapsed());
    port.follow(refusal, false, handles);
    Ok(port)
}

pub(crate) async fn serve(mut port: Port, handles: Arc<Handles>, tls: Option<TlsAcceptor>) {
    let (scheme, ws_scheme, default_port, service) = match tls {
        Some(_) => ("https", "wss", 443, Service::Https),
        None => ("http", "ws", 80, Service::Http),
    };
    let port_no = port.local_addr().port();
    let authority = if port_no == default_port {
        handles.device_ip.to_string()
    } else {
        format!("{}:{port_no}", handles.device_ip)
    };
    let site = Arc::new(Site {
        scheme,
        device_ip: handles.device_ip.to_string(),
        ws_url: format!("{ws_scheme}://{authority}{}", handles.ws.primary_path()),
    });
    let gates = Gates::default();
    let mut outage_rx = handles.device.outage();
    let mut changes = handles.faults.changes();
    let mut plan_alive = true;
    let mut outage_now = Outage::None;
    let mut outage_woke = false;
    let mut ordinal: u64 = 0;
    // Refusal can only change with the plan (rules, observed events) or at a window boundary,
    // so the plan is asked then, not after every accept.
    let mut refusal = None;
    let mut recheck = true;
    loop {
        // Mark both versions seen before reading them, so a change made meanwhile wakes the
        // select below instead of being lost.
        changes.borrow_and_update();
        let outage = *outage_rx.borrow_and_update();
        let elapsed = handles.events.elapsed();
        if std::mem::take(&mut recheck) {
            refusal = handles.faults.refusing(service, elapsed);
        }
        port.follow(refusal.clone(), outage == Outage::Rebooting, &handles);
        // After the port: once a connection sees its reset, the port already refuses. Also on
        // a change that came back to the same value, to wake connections that saw it.
        if std::mem::take(&mut outage_woke) || outage != outage_now {
            let reset = gates.apply(outage);
            tracing::info!("{scheme}: outage {outage:?}, {reset} open connection(s) reset");
            outage_now = outage;
        }
        let mut wake = handles
            .faults
            .next_boundary(elapsed)
            .map(|t| Instant::now() + t.saturating_sub(elapsed))
            .unwrap_or_else(|| Instant::now() + IDLE_WAKE);
        if let Some(t) = port.retry_at() {
            wake = wake.min(t);
        }
        let ap_down = outage == Outage::ApDown;
        let next = async {
            // Like lwIP's backlog: once enough connections wait for a slot, stop accepting
            // (while the AP is down nothing is served, so nothing waits).
            if !ap_down {
                handles.sockets.waiting_room().await;
            }
            port.accept().await
        };
        let accepted = tokio::select! {
            biased;
            () = handles.lifecycle.cancel.cancelled() => return,
            r = outage_rx.changed() => {
                if r.is_err() {
                    return;
                }
                outage_woke = true;
                continue;
            }
            r = changes.changed(), if plan_alive => {
                plan_alive = r.is_ok();
                recheck = true;
                continue;
            }
            () = tokio::time::sleep_until(wake) => {
                recheck = true;
                continue;
            }
            r = next => r,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed on {scheme}: {e}");
                tokio::select! {
                    () = handles.lifecycle.cancel.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let id = handles.conns.next();
        handles.events.emit(EventKind::TcpAccepted {
            conn: id,
            peer,
            service: scheme.to_owned(),
        });
        let gate = gates.register(outage, &handles.lifecycle.cancel);
        match outage {
            Outage::ApDown => spawn_unanswered(&handles, tcp, id, gate),
            Outage::Rebooting => {
                // Accepted just before the port closed: the rebooting chip resets it.
                drop(Gated::new(
                    tcp,
                    gate,
                    handles.device.outage(),
                    handles.lifecycle.tracker.clone(),
                ));
                handles.events.emit(EventKind::TcpClosed {
                    conn: id,
                    by: Side::Device,
                    reason: "reset by the device outage".to_owned(),
                });
            }
            Outage::None => {
                // Connect and stream faults count TCP connections on this service, from 1.
                ordinal += 1;
                let conn = Accepted {
                    tcp,
                    peer,
                    id,
                    ordinal,
                    service,
                    gate,
                };
                admit(conn, &handles, &tls, &site);
            }
        }
    }
}

/// A connection the device is about to see.
#[derive(Debug)]
struct Accepted {
    tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
    /// Its number on this service (what `connections:` counts for connect/stream faults).
    ordinal: u64,
    service: Service,
    gate: Arc<Gate>,
}

/// Asks the plan about a new connection: a connect fault takes it, or it is served with its
/// stream faults applied to the raw socket (TLS on top).
fn admit(conn: Accepted, handles: &Arc<Handles>, tls: &Option<TlsAcceptor>, site: &Arc<Site>) {
    let Accepted {
        tcp,
        peer,
        id,
        ordinal,
        service,
        gate,
    } = conn;
    let info = ConnInfo {
        conn: ConnRef { service, ordinal },
        elapsed: handles.events.elapsed(),
    };
    if let Some(applied) = handles.faults.on_connect(info) {
        return spawn_connect_fault(handles, tcp, id, applied, gate);
    }
    let faults = handles.faults.stream_faults(info);
    for applied in &faults.faults {
        emit_applied(
            handles,
            Some(id),
            applied.rule,
            &applied.fault,
            format!(
                "{} on the connection's raw bytes ({service} connection {ordinal})",
                applied.fault.name()
            ),
        );
    }
    let kill = gate.kill().clone();
    // The pump (if any) ends with the gate: an outage reset or shutdown.
    let supervisor = Supervisor::new(kill.clone(), handles.lifecycle.tracker.clone());
    let raw = Gated::new(
        tcp,
        gate,
        handles.device.outage(),
        handles.lifecycle.tracker.clone(),
    );
    let stream = FaultyStream::new(raw, &faults, &supervisor);
    handles.lifecycle.tracker.spawn(connection(
        stream,
        peer,
        id,
        handles.clone(),
        tls.clone(),
        site.clone(),
        kill,
    ));
}

/// Takes a socket slot (waiting or purging as the profile says), then serves. Generic over the
/// stream: the raw socket arrives wrapped (outage gate, stream faults). `kill` fires when an
/// outage resets the connection, for the steps that do not read the socket.
async fn connection<S>(
    mut tcp: S,
    peer: SocketAddr,
    id: u64,
    handles: Arc<Handles>,
    tls: Option<TlsAcceptor>,
    site: Arc<Site>,
    kill: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + crate::ws::Transport + Unpin + Send + 'static,
{
    let closed = |by: Side, reason: &str| {
        handles.events.emit(EventKind::TcpClosed {
            conn: id,
            by,
            reason: reason.to_owned(),
        });
    };
    const OUTAGE_RESET: &str = "reset by the device outage while waiting for a socket";
    let (handle, tcp) = match handles.sockets.admit(id, peer) {
        Admission::Now { handle, purged } => {
            if let Some(victim) = purged {
                handles.events.emit(EventKind::LruPurged {
                    conn: victim,
                    for_conn: id,
                });
            }
            (handle, Replay::direct(tcp))
        }
        Admission::Wait { open, ticket } => {
            handles
                .events
                .emit(EventKind::TcpWaiting { conn: id, open });
            let since = Instant::now();
            // Read ahead while waiting, to see the app give up (its connect timed out and it
            // closed the socket): an abandoned attempt leaves the queue and is never served.
            let mut ahead = ReadAhead::for_profile(&handles.profile);
            let slot = tokio::select! {
                biased;
                () = handles.lifecycle.cancel.cancelled() => None,
                () = kill.cancelled() => return closed(Side::Device, OUTAGE_RESET),
                gone = ahead.until_gone(&mut tcp) => {
                    // A read fails too when an outage resets the socket under it.
                    if let Gone::Failed(e) = &gone {
                        if kill.is_cancelled() || *handles.device.outage().borrow() != Outage::None {
                            return closed(Side::Device, OUTAGE_RESET);
                        }
                        tracing::debug!(conn = id, "waiting connection failed: {e}");
                    }
                    handles.events.emit(EventKind::TcpAbandoned {
                        conn: id,
                        waited_ms: u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                    });
                    return closed(Side::Client, "abandoned while waiting");
                }
                slot = ticket.slot() => slot,
            };
            match slot {
                Some(handle) => (handle, ahead.replay(tcp)),
                None => return closed(Side::Device, "shutdown while waiting for a socket"),
            }
        }
    };
    handles.events.emit(EventKind::TcpServed { conn: id });
    let Some(acceptor) = tls else {
        return conn::serve(tcp, handle, handles.clone(), site).await;
    };
    let handshake = tokio::time::timeout(handles.profile.recv_timeout, acceptor.accept(tcp));
    let result = tokio::select! {
        () = handles.lifecycle.cancel.cancelled() => return closed(Side::Device, "shutdown"),
        () = handle.purged().cancelled() => return closed(Side::Device, "lru purge"),
        r = handshake => r,
    };
    match result {
        Ok(Ok(stream)) => conn::serve(stream, handle, handles.clone(), site).await,
        Ok(Err(e)) => closed(Side::Client, &format!("tls handshake failed: {e}")),
        Err(_) => closed(Side::Device, "tls handshake timed out"),
    }
}
