//! DNS over UDP and TCP: receive, screen malformed messages, hand queries to the handler.
//!
//! The transport is ours rather than `hickory_server::Server`'s because the server drops or
//! FORMERRs bad packets internally, where nothing can record a `DnsMalformed` event. Parsing
//! is still hickory's (`Header::read`, `Request::from_bytes`), and so is encoding the answer
//! ([`Reply::send`], with hickory's `emit_message_parts`).
//!
//! What a bad message gets, on both transports (a TCP connection stays open, since the
//! length prefix keeps the stream in step):
//! - shorter than the 12-byte header: no reply (there is no ID to answer to);
//! - a response (QR=1): no reply (answering would allow reflection loops);
//! - header readable, rest not, or no question: FORMERR with the query's ID, no question.
//!
//! UDP is read and answered in batches ([`UdpBatch`]): one `recvmmsg` takes up to [`BATCH`]
//! datagrams, each is answered in arrival order into a reused reply buffer, one `sendmmsg` sends
//! the replies, and only then is each query recorded, with the response code if its reply went
//! out (`None` if it did not), as when it was answered alone. On loopback under load most of a
//! query's cost is the kernel's, and a system call per datagram in each direction was the part
//! of it a server can save.

use std::io::{self, IoSlice, IoSliceMut};
use std::iter;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use espsim_faults::{DnsFault, Fault};
use hickory_proto::op::{Header, Message, MessageType, Metadata, ResponseCode, emit_message_parts};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;

use super::Handles;
use super::handler::{CaptiveDns, EDNS_PAYLOAD, Plan, Recording, Response, transport_name};
use crate::events::{EventKind, EventLog};

/// A TCP connection that sends no complete message for this long is closed (RFC 7766 §6.2.3
/// recommends idle timeouts of seconds; lwIP has no DNS over TCP to copy).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest UDP datagram; anything larger cannot arrive.
const MAX_DATAGRAM: usize = 65_535;

/// Replies without EDNS are capped at 512 bytes (RFC 1035 §4.2.1); TC is set when cut.
const PLAIN_UDP_LIMIT: u16 = 512;

/// Datagrams taken from (or handed to) the kernel per `recvmmsg` (`sendmmsg`). dnsperf keeps
/// 64 queries in flight over 4 sockets; 32 is where glibc-based servers (and Knot's `udp-mmsg`
/// default) settle: a larger batch saves little more and holds replies back longer.
const BATCH: usize = 32;

/// Batches received before the UDP loop goes back to the runtime, so that under constant load it
/// still sees shutdown (and the delayed-answer tasks it spawned get to run).
const BATCHES_PER_TURN: usize = 8;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `socket` until shutdown, a batch of datagrams at a time ([`UdpBatch`]). A query is
/// answered in the receive loop, or in its own task while a `dns: delay` rule exists (so one
/// delayed answer does not hold up the others).
pub(crate) async fn serve_udp(socket: UdpSocket, handler: CaptiveDns, handles: Arc<Handles>) {
    let socket = Arc::new(socket);
    let mut batch = UdpBatch::new();
    loop {
        let ready = tokio::select! {
            () = handles.lifecycle.cancel.cancelled() => break,
            r = socket.readable() => r,
        };
        if let Err(e) = ready {
            tracing::error!(error = %e, "dns udp socket failed; udp dns stopped");
            break;
        }
        for _ in 0..BATCHES_PER_TURN {
            let fd = socket.as_raw_fd();
            match socket.try_io(Interest::READABLE, || batch.receive(fd)) {
                Ok(0) => break,
                Ok(_) => batch.answer(&socket, &handler, &handles).await,
                // Drained: wait for readiness again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier replies surface here on some systems: not fatal.
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    tracing::error!(error = %e, "dns udp socket failed; udp dns stopped");
                    return;
                }
            }
        }
    }
}

/// The UDP loop's reusable state: receive buffers for `recvmmsg`, the replies
/// waiting for `sendmmsg`, the events waiting for the replies, and spare reply buffers.
/// Nothing in it grows with the load: at most [`BATCH`] datagrams are held at a time.
struct UdpBatch {
    /// One buffer per datagram, each as large as a datagram can be. Allocated zeroed once, so
    /// the kernel maps only the pages datagrams actually touch (a page each for DNS queries).
    buffers: [Vec<u8>; BATCH],
    /// The datagrams of the last `recvmmsg`: length and sender.
    received: Vec<(usize, Option<SocketAddr>)>,
    /// Replies encoded and not yet sent, in arrival order.
    outbox: Vec<Outgoing>,
    /// What to record for each datagram of the batch, in arrival order, once the replies are
    /// sent (so events keep the order the datagrams came in, and say what really went out).
    records: Vec<Pending>,
    /// Reply buffers of earlier batches, cleared, for the next replies.
    spare: Vec<Vec<u8>>,
}

