//! The server side of a TLS connection, on rustls' unbuffered API.
//!
//! rustls' buffered `ServerConnection` keeps a 4 KiB read buffer for as long
//! as the connection lives, which was most of what an idle TLS keep-alive
//! connection cost. Here the connection owns its buffers and holds them only
//! while bytes wait in them: ciphertext read and not yet decrypted, plaintext
//! decrypted and not yet read, ciphertext not yet sent. Each is a pooled
//! buffer ([`buf_pool`](crate::buf_pool)) taken when bytes arrive and given
//! back when it empties, so an idle connection holds none.
//!
//! Writes are encrypted into the outgoing buffer and sent on flush (or as soon
//! as a full record's worth waits), so that a response's head and body, given
//! as two slices, leave as one TLS record in one system call.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::io::Io;
use super::lazy::LazyTcpStream;
use super::tls::Shared;
use crate::buf_pool::{self as pool, InitBuf};

/// The most plaintext a TLS record carries (RFC 8446 §5.1).
const RECORD: usize = 16 * 1024;
/// Room for a record's header, tag and padding beyond its plaintext: TLS 1.2
/// GCM takes 29 bytes, TLS 1.3 22; a generous bound avoids a second try.
const RECORD_OVERHEAD: usize = 64;
/// The largest record a peer may send: 2^14 plus 2048 bytes of expansion, and
/// the 5-byte header (RFC 5246 §6.2.3). rustls refuses longer ones.
const MAX_RECORD: usize = RECORD + 2048 + 5;
/// Ciphertext waiting to be sent beyond which writes wait for the socket: the
/// memory a client that does not read can make a connection hold.
const OUTGOING_HIGH: usize = 64 * 1024;
/// Ciphertext waiting to be sent from which a write sends at once rather than
/// at the next flush.
const SEND_NOW: usize = RECORD;
/// The most a client may make the server buffer during the handshake: rustls
/// accepts handshake messages up to 64 KiB, in records of up to 16 KiB.
const MAX_HANDSHAKE_BUFFER: usize = 64 * 1024 + MAX_RECORD;

