//! HTTP mode: the [`Service`] that forwards each request to a backend and streams
//! the answer back.
//!
//! The client side is `http_core`'s driver; this module is the client of the
//! backends: it writes the request head itself, re-frames the body, reads the
//! response head with [`parse_response`], and hands the driver a body reader that
//! de-frames the backend's body and returns the connection to the pool when the
//! body ended cleanly.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http_core::{
    is_hop_by_hop, parse_content_length, parse_response, BodyError, BodyKind, ChunkedDecoder, ChunkedEncoder,
    HeaderBlock, Limits, LogValue, Method, Request, RequestBody, RequestHead, Response, ResponseHead,
    Service, Version,
};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::backend::{Backend, InFlight};
use crate::proxy::Shared;

/// Request body read from the client before a backend is chosen: a small body is
/// then known to be well framed before anything is forwarded, and can be sent
/// again if the first backend turns out to be down.
const PREFETCH_MAX: usize = 64 * 1024;
/// Read buffer of an upstream exchange: room for a usual response head and a
/// small body. Kept small so that a burst of requests leaves little memory behind.
const UPSTREAM_BUF: usize = 4 * 1024;
/// The buffer a large response body is read through.
const BODY_BUF: usize = 32 * 1024;
/// Request bodies are written to the backend in pieces of at most this size.
const WRITE_PIECE: usize = 64 * 1024;
/// How long to look for an early answer after a backend stopped taking a request body.
const EARLY_ANSWER_WAIT: Duration = Duration::from_secs(1);
/// Header lines forwarding can add to a request: `X-Forwarded-For`,
/// `X-Forwarded-Proto`, `Via`, and `X-Forwarded-Host` or (without one) `Host`.
/// The framing and upgrade lines only replace the client's.
const ADDED_LINES: usize = 4;
/// More than forwarding can add to a head besides a copy of the host: the four
/// lines above with the client's address and our `Via` entry, and a longest
/// backend address as `Host`.
const ADDED_BYTES: usize = 256;
/// Stands for the backend's address (the `Host` of a request that had none) when
/// a head is sized before a backend is chosen: as long as any address can be.
const LONGEST_ADDR: &[u8] = b"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
/// The `Via` entry this proxy adds (it names the protocol the request came in with).
const VIA: &[u8] = b"1.1 rr-proxy";
const VIA_10: &[u8] = b"1.0 rr-proxy";

/// The HTTP-mode service run by `http_core::Server`.
pub(crate) struct ProxyService {
    shared: Arc<Shared>,
    /// Limits for decoding backend bodies: sizes as configured, but no cap on the
    /// total body length (a download is not bounded by the upload limit).
    response_limits: Limits,
}

impl ProxyService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let response_limits = Limits {
            max_body_len: u64::MAX,
            ..shared.config.limits.clone()
        };
        ProxyService {
            shared,
            response_limits,
        }
    }
}

impl Service for ProxyService {
    async fn call(&self, req: Request<'_>) -> Response {
        self.forward(req).await
    }
}

/// Why an exchange with a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No backend is eligible.
    NoBackend,
    /// Connecting was refused or failed.
    Connect,
    /// Connecting took too long.
    ConnectTimeout,
    /// The backend did not accept request bytes in time.
    WriteTimeout,
    /// Writing the request failed after some of it was sent.
    Write,
    /// No response head in time.
    ResponseTimeout,
    /// The connection closed before a complete response head.
    Closed,
    /// The response head is malformed.
    BadResponse,
}

impl Failure {
    fn response(self, shared: &Shared) -> Response {
        let c = &shared.counters;
        match self {
            Failure::NoBackend => {
                c.no_backend.fetch_add(1, Ordering::Relaxed);
                let mut b = itoa::Buffer::new();
                Response::text(503, "no backend available\n").header(
                    "Retry-After",
                    Bytes::copy_from_slice(b.format(shared.config.retry_after).as_bytes()),
                )
            }
            Failure::ConnectTimeout | Failure::WriteTimeout | Failure::ResponseTimeout => {
                c.gateway_timeout.fetch_add(1, Ordering::Relaxed);
                Response::text(504, "backend timed out\n")
            }
            Failure::Connect => {
                c.bad_gateway.fetch_add(1, Ordering::Relaxed);
                Response::text(502, "backend refused the connection\n")
            }
            Failure::Write | Failure::Closed => {
                c.bad_gateway.fetch_add(1, Ordering::Relaxed);
                Response::text(502, "backend closed the connection\n")
            }
            Failure::BadResponse => {
                c.bad_gateway.fetch_add(1, Ordering::Relaxed);
                Response::text(502, "backend sent a malformed response\n")
            }
        }
    }
}

