//! The upstream exchange: connecting to a backend, sending the request on
//! http-core's client role, reading the response head, and streaming the
//! response body back while keeping the backend's accounts (bytes, failures,
//! the connection returned to its pool when the body ended cleanly).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_core::{ClientConn, ReadHeadError, Request, ResponseBody, ResponseHead, SendError};
use tokio::io::{AsyncRead, ReadBuf};

use super::headers::{switches_to_offered, upgrade_passed_on, write_request_head};
use super::retry::{may_resend, Attempt, Prefetch};
use crate::backend::{Backend, InFlight};
use crate::balancer::Balancer;
use crate::hooks::{FailureKind, ProxyHooks, RequestEdits, Summary};
use crate::reason::FailureReason;
use crate::transport::{open, Caller, OpenError, Upstream};

/// A connection to a backend in the client role.
pub(crate) type UpstreamConn = ClientConn<Upstream>;

/// How long to look for an early answer after a backend stopped taking a request body.
const EARLY_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Opens a connection to `b` within `t` (TCP, and for an `https://` backend
/// the TLS handshake); on failure, what the hooks and the backend's accounts
/// are told.
pub(crate) async fn connect(b: &Backend, t: Duration) -> Result<Upstream, (FailureKind, FailureReason)> {
    open(b, t, Caller::Forward).await.map_err(|e| {
        let kind = match e {
            OpenError::Tls(_) => FailureKind::Tls,
            OpenError::Connect(FailureReason::ConnectTimeout) => FailureKind::ConnectTimeout,
            OpenError::Connect(_) => FailureKind::Connect,
        };
        (kind, e.reason())
    })
}

/// One request sent to one backend on one connection.
pub(crate) struct Exchange<'a> {
    pub balancer: &'a Balancer,
    pub backend: &'a Arc<Backend>,
    /// The start of the body, read before the backend was chosen.
    pub pre: &'a Prefetch,
    /// The whole body is in `pre`.
    pub replayable: bool,
    /// The connection came from the pool (it may have been closed meanwhile).
    pub reused: bool,
    pub edits: &'a RequestEdits,
}

/// A response head, and whether it answered the request before the whole
/// request was sent (the rest of the request body is still on its way).
pub(crate) struct Answer {
    pub head: ResponseHead,
    pub early: bool,
}

impl Exchange<'_> {
    /// Sends the request on `conn` and reads the final response head.
    pub async fn run(&self, conn: &mut UpstreamConn, req: &mut Request<'_>) -> Result<Answer, Attempt> {
        let (balancer, backend) = (self.balancer, self.backend);
        let head = req.head;
        let method = head.method();
        let limits = &balancer.config.limits;
        backend.count_request();

        let sent = self.send(conn, req).await;
        let mut early = None;
        match sent {
            Ok(body_bytes) => backend.add_sent(body_bytes),
            Err(Sent::Client(e)) => {
                // The driver answers a malformed body itself, or closes a broken client.
                return Err(Attempt::ClientGone(
                    http_core::Response::text(400, format!("{e}\n")).close(),
                ));
            }
            Err(Sent::Upstream(e)) => {
                if conn.written() == 0 {
                    // Nothing reached the backend: safe to send anywhere, any method.
                    if self.reused {
                        return Err(Attempt::Stale);
                    }
                    balancer.failure(backend, FailureReason::Write);
                    return Err(Attempt::Failed {
                        kind: FailureKind::Write,
                        retryable: true,
                    });
                }
                // The backend stopped taking the request; it may have answered
                // early (413, 401, ...): that answer is the one to pass on.
                match conn.read_head(method, limits, EARLY_ANSWER_WAIT).await {
                    Ok(h) => early = Some(h),
                    Err(_) => {
                        let retryable = may_resend(method, self.replayable);
                        let (kind, reason) = match e {
                            SendError::TimedOut if !retryable => {
                                (FailureKind::WriteTimeout, FailureReason::WriteTimeout)
                            }
                            _ => (FailureKind::Write, FailureReason::Write),
                        };
                        balancer.failure(backend, reason);
                        return Err(Attempt::Failed { kind, retryable });
                    }
                }
            }
        }
        let answer = match early {
            Some(head) => Answer { head, early: true },
            None => match conn
                .read_head(method, limits, balancer.config.timeouts.response)
                .await
            {
                Ok(head) => Answer { head, early: false },
                Err(e) => return Err(self.head_failed(e, method)),
            },
        };
        if answer.head.status() == 101
            && !(upgrade_passed_on(head) && switches_to_offered(&answer.head, head))
        {
            // A switch the client did not ask for, or to a protocol it did not
            // offer: the connection is dropped, never tunnelled.
            balancer.failure(backend, FailureReason::Malformed);
            return Err(Attempt::Failed {
                kind: FailureKind::BadResponse,
                retryable: false,
            });
        }
        Ok(answer)
    }

    /// The attempt's outcome when no response head came.
    fn head_failed(&self, e: ReadHeadError, method: http_core::Method) -> Attempt {
        let (balancer, backend) = (self.balancer, self.backend);
        let retryable = may_resend(method, self.replayable);
        let (kind, reason) = match e {
            ReadHeadError::TimedOut => (FailureKind::ResponseTimeout, FailureReason::TimedOut),
            ReadHeadError::Closed { .. } => (FailureKind::Closed, FailureReason::Closed),
            _ => (FailureKind::BadResponse, FailureReason::Malformed),
        };
        if e == (ReadHeadError::Closed { any_bytes: false }) {
            if self.reused {
                // The backend closed an idle connection just as it was
                // reused: not a failure of the backend.
                return if retryable {
                    Attempt::Stale
                } else {
                    Attempt::Failed {
                        kind,
                        retryable: false,
                    }
                };
            }
            balancer.failure(backend, reason);
            return Attempt::Failed { kind, retryable };
        }
        // A response had begun, or the backend is slow or broken: the
        // request may have been acted on.
        balancer.failure(backend, reason);
        Attempt::Failed {
            kind,
            retryable: false,
        }
    }

    /// Writes the head, the prefetched body and the rest of the body, re-framed.
    /// Returns the body bytes sent.
    async fn send(&self, conn: &mut UpstreamConn, req: &mut Request<'_>) -> Result<u64, Sent> {
        let idle = self.balancer.config.timeouts.idle;
        let head = req.head;
        let label = self.backend.label().as_bytes();
        conn.start_request(head.body(), |out| {
            write_request_head(out, head, req.peer, req.tls, label, self.edits)
        });
        let mut body_bytes: u64 = 0;
        for piece in &self.pre.pieces {
            conn.send_data(piece, idle).await.map_err(Sent::Upstream)?;
            body_bytes += piece.len() as u64;
        }
        if !self.pre.complete {
            loop {
                let piece = match req.body.data().await {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(e) => return Err(Sent::Client(e)),
                };
                conn.send_data(&piece, idle).await.map_err(Sent::Upstream)?;
                body_bytes += piece.len() as u64;
            }
        }
        conn.finish_request(idle).await.map_err(Sent::Upstream)?;
        Ok(body_bytes)
    }
}

