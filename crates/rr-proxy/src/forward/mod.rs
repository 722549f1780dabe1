//! HTTP mode: the [`Service`] that forwards each request to a backend and streams
//! the answer back, calling the embedder's [`ProxyHooks`] at each phase.
//!
//! The client side is http-core's driver and the backend side its client role
//! ([`http_core::ClientConn`]); this module holds only proxy policy, split by
//! concern: [`retry`] (when a request may go elsewhere), [`headers`] (what each
//! side receives), [`upstream`] (one exchange with a backend) and [`tunnel`]
//! (protocol switches).

mod headers;
mod retry;
mod tunnel;
mod upstream;

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http_core::{
    parse_content_length, AccessRecord, BodyKind, ClientConn, Limits, LogValue, Method, Request, Response,
    Service,
};

use crate::backend::{Backend, InFlight};
use crate::balancer::Balancer;
use crate::hooks::{
    Candidates, FailureKind, OnFailure, Peer, ProxyHooks, RequestEdits, RequestInfo, ResponseEdits, Summary,
    UpstreamFailure,
};
use crate::proxy::Shared;
use crate::strategy::PickRequest;
use headers::{after_upgrade, fits_limits, response_headers, upgrade_passed_on};
use retry::{failure_response, with_tls_reason, Attempt, Prefetch, Tried};
use upstream::{connect, Answer, Exchange, Finish, UpstreamBody, UpstreamConn};

/// The HTTP-mode service run by `http_core::Server`.
pub(crate) struct ProxyService<H: ProxyHooks> {
    shared: Arc<Shared>,
    hooks: Arc<H>,
    /// Limits for decoding backend bodies: sizes as configured, but no cap on the
    /// total body length (a download is not bounded by the upload limit).
    response_limits: Limits,
}

impl<H: ProxyHooks> ProxyService<H> {
    pub(crate) fn new(shared: Arc<Shared>, hooks: Arc<H>) -> Self {
        let response_limits = Limits {
            max_body_len: u64::MAX,
            ..shared.config.limits.clone()
        };
        ProxyService {
            shared,
            hooks,
            response_limits,
        }
    }
}

impl<H: ProxyHooks> Service for ProxyService<H> {
    async fn call(&self, req: Request<'_>) -> Response {
        self.shared
            .common
            .counters
            .requests
            .fetch_add(1, Ordering::Relaxed);
        if req.head.method() == Method::Connect {
            // A reverse proxy opens no tunnels on a client's say-so.
            return Response::text(501, "CONNECT is not supported by this proxy\n");
        }
        let (pool, several) = {
            let table = self.shared.table.load();
            let pool = table.route(req.head).map(|p| p.balancer.clone());
            (pool, table.pools.len() > 1)
        };
        let r = self.forward(req, pool.as_ref()).await;
        match pool {
            // The access line names the pool when there is a choice.
            Some(b) if several => r.log_field("pool", LogValue::Text(b.name.clone())),
            _ => r,
        }
    }

    fn on_response(&self, record: &AccessRecord<'_>) {
        self.shared.common.counters.responses.record(record);
    }
}

/// A request's progress through the phases, for the logging hook.
struct RequestState<H: ProxyHooks> {
    /// The pool the request was routed to (`None`: no route matched).
    pool: Option<Arc<Balancer>>,
    ctx: H::Ctx,
    attempts: u32,
    backend: Option<std::net::SocketAddr>,
    started: Instant,
    /// A pick asked for the strategy's response header (sticky cookie).
    response_header: bool,
}

