//! [`ClientConn`]: write a request, read its response head, then its body
//! through [`ResponseBody`], and know whether the connection can carry another.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

use crate::buf_pool as pool;
use crate::{parse_response, BodyDecoder, BodyEncoder, BodyKind, Error, Limits, Method, ResponseHead};

/// Request body bytes buffered before they are written out. Larger pieces of a
/// length-delimited body are written from their own buffer, without a copy.
const WRITE_PIECE: usize = 64 * 1024;
/// Read size once a response body turns out to be large (fewer system calls).
const BODY_READ: usize = 32 * 1024;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The server did not take the bytes within the timeout.
    #[error("the server did not accept the request in time")]
    TimedOut,
    /// The connection failed (reset, closed).
    #[error("writing the request: {0}")]
    Io(#[from] io::Error),
    /// The caller sent a body that disagrees with the framing it announced.
    #[error("request body does not match its framing: {0}")]
    Framing(Error),
}

/// Why no response head was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadHeadError {
    /// No complete head within the timeout.
    #[error("no response head in time")]
    TimedOut,
    /// The connection ended (or failed) before a complete head. `any_bytes` says
    /// whether any byte of a response had arrived: when none did, a server that
    /// closed an idle connection as the request was sent cannot have acted on it.
    #[error("the server closed the connection before a response")]
    Closed {
        /// Some response bytes had arrived.
        any_bytes: bool,
    },
    /// The head is malformed or too large ([`Error::BadResponse`], [`Error::HeadTooLarge`]).
    #[error("malformed response head: {0}")]
    Malformed(Error),
}

/// One connection to an HTTP/1.1 server, used for one exchange at a time.
///
/// Sending: [`start_request`](Self::start_request) writes the head (the caller
/// writes the request line and header lines; the framing line for the body is
/// added here), [`send_data`](Self::send_data) frames and sends the body (length
/// or chunked), [`finish_request`](Self::finish_request) ends it. Receiving:
/// [`read_head`](Self::read_head) reads the final response head (interim 1xx
/// answers other than 101 are skipped), [`into_body`](Self::into_body) reads the
/// body with the same decoder servers use for request bodies. A connection whose
/// response was cleanly framed to its end, with nothing unexpected buffered, is
/// handed back by [`ResponseBody::take_conn`] for the next request.
///
/// ```
/// use std::time::Duration;
/// use http_core::{write_header, write_request_line, BodyKind, ClientConn, Limits, Method};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let (client, mut server) = tokio::io::duplex(4096);
/// tokio::spawn(async move {
///     let mut req = [0u8; 256];
///     let _ = server.read(&mut req).await;
///     server.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await.unwrap();
/// });
/// let t = Duration::from_secs(5);
/// let mut conn = ClientConn::new(client);
/// conn.start_request(BodyKind::Empty, |out| {
///     write_request_line(out, "GET", "/");
///     write_header(out, "Host", b"example.com");
/// });
/// conn.finish_request(t).await.unwrap();
/// let limits = Limits::default();
/// let head = conn.read_head(Method::Get, &limits, t).await.unwrap();
/// assert_eq!(head.status(), 200);
/// let mut body = conn.into_body(&head, &limits, t);
/// let mut text = String::new();
/// body.read_to_string(&mut text).await.unwrap();
/// assert_eq!(text, "hello");
/// assert!(body.take_conn().is_some(), "cleanly framed: reusable");
/// # });
/// ```
pub struct ClientConn<T> {
    io: T,
    /// Read buffer (unread response bytes); taken from the pool when needed.
    rbuf: BytesMut,
    /// Request bytes not written yet.
    wbuf: BytesMut,
    encoder: BodyEncoder,
    /// Bytes the transport accepted for the current request.
    written: u64,
    /// The last response's head allows another request.
    keep_alive: bool,
    /// The current request was sent whole (or none was started).
    request_done: bool,
}

