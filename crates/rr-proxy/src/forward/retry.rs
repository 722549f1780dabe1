//! Retry policy: when a request may go to another backend, what the client gets
//! when it may not, and the part of the body kept so that it can be sent again.
//!
//! A request is sent again only when no byte of it reached a backend, or when it
//! is idempotent, its whole body is at hand, and no byte of a response arrived.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_core::{BodyKind, LogValue, Method, RequestBody, Response};

use crate::backend::Backend;
use crate::balancer::Balancer;
use crate::hooks::FailureKind;
use crate::reason::FailureReason;

/// Request body read from the client before a backend is chosen: a small body is
/// then known to be well framed before anything is forwarded, and can be sent
/// again if the first backend turns out to be down.
pub(crate) const PREFETCH_MAX: usize = 64 * 1024;

/// The proxy's answer when `kind` ends a request, counted in the proxy's counters.
pub(crate) fn failure_response(kind: FailureKind, balancer: &Balancer) -> Response {
    let c = &balancer.counters;
    match kind {
        FailureKind::NoBackend => {
            c.no_backend.fetch_add(1, Ordering::Relaxed);
            let mut b = itoa::Buffer::new();
            Response::text(503, "no backend available\n").header(
                "Retry-After",
                Bytes::copy_from_slice(b.format(balancer.config.retry_after).as_bytes()),
            )
        }
        FailureKind::ConnectTimeout | FailureKind::WriteTimeout | FailureKind::ResponseTimeout => {
            c.gateway_timeout.fetch_add(1, Ordering::Relaxed);
            Response::text(504, "backend timed out\n")
        }
        FailureKind::Connect => {
            c.bad_gateway.fetch_add(1, Ordering::Relaxed);
            Response::text(502, "backend refused the connection\n")
        }
        FailureKind::Write | FailureKind::Closed => {
            c.bad_gateway.fetch_add(1, Ordering::Relaxed);
            Response::text(502, "backend closed the connection\n")
        }
        FailureKind::NoRoute => Response::text(404, "no route for this request\n"),
        FailureKind::BadResponse => {
            c.bad_gateway.fetch_add(1, Ordering::Relaxed);
            Response::text(502, "backend sent a malformed response\n")
        }
        FailureKind::Tls => {
            c.bad_gateway.fetch_add(1, Ordering::Relaxed);
            Response::text(502, "TLS handshake with the backend failed\n")
        }
    }
}

/// After a failed TLS handshake, the access line's `tls_error` field: why,
/// as [`TlsFailure::code`](crate::TlsFailure::code) (`unknown-issuer`,
/// `not-valid-for-name`, ...), from the backend's accounts. Other failures
/// are told by the status alone.
pub(crate) fn with_tls_reason(r: Response, kind: FailureKind, backend: Option<&Backend>) -> Response {
    if kind != FailureKind::Tls {
        return r;
    }
    match backend.and_then(Backend::last_failure) {
        Some(FailureReason::Tls(why)) => r.log_field("tls_error", LogValue::Text(why.code().into())),
        _ => r,
    }
}

/// What one attempt on one connection came to.
pub(crate) enum Attempt {
    /// A pooled connection turned out dead before the request could matter: try
    /// again on the same backend with another connection.
    Stale,
    /// The backend failed; `retryable` when the request may go to another one.
    Failed { kind: FailureKind, retryable: bool },
    /// The client's body broke; the driver answers (or closes) itself.
    ClientGone(Response),
}

/// Whether a request whose exchange failed after some of it was sent (and no
/// response byte came) may be sent to another backend.
pub(crate) fn may_resend(method: Method, replayable: bool) -> bool {
    method.is_idempotent() && replayable
}

/// Backend ids already tried for a request (a few inline; no allocation).
#[derive(Default)]
pub(crate) struct Tried {
    inline: [u64; 4],
    n: usize,
    more: Vec<u64>,
}

impl Tried {
    pub fn push(&mut self, id: u64) {
        if self.n < self.inline.len() {
            self.inline[self.n] = id;
            self.n += 1;
        } else {
            self.more.push(id);
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.inline[..self.n].contains(&id) || self.more.contains(&id)
    }
}

/// The start of the request body, read before choosing a backend.
pub(crate) struct Prefetch {
    pub pieces: Vec<Bytes>,
    pub len: usize,
    /// The whole body is in `pieces`: the request can be sent again.
    pub complete: bool,
}

impl Prefetch {
    /// Reads up to [`PREFETCH_MAX`] bytes of the body (all of a small one).
    pub async fn read(body: &mut RequestBody<'_>, kind: BodyKind) -> Result<Prefetch, Response> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tried_holds_any_number_of_backends() {
        let mut t = Tried::default();
        for id in 0..10 {
            assert!(!t.contains(id));
            t.push(id);
            assert!(t.contains(id));
        }
        assert!(!t.contains(10));
    }

    #[test]
    fn only_idempotent_requests_with_their_whole_body_are_sent_again() {
        assert!(may_resend(Method::Get, true));
        assert!(may_resend(Method::Put, true));
        assert!(!may_resend(Method::Put, false));
        assert!(!may_resend(Method::Post, true));
    }
}
