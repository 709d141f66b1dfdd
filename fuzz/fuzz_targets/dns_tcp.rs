//! The captive DNS over TCP, end to end: each input is the byte stream of one connection to a
//! real emulator on loopback (RFC 1035 §4.2.2 framing: a 2-byte length, then the message),
//! written at once, then half-closed.
//!
//! Checks: no panic; the server closes once the client has finished (it never hangs on a
//! cut frame); what it sent is whole frames only; each reply is a response a client can parse,
//! and the replies answer the input's complete messages in order (IDs a subsequence of theirs).
#![no_main]

use espsim_fuzz::dns_server;
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let server = dns_server();
    server.set_internet(data.get(2).copied().unwrap_or_default());
    let sent = server.tcp(data);
    let queries = frames(data).0;
    let (replies, rest) = frames(&sent);
    assert!(rest.is_empty(), "the server sent a cut frame: {sent:?}");
    assert!(replies.len() <= queries.len(), "more replies than queries");
    let mut ids = queries.iter().filter(|q| q.len() >= 2).map(|q| &q[..2]);
    for reply in &replies {
        assert!(reply.len() >= 12 && reply[2] & 0x80 != 0, "not a response: {reply:?}");
        assert!(
            ids.any(|id| id == &reply[..2]),
            "reply {:?} answers no query left in order",
            &reply[..2]
        );
        if let Err(e) = Message::from_vec(reply) {
            panic!("a client cannot parse the reply ({e}): {reply:?}");
        }
    }
});

/// Splits a stream into its complete frames and the bytes after the last one.
fn frames(mut stream: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut out = Vec::new();
    while let [hi, lo, rest @ ..] = stream {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(message) = rest.get(..len) else {
            break;
        };
        out.push(message);
        stream = &rest[len..];
    }
    (out, stream)
}
