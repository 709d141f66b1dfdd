//! The fake carrier behind `rmnet0`: a resolver that answers every name with an address in
//! its fake internet (198.18.0.0/15, the benchmarking range no real host uses), and a watcher
//! that reports every connection attempt arriving from the phone. The carrier forwards
//! nothing, so those attempts vanish and the phone's connects time out — as the request to
//! 192.168.4.1 does on a real phone whose default network is cellular.

use std::collections::HashSet;
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use crate::error::PhoneError;
use crate::events::{EventSink, PhoneEvent};
use crate::netns::in_namespace;
use crate::topology::CARRIER_RESOLVER;

/// `ETH_P_IP`: IPv4 frames on a packet socket.
const ETH_P_IP: u16 = 0x0800;
/// Connection attempts remembered to report each once (retransmitted SYNs are not new).
const MAX_REMEMBERED: usize = 4096;
/// TTL of the carrier's answers.
const ANSWER_TTL: u32 = 60;
/// How often the watcher thread looks at its stop token while no packet arrives.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Starts the carrier's resolver and watcher in namespace `carrier`; both stop on `stop`.
pub(crate) fn start(
    carrier: &str,
    events: EventSink,
    stop: CancellationToken,
) -> Result<(), PhoneError> {
    let (dns, watch) = in_namespace(carrier, "making the carrier's sockets", || {
        let dns = std::net::UdpSocket::bind(SocketAddr::from((CARRIER_RESOLVER, 53)))?;
        dns.set_nonblocking(true)?;
        let proto = Protocol::from(i32::from(ETH_P_IP.to_be()));
        let watch = Socket::new(Domain::PACKET, Type::DGRAM, Some(proto))?;
        watch.set_read_timeout(Some(WATCH_POLL))?;
        Ok((dns, watch))
    })?;
    let wrap = |source| PhoneError::Namespace {
        namespace: carrier.to_owned(),
        what: "registering the carrier's sockets",
        source,
    };
    let dns = tokio::net::UdpSocket::from_std(dns).map_err(wrap)?;
    let dns_events = events.clone();
    let dns_stop = stop.clone();
    tokio::spawn(async move {
        dns_stop
            .run_until_cancelled(serve_dns(dns, dns_events))
            .await
    });
    // A blocking thread: a packet socket has no std/tokio type to register safely.
    std::thread::Builder::new()
        .name("espsim-carrier-watch".to_owned())
        .spawn(move || watch_packets(&watch, &events, &stop))
        .map_err(wrap)?;
    Ok(())
}

/// The fake-internet address of `name`: stable per name, inside 198.18.0.0/15.
pub fn fake_address(name: &str) -> Ipv4Addr {
    // FNV-1a over the lower-cased name.
    let hash = name
        .bytes()
        .map(|b| b.to_ascii_lowercase())
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    let [_, a, b, c] = hash.to_be_bytes();
    Ipv4Addr::new(198, 18 + (a & 1), b, c.clamp(1, 254))
}

async fn serve_dns(socket: tokio::net::UdpSocket, events: EventSink) {
    let mut buf = [0u8; 1500];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "carrier resolver stopped");
                return;
            }
        };
        let Ok(query) = Message::from_vec(buf.get(..len).unwrap_or_default()) else {
            continue;
        };
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.message_type = MessageType::Response;
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.metadata.response_code = ResponseCode::NoError;
        reply.add_queries(query.queries.clone());
        for q in &query.queries {
            let name = q.name().to_ascii();
            let answer = (q.query_type() == RecordType::A).then(|| fake_address(&name));
            if let Some(ip) = answer {
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    ANSWER_TTL,
                    RData::A(A(ip)),
                ));
            }
            events(PhoneEvent::CellularDns {
                name: name.trim_end_matches('.').to_owned(),
                qtype: q.query_type().to_string(),
                answer,
            });
        }
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, from).await;
        }
    }
}

fn watch_packets(mut socket: &Socket, events: &EventSink, stop: &CancellationToken) {
    let mut seen: HashSet<(&'static str, SocketAddrV4, SocketAddrV4)> = HashSet::new();
    let mut buf = [0u8; 2048];
    while !stop.is_cancelled() {
        let len = match socket.read(&mut buf) {
            Ok(len) => len,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "carrier watcher stopped");
                return;
            }
        };
        let Some(attempt) = connection_attempt(buf.get(..len).unwrap_or_default()) else {
            continue;
        };
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        if seen.insert(attempt) {
            let (proto, from, to) = attempt;
            events(PhoneEvent::CellularConnection { proto, from, to });
        }
    }
}

/// A TCP SYN or a UDP datagram from the phone to anywhere but the carrier's resolver.
fn connection_attempt(packet: &[u8]) -> Option<(&'static str, SocketAddrV4, SocketAddrV4)> {
    let sliced = SlicedPacket::from_ip(packet).ok()?;
    let Some(NetSlice::Ipv4(ipv4)) = &sliced.net else {
        return None;
    };
    let (src, dst) = (
        ipv4.header().source_addr(),
        ipv4.header().destination_addr(),
    );
    if src == CARRIER_RESOLVER {
        return None; // the carrier's own replies
    }
    match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) if tcp.syn() && !tcp.ack() => Some((
            "tcp",
            SocketAddrV4::new(src, tcp.source_port()),
            SocketAddrV4::new(dst, tcp.destination_port()),
        )),
        Some(TransportSlice::Udp(udp))
            if !(dst == CARRIER_RESOLVER && udp.destination_port() == 53) =>
        {
            Some((
                "udp",
                SocketAddrV4::new(src, udp.source_port()),
                SocketAddrV4::new(dst, udp.destination_port()),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_addresses_are_stable_and_inside_the_benchmark_range() {
        let a = fake_address("esp32.local");
        assert_eq!(a, fake_address("ESP32.local"));
        assert_eq!(a.octets()[0], 198);
        assert!(matches!(a.octets()[1], 18 | 19));
        assert!((1..=254).contains(&a.octets()[3]));
    }
}
