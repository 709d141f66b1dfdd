//! Counting the attempts the kernel refuses while the device port is closed (`refuse`,
//! `reboot`): nothing listens then, so the kernel answers each SYN with RST and the app gets
//! ECONNREFUSED, as from a rebooting ESP32 — but the attempt never reaches espsim. To count a
//! reconnect storm anyway, a raw IPv4 TCP socket sees a copy of every TCP segment the host
//! receives; each SYN (SYN set, ACK clear) to the device port is recorded as `tcp_refused`.
//!
//! The raw socket is open only while the port refuses. It needs CAP_NET_RAW; without it (or for
//! an IPv6 port, which a raw IPv4 socket cannot see) each refusal window records one
//! `refused_unobserved` saying why and how to fix it.
//!
//! The socket is read through tokio's `AsyncFd`: the task sleeps until the kernel has a segment
//! queued, then drains what is there (at most [`BATCH`] segments per wake-up, yielding between
//! batches), so a busy host costs a bounded amount of work per segment and an idle one none.
//! A blocking thread with a read timeout would wake for nothing and need its own shutdown.
//!
//! Each SYN is stamped with the time the kernel received it (`SO_TIMESTAMPNS`), not the time
//! espsim got round to reading it: on a loaded host the read can come hundreds of ms late, and
//! a late stamp on one refusal shortens the gap to the next attempt — enough to make a
//! constant-delay app look like a backoff (our verdict matrix saw 0.52 s between two retries of
//! an app that always waits 0.8–1.2 s). Linux stamps packets on arrival only while some socket
//! on the host asks for timestamps, and the first such socket turns stamping on in deferred
//! kernel work; until that has run, a packet is stamped when it is read. So the emulator asks
//! for timestamps from its start ([`ArrivalStamps`]), well before a refusal window
//! opens, and a stamp is never later than the read (the old behaviour at worst).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::events::{EventKind, EventLog};

/// Segments read per wake-up before yielding to other tasks.
const BATCH: usize = 64;

/// Bytes kept of each segment: the longest IPv4 header (60) plus the longest TCP header (60);
/// the rest of a segment is cut off by the kernel, which is all a SYN check needs.
const HEADERS: usize = 120;

/// The furthest back a SYN is stamped: its kernel receive time is read off the wall clock, and
/// a wall-clock step (NTP) must not move an event by more than a host stall plausibly could.
const MAX_BACKDATE: Duration = Duration::from_secs(5);

/// What `refused_unobserved` says when the raw socket needs a permission the process lacks.
pub(crate) const NEED_CAP_NET_RAW: &str = "watching refused SYNs needs a raw socket: run as root or grant CAP_NET_RAW, e.g. setcap cap_net_raw+ep $(which espsim)";

/// Whether refused attempts are watched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RefusedAttempts {
    /// Watch SYNs to the closed port with a raw socket (`tcp_refused` per attempt); falls back
    /// to one `refused_unobserved` per refusal window when the socket cannot be opened.
    #[default]
    Watch,
    /// Never open the raw socket: one `refused_unobserved` per refusal window. For tests of
    /// the fallback, and for hosts where a raw socket is unwanted.
    Unobserved,
}

/// The device port being watched: where SYNs go and what the events call the service.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The listener's address (an unspecified IP matches every destination address).
    pub(crate) addr: SocketAddr,
    /// `http` or `https`.
    pub(crate) service: &'static str,
}

/// A raw socket watching one refusal window. Dropping it (or [`SynWatch::stop`]) closes it.
#[derive(Debug)]
pub(crate) struct SynWatch {
    reader: Arc<Reader>,
    stop: CancellationToken,
}

impl SynWatch {
    /// Starts watching `target` (before its listener closes, so no SYN slips by), or records
    /// `refused_unobserved` and returns `None` when it cannot be watched.
    pub(crate) fn start(
        target: Target,
        mode: RefusedAttempts,
        events: Arc<EventLog>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Option<SynWatch> {
        let unobserved = |reason: String| {
            events.emit(EventKind::RefusedUnobserved {
                service: target.service.to_owned(),
                reason,
            });
            None
        };
        if mode == RefusedAttempts::Unobserved {
            return unobserved(
                "watching refused attempts is turned off (RefusedAttempts::Unobserved)".to_owned(),
            );
        }
        if target.addr.is_ipv6() {
            return unobserved(format!(
                "the port {} is IPv6; refused attempts are watched on IPv4 ports only (bind an IPv4 address to count them)",
                target.addr
            ));
        }
        let socket = match open_raw() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return unobserved(format!("{NEED_CAP_NET_RAW} ({e})"));
            }
            Err(e) => return unobserved(format!("the raw socket could not be opened: {e}")),
        };
        let reader = Arc::new(Reader {
            socket,
            target,
            events,
        });
        let stop = shutdown.child_token();
        let task = reader.clone();
        let stopped = stop.clone();
        tracker.spawn(async move { task.run(stopped).await });
        Some(SynWatch { reader, stop })
    }

    /// Records the SYNs still queued, then closes the socket. Call it before the listener
    /// listens again, so a connection it accepts is never counted as refused.
    pub(crate) fn stop(self) {
        self.stop.cancel();
        self.reader.drain(usize::MAX);
    }
}

impl Drop for SynWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A socket that asks the kernel for receive timestamps while it lives, so that packets are
/// stamped on arrival by the time a refusal window opens (see the module doc). Timestamping is
/// a host-wide kernel switch: this socket only holds it on; nothing is ever read from it.
#[derive(Debug)]
pub(crate) struct ArrivalStamps(
    #[allow(dead_code, reason = "held for its effect")] std::net::UdpSocket,
);

