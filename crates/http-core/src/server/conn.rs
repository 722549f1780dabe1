//! The connection loop: read heads, call the service, write responses in order.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::access_log::{self, AccessRecord, ShowPeer};
use super::body::{BodyProgress, RequestBody};
use super::encode::{encode, Answering, Payload};
use super::service::{Request, Service, UpgradeFnBox, Upgraded};
use super::shutdown::ShutdownSignal;
use crate::buf_pool as pool;
use crate::h2::{H2Limits, PREFACE};
use crate::net::io::Io;
use crate::{parse_request, BodyEncoder, BodyKind, Error, Limits, Method, RequestHead, Response, Version};

/// Write-buffer fill at which streamed body bytes are flushed.
const STREAM_FLUSH_AT: usize = 32 * 1024;
/// Unsent output at which the driver stops taking pipelined requests off the
/// read buffer and writes first. A client that pipelines requests and never
/// reads the answers then holds at most this much (plus one response) instead
/// of every answer to everything it sent.
const OUTPUT_HIGH_WATER: usize = 16 * 1024;
/// Unread request body the driver discards to keep a connection alive; beyond
/// it the connection is closed instead.
const DRAIN_MAX: u64 = 256 * 1024;
/// After answering an error, unread input is discarded for at most this long
/// (and this much) before closing, so the client sees the answer instead of a reset.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// What ended an idle wait.
enum IdleWake {
    /// Bytes arrived (true) or the peer closed or failed (false).
    Read(bool),
    Timer,
    /// Shutdown began, or idle connections were asked to make room.
    Signal,
}

enum Next {
    /// The request buffer is empty; wait for the next request.
    Idle,
    /// Close the connection (`linger`: discard unread input first).
    Close { linger: bool },
    /// Hand the connection to a protocol-switch handler.
    Upgrade(UpgradeFnBox),
    /// The client sent the HTTP/2 preface: serve HTTP/2 from here on.
    H2(Arc<H2Limits>),
}

struct Conn<T> {
    io: T,
    rbuf: BytesMut,
    wbuf: BytesMut,
    peer: Option<SocketAddr>,
    /// The peer as the access log shows it, formatted once per connection.
    peer_text: Box<str>,
    /// When the last response was done: the start of the idle period.
    last_active: Instant,
    limits: Arc<Limits>,
    /// The transport is TLS.
    tls: bool,
    /// Header lines added to every response (`Strict-Transport-Security`
    /// over TLS); empty for plain connections.
    extra_headers: Bytes,
    /// HTTP/2 is served when the connection starts with its preface (over
    /// TLS, when ALPN chose `h2`): set until the first request has been read.
    h2: Option<Arc<H2Limits>>,
}

/// Serves HTTP/1.1 on one connection until the client closes it, it idles past
/// [`Limits::keep_alive_timeout`], framing becomes uncertain, or `shutdown` fires
/// (then the request in progress is finished first).
///
/// ```
/// use std::sync::Arc;
/// use http_core::{serve_connection, Limits, Request, Response, Service, ShutdownSignal};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// struct Hello;
/// impl Service for Hello {
///     async fn call(&self, _req: Request<'_>) -> Response {
///         Response::text(200, "hello\n")
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let (mut client, server) = tokio::io::duplex(4096);
/// tokio::spawn(serve_connection(server, None, Arc::new(Hello), Arc::new(Limits::default()), ShutdownSignal::never()));
/// client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
/// let mut out = String::new();
/// client.read_to_string(&mut out).await.unwrap();
/// assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(out.ends_with("\r\n\r\nhello\n"));
/// # });
/// ```
pub fn serve_connection<T: Io, S: Service>(
    io: T,
    peer: Option<SocketAddr>,
    service: Arc<S>,
    limits: Arc<Limits>,
    shutdown: ShutdownSignal,
) -> impl Future<Output = ()> + Send {
    drive(io, peer, service, limits, shutdown, None, None)
}