thread_local! {
    /// Where small slices of one write are gathered into one record.
    static STAGING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The server side of a TLS connection over a transport `T`: the handshake,
/// then the decrypted stream, itself an [`Io`] the driver serves. The
/// handshake is driven by the first read or write, on the connection's own
/// task, and must end before its deadline. [`Server::tls`](crate::Server::tls)
/// makes these for the TCP connections it accepts;
/// [`TlsConfig::accept_io`](super::TlsConfig::accept_io) makes one over any
/// other transport.
pub struct TlsStream<T = LazyTcpStream> {
    conn: UnbufferedServerConnection,
    tcp: T,
    bufs: Bufs,
    /// The handshake's deadline, while it runs.
    handshake: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The handshake or the connection failed: every operation fails.
    failed: bool,
    /// The peer's side ended: close_notify, or EOF.
    read_closed: bool,
    /// close_notify is queued: nothing more may be written.
    write_closed: bool,
    peer: Option<SocketAddr>,
    shared: Arc<Shared>,
}

/// The connection's buffers, each empty (and unallocated) unless bytes wait.
#[derive(Default)]
struct Bufs {
    /// Ciphertext read from the socket, not yet processed.
    incoming: InitBuf,
    /// Plaintext decrypted, not yet read.
    plain: BytesMut,
    /// Ciphertext to send, in order.
    outgoing: InitBuf,
    /// rustls reported the peer's close_notify.
    peer_closed: bool,
}

/// Where processing the received records stopped.
enum Pumped {
    /// Application data may be written (the closure, if any, has run and
    /// returned this many plaintext bytes consumed).
    Writable(usize),
    /// More bytes from the peer are needed to go on.
    NeedData,
    /// Both sides have sent close_notify.
    Closed,
}

/// What runs once the connection may write: encrypts into `outgoing`,
/// returning how much plaintext it consumed.
type WriteFn<'a> = &'a mut dyn FnMut(
    &mut WriteTraffic<'_, ServerConnectionData>,
    &mut InitBuf,
) -> Result<usize, rustls::Error>;

impl Bufs {
    /// Processes the records in `incoming` until the connection settles:
    /// decrypted data goes into `read` while it has room and into `plain`
    /// after, handshake records into `outgoing`; once the connection may
    /// write, `write` (if any) runs. Stops early once `read` has data and
    /// is full.
    fn pump(
        &mut self,
        conn: &mut UnbufferedServerConnection,
        mut read: Option<&mut ReadBuf<'_>>,
        mut write: Option<WriteFn<'_>>,
    ) -> Result<Pumped, rustls::Error> {
        loop {
            let UnbufferedStatus { mut discard, state } = conn.process_tls_records(self.incoming.data_mut());
            let mut stop = None;
            match state? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record?;
                        discard += record.discard;
                        let mut payload = record.payload;
                        if let Some(read) = read.as_deref_mut() {
                            let n = payload.len().min(read.remaining());
                            read.put_slice(&payload[..n]);
                            payload = &payload[n..];
                        }
                        if !payload.is_empty() {
                            if self.plain.capacity() == 0 {
                                self.plain = pool::take();
                            }
                            self.plain.extend_from_slice(payload);
                        }
                    }
                    // Stop once the reader has data and nothing more waits, rather
                    // than going round again to learn the connection is idle.
                    if read.as_deref().is_some_and(|r| r.remaining() == 0)
                        || (read.is_some() && self.incoming.len() == discard)
                    {
                        stop = Some(Pumped::NeedData);
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    // Asked with no room, rustls says how much it needs.
                    if let Err(EncodeError::InsufficientSize(size)) = encode.encode(&mut []) {
                        let n = encode
                            .encode(self.outgoing.room(size.required_size))
                            .map_err(|e| rustls::Error::General(e.to_string()))?;
                        self.outgoing.commit(n);
                    }
                }
                // The bytes are in `outgoing`, ahead of anything written after.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::BlockedHandshake => stop = Some(Pumped::NeedData),
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::Closed => stop = Some(Pumped::Closed),
                ConnectionState::WriteTraffic(mut traffic) => {
                    let n = match write.take() {
                        Some(f) => f(&mut traffic, &mut self.outgoing)?,
                        None => 0,
                    };
                    stop = Some(Pumped::Writable(n));
                }
                // Early data is never accepted (the configuration allows none).
                other => {
                    return Err(rustls::Error::General(format!("unexpected TLS state {other:?}")));
                }
            }
            self.incoming.consume(discard);
            if let Some(stop) = stop {
                return Ok(stop);
            }
        }
    }

    /// Gives back the buffers that emptied, so that an idle connection
    /// holds none.
    fn release_empty(&mut self) {
        self.incoming.release();
        self.outgoing.release();
        if self.plain.is_empty() && self.plain.capacity() != 0 {
            pool::give(std::mem::take(&mut self.plain));
        }
    }
}

/// Encrypts `data` as records into `outgoing`.
fn encrypt(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    outgoing: &mut InitBuf,
    data: &[u8],
) -> Result<(), rustls::Error> {
    let mut room = data.len() + data.len().div_ceil(RECORD) * RECORD_OVERHEAD;
    loop {
        match traffic.encrypt(data, outgoing.room(room)) {
            Ok(n) => {
                outgoing.commit(n);
                return Ok(());
            }
            // A key update queued ahead of the data needs room too.
            Err(EncryptError::InsufficientSize(s)) if s.required_size > room => room = s.required_size,
            Err(e) => return Err(rustls::Error::General(e.to_string())),
        }
    }
}

