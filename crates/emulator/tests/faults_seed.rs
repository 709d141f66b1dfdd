//! A seed means the same faults whatever else happens: over real sockets, the WebSocket faults a
//! seeded run decides for its session are the same whether or not DNS queries and connectivity
//! checks (which draw from the same seed) came in between.

use std::net::SocketAddr;
use std::time::Duration;

use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_faults::FaultRule;
use futures_util::{SinkExt, StreamExt};
use hickory_proto::op::{Message as DnsMessage, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);
const PINGS: u64 = 24;

/// Random decisions on every service: the pong duplicated or not, a DNS name answered NXDOMAIN
/// or not, a connection paced or not.
const RULES: [&str; 3] = [
    r#"{"when":{"probability":0.5,"message_type":"pong"},"fault":{"ws":"duplicate"}}"#,
    r#"{"when":{"probability":0.5,"name":"*.example.com"},"fault":{"dns":"nxdomain"}}"#,
    r#"{"when":{"probability":0.5},"fault":{"stream":"bandwidth","rate":100000}}"#,
];

async fn start(seed: u64) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        seed,
        faults: RULES
            .iter()
            .map(|r| serde_json::from_str::<FaultRule>(r).expect("rule parses"))
            .collect(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// One DNS question over UDP; returns its rcode.
async fn dns(em: &RunningEmulator, name: &str) -> ResponseCode {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("binds");
    socket
        .connect(em.dns_addr().expect("dns on"))
        .await
        .expect("connects");
    let mut q = DnsMessage::query();
    q.metadata.id = 0x5eed;
    q.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    socket
        .send(&q.to_vec().expect("encodes"))
        .await
        .expect("sends");
    let mut buf = vec![0u8; 1500];
    let n = timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("an answer in time")
        .expect("recv");
    DnsMessage::from_vec(&buf[..n])
        .expect("decodes")
        .metadata
        .response_code
}

/// An Android connectivity check on a new connection.
async fn probe(em: &RunningEmulator) {
    let check = async {
        let mut s = TcpStream::connect(em.http_addr()).await.expect("connects");
        s.write_all(b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n")
            .await
            .expect("writes");
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.expect("a status line");
        assert_eq!(&head[..9], b"HTTP/1.1 ");
    };
    timeout(WAIT, check).await.expect("probe answered in time");
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Reads messages until one satisfies `done`, counting the pongs by `seq` in `copies`.
async fn read_until(ws: &mut Ws, copies: &mut [u32], done: impl Fn(&Value) -> bool) {
    loop {
        let msg = timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("session open")
            .expect("frame");
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).expect("json");
        if v["type"] == "pong"
            && let Some(seq) = v["seq"].as_u64()
            && let Some(c) = usize::try_from(seq).ok().and_then(|i| copies.get_mut(i))
        {
            *c += 1;
        }
        if done(&v) {
            return;
        }
    }
}

/// Pings 1..=PINGS on one session; returns how many pongs each got (1, or 2 when duplicated).
/// With `noise`, DNS queries and connectivity checks come before and between the pings.
async fn pong_copies(seed: u64, noise: bool) -> Vec<u32> {
    let em = start(seed).await;
    if noise {
        for i in 0..3 {
            dns(&em, &format!("bg{i}.example.com")).await;
            probe(&em).await;
        }
    }
    let (mut ws, _) = timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{}/ws", em.http_addr())),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds");
    let mut copies = vec![0u32; PINGS as usize + 1];
    for seq in 1..=PINGS {
        if noise {
            dns(&em, &format!("app{seq}.example.com")).await;
            if seq % 4 == 0 {
                probe(&em).await;
            }
        }
        let ping = format!(r#"{{"type":"ping","seq":{seq}}}"#);
        ws.send(Message::text(ping)).await.expect("sends");
        read_until(&mut ws, &mut copies, |v| {
            v["type"] == "pong" && v["seq"] == seq
        })
        .await;
    }
    // The device keeps its order: once this answer is in, every duplicate before it is too.
    ws.send(Message::text(r#"{"type":"get_status","id":999}"#))
        .await
        .expect("sends");
    read_until(&mut ws, &mut copies, |v| v["id"] == 999).await;
    drop(ws);
    em.shutdown(WAIT).await;
    copies.remove(0);
    copies
}

#[tokio::test]
async fn the_same_seed_duplicates_the_same_pongs_whatever_else_the_phone_does() {
    let quiet = pong_copies(7, false).await;
    let busy = pong_copies(7, true).await;
    assert_eq!(quiet, busy, "the same seed, the same session faults");
    assert!(
        quiet.contains(&1) && quiet.contains(&2),
        "the rule fired on some pongs only: {quiet:?}"
    );
    assert_ne!(
        quiet,
        pong_copies(8, false).await,
        "another seed, other faults"
    );
}
