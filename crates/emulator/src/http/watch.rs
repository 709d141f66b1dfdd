//! A stream wrapper that remembers whether the app ended the connection (EOF or an error),
//! so the `tcp_closed` event after a WebSocket session can say who closed it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `S`, plus a flag set when a read returns EOF or any I/O fails.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    peer_gone: Arc<AtomicBool>,
}

impl<S> Watched<S> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: S) -> Self {
        Watched {
            inner,
            peer_gone: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag that stays readable after the stream is moved away and dropped.
    pub(crate) fn peer_gone(&self) -> Arc<AtomicBool> {
        self.peer_gone.clone()
    }

    fn note<T>(&self, r: &Poll<io::Result<T>>) {
        if let Poll::Ready(Err(_)) = r {
            self.peer_gone.store(true, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            self.peer_gone.store(true, Ordering::Relaxed);
        }
        self.note(&r);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&r);
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(&r);
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: crate::ws::Transport> crate::ws::Transport for Watched<S> {
    fn service(&self) -> espsim_faults::Service {
        self.inner.service()
    }

    fn abort(self) {
        self.inner.abort();
    }
}