/// Why sending a request stopped.
enum Sent {
    /// Reading the client's body failed.
    Client(http_core::BodyError),
    /// Writing to the backend failed.
    Upstream(SendError),
}

/// What [`UpstreamBody`] reports when the exchange is over.
pub(crate) struct Finish<H: ProxyHooks> {
    pub hooks: Arc<H>,
    pub ctx: H::Ctx,
    pub summary: Summary,
}

/// The backend's response body for the driver: the payload without its framing
/// (the driver re-frames it for the client). Returns the connection to the
/// backend's pool when the body ended cleanly; counts a failure when it broke.
pub(crate) struct UpstreamBody<H: ProxyHooks> {
    pub body: ResponseBody<Upstream>,
    pub guard: Option<InFlight>,
    pub balancer: Arc<Balancer>,
    /// The connection may carry another request once the body ends.
    pub keep_alive: bool,
    pub finish: Option<Finish<H>>,
}

impl<H: ProxyHooks> UpstreamBody<H> {
    /// The body ended (`clean`) or broke off.
    fn end(&mut self, clean: bool) {
        let Some(guard) = self.guard.take() else { return };
        let backend = guard.backend();
        backend.add_received(self.body.received());
        if clean && self.keep_alive {
            if let Some(stream) = self.body.take_conn().and_then(ClientConn::into_idle) {
                backend.put_idle(stream, self.balancer.config.pool.max_idle);
            }
        }
        if !clean {
            self.balancer.failure(backend, FailureReason::BodyCut);
        }
        self.log(clean);
    }

    fn log(&mut self, complete: bool) {
        if let Some(mut f) = self.finish.take() {
            f.summary.body_bytes = self.body.received();
            f.summary.complete = complete;
            f.hooks.logging(&f.summary, &mut f.ctx);
        }
    }
}

// Nothing in it is pinned in place: the body and the timer it may hold are
// moved freely (the timer is boxed).
impl<H: ProxyHooks> Unpin for UpstreamBody<H> {}

impl<H: ProxyHooks> Drop for UpstreamBody<H> {
    fn drop(&mut self) {
        // Not read to its end (the client went away): the connection cannot be reused.
        if let Some(g) = self.guard.take() {
            g.backend().add_received(self.body.received());
        }
        self.log(false);
    }
}

impl<H: ProxyHooks> AsyncRead for UpstreamBody<H> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.body).poll_read(cx, out);
        match &r {
            Poll::Ready(Ok(())) if this.body.is_end() => this.end(true),
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "backend body broke off");
                this.end(false);
            }
            _ => {}
        }
        r
    }
}
