//! What a service sees and answers: [`Request`], [`Response`], [`Body`], [`Upgraded`].

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::access_log::{AccessRecord, LogValue};
use super::body::RequestBody;
use crate::net::io::Io;
use crate::RequestHead;

/// Answers requests. The driver calls it once per request, in order, and writes
/// the responses it returns in the same order.
///
/// The driver owns the framing: it writes `Date`, `Content-Length` or
/// `Transfer-Encoding`, and `Connection` itself, and suppresses the body for `HEAD`,
/// 1xx, 204 and 304. A service answers `HEAD` as `GET`, or, where making the body
/// would cost something (opening a file, asking a backend), with
/// [`Body::Length`]: the length alone.
pub trait Service: Send + Sync + 'static {
    /// Answers one request. The request body, if any, is read through `req.body`.
    fn call(&self, req: Request<'_>) -> impl Future<Output = Response> + Send;

    /// Called once a response has been written (or failed to be), with what the
    /// access line says of it, and also for requests the driver refused itself
    /// (`record.refused`): where a service counts and times its responses.
    /// Default: nothing. It runs on the connection's task: keep it short.
    fn on_response(&self, record: &AccessRecord<'_>) {
        let _ = record;
    }
}

impl<S: Service> Service for Arc<S> {
    fn call(&self, req: Request<'_>) -> impl Future<Output = Response> + Send {
        (**self).call(req)
    }

    fn on_response(&self, record: &AccessRecord<'_>) {
        (**self).on_response(record)
    }
}

/// One request as handed to a [`Service`].
#[derive(Debug)]
pub struct Request<'a> {
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The body, read on demand from the connection.
    pub body: RequestBody<'a>,
    /// The client's address, when the transport has one.
    pub peer: Option<SocketAddr>,
    /// Whether the request came over TLS (an `https` request): what a proxy
    /// says in `X-Forwarded-Proto`.
    pub tls: bool,
    /// When the driver started on this request (its head had been read): a clock
    /// reading services may reuse instead of taking their own.
    pub received: Instant,
}

/// A response body.
pub enum Body {
    /// No body (`Content-Length: 0` where a body is allowed).
    Empty,
    /// A body held in memory.
    Full(Bytes),
    /// A length announced with no bytes behind it: `Content-Length: n` and no
    /// body. This is the answer to `HEAD`, which must announce the length a
    /// `GET` would get without sending it (for the bodiless statuses 1xx, 204
    /// and 304 the driver writes no `Content-Length` at all, as for any body).
    ///
    /// Only for `HEAD` requests and bodiless statuses: the driver cannot send
    /// the bytes the length promises, so for any other request it logs a
    /// warning and answers `500 Internal Server Error` in its stead (its own
    /// short text body, the service's headers dropped) and closes the
    /// connection.
    ///
    /// ```
    /// use http_core::{Body, Method, Request, Response};
    /// # fn file_len() -> u64 { 1918 }
    /// # fn read_file() -> Body { Body::Empty }
    /// fn answer(req: &Request<'_>) -> Response {
    ///     let body = if req.head.method() == Method::Head {
    ///         Body::Length(file_len())
    ///     } else {
    ///         read_file()
    ///     };
    ///     Response::new(200).body(body)
    /// }
    /// ```
    Length(u64),
    /// A body read from `reader`. With `len: Some(n)` exactly `n` bytes are sent
    /// (`Content-Length`); a reader that ends early aborts the connection. With
    /// `len: None` the body is chunked for HTTP/1.1 clients and close-delimited
    /// for HTTP/1.0 ones.
    Stream {
        /// The exact length, when known.
        len: Option<u64>,
        /// Where the bytes come from.
        reader: Box<dyn AsyncRead + Send + Unpin>,
    },
}

impl Body {
    /// The length the body declares, if known.
    pub fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Full(b) => Some(b.len() as u64),
            Body::Length(n) => Some(*n),
            Body::Stream { len, .. } => *len,
        }
    }

    /// True for a body known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Full(b) => write!(f, "Body::Full({} bytes)", b.len()),
            Body::Length(n) => write!(f, "Body::Length({n})"),
            Body::Stream { len, .. } => write!(f, "Body::Stream(len: {len:?})"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Full(b)
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::Full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::Full(Bytes::from(s))
    }
}

