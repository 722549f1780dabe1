//! The transport under an HTTP/2 connection: replays the bytes already read
//! (the preface an HTTP/1.1 read took off the socket), gathers the frames of
//! one turn of the connection into one write, notes how long writes have been
//! blocked, so the driver can close a connection whose peer stopped reading,
//! and lingers after the h2 crate shuts it down: what the peer still sends is
//! read and discarded for a moment, so that it reads the GOAWAY instead of a
//! reset.
//!
//! Gathering: the h2 crate flushes its transport after every DATA frame it
//! does not copy (any payload over 256 bytes), so ten answers finished in one
//! turn of the connection were ten writes: over TLS ten records and ten
//! `sendmsg` calls. When the driver has finished two answers or more since it
//! last polled the connection, or answered a request at once while more
//! requests are on their way (the peer's HEADERS frames opened more streams
//! than the driver has accepted), it asks for gathering: writes are then
//! copied into one buffer and a flush asked for while it holds less than
//! [`FLUSH_AT`] is put off. While the turns give it requests it answers at
//! once, the driver keeps gathering; once it has accepted them all, or when a
//! turn gives none, it polls the connection once more without gathering: the
//! buffer is written out, one write for all. A single answer (or a large
//! body's DATA frames) is written through, without a copy.
//!
//! It also looks at each frame header the peer sends ([`Frames`]): on a frame
//! error RFC 9113 gives its own code, the bytes are held back and the driver
//! has the h2 crate end the connection with a GOAWAY of that code, before the
//! h2 crate would call it a `PROTOCOL_ERROR`.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::frame_check::Frames;

/// After the connection is shut down, unread input is discarded for at most
/// this long and this much before it is closed (as the HTTP/1.1 driver does).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// Gathered bytes are written out as soon as they reach this much (two full
/// TLS records' worth, in one write), whatever the turn.
const FLUSH_AT: usize = 32 * 1024;
/// The most gathered at once: a write arriving at a buffer this full waits
/// for it to be written out.
const GATHER_MAX: usize = FLUSH_AT;
/// Writes of this much or more (a full DATA frame of a large body) bypass
/// the buffer when it is empty: they are not copied.
const WRITE_THROUGH: usize = 16 * 1024;

/// When writes on a connection started to wait, shared between the transport
/// (inside the h2 connection) and the driver.
#[derive(Debug)]
pub(super) struct WriteStall {
    origin: Instant,
    /// Milliseconds from `origin` to when the current wait began, plus one;
    /// 0 while writes go through.
    since: AtomicU64,
    /// The driver asks for this turn's writes to be gathered.
    gather: AtomicBool,
    /// A flush was put off in this turn: the driver polls again.
    deferred: AtomicBool,
    /// The error code of a frame error the frame check found in the peer's
    /// bytes (0: none): the driver has the h2 crate end the connection with
    /// a GOAWAY of that code.
    violation: std::sync::atomic::AtomicU32,
    /// How many streams the peer's HEADERS frames have opened so far: when
    /// the driver has accepted as many, no request it has not seen is waiting.
    opened: AtomicU64,
}

impl WriteStall {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(WriteStall {
            origin: Instant::now(),
            since: AtomicU64::new(0),
            gather: AtomicBool::new(false),
            deferred: AtomicBool::new(false),
            violation: std::sync::atomic::AtomicU32::new(0),
            opened: AtomicU64::new(0),
        })
    }

    /// How many streams the peer has opened so far (HEADERS frames on new
    /// stream ids, as read).
    pub(super) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The code of the frame error the peer made, once (0: none).
    pub(super) fn take_violation(&self) -> u32 {
        self.violation.swap(0, Ordering::Relaxed)
    }

    /// A new turn of the driver; `gather`: writes are gathered in this one
    /// and flushes put off (a turn without gathering writes them out).
    pub(super) fn next_turn(&self, gather: bool) {
        self.gather.store(gather, Ordering::Relaxed);
    }

    /// Whether a flush was put off in the turn that just ended (and clears it).
    pub(super) fn take_deferred(&self) -> bool {
        self.deferred.swap(false, Ordering::Relaxed)
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
    /// Gathered writes (allocated while it holds some, freed once written).
    out: Vec<u8>,
    /// How much of `out` has been written.
    out_at: usize,
    /// The peer's frames, checked as they are read.
    inbound: Frames,
    /// The server's frames, followed for the streams it resets.
    outbound: Frames,
    /// The peer made a frame error: nothing more is read.
    failed: bool,
    /// A read ended the peer's side (end of stream or an error).
    read_ended: bool,
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
            out: Vec::new(),
            out_at: 0,
            inbound: Frames::inbound(),
            outbound: Frames::outbound(),
            failed: false,
            read_ended: false,
        }
    }
}

