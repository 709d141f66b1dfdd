//! DNS faults over real sockets on 127.0.0.1: what a phone's resolver sees when a rule fires.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use espsim_emulator::events::EventKind;
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_faults::FaultRule;
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const DEVICE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);
const WAIT: Duration = Duration::from_secs(5);
/// How long a resolver waits before we call the query unanswered.
const SILENCE: Duration = Duration::from_millis(400);

fn rule(json: &str) -> FaultRule {
    serde_json::from_str(json).expect("rule parses")
}

async fn start_with(rules: &[&str], seed: u64) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        device_ip: DEVICE_IP,
        faults: rules.iter().map(|r| rule(r)).collect(),
        seed,
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

fn dns_addr(running: &RunningEmulator) -> SocketAddr {
    running.dns_addr().expect("dns is on by default")
}

fn query(name: &str, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = rand_id(name);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        rtype,
    ));
    message
}

/// A per-name id, so a late reply to another question could not be mistaken for this one.
fn rand_id(name: &str) -> u16 {
    name.bytes()
        .fold(0x5a5au16, |h, b| h.rotate_left(5) ^ u16::from(b))
}

/// Sends `q` over UDP; `None` when nothing arrives within `wait`.
async fn udp_ask(server: SocketAddr, q: &Message, wait: Duration) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    socket.connect(server).await.expect("connect client");
    socket
        .send(&q.to_vec().expect("encodes"))
        .await
        .expect("send");
    let mut buf = vec![0u8; 65_535];
    let len = timeout(wait, socket.recv(&mut buf))
        .await
        .ok()?
        .expect("recv");
    let reply = Message::from_vec(&buf[..len]).expect("reply decodes");
    assert_eq!(reply.metadata.id, q.metadata.id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    Some(reply)
}

async fn tcp_send(stream: &mut TcpStream, q: &Message) {
    let bytes = q.to_vec().expect("encodes");
    let len = u16::try_from(bytes.len()).expect("small message");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.expect("write query");
}

/// Reads one length-prefixed reply; `None` when nothing arrives within `wait`.
async fn tcp_recv(stream: &mut TcpStream, wait: Duration) -> Option<Message> {
    let read = async {
        let len = stream.read_u16().await.expect("length prefix");
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.expect("message");
        Message::from_vec(&buf).expect("reply decodes")
    };
    timeout(wait, read).await.ok()
}

async fn tcp_ask(server: SocketAddr, q: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("tcp connects");
    tcp_send(&mut stream, q).await;
    let reply = tcp_recv(&mut stream, WAIT)
        .await
        .expect("a reply within 5 s");
    assert_eq!(reply.metadata.id, q.metadata.id);
    reply
}

fn a_answers(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            other => panic!("unexpected answer {other:?}"),
        })
        .collect()
}