/// [`serve_connection`] with the header lines to add to every response over
/// TLS (`hsts`: the `Strict-Transport-Security` line; ignored for a plain
/// transport), switching to HTTP/2 when `h2` is set and the connection starts
/// with the HTTP/2 preface (over TLS, only when ALPN chose `h2`).
pub(crate) async fn drive<T: Io, S: Service>(
    io: T,
    peer: Option<SocketAddr>,
    service: Arc<S>,
    limits: Arc<Limits>,
    shutdown: ShutdownSignal,
    hsts: Option<Bytes>,
    h2: Option<Arc<H2Limits>>,
) {
    let tls = io.is_tls();
    let extra_headers = match hsts {
        Some(h) if tls => h,
        _ => Bytes::new(),
    };
    let peer_text = match peer {
        Some(p) if tracing::enabled!(target: "access", tracing::Level::INFO) => p.to_string().into(),
        _ => "-".into(),
    };
    let mut conn = Conn {
        io,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        peer,
        peer_text,
        limits,
        last_active: Instant::now(),
        tls,
        extra_headers,
        h2,
    };
    // One idle timer and one shutdown wait for the connection's whole life: arming
    // and disarming them around every request cost more than parsing it. The timer
    // fires at most once per keep-alive period and is moved on if the connection
    // was busy meanwhile.
    let idle_timer = tokio::time::sleep(conn.limits.keep_alive_timeout);
    tokio::pin!(idle_timer);
    let signalled = shutdown.clone().next_change();
    tokio::pin!(signalled);
    let next = loop {
        if conn.rbuf.is_empty() {
            // Idle: hold no buffers while waiting for the next request.
            pool::give(std::mem::take(&mut conn.rbuf));
            pool::give(std::mem::take(&mut conn.wbuf));
            if shutdown.is_triggered() {
                break Next::Close { linger: false };
            }
            let idle = loop {
                let wake = tokio::select! {
                    biased;
                    r = read_idle(&mut conn.io, &mut conn.rbuf) => IdleWake::Read(matches!(r, Ok(n) if n > 0)),
                    () = &mut idle_timer => IdleWake::Timer,
                    () = &mut signalled => IdleWake::Signal,
                };
                match wake {
                    IdleWake::Read(got) => break got,
                    IdleWake::Timer => {
                        let deadline = conn.last_active + conn.limits.keep_alive_timeout;
                        if Instant::now() >= deadline {
                            break false;
                        }
                        idle_timer.as_mut().reset(deadline.into());
                    }
                    IdleWake::Signal => {
                        let reaped = shutdown
                            .reap_idle_before()
                            .is_some_and(|before| conn.last_active <= before);
                        if !shutdown.is_triggered() && !reaped {
                            // Room was asked of connections idle longer than this one.
                            signalled.set(shutdown.clone().next_change());
                            continue;
                        }
                        // A request may have arrived just as the signal came: answer
                        // it rather than drop it unread.
                        let got = poll_once(std::pin::pin!(read_idle(&mut conn.io, &mut conn.rbuf))).await;
                        if matches!(got, Poll::Ready(Ok(n)) if n > 0) {
                            if !shutdown.is_triggered() {
                                signalled.set(shutdown.clone().next_change());
                            }
                            break true;
                        }
                        break false;
                    }
                }
            };
            if !idle {
                break Next::Close { linger: false };
            }
        }
        // The busy part is boxed so that an idle connection's task stays small.
        match Box::pin(conn.serve_buffered(&service, &shutdown)).await {
            Next::Idle => {}
            other => break other,
        }
    };
    match next {
        Next::Upgrade(handler) => {
            let leftover = conn.rbuf.split().freeze();
            pool::give(std::mem::take(&mut conn.wbuf));
            handler(Upgraded::new(Box::new(conn.io), leftover)).await;
        }
        // Boxed like the busy part: its buffers must not enlarge every idle task.
        Next::Close { linger } => Box::pin(conn.close(linger)).await,
        Next::H2(h2) => {
            let read = conn.rbuf.split().freeze();
            pool::give(std::mem::take(&mut conn.wbuf));
            let h2 = crate::h2::conn_serve(
                conn.io,
                read,
                peer,
                service,
                conn.limits,
                *h2,
                conn.extra_headers,
                shutdown,
            );
            Box::pin(h2).await
        }
        Next::Idle => {}
    }
}

/// Polls `fut` once: its output if it is ready at once, `Pending` if it would wait.
async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Reads the first bytes of a request through a stack buffer, so the connection
/// takes a pooled buffer only once data has arrived.
async fn read_idle<T: AsyncRead + Unpin>(io: &mut T, rbuf: &mut BytesMut) -> io::Result<usize> {
    poll_fn(|cx| {
        // Left uninitialised: zeroing it on every wakeup cost a 2 KiB memset.
        let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
        let mut rb = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n > 0 {
            if rbuf.capacity() == 0 {
                *rbuf = pool::take();
            }
            rbuf.extend_from_slice(rb.filled());
        }
        Poll::Ready(Ok(n))
    })
    .await
}

impl<T: Io> Conn<T> {
    /// HTTP/2 may be spoken: always on a plain connection (prior knowledge),
    /// over TLS only if ALPN chose it (RFC 9113 §3.3).
    fn h2_allowed(&self) -> bool {
        !self.tls || self.io.alpn_protocol() == Some(b"h2")
    }

