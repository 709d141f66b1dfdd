//! A stream wrapper under tungstenite that can swallow the device's next PONG frame.
//!
//! tungstenite answers every ping by itself (the PONG is queued on read and written on the next
//! read, write or flush) and has no switch to turn that off. The `suppress_pong` fault needs a
//! device that stays silent, so this wrapper follows the frame boundaries of what the device
//! writes (server frames: 2–14 header bytes, then the payload) and drops a whole PONG frame while
//! [`Tap::swallow_pong`] is set. Everything else, reads included, passes through unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Opcode of a PONG frame (RFC 6455 §5.5.3).
const OP_PONG: u8 = 0xA;

/// `S` with a filter on outgoing frames.
#[derive(Debug)]
pub(crate) struct Tap<S> {
    inner: S,
    /// While set, the next PONG frame written is dropped whole.
    pub(crate) swallow_pong: bool,
    /// Header bytes of the frame being written, until the header is complete.
    head: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// Whether the current frame is being dropped.
    dropping: bool,
    /// A complete header waiting to be written to `inner`, and how much of it is written.
    pending: Vec<u8>,
    pending_pos: usize,
}

impl<S> Tap<S> {
    /// Wraps `inner`; nothing is dropped until `swallow_pong` is set.
    pub(crate) fn new(inner: S) -> Self {
        Tap {
            inner,
            swallow_pong: false,
            head: Vec::with_capacity(14),
            payload_left: 0,
            dropping: false,
            pending: Vec::new(),
            pending_pos: 0,
        }
    }

    /// Header length implied by the bytes seen so far (at least 2).
    fn header_len(head: &[u8]) -> usize {
        if head.len() < 2 {
            return 2;
        }
        let ext = match head[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if head[1] & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    /// Payload length of a complete header.
    fn payload_len(head: &[u8]) -> u64 {
        match head[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&head[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }
}

impl<S: AsyncWrite + Unpin> Tap<S> {
    /// Writes a completed header that is waiting.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_pos < self.pending.len() {
            let n = ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pending_pos..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_pos += n;
        }
        self.pending.clear();
        self.pending_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.payload_left > 0 {
            let n =
                usize::try_from(this.payload_left).map_or(buf.len(), |left| left.min(buf.len()));
            let n = if this.dropping {
                n
            } else {
                ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..n]))?
            };
            this.payload_left -= n as u64;
            return Poll::Ready(Ok(n));
        }
        // Header bytes: collect them (reporting them written) until the header is complete.
        let mut used = 0;
        while used < buf.len() {
            let need = Self::header_len(&this.head);
            if this.head.len() >= need {
                break;
            }
            let take = (need - this.head.len()).min(buf.len() - used);
            this.head.extend_from_slice(&buf[used..used + take]);
            used += take;
        }
        if this.head.len() >= Self::header_len(&this.head) {
            let head = std::mem::take(&mut this.head);
            this.payload_left = Self::payload_len(&head);
            this.dropping = this.swallow_pong && head[0] & 0x0f == OP_PONG;
            if !this.dropping {
                this.pending = head;
                this.pending_pos = 0;
            }
        }
        Poll::Ready(Ok(used))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    use super::*;

    fn bytes(frame: Frame) -> Vec<u8> {
        let mut out = Vec::new();
        frame.format(&mut out).expect("format");
        out
    }

    #[tokio::test]
    async fn drops_only_the_pong_while_set_even_when_written_byte_by_byte() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut tap = Tap::new(a);
        let text = bytes(Frame::message(
            "hi",
            tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
            ),
            true,
        ));
        let pong = bytes(Frame::pong(vec![7u8; 300]));
        let mut all = text.clone();
        all.extend_from_slice(&pong);
        all.extend_from_slice(&text);
        tap.swallow_pong = true;
        for byte in &all {
            tap.write_all(std::slice::from_ref(byte))
                .await
                .expect("write");
        }
        tap.swallow_pong = false;
        tap.write_all(&pong).await.expect("write");
        tap.shutdown().await.expect("shutdown");
        drop(tap);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.expect("read");
        let mut want = text.clone();
        want.extend_from_slice(&text);
        want.extend_from_slice(&pong);
        assert_eq!(got, want);
    }
}