/// Encrypts up to `budget` bytes of `bufs`, gathering slices shorter than a
/// record into one, and returns how many it took.
fn encrypt_slices(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    outgoing: &mut InitBuf,
    bufs: &[IoSlice<'_>],
    budget: usize,
) -> Result<usize, rustls::Error> {
    STAGING.with(|staging| {
        let mut staging = staging.borrow_mut();
        staging.clear();
        let mut taken = 0;
        for buf in bufs {
            let mut rest: &[u8] = buf;
            while !rest.is_empty() && taken < budget {
                let allowed = budget - taken;
                if staging.is_empty() && rest.len() >= RECORD {
                    // Whole records straight from the caller's bytes.
                    let n = rest.len().min(allowed);
                    encrypt(traffic, outgoing, &rest[..n])?;
                    taken += n;
                    rest = &rest[n..];
                } else {
                    let n = rest.len().min(RECORD - staging.len()).min(allowed);
                    staging.extend_from_slice(&rest[..n]);
                    taken += n;
                    rest = &rest[n..];
                    if staging.len() == RECORD {
                        encrypt(traffic, outgoing, &staging)?;
                        staging.clear();
                    }
                }
            }
        }
        if !staging.is_empty() {
            encrypt(traffic, outgoing, &staging)?;
        }
        Ok(taken)
    })
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<T: Io> TlsStream<T> {
    pub(crate) fn new(
        tcp: T,
        config: Arc<rustls::ServerConfig>,
        peer: Option<SocketAddr>,
        timeout: Duration,
        shared: Arc<Shared>,
    ) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        Ok(TlsStream {
            conn,
            tcp,
            bufs: Bufs::default(),
            handshake: Some(Box::pin(tokio::time::sleep(timeout))),
            failed: false,
            read_closed: false,
            write_closed: false,
            peer,
            shared,
        })
    }

    /// The protocol ALPN settled on (`b"http/1.1"`; `b"h2"` once offered),
    /// or `None` before the handshake or when the client offered none.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        if self.handshake.is_some() {
            return None;
        }
        self.conn.alpn_protocol()
    }

    /// Sends what waits in `outgoing`; `Ready(Ok)` once all is sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.bufs.outgoing.is_empty() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, self.bufs.outgoing.data()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.bufs.outgoing.consume(n);
        }
        self.bufs.outgoing.release();
        Poll::Ready(Ok(()))
    }

    /// Reads from the socket into `incoming`: the bytes read, 0 at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let incoming = &mut self.bufs.incoming;
        // Room for the whole record whose header has arrived, or a good read.
        let mut want = 4096;
        if let [_, _, _, hi, lo, ..] = *incoming.data() {
            let record = 5 + usize::from(u16::from_be_bytes([hi, lo]));
            want = want.max(record.min(MAX_RECORD).saturating_sub(incoming.len()));
        }
        // Initialised memory: the socket read does not zero it first.
        let mut room = ReadBuf::new(incoming.room(want));
        match Pin::new(&mut self.tcp).poll_read(cx, &mut room) {
            Poll::Ready(Ok(())) => {
                let n = room.filled().len();
                incoming.commit(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                incoming.release();
                Poll::Pending
            }
        }
    }

    /// Drives the handshake; `Ready(Ok)` once it is done.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        }
        let Some(deadline) = self.handshake.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if deadline.as_mut().poll(cx).is_ready() {
            self.shared
                .counters
                .handshake_timeouts
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = ?self.peer, "TLS handshake timed out");
            return Poll::Ready(Err(self.fail(io::ErrorKind::TimedOut.into())));
        }
        match self.drive_handshake(cx) {
            Poll::Ready(Ok(())) => {
                self.handshake = None;
                self.shared.counters.handshakes.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                self.shared
                    .counters
                    .handshake_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = ?self.peer, error = %e, "TLS handshake failed");
                Poll::Ready(Err(self.fail(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn drive_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.bufs.pump(&mut self.conn, None, None) {
                Err(e) => return Poll::Ready(Err(self.alert(cx, e))),
                Ok(Pumped::Closed) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Ok(Pumped::Writable(_)) if !self.conn.is_handshaking() => {
                    // The last flight (TLS 1.2's Finished) must reach the client
                    // before it sends a request; if the socket is full, the
                    // first read or write sends it.
                    let _ = self.poll_send(cx)?;
                    return Poll::Ready(Ok(()));
                }
                Ok(_) => {}
            }
            if self.bufs.peer_closed {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            ready!(self.poll_send(cx))?;
            if self.bufs.incoming.len() > MAX_HANDSHAKE_BUFFER {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "handshake too large",
                )));
            }
            if ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// After rustls refused the peer's bytes: sends what rustls queued (the
    /// alert, and any handshake records before it), as far as the socket
    /// takes it now, and returns the error.
    fn alert(&mut self, cx: &mut Context<'_>, e: rustls::Error) -> io::Error {
        // Queued records come out of a round before rustls looks at the input
        // again, so rounds are run only while some wait: a round with none
        // would read the refused bytes again (and queue a second alert). The
        // input is the same as before: rustls remembers how far into it it got.
        while self.conn.wants_write() {
            let status = self.conn.process_tls_records(self.bufs.incoming.data_mut());
            let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state else {
                break;
            };
            if let Err(EncodeError::InsufficientSize(size)) = encode.encode(&mut []) {
                match encode.encode(self.bufs.outgoing.room(size.required_size)) {
                    Ok(n) => self.bufs.outgoing.commit(n),
                    Err(_) => break,
                }
            }
        }
        let _ = self.poll_send(cx);
        tls_error(e)
    }

    /// Marks the connection failed and lets its buffers go.
    fn fail(&mut self, e: io::Error) -> io::Error {
        self.failed = true;
        self.handshake = None;
        self.bufs.incoming.clear();
        self.bufs.outgoing.clear();
        self.bufs.plain.clear();
        self.bufs.release_empty();
        e
    }

    /// Runs `write` once the connection may write; its plaintext count.
    fn write_with(&mut self, cx: &mut Context<'_>, write: WriteFn<'_>) -> Poll<io::Result<usize>> {
        match self.bufs.pump(&mut self.conn, None, Some(write)) {
            Ok(Pumped::Writable(n)) => Poll::Ready(Ok(n)),
            Ok(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Err(e) => {
                let e = self.alert(cx, e);
                Poll::Ready(Err(self.fail(e)))
            }
        }
    }
}

impl<T: Io> fmt::Debug for TlsStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("peer", &self.peer)
            .field("alpn", &self.alpn_protocol())
            .finish_non_exhaustive()
    }
}

