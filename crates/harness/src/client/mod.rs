//! The reference WebSocket client: what an app talking to the device should do, and profiles
//! that each break one rule so the harness can prove its expectations are able to fail.
//!
//! ```no_run
//! # async fn demo() {
//! use espsim_harness::client::{Client, ClientConfig, ClientProfile};
//! use tokio_util::sync::CancellationToken;
//!
//! let config = ClientConfig::for_profile("ws://127.0.0.1:8080/ws", ClientProfile::Good);
//! let client = Client::new(config);
//! let sender = client.sender(); // queue messages, delivered once the device said `welcome`
//! let stop = CancellationToken::new();
//! let summary = client.run(stop, |event| println!("{event:?}")).await;
//! # let _ = (sender, summary);
//! # }
//! ```
//!
//! - [`config`]: [`ClientProfile`], [`ClientConfig`], [`Backoff`], [`Heartbeat`].
//! - [`event`]: [`ClientEvent`] (the client's own log) and [`ClientSummary`].
//! - `runner`: the connection loop (connect → `hello` → session → backoff → …).

pub mod config;
pub mod event;
mod runner;

use espsim_protocol::ClientMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{Backoff, ClientConfig, ClientProfile, Heartbeat, HeartbeatKind, UnknownProfile};
pub use event::{ClientEvent, ClientEventKind, ClientSummary, Closer};

/// A configured client, not yet running. [`Client::sender`] hands out the way to send messages;
/// [`Client::run`] keeps the link up until asked to stop.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    outbox_tx: mpsc::UnboundedSender<ClientMessage>,
    outbox_rx: mpsc::UnboundedReceiver<ClientMessage>,
}

impl Client {
    /// A client that will follow `config`.
    pub fn new(config: ClientConfig) -> Self {
        let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
        Client {
            config,
            outbox_tx,
            outbox_rx,
        }
    }

    /// The configuration it follows.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A handle to send protocol messages. Messages sent while the link is not usable are
    /// queued (at most [`ClientConfig::max_queue`]) and sent in order after the next `welcome`.
    pub fn sender(&self) -> ClientSender {
        ClientSender(self.outbox_tx.clone())
    }

    /// Connects, says `hello`, keeps the link alive and reconnects per the configuration, until
    /// `stop` is cancelled; then leaves (close 1000, unless the profile is `impolite`).
    /// Every step is reported to `observer` as it happens.
    pub async fn run<F>(self, stop: CancellationToken, observer: F) -> ClientSummary
    where
        F: FnMut(&ClientEvent) + Send,
    {
        // Our own sender must not keep the outbox open forever: the runner learns from a
        // closed outbox that no message can come any more.
        drop(self.outbox_tx);
        runner::Runner::new(self.config, self.outbox_rx, observer)
            .run(stop)
            .await
    }
}

/// Sends protocol messages through a [`Client`], whether it is connected or not.
#[derive(Debug, Clone)]
pub struct ClientSender(mpsc::UnboundedSender<ClientMessage>);

/// The client has stopped; nothing sent now would ever go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client has stopped")]
pub struct ClientStopped;

impl ClientSender {
    /// Hands `message` to the client: sent at once when the link is usable, queued otherwise.
    pub fn send(&self, message: impl Into<ClientMessage>) -> Result<(), ClientStopped> {
        self.0.send(message.into()).map_err(|_| ClientStopped)
    }
}
