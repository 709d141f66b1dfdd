//! The captive DNS over UDP, end to end: each input is one datagram sent to a real emulator on
//! loopback (its receive loop, screening, handler and encoder). The first byte of the input
//! (the high byte of the query ID) also picks the internet mode.
//!
//! Checks: no panic anywhere in the process; the server keeps answering (a sentinel query
//! after every input); at most one reply per datagram; a reply is a response (QR=1) with the
//! query's ID, that a DNS client can parse, within the size the query allows (512 bytes
//! without EDNS, at most our advertised 1232 with it).
#![no_main]

use espsim_fuzz::dns_server;
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let server = dns_server();
    server.set_internet(data.first().copied().unwrap_or_default());
    let Some(reply) = server.udp(data) else {
        return;
    };
    assert!(reply.len() >= 12, "reply shorter than a header: {reply:?}");
    assert_eq!(reply[..2], data[..2], "the reply's ID is not the query's");
    assert!(reply[2] & 0x80 != 0, "the reply is not a response");
    let edns = Message::from_vec(data).ok().and_then(|q| q.edns);
    let limit = if edns.is_some() { 1232 } else { 512 };
    assert!(reply.len() <= limit, "{} bytes over {limit}", reply.len());
    if let Err(e) = Message::from_vec(&reply) {
        panic!("a client cannot parse the reply ({e}): {reply:?}");
    }
});
