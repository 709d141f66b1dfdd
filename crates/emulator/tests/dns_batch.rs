//! Bursts of UDP queries over real sockets on 127.0.0.1: the server reads and answers them in
//! batches (`recvmmsg` / `sendmmsg`), and a batch must lose, mix up or forget nothing.
//!
//! Every test sends its whole burst before reading a reply, so the server's receive queue
//! holds many datagrams at once. A burst stays under 256 datagrams, which is what a default
//! 208 KiB socket buffer holds of these small queries even if the server read none of them
//! until the last was sent: a missing reply is the server's loss, not the kernel's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use espsim_emulator::events::{Event, EventKind};
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_faults::FaultRule;
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

const DEVICE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);
/// Longest wait for all replies (or events) of a burst.
const WAIT: Duration = Duration::from_secs(10);
/// Queries per burst, spread over [`CLIENTS`] sockets.
const BURST: usize = 200;
/// Client sockets sending the burst (dnsperf uses 4).
const CLIENTS: usize = 4;

async fn start_with(rules: &[&str]) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        device_ip: DEVICE_IP,
        faults: rules
            .iter()
            .map(|r| serde_json::from_str::<FaultRule>(r).expect("rule parses"))
            .collect(),
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

/// Query `i` of a burst: its own ID and name; every fifth asks AAAA, every seventh has EDNS.
fn burst_query(i: usize) -> Message {
    let mut message = Message::query();
    message.metadata.id = u16::try_from(i).expect("small burst") ^ 0x5a00;
    message.metadata.recursion_desired = true;
    let rtype = if i.is_multiple_of(5) {
        RecordType::AAAA
    } else {
        RecordType::A
    };
    let name = Name::from_ascii(format!("q{i}.Burst.example.")).expect("valid name");
    message.add_query(Query::query(name, rtype));
    if i.is_multiple_of(7) {
        message.edns = Some(Edns::new());
    }
    message
}

/// The name events record for query `i` (as asked, without the root's dot).
fn event_name(i: usize) -> String {
    format!("q{i}.Burst.example")
}

/// Client sockets, each "connected" to the server so only its datagrams arrive.
async fn clients(server: SocketAddr) -> Vec<UdpSocket> {
    let mut sockets = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
        socket.connect(server).await.expect("connect client");
        sockets.push(socket);
    }
    sockets
}

/// Sends each datagram from client `i % CLIENTS`, all of them before reading anything.
async fn send_burst(sockets: &[UdpSocket], datagrams: &[Vec<u8>]) {
    for (i, bytes) in datagrams.iter().enumerate() {
        sockets[i % CLIENTS].send(bytes).await.expect("send");
    }
}

/// Reads replies on `socket` until `expected` have arrived or `deadline` has passed (replies
/// to the other sockets wait in their own receive queues meanwhile).
async fn read_replies(socket: &UdpSocket, expected: usize, deadline: Instant) -> Vec<Message> {
    let mut replies = Vec::with_capacity(expected);
    let mut buf = vec![0u8; 65_535];
    while replies.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(received) = timeout(left, socket.recv(&mut buf)).await else {
            break;
        };
        let len = received.expect("recv");
        replies.push(Message::from_vec(&buf[..len]).expect("reply decodes"));
    }
    replies
}

/// How many of the first `total` datagrams client `socket` sent.
fn sent_by(socket: usize, total: usize) -> usize {
    (0..total).filter(|i| i % CLIENTS == socket).count()
}

/// Every socket's replies (see [`read_replies`]), by socket, within [`WAIT`] in all.
async fn collect_replies(
    sockets: &[UdpSocket],
    expected: impl Fn(usize) -> usize,
) -> Vec<Vec<Message>> {
    let deadline = Instant::now() + WAIT;
    let mut replies = Vec::with_capacity(sockets.len());
    for (i, socket) in sockets.iter().enumerate() {
        replies.push(read_replies(socket, expected(i), deadline).await);
    }
    replies
}

