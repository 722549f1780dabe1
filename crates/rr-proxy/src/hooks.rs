//! The embedder's hooks: [`ProxyHooks`] names each phase of a proxied request,
//! with defaults that give the stock proxy, so a program changes only the phases
//! it cares about.
//!
//! The phases of one request, in order (HTTP mode only; TCP mode has no requests):
//!
//! | phase | when | default |
//! |---|---|---|
//! | [`new_ctx`](ProxyHooks::new_ctx) | a request's head has been read | `Default::default()` |
//! | [`request_filter`](ProxyHooks::request_filter) | before any backend is chosen or body read | `None`: go on |
//! | [`upstream_request_filter`](ProxyHooks::upstream_request_filter) | once, before the first attempt | no edits |
//! | [`upstream_peer`](ProxyHooks::upstream_peer) | before each attempt | [`Peer::Strategy`] |
//! | [`on_failure`](ProxyHooks::on_failure) | an attempt failed | [`OnFailure::Default`]: the next backend when safe, else 502/503/504 |
//! | [`response_filter`](ProxyHooks::response_filter) | a backend's response head arrived | no edits |
//! | [`logging`](ProxyHooks::logging) | the exchange is over (body sent, or failed) | nothing |
//!
//! The proxy's own rules come first and cannot be turned off by a hook: a request
//! it would frame differently from a strict backend is refused before any hook
//! runs, hop-by-hop headers are never forwarded, a request is sent twice only
//! when that is safe, and the framing of what reaches the client is the driver's.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_core::{is_hop_by_hop, RequestHead, Response};

use crate::backend::Backend;
use crate::strategy::{PickRequest, Strategy};

/// What each phase can see of the client's request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The request head as the client sent it.
    pub head: &'a RequestHead,
    /// The client's address, when the transport has one.
    pub peer: Option<SocketAddr>,
    /// The pool the request was routed to (its name; `default` for a proxy
    /// built without pools), or empty when no route matches it (the proxy
    /// answers 404 unless [`ProxyHooks::request_filter`] answers first).
    pub pool: &'a str,
}

