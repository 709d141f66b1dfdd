//! The captive-portal DNS over real sockets on 127.0.0.1: what a phone's resolver sees.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use espsim_emulator::events::{Event, EventKind, History};
use espsim_emulator::internet::InternetMode;
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const DEVICE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);
const WAIT: Duration = Duration::from_secs(5);

async fn start() -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        device_ip: DEVICE_IP,
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

fn dns_addr(running: &RunningEmulator) -> SocketAddr {
    running.dns_addr().expect("dns is on by default")
}

/// A recursive query, as phone stub resolvers send it.
fn query(questions: &[(&str, RecordType)]) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    for (name, rtype) in questions {
        message.add_query(Query::query(
            Name::from_ascii(name).expect("valid name"),
            *rtype,
        ));
    }
    message
}

/// A UDP socket "connected" to the server, so only its datagrams arrive.
async fn udp_client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    socket.connect(server).await.expect("connect client");
    socket
}

async fn udp_recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65_535];
    let len = timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("a reply within 5 s")
        .expect("recv");
    buf.truncate(len);
    buf
}

async fn udp_exchange(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = udp_client(server).await;
    socket.send(bytes).await.expect("send");
    udp_recv(&socket).await
}

async fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("small message");
    stream
        .write_all(&len.to_be_bytes())
        .await
        .expect("write len");
    stream.write_all(bytes).await.expect("write message");
}

async fn tcp_recv(stream: &mut TcpStream) -> Vec<u8> {
    let read = async {
        let len = stream.read_u16().await.expect("length prefix");
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.expect("message");
        buf
    };
    timeout(WAIT, read).await.expect("a reply within 5 s")
}

fn decode(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("reply decodes")
}

fn a_answers(reply: &Message) -> Vec<(String, Ipv4Addr)> {
    reply
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => (r.name.to_ascii(), a.0),
            other => panic!("unexpected answer {other:?}"),
        })
        .collect()
}

/// Checks the header a captive ESP sends: a response to this ID, RD echoed, AA=0, RA=0.
fn assert_reply_header(reply: &Message, query: &Message, rcode: ResponseCode) {
    assert_eq!(reply.metadata.id, query.metadata.id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert_eq!(reply.metadata.op_code, OpCode::Query);
    assert_eq!(reply.metadata.response_code, rcode);
    assert!(reply.metadata.recursion_desired, "RD echoed");
    assert!(!reply.metadata.authoritative, "AA=0 like ESP-IDF");
    assert!(!reply.metadata.recursion_available, "RA=0 like ESP-IDF");
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.queries, query.queries, "questions echoed as asked");
}

fn assert_device_ip_answer(record: &Record, name: &str) {
    assert_eq!(record.name.to_ascii(), name, "owner name as asked");
    assert_eq!(record.dns_class, DNSClass::IN);
    assert_eq!(record.ttl, 300);
    assert_eq!(record.data, RData::A(DEVICE_IP.into()));
}