/// One reply waiting for `sendmmsg`.
struct Outgoing {
    /// The encoded reply (a buffer from [`UdpBatch::spare`]).
    bytes: Vec<u8>,
    /// Where it goes: the query's sender.
    client: SocketAddr,
    /// Its datagram's entry in [`UdpBatch::records`].
    record: usize,
}

/// The events of one datagram of a batch, waiting to learn whether its reply went out.
enum Pending {
    /// A query; `rcode` is that of its reply, `None` when it gets none (outage, `no_reply`).
    Query {
        /// Its `DnsQuery` events.
        recording: Recording,
        /// The response code of its reply, if it has one.
        rcode: Option<ResponseCode>,
        /// Whether `sendmmsg` took the reply.
        sent: bool,
    },
    /// A malformed message, with or without a FORMERR reply.
    Malformed {
        /// Who sent it.
        client: SocketAddr,
        /// Why it was rejected.
        error: String,
        /// Whether `sendmmsg` took its FORMERR.
        sent: bool,
    },
    /// Already recorded (a query answered late, by the loop itself).
    Done,
}

impl Pending {
    /// Notes that the reply went out.
    fn mark_sent(&mut self) {
        match self {
            Pending::Query { sent, .. } | Pending::Malformed { sent, .. } => *sent = true,
            Pending::Done => {}
        }
    }

    /// Records the events, as the one-at-a-time path would have.
    fn record(self, events: &EventLog) {
        match self {
            Pending::Query {
                recording,
                rcode,
                sent,
            } => recording.sent(events, rcode.filter(|_| sent)),
            Pending::Malformed {
                client,
                error,
                sent,
            } => {
                events.emit(EventKind::DnsMalformed {
                    transport: transport_name(Protocol::Udp),
                    client,
                    error,
                    rcode: sent.then(|| format!("{:?}", ResponseCode::FormErr)),
                });
            }
            Pending::Done => {}
        }
    }
}

impl UdpBatch {
    /// Allocates what the loop reuses: [`BATCH`] receive buffers.
    fn new() -> Self {
        UdpBatch {
            buffers: std::array::from_fn(|_| vec![0u8; MAX_DATAGRAM]),
            received: Vec::with_capacity(BATCH),
            outbox: Vec::with_capacity(BATCH),
            records: Vec::with_capacity(BATCH),
            spare: Vec::with_capacity(BATCH),
        }
    }

    /// One `recvmmsg` on the nonblocking socket `fd`: up to [`BATCH`] datagrams; returns how
    /// many (`WouldBlock` when there are none).
    ///
    /// The headers are made per call: they hold raw pointers, and kept in the batch they would
    /// make the UDP loop's future `!Send` (virtual time runs it as a task of the caller's
    /// runtime).
    fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut slices = self.buffers.each_mut().map(|b| [IoSliceMut::new(b)]);
        let results = recvmmsg(
            fd,
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        self.received.clear();
        self.received
            .extend(results.map(|m| (m.bytes, m.address.as_ref().and_then(socket_addr))));
        Ok(self.received.len())
    }

    /// Answers the datagrams of the last [`UdpBatch::receive`] in arrival order: replies into
    /// the outbox, sent together by [`UdpBatch::flush`], which then records them. While a
    /// `delay` rule exists each datagram is answered in a task of its own instead.
    async fn answer(
        &mut self,
        socket: &Arc<UdpSocket>,
        handler: &CaptiveDns,
        handles: &Arc<Handles>,
    ) {
        let delayable = may_wait(handles);
        for i in 0..self.received.len() {
            let Some(&(len, Some(client))) = self.received.get(i) else {
                continue;
            };
            let raw = self
                .buffers
                .get(i)
                .and_then(|b| b.get(..len))
                .unwrap_or_default()
                .to_vec();
            if delayable {
                let sink = Sink::Udp {
                    socket: socket.clone(),
                    client,
                };
                spawn_answer(raw, client, sink, handler, handles);
                continue;
            }
            match admit(raw, client, Protocol::Udp) {
                Admission::Query(request) => {
                    self.answer_query(&request, socket, handler).await;
                }
                Admission::Rejected { error, reply } => {
                    let record = self.records.len();
                    self.records.push(Pending::Malformed {
                        client,
                        error,
                        sent: false,
                    });
                    if let Some(bytes) = reply {
                        self.outbox.push(Outgoing {
                            bytes,
                            client,
                            record,
                        });
                    }
                }
            }
        }
        self.flush(socket, handles).await;
    }