pub(crate) type UpgradeFnBox = Box<dyn FnOnce(Upgraded) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A response: status, headers, body.
///
/// ```
/// use http_core::{Body, Response};
/// let r = Response::new(200)
///     .header("Content-Type", "text/plain")
///     .body("hello");
/// assert_eq!(r.status(), 200);
/// assert_eq!(r.body_ref().len(), Some(5));
/// ```
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, Bytes)>,
    pub(crate) block: HeaderBlock,
    pub(crate) body: Body,
    pub(crate) close: bool,
    pub(crate) upgrade: Option<UpgradeFnBox>,
    pub(crate) log: Vec<(&'static str, LogValue)>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("block", &self.block)
            .field("body", &self.body)
            .field("close", &self.close)
            .field("upgrade", &self.upgrade.is_some())
            .finish()
    }
}

/// Header names the driver writes itself; a service's copies are dropped.
pub(crate) fn is_framing_header(name: impl AsRef<[u8]>) -> bool {
    let name = name.as_ref();
    name.eq_ignore_ascii_case(b"content-length")
        || name.eq_ignore_ascii_case(b"transfer-encoding")
        || name.eq_ignore_ascii_case(b"connection")
        || name.eq_ignore_ascii_case(b"date")
}

/// A header value a response may carry: no CR, LF or NUL (response splitting).
fn valid_value(v: &[u8]) -> bool {
    // A fold without early exit vectorises; `any` went byte by byte, and memchr3
    // costs more to set up than these short values take to scan.
    !v.iter()
        .fold(false, |bad, &b| bad | (b == b'\r') | (b == b'\n') | (b == 0))
}

fn valid_name(n: impl AsRef<[u8]>) -> bool {
    let n = n.as_ref();
    !n.is_empty() && n.iter().copied().all(crate::wire::framing::is_tchar)
}

impl Response {
    /// An empty response with `status` (100–999).
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            block: HeaderBlock::default(),
            body: Body::Empty,
            close: false,
            upgrade: None,
            log: Vec::new(),
        }
    }

    /// A `text/plain` response: the form every error answer takes.
    ///
    /// ```
    /// let r = http_core::Response::text(404, "not found\n");
    /// assert_eq!(r.status(), 404);
    /// ```
    pub fn text(status: u16, text: impl Into<Body>) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(text)
    }

    /// Adds a header with a static name. Values holding CR, LF or NUL, invalid names,
    /// and the framing headers the driver writes itself (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`, `Date`) are dropped.
    pub fn header(mut self, name: &'static str, value: impl Into<Bytes>) -> Self {
        self.push_header(name, value);
        self
    }

    /// Adds a header in place; see [`header`](Self::header). Returns false when dropped.
    pub fn push_header(&mut self, name: &'static str, value: impl Into<Bytes>) -> bool {
        let value = value.into();
        if !valid_name(name) || !valid_value(&value) || is_framing_header(name) {
            tracing::warn!(name, "response header dropped");
            return false;
        }
        self.headers.push((name, value));
        true
    }

    /// Adds a block of pre-serialized header lines, written before the headers
    /// added one by one. Build it once and reuse it for many responses (a cached
    /// file's headers), or build one per response when names are only known at
    /// run time (headers a proxy forwards).
    pub fn header_block(mut self, block: HeaderBlock) -> Self {
        self.block = block;
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// Replaces the body in place.
    pub fn set_body(&mut self, body: Body) {
        self.body = body;
    }

    /// Asks the driver to close the connection after this response.
    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    /// Makes this a protocol switch: the driver writes the head (status should be
    /// 101), then hands the raw connection to `f` and serves no more requests on it.
    pub fn on_upgrade<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce(Upgraded) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.upgrade = Some(Box::new(move |u| Box::pin(f(u))));
        self
    }

    /// Adds `key=value` to the driver's access-log line for this request.
    pub fn log_field(mut self, key: &'static str, value: LogValue) -> Self {
        if self.log.capacity() == 0 {
            // Callers usually add a few (a proxy: backend, upstream time, retries).
            self.log.reserve_exact(3);
        }
        self.log.push((key, value));
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers added one by one, in order (the header block is not included).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (*n, &v[..]))
    }

    /// The header block.
    pub fn block(&self) -> &HeaderBlock {
        &self.block
    }

    /// The body.
    pub fn body_ref(&self) -> &Body {
        &self.body
    }
}