/// Changes the way the proxy handles HTTP requests; every method has a default,
/// and implementing none gives the stock proxy exactly ([`NoHooks`]).
///
/// `Ctx` is per-request state: made by [`new_ctx`](Self::new_ctx), passed to every
/// phase, and dropped after [`logging`](Self::logging). Copy into it what a later
/// phase needs from the request (the logging phase runs after the request head
/// is gone).
///
/// ```
/// use rr_proxy::{Candidates, Peer, Proxy, ProxyHooks, RequestInfo};
/// use http_core::Response;
///
/// /// Requests for `/internal/` never reach a backend; `X-Pin: 1` goes to the first backend.
/// struct Rules;
///
/// impl ProxyHooks for Rules {
///     type Ctx = ();
///
///     async fn request_filter(&self, req: RequestInfo<'_>, _ctx: &mut ()) -> Option<Response> {
///         req.head.path().starts_with("/internal/").then(|| Response::text(404, "not here\n"))
///     }
///
///     fn upstream_peer(&self, req: RequestInfo<'_>, candidates: &Candidates<'_>, _ctx: &mut ()) -> Peer {
///         if req.head.header("x-pin") == Some(b"1") {
///             return candidates.first_where(|b| b.addr().port() == 9002).map_or(Peer::Unavailable, Peer::Backend);
///         }
///         Peer::Strategy
///     }
/// }
///
/// let proxy = Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 1)
///     .backend("127.0.0.1:9003".parse().unwrap(), 1)
///     .hooks(Rules)
///     .build()
///     .unwrap();
/// # drop(proxy);
/// ```
pub trait ProxyHooks: Send + Sync + 'static {
    /// Per-request state carried through the phases.
    type Ctx: Default + Send + 'static;

    /// Makes the state of a new request, from its head. Default: `Ctx::default()`.
    fn new_ctx(&self, req: RequestInfo<'_>) -> Self::Ctx {
        let _ = req;
        Self::Ctx::default()
    }

    /// Answers a request without any backend (an authentication check, a
    /// redirect, a page of the proxy's own): `Some(response)` is sent as it is
    /// and no backend is contacted. Runs before the request body is read, so a
    /// refused upload is never invited (`Expect: 100-continue`) or forwarded.
    /// Default: `None`, the request goes on.
    fn request_filter(
        &self,
        req: RequestInfo<'_>,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Option<Response>> + Send {
        let _ = (req, ctx);
        async { None }
    }

    /// Edits the request sent to the backend: headers added, replaced or
    /// removed, the target rewritten. Runs once per request, before a backend
    /// is chosen; the same edits go to every backend tried. A request that must
    /// be refused is refused in [`request_filter`](Self::request_filter).
    /// Default: no edits.
    fn upstream_request_filter(
        &self,
        req: RequestInfo<'_>,
        upstream: &mut RequestEdits,
        ctx: &mut Self::Ctx,
    ) {
        let _ = (req, upstream, ctx);
    }

    /// Chooses the backend for the next attempt. `candidates` are the eligible
    /// backends (healthy, not draining) not yet tried for this request. The
    /// first choice is made before the request body is read, so a request no
    /// backend can take is answered without reading or inviting its body.
    /// Default: [`Peer::Strategy`], the configured strategy's choice.
    fn upstream_peer(&self, req: RequestInfo<'_>, candidates: &Candidates<'_>, ctx: &mut Self::Ctx) -> Peer {
        let _ = (req, candidates, ctx);
        Peer::Strategy
    }

    /// An attempt failed (`failure` says how and on which backend). Called
    /// once more, with `retryable: false`, when no backend is left to try (none
    /// eligible, [`Peer::Unavailable`], or the attempts used up), so a hook can
    /// answer that case too. Default: [`OnFailure::Default`]: the next backend
    /// when the request can safely be sent again, otherwise the proxy's error
    /// answer (502, 503 or 504). An answer to a request that asked to switch
    /// protocols closes the connection.
    fn on_failure(&self, req: RequestInfo<'_>, failure: &UpstreamFailure, ctx: &mut Self::Ctx) -> OnFailure {
        let _ = (req, failure, ctx);
        OnFailure::Default
    }

    /// Edits the head of a backend's response before it goes to the client
    /// (the proxy's own error answers are not passed here). Default: no edits.
    fn response_filter(&self, req: RequestInfo<'_>, resp: &mut ResponseEdits<'_>, ctx: &mut Self::Ctx) {
        let _ = (req, resp, ctx);
    }

    /// The exchange is over: called once per request (also for one answered by
    /// [`request_filter`](Self::request_filter), with no backend and no
    /// attempt), after the response body was passed on or broke off, with the
    /// timings and the backend. Default: nothing (the driver's access line is
    /// written either way).
    fn logging(&self, summary: &Summary, ctx: &mut Self::Ctx) {
        let _ = (summary, ctx);
    }
}

/// The stock proxy: every phase at its default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl ProxyHooks for NoHooks {
    type Ctx = ();
}

/// Which backend the next attempt goes to.
#[derive(Debug, Clone)]
pub enum Peer {
    /// The configured strategy picks among the candidates.
    Strategy,
    /// This backend (it should be one of the candidates: a backend that is not
    /// eligible is used all the same, which is how a hook pins a request).
    Backend(Arc<Backend>),
    /// No backend suits the request: answered 503 (or as [`ProxyHooks::on_failure`] says).
    Unavailable,
}

/// The backends an attempt may go to, with the strategy to choose among them.
pub struct Candidates<'a> {
    pub(crate) list: &'a [Arc<Backend>],
    pub(crate) tried: &'a dyn Fn(u64) -> bool,
    pub(crate) strategy: &'a dyn Strategy,
    /// The request, for strategies that look at it.
    pub(crate) req: PickRequest<'a>,
    /// A pick with the proxy's strategy asked for its response header.
    pub(crate) response_header: Cell<bool>,
}

impl std::fmt::Debug for Candidates<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|b| b.addr())).finish()
    }
}

