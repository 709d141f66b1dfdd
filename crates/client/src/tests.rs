//! The client's outbox bound, over real loopback sockets.

use std::time::Duration;

use espsim_protocol::ClientMessage;
use espsim_protocol::client::Hello;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{Client, ClientConfig, ClientEventKind, ClientProfile, OUTBOX, SendError};

/// Upper bound for every wait here.
const WAIT: Duration = Duration::from_secs(10);

/// A device that completes the handshake, answers `hello` with `welcome`, then never reads
/// again until `release` fires (its socket stays open, so the app's sends block).
async fn deaf_device() -> (String, oneshot::Sender<()>) {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .expect("socket");
    // A small receive window, so the app's side fills in few messages.
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(1).expect("listen");
    socket.set_nonblocking(true).expect("nonblocking");
    let listener = TcpListener::from_std(socket.into()).expect("tokio listener");
    let addr = listener.local_addr().expect("addr");
    let (release, released) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        let Some(Ok(Message::Text(hello))) = ws.next().await else {
            return;
        };
        let id = serde_json::from_str::<serde_json::Value>(&hello)
            .ok()
            .and_then(|v| v["id"].as_u64())
            .unwrap_or(1);
        let welcome = serde_json::json!({
            "type": "welcome",
            "id": id,
            "device_id": "deaf",
            "firmware_version": "0",
            "protocol_version": 1,
            "capabilities": [],
        });
        if ws.send(Message::text(welcome.to_string())).await.is_err() {
            return;
        }
        let _ = released.await;
    });
    (format!("ws://{addr}/ws"), release)
}

#[tokio::test]
async fn a_device_that_stops_reading_fills_the_outbox_to_its_bound_and_send_says_full() {
    let (url, release) = deaf_device().await;
    let mut config = ClientConfig::for_profile(url, ClientProfile::Good);
    config.heartbeat = None;
    // The client waits on its blocked send far longer than this test runs.
    config.send_timeout = Duration::from_secs(60);
    let client = Client::new(config);
    let sender = client.sender();
    let stop = CancellationToken::new();
    let (events, mut seen) = mpsc::unbounded_channel();
    let task = tokio::spawn(client.run(stop.clone(), move |e| {
        let _ = events.send(e.kind.clone());
    }));
    let ready = tokio::time::timeout(WAIT, async {
        while let Some(kind) = seen.recv().await {
            if matches!(kind, ClientEventKind::Ready { .. }) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready.ok(), Some(true), "the client never got welcome");

    // About 3 KB each: the socket buffers fill after a few thousand at most.
    let big = ClientMessage::Hello(Hello {
        id: None,
        client: "x".repeat(3000),
        version: "1".to_owned(),
        token: None,
    });
    const MAX_SENDS: usize = 20_000;
    let pushed = tokio::time::timeout(WAIT, async {
        for accepted in 0..MAX_SENDS {
            match sender.send(big.clone()) {
                Ok(()) => tokio::task::yield_now().await,
                Err(e) => return Some((accepted, e)),
            }
        }
        None
    })
    .await
    .expect("pushing ends within the wait");
    let Some((accepted, error)) = pushed else {
        panic!("{MAX_SENDS} messages accepted without `full`: the outbox is unbounded");
    };
    assert_eq!(error, SendError::Full { limit: OUTBOX });
    assert!(
        error.to_string().contains(&OUTBOX.to_string()),
        "the error names the bound: {error}"
    );
    assert!(accepted >= OUTBOX, "full after only {accepted} messages");

    stop.cancel();
    let _ = release.send(());
    let summary = tokio::time::timeout(WAIT, task)
        .await
        .expect("the client stops once the device lets go")
        .expect("client task");
    assert!(
        summary.unsent <= OUTBOX + 256,
        "unsent {} beyond the outbox and queue bounds",
        summary.unsent
    );
}
