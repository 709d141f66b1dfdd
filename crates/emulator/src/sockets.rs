//! The device's socket slots: `max_open_sockets` and LRU purge (owned by the http work).

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