impl<T> fmt::Debug for ClientConn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConn")
            .field("buffered", &self.rbuf.len())
            .field("written", &self.written)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientConn<T> {
    /// Wraps a connected transport. It holds no buffer until it is used.
    pub fn new(io: T) -> Self {
        ClientConn {
            io,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            encoder: BodyEncoder::new(BodyKind::Empty),
            written: 0,
            keep_alive: true,
            request_done: true,
        }
    }

    /// The transport.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Begins a request with a body framed as `body` (`Empty`, `Length` or
    /// `Chunked`): `write_head` writes the request line
    /// ([`write_request_line`](crate::write_request_line)) and the header lines
    /// ([`write_header`](crate::write_header)); the framing line and the blank
    /// line are added here. Nothing is sent until the body is sent or the request
    /// finished.
    pub fn start_request(&mut self, body: BodyKind, write_head: impl FnOnce(&mut BytesMut)) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = pool::take();
        }
        self.wbuf.clear();
        self.written = 0;
        self.request_done = false;
        self.encoder = BodyEncoder::new(body);
        write_head(&mut self.wbuf);
        self.encoder.write_framing_header(&mut self.wbuf);
        self.wbuf.extend_from_slice(b"\r\n");
    }

    /// Sends a piece of the request body, framed. Each write must make progress
    /// within `timeout`.
    pub async fn send_data(&mut self, data: &[u8], timeout: Duration) -> Result<(), SendError> {
        if !self.encoder.needs_framing() && data.len() > WRITE_PIECE {
            self.encoder.count(data.len()).map_err(SendError::Framing)?;
            self.flush(timeout).await?;
            return self.write_counted(data, timeout).await;
        }
        if self.wbuf.len() + data.len() > WRITE_PIECE {
            self.flush(timeout).await?;
        }
        self.encoder
            .encode(data, &mut self.wbuf)
            .map_err(SendError::Framing)
    }

    /// Ends the request body (the last chunk of a chunked one; a length-delimited
    /// one must be complete) and writes out everything buffered.
    pub async fn finish_request(&mut self, timeout: Duration) -> Result<(), SendError> {
        self.encoder.finish(&mut self.wbuf).map_err(SendError::Framing)?;
        self.flush(timeout).await?;
        // The request is out: its buffer reads the response (one buffer per
        // exchange), or goes back to the pool.
        let out = std::mem::take(&mut self.wbuf);
        if self.rbuf.capacity() == 0 {
            self.rbuf = out;
        } else {
            pool::give(out);
        }
        self.request_done = true;
        Ok(())
    }

    /// Bytes of the current request the transport has accepted. Zero means the
    /// server cannot have seen any of it, so sending it elsewhere is safe for
    /// any method.
    pub fn written(&self) -> u64 {
        self.written
    }

    async fn flush(&mut self, timeout: Duration) -> Result<(), SendError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.wbuf);
        let r = self.write_counted(&out, timeout).await;
        self.wbuf = out;
        self.wbuf.clear();
        r
    }

    async fn write_counted(&mut self, mut data: &[u8], timeout: Duration) -> Result<(), SendError> {
        while !data.is_empty() {
            match tokio::time::timeout(timeout, self.io.write(data)).await {
                Ok(Ok(0)) => return Err(SendError::Io(io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => {
                    self.written += n as u64;
                    data = &data[n..];
                }
                Ok(Err(e)) => return Err(SendError::Io(e)),
                Err(_) => return Err(SendError::TimedOut),
            }
        }
        Ok(())
    }

    /// Reads the final response head to a request with `method`, within
    /// `timeout`; interim 1xx responses other than 101 are read and skipped.
    pub async fn read_head(
        &mut self,
        method: Method,
        limits: &Limits,
        timeout: Duration,
    ) -> Result<ResponseHead, ReadHeadError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut any_bytes = !self.rbuf.is_empty();
        loop {
            if !self.rbuf.is_empty() {
                match parse_response(&self.rbuf, method, limits) {
                    Ok(Some(p)) => {
                        let len = p.len();
                        let head = p.into_head(self.rbuf.split_to(len).freeze());
                        let s = head.status();
                        if (100..200).contains(&s) && s != 101 {
                            continue;
                        }
                        // After a protocol switch (or a tunnel opened by CONNECT)
                        // the connection no longer carries HTTP requests.
                        let switched = s == 101 || (method == Method::Connect && (200..300).contains(&s));
                        self.keep_alive = head.keep_alive() && !switched;
                        return Ok(head);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.keep_alive = false;
                        return Err(ReadHeadError::Malformed(e));
                    }
                }
            }
            if self.rbuf.capacity() == 0 {
                self.rbuf = pool::take();
            }
            self.rbuf.reserve(4096);
            let read = tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut self.rbuf);
            match tokio::time::timeout_at(deadline, read).await {
                Err(_) => {
                    self.keep_alive = false;
                    return Err(ReadHeadError::TimedOut);
                }
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.keep_alive = false;
                    return Err(ReadHeadError::Closed { any_bytes });
                }
                Ok(Ok(_)) => any_bytes = true,
            }
        }
    }

    /// The body of the response `head` (read by [`read_head`](Self::read_head)),
    /// decoded within `limits` (chunk lines and trailers; the total length of a
    /// chunked body), each read making progress within `idle_timeout`.
    pub fn into_body(self, head: &ResponseHead, limits: &Limits, idle_timeout: Duration) -> ResponseBody<T> {
        let decoder = BodyDecoder::new(head.body(), limits);
        let mut body = ResponseBody {
            conn: Some(self),
            decoder,
            received: 0,
            idle_timeout,
            stall: None,
            armed: false,
            fills: 0,
            ended: false,
        };
        body.check_end();
        body
    }

    /// True when the connection can carry another request now: the last request
    /// was sent whole, its response allowed another (it did not switch
    /// protocols), nothing of a request is pending, and no byte is buffered that
    /// nobody asked for.
    pub fn is_reusable(&self) -> bool {
        self.keep_alive && self.request_done && self.rbuf.is_empty() && self.wbuf.is_empty()
    }

    /// Gives the buffers back and returns the transport (to keep it in a pool).
    /// Returns `None` when the connection is not [reusable](Self::is_reusable).
    pub fn into_idle(self) -> Option<T> {
        if !self.is_reusable() {
            return None;
        }
        Some(self.into_parts().0)
    }

    /// The transport and the bytes read from it that no response took (after a
    /// `101 Switching Protocols`, the first bytes of the new protocol).
    pub fn into_parts(mut self) -> (T, Bytes) {
        // An empty read buffer is not split: a split-off part, even empty, would
        // share its allocation, and the pool could not take it back whole.
        let rest = if self.rbuf.is_empty() {
            Bytes::new()
        } else {
            self.rbuf.split().freeze()
        };
        pool::give(std::mem::take(&mut self.rbuf));
        pool::give(std::mem::take(&mut self.wbuf));
        (self.io, rest)
    }
}