impl<'a> Candidates<'a> {
    /// The eligible backends not yet tried for this request, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &'a Arc<Backend>> + '_ {
        self.list.iter().filter(|b| !(self.tried)(b.id()))
    }

    /// The first candidate for which `f` holds.
    pub fn first_where(&self, f: impl Fn(&Backend) -> bool) -> Option<Arc<Backend>> {
        self.iter().find(|b| f(b)).cloned()
    }

    /// The configured strategy's choice among the candidates for which `f`
    /// holds, or `None` when there is none. The strategy sees the request
    /// ([`Strategy::pick_for`]): a sticky cookie or a hash key is honoured
    /// within the subset, and a sticky cookie is set on the response as with
    /// [`Peer::Strategy`]. The strategy's state is the proxy's: picks for
    /// different subsets share one rotation, so a hook that splits traffic
    /// into groups keeps a strategy per group ([`pick_with`](Self::pick_with)).
    pub fn pick_where(&self, f: impl Fn(&Backend) -> bool) -> Option<Arc<Backend>> {
        let (b, response_header) = self.choose(self.strategy, f)?;
        if response_header {
            self.response_header.set(true);
        }
        Some(b)
    }

    /// `strategy`'s choice among the candidates for which `f` holds (a subset,
    /// such as a canary group, with a rotation of its own), or `None`. The
    /// strategy sees the request ([`Strategy::pick_for`]), but only the
    /// proxy's own strategy adds a response header. See
    /// `examples/canary.rs`, which keeps a [`RoundRobin`](crate::RoundRobin)
    /// per group.
    pub fn pick_with(&self, strategy: &dyn Strategy, f: impl Fn(&Backend) -> bool) -> Option<Arc<Backend>> {
        self.choose(strategy, f).map(|(b, _)| b)
    }

    /// The request as strategies see it.
    pub fn request(&self) -> &PickRequest<'a> {
        &self.req
    }

    fn choose(&self, strategy: &dyn Strategy, f: impl Fn(&Backend) -> bool) -> Option<(Arc<Backend>, bool)> {
        let subset: Vec<Arc<Backend>> = self.iter().filter(|b| f(b)).cloned().collect();
        if subset.is_empty() {
            return None;
        }
        let pick = strategy.pick_for(&subset, &self.req);
        let i = pick.index % subset.len();
        subset.into_iter().nth(i).map(|b| (b, pick.response_header))
    }
}

/// How an attempt on a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// No backend was eligible (or [`Peer::Unavailable`]).
    NoBackend,
    /// The connection was refused or failed.
    Connect,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The backend stopped taking the request (the connection failed).
    Write,
    /// The backend took no request bytes for the idle timeout.
    WriteTimeout,
    /// No response head within the response timeout.
    ResponseTimeout,
    /// The backend closed the connection before a complete response head.
    Closed,
    /// The response head was malformed, or switched to a protocol not offered.
    BadResponse,
    /// No route matched the request (no pool to send it to).
    NoRoute,
    /// The TLS handshake with an `https://` backend failed (its certificate
    /// was refused, or it refused ours).
    Tls,
}

impl FailureKind {
    /// The status the client gets when this failure ends the request.
    pub fn status(self) -> u16 {
        match self {
            FailureKind::NoBackend => 503,
            FailureKind::NoRoute => 404,
            FailureKind::ConnectTimeout | FailureKind::ResponseTimeout | FailureKind::WriteTimeout => 504,
            _ => 502,
        }
    }
}

/// One failed attempt, as [`ProxyHooks::on_failure`] sees it.
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The backend tried (`None` for [`FailureKind::NoBackend`]).
    pub backend: Option<SocketAddr>,
    /// Attempts made for this request so far, this one included.
    pub attempts: u32,
    /// The proxy's rules allow sending the request to another backend.
    pub retryable: bool,
}

/// What to do after a failed attempt.
#[derive(Debug)]
pub enum OnFailure {
    /// The proxy's rules: the next backend when safe, else its error answer.
    Default,
    /// Stop trying: the proxy's error answer for this failure.
    Stop,
    /// Stop trying and send this response.
    Answer(Response),
}

/// Header edits, applied as a head is written: names matched case-insensitively.
#[derive(Debug, Default, Clone)]
pub(crate) struct HeaderEdits {
    pub remove: Vec<Box<str>>,
    pub add: Vec<(Box<str>, Bytes)>,
}

impl HeaderEdits {
    fn set(&mut self, name: &str, value: Bytes) -> bool {
        if !sendable(name, &value) || owned_by_proxy(name) {
            return false;
        }
        self.remove(name);
        self.add.push((name.into(), value));
        true
    }

    fn remove(&mut self, name: &str) -> bool {
        if owned_by_proxy(name) {
            return false;
        }
        self.add.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !self.remove.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            self.remove.push(name.into());
        }
        true
    }

    /// True when the received header `name` is not passed on.
    pub fn removes(&self, name: &[u8]) -> bool {
        self.remove
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }
}

/// Edits to the request a backend receives, applied as its head is written.
///
/// Header names are matched case-insensitively. A name or value that could not
/// be sent safely (not a token; CR, LF or NUL in a value), and the headers the
/// proxy owns (framing, hop-by-hop, `Host`, `Date`), are refused: the method
/// returns false and nothing changes.
#[derive(Debug, Default, Clone)]
pub struct RequestEdits {
    pub(crate) headers: HeaderEdits,
    pub(crate) target: Option<Box<str>>,
}