/// Header lines serialized once (`Name: value\r\n` each), checked as they were added.
///
/// ```
/// use http_core::{HeaderBlock, Response};
/// let mut b = HeaderBlock::builder();
/// b.push("Content-Type", b"text/html");
/// assert!(!b.push("X-Bad", b"a\r\nInjected: 1"));
/// assert!(!b.push("Content-Length", b"5")); // the driver writes framing itself
/// let block = b.build();
/// assert_eq!(block.as_bytes(), b"Content-Type: text/html\r\n");
/// let r = Response::new(200).header_block(block.clone());
/// assert_eq!(r.block(), &block);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock(Bytes);

/// Builds a [`HeaderBlock`].
#[derive(Debug, Default)]
pub struct HeaderBlockBuilder(bytes::BytesMut);

impl HeaderBlock {
    /// An empty builder.
    pub fn builder() -> HeaderBlockBuilder {
        HeaderBlockBuilder::default()
    }

    /// An empty builder with room for `bytes` of header lines (a block copied
    /// from a parsed head needs about that head's size), so that it does not
    /// grow by reallocation as lines are pushed.
    pub fn builder_with_capacity(bytes: usize) -> HeaderBlockBuilder {
        HeaderBlockBuilder(bytes::BytesMut::with_capacity(bytes))
    }

    /// The serialized lines.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl HeaderBlockBuilder {
    /// Appends one header line. Refuses (and returns false for) an invalid name, a
    /// value holding CR, LF or NUL, and the headers the driver writes itself.
    pub fn push(&mut self, name: impl AsRef<[u8]>, value: &[u8]) -> bool {
        let name = name.as_ref();
        if !valid_name(name) || !valid_value(value) || is_framing_header(name) {
            tracing::debug!(name = %String::from_utf8_lossy(name), "header not added to block");
            return false;
        }
        self.put(name, value);
        true
    }

    /// Appends the lines of a parsed head (`head.headers()`) for which `keep`
    /// holds, leaving out the framing headers the driver writes itself. The
    /// parser checked every name and value already, so they are copied without
    /// being checked again: a proxy passing a response on spends much of its
    /// header work here.
    ///
    /// ```
    /// use http_core::{parse_response, HeaderBlock, Limits, Method};
    /// let raw = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\nX-B: 2\r\n\r\n";
    /// let p = parse_response(raw, Method::Get, &Limits::default()).unwrap().unwrap();
    /// let head = p.into_head(bytes::Bytes::from_static(raw));
    /// let mut b = HeaderBlock::builder();
    /// b.extend_from_parsed(head.headers(), |name, _| name != b"X-B");
    /// assert_eq!(b.build().as_bytes(), b"X-A: 1\r\n");
    /// ```
    pub fn extend_from_parsed(
        &mut self,
        lines: crate::HeaderIter<'_>,
        mut keep: impl FnMut(&[u8], &[u8]) -> bool,
    ) {
        for (name, value) in lines.raw() {
            if !is_framing_header(name) && keep(name, value) {
                self.put(name, value);
            }
        }
    }

    fn put(&mut self, name: &[u8], value: &[u8]) {
        let out = &mut self.0;
        out.reserve(name.len() + value.len() + 4);
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }

    /// True when no line was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The finished block.
    pub fn build(self) -> HeaderBlock {
        HeaderBlock(self.0.freeze())
    }
}

/// The raw connection after a protocol switch, with any bytes the client sent
/// after the upgrade request that were already read.
pub struct Upgraded {
    io: Box<dyn Io>,
    read_buf: Bytes,
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("buffered", &self.read_buf.len())
            .finish()
    }
}

impl Upgraded {
    pub(crate) fn new(io: Box<dyn Io>, read_buf: Bytes) -> Self {
        Upgraded { io, read_buf }
    }

    /// The connection and the bytes already read from it.
    pub fn into_parts(self) -> (Box<dyn Io>, Bytes) {
        (self.io, self.read_buf)
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read_buf.is_empty() {
            let n = self.read_buf.len().min(buf.remaining());
            buf.put_slice(&self.read_buf[..n]);
            self.read_buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Io for Upgraded {
    fn poll_finish(mut self: Pin<&mut Self>, cx: &mut Context<'_>, last: &mut &[u8]) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_finish(cx, last)
    }

    fn is_tls(&self) -> bool {
        self.io.is_tls()
    }

    fn alpn_protocol(&self) -> Option<&[u8]> {
        self.io.alpn_protocol()
    }
}