/// Every `dns_query` event, once at least `expected` have been recorded (or [`WAIT`] passed).
async fn dns_query_events(running: &RunningEmulator, expected: usize) -> Vec<Event> {
    let is_query = |e: &Event| matches!(e.kind, EventKind::DnsQuery { .. });
    let (past, mut live) = running.events().snapshot_and_subscribe(0);
    let mut seen: Vec<Event> = past.into_iter().filter(is_query).collect();
    let deadline = Instant::now() + WAIT;
    while seen.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, live.recv()).await {
            Ok(Ok(event)) if is_query(&event) => seen.push(event),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event stream failed: {e}"),
            Err(_elapsed) => break,
        }
    }
    seen
}

#[tokio::test]
async fn a_burst_from_several_clients_gets_every_answer_and_one_event_per_query() {
    let running = start_with(&[]).await;
    let server = running.dns_addr().expect("dns is on by default");
    let sockets = clients(server).await;
    let queries: Vec<Message> = (0..BURST).map(burst_query).collect();
    let datagrams: Vec<Vec<u8>> = queries
        .iter()
        .map(|q| q.to_vec().expect("encodes"))
        .collect();

    send_burst(&sockets, &datagrams).await;
    let replies = collect_replies(&sockets, |s| sent_by(s, BURST)).await;

    let mut answered = BTreeSet::new();
    for (socket, got) in replies.iter().enumerate() {
        for reply in got {
            let i = usize::from(reply.metadata.id ^ 0x5a00);
            assert_eq!(i % CLIENTS, socket, "reply {i} came back to its own client");
            let query = &queries[i];
            assert_eq!(reply.metadata.message_type, MessageType::Response);
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            assert_eq!(reply.queries, query.queries, "question {i} echoed as asked");
            assert_eq!(reply.edns.is_some(), query.edns.is_some(), "OPT of {i}");
            let want: Vec<RData> = if i.is_multiple_of(5) {
                Vec::new()
            } else {
                vec![RData::A(DEVICE_IP.into())]
            };
            let got: Vec<RData> = reply.answers.iter().map(|r| r.data.clone()).collect();
            assert_eq!(got, want, "answer to {i}");
            assert!(answered.insert(i), "query {i} answered twice");
        }
    }
    assert_eq!(
        answered.len(),
        BURST,
        "every query of the burst is answered"
    );

    let events = dns_query_events(&running, BURST).await;
    let mut per_name: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        let EventKind::DnsQuery {
            name,
            rcode,
            client,
            transport,
            ..
        } = &event.kind
        else {
            unreachable!("only dns_query events are collected");
        };
        assert_eq!(transport, "udp");
        assert_eq!(rcode.as_deref(), Some("NoError"), "{name}");
        let i: usize = name
            .strip_prefix('q')
            .and_then(|n| n.split('.').next())
            .and_then(|n| n.parse().ok())
            .expect("a burst name");
        let sender = sockets[i % CLIENTS].local_addr().expect("addr");
        assert_eq!(*client, sender, "{name} recorded with its client");
        *per_name.entry(name.clone()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..BURST).map(|i| (event_name(i), 1)).collect();
    assert_eq!(per_name, expected, "exactly one dns_query event per query");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "events in order");
    running.shutdown(Duration::from_secs(1)).await;
}

/// What query `i` of the mixed burst is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An ordinary A query: the device IP.
    Plain,
    /// Header readable, body not: FORMERR with its ID.
    Malformed,
    /// A name a `no_reply` rule silences: no reply at all.
    Silenced,
    /// A name an `nxdomain` rule hits.
    Nxdomain,
}

fn kind(i: usize) -> Kind {
    match i % 10 {
        3 => Kind::Malformed,
        6 => Kind::Silenced,
        8 => Kind::Nxdomain,
        _ => Kind::Plain,
    }
}