/// Follows what the server wrote to the socket; the streams it reset are
/// noted for the check of what the peer sends.
fn written(outbound: &mut Frames, inbound: &mut Frames, bytes: &[u8]) {
    outbound.follow(bytes);
    for id in outbound.take_resets() {
        inbound.server_reset(id);
    }
}

impl<T> H2Io<T> {
    /// Checks the bytes just read. On a frame error, the bytes are not
    /// passed on, the driver is told, and the read never ends: the driver
    /// has the h2 crate send the GOAWAY (whole, between its frames) and
    /// close the connection.
    fn check_read(&mut self, cx: &mut Context<'_>, read: &[u8]) -> bool {
        let checked = self.inbound.check(read);
        self.stall.opened.store(self.inbound.opened(), Ordering::Relaxed);
        let Err(code) = checked else {
            return true;
        };
        tracing::debug!(
            code,
            "HTTP/2 connection error in the peer's frames: GOAWAY {code:#x}"
        );
        self.failed = true;
        self.stall.violation.store(code, Ordering::Relaxed);
        cx.waker().wake_by_ref();
        false
    }
}

impl<T: AsyncWrite + Unpin> H2Io<T> {
    /// Writes out what has been gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            let p = Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_at..]);
            self.stall.note(&p);
            match std::task::ready!(p)? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => {
                    let sent = &self.out[self.out_at..self.out_at + n];
                    written(&mut self.outbound, &mut self.inbound, sent);
                    self.out_at += n;
                }
            }
        }
        // Written: the buffer is given back, so an idle connection holds none.
        self.out = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Room for `want` more bytes in the buffer: waits for it to be written
    /// out when it is full. Returns how many bytes may be gathered.
    fn poll_room(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.out.len() >= FLUSH_AT {
            std::task::ready!(self.poll_drain(cx))?;
        }
        if self.out.capacity() == 0 {
            self.out.reserve_exact(GATHER_MAX);
        }
        Poll::Ready(Ok(want.min(GATHER_MAX - self.out.len())))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for H2Io<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
        } else {
            let r = std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
            if r.is_err() || buf.filled().len() == before {
                this.read_ended = true;
            }
            r?;
        }
        let read = &buf.filled()[before..];
        if this.check_read(cx, read) {
            Poll::Ready(Ok(()))
        } else {
            buf.set_filled(before);
            Poll::Pending
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for H2Io<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.is_empty() && (buf.len() >= WRITE_THROUGH || !this.stall.gather.load(Ordering::Relaxed)) {
            let p = Pin::new(&mut this.inner).poll_write(cx, buf);
            this.stall.note(&p);
            if let Poll::Ready(Ok(n)) = p {
                written(&mut this.outbound, &mut this.inbound, &buf[..n]);
            }
            return p;
        }
        let n = std::task::ready!(this.poll_room(cx, buf.len()))?;
        this.out.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total = bufs.iter().map(|b| b.len()).sum::<usize>();
        if this.out.is_empty() && (total >= WRITE_THROUGH || !this.stall.gather.load(Ordering::Relaxed)) {
            let p = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            this.stall.note(&p);
            if let Poll::Ready(Ok(mut n)) = p {
                for b in bufs {
                    let k = n.min(b.len());
                    written(&mut this.outbound, &mut this.inbound, &b[..k]);
                    n -= k;
                    if n == 0 {
                        break;
                    }
                }
            }
            return p;
        }
        let mut room = std::task::ready!(this.poll_room(cx, total))?;
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room);
            this.out.extend_from_slice(&b[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.out_at < this.out.len() {
            // Not put off once the connection is ending (the peer's side
            // ended, or its frames were refused): no later turn may come.
            let due = this.out.len() >= FLUSH_AT
                || !this.stall.gather.load(Ordering::Relaxed)
                || this.failed
                || this.read_ended;
            if !due {
                // More frames may follow: written in a later turn, at the
                // latest the one without gathering the driver then starts.
                this.stall.deferred.store(true, Ordering::Relaxed);
                return Poll::Ready(Ok(()));
            }
            std::task::ready!(this.poll_drain(cx))?;
        }
        let p = Pin::new(&mut this.inner).poll_flush(cx);
        this.stall.note(&p);
        p
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut {
            std::task::ready!(this.poll_drain(cx))?;
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
