//! A connection the gateway can cut whatever its SSH state: the client silent before its
//! version line, in the middle of a key exchange, or not reading. Once cut, every read and write
//! fails, so the SSH session ends by itself and its socket is closed.

use futures::task::AtomicWaker;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Cuts one connection ([`Cut::cut`]); cheap to clone.
#[derive(Clone, Default)]
pub struct Cut(Arc<Inner>);

#[derive(Default)]
struct Inner {
    cut: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Cut {
    pub fn cut(&self) {
        self.0.cut.store(true, Ordering::SeqCst);
        self.0.reader.wake();
        self.0.writer.wake();
    }

    pub fn is_cut(&self) -> bool {
        self.0.cut.load(Ordering::SeqCst)
    }

    /// `Some(error)` once cut; registers `waker` to learn of a cut otherwise.
    fn check(&self, waker: &AtomicWaker, cx: &Context<'_>) -> Option<io::Error> {
        if !self.is_cut() {
            waker.register(cx.waker());
        }
        self.is_cut()
            .then(|| io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the gateway"))
    }
}

/// A stream that fails from the moment its [`Cut`] is cut.
pub struct CutStream<S> {
    inner: S,
    cut: Cut,
}

impl<S> CutStream<S> {
    pub fn new(inner: S, cut: Cut) -> Self {
        CutStream { inner, cut }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CutStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(e) = this.cut.check(&this.cut.0.reader, cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CutStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(e) = this.cut.check(&this.cut.0.writer, cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(e) = this.cut.check(&this.cut.0.writer, cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_cut_ends_a_pending_read_and_later_writes() {
        let (a, mut b) = tokio::io::duplex(64);
        let cut = Cut::default();
        let mut s = CutStream::new(a, cut.clone());
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        // A read waiting for data the client never sends ends when the gateway cuts.
        let reader = tokio::spawn(async move {
            let r = s.read(&mut buf).await;
            (r.is_err(), s)
        });
        tokio::task::yield_now().await;
        cut.cut();
        let (failed, mut s) = reader.await.unwrap();
        assert!(failed);
        assert!(s.write_all(b"x").await.is_err());
    }
}