/// What one attempt on one connection came to.
enum Attempt {
    /// The response for the client.
    Done(Response),
    /// A pooled connection turned out dead before the request could matter: try
    /// again on the same backend with another connection.
    Stale,
    /// The backend failed without seeing the request (or seeing it harmlessly):
    /// try the next backend.
    Next(Failure),
    /// Give up with this failure.
    Fail(Failure),
    /// The client's body broke; the driver answers (or closes) itself.
    ClientGone(Response),
}

/// The start of the request body, read before choosing a backend.
struct Prefetch {
    pieces: Vec<Bytes>,
    len: usize,
    /// The whole body is in `pieces`.
    complete: bool,
}

/// Backend ids already tried for a request (a few inline; no allocation).
#[derive(Default)]
struct Tried {
    inline: [u64; 4],
    n: usize,
    more: Vec<u64>,
}

impl Tried {
    fn push(&mut self, id: u64) {
        if self.n < self.inline.len() {
            self.inline[self.n] = id;
            self.n += 1;
        } else {
            self.more.push(id);
        }
    }

    fn contains(&self, id: u64) -> bool {
        self.inline[..self.n].contains(&id) || self.more.contains(&id)
    }
}

impl ProxyService {
    async fn forward(&self, mut req: Request<'_>) -> Response {
        let shared = &*self.shared;
        shared.counters.requests.fetch_add(1, Ordering::Relaxed);
        let head = req.head;
        if head.method() == Method::Connect {
            // A reverse proxy opens no tunnels on a client's say-so.
            return Response::text(501, "CONNECT is not supported by this proxy\n");
        }
        if !fits_limits(head, req.peer, &shared.config.limits) {
            // The backend would refuse it: answer as it would, before it is
            // contacted and before a body is invited.
            return Response::text(431, "request header fields too large once forwarded\n").close();
        }

        if head.body() != BodyKind::Empty && shared.eligible().is_empty() {
            // Answer before reading (or inviting, with `100 Continue`) a body.
            return Failure::NoBackend.response(shared);
        }
        let pre = match prefetch(&mut req.body, head.body()).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        let replayable = pre.complete;

        let mut tried = Tried::default();
        let mut last = Failure::NoBackend;
        for attempt in 0..shared.config.max_attempts {
            let Some(backend) = shared.pick(|id| tried.contains(id)) else {
                break;
            };
            if attempt > 0 {
                shared.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            tried.push(backend.id());
            let guard = backend.start();
            loop {
                let (stream, reused) = match backend.take_idle(shared.config.pool.idle_timeout) {
                    Some(s) => (s, true),
                    None => match connect(&backend, shared.config.timeouts.connect).await {
                        Ok(s) => (s, false),
                        Err(f) => {
                            shared.failure(&backend);
                            last = f;
                            break;
                        }
                    },
                };
                let up = Upstream::new(stream);
                if reused {
                    backend.count_reuse();
                }
                match self
                    .attempt(&mut req, &pre, replayable, up, reused, &backend, &guard)
                    .await
                {
                    Attempt::Done(r) => {
                        drop(guard);
                        return r;
                    }
                    Attempt::ClientGone(r) => return r,
                    Attempt::Stale => {
                        shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Attempt::Next(f) => {
                        last = f;
                        break;
                    }
                    Attempt::Fail(f) => {
                        return after_upgrade(head, f.response(shared).log_field("backend", label(&backend)))
                    }
                }
            }
        }
        after_upgrade(head, last.response(shared))
    }

    /// Sends the request on `up` and reads the response head.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        req: &mut Request<'_>,
        pre: &Prefetch,
        replayable: bool,
        mut up: Upstream,
        reused: bool,
        backend: &Arc<Backend>,
        guard: &InFlight,
    ) -> Attempt {
        let shared = &*self.shared;
        let head = req.head;
        let method = head.method();
        let upgrade = upgrade_passed_on(head);
        let started = Instant::now();
        backend.count_request();

        // ---- send ----
        let mut written: u64 = 0;
        let out = request_head(
            head,
            req.peer,
            backend.label().as_bytes(),
            pre.len.min(WRITE_PIECE),
        );
        let sent = send_request(
            &mut up.stream,
            out,
            pre,
            &mut req.body,
            head.body(),
            shared,
            &mut written,
        )
        .await;
        let mut early = None;
        match sent {
            Ok(body_bytes) => backend.add_sent(body_bytes),
            Err(SendError::Client(e)) => {
                // The driver answers a malformed body itself, or closes a broken client.
                return Attempt::ClientGone(Response::text(400, format!("{e}\n")).close());
            }
            Err(SendError::Upstream(timed_out)) => {
                if written == 0 {
                    // Nothing reached the backend: safe to send anywhere, any method.
                    if reused {
                        return Attempt::Stale;
                    }
                    shared.failure(backend);
                    return Attempt::Next(Failure::Write);
                }
                // The backend stopped taking the request; it may have answered
                // early (413, 401, ...): that answer is the one to pass on.
                match read_head(&mut up, method, &shared.config.limits, EARLY_ANSWER_WAIT).await {
                    Ok(h) => early = Some(h),
                    Err(_) => {
                        shared.failure(backend);
                        if method.is_idempotent() && replayable {
                            return Attempt::Next(Failure::Write);
                        }
                        return Attempt::Fail(if timed_out {
                            Failure::WriteTimeout
                        } else {
                            Failure::Write
                        });
                    }
                }
            }
        }
        let answered_early = early.is_some();

        // ---- response head ----
        let rhead = match early {
            Some(h) => h,
            None => match read_head(
                &mut up,
                method,
                &shared.config.limits,
                shared.config.timeouts.response,
            )
            .await
            {
                Ok(h) => h,
                Err(HeadError::Timeout) => {
                    shared.failure(backend);
                    return Attempt::Fail(Failure::ResponseTimeout);
                }
                Err(HeadError::Closed { any_bytes: false }) => {
                    let retry_ok = method.is_idempotent() && replayable;
                    if reused {
                        // The backend closed an idle connection just as it was reused.
                        return if retry_ok {
                            Attempt::Stale
                        } else {
                            Attempt::Fail(Failure::Closed)
                        };
                    }
                    shared.failure(backend);
                    return if retry_ok {
                        Attempt::Next(Failure::Closed)
                    } else {
                        Attempt::Fail(Failure::Closed)
                    };
                }
                Err(HeadError::Closed { any_bytes: true }) => {
                    shared.failure(backend);
                    return Attempt::Fail(Failure::Closed);
                }
                Err(HeadError::Bad) => {
                    shared.failure(backend);
                    return Attempt::Fail(Failure::BadResponse);
                }
            },
        };
        let status = rhead.status();
        if status == 101 && !(upgrade && switches_to_offered(&rhead, head)) {
            // A switch the client did not ask for, or to a protocol it did not
            // offer: the connection is dropped, never tunnelled.
            shared.failure(backend);
            return Attempt::Fail(Failure::BadResponse);
        }
        backend.record_success();
        let upstream_time = started.elapsed();
        let block = response_headers(&rhead, status == 101);
        let resp = Response::new(status)
            .header_block(block)
            .log_field("backend", label(backend))
            .log_field("upstream", LogValue::Duration(upstream_time));

        if status == 101 {
            return Attempt::Done(tunnel(resp, up, guard.backend().start()));
        }
        // After a refused upgrade, the bytes that follow on the client connection
        // were meant for the other protocol: never read them as requests. After an
        // early answer, the rest of the request body is still on the way.
        let resp = if upgrade || answered_early {
            resp.close()
        } else {
            resp
        };
        let keep_alive = rhead.keep_alive() && !upgrade && !answered_early;
        let pool = shared.config.pool.max_idle;

        let body = match rhead.body() {
            BodyKind::Empty => {
                if keep_alive && up.pos == up.end {
                    backend.put_idle(up.stream, pool);
                }
                let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
                if method == Method::Head && !bodiless {
                    // The driver sends no body for HEAD; the length it announces is the backend's.
                    let len = rhead
                        .header("content-length")
                        .and_then(|v| parse_content_length(v).ok());
                    match len {
                        Some(n) => http_core::Body::Length(n),
                        // Unknown: the driver announces no length for HEAD.
                        None => http_core::Body::Stream {
                            len: None,
                            reader: Box::new(tokio::io::empty()),
                        },
                    }
                } else {
                    http_core::Body::Empty
                }
            }
            kind => {
                let framing = match kind {
                    BodyKind::Length(n) => Framing::Length(n),
                    BodyKind::Chunked => Framing::Chunked(ChunkedDecoder::new(&self.response_limits)),
                    _ => Framing::UntilClose,
                };
                let len = match kind {
                    BodyKind::Length(n) => Some(n),
                    _ => None,
                };
                http_core::Body::Stream {
                    len,
                    reader: Box::new(UpstreamBody {
                        up: Some(up),
                        framing,
                        keep_alive,
                        guard: Some(guard.backend().start()),
                        shared: self.shared.clone(),
                        received: 0,
                        sleep: None,
                        armed: false,
                        fills: 0,
                    }),
                }
            }
        };
        Attempt::Done(resp.body(body))
    }
}

fn label(b: &Backend) -> LogValue {
    LogValue::Text(b.label().clone())
}

/// Reads up to [`PREFETCH_MAX`] bytes of the body (all of a small one).
async fn prefetch(body: &mut RequestBody<'_>, kind: BodyKind) -> Result<Prefetch, Response> {
    let mut pre = Prefetch {
        pieces: Vec::new(),
        len: 0,
        complete: matches!(kind, BodyKind::Empty),
    };
    while !pre.complete && pre.len < PREFETCH_MAX {
        match body.data().await {
            Ok(Some(b)) => {
                pre.len += b.len();
                pre.pieces.push(b);
            }
            Ok(None) => pre.complete = true,
            // The driver answers a malformed body with its status, or closes.
            Err(e) => return Err(Response::text(400, format!("{e}\n")).close()),
        }
    }
    Ok(pre)
}

async fn connect(b: &Backend, t: Duration) -> Result<TcpStream, Failure> {
    match tokio::time::timeout(t, TcpStream::connect(b.addr())).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            b.count_connect();
            Ok(s)
        }
        Ok(Err(e)) => {
            tracing::warn!(backend = %b.addr(), error = %e, "cannot connect to backend");
            Err(Failure::Connect)
        }
        Err(_) => {
            tracing::warn!(backend = %b.addr(), "connecting to backend timed out");
            Err(Failure::ConnectTimeout)
        }
    }
}