/// The datagram of query `i` of the mixed burst, and the name its event records.
fn mixed_datagram(i: usize) -> (Vec<u8>, String) {
    let id = u16::try_from(i).expect("small burst") ^ 0x3c00;
    let zone = match kind(i) {
        Kind::Malformed => {
            // One question announced, then a label running past the end.
            let [hi, lo] = id.to_be_bytes();
            return (
                vec![hi, lo, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'x'],
                String::new(),
            );
        }
        Kind::Silenced => "silent",
        Kind::Nxdomain => "nx",
        Kind::Plain => "plain",
    };
    let name = format!("q{i}.{zone}.example");
    let mut message = Message::query();
    message.metadata.id = id;
    message.add_query(Query::query(
        Name::from_ascii(format!("{name}.")).expect("valid name"),
        RecordType::A,
    ));
    (message.to_vec().expect("encodes"), name)
}

#[tokio::test]
async fn a_burst_mixing_malformed_silenced_and_faulted_queries_treats_each_as_alone() {
    let running = start_with(&[
        r#"{"when":{"name":"*.silent.example"},"fault":{"dns":"no_reply"}}"#,
        r#"{"when":{"name":"*.nx.example"},"fault":{"dns":"nxdomain"}}"#,
    ])
    .await;
    let server = running.dns_addr().expect("dns is on by default");
    let sockets = clients(server).await;
    let (datagrams, names): (Vec<Vec<u8>>, Vec<String>) = (0..BURST).map(mixed_datagram).unzip();

    send_burst(&sockets, &datagrams).await;
    let answered_by = |s: usize| {
        (0..BURST)
            .filter(|i| i % CLIENTS == s && kind(*i) != Kind::Silenced)
            .count()
    };
    let replies = collect_replies(&sockets, answered_by).await;

    let mut answered = BTreeSet::new();
    for (socket, got) in replies.iter().enumerate() {
        for reply in got {
            let i = usize::from(reply.metadata.id ^ 0x3c00);
            assert_eq!(i % CLIENTS, socket, "reply {i} came back to its own client");
            let (rcode, answers) = match kind(i) {
                Kind::Plain => (ResponseCode::NoError, vec![RData::A(DEVICE_IP.into())]),
                Kind::Malformed => (ResponseCode::FormErr, Vec::new()),
                Kind::Nxdomain => (ResponseCode::NXDomain, Vec::new()),
                Kind::Silenced => panic!("silenced query {i} was answered"),
            };
            assert_eq!(reply.metadata.response_code, rcode, "rcode of {i}");
            let got: Vec<RData> = reply.answers.iter().map(|r| r.data.clone()).collect();
            assert_eq!(got, answers, "answer to {i}");
            assert!(answered.insert(i), "query {i} answered twice");
        }
    }
    let expected_answered: BTreeSet<usize> =
        (0..BURST).filter(|i| kind(*i) != Kind::Silenced).collect();
    assert_eq!(
        answered, expected_answered,
        "every answerable query is answered"
    );

    let queries = BURST - BURST / 10;
    let events = dns_query_events(&running, queries).await;
    let recorded: BTreeMap<String, Option<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DnsQuery { name, rcode, .. } => Some((name.clone(), rcode.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), queries, "one dns_query event per query");
    let want: BTreeMap<String, Option<String>> = (0..BURST)
        .filter_map(|i| {
            let rcode = match kind(i) {
                Kind::Plain => Some("NoError".to_owned()),
                Kind::Nxdomain => Some("NXDomain".to_owned()),
                Kind::Silenced => None,
                Kind::Malformed => return None,
            };
            Some((names[i].clone(), rcode))
        })
        .collect();
    assert_eq!(recorded, want, "each query recorded with what it was sent");

    let malformed: Vec<Option<String>> = running
        .events()
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::DnsMalformed { rcode, .. } => Some(rcode),
            _ => None,
        })
        .collect();
    assert_eq!(
        malformed,
        vec![Some("FormErr".to_owned()); BURST / 10],
        "one dns_malformed per malformed datagram, each answered FORMERR"
    );
    running.shutdown(Duration::from_secs(1)).await;
}
