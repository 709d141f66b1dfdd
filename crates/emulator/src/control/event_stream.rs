//! `GET /events`: the event log from a sequence number, then live, one JSON line per event.
//!
//! History and live events come from [`EventLog::snapshot_and_subscribe`], so nothing is lost
//! or repeated between them; a reader that falls behind the live channel catches up from the
//! history. The stream ends when the emulator shuts down, after the last event (`stopping`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use futures_util::Stream;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventLog};

struct Cursor {
    log: Arc<EventLog>,
    pending: VecDeque<Event>,
    live: broadcast::Receiver<Event>,
    next_seq: u64,
    cancel: CancellationToken,
    ending: bool,
}

impl Cursor {
    /// Queues every recorded event from `next_seq` on (after a lag, or to drain at shutdown).
    fn catch_up(&mut self) {
        let next = self.next_seq;
        self.pending = self
            .log
            .snapshot()
            .into_iter()
            .filter(|e| e.seq >= next)
            .collect();
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.next_seq = e.seq + 1;
                return Some(e);
            }
            if self.ending {
                return None;
            }
            tokio::select! {
                biased;
                received = self.live.recv() => match received {
                    Ok(e) if e.seq < self.next_seq => {}
                    Ok(e) => self.pending.push_back(e),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up(),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = self.cancel.cancelled() => {
                    self.catch_up();
                    self.ending = true;
                }
            }
        }
    }
}

/// The stream of JSON lines for `GET /events?from=from`.
pub(crate) fn stream(
    log: Arc<EventLog>,
    from: u64,
    cancel: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let (past, live) = log.snapshot_and_subscribe(from);
    let cursor = Cursor {
        log,
        pending: past.into(),
        live,
        next_seq: from,
        cancel,
        ending: false,
    };
    futures_util::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next_event().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok(Bytes::from(line)), cursor))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;
    use crate::events::EventKind;

    #[tokio::test]
    async fn history_then_live_then_end_on_shutdown() {
        let log = Arc::new(EventLog::new());
        log.emit(EventKind::Stopping);
        log.emit(EventKind::Stopping);
        let cancel = CancellationToken::new();
        let mut s = Box::pin(stream(log.clone(), 1, cancel.clone()));
        let seq = |b: Bytes| serde_json::from_slice::<Event>(&b).expect("json line").seq;
        let next = async |s: &mut std::pin::Pin<Box<_>>| {
            tokio::time::timeout(Duration::from_secs(5), StreamExt::next(s))
                .await
                .expect("in time")
        };
        assert_eq!(
            next(&mut s)
                .await
                .map(|r: Result<Bytes, Infallible>| seq(r.expect("ok"))),
            Some(1)
        );
        log.emit(EventKind::Stopping);
        assert_eq!(next(&mut s).await.map(|r| seq(r.expect("ok"))), Some(2));
        log.emit(EventKind::Stopping);
        cancel.cancel();
        assert_eq!(next(&mut s).await.map(|r| seq(r.expect("ok"))), Some(3));
        assert!(next(&mut s).await.is_none(), "ends after shutdown");
    }
}
