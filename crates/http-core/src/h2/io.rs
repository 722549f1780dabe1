//! The transport under an HTTP/2 connection: replays the bytes already read
//! (the preface an HTTP/1.1 read took off the socket), notes how long writes
//! have been blocked, so the driver can close a connection whose peer stopped
//! reading, and lingers after the h2 crate shuts it down: what the peer still
//! sends is read and discarded for a moment, so that it reads the GOAWAY
//! instead of a reset. It also looks at each frame header the peer sends
//! ([`Frames`]): a frame error RFC 9113 gives its own code is answered here,
//! with a GOAWAY of that code, before the h2 crate would call it a
//! `PROTOCOL_ERROR`.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::frame_check::{Frames, Violation};

/// After the connection is shut down, unread input is discarded for at most
/// this long and this much before it is closed (as the HTTP/1.1 driver does).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

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

/// `inner`, with `prefix` read first, write stalls noted, and a linger after
/// shutdown.
pub(super) struct H2Io<T> {
    inner: T,
    prefix: Bytes,
    stall: Arc<WriteStall>,
    /// The write side has been shut down (the FIN sent).
    shut: bool,
    linger: Option<Pin<Box<Sleep>>>,
    discarded: usize,
    /// The peer's frames, checked as they are read.
    inbound: Frames,
    /// The server's frames, followed so that a GOAWAY of ours goes between two.
    outbound: Frames,
}

impl<T> H2Io<T> {
    pub(super) fn new(inner: T, prefix: Bytes, stall: Arc<WriteStall>) -> Self {
        H2Io {
            inner,
            prefix,
            stall,
            shut: false,
            linger: None,
            discarded: 0,
            inbound: Frames::inbound(),
            outbound: Frames::outbound(),
        }
    }
}

impl<T> H2Io<T> {
    /// Follows what the server wrote; the streams it reset are noted for
    /// the check of what the peer sends.
    fn written(&mut self, bytes: &[u8]) {
        self.outbound.follow(bytes);
        for id in self.outbound.take_resets() {
            self.inbound.server_reset(id);
        }
    }
}

impl<T: AsyncWrite + Unpin> H2Io<T> {
    /// Checks the bytes just read; on a frame error, sends its GOAWAY (when
    /// no frame of the server's is half written, and the socket takes it at
    /// once) and fails the read, which ends the connection.
    fn check_read(&mut self, cx: &mut Context<'_>, read: &[u8]) -> io::Result<()> {
        let last_stream = self.inbound.max_stream();
        let Err(code) = self.inbound.check(read) else {
            return Ok(());
        };
        let v = Violation { code, last_stream };
        if self.outbound.at_boundary() {
            let goaway = v.goaway();
            if let Poll::Ready(Ok(n)) = Pin::new(&mut self.inner).poll_write(cx, &goaway) {
                self.written(&goaway[..n]);
                let _ = Pin::new(&mut self.inner).poll_flush(cx);
            }
        }
        tracing::debug!(
            code,
            "HTTP/2 connection error in the peer's frames: GOAWAY sent, connection closed"
        );
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("HTTP/2 connection error {code:#x} in the peer's frames"),
        ))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for H2Io<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
        } else {
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        }
        let read = &buf.filled()[before..];
        Poll::Ready(this.check_read(cx, read))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for H2Io<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stall.note(&p);
        if let Poll::Ready(Ok(n)) = p {
            this.written(&buf[..n]);
        }
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
        if let Poll::Ready(Ok(mut n)) = p {
            for b in bufs {
                let k = n.min(b.len());
                this.written(&b[..k]);
                n -= k;
                if n == 0 {
                    break;
                }
            }
        }
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
        let this = self.get_mut();
        if !this.shut {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.shut = true;
        }
        let deadline = this
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER_TIME)));
        loop {
            if this.discarded >= LINGER_BYTES || deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut sink = [MaybeUninit::<u8>::uninit(); 512];
            let mut buf = ReadBuf::uninit(&mut sink);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.discarded += buf.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