// ---------------------------------------------------------------------------
// The request head
// ---------------------------------------------------------------------------

/// The head sent to the backend, in a buffer with room for `body_room` bytes of
/// body after it. `backend` is the backend's address, the `Host` of a request
/// that came without one.
fn request_head(head: &RequestHead, peer: Option<SocketAddr>, backend: &[u8], body_room: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(head.as_bytes().len() + 160 + body_room + 16);
    out.put_slice(head.method_str().as_bytes());
    out.put_u8(b' ');
    // An absolute-form target goes on in origin form, with its authority as the
    // Host (RFC 9112 §3.2.2: the received Host is then replaced).
    let absolute = head.is_absolute_form();
    let target = head.origin_form();
    if !target.starts_with(['/', '*']) {
        out.put_u8(b'/');
    }
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");

    let named = head.connection_names_fields();
    // X-Forwarded-For and Via are rebuilt below, each as one line that keeps the
    // values received and appends ours; written straight into `out`.
    let (mut has_xff, mut has_via) = (false, false);
    for (n, value) in head.headers().raw() {
        if is_hop_by_hop(n)
            || n.eq_ignore_ascii_case(b"content-length")
            || n.eq_ignore_ascii_case(b"expect")
            || n.eq_ignore_ascii_case(b"x-forwarded-proto")
            || n.eq_ignore_ascii_case(b"x-forwarded-host")
            // Only meaningful with an h2c upgrade, which is never passed on.
            || n.eq_ignore_ascii_case(b"http2-settings")
        {
            continue;
        }
        if n.eq_ignore_ascii_case(b"x-forwarded-for") {
            has_xff = true;
            continue;
        }
        if n.eq_ignore_ascii_case(b"via") {
            has_via = true;
            continue;
        }
        if named && !n.eq_ignore_ascii_case(b"host") && connection_names(head, n) {
            continue;
        }
        if absolute && n.eq_ignore_ascii_case(b"host") {
            continue;
        }
        put_header(&mut out, n, value);
    }
    let host = head.host();
    match host {
        Some(h) if absolute => put_header(&mut out, b"Host", h),
        Some(_) => {}
        // An HTTP/1.0 request without Host: HTTP/1.1 requires one.
        None => put_header(&mut out, b"Host", backend),
    }
    if has_xff || peer.is_some() {
        out.put_slice(b"X-Forwarded-For: ");
        let mut first = true;
        if has_xff {
            put_values(&mut out, head, "x-forwarded-for", &mut first);
        }
        if let Some(peer) = peer {
            if !first {
                out.put_slice(b", ");
            }
            put_ip(&mut out, peer.ip());
        }
        out.put_slice(b"\r\n");
    }
    put_header(&mut out, b"X-Forwarded-Proto", b"http");
    if let Some(h) = host {
        put_header(&mut out, b"X-Forwarded-Host", h);
    }
    out.put_slice(b"Via: ");
    let mut first = true;
    if has_via {
        put_values(&mut out, head, "via", &mut first);
    }
    if !first {
        out.put_slice(b", ");
    }
    out.put_slice(if head.version() == Version::Http10 {
        VIA_10
    } else {
        VIA
    });
    out.put_slice(b"\r\n");
    if upgrade_passed_on(head) {
        put_header(&mut out, b"Connection", b"upgrade");
        out.put_slice(b"Upgrade: ");
        let mut first = true;
        for_each_offer(head, |t| {
            if !first {
                out.put_slice(b", ");
            }
            out.put_slice(t);
            first = false;
        });
        out.put_slice(b"\r\n");
    }
    match head.body() {
        BodyKind::Length(n) => {
            let mut b = itoa::Buffer::new();
            put_header(&mut out, b"Content-Length", b.format(n).as_bytes());
        }
        BodyKind::Chunked => put_header(&mut out, b"Transfer-Encoding", b"chunked"),
        BodyKind::Empty | BodyKind::UntilClose => {}
    }
    out.put_slice(b"\r\n");
    out
}

