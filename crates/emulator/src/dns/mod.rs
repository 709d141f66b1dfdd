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
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

use crate::context::Shared;

/// Starts serving DNS on `udp` and `tcp` (bound by the caller) until `shared.cancel` fires;
/// returns once both are being served.
///
/// TCP is a task of the emulator's runtime. UDP runs on a thread of its own with a
/// single-threaded runtime, as a real DNS server's receive loop does: answering a query takes a
/// few microseconds, and on the shared multi-thread runtime the wake-up of a second worker per
/// datagram cost more than the answer (a quarter of the queries per second, measured with
/// dnsperf). The emulator's shutdown waits for the thread.
pub(crate) async fn start(
    udp: std::net::UdpSocket,
    tcp: TcpListener,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    let handler = handler::CaptiveDns::new(shared.clone());
    let (udp_handler, udp_shared) = (handler.clone(), shared.clone());
    let running = shared.tracker.token();
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
                        transport::serve_udp(socket, udp_handler, udp_shared).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
    ready
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the dns thread ended before serving")))?;
    shared
        .tracker
        .spawn(transport::serve_tcp(tcp, handler, shared.clone()));
    Ok(())
}