    /// Serves every request whose bytes are buffered or arrive within the header
    /// timeout, buffering responses and flushing when no complete request remains.
    async fn serve_buffered<S: Service>(&mut self, service: &Arc<S>, shutdown: &ShutdownSignal) -> Next {
        // Taken only when a head is found incomplete: most heads arrive whole.
        let mut head_started: Option<Instant> = None;
        loop {
            let parsed = match parse_request(&self.rbuf, &self.limits) {
                Ok(p) => p,
                // The preface reads as a request line of version 2.0: an error.
                Err(_)
                    if self.h2.is_some()
                        && self.rbuf.len() < PREFACE.len()
                        && PREFACE.starts_with(&self.rbuf) =>
                {
                    None
                }
                Err(_) if self.h2.is_some() && self.rbuf.starts_with(PREFACE) && self.h2_allowed() => {
                    if let Some(h2) = self.h2.take() {
                        return Next::H2(h2);
                    }
                    continue;
                }
                Err(e) => {
                    let since = head_started.unwrap_or_else(Instant::now);
                    return Box::pin(self.fail(e, None, since, &**service)).await;
                }
            };
            let Some(parsed) = parsed else {
                if !self.wbuf.is_empty() && self.flush().await.is_err() {
                    return Next::Close { linger: false };
                }
                if self.rbuf.is_empty() {
                    return Next::Idle;
                }
                let started = *head_started.get_or_insert_with(Instant::now);
                let left = self.limits.header_timeout.saturating_sub(started.elapsed());
                match Box::pin(tokio::time::timeout(left, self.read_head_more())).await {
                    Ok(Ok(n)) if n > 0 => continue,
                    Ok(_) => return Next::Close { linger: false },
                    Err(_) => {
                        let refused = self.fail(Error::HeaderTimeout, None, started, &**service);
                        return Box::pin(refused).await;
                    }
                }
            };
            if self.h2.is_some() {
                // Only a connection's first bytes can be the preface.
                self.h2 = None;
            }
            let len = parsed.len();
            let head = parsed.into_head(self.rbuf.split_to(len).freeze());
            match self.serve_one(head, service, shutdown).await {
                Next::Idle => {}
                other => return other,
            }
            // Pipelined requests are answered no faster than the client reads:
            // past the high-water mark the output is written (and waited for)
            // before the next request is taken.
            if self.wbuf.len() >= OUTPUT_HIGH_WATER && self.flush().await.is_err() {
                return Next::Close { linger: false };
            }
        }
    }

    /// Serves one request whose head has been read.
    async fn serve_one<S: Service>(
        &mut self,
        head: RequestHead,
        service: &Arc<S>,
        shutdown: &ShutdownSignal,
    ) -> Next {
        let started = Instant::now();
        let mut progress = BodyProgress::new(head.body(), head.expects_continue(), &self.limits);
        // When the response is dated: most services answer on their first poll,
        // at `started`; one that waited (a proxied request) is dated when it answered.
        let mut answered = started;
        let response = {
            let req = Request {
                head: &head,
                body: RequestBody::new(&mut self.io, &mut self.rbuf, &mut progress),
                peer: self.peer,
                tls: self.tls,
                received: started,
            };
            // Polled through a closure that notes a wait: an `await` on the pinned
            // call after a first poll would store the call's future twice over.
            let mut call = std::pin::pin!(service.call(req));
            let mut waited = false;
            let response = poll_fn(|cx| {
                let p = call.as_mut().poll(cx);
                waited |= p.is_pending();
                p
            })
            .await;
            if waited {
                answered = Instant::now();
            }
            response
        };
        if let Some(e) = progress.error {
            // The body was malformed: whatever the service made of it is void.
            drop(response);
            return Box::pin(self.fail(e, Some(&head), started, &**service)).await;
        }
        if progress.broken {
            return Next::Close { linger: false };
        }
        let mut resp = response;
        let mut close = resp.close || !head.keep_alive() || shutdown.is_triggered();
        // A body the service did not read must be discarded before the next request.
        let mut drain = false;
        if !progress.is_done() {
            if progress.continue_pending {
                // The client is waiting for our go-ahead and may or may not send the body.
                close = true;
            } else if progress.remaining_len().is_some_and(|n| n <= DRAIN_MAX) || progress.is_chunked() {
                drain = true;
            } else {
                close = true;
            }
        }
        let upgrade = if resp.status == 101 {
            resp.upgrade.take()
        } else {
            None
        };
        let version = head.version();
        let written = self
            .write_response(
                &mut resp,
                Answering {
                    method: head.method(),
                    version,
                    upgrade: upgrade.is_some(),
                    dated: answered,
                },
                &mut close,
            )
            .await;
        let done = Instant::now();
        self.last_active = done;
        let record = AccessRecord {
            peer: self.peer,
            head: Some(&head),
            status: resp.status,
            bytes: written.as_ref().ok().copied(),
            elapsed: done.saturating_duration_since(started),
            fields: &resp.log,
            refused: None,
        };
        access_log::log_request(&self.peer_text, &record);
        service.on_response(&record);
        if written.is_err() {
            return Next::Close { linger: false };
        }
        if let Some(handler) = upgrade {
            if self.flush().await.is_err() {
                return Next::Close { linger: false };
            }
            return Next::Upgrade(handler);
        }
        if drain && !close && !Box::pin(self.drain_body(&mut progress)).await {
            close = true;
        }
        if close {
            return Next::Close {
                linger: !progress.is_done(),
            };
        }
        Next::Idle
    }

