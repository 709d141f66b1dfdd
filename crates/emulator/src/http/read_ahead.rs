//! A connection waiting for a socket slot, read ahead so the device can tell when the app gives
//! up on it, and replayed when it is served.
//!
//! While every slot is taken lwIP has completed the TCP handshake and keeps what the app sends
//! in the socket's receive buffer; when the app's connect times out it closes the socket, and
//! the FIN (or RST) lands in that buffer too. [`ReadAhead::until_gone`] plays the buffer: it
//! reads what the app sends, up to a bound (the longest request head the profile accepts; then
//! it stops reading, as a full buffer would, and can no longer see a close behind it), and
//! returns when the app closes. [`Replay`] then hands the bytes read ahead to whoever serves
//! the connection (HTTP, or the TLS handshake under it) before the rest: nothing lost, nothing
//! reordered.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use espsim_faults::Service;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::profile::Profile;

/// How the app left a waiting connection.
#[derive(Debug)]
pub(crate) enum Gone {
    /// It closed its side (FIN).
    Closed,
    /// The socket failed (RST, or the device's outage reset it: the caller tells which).
    Failed(io::Error),
}

/// What was read from a waiting connection, bounded.
#[derive(Debug)]
pub(crate) struct ReadAhead {
    bytes: Vec<u8>,
    limit: usize,
}

impl ReadAhead {
    /// Room for the longest request head `profile` accepts (request line and headers).
    pub(crate) fn for_profile(profile: &Profile) -> Self {
        ReadAhead::with_limit(profile.max_uri_len.saturating_add(profile.max_req_hdr_len))
    }

    /// Room for `limit` bytes.
    pub(crate) fn with_limit(limit: usize) -> Self {
        ReadAhead {
            bytes: Vec::new(),
            limit,
        }
    }

    /// Reads what the app sends until it closes the connection; never returns while it stays
    /// (once `limit` bytes are buffered it stops reading). Cancel-safe: bytes are kept as soon
    /// as a read returns them.
    pub(crate) async fn until_gone<S: AsyncRead + Unpin>(&mut self, io: &mut S) -> Gone {
        let mut chunk = [0u8; 512];
        loop {
            let room = self.limit.saturating_sub(self.bytes.len());
            if room == 0 {
                return std::future::pending().await;
            }
            let want = room.min(chunk.len());
            match io.read(&mut chunk[..want]).await {
                Ok(0) => return Gone::Closed,
                Ok(n) => self.bytes.extend_from_slice(&chunk[..n]),
                Err(e) => return Gone::Failed(e),
            }
        }
    }

    /// `io`, reading these bytes first.
    pub(crate) fn replay<S>(self, io: S) -> Replay<S> {
        Replay {
            ahead: self.bytes,
            pos: 0,
            inner: io,
        }
    }
}

/// A stream whose first reads return the bytes read ahead; writes go straight through.
#[derive(Debug)]
pub(crate) struct Replay<S> {
    ahead: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Replay<S> {
    /// `io` with nothing to replay.
    pub(crate) fn direct(io: S) -> Self {
        ReadAhead::with_limit(0).replay(io)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let left = &this.ahead[this.pos..];
        if !left.is_empty() {
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            this.pos += n;
            if this.pos == this.ahead.len() {
                this.ahead = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: crate::ws::Transport> crate::ws::Transport for Replay<S> {
    fn service(&self) -> Service {
        self.inner.service()
    }

    fn abort(self) {
        self.inner.abort();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test]
    async fn bytes_read_ahead_come_first_then_the_rest_in_order() {
        let (mut app, mut device) = duplex(64);
        app.write_all(b"GET / HT").await.expect("write");
        let mut ahead = ReadAhead::with_limit(1024);
        // The app is still there: reading ahead does not end.
        tokio::select! {
            biased;
            _ = ahead.until_gone(&mut device) => panic!("the app did not leave"),
            () = tokio::task::yield_now() => {}
        }
        app.write_all(b"TP/1.1\r\n").await.expect("write");
        let mut replay = ahead.replay(device);
        let mut got = vec![0u8; 16];
        replay.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_ends_the_wait_and_a_full_buffer_stops_reading() {
        let (app, mut device) = duplex(64);
        drop(app);
        let mut ahead = ReadAhead::with_limit(16);
        assert!(matches!(ahead.until_gone(&mut device).await, Gone::Closed));

        let (mut app, mut device) = duplex(64);
        app.write_all(&[b'x'; 20]).await.expect("write");
        drop(app);
        let mut ahead = ReadAhead::with_limit(16);
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            ahead.until_gone(&mut device),
        )
        .await;
        assert!(
            waited.is_err(),
            "a full buffer cannot see the close behind it"
        );
        let mut replay = ahead.replay(device);
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.expect("read");
        assert_eq!(all, [b'x'; 20], "nothing lost, nothing reordered");
    }
}
