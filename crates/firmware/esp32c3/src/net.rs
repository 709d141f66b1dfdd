//! The softAP's DHCP server (edge-dhcp) and captive DNS (edge-captive): every A query is
//! answered with the softAP address, as ESP-IDF's `captive_portal` example does.

use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use edge_nal::UdpBind;
use edge_nal_embassy::{Udp, UdpBuffers};
use embassy_net::Stack;
use embassy_time::{Duration, Timer};

/// DNS answers' TTL: 300 s, as ESP-IDF's captive-portal `dns_server` (and the emulator) answer.
const DNS_TTL: core::time::Duration = core::time::Duration::from_secs(300);

/// Hands out 192.168.4.2+ with the softAP as router and DNS server, forever.
#[embassy_executor::task]
pub async fn dhcp_task(stack: Stack<'static>, ip: Ipv4Addr) -> ! {
    use edge_dhcp::io::{self, DEFAULT_SERVER_PORT};
    use edge_dhcp::server::{Server, ServerOptions};

    let mut buf = [0u8; 1500];
    let mut gateway = [Ipv4Addr::UNSPECIFIED];
    let dns = [ip];
    let buffers = UdpBuffers::<1, 1024, 1024, 4>::new();
    let udp = Udp::new(stack, &buffers);
    loop {
        let bound = udp
            .bind(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::UNSPECIFIED,
                DEFAULT_SERVER_PORT,
            )))
            .await;
        match bound {
            Ok(mut socket) => {
                let mut options = ServerOptions::new(ip, Some(&mut gateway));
                options.dns = &dns;
                let mut server = Server::<_, 16>::new_with_et(ip);
                if let Err(e) = io::server::run(&mut server, &options, &mut socket, &mut buf).await
                {
                    log::warn!("dhcp server: {e:?}");
                }
            }
            Err(e) => log::warn!("dhcp bind: {e:?}"),
        }
        Timer::after(Duration::from_millis(500)).await;
    }
}

/// Captive DNS on UDP port 53, forever.
#[embassy_executor::task]
pub async fn dns_task(stack: Stack<'static>, ip: Ipv4Addr) -> ! {
    let mut tx = [0u8; 512];
    let mut rx = [0u8; 512];
    let buffers = UdpBuffers::<1, 512, 512, 4>::new();
    let udp = Udp::new(stack, &buffers);
    let local = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 53));
    loop {
        if let Err(e) = edge_captive::io::run(&udp, local, &mut tx, &mut rx, ip, DNS_TTL).await {
            log::warn!("captive dns: {e:?}");
        }
        Timer::after(Duration::from_millis(500)).await;
    }
}
