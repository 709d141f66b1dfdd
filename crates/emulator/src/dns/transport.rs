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

use std::io;
use std::iter;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use espsim_faults::{DnsFault, Fault};
use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, Query, ResponseCode, emit_message_parts,
};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;

use super::Handles;
use super::handler::{CaptiveDns, EDNS_PAYLOAD, transport_name};
use crate::events::EventKind;

/// A TCP connection that sends no complete message for this long is closed (RFC 7766 §6.2.3
/// recommends idle timeouts of seconds; lwIP has no DNS over TCP to copy).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest UDP datagram; anything larger cannot arrive.
const MAX_DATAGRAM: usize = 65_535;

/// Replies without EDNS are capped at 512 bytes (RFC 1035 §4.2.1); TC is set when cut.
const PLAIN_UDP_LIMIT: u16 = 512;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `socket` until shutdown. A datagram is answered in the receive loop, or in its own
/// task while a `dns: delay` rule exists (so one delayed answer does not hold up the others).
pub(crate) async fn serve_udp(socket: UdpSocket, handler: CaptiveDns, handles: Arc<Handles>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            () = handles.lifecycle.cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, client) = match received {
            Ok(r) => r,
            // ICMP errors from earlier replies surface here on some systems: not fatal.
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "dns udp socket failed; udp dns stopped");
                break;
            }
        };
        let raw = buf.get(..len).unwrap_or_default().to_vec();
        let sink = Sink::Udp {
            socket: socket.clone(),
            client,
        };
        if !may_wait(&handles) {
            // The answer needs no I/O but its `send_to`, which a UDP socket completes at once:
            // a task per datagram would only add a cross-thread wake-up per query.
            handle_message(raw, client, Protocol::Udp, sink, &handler, &handles).await;
            continue;
        }
        let (handler, task_handles) = (handler.clone(), handles.clone());
        handles.lifecycle.tracker.spawn(async move {
            let cancel = task_handles.lifecycle.cancel.clone();
            tokio::select! {
                () = cancel.cancelled() => {}
                () = handle_message(raw, client, Protocol::Udp, sink, &handler, &task_handles) => {}
            }
        });
    }
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
    }
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
    /// Encodes the response within the transport's size limit and sends it; returns the
    /// response code sent. Answers that do not fit are cut and TC is set (hickory's
    /// `emit_message_parts`); questions are encoded as names, so answer owner names point at
    /// the question (`c0 0c`), as ESP-IDF writes them. If not even the question fits, the reply
    /// is a header-only SERVFAIL.
    pub(crate) async fn send<'r>(
        &self,
        metadata: &Metadata,
        questions: &[&Query],
        answers: impl Iterator<Item = &'r Record>,
        edns: Option<&Edns>,
    ) -> io::Result<ResponseCode> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(self.max_size);
        let emitted = emit_message_parts(
            metadata,
            &mut questions.iter().copied(),
            &mut { answers },
            &mut iter::empty::<&Record>(),
            &mut iter::empty::<&Record>(),
            edns,
            None,
            &mut encoder,
        );
        let rcode = match emitted {
            Ok(header) => header.metadata.response_code,
            Err(e) => {
                tracing::warn!(error = %e, "dns reply could not be encoded; sending servfail");
                let mut failed = Message::response(metadata.id, metadata.op_code);
                failed.metadata = *metadata;
                failed.metadata.response_code = ResponseCode::ServFail;
                bytes = failed.to_vec().map_err(io::Error::other)?;
                ResponseCode::ServFail
            }
        };
        self.sink.send(&bytes).await?;
        Ok(rcode)
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
