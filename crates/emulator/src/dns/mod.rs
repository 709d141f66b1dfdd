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
//! [`handler::CaptiveDns`] (hickory `RequestHandler`: outage and fault plan, builds the
//! response, records events) → [`decision`] (per question: what to answer, and what a fault
//! makes of it).

mod decision;
mod handler;
mod transport;

use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};

use crate::context::Shared;

/// Serves DNS on `udp` and `tcp` (bound by the caller) until `shared.cancel` fires.
pub(crate) async fn serve(udp: UdpSocket, tcp: TcpListener, shared: Arc<Shared>) {
    let handler = handler::CaptiveDns::new(shared.clone());
    tokio::join!(
        transport::serve_udp(udp, handler.clone(), shared.clone()),
        transport::serve_tcp(tcp, handler, shared),
    );
}