    /// Plans the answer to one query and queues its reply (if any) and its record.
    async fn answer_query(
        &mut self,
        request: &Request,
        socket: &Arc<UdpSocket>,
        handler: &CaptiveDns,
    ) {
        let response = match handler.plan(request) {
            Plan::Silent(recording) => {
                self.records.push(Pending::Query {
                    recording,
                    rcode: None,
                    sent: false,
                });
                return;
            }
            Plan::Respond(response) => response,
        };
        if !response.delay.is_zero() {
            // A `delay` rule added since `may_wait` was asked: this once the loop waits, as
            // it did before batching; the next batch answers in tasks.
            let reply = Reply {
                max_size: response_limit(Protocol::Udp, request),
                sink: Sink::Udp {
                    socket: socket.clone(),
                    client: request.src(),
                },
            };
            handler.deliver(response, reply).await;
            self.records.push(Pending::Done);
            return;
        }
        let mut bytes = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(512));
        let limit = response_limit(Protocol::Udp, request);
        let rcode = match encode(&mut bytes, limit, &response) {
            Ok(rcode) => Some(rcode),
            Err(e) => {
                tracing::warn!(client = %request.src(), error = %e, "dns reply not sent");
                None
            }
        };
        let record = self.records.len();
        self.records.push(Pending::Query {
            recording: response.recording,
            rcode,
            sent: false,
        });
        if rcode.is_some() {
            self.outbox.push(Outgoing {
                bytes,
                client: request.src(),
                record,
            });
        } else {
            self.spare.push(bytes);
        }
    }

    /// Sends the outbox with as few `sendmmsg` calls as the socket allows, then records every
    /// datagram of the batch in arrival order and keeps the reply buffers for the next batch.
    async fn flush(&mut self, socket: &UdpSocket, handles: &Handles) {
        let mut next = 0;
        while next < self.outbox.len() {
            let fd = socket.as_raw_fd();
            let pending = self.outbox.get(next..).unwrap_or_default();
            match socket.try_io(Interest::WRITABLE, || send_some(fd, pending)) {
                Ok(sent) => {
                    // `sendmmsg` sends at least one message when it does not fail.
                    let done = (next + sent.max(1)).min(self.outbox.len());
                    for out in self.outbox.get(next..done).unwrap_or_default() {
                        if let Some(record) = self.records.get_mut(out.record) {
                            record.mark_sent();
                        }
                    }
                    next = done;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The send buffer is full: wait for room, unless shutting down.
                    let room = tokio::select! {
                        () = handles.lifecycle.cancel.cancelled() => break,
                        r = socket.writable() => r,
                    };
                    if let Err(e) = room {
                        tracing::warn!(error = %e, "dns udp socket failed; replies not sent");
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // This reply cannot go (e.g. no route back); the next ones may.
                    let client = self.outbox.get(next).map(|o| o.client);
                    tracing::warn!(?client, error = %e, "dns reply not sent");
                    next += 1;
                }
            }
        }
        for mut out in self.outbox.drain(..) {
            out.bytes.clear();
            self.spare.push(out.bytes);
        }
        for record in self.records.drain(..) {
            record.record(&handles.events);
        }
    }
}