#[tokio::test]
async fn a_query_over_udp_gets_exactly_the_esp_idf_reply_bytes() {
    let running = start().await;
    let mut q = query(&[("example.com.", RecordType::A)]);
    q.metadata.id = 0xbeef;
    let reply = udp_exchange(dns_addr(&running), &q.to_vec().expect("encodes")).await;

    #[rustfmt::skip]
    let expected: &[u8] = &[
        0xbe, 0xef, 0x81, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // header: QR RD
        7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, // example.com
        0x00, 0x01, 0x00, 0x01, // A IN
        0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, // answer: pointer to the question, A IN
        0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 192, 168, 4, 1, // TTL 300, 192.168.4.1
    ];
    assert_eq!(reply, expected);
    assert_reply_header(&decode(&reply), &q, ResponseCode::NoError);
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_query_over_tcp_gets_the_device_ip() {
    let running = start().await;
    let mut stream = TcpStream::connect(dns_addr(&running))
        .await
        .expect("tcp connects");
    // Two queries on one connection: the connection stays usable.
    for name in ["example.com.", "portal.local."] {
        let q = query(&[(name, RecordType::A)]);
        tcp_send(&mut stream, &q.to_vec().expect("encodes")).await;
        let reply = decode(&tcp_recv(&mut stream).await);
        assert_reply_header(&reply, &q, ResponseCode::NoError);
        assert_eq!(reply.answers.len(), 1);
        assert_device_ip_answer(&reply.answers[0], name);
    }
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn aaaa_and_other_types_get_noerror_without_answers() {
    let running = start().await;
    for rtype in [
        RecordType::AAAA,
        RecordType::HTTPS,
        RecordType::TXT,
        RecordType::MX,
    ] {
        let q = query(&[("example.com.", rtype)]);
        let reply = decode(&udp_exchange(dns_addr(&running), &q.to_vec().expect("encodes")).await);
        assert_reply_header(&reply, &q, ResponseCode::NoError);
        assert!(reply.answers.is_empty(), "{rtype}: NODATA");
        assert!(reply.authorities.is_empty() && reply.additionals.is_empty());
        assert!(reply.edns.is_none(), "no OPT when the query had none");
    }
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn every_name_in_any_case_gets_the_device_ip_and_is_echoed_as_asked() {
    let running = start().await;
    for name in [
        "connectivitycheck.gstatic.com.",
        "ConnectivityCheck.GStatic.COM.",
        "captive.apple.com.",
        "WWW.MSFTCONNECTTEST.COM.",
        "dns.msftncsi.com.",
        "my-device.",
        "a.very.deep.name.under.some.zone.example.",
    ] {
        let q = query(&[(name, RecordType::A)]);
        let reply = decode(&udp_exchange(dns_addr(&running), &q.to_vec().expect("encodes")).await);
        assert_reply_header(&reply, &q, ResponseCode::NoError);
        assert_eq!(reply.answers.len(), 1, "{name}");
        assert_device_ip_answer(&reply.answers[0], name);
    }
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_edns_query_gets_an_opt_record_back() {
    let running = start().await;
    let mut q = query(&[("example.com.", RecordType::A)]);
    let mut edns = Edns::new();
    edns.set_max_payload(4096).set_dnssec_ok(true);
    q.set_edns(edns);
    let reply = decode(&udp_exchange(dns_addr(&running), &q.to_vec().expect("encodes")).await);
    assert_reply_header(&reply, &q, ResponseCode::NoError);
    assert_device_ip_answer(&reply.answers[0], "example.com.");
    let opt = reply.edns.expect("OPT in the reply");
    assert_eq!(opt.version(), 0);
    assert_eq!(opt.max_payload(), 1232);
    assert!(!opt.flags().dnssec_ok, "no DNSSEC here");

    // An EDNS version we do not speak: BADVERS (RFC 6891), still with an OPT record.
    let mut q = query(&[("example.com.", RecordType::A)]);
    let mut edns = Edns::new();
    edns.set_version(1);
    q.set_edns(edns);
    let reply = decode(&udp_exchange(dns_addr(&running), &q.to_vec().expect("encodes")).await);
    // RCODE 16 is BADVERS with an OPT record (hickory decodes the shared code as BADSIG).
    assert_eq!(u16::from(reply.metadata.response_code), 16);
    assert!(reply.answers.is_empty());
    assert_eq!(reply.edns.map(|e| e.version()), Some(0));
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn every_question_of_a_multi_question_query_is_answered() {
    let running = start().await;
    let q = query(&[
        ("example.com.", RecordType::A),
        ("example.com.", RecordType::AAAA),
        ("Second.Example.ORG.", RecordType::A),
    ]);
    let reply = decode(&udp_exchange(dns_addr(&running), &q.to_vec().expect("encodes")).await);
    assert_reply_header(&reply, &q, ResponseCode::NoError);
    assert_eq!(
        a_answers(&reply),
        vec![
            ("example.com.".to_owned(), DEVICE_IP),
            ("Second.Example.ORG.".to_owned(), DEVICE_IP),
        ]
    );
    running.shutdown(Duration::from_secs(1)).await;
}

fn is_malformed(e: &Event, want_transport: &str) -> bool {
    matches!(&e.kind, EventKind::DnsMalformed { transport, .. } if transport == want_transport)
}

#[tokio::test]
async fn garbage_over_udp_gets_no_reply_or_formerr_and_the_server_keeps_answering() {
    let running = start().await;
    let server = dns_addr(&running);
    let socket = udp_client(server).await;

    // Shorter than a header: no reply, a malformed event.
    socket.send(&[0xde, 0xad, 0xbe]).await.expect("send");
    let event = running
        .events()
        .wait_for(WAIT, |e| is_malformed(e, "udp"))
        .await
        .expect("dns_malformed recorded");
    let EventKind::DnsMalformed { client, rcode, .. } = event.kind else {
        unreachable!()
    };
    assert_eq!(client, socket.local_addr().expect("addr"));
    assert_eq!(rcode, None);

    // The event is recorded after any reply is sent, so the next datagram here is the
    // answer to this good query, not a reply to the garbage.
    let q = query(&[("example.com.", RecordType::A)]);
    socket
        .send(&q.to_vec().expect("encodes"))
        .await
        .expect("send");
    let reply = decode(&udp_recv(&socket).await);
    assert_reply_header(&reply, &q, ResponseCode::NoError);
    assert_device_ip_answer(&reply.answers[0], "example.com.");

    // A readable header with a broken question: FORMERR to that ID.
    let broken = [
        0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'x', b'y',
    ];
    socket.send(&broken).await.expect("send");
    let reply = decode(&udp_recv(&socket).await);
    assert_eq!(reply.metadata.id, 0x4242);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert!(reply.queries.is_empty());
    running
        .events()
        .wait_for(WAIT, |e| {
            matches!(&e.kind, EventKind::DnsMalformed { rcode: Some(rc), .. } if rc == "FormErr")
        })
        .await
        .expect("formerr recorded");

    // A response packet (QR=1) is ignored, like any server avoiding reflection loops.
    let mut response = query(&[("example.com.", RecordType::A)]);
    response.metadata.message_type = MessageType::Response;
    socket
        .send(&response.to_vec().expect("encodes"))
        .await
        .expect("send");
    running
        .events()
        .wait_for(
            WAIT,
            |e| matches!(&e.kind, EventKind::DnsMalformed { error, .. } if error.contains("qr=1")),
        )
        .await
        .expect("response packet recorded");
    let q = query(&[("after.garbage.", RecordType::A)]);
    socket
        .send(&q.to_vec().expect("encodes"))
        .await
        .expect("send");
    assert_eq!(decode(&udp_recv(&socket).await).metadata.id, q.metadata.id);
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn garbage_over_tcp_gets_formerr_and_the_connection_keeps_working() {
    let running = start().await;
    let mut stream = TcpStream::connect(dns_addr(&running))
        .await
        .expect("tcp connects");

    // Too short for a header: nothing comes back for it.
    tcp_send(&mut stream, &[1, 2, 3]).await;
    running
        .events()
        .wait_for(WAIT, |e| is_malformed(e, "tcp"))
        .await
        .expect("dns_malformed recorded");
    // Readable header, garbage after it: FORMERR, and this is the first reply on the stream.
    tcp_send(
        &mut stream,
        &[0x01, 0x02, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff],
    )
    .await;
    let reply = decode(&tcp_recv(&mut stream).await);
    assert_eq!(reply.metadata.id, 0x0102);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    let q = query(&[("example.com.", RecordType::A)]);
    tcp_send(&mut stream, &q.to_vec().expect("encodes")).await;
    let reply = decode(&tcp_recv(&mut stream).await);
    assert_reply_header(&reply, &q, ResponseCode::NoError);
    assert_device_ip_answer(&reply.answers[0], "example.com.");
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn online_mode_answers_the_windows_ncsi_dns_probe() {
    let running = start().await;
    let server = dns_addr(&running);
    let ask = |name: &'static str, rtype| async move {
        let q = query(&[(name, rtype)]);
        let reply = decode(&udp_exchange(server, &q.to_vec().expect("encodes")).await);
        assert_reply_header(&reply, &q, ResponseCode::NoError);
        reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                other => panic!("unexpected answer {other:?}"),
            })
            .collect::<Vec<_>>()
    };
    let device: IpAddr = DEVICE_IP.into();
    let ncsi_v4: IpAddr = "131.107.255.255".parse().expect("ip");
    let ncsi_v6: IpAddr = "fd3e:4f5a:5b81::1".parse().expect("ip");

    assert_eq!(ask("dns.msftncsi.com.", RecordType::A).await, vec![device]);
    running.set_internet(InternetMode::Online);
    assert_eq!(ask("dns.msftncsi.com.", RecordType::A).await, vec![ncsi_v4]);
    assert_eq!(ask("DNS.MSFTNCSI.COM.", RecordType::A).await, vec![ncsi_v4]);
    assert_eq!(
        ask("dns.msftncsi.com.", RecordType::AAAA).await,
        vec![ncsi_v6]
    );
    // The HTTP probes still have to reach the emulator.
    assert_eq!(
        ask("www.msftconnecttest.com.", RecordType::A).await,
        vec![device]
    );
    assert_eq!(
        ask("connectivitycheck.gstatic.com.", RecordType::A).await,
        vec![device]
    );
    assert!(ask("example.com.", RecordType::AAAA).await.is_empty());
    running.set_internet(InternetMode::Captive);
    assert_eq!(ask("dns.msftncsi.com.", RecordType::A).await, vec![device]);
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn every_question_is_recorded_as_a_dns_query_event() {
    let running = start().await;
    let server = dns_addr(&running);
    let socket = udp_client(server).await;
    let q = query(&[
        ("Example.COM.", RecordType::A),
        ("example.com.", RecordType::AAAA),
    ]);
    socket
        .send(&q.to_vec().expect("encodes"))
        .await
        .expect("send");
    udp_recv(&socket).await;
    let me = socket.local_addr().expect("addr");

    let mut stream = TcpStream::connect(server).await.expect("tcp connects");
    let tq = query(&[("over.tcp.", RecordType::A)]);
    tcp_send(&mut stream, &tq.to_vec().expect("encodes")).await;
    tcp_recv(&mut stream).await;

    let want_a = EventKind::DnsQuery {
        transport: "udp".to_owned(),
        client: me,
        name: "Example.COM".to_owned(),
        qtype: "A".to_owned(),
        rcode: Some("NoError".to_owned()),
        answers: vec!["192.168.4.1".to_owned()],
    };
    let want_aaaa = EventKind::DnsQuery {
        transport: "udp".to_owned(),
        client: me,
        name: "example.com".to_owned(),
        qtype: "AAAA".to_owned(),
        rcode: Some("NoError".to_owned()),
        answers: Vec::new(),
    };
    let a = running.events().wait_for(WAIT, |e| e.kind == want_a).await;
    let aaaa = running
        .events()
        .wait_for(WAIT, |e| e.kind == want_aaaa)
        .await;
    let (a, aaaa) = (a.expect("A recorded"), aaaa.expect("AAAA recorded"));
    assert_eq!(aaaa.seq, a.seq + 1, "one event per question, in order");
    running
        .events()
        .wait_for(WAIT, |e| {
            matches!(&e.kind, EventKind::DnsQuery { transport, name, .. }
                if transport == "tcp" && name == "over.tcp")
        })
        .await
        .expect("tcp query recorded");
    let json = serde_json::to_string(&a).expect("serializes");
    assert!(
        json.contains(r#""event":"dns_query","transport":"udp""#),
        "{json}"
    );
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_stops_the_dns_service() {
    let running = start().await;
    let server = dns_addr(&running);
    let q = query(&[("example.com.", RecordType::A)]);
    decode(&udp_exchange(server, &q.to_vec().expect("encodes")).await);
    timeout(WAIT, running.shutdown(Duration::from_secs(1)))
        .await
        .expect("shutdown returns");
    // The listener is closed: a new TCP connection is refused.
    let err = TcpStream::connect(server)
        .await
        .expect_err("nothing listens after shutdown");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_reply_too_big_for_plain_udp_is_truncated_and_complete_over_tcp() {
    let running = start().await;
    let names: Vec<String> = (0..20)
        .map(|i| format!("name{i:02}.example.com."))
        .collect();
    let questions: Vec<(&str, RecordType)> =
        names.iter().map(|n| (n.as_str(), RecordType::A)).collect();
    let q = query(&questions);
    let bytes = q.to_vec().expect("encodes");

    let udp = udp_exchange(dns_addr(&running), &bytes).await;
    assert!(udp.len() <= 512, "plain DNS stays within 512 bytes");
    let reply = decode(&udp);
    assert!(
        reply.metadata.truncation,
        "TC tells the client to retry over TCP"
    );
    assert!(reply.answers.len() < names.len());

    let mut stream = TcpStream::connect(dns_addr(&running))
        .await
        .expect("tcp connects");
    tcp_send(&mut stream, &bytes).await;
    let reply = decode(&tcp_recv(&mut stream).await);
    assert_reply_header(&reply, &q, ResponseCode::NoError);
    let expected: Vec<(String, Ipv4Addr)> = names.iter().map(|n| (n.clone(), DEVICE_IP)).collect();
    assert_eq!(a_answers(&reply), expected);
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_tcp_connection_cut_mid_message_is_recorded() {
    let running = start().await;
    let mut stream = TcpStream::connect(dns_addr(&running))
        .await
        .expect("tcp connects");
    // Announces 32 bytes, sends 3, then closes its side.
    stream
        .write_all(&[0x00, 0x20, 1, 2, 3])
        .await
        .expect("write");
    stream.shutdown().await.expect("shutdown write side");
    let event = running
        .events()
        .wait_for(WAIT, |e| is_malformed(e, "tcp"))
        .await
        .expect("dns_malformed recorded");
    let EventKind::DnsMalformed { error, rcode, .. } = event.kind else {
        unreachable!()
    };
    assert_eq!(
        error,
        "connection closed mid-message (5 of 34 bytes received)"
    );
    assert_eq!(rcode, None);
    // The server closed its side too.
    let mut rest = Vec::new();
    let n = timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("server closes within 5 s")
        .expect("clean close");
    assert_eq!(n, 0);
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_long_run_keeps_a_bounded_history_and_the_event_file_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.jsonl");
    let running = Emulator::start(EmulatorConfig {
        device_ip: DEVICE_IP,
        events_file: Some(path.clone()),
        event_history: History::Last(5),
        ..Default::default()
    })
    .await
    .expect("emulator starts");
    let server = dns_addr(&running);
    let socket = udp_client(server).await;
    for i in 0..20 {
        let q = query(&[(&format!("n{i}.example."), RecordType::A)]);
        socket
            .send(&q.to_vec().expect("encodes"))
            .await
            .expect("send");
        udp_recv(&socket).await;
    }
    running
        .events()
        .wait_for(
            WAIT,
            |e| matches!(&e.kind, EventKind::DnsQuery { name, .. } if name == "n19.example"),
        )
        .await
        .expect("the last query is recorded");
    let kept = running.events().snapshot();
    assert_eq!(kept.len(), 5, "only the last 5 events stay in memory");
    assert!(
        matches!(&kept[4].kind, EventKind::DnsQuery { name, .. } if name == "n19.example"),
        "{kept:#?}"
    );
    running.shutdown(WAIT).await;

    let text = std::fs::read_to_string(&path).expect("event file");
    let names: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Event>(line).ok())
        .filter_map(|e| match e.kind {
            EventKind::DnsQuery { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(names.len(), 20, "the file has every query: {names:?}");
}

/// On virtual time (`espsim test --virtual-time`) UDP DNS runs on the caller's paused runtime,
/// not a thread of its own: a query is answered, and its event is stamped on the paused clock
/// (a second later exactly, after a one-second virtual wait).
#[tokio::test(start_paused = true)]
async fn on_virtual_time_udp_dns_answers_on_the_callers_paused_clock() {
    let running = Emulator::start(EmulatorConfig {
        device_ip: DEVICE_IP,
        virtual_time: true,
        ..Default::default()
    })
    .await
    .expect("emulator starts");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let q = query(&[("example.com.", RecordType::A)]);
    let reply = decode(&udp_exchange(dns_addr(&running), &q.to_vec().expect("encodes")).await);
    assert_reply_header(&reply, &q, ResponseCode::NoError);
    assert_device_ip_answer(&reply.answers[0], "example.com.");
    let stamps: Vec<u64> = running
        .events()
        .snapshot()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::DnsQuery { .. }))
        .map(|e| e.at_ms)
        .collect();
    assert_eq!(stamps, vec![1_000]);
    running.shutdown(Duration::from_secs(1)).await;
}