    /// Writes one response into the write buffer (streamed bodies are flushed as
    /// they go). Returns the number of body bytes sent.
    async fn write_response(
        &mut self,
        resp: &mut Response,
        to: Answering,
        close: &mut bool,
    ) -> io::Result<u64> {
        if self.wbuf.capacity() == 0 {
            self.wbuf = pool::take();
        }
        match encode(&mut self.wbuf, resp, to, &self.extra_headers, close) {
            Payload::Written(n) => Ok(n),
            Payload::Large(b) => {
                Box::pin(async {
                    self.flush().await?;
                    self.write_all(&b).await
                })
                .await?;
                Ok(b.len() as u64)
            }
            // Streaming is the rare path: boxed so the common path's future stays small.
            Payload::Stream { reader, len, chunked } => {
                Box::pin(self.write_stream(reader, len, chunked)).await
            }
        }
    }

    async fn write_stream(
        &mut self,
        mut reader: Box<dyn AsyncRead + Send + Unpin>,
        len: Option<u64>,
        chunked: bool,
    ) -> io::Result<u64> {
        // The same encoder the client role frames request bodies with.
        let mut enc = BodyEncoder::new(match (chunked, len) {
            (true, _) => BodyKind::Chunked,
            (false, Some(n)) => BodyKind::Length(n),
            (false, None) => BodyKind::UntilClose,
        });
        let framing_error = |e: Error| io::Error::new(io::ErrorKind::UnexpectedEof, e);
        let mut chunk = if chunked { vec![0u8; 16 * 1024] } else { Vec::new() };
        loop {
            if len.is_some_and(|n| enc.sent() == n) {
                return Ok(enc.sent());
            }
            // When the source has nothing more at once, what is buffered is sent
            // before waiting: an event stream, a long poll or a page rendered
            // progressively must not stall behind a half-full buffer.
            let got = if chunked {
                let ready = poll_once(std::pin::pin!(reader.read(&mut chunk))).await;
                let got = match ready {
                    Poll::Ready(r) => r?,
                    Poll::Pending => {
                        self.flush().await?;
                        reader.read(&mut chunk).await?
                    }
                };
                enc.encode(&chunk[..got], &mut self.wbuf).map_err(framing_error)?;
                got
            } else {
                // Read straight into the write buffer: no framing to add.
                let want = len.map_or(16 * 1024, |n| (n - enc.sent()).min(16 * 1024) as usize);
                self.wbuf.reserve(want);
                let ready = poll_once(std::pin::pin!((&mut reader)
                    .take(want as u64)
                    .read_buf(&mut self.wbuf)))
                .await;
                let got = match ready {
                    Poll::Ready(r) => r?,
                    Poll::Pending => {
                        self.flush().await?;
                        self.wbuf.reserve(want);
                        (&mut reader).take(want as u64).read_buf(&mut self.wbuf).await?
                    }
                };
                enc.count(got).map_err(framing_error)?;
                got
            };
            if got == 0 {
                // A source that ended before its declared length cannot be
                // reported to the client in-band: the connection is aborted.
                enc.finish(&mut self.wbuf)
                    .map_err(|_| io::Error::new(io::ErrorKind::UnexpectedEof, "response body ended early"))?;
                return Ok(enc.sent());
            }
            if self.wbuf.len() >= STREAM_FLUSH_AT {
                self.flush().await?;
            }
        }
    }

