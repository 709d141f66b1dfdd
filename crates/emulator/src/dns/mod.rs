//! Captive-portal DNS: every A query gets the device IP, over UDP and TCP.
//!
//! This is ESP-IDF's captive-portal `dns_server` in its fixed revision (see
//! `reference/esp32-idf-behaviour.md` §1a): A → device IP with TTL 300, every other type
//! NOERROR without answer (NODATA), each question of a multi-question query answered, AA=0,
//! RA=0, RD echoed, question echoed as asked (case preserved). Beyond the chip, so clients
//! behave: an OPT record in the reply when the query had one, FORMERR for undecodable
//! queries, TCP, and in `internet: online` mode the Windows NCSI DNS probe answer.
//!
//! Faults: per question the fault plan may answer NXDOMAIN / SERVFAIL / REFUSED, send nothing,
//! answer another address or answer late (`{ dns: … }` rules, scoped with `name` / `qtype`);
//! while the device is rebooting or its AP is down (`Outage`) no query is answered.
//!
//! Data flows one way: [`transport`] (sockets, framing, malformed screening) →
//! [`handler::CaptiveDns`] (outage and fault plan, builds the response, records events) →
//! [`decision`] (per question: what to answer, and what a fault makes of it).

mod decision;
mod handler;
mod transport;

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;

use espsim_faults::FaultPlan;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

use crate::device_host::DeviceHost;
use crate::events::EventLog;
use crate::internet::Internet;
use crate::lifecycle::Lifecycle;

/// What the DNS service uses: the address every A query gets, the internet mode, the device
/// host's outage (no answer while the chip is down), the fault plan, the event log and the
/// shutdown.
#[derive(Debug)]
pub(crate) struct Handles {
    /// The softAP's address, the answer to every A query.
    pub(crate) device_ip: Ipv4Addr,
    /// Captive, online or offline answers.
    pub(crate) internet: Internet,
    /// Its outage: DNS does not answer during a reboot or an AP outage.
    pub(crate) device: Arc<DeviceHost>,
    /// DNS faults.
    pub(crate) faults: Arc<FaultPlan>,
    /// The run clock and where queries are recorded.
    pub(crate) events: Arc<EventLog>,
    /// Spawn on it, stop with it; the UDP thread holds a tracker token.
    pub(crate) lifecycle: Lifecycle,
}

/// Starts serving DNS on `udp` and `tcp` (bound by the caller) until `handles.lifecycle.cancel` fires;
/// returns once both are being served.
///
/// TCP is a task of the emulator's runtime. With `udp_thread`, UDP runs on a thread of its own
/// with a single-threaded runtime, as a real DNS server's receive loop does: answering a query
/// takes a few microseconds, and on the handles multi-thread runtime the wake-up of a second
/// worker per datagram cost more than the answer (a quarter of the queries per second,
/// measured with dnsperf). The emulator's shutdown waits for the thread. Without it (virtual
/// time: one paused clock for everything) UDP is a task of the caller's runtime too.
pub(crate) async fn start(
    udp: std::net::UdpSocket,
    tcp: TcpListener,
    handles: &Arc<Handles>,
    udp_thread: bool,
) -> io::Result<()> {
    let handler = handler::CaptiveDns::new(handles.clone());
    if udp_thread {
        start_udp_thread(udp, handler.clone(), handles)?.await?;
    } else {
        let socket = UdpSocket::from_std(udp)?;
        handles.lifecycle.tracker.spawn(transport::serve_udp(
            socket,
            handler.clone(),
            handles.clone(),
        ));
    }
    handles
        .lifecycle
        .tracker
        .spawn(transport::serve_tcp(tcp, handler, handles.clone()));
    Ok(())
}

/// Starts UDP's own thread; the returned future resolves once it serves (or failed to).
fn start_udp_thread(
    udp: std::net::UdpSocket,
    handler: handler::CaptiveDns,
    handles: &Arc<Handles>,
) -> io::Result<impl Future<Output = io::Result<()>>> {
    let udp_handles = handles.clone();
    let running = handles.lifecycle.tracker.token();
    let (ready_tx, ready) = oneshot::channel::<io::Result<()>>();
    std::thread::Builder::new()
        .name("espsim-dns-udp".to_owned())
        .spawn(move || {
            // Dropped last (after the runtime and its tasks): the shutdown waits for it.
            let _running = running;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                match UdpSocket::from_std(udp) {
                    Ok(socket) => {
                        let _ = ready_tx.send(Ok(()));
                        transport::serve_udp(socket, handler, udp_handles).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
    Ok(async move {
        ready
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the dns thread ended before serving")))
    })
}