/// One `sendmmsg` of up to [`BATCH`] of `outbox`'s replies; returns how many were sent.
fn send_some(fd: RawFd, outbox: &[Outgoing]) -> io::Result<usize> {
    let outbox = outbox.get(..BATCH).unwrap_or(outbox);
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(outbox.len(), None);
    let slices: Vec<[IoSlice<'_>; 1]> = outbox.iter().map(|o| [IoSlice::new(&o.bytes)]).collect();
    let addresses: Vec<Option<SockaddrStorage>> = outbox
        .iter()
        .map(|o| Some(SockaddrStorage::from(o.client)))
        .collect();
    let sent = sendmmsg(
        fd,
        &mut headers,
        &slices,
        &addresses,
        [],
        MsgFlags::MSG_DONTWAIT,
    )?;
    Ok(sent.count())
}

/// A sender's address as std knows it; `None` for families DNS does not arrive over.
fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// Answers one datagram in a task of its own (it may wait on a `delay` fault).
fn spawn_answer(
    raw: Vec<u8>,
    client: SocketAddr,
    sink: Sink,
    handler: &CaptiveDns,
    handles: &Arc<Handles>,
) {
    let (handler, task_handles) = (handler.clone(), handles.clone());
    handles.lifecycle.tracker.spawn(async move {
        let cancel = task_handles.lifecycle.cancel.clone();
        tokio::select! {
            () = cancel.cancelled() => {}
            () = handle_message(raw, client, Protocol::Udp, sink, &handler, &task_handles) => {}
        }
    });
}

/// True while a fault rule can make an answer wait (`dns: delay`), whatever its trigger.
fn may_wait(handles: &Handles) -> bool {
    handles
        .faults
        .has_rule(|f| matches!(f, Fault::Dns(DnsFault::Delay(_))))
}

/// Accepts on `listener` until shutdown; each connection is served in its own task.
pub(crate) async fn serve_tcp(listener: TcpListener, handler: CaptiveDns, handles: Arc<Handles>) {
    loop {
        let accepted = tokio::select! {
            () = handles.lifecycle.cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, client)) => {
                let (handler, conn_handles) = (handler.clone(), handles.clone());
                handles.lifecycle.tracker.spawn(serve_tcp_conn(
                    stream,
                    client,
                    handler,
                    conn_handles,
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "dns tcp accept failed");
                tokio::select! {
                    () = handles.lifecycle.cancel.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

/// Reads length-prefixed messages and answers them in order, until EOF, idle timeout,
/// an I/O error or shutdown.
async fn serve_tcp_conn(
    stream: TcpStream,
    client: SocketAddr,
    handler: CaptiveDns,
    handles: Arc<Handles>,
) {
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(Mutex::new(writer));
    loop {
        let frame = tokio::select! {
            () = handles.lifecycle.cancel.cancelled() => break,
            r = tokio::time::timeout(TCP_IDLE_TIMEOUT, read_frame(&mut reader)) => r,
        };
        match frame {
            Ok(Ok(Frame::Message(raw))) => {
                let sink = Sink::Tcp(writer.clone());
                handle_message(raw, client, Protocol::Tcp, sink, &handler, &handles).await;
            }
            Ok(Ok(Frame::Eof)) => break,
            Ok(Ok(Frame::Truncated { got, expected })) => {
                handles.events.emit(EventKind::DnsMalformed {
                    transport: transport_name(Protocol::Tcp),
                    client,
                    error: format!(
                        "connection closed mid-message ({got} of {expected} bytes received)"
                    ),
                    rcode: None,
                });
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(%client, error = %e, "dns tcp connection failed");
                break;
            }
            Err(_elapsed) => {
                tracing::debug!(%client, "dns tcp connection idle; closing");
                break;
            }
        }
    }
}

/// One read from a DNS-over-TCP stream.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// A whole message (its 2-byte length prefix removed).
    Message(Vec<u8>),
    /// The peer closed between messages.
    Eof,
    /// The peer closed inside a message (prefix included in the counts).
    Truncated { got: usize, expected: usize },
}

/// Reads one RFC 1035 §4.2.2 frame: a big-endian `u16` length, then that many bytes.
async fn read_frame(reader: &mut (impl AsyncRead + Unpin)) -> io::Result<Frame> {
    let mut prefix = [0u8; 2];
    let mut got = 0;
    while got < prefix.len() {
        match reader.read(&mut prefix[got..]).await? {
            0 if got == 0 => return Ok(Frame::Eof),
            0 => return Ok(Frame::Truncated { got, expected: 2 }),
            n => got += n,
        }
    }
    let len = usize::from(u16::from_be_bytes(prefix));
    let mut message = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match reader.read(&mut message[filled..]).await? {
            0 => {
                return Ok(Frame::Truncated {
                    got: 2 + filled,
                    expected: 2 + len,
                });
            }
            n => filled += n,
        }
    }
    Ok(Frame::Message(message))
}

/// Screens one message and either answers it through `handler` or records why not.
async fn handle_message(
    raw: Vec<u8>,
    client: SocketAddr,
    protocol: Protocol,
    sink: Sink,
    handler: &CaptiveDns,
    handles: &Handles,
) {
    match admit(raw, client, protocol) {
        Admission::Query(request) => {
            let reply = Reply {
                max_size: response_limit(protocol, &request),
                sink,
            };
            handler.answer(&request, reply).await;
        }
        Admission::Rejected { error, reply } => {
            reject(error, reply, client, protocol, &sink, handles).await;
        }
    }
}

/// Sends the FORMERR of a rejected message, if it gets one, and records a `DnsMalformed`.
async fn reject(
    error: String,
    reply: Option<Vec<u8>>,
    client: SocketAddr,
    protocol: Protocol,
    sink: &Sink,
    handles: &Handles,
) {
    let rcode = match reply {
        Some(bytes) => match sink.send(&bytes).await {
            Ok(()) => Some(format!("{:?}", ResponseCode::FormErr)),
            Err(e) => {
                tracing::warn!(%client, error = %e, "dns formerr not sent");
                None
            }
        },
        None => None,
    };
    handles.events.emit(EventKind::DnsMalformed {
        transport: transport_name(protocol),
        client,
        error,
        rcode,
    });
}

/// The outcome of screening one received message.
#[derive(Debug)]
enum Admission {
    /// A query the handler can answer.
    Query(Box<Request>),
    /// Not answerable: why, and the FORMERR to send, if any.
    Rejected {
        error: String,
        reply: Option<Vec<u8>>,
    },
}

/// Decides whether `raw` is a query to answer (see the module docs for the rules).
fn admit(raw: Vec<u8>, client: SocketAddr, protocol: Protocol) -> Admission {
    let header = match Header::read(&mut BinDecoder::new(&raw)) {
        Ok(header) => header,
        Err(_) => {
            return Admission::Rejected {
                error: format!(
                    "message shorter than the 12-byte dns header ({} bytes)",
                    raw.len()
                ),
                reply: None,
            };
        }
    };
    if header.metadata.message_type == MessageType::Response {
        return Admission::Rejected {
            error: "message is a response (qr=1), not a query".to_owned(),
            reply: None,
        };
    }
    let (error, reply) = match Request::from_bytes(raw, client, protocol) {
        Ok(request) if !request.queries.is_empty() => {
            return Admission::Query(Box::new(request));
        }
        Ok(_) => (
            "query has no question".to_owned(),
            formerr(&header.metadata),
        ),
        Err(e) => (format!("undecodable query: {e}"), formerr(&header.metadata)),
    };
    Admission::Rejected { error, reply }
}

/// FORMERR for a query whose header is known: ID, opcode and RD echoed, no question.
fn formerr(query: &Metadata) -> Option<Vec<u8>> {
    let mut message = Message::response(query.id, query.op_code);
    message.metadata = Metadata::response_from_request(query);
    message.metadata.response_code = ResponseCode::FormErr;
    message.to_vec().ok()
}

/// The largest reply `protocol` allows for `request`: TCP 64 KiB; UDP the client's EDNS
/// payload size (at least 512, at most ours), 512 without EDNS.
fn response_limit(protocol: Protocol, request: &Request) -> u16 {
    match (protocol, &request.edns) {
        (Protocol::Udp, Some(edns)) => edns.max_payload().clamp(PLAIN_UDP_LIMIT, EDNS_PAYLOAD),
        (Protocol::Udp, None) => PLAIN_UDP_LIMIT,
        _ => u16::MAX,
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Where a reply goes: the UDP socket and the client's address, or the TCP connection.
#[derive(Debug, Clone)]
enum Sink {
    Udp {
        socket: Arc<UdpSocket>,
        client: SocketAddr,
    },
    Tcp(Arc<Mutex<OwnedWriteHalf>>),
}

impl Sink {
    /// Sends one encoded message (TCP: with its length prefix, in one write).
    async fn send(&self, message: &[u8]) -> io::Result<()> {
        match self {
            Sink::Udp { socket, client } => socket.send_to(message, client).await.map(|_| ()),
            Sink::Tcp(writer) => {
                let len = u16::try_from(message.len()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "dns message over 65535 bytes")
                })?;
                let mut framed = Vec::with_capacity(message.len() + 2);
                framed.extend_from_slice(&len.to_be_bytes());
                framed.extend_from_slice(message);
                writer.lock().await.write_all(&framed).await
            }
        }
    }
}

/// Where the answer to one query goes, and how large it may be.
#[derive(Debug)]
pub(crate) struct Reply {
    sink: Sink,
    max_size: u16,
}

impl Reply {
    /// Encodes `response` within the transport's size limit ([`encode`]) and sends it; returns
    /// the response code sent.
    pub(crate) async fn send(&self, response: &Response<'_>) -> io::Result<ResponseCode> {
        let mut bytes = Vec::with_capacity(512);
        let rcode = encode(&mut bytes, self.max_size, response)?;
        self.sink.send(&bytes).await?;
        Ok(rcode)
    }
}

/// Encodes a response into `bytes` (emptied first) within `max_size`; returns its response
/// code. Answers that do not fit are cut and TC is set (hickory's `emit_message_parts`);
/// questions are encoded as names, so answer owner names point at the question (`c0 0c`), as
/// ESP-IDF writes them. If not even the question fits, the reply is a header-only SERVFAIL.
fn encode(bytes: &mut Vec<u8>, max_size: u16, response: &Response<'_>) -> io::Result<ResponseCode> {
    let metadata = &response.metadata;
    bytes.clear();
    let mut encoder = BinEncoder::new(bytes);
    encoder.set_max_size(max_size);
    let emitted = emit_message_parts(
        metadata,
        &mut response.queries.iter().copied(),
        &mut response.answers(),
        &mut iter::empty::<&Record>(),
        &mut iter::empty::<&Record>(),
        response.edns.as_ref(),
        None,
        &mut encoder,
    );
    match emitted {
        Ok(header) => Ok(header.metadata.response_code),
        Err(e) => {
            tracing::warn!(error = %e, "dns reply could not be encoded; sending servfail");
            let mut failed = Message::response(metadata.id, metadata.op_code);
            failed.metadata = *metadata;
            failed.metadata.response_code = ResponseCode::ServFail;
            *bytes = failed.to_vec().map_err(io::Error::other)?;
            Ok(ResponseCode::ServFail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_read_whole_and_eof_is_told_apart_from_a_cut() {
        let mut input: &[u8] = &[0, 3, b'a', b'b', b'c', 0, 0];
        assert_eq!(
            read_frame(&mut input).await.expect("reads"),
            Frame::Message(b"abc".to_vec())
        );
        assert_eq!(
            read_frame(&mut input).await.expect("reads"),
            Frame::Message(Vec::new())
        );
        assert_eq!(read_frame(&mut input).await.expect("reads"), Frame::Eof);

        let mut cut: &[u8] = &[0, 5, 1, 2];
        assert_eq!(
            read_frame(&mut cut).await.expect("reads"),
            Frame::Truncated {
                got: 4,
                expected: 7
            }
        );
        let mut half_prefix: &[u8] = &[0];
        assert_eq!(
            read_frame(&mut half_prefix).await.expect("reads"),
            Frame::Truncated {
                got: 1,
                expected: 2
            }
        );
    }

    fn client() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5000))
    }

    #[test]
    fn short_messages_and_responses_get_no_reply() {
        for raw in [Vec::new(), vec![0xab; 11]] {
            match admit(raw, client(), Protocol::Udp) {
                Admission::Rejected { reply: None, .. } => {}
                other => panic!("expected a silent rejection, got {other:?}"),
            }
        }
        let mut response = Message::response(7, hickory_proto::op::OpCode::Query);
        response.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("example.com.").expect("name"),
            hickory_proto::rr::RecordType::A,
        ));
        let raw = response.to_vec().expect("encodes");
        match admit(raw, client(), Protocol::Udp) {
            Admission::Rejected { reply: None, error } => assert!(error.contains("qr=1")),
            other => panic!("expected a silent rejection, got {other:?}"),
        }
    }

    #[test]
    fn readable_header_with_a_bad_body_gets_formerr_with_the_same_id() {
        // ID 0x1234, RD, one question, then a label running past the end.
        let raw = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'x'];
        let Admission::Rejected {
            reply: Some(reply), ..
        } = admit(raw, client(), Protocol::Udp)
        else {
            panic!("expected formerr");
        };
        let reply = Message::from_vec(&reply).expect("formerr decodes");
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert!(reply.metadata.recursion_desired);
        assert!(reply.queries.is_empty());
    }

    #[test]
    fn a_query_without_question_gets_formerr() {
        let raw = Message::query().to_vec().expect("encodes");
        assert!(matches!(
            admit(raw, client(), Protocol::Tcp),
            Admission::Rejected { reply: Some(_), .. }
        ));
    }
}