    /// Discards the unread rest of a request body. False if that is not possible
    /// (too large, malformed, slow), in which case the connection must close.
    async fn drain_body(&mut self, progress: &mut BodyProgress) -> bool {
        let mut body = RequestBody::new(&mut self.io, &mut self.rbuf, progress);
        let mut discarded: u64 = 0;
        loop {
            match body.data().await {
                Ok(Some(d)) => {
                    discarded += d.len() as u64;
                    if discarded > DRAIN_MAX {
                        return false;
                    }
                }
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Answers a protocol error with its status and closes. `head` is the
    /// request's when one was read (a body error); `since` is when the request
    /// began arriving, as far as the driver knows.
    async fn fail<S: Service>(
        &mut self,
        e: Error,
        head: Option<&RequestHead>,
        since: Instant,
        service: &S,
    ) -> Next {
        tracing::debug!(peer = %ShowPeer(self.peer), error = %e, "refusing request");
        let mut resp = Response::text(e.status(), Bytes::from(format!("{e}\n")));
        let mut close = true;
        // Left in the write buffer: `close` sends it together with the FIN.
        let written = self
            .write_response(
                &mut resp,
                Answering {
                    method: Method::Get,
                    version: Version::Http11,
                    upgrade: false,
                    dated: Instant::now(),
                },
                &mut close,
            )
            .await;
        let record = AccessRecord {
            peer: self.peer,
            head,
            status: resp.status,
            bytes: written.ok(),
            elapsed: since.elapsed(),
            fields: &[],
            refused: Some(e),
        };
        // Rate-limited: see `access_log::REFUSED_LINES_PER_SECOND`.
        access_log::log_request(&self.peer_text, &record);
        service.on_response(&record);
        Next::Close { linger: true }
    }

    /// Reads more of a head that has not arrived whole. When nothing is waiting,
    /// the partial head is first moved into an allocation of its own size and the
    /// pooled buffer given back: a client sending a byte a second then holds a
    /// few bytes while it waits, not a read buffer.
    async fn read_head_more(&mut self) -> io::Result<usize> {
        if let Poll::Ready(r) = poll_once(std::pin::pin!(read_idle(&mut self.io, &mut self.rbuf))).await {
            return r;
        }
        if self.rbuf.capacity() > self.rbuf.len() + 256 {
            let compact = BytesMut::from(&self.rbuf[..]);
            pool::give(std::mem::replace(&mut self.rbuf, compact));
        }
        read_idle(&mut self.io, &mut self.rbuf).await
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match tokio::time::timeout(self.limits.write_timeout, self.io.write_all(data)).await {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Writes out the write buffer within the write timeout. The buffer is
    /// emptied either way: on failure the connection is finished, and closing
    /// it must not wait for the same bytes a second time.
    async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let w = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        };
        let mut w = std::pin::pin!(w);
        // Most writes complete at once; a timer is armed only for one that waits.
        let r = match poll_once(w.as_mut()).await {
            Poll::Ready(r) => r,
            Poll::Pending => match Box::pin(tokio::time::timeout(self.limits.write_timeout, w)).await {
                Ok(r) => r,
                Err(_) => Err(io::ErrorKind::TimedOut.into()),
            },
        };
        self.wbuf.clear();
        r
    }

    /// Flushes, sends FIN, and (after an error) reads and discards what the
    /// client still sends for a moment, so the answer is not lost to a reset.
    async fn close(mut self, linger: bool) {
        // The last response and the end of the stream go together: over TCP, in
        // one segment.
        let _ = tokio::time::timeout(self.limits.write_timeout, self.io.finish(&self.wbuf)).await;
        // Given back before lingering: a burst of refused clients must not hold
        // two buffers each for the linger time.
        pool::give(std::mem::take(&mut self.rbuf));
        pool::give(std::mem::take(&mut self.wbuf));
        if linger {
            let mut discarded = 0;
            let mut sink = [0u8; 512];
            let drain = async {
                while discarded < LINGER_BYTES {
                    match self.io.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => discarded += n,
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER_TIME, drain).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ok200;
    impl Service for Ok200 {
        async fn call(&self, _r: Request<'_>) -> Response {
            Response::new(200)
        }
    }

    /// An idle keep-alive connection costs its task's future and little else, so
    /// the future must stay small: the busy and closing parts are boxed. This
    /// pins the memory figure of `bench.py idle-static` (under 2 KiB a connection).
    #[test]
    fn idle_connection_future_stays_small() {
        let (_a, b) = tokio::io::duplex(10);
        let f = serve_connection(
            b,
            None,
            Arc::new(Ok200),
            Arc::new(Limits::default()),
            ShutdownSignal::never(),
        );
        let size = std::mem::size_of_val(&f);
        assert!(size <= 1024, "idle connection future is {size} bytes");
    }
}
