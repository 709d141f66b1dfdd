//! Captive-portal DNS: every A query is answered with the softAP address (what ESP-IDF's
//! `captive_portal` example does), so phones open the portal and `anything.local` reaches us.
//! The wire format is handled by `edge-captive` (built on the `domain` crate), not by hand.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

/// Serves DNS on UDP port 53 forever (run it on its own thread).
pub fn serve(ip: Ipv4Addr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 53))?;
    let mut request = [0u8; 512];
    let mut response = [0u8; 512];
    loop {
        let (len, peer) = match socket.recv_from(&mut request) {
            Ok(received) => received,
            Err(e) => {
                log::warn!("dns recv: {e}");
                continue;
            }
        };
        match edge_captive::reply(
            &request[..len],
            &ip.octets(),
            Duration::from_secs(60),
            &mut response,
        ) {
            Ok(n) => {
                if let Err(e) = socket.send_to(&response[..n], peer) {
                    log::warn!("dns send to {peer}: {e}");
                }
            }
            // Malformed query: no answer, like ESP-IDF's dns_server.
            Err(e) => log::debug!("dns: ignoring malformed query from {peer}: {e:?}"),
        }
    }
}
