//! Test-only: a minimal acceptor that reads a request head with `httparse` and hands the
//! connection to [`super::handle_upgrade`], as the HTTP server does, over real loopback sockets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Handles;
use crate::WsSettings;
use crate::device_host::{DeviceHost, DeviceOptions};
use crate::events::{ConnId, Event, EventKind, EventLog};
use crate::http::head::RequestHead;
use crate::lifecycle::{Counter, Lifecycle};
use crate::profile::Profile;
use crate::sockets::ConnHandle;

/// Upper bound for every wait in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// A running test acceptor.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) handles: Arc<Handles>,
    purges: Arc<Mutex<HashMap<ConnId, CancellationToken>>>,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and serves the WebSocket path with `profile`, `ws` and `device`.
    pub(crate) async fn start(profile: Profile, ws: WsSettings, device: DeviceOptions) -> Self {
        let events = Arc::new(EventLog::new());
        let lifecycle = Lifecycle::new();
        let device = Arc::new(DeviceHost::new(
            device.clone(),
            device.builtin(0),
            events.clone(),
        ));
        device.start(&lifecycle);
        let handles = Arc::new(Handles {
            endpoints: vec![ws],
            watched: Arc::from([]),
            profile: Arc::new(profile),
            device,
            faults: Arc::new(espsim_faults::FaultPlan::empty(Some(0))),
            events,
            lifecycle,
            upgrades: Counter::new(),
        });
        let conns = Counter::new();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let purges = Arc::new(Mutex::new(HashMap::new()));
        handles.lifecycle.tracker.spawn(accept_loop(
            listener,
            handles.clone(),
            conns,
            purges.clone(),
        ));
        TestServer {
            addr,
            handles,
            purges,
        }
    }

    /// The default profile, `/ws`, no token.
    pub(crate) async fn default() -> Self {
        Self::start(
            Profile::default(),
            WsSettings::default(),
            DeviceOptions::default(),
        )
        .await
    }

    /// Plays LRU purge on connection `conn`.
    pub(crate) fn purge(&self, conn: ConnId) {
        let token = self
            .purges
            .lock()
            .expect("lock")
            .get(&conn)
            .cloned()
            .expect("known connection");
        token.cancel();
    }

    /// Waits for the first event matching `pred` (fails the test after `WAIT`).
    pub(crate) async fn event(&self, what: &str, pred: impl FnMut(&Event) -> bool) -> EventKind {
        self.handles
            .events
            .wait_for(WAIT, pred)
            .await
            .unwrap_or_else(|| panic!("no {what} event within {WAIT:?}"))
            .kind
    }

    /// Shuts down like `RunningEmulator::shutdown`: cancel, then wait for every task.
    pub(crate) async fn shutdown(&self) {
        let lifecycle = &self.handles.lifecycle;
        lifecycle.cancel.cancel();
        lifecycle.tracker.close();
        tokio::time::timeout(WAIT, lifecycle.tracker.wait())
            .await
            .expect("every task ends after shutdown");
    }
}

async fn accept_loop(
    listener: TcpListener,
    handles: Arc<Handles>,
    conns: Counter,
    purges: Arc<Mutex<HashMap<ConnId, CancellationToken>>>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = handles.lifecycle.cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let id = conns.next();
        let purge = CancellationToken::new();
        purges.lock().expect("lock").insert(id, purge.clone());
        let conn = ConnHandle::detached(id, peer, purge);
        let handles2 = handles.clone();
        handles.lifecycle.tracker.spawn(async move {
            if let Some((stream, head, leftover)) = read_head(stream).await {
                super::handle_upgrade(stream, leftover, head, conn, handles2).await;
            }
        });
    }
}

/// Reads one request head (≤ 8 KiB); returns it with the bytes read past it.
async fn read_head(mut stream: TcpStream) -> Option<(TcpStream, RequestHead, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < 8192 {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(len) = req.parse(&buf).ok()? {
            let target = req.path?.to_owned();
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (target.clone(), None),
            };
            let head = RequestHead {
                method: req.method?.to_owned(),
                target,
                path,
                query,
                minor_version: req.version?,
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            };
            let leftover = buf[len..].to_vec();
            return Some((stream, head, leftover));
        }
    }
    None
}