impl ArrivalStamps {
    /// Asks for arrival stamps (best effort: without them a SYN is stamped when read, as
    /// before); `None` when the socket cannot be made.
    pub(crate) fn request() -> Option<ArrivalStamps> {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).ok()?;
        Some(ArrivalStamps(socket))
    }
}

fn open_raw() -> io::Result<AsyncFd<Socket>> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true)?;
    // `AsyncFd::new` is deprecated because a `T` that merely borrows its fd could let the fd
    // be closed while registered; `Socket` owns its fd, which lives exactly as long as the
    // `AsyncFd`. The replacement, `AsyncFd::register`, is `unsafe`, which this crate forbids.
    #[allow(deprecated)]
    AsyncFd::new(socket)
}

#[derive(Debug)]
struct Reader {
    socket: AsyncFd<Socket>,
    target: Target,
    events: Arc<EventLog>,
}

impl Reader {
    async fn run(&self, stop: CancellationToken) {
        loop {
            let ready = tokio::select! {
                () = stop.cancelled() => return,
                r = self.socket.readable() => r,
            };
            let mut guard = match ready {
                Ok(g) => g,
                Err(e) => return tracing::warn!("watching refused SYNs stopped: {e}"),
            };
            if self.drain(BATCH) < BATCH {
                // Drained to WouldBlock: wait for the next segment.
                guard.clear_ready();
            }
            drop(guard);
            tokio::task::yield_now().await;
        }
    }

    /// Reads up to `max` queued segments, recording each refused SYN; returns how many were
    /// read (fewer than `max`: the queue is empty).
    fn drain(&self, max: usize) -> usize {
        let mut buf = [0u8; HEADERS];
        let mut read = 0;
        while read < max {
            let (n, ago) = match read_segment(self.socket.get_ref(), &mut buf) {
                Ok(segment) => segment,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            read += 1;
            if let Some(peer) = refused_syn(&buf[..n], self.target.addr) {
                self.events.emit_earlier(
                    EventKind::TcpRefused {
                        peer,
                        service: self.target.service.to_owned(),
                    },
                    ago,
                );
            }
        }
        read
    }
}

/// Reads one queued segment into `buf`: its length, and how long ago the kernel received it
/// (zero when the kernel gave no timestamp; at most [`MAX_BACKDATE`]).
fn read_segment(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Duration)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut control = nix::cmsg_space!(TimeSpec);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let received = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(at) => Some(at),
        _ => None,
    });
    let ago = received.map_or(Duration::ZERO, |at| since_wall_clock(&at));
    Ok((msg.bytes, ago.min(MAX_BACKDATE)))
}

/// How long ago the wall-clock time `at` was (zero for a time in the future).
fn since_wall_clock(at: &TimeSpec) -> Duration {
    let secs = u64::try_from(at.tv_sec()).unwrap_or(0);
    let nanos = u32::try_from(at.tv_nsec()).unwrap_or(0);
    let at = UNIX_EPOCH + Duration::new(secs, nanos);
    SystemTime::now().duration_since(at).unwrap_or_default()
}

/// The sender of `segment` (an IPv4 packet carrying TCP, as a raw socket delivers it) when it
/// opens a connection to `to`: SYN set, ACK clear, destination port and address matching (any
/// address when `to`'s is unspecified).
fn refused_syn(segment: &[u8], to: SocketAddr) -> Option<SocketAddr> {
    let ip = Ipv4HeaderSlice::from_slice(segment).ok()?;
    let tcp = TcpHeaderSlice::from_slice(segment.get(ip.slice().len()..)?).ok()?;
    let dest: Ipv4Addr = ip.destination_addr();
    let address_matches = match to.ip() {
        IpAddr::V4(want) => want.is_unspecified() || want == dest,
        IpAddr::V6(_) => false,
    };
    (tcp.syn() && !tcp.ack() && tcp.destination_port() == to.port() && address_matches)
        .then(|| SocketAddr::V4(SocketAddrV4::new(ip.source_addr(), tcp.source_port())))
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    fn segment(from: ([u8; 4], u16), to: ([u8; 4], u16), syn: bool, ack: bool) -> Vec<u8> {
        let mut builder = PacketBuilder::ipv4(from.0, to.0, 64).tcp(from.1, to.1, 1, 1024);
        if syn {
            builder = builder.syn();
        }
        if ack {
            builder = builder.ack(1);
        }
        let mut out = Vec::new();
        builder.write(&mut out, &[]).expect("builds");
        out
    }

    #[test]
    fn only_a_syn_to_the_port_counts() {
        let port: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let syn = segment(([127, 0, 0, 1], 40000), ([127, 0, 0, 1], 8080), true, false);
        assert_eq!(
            refused_syn(&syn, port),
            Some("127.0.0.1:40000".parse().expect("addr"))
        );
        let syn_ack = segment(([127, 0, 0, 1], 40000), ([127, 0, 0, 1], 8080), true, true);
        assert_eq!(refused_syn(&syn_ack, port), None, "SYN-ACK is an answer");
        let other_port = segment(([127, 0, 0, 1], 40000), ([127, 0, 0, 1], 9090), true, false);
        assert_eq!(refused_syn(&other_port, port), None);
        let other_addr = segment(([127, 0, 0, 1], 40000), ([127, 0, 0, 2], 8080), true, false);
        assert_eq!(refused_syn(&other_addr, port), None);
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert!(
            refused_syn(&other_addr, any).is_some(),
            "0.0.0.0 matches every address"
        );
        assert_eq!(refused_syn(&syn[..10], port), None, "truncated: ignored");
    }
}