impl<T: Io> AsyncRead for TlsStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_handshake(cx))?;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.bufs.plain.is_empty() {
                let n = this.bufs.plain.len().min(buf.remaining());
                buf.put_slice(&this.bufs.plain[..n]);
                this.bufs.plain.advance(n);
                if this.bufs.plain.is_empty() {
                    pool::give(std::mem::take(&mut this.bufs.plain));
                }
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            // Nothing to decrypt: straight to the socket. (What the handshake
            // left for rustls to send was taken out with its last records.)
            if this.bufs.incoming.is_empty() {
                if ready!(this.poll_fill(cx))? == 0 {
                    this.read_closed = true;
                }
                continue;
            }
            let before = buf.filled().len();
            let pumped = this.bufs.pump(&mut this.conn, Some(buf), None);
            if let Err(e) = pumped {
                let e = this.alert(cx, e);
                return Poll::Ready(Err(this.fail(e)));
            }
            // A key update's answer, or tickets: sent now if the socket takes them.
            if !this.bufs.outgoing.is_empty() {
                let _ = this.poll_send(cx)?;
            }
            // The buffers are kept for the next read, which gives them back
            // if it has to wait.
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            if this.bufs.peer_closed || matches!(pumped, Ok(Pumped::Closed)) {
                this.read_closed = true;
                this.bufs.release_empty();
                continue;
            }
            if ready!(this.poll_fill(cx))? == 0 {
                // EOF without close_notify: the end of the stream all the same;
                // HTTP's own framing tells a cut message.
                this.read_closed = true;
            }
        }
    }
}