/// True when the request, forwarded, fits `limits` (which the backends are taken
/// to apply as well): the lines the proxy adds must not push it over the count
/// or size limit the client's head was held to.
fn fits_limits(head: &RequestHead, peer: Option<SocketAddr>, limits: &Limits) -> bool {
    let lines = head.headers().len();
    let len = head.as_bytes().len();
    // Forwarding adds at most ADDED_LINES lines, a copy of the host (shorter
    // than the head) and ADDED_BYTES, and may normalise each line's separator
    // to `: ` and its end to CRLF.
    if lines + ADDED_LINES <= limits.max_headers && 2 * len + 2 * lines + ADDED_BYTES <= limits.max_head_len {
        return true;
    }
    // Close to a limit: size the head exactly as it would be sent.
    let out = request_head(head, peer, LONGEST_ADDR, 0);
    // Every line ends in LF: the request line, the headers and the blank line.
    let lines = out.iter().filter(|&&b| b == b'\n').count().saturating_sub(2);
    lines <= limits.max_headers && out.len() <= limits.max_head_len
}

/// A protocol named in `Upgrade` that the proxy passes on: any but HTTP/2's.
/// `h2c` is stripped, as nginx does (a backend switching to it would hold a
/// connection the proxy can only tunnel); `h2` is never valid in `Upgrade`.
fn passes_on(token: &[u8]) -> bool {
    !same_protocol(b"h2c", token) && !same_protocol(b"h2", token)
}

