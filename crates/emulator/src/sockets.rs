//! The device's socket slots: `max_open_sockets` and LRU purge (owned by the http work).

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::events::ConnId;

/// Open connections and the limit on them.
#[derive(Debug)]
pub(crate) struct SocketTable {
    _limit: Option<usize>,
    _lru_purge: bool,
}

impl SocketTable {
    pub(crate) fn new(limit: Option<usize>, lru_purge: bool) -> Self {
        SocketTable {
            _limit: limit,
            _lru_purge: lru_purge,
        }
    }
}

/// One served connection's slot. Dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    /// The connection's id (as in events).
    pub(crate) id: ConnId,
    /// The app's address.
    pub(crate) peer: SocketAddr,
    purge: CancellationToken,
}

impl ConnHandle {
    /// Records activity on the connection (it becomes the most recently used for LRU purge).
    pub(crate) fn touch(&self) {}

    /// Cancelled when LRU purge picked this connection: the holder must drop the socket at once,
    /// writing nothing (ESP-IDF closes the fd: no WebSocket close frame).
    pub(crate) fn purged(&self) -> &CancellationToken {
        &self.purge
    }
}

#[cfg(test)]
impl ConnHandle {
    /// A handle outside any socket table, for tests of connection holders: cancelling `purge`
    /// plays LRU purge.
    pub(crate) fn detached(id: ConnId, peer: SocketAddr, purge: CancellationToken) -> Self {
        ConnHandle { id, peer, purge }
    }
}