impl<T: Io> AsyncWrite for TlsStream<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_handshake(cx))?;
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        while this.bufs.outgoing.len() >= OUTGOING_HIGH {
            ready!(this.poll_send(cx))?;
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let budget = total.min(OUTGOING_HIGH.saturating_sub(this.bufs.outgoing.len()).max(RECORD));
        let taken = ready!(this.write_with(cx, &mut |traffic, outgoing| {
            encrypt_slices(traffic, outgoing, bufs, budget)
        }))?;
        if this.bufs.outgoing.len() >= SEND_NOW {
            let _ = this.poll_send(cx)?;
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.failed || this.handshake.is_some() {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    /// Sends close_notify, flushes, then ends the TCP stream; before the
    /// handshake is done there is nothing to end politely (the socket closes
    /// when the stream is dropped).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.failed || this.handshake.is_some() {
            return Poll::Ready(Ok(()));
        }
        this.queue_close_notify(cx)?;
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

impl<T: Io> TlsStream<T> {
    fn queue_close_notify(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.write_closed {
            return Ok(());
        }
        self.write_closed = true;
        let closed = self.write_with(cx, &mut |traffic, outgoing| {
            let n = traffic
                .queue_close_notify(outgoing.room(RECORD_OVERHEAD))
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            outgoing.commit(n);
            Ok(0)
        });
        match closed {
            Poll::Ready(Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
            _ => Ok(()),
        }
    }
}

/// The last write: the bytes and close_notify are encrypted together and
/// leave with the FIN, in one segment when they fit
/// ([`LazyTcpStream`]'s finish).
impl<T: Io> Io for TlsStream<T> {
    fn poll_finish(mut self: Pin<&mut Self>, cx: &mut Context<'_>, last: &mut &[u8]) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.failed || this.handshake.is_some() {
            ready!(this.poll_handshake(cx))?;
        }
        while !last.is_empty() {
            if this.bufs.outgoing.len() >= OUTGOING_HIGH {
                ready!(this.poll_send(cx))?;
                continue;
            }
            let slices = [IoSlice::new(last)];
            let budget = last
                .len()
                .min(OUTGOING_HIGH.saturating_sub(this.bufs.outgoing.len()).max(RECORD));
            let n = ready!(this.write_with(cx, &mut |traffic, outgoing| {
                encrypt_slices(traffic, outgoing, &slices, budget)
            }))?;
            *last = &last[n..];
        }
        this.queue_close_notify(cx)?;
        let mut rest: &[u8] = this.bufs.outgoing.data();
        let before = rest.len();
        let finished = Pin::new(&mut this.tcp).poll_finish(cx, &mut rest);
        let sent = before - rest.len();
        this.bufs.outgoing.consume(sent);
        ready!(finished)?;
        this.bufs.release_empty();
        Poll::Ready(Ok(()))
    }

    fn is_tls(&self) -> bool {
        true
    }

    fn alpn_protocol(&self) -> Option<&[u8]> {
        TlsStream::<T>::alpn_protocol(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tls::{CertPair, TlsConfig};
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server-side stream and a connected rustls client (written elsewhere).
    async fn pair(
        dir: &test_support::TempDir,
    ) -> (TlsStream, tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
        let ca = test_support::TestCa::new(dir.path());
        let files = ca.issue(dir.path(), "a", &["a.test"], 1);
        let tls = TlsConfig::from_pem_files(&[CertPair::new(files.cert, files.key)]).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&ca.ca_pem).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(ServerName::try_from("a.test").unwrap(), tcp)
                .await
                .unwrap()
        });
        let accepted = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        };
        accepted.set_nonblocking(true).unwrap();
        let mut server = tls
            .accept(LazyTcpStream::from_std(accepted), None, Duration::from_secs(10))
            .unwrap();
        // The handshake runs on the server's first read.
        let (read, client) = tokio::join!(server.read(&mut [0u8; 0]), client);
        read.unwrap();
        (server, client.unwrap())
    }

    fn held(s: &TlsStream) -> usize {
        s.bufs.incoming.capacity() + s.bufs.plain.capacity() + s.bufs.outgoing.capacity()
    }

    /// The point of this transport: a connection waiting for its next
    /// request holds no buffer, however much passed through it.
    #[tokio::test]
    async fn an_idle_connection_holds_no_buffers() {
        let dir = test_support::TempDir::new("tls-stream");
        let (mut server, mut client) = pair(&dir).await;
        for size in [10usize, 20_000, 100_000] {
            let data = vec![b'x'; size];
            client.write_all(&data).await.unwrap();
            client.flush().await.unwrap();
            let mut got = vec![0u8; size];
            server.read_exact(&mut got).await.unwrap();
            server.write_all(&data).await.unwrap();
            server.flush().await.unwrap();
            client.read_exact(&mut got).await.unwrap();
            // Idle: the server waits for the next request.
            let pending = tokio::time::timeout(Duration::from_millis(50), server.read(&mut [0u8; 16])).await;
            assert!(pending.is_err(), "nothing was sent");
            assert_eq!(held(&server), 0, "after {size} bytes each way");
        }
    }

    /// A client that never reads can make the server hold at most
    /// OUTGOING_HIGH of ciphertext (plus the record that crossed it).
    #[tokio::test]
    async fn a_client_that_never_reads_bounds_what_is_held() {
        let dir = test_support::TempDir::new("tls-stream");
        let (mut server, _client) = pair(&dir).await;
        let chunk = vec![b'y'; 50_000];
        let mut written = 0usize;
        loop {
            match tokio::time::timeout(Duration::from_millis(200), server.write(&chunk)).await {
                Ok(n) => written += n.unwrap(),
                Err(_) => break,
            }
            assert!(written < 64 << 20, "the socket never filled");
        }
        let bound = OUTGOING_HIGH + RECORD + 2 * RECORD_OVERHEAD;
        assert!(
            server.bufs.outgoing.len() <= bound,
            "{} > {bound}",
            server.bufs.outgoing.len()
        );
        assert!(
            !server.bufs.outgoing.is_empty(),
            "the write stalled with bytes waiting"
        );
    }
}