/// Calls `f` with each protocol of the request's `Upgrade` lines that is passed on.
fn for_each_offer(head: &RequestHead, mut f: impl FnMut(&[u8])) {
    for (n, v) in head.headers().raw() {
        if n.eq_ignore_ascii_case(b"upgrade") {
            http_core::for_each_token(v, |t| {
                if passes_on(t) {
                    f(t)
                }
            });
        }
    }
}

/// The request asks to switch protocols and offers one that is passed on.
fn upgrade_passed_on(head: &RequestHead) -> bool {
    if !head.is_upgrade() {
        return false;
    }
    let mut any = false;
    for_each_offer(head, |_| any = true);
    any
}

/// The backend's 101 names, in `Upgrade`, only protocols the client offered (a
/// version the client left open may be chosen), and at least one.
fn switches_to_offered(resp: &ResponseHead, req: &RequestHead) -> bool {
    let (mut any, mut all) = (false, true);
    for (n, v) in resp.headers().raw() {
        if n.eq_ignore_ascii_case(b"upgrade") {
            http_core::for_each_token(v, |answered| {
                any = true;
                let mut offered = false;
                for_each_offer(req, |o| offered |= same_protocol(o, answered));
                all &= offered;
            });
        }
    }
    any && all
}

/// `offered` and `answered` (`name[/version]`) name the same protocol: the
/// names match, and so do the versions if both give one.
fn same_protocol(offered: &[u8], answered: &[u8]) -> bool {
    fn split(t: &[u8]) -> (&[u8], Option<&[u8]>) {
        match t.iter().position(|&b| b == b'/') {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        }
    }
    let ((on, ov), (an, av)) = (split(offered), split(answered));
    on.eq_ignore_ascii_case(an)
        && match (ov, av) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        }
}

/// A failure answer to a request that asked to switch protocols closes the
/// connection: what the client sends next may be in the other protocol.
fn after_upgrade(head: &RequestHead, resp: Response) -> Response {
    if head.is_upgrade() {
        resp.close()
    } else {
        resp
    }
}

/// True when a `Connection` header of `head` names the field `name`.
fn connection_names(head: &RequestHead, name: &[u8]) -> bool {
    head.headers()
        .raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .any(|(_, v)| http_core::list_contains(v, name))
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Appends every value of header `name`, comma-separated, after what `first` says
/// was written already.
fn put_values(out: &mut BytesMut, head: &RequestHead, name: &str, first: &mut bool) {
    for (_, v) in head
        .headers()
        .raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    {
        if !*first {
            out.put_slice(b", ");
        }
        out.put_slice(v);
        *first = false;
    }
}

/// Writes an address as `Display` does; IPv4 without the formatting machinery,
/// which cost as much as building the rest of the request head.
fn put_ip(out: &mut BytesMut, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut num = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.put_u8(b'.');
                }
                out.put_slice(num.format(octet).as_bytes());
            }
        }
        std::net::IpAddr::V6(_) => {
            let _ = std::fmt::Write::write_fmt(&mut BytesMutWriter(out), format_args!("{ip}"));
        }
    }
}

struct BytesMutWriter<'a>(&'a mut BytesMut);

impl std::fmt::Write for BytesMutWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Sending the request
// ---------------------------------------------------------------------------

enum SendError {
    /// Reading the client's body failed.
    Client(BodyError),
    /// Writing to the backend failed (`true`: it timed out).
    Upstream(bool),
}