/// A response body as it arrives, without its framing; reading it (it is an
/// [`AsyncRead`]) yields the payload.
///
/// Errors: [`io::ErrorKind::InvalidData`] for malformed framing,
/// [`io::ErrorKind::UnexpectedEof`] when the server closed inside the body,
/// [`io::ErrorKind::TimedOut`] when no byte came within the idle timeout. After
/// an error the connection is dropped.
pub struct ResponseBody<T> {
    conn: Option<ClientConn<T>>,
    decoder: BodyDecoder,
    received: u64,
    idle_timeout: Duration,
    /// The idle timer, made the first time a read has to wait.
    stall: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// Reads made so far.
    fills: u32,
    ended: bool,
}

impl<T> fmt::Debug for ResponseBody<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("decoder", &self.decoder)
            .field("received", &self.received)
            .field("ended", &self.ended)
            .finish()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ResponseBody<T> {
    /// True once the body has been read to its clean end.
    pub fn is_end(&self) -> bool {
        self.ended
    }

    /// Payload bytes read so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The connection, once the body ended cleanly and the connection can carry
    /// another request; `None` before that, after a failure, or when the server
    /// is closing it.
    pub fn take_conn(&mut self) -> Option<ClientConn<T>> {
        if !self.ended {
            return None;
        }
        self.conn.take().filter(|c| c.is_reusable())
    }

    /// Takes the transport out, whatever its state (for a caller that tunnels
    /// the rest of the connection); with the bytes buffered but not read.
    pub fn into_parts(mut self) -> Option<(T, Bytes)> {
        self.conn.take().map(ClientConn::into_parts)
    }

    fn check_end(&mut self) {
        if self.decoder.is_done() && !self.ended {
            self.ended = true;
        }
    }

    fn fail(
        &mut self,
        kind: io::ErrorKind,
        why: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> io::Error {
        self.decoder.abandon();
        if let Some(c) = self.conn.take() {
            let _ = c.into_parts();
        }
        io::Error::new(kind, why)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncRead for ResponseBody<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if !conn.rbuf.is_empty() {
                let lim = conn.rbuf.len().min(out.remaining());
                let p = match this.decoder.decode(&conn.rbuf[..lim]) {
                    Ok(p) => p,
                    Err(e) => return Poll::Ready(Err(this.fail(io::ErrorKind::InvalidData, e))),
                };
                let data = p.data.len();
                out.put_slice(&conn.rbuf[p.data.clone()]);
                conn.rbuf.advance(p.consumed);
                this.received += data as u64;
                if p.done {
                    this.check_end();
                    return Poll::Ready(Ok(()));
                }
                if data > 0 {
                    return Poll::Ready(Ok(()));
                }
                if p.consumed > 0 {
                    continue;
                }
            }
            // A large body is read in larger pieces.
            let large = match this.decoder.remaining_len() {
                Some(rem) => rem > pool::BUF_CAPACITY as u64,
                None => this.fills > 1,
            };
            if conn.rbuf.capacity() == 0 {
                conn.rbuf = pool::take();
            }
            conn.rbuf.reserve(if large { BODY_READ } else { 4096 });
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.rbuf) {
                Poll::Ready(Ok(0)) => {
                    if let Err(e) = this.decoder.eof() {
                        return Poll::Ready(Err(this.fail(io::ErrorKind::UnexpectedEof, e)));
                    }
                    // A close-delimited body: ended, and the connection with it.
                    conn.keep_alive = false;
                    this.check_end();
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(_)) => {
                    this.armed = false;
                    this.fills += 1;
                }
                Poll::Ready(Err(e)) => {
                    let kind = e.kind();
                    return Poll::Ready(Err(this.fail(kind, e)));
                }
                Poll::Pending => {
                    let deadline = tokio::time::Instant::now() + this.idle_timeout;
                    let stall = this
                        .stall
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if !this.armed {
                        stall.as_mut().reset(deadline);
                        this.armed = true;
                    }
                    if stall.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(this.fail(io::ErrorKind::TimedOut, "response body stalled")));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