impl RequestEdits {
    /// Sets header `name` to `value`, replacing any the client sent.
    pub fn set_header(&mut self, name: &str, value: impl Into<Bytes>) -> bool {
        self.headers.set(name, value.into())
    }

    /// Removes every header `name` the client sent (and any set here before).
    pub fn remove_header(&mut self, name: &str) -> bool {
        self.headers.remove(name)
    }

    /// Sends the request to `target` (origin form: a path and query starting
    /// with `/`, visible ASCII) instead of the client's.
    pub fn set_target(&mut self, target: &str) -> bool {
        if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
            return false;
        }
        self.target = Some(target.into());
        true
    }

    /// True when nothing was edited.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.target.is_none()
    }
}

/// A backend's response head on its way to the client, and edits to it (same
/// rules as [`RequestEdits`]).
#[derive(Debug)]
pub struct ResponseEdits<'a> {
    pub(crate) head: &'a http_core::ResponseHead,
    pub(crate) headers: HeaderEdits,
    pub(crate) backend: SocketAddr,
}

impl ResponseEdits<'_> {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    /// The backend that answered.
    pub fn backend(&self) -> SocketAddr {
        self.backend
    }

    /// The first value of header `name` as the backend sent it.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.header(name)
    }

    /// Sets header `name` to `value`, replacing the backend's.
    pub fn set_header(&mut self, name: &str, value: impl Into<Bytes>) -> bool {
        self.headers.set(name, value.into())
    }

    /// Removes header `name`.
    pub fn remove_header(&mut self, name: &str) -> bool {
        self.headers.remove(name)
    }
}

/// A forwarded request's outcome, for [`ProxyHooks::logging`].
#[derive(Debug, Clone)]
pub struct Summary {
    /// The status the client got.
    pub status: u16,
    /// The backend that answered (or the last one tried).
    pub backend: Option<SocketAddr>,
    /// Attempts made (0 when no backend was tried).
    pub attempts: u32,
    /// From the start of the last attempt to its response head.
    pub upstream_time: Option<Duration>,
    /// When the request's head had been read: `received.elapsed()` in the
    /// logging hook is the request's whole time (taken only by a hook that
    /// wants it: reading the clock is not free).
    pub received: Instant,
    /// Response body bytes passed on from the backend.
    pub body_bytes: u64,
    /// The response body was passed on to its end (false: it broke off, or the
    /// client went away).
    pub complete: bool,
    /// The failure that ended the request, when it failed.
    pub failure: Option<FailureKind>,
}

/// A header name and value that can be written in a head as they are.
fn sendable(name: &str, value: &[u8]) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

/// Headers the proxy writes itself, whatever a hook says.
fn owned_by_proxy(name: &str) -> bool {
    is_hop_by_hop(name)
        || [
            "content-length",
            "transfer-encoding",
            "host",
            "connection",
            "date",
        ]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_refuse_what_the_proxy_owns_or_cannot_send() {
        let mut e = RequestEdits::default();
        assert!(e.set_header("X-User", "alice"));
        assert!(e.set_header("x-user", "bob"), "a second set replaces the first");
        assert_eq!(e.headers.add.len(), 1);
        assert!(!e.set_header("Content-Length", "5"));
        assert!(!e.set_header("Transfer-Encoding", "chunked"));
        assert!(!e.set_header("Host", "evil"));
        assert!(!e.set_header("Keep-Alive", "1"));
        assert!(!e.set_header("X-Bad", "a\r\nInjected: 1"));
        assert!(!e.set_header("Bad Name", "v"));
        assert!(!e.remove_header("Host"));
        assert!(e.remove_header("Cookie") && e.headers.removes(b"cookie"));
        assert!(e.set_target("/v2/items?x=1"));
        assert!(!e.set_target("http://other/") && !e.set_target("/a b"));
    }

    #[test]
    fn failure_statuses() {
        assert_eq!(FailureKind::NoBackend.status(), 503);
        assert_eq!(FailureKind::ConnectTimeout.status(), 504);
        assert_eq!(FailureKind::WriteTimeout.status(), 504);
        assert_eq!(FailureKind::Write.status(), 502);
        assert_eq!(FailureKind::BadResponse.status(), 502);
    }
}