/// Writes the head, the prefetched body and the rest of the body, re-framed.
/// Returns the body bytes sent; `written` counts every byte the socket accepted.
async fn send_request(
    s: &mut TcpStream,
    mut out: BytesMut,
    pre: &Prefetch,
    body: &mut RequestBody<'_>,
    kind: BodyKind,
    shared: &Shared,
    written: &mut u64,
) -> Result<u64, SendError> {
    let idle = shared.config.timeouts.idle;
    let chunked = kind == BodyKind::Chunked;
    let mut body_bytes: u64 = 0;
    for piece in &pre.pieces {
        if out.len() + piece.len() > WRITE_PIECE {
            write_counted(s, &out, written, idle).await?;
            out.clear();
        }
        frame(piece, chunked, &mut out);
        body_bytes += piece.len() as u64;
    }
    if !pre.complete {
        loop {
            let piece = match body.data().await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return Err(SendError::Client(e)),
            };
            if out.len() + piece.len() > WRITE_PIECE {
                write_counted(s, &out, written, idle).await?;
                out.clear();
            }
            if !chunked && piece.len() > WRITE_PIECE {
                write_counted(s, &piece, written, idle).await?;
            } else {
                frame(&piece, chunked, &mut out);
            }
            body_bytes += piece.len() as u64;
        }
    }
    if chunked {
        ChunkedEncoder::finish(&mut out);
    }
    if !out.is_empty() {
        write_counted(s, &out, written, idle).await?;
    }
    Ok(body_bytes)
}

fn frame(piece: &[u8], chunked: bool, out: &mut BytesMut) {
    if chunked {
        ChunkedEncoder::chunk(piece, out);
    } else {
        out.extend_from_slice(piece);
    }
}

