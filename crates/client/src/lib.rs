//! espsim-client: the reference WebSocket client — what an app talking to the device should do,
//! and profiles that each break one rule so the harness can prove its expectations are able to
//! fail. It speaks [`espsim_protocol`] over tokio-tungstenite and knows nothing of the emulator:
//! point it at a real ESP32 or at `espsim run` alike (`espsim client`, and the harness's runner,
//! run it).
//!
//! ```no_run
//! # async fn demo() {
//! use espsim_client::{Client, ClientConfig, ClientProfile};
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

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod config;
pub mod event;
mod runner;

use espsim_protocol::ClientMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{Backoff, ClientConfig, ClientProfile, Heartbeat, HeartbeatKind, UnknownProfile};
pub use event::{ClientEvent, ClientEventKind, ClientSummary, Closer};

#[cfg(test)]
mod tests;

/// Most messages between [`ClientSender::send`] and the connection task. The task takes them at
/// once while the link is down or idle (into its own queue of [`ClientConfig::max_queue`], which
/// drops the oldest); they pile up here only while it waits on a send the device does not read
/// (at most [`ClientConfig::send_timeout`]). Beyond this, `send` says [`SendError::Full`].
pub const OUTBOX: usize = 1024;

/// A configured client, not yet running. [`Client::sender`] hands out the way to send messages;
/// [`Client::run`] keeps the link up until asked to stop.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    outbox_tx: mpsc::Sender<ClientMessage>,
    outbox_rx: mpsc::Receiver<ClientMessage>,
}

impl Client {
    /// A client that will follow `config`.
    pub fn new(config: ClientConfig) -> Self {
        let (outbox_tx, outbox_rx) = mpsc::channel(OUTBOX);
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
        ClientSender {
            tx: self.outbox_tx.clone(),
        }
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
pub struct ClientSender {
    tx: mpsc::Sender<ClientMessage>,
}

/// Why [`ClientSender::send`] did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The client has stopped; nothing sent now would ever go out.
    #[error("the client has stopped")]
    Stopped,
    /// The outbox is full: the client has not yet taken the messages before (it is waiting for
    /// a send to complete on a link the device does not read). Nothing was queued; send again
    /// later or use [`ClientSender::send_wait`].
    #[error("the client's outbox is full ({limit} messages waiting for the connection task)")]
    Full {
        /// The outbox's size.
        limit: usize,
    },
}

impl ClientSender {
    /// Hands `message` to the client: sent at once when the link is usable, queued otherwise.
    /// Never waits: a full outbox is an error, so a caller cannot pile up messages without bound.
    pub fn send(&self, message: impl Into<ClientMessage>) -> Result<(), SendError> {
        self.tx.try_send(message.into()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full { limit: OUTBOX },
            mpsc::error::TrySendError::Closed(_) => SendError::Stopped,
        })
    }

    /// Like [`ClientSender::send`], but waits for room in a full outbox (backpressure).
    pub async fn send_wait(&self, message: impl Into<ClientMessage>) -> Result<(), SendError> {
        self.tx
            .send(message.into())
            .await
            .map_err(|_| SendError::Stopped)
    }
}