/// The `FaultApplied` events so far, as `(fault json, detail)`.
fn applied(running: &RunningEmulator) -> Vec<(serde_json::Value, String)> {
    running
        .events()
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::FaultApplied {
                conn: None,
                fault,
                detail,
                ..
            } => Some((fault, detail)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn rcode_faults_answer_matching_names_with_that_code_over_udp_and_tcp() {
    for (kind, rcode) in [
        ("nxdomain", ResponseCode::NXDomain),
        ("servfail", ResponseCode::ServFail),
        ("refused", ResponseCode::Refused),
    ] {
        let running = start_with(
            &[&format!(
                r#"{{"when":{{"name":"*.gstatic.com"}},"fault":{{"dns":"{kind}"}}}}"#
            )],
            0,
        )
        .await;
        let server = dns_addr(&running);
        let hit = query("connectivitycheck.gstatic.com.", RecordType::A);
        for reply in [
            udp_ask(server, &hit, WAIT).await.expect("udp reply"),
            tcp_ask(server, &hit).await,
        ] {
            assert_eq!(reply.metadata.response_code, rcode, "{kind}");
            assert!(reply.answers.is_empty(), "{kind}: no answer");
            assert_eq!(reply.queries, hit.queries, "question echoed");
        }
        // Names outside the pattern are answered as usual.
        let other = query("example.com.", RecordType::A);
        let reply = udp_ask(server, &other, WAIT).await.expect("udp reply");
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_answers(&reply), vec![IpAddr::V4(DEVICE_IP)]);

        let fired = applied(&running);
        assert_eq!(fired.len(), 2, "{kind}: once per matching question");
        assert_eq!(fired[0].0, serde_json::json!({ "dns": kind }));
        assert_eq!(
            fired[0].1,
            format!("dns connectivitycheck.gstatic.com A: answered {rcode:?}")
        );
        running.shutdown(WAIT).await;
    }
}

#[tokio::test]
async fn qtype_restricts_a_fault_to_one_record_type() {
    let running = start_with(
        &[r#"{"when":{"qtype":"aaaa"},"fault":{"dns":"servfail"}}"#],
        0,
    )
    .await;
    let server = dns_addr(&running);
    let aaaa = udp_ask(server, &query("example.com.", RecordType::AAAA), WAIT)
        .await
        .expect("reply");
    assert_eq!(aaaa.metadata.response_code, ResponseCode::ServFail);
    let a = udp_ask(server, &query("example.com.", RecordType::A), WAIT)
        .await
        .expect("reply");
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_answers(&a), vec![IpAddr::V4(DEVICE_IP)]);
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn no_reply_leaves_the_resolver_waiting_over_udp_and_tcp() {
    let running = start_with(
        &[r#"{"when":{"name":"captive.apple.com"},"fault":{"dns":"no_reply"}}"#],
        0,
    )
    .await;
    let server = dns_addr(&running);
    let hit = query("captive.apple.com.", RecordType::A);
    assert!(
        udp_ask(server, &hit, SILENCE).await.is_none(),
        "udp: no datagram comes back"
    );

    // TCP: the query goes unanswered, the connection stays open and answers the next one.
    let mut stream = TcpStream::connect(server).await.expect("tcp connects");
    tcp_send(&mut stream, &hit).await;
    assert!(
        tcp_recv(&mut stream, SILENCE).await.is_none(),
        "tcp: silence"
    );
    let other = query("example.com.", RecordType::A);
    tcp_send(&mut stream, &other).await;
    let reply = tcp_recv(&mut stream, WAIT)
        .await
        .expect("next query answered");
    assert_eq!(reply.metadata.id, other.metadata.id);
    assert_eq!(a_answers(&reply), vec![IpAddr::V4(DEVICE_IP)]);

    let unanswered = running
        .events()
        .snapshot()
        .into_iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::DnsQuery { name, rcode: None, .. } if name == "captive.apple.com")
        })
        .count();
    assert_eq!(unanswered, 2, "both queries logged as unanswered");
    assert_eq!(
        applied(&running)[0].1,
        "dns captive.apple.com A: no reply sent"
    );
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn wrong_address_answers_a_questions_with_that_address() {
    let running = start_with(
        &[r#"{"when":{"name":"my-device.local"},"fault":{"dns":"wrong_address","ip":"10.9.8.7"}}"#],
        0,
    )
    .await;
    let server = dns_addr(&running);
    let q = query("My-Device.Local.", RecordType::A);
    for reply in [
        udp_ask(server, &q, WAIT).await.expect("udp reply"),
        tcp_ask(server, &q).await,
    ] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            a_answers(&reply),
            vec![IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7))]
        );
        assert_eq!(reply.answers[0].ttl, 300);
        assert_eq!(reply.answers[0].name.to_ascii(), "My-Device.Local.");
    }
    // An AAAA question cannot carry an IPv4 address: NODATA, as for any AAAA.
    let aaaa = udp_ask(server, &query("my-device.local.", RecordType::AAAA), WAIT)
        .await
        .expect("reply");
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert!(aaaa.answers.is_empty());
    assert_eq!(
        applied(&running)[0].0,
        serde_json::json!({ "dns": "wrong_address", "ip": "10.9.8.7" })
    );
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn delay_holds_the_normal_answer_back() {
    let running = start_with(&[r#"{"fault":{"dns":"delay","delay":"300ms"}}"#], 0).await;
    let server = dns_addr(&running);
    let q = query("example.com.", RecordType::A);

    let sent = Instant::now();
    let udp = udp_ask(server, &q, WAIT).await.expect("udp reply");
    let udp_took = sent.elapsed();
    let sent = Instant::now();
    let tcp = tcp_ask(server, &q).await;
    let tcp_took = sent.elapsed();

    for (reply, took) in [(udp, udp_took), (tcp, tcp_took)] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_answers(&reply), vec![IpAddr::V4(DEVICE_IP)]);
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(2300),
            "answered after {took:?}, expected 300 ms (+ tolerance)"
        );
    }
    assert_eq!(
        applied(&running)[0],
        (
            serde_json::json!({ "dns": "delay", "delay": "300ms" }),
            "dns example.com A: reply held back 300ms".to_owned()
        )
    );
    running.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_time_window_after_an_event_applies_then_ends() {
    let running = start_with(
        &[r#"{"when":{"after":"go","for":"300ms"},"fault":{"dns":"refused"}}"#],
        0,
    )
    .await;
    let server = dns_addr(&running);
    let q = query("example.com.", RecordType::A);
    let before = udp_ask(server, &q, WAIT).await.expect("reply");
    assert_eq!(before.metadata.response_code, ResponseCode::NoError);

    running.faults().observe("go", running.events().elapsed());
    let opened = Instant::now();
    let during = udp_ask(server, &q, WAIT).await.expect("reply");
    assert_eq!(during.metadata.response_code, ResponseCode::Refused);

    // Ask every 20 ms until the window has closed (bounded); it must not close before 300 ms.
    let mut closed_after = None;
    for _ in 0..250 {
        let reply = udp_ask(server, &q, WAIT).await.expect("reply");
        if reply.metadata.response_code == ResponseCode::NoError {
            closed_after = Some(opened.elapsed());
            break;
        }
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        if opened.elapsed() > WAIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed_after = closed_after.expect("the window closes");
    assert!(
        closed_after >= Duration::from_millis(300),
        "closed after {closed_after:?}"
    );
    running.shutdown(WAIT).await;
}

/// One outcome per query: whether the rule fired.
async fn draws(seed: u64) -> Vec<bool> {
    let running = start_with(
        &[r#"{"when":{"probability":0.5},"fault":{"dns":"nxdomain"}}"#],
        seed,
    )
    .await;
    let server = dns_addr(&running);
    let mut out = Vec::new();
    for i in 0..24 {
        let q = query(&format!("host{i}.example."), RecordType::A);
        let reply = udp_ask(server, &q, WAIT).await.expect("reply");
        out.push(reply.metadata.response_code == ResponseCode::NXDomain);
    }
    running.shutdown(WAIT).await;
    out
}

#[tokio::test]
async fn probability_replays_with_the_seed() {
    let first = draws(42).await;
    assert_eq!(first, draws(42).await, "same seed, same outcomes");
    assert!(
        first.contains(&true) && first.contains(&false),
        "a 0.5 probability both fires and spares: {first:?}"
    );
}

#[tokio::test]
async fn a_delayed_answer_does_not_hold_up_other_queries() {
    // With a `delay` rule the server answers each datagram in its own task; without one it
    // answers in its receive loop. Either way a slow name must not stall the others.
    let running = start_with(
        &[r#"{"when":{"name":"slow.example"},"fault":{"dns":"delay","delay":"30s"}}"#],
        0,
    )
    .await;
    let server = dns_addr(&running);
    let slow_socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    slow_socket.connect(server).await.expect("connect");
    let slow = query("slow.example.", RecordType::A);
    slow_socket
        .send(&slow.to_vec().expect("encodes"))
        .await
        .expect("send");

    let fast = udp_ask(server, &query("fast.example.", RecordType::A), WAIT)
        .await
        .expect("the undelayed name is answered while the slow one waits");
    assert_eq!(a_answers(&fast), vec![IpAddr::V4(DEVICE_IP)]);
    let mut buf = [0u8; 512];
    assert!(
        slow_socket.try_recv(&mut buf).is_err(),
        "the delayed answer is still held back"
    );
    running.shutdown(WAIT).await;
}