async fn write_counted(
    s: &mut TcpStream,
    mut data: &[u8],
    written: &mut u64,
    idle: Duration,
) -> Result<(), SendError> {
    while !data.is_empty() {
        match tokio::time::timeout(idle, s.write(data)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(SendError::Upstream(false)),
            Ok(Ok(n)) => {
                *written += n as u64;
                data = &data[n..];
            }
            Err(_) => return Err(SendError::Upstream(true)),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading the response head
// ---------------------------------------------------------------------------

/// A connection to a backend with its read buffer (`buf[pos..end]` unread).
pub(crate) struct Upstream {
    pub stream: TcpStream,
    pub buf: ReadBuffer,
    pub pos: usize,
    pub end: usize,
}

thread_local! {
    /// Read buffers not in use, per worker thread: idle pooled connections hold
    /// none, and a busy proxy does not allocate one per request.
    static FREE_BUFS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers kept per thread.
const FREE_BUFS_MAX: usize = 64;

/// A read buffer that goes back to its thread's free list when dropped.
pub(crate) struct ReadBuffer(Vec<u8>);

impl ReadBuffer {
    fn take() -> ReadBuffer {
        ReadBuffer(
            FREE_BUFS
                .with(|f| f.borrow_mut().pop())
                .unwrap_or_else(|| vec![0; UPSTREAM_BUF]),
        )
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        // Buffers grown for a large head are let go.
        if self.0.len() == UPSTREAM_BUF {
            let buf = std::mem::take(&mut self.0);
            FREE_BUFS.with(|f| {
                let mut f = f.borrow_mut();
                if f.len() < FREE_BUFS_MAX {
                    f.push(buf);
                }
            });
        }
    }
}

impl std::ops::Deref for ReadBuffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for ReadBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Upstream {
    fn new(stream: TcpStream) -> Upstream {
        Upstream {
            stream,
            buf: ReadBuffer::take(),
            pos: 0,
            end: 0,
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Makes room at the end of the buffer: moves unread bytes to the front, and
    /// grows the buffer (up to `max`) when it is full of unread bytes.
    fn make_room(&mut self, max: usize) -> bool {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.end == self.buf.len() && self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= max {
                return false;
            }
            let grown = (self.buf.len() * 2).clamp(UPSTREAM_BUF, max);
            self.buf.resize(grown, 0);
        }
        true
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.make_room(self.buf.len()) {
            return Poll::Ready(Err(io::ErrorKind::InvalidData.into()));
        }
        let mut rb = ReadBuf::new(&mut self.buf[self.end..]);
        match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

enum HeadError {
    Timeout,
    Closed { any_bytes: bool },
    Bad,
}

/// Reads the final response head (interim 1xx other than 101 are skipped).
async fn read_head(
    up: &mut Upstream,
    method: Method,
    limits: &Limits,
    timeout: Duration,
) -> Result<ResponseHead, HeadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut any_bytes = false;
    loop {
        if up.pos < up.end {
            match parse_response(up.unread(), method, limits) {
                Ok(Some(p)) => {
                    let len = p.len();
                    let head = p.into_head(Bytes::copy_from_slice(&up.unread()[..len]));
                    up.pos += len;
                    let s = head.status();
                    if (100..200).contains(&s) && s != 101 {
                        continue;
                    }
                    return Ok(head);
                }
                Ok(None) => {}
                Err(_) => return Err(HeadError::Bad),
            }
        }
        if !up.make_room(limits.max_head_len + UPSTREAM_BUF) {
            return Err(HeadError::Bad);
        }
        let end = up.end;
        let read = tokio::io::AsyncReadExt::read(&mut up.stream, &mut up.buf[end..]);
        match tokio::time::timeout_at(deadline, read).await {
            Err(_) => return Err(HeadError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Closed { any_bytes }),
            Ok(Ok(n)) => {
                any_bytes = true;
                up.end += n;
            }
        }
    }
}

/// The response headers passed to the client: hop-by-hop fields and those the
/// backend's `Connection` names are removed (`Upgrade` is kept on a 101).
fn response_headers(head: &ResponseHead, switching: bool) -> HeaderBlock {
    // The values of the `Connection` lines (a name listed there is hop-by-hop).
    let mut connection: Vec<&[u8]> = Vec::new();
    for (n, v) in head.headers().raw() {
        // A value that only names a header dropped anyway (the usual
        // `keep-alive`) changes nothing: not keeping it spares an allocation.
        if n.eq_ignore_ascii_case(b"connection") && !is_hop_by_hop(v) {
            connection.push(v);
        }
    }
    let mut block = HeaderBlock::builder_with_capacity(head.as_bytes().len());
    for (name, value) in head.headers().raw() {
        if switching && name.eq_ignore_ascii_case(b"upgrade") {
            block.push(name, value);
            continue;
        }
        if is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"date")
            || connection.iter().any(|v| http_core::list_contains(v, name))
        {
            continue;
        }
        block.push(name, value);
    }
    block.build()
}

// ---------------------------------------------------------------------------
// The response body
// ---------------------------------------------------------------------------

enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// Reads the backend's body without its framing; the driver re-frames it for the
/// client. Returns the connection to the pool when the body ended cleanly.
struct UpstreamBody {
    up: Option<Upstream>,
    framing: Framing,
    keep_alive: bool,
    guard: Option<InFlight>,
    shared: Arc<Shared>,
    received: u64,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// Reads made so far.
    fills: u32,
}

impl UpstreamBody {
    /// The body ended (`clean`) or broke off.
    fn finish(&mut self, clean: bool) {
        let Some(up) = self.up.take() else { return };
        let Some(guard) = self.guard.take() else { return };
        let backend = guard.backend();
        backend.add_received(self.received);
        self.received = 0;
        if clean && self.keep_alive && up.pos == up.end {
            backend.put_idle(up.stream, self.shared.config.pool.max_idle);
        }
        if !clean {
            self.shared.failure(backend);
        }
    }

    fn fail(&mut self, e: io::Error) -> Poll<io::Result<()>> {
        tracing::debug!(error = %e, "backend body broke off");
        self.finish(false);
        Poll::Ready(Err(e))
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Not read to its end (client gone, HEAD): the connection cannot be reused.
        if let Some(g) = &self.guard {
            g.backend().add_received(self.received);
        }
    }
}

impl AsyncRead for UpstreamBody {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let Some(up) = this.up.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if up.pos < up.end {
                let avail = up.end - up.pos;
                match &mut this.framing {
                    Framing::Length(rem) => {
                        let n = (*rem).min(avail as u64).min(out.remaining() as u64) as usize;
                        out.put_slice(&up.buf[up.pos..up.pos + n]);
                        up.pos += n;
                        *rem -= n as u64;
                        this.received += n as u64;
                        if *rem == 0 {
                            this.finish(true);
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Framing::UntilClose => {
                        let n = avail.min(out.remaining());
                        out.put_slice(&up.buf[up.pos..up.pos + n]);
                        up.pos += n;
                        this.received += n as u64;
                        return Poll::Ready(Ok(()));
                    }
                    Framing::Chunked(dec) => {
                        let lim = avail.min(out.remaining());
                        let input = &up.buf[up.pos..up.pos + lim];
                        let p = match dec.decode(input) {
                            Ok(p) => p,
                            Err(e) => return this.fail(io::Error::new(io::ErrorKind::InvalidData, e)),
                        };
                        let data = p.data.len();
                        out.put_slice(&input[p.data.clone()]);
                        up.pos += p.consumed;
                        this.received += data as u64;
                        if p.done {
                            this.finish(true);
                            return Poll::Ready(Ok(()));
                        }
                        if data > 0 {
                            return Poll::Ready(Ok(()));
                        }
                        if p.consumed > 0 {
                            continue;
                        }
                    }
                }
            }
            // A large body is read in larger pieces (fewer system calls).
            let large = match &this.framing {
                Framing::Length(rem) => *rem > up.buf.len() as u64,
                _ => this.fills > 1,
            };
            if large && up.buf.len() < BODY_BUF {
                up.buf.resize(BODY_BUF, 0);
            }
            match up.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    if matches!(this.framing, Framing::UntilClose) {
                        this.keep_alive = false;
                        this.finish(true);
                        return Poll::Ready(Ok(()));
                    }
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "backend closed the connection inside a body",
                    ));
                }
                Poll::Ready(Ok(_)) => {
                    this.armed = false;
                    this.fills += 1;
                }
                Poll::Ready(Err(e)) => return this.fail(e),
                Poll::Pending => {
                    let idle = this.shared.config.timeouts.idle;
                    let deadline = tokio::time::Instant::now() + idle;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if !this.armed {
                        sleep.as_mut().reset(deadline);
                        this.armed = true;
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        return this.fail(io::Error::new(io::ErrorKind::TimedOut, "backend body stalled"));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Upgrades
// ---------------------------------------------------------------------------

/// Turns the backend's 101 into the client's, then copies bytes both ways: the
/// backend's bytes that followed its 101 first, then the client's bytes that
/// followed its upgrade request (held back until now), then everything else.
fn tunnel(resp: Response, up: Upstream, guard: InFlight) -> Response {
    resp.on_upgrade(move |client| async move {
        let (mut client, client_early) = client.into_parts();
        let Upstream {
            stream: mut backend,
            buf,
            pos,
            end,
        } = up;
        let early = async {
            if pos < end {
                client.write_all(&buf[pos..end]).await?;
            }
            if !client_early.is_empty() {
                backend.write_all(&client_early).await?;
            }
            io::Result::Ok(())
        };
        if early.await.is_err() {
            return;
        }
        drop(buf);
        match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            Ok((to_backend, to_client)) => {
                let b = guard.backend();
                b.add_sent(to_backend + client_early.len() as u64);
                b.add_received(to_client + (end - pos) as u64);
            }
            Err(e) => tracing::debug!(error = %e, "tunnel closed"),
        }
        let _ = backend.shutdown().await;
        let _ = client.shutdown().await;
        drop(guard);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> RequestHead {
        RequestHead::parse_complete(Bytes::copy_from_slice(text.as_bytes()), &Limits::default()).unwrap()
    }

    #[test]
    fn protocols_match_by_name_and_by_version_when_both_give_one() {
        assert!(same_protocol(b"websocket", b"WebSocket"));
        assert!(same_protocol(b"websocket", b"websocket/13"));
        assert!(same_protocol(b"websocket/13", b"websocket"));
        assert!(!same_protocol(b"websocket/13", b"websocket/8"));
        assert!(!same_protocol(b"websocket", b"h2c"));
        assert!(!passes_on(b"h2c") && !passes_on(b"H2C") && !passes_on(b"h2") && !passes_on(b"h2c/1"));
        assert!(passes_on(b"websocket") && passes_on(b"h2cx"));
    }

    #[test]
    fn h2c_offers_are_not_passed_on() {
        let only_h2c = head("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
        assert!(only_h2c.is_upgrade() && !upgrade_passed_on(&only_h2c));
        let both =
            head("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n");
        assert!(upgrade_passed_on(&both));
        let out = request_head(&both, None, b"b", 0);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: upgrade\r\n"), "{text}");
    }

    /// The quick bound and the exact count agree on either side of the limit.
    #[test]
    fn forwarded_heads_are_sized_exactly_near_the_limits() {
        let limits = Limits {
            max_headers: 10,
            ..Limits::default()
        };
        let with = |n: usize| {
            let mut t = "GET / HTTP/1.1\r\nHost: x\r\n".to_owned();
            for i in 1..n {
                t.push_str(&format!("X-{i}: v\r\n"));
            }
            t.push_str("\r\n");
            RequestHead::parse_complete(Bytes::from(t), &limits).unwrap()
        };
        let peer = Some(([127, 0, 0, 1], 1).into());
        // Host and n - 1 others, plus X-Forwarded-For, -Proto, -Host and Via.
        assert!(fits_limits(&with(6), peer, &limits));
        assert!(!fits_limits(&with(7), peer, &limits));
        // Without a peer address there is no X-Forwarded-For to add.
        assert!(fits_limits(&with(7), None, &limits));
        // Hop-by-hop lines are not forwarded and leave room.
        let hop = "GET / HTTP/1.1\r\nHost: x\r\nKeep-Alive: 1\r\nTE: trailers\r\nX-1: v\r\nX-2: v\r\nX-3: v\r\nX-4: v\r\n\r\n";
        assert!(fits_limits(&head(hop), peer, &limits));

        let size = |len: usize| {
            let mut t = "GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_owned();
            let fill = len - t.len() - 4;
            t.push_str(&"l".repeat(fill));
            t.push_str("\r\n\r\n");
            head(&t)
        };
        let added = request_head(&size(1000), peer, b"b", 0).len() - 1000;
        let limits = Limits {
            max_head_len: 2000,
            ..Limits::default()
        };
        assert!(fits_limits(&size(2000 - added), peer, &limits));
        assert!(!fits_limits(&size(2000 - added + 1), peer, &limits));
    }
}