impl<H: ProxyHooks> ProxyService<H> {
    async fn forward(&self, mut req: Request<'_>, pool: Option<&Arc<Balancer>>) -> Response {
        let head = req.head;
        let info = RequestInfo {
            head,
            peer: req.peer,
            pool: pool.map_or("", |b| &b.name),
        };
        let Some(chosen) = pool else {
            let p = RequestState::<H> {
                pool: None,
                ctx: self.hooks.new_ctx(info),
                attempts: 0,
                backend: None,
                started: req.received,
                response_header: false,
            };
            return self.routeless(info, p).await;
        };
        let balancer: &Balancer = chosen;
        balancer.routed.fetch_add(1, Ordering::Relaxed);
        let mut p = RequestState::<H> {
            pool: Some(chosen.clone()),
            ctx: self.hooks.new_ctx(info),
            attempts: 0,
            backend: None,
            started: req.received,
            response_header: false,
        };
        if let Some(r) = self.hooks.request_filter(info, &mut p.ctx).await {
            // As with the proxy's own answers: after a refused upgrade, what
            // the client sends next may be in the other protocol.
            return self.logged(after_upgrade(head, r), p, None);
        }
        let mut edits = RequestEdits::default();
        self.hooks.upstream_request_filter(info, &mut edits, &mut p.ctx);
        if !fits_limits(head, req.peer, req.tls, &edits, &balancer.config.limits) {
            // The backend would refuse it: answer as it would, before it is
            // contacted and before a body is invited.
            let r = Response::text(431, "request header fields too large once forwarded\n").close();
            return self.logged(r, p, None);
        }
        // The first backend is chosen before the body is read: without one, the
        // answer comes before a body is read or invited (`100 Continue`).
        let mut tried = Tried::default();
        let mut next = self.choose(info, &tried, &mut p);
        if next.is_none() {
            return self.give_up(info, FailureKind::NoBackend, None, p);
        }
        let pre = match Prefetch::read(&mut req.body, head.body()).await {
            Ok(pre) => pre,
            Err(r) => return self.logged(r, p, None),
        };

        let mut last = FailureKind::NoBackend;
        while (p.attempts as usize) < balancer.config.max_attempts {
            let Some(backend) = next.take().or_else(|| self.choose(info, &tried, &mut p)) else {
                break;
            };
            if p.attempts > 0 {
                balancer.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            p.attempts += 1;
            p.backend = Some(backend.addr());
            tried.push(backend.id());
            let guard = backend.start();
            let exchange = Exchange {
                balancer,
                backend: &backend,
                pre: &pre,
                replayable: pre.complete,
                reused: false,
                edits: &edits,
            };
            let failed = match self.attempt(chosen, exchange, &mut req, guard, &mut p).await {
                Ok(r) => return r,
                Err(Attempt::ClientGone(r)) => return self.logged(r, p, None),
                Err(Attempt::Failed { kind, retryable }) => (kind, retryable),
                // `attempt` retries stale connections itself.
                Err(Attempt::Stale) => (FailureKind::Closed, false),
            };
            let (kind, retryable) = failed;
            let failure = UpstreamFailure {
                kind,
                backend: Some(backend.addr()),
                attempts: p.attempts,
                retryable,
            };
            match self.hooks.on_failure(info, &failure, &mut p.ctx) {
                OnFailure::Default if retryable => last = kind,
                OnFailure::Default | OnFailure::Stop => {
                    let r = failure_response(kind, balancer).log_field("backend", label(&backend));
                    let r = with_tls_reason(r, kind, Some(&backend));
                    return self.logged(after_upgrade(head, r), p, Some(kind));
                }
                OnFailure::Answer(r) => return self.logged(after_upgrade(head, r), p, Some(kind)),
            }
        }
        // Every attempt failed, or no backend is left to try.
        let backend = p.backend;
        self.give_up(info, last, backend, p)
    }

    /// A request no route matches: the request filter may answer it, else 404.
    async fn routeless(&self, info: RequestInfo<'_>, mut p: RequestState<H>) -> Response {
        if let Some(r) = self.hooks.request_filter(info, &mut p.ctx).await {
            return self.logged(after_upgrade(info.head, r), p, None);
        }
        self.give_up(info, FailureKind::NoRoute, None, p)
    }

    /// The backend for the next attempt: the hook's choice, or the strategy's.
    fn choose(&self, info: RequestInfo<'_>, tried: &Tried, p: &mut RequestState<H>) -> Option<Arc<Backend>> {
        let balancer = p.pool.clone()?;
        let eligible = balancer.eligible();
        let is_tried = |id| tried.contains(id);
        let req = PickRequest::new(info.head, info.peer);
        let candidates = Candidates {
            list: &eligible,
            tried: &is_tried,
            strategy: &*balancer.strategy,
            req,
            response_header: Cell::new(false),
        };
        let chosen = match self.hooks.upstream_peer(info, &candidates, &mut p.ctx) {
            Peer::Strategy => {
                let (b, response_header) = balancer.pick_from(&eligible, &req, is_tried)?;
                p.response_header |= response_header;
                Some(b)
            }
            Peer::Backend(b) => Some(b),
            Peer::Unavailable => None,
        };
        p.response_header |= candidates.response_header.get();
        chosen
    }

    /// No backend can take the request (any more): the hook may answer, else
    /// the proxy's answer to the last failure (503 when there was none).
    fn give_up(
        &self,
        info: RequestInfo<'_>,
        kind: FailureKind,
        backend: Option<std::net::SocketAddr>,
        mut p: RequestState<H>,
    ) -> Response {
        let failure = UpstreamFailure {
            kind,
            backend,
            attempts: p.attempts,
            retryable: false,
        };
        let r = match self.hooks.on_failure(info, &failure, &mut p.ctx) {
            OnFailure::Answer(r) => r,
            OnFailure::Default | OnFailure::Stop => match &p.pool {
                Some(b) => {
                    let tried = backend.and_then(|a| b.find(a).ok());
                    with_tls_reason(failure_response(kind, b), kind, tried.as_deref())
                }
                None => Response::text(404, "no route for this request\n"),
            },
        };
        self.logged(after_upgrade(info.head, r), p, Some(kind))
    }

    /// Calls the logging hook for a response whose exchange is over.
    fn logged(&self, r: Response, mut p: RequestState<H>, failure: Option<FailureKind>) -> Response {
        let r = r.log_field("retries", retries(p.attempts));
        let summary = Summary {
            status: r.status(),
            backend: p.backend,
            attempts: p.attempts,
            upstream_time: None,
            received: p.started,
            body_bytes: 0,
            complete: failure.is_none(),
            failure,
        };
        self.hooks.logging(&summary, &mut p.ctx);
        r
    }

    /// One backend: a connection (pooled, or new), the exchange, and the
    /// response for the client. A pooled connection found dead is replaced.
    async fn attempt(
        &self,
        pool: &Arc<Balancer>,
        mut exchange: Exchange<'_>,
        req: &mut Request<'_>,
        guard: InFlight,
        p: &mut RequestState<H>,
    ) -> Result<Response, Attempt> {
        let balancer = exchange.balancer;
        let backend = exchange.backend;
        loop {
            let (stream, reused) = match backend.take_idle(balancer.config.pool.idle_timeout) {
                Some(s) => (s, true),
                None => match connect(backend, balancer.config.timeouts.connect).await {
                    Ok(s) => (s, false),
                    Err((kind, reason)) => {
                        balancer.failure(backend, reason);
                        return Err(Attempt::Failed {
                            kind,
                            retryable: true,
                        });
                    }
                },
            };
            if reused {
                backend.count_reuse();
            }
            exchange.reused = reused;
            let mut conn = ClientConn::new(stream);
            let started = Instant::now();
            match exchange.run(&mut conn, req).await {
                Ok(answer) => {
                    let upstream_time = started.elapsed();
                    balancer.counters.upstream_duration.observe(upstream_time);
                    return Ok(self.respond(pool, req, conn, answer, guard, upstream_time, p));
                }
                Err(Attempt::Stale) => {
                    balancer.counters.retries.fetch_add(1, Ordering::Relaxed);
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// The client's response from a backend's response head.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        balancer: &Arc<Balancer>,
        req: &Request<'_>,
        conn: UpstreamConn,
        answer: Answer,
        guard: InFlight,
        upstream_time: std::time::Duration,
        p: &mut RequestState<H>,
    ) -> Response {
        let head = req.head;
        let info = RequestInfo {
            head,
            peer: req.peer,
            pool: &balancer.name,
        };
        let Answer { head: rhead, early } = answer;
        let backend = guard.backend().clone();
        let status = rhead.status();
        backend.record_success();
        let mut edits = ResponseEdits {
            head: &rhead,
            headers: Default::default(),
            backend: backend.addr(),
        };
        self.hooks.response_filter(info, &mut edits, &mut p.ctx);
        if p.response_header {
            let req = PickRequest::new(head, req.peer);
            if let Some((name, value)) = balancer.strategy.response_header(&req, &backend) {
                // Beside the backend's own (a second Set-Cookie, not a replacement).
                edits.headers.add.push((name.into(), value));
            }
        }
        let block = response_headers(&rhead, status == 101, &edits.headers);
        let resp = Response::new(status)
            .header_block(block)
            .log_field("backend", label(&backend))
            .log_field("upstream", LogValue::Duration(upstream_time))
            .log_field("retries", retries(p.attempts));
        let mut summary = Summary {
            status,
            backend: Some(backend.addr()),
            attempts: p.attempts,
            upstream_time: Some(upstream_time),
            received: p.started,
            body_bytes: 0,
            complete: true,
            failure: None,
        };

        if status == 101 {
            self.hooks.logging(&summary, &mut p.ctx);
            return tunnel::tunnel(resp, conn, guard);
        }
        // After a refused upgrade, the bytes that follow on the client connection
        // were meant for the other protocol: never read them as requests. After an
        // early answer, the rest of the request body is still on the way.
        let upgrade = upgrade_passed_on(head);
        let resp = if upgrade || early { resp.close() } else { resp };
        let keep_alive = !upgrade && !early;
        let config = &balancer.config;

        let body = match rhead.body() {
            BodyKind::Empty => {
                if keep_alive {
                    if let Some(stream) = conn.into_idle() {
                        backend.put_idle(stream, config.pool.max_idle);
                    }
                }
                self.hooks.logging(&summary, &mut p.ctx);
                let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
                if head.method() == Method::Head && !bodiless {
                    // The driver sends no body for HEAD; the length it announces
                    // is the backend's (none when the backend gave none).
                    match rhead
                        .header("content-length")
                        .and_then(|v| parse_content_length(v).ok())
                    {
                        Some(n) => http_core::Body::Length(n),
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
                let len = match kind {
                    BodyKind::Length(n) => Some(n),
                    _ => None,
                };
                summary.complete = false;
                let finish = Finish {
                    hooks: self.hooks.clone(),
                    ctx: std::mem::take(&mut p.ctx),
                    summary,
                };
                http_core::Body::Stream {
                    len,
                    reader: Box::new(UpstreamBody {
                        body: conn.into_body(&rhead, &self.response_limits, config.timeouts.idle),
                        guard: Some(backend.start()),
                        balancer: balancer.clone(),
                        keep_alive,
                        finish: Some(finish),
                    }),
                }
            }
        };
        drop(guard);
        resp.body(body)
    }
}

/// The access log's `retries`: attempts after the first.
fn retries(attempts: u32) -> LogValue {
    LogValue::Count(u64::from(attempts.saturating_sub(1)))
}

fn label(b: &Backend) -> LogValue {
    LogValue::Text(b.label().clone())
}
