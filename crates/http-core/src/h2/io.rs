//! The transport under an HTTP/2 connection: replays the bytes already read
//! (the preface an HTTP/1.1 read took off the socket) and notes how long
//! writes have been blocked, so the driver can close a connection whose peer
//! stopped reading.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When writes on a connection started to wait, shared between the transport
/// (inside the h2 connection) and the driver.
#[derive(Debug)]
pub(super) struct WriteStall {
    origin: Instant,
    /// Milliseconds from `origin` to when the current wait began, plus one;
    /// 0 while writes go through.
    since: AtomicU64,
}

impl WriteStall {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(WriteStall {
            origin: Instant::now(),
            since: AtomicU64::new(0),
        })
    }

    /// How long writes have been waiting, if they are.
    pub(super) fn blocked_for(&self) -> Option<Duration> {
        match self.since.load(Ordering::Relaxed) {
            0 => None,
            ms => {
                let since = self.origin + Duration::from_millis(ms - 1);
                Some(Instant::now().saturating_duration_since(since))
            }
        }
    }

    fn note<T>(&self, p: &Poll<T>) {
        let blocked = self.since.load(Ordering::Relaxed) != 0;
        match p {
            Poll::Pending if !blocked => {
                let ms = self.origin.elapsed().as_millis() as u64 + 1;
                self.since.store(ms, Ordering::Relaxed);
            }
            Poll::Ready(_) if blocked => self.since.store(0, Ordering::Relaxed),
            _ => {}
        }
    }
}

/// `inner`, with `prefix` read first and write stalls noted.
pub(super) struct H2Io<T> {
    inner: T,
    prefix: Bytes,
    stall: Arc<WriteStall>,
}

impl<T> H2Io<T> {
    pub(super) fn new(inner: T, prefix: Bytes, stall: Arc<WriteStall>) -> Self {
        H2Io { inner, prefix, stall }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for H2Io<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for H2Io<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stall.note(&p);
        p
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.stall.note(&p);
        p
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_flush(cx);
        this.stall.note(&p);
        p
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
