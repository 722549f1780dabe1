//! TCP mode: each accepted connection goes to the next backend, bytes copied both ways.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http_core::LogValue;
use tokio::net::{TcpListener, TcpStream};

use crate::balancer::Balancer;
use crate::proxy::Shared;
use crate::reason::FailureReason;
use crate::strategy::PickRequest;

/// Accepts until `shutdown` resolves, then lets open tunnels run for the
/// shutdown timeout before closing them.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (max, grace) = (shared.config.max_connections, shared.config.shutdown_timeout);
    // A tunnel carries no requests to finish: it runs until its ends close, or
    // until the shutdown timeout aborts it.
    http_core::accept_loop(listener, max, grace, shutdown, move |stream, peer, _signal| {
        // The pool in force when the connection comes; a reload moves the
        // next connections, never an open tunnel.
        let pool = shared.default_balancer();
        async move {
            if let Some(pool) = pool {
                relay(&pool, stream, peer).await
            }
        }
    })
    .await
}

/// Connects `client` to the next healthy backend (trying a bounded number) and
/// copies bytes both ways until both sides are done. Counted as HTTP mode
/// counts a request: `requests`, `retries`, and when no backend takes it,
/// `no_backend` (none to try), `gateway_timeout` (the last connect timed out)
/// or `bad_gateway` (it was refused); in the responses with the status its
/// access line shows (200, 503, 504, 502), its lifetime as the duration and
/// the bytes relayed to the client.
async fn relay(shared: &Balancer, mut client: http_core::LazyTcpStream, peer: SocketAddr) {
    let started = Instant::now();
    let counters = &shared.counters;
    let _open = counters.client_connections.enter();
    counters.requests.fetch_add(1, Ordering::Relaxed);
    shared.routed.fetch_add(1, Ordering::Relaxed);
    let mut tried: Vec<u64> = Vec::new();
    // The status a failure answers with in HTTP mode, and its counter.
    let mut last_failure: Option<(u16, &AtomicU64)> = None;
    for attempt in 0..shared.config.max_attempts {
        let req = PickRequest::connection(Some(peer));
        let Some(backend) = shared.pick(&req, |id| tried.contains(&id)) else {
            break;
        };
        if attempt > 0 {
            counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        tried.push(backend.id());
        let connected =
            tokio::time::timeout(shared.config.timeouts.connect, TcpStream::connect(backend.addr())).await;
        let mut upstream = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(backend = %backend.addr(), error = %e, "cannot connect to backend");
                shared.failure(&backend, FailureReason::Connect(e.kind()));
                last_failure = Some((502, &counters.bad_gateway));
                continue;
            }
            Err(_) => {
                tracing::warn!(backend = %backend.addr(), "connecting to backend timed out");
                shared.failure(&backend, FailureReason::ConnectTimeout);
                last_failure = Some((504, &counters.gateway_timeout));
                continue;
            }
        };
        let _ = upstream.set_nodelay(true);
        backend.count_connect();
        backend.count_request();
        backend.record_success();
        let _in_flight = backend.start();
        let (sent, received) = match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "tunnel ended with an error");
                (0, 0)
            }
        };
        backend.add_sent(sent);
        backend.add_received(received);
        // `sent` went to the backend (from the client), `received` came from it
        // (to the client): the line's bytes are the client's, as in HTTP mode.
        let elapsed = started.elapsed();
        counters.responses.observe(200, received, elapsed);
        http_core::server::log_connection(
            Some(peer),
            200,
            received,
            elapsed,
            &[
                ("backend", LogValue::Text(backend.label().clone())),
                ("received", LogValue::Count(sent)),
            ],
        );
        return;
    }
    // As HTTP mode answers: 503 when no backend was available, 504 when
    // connecting to the last one tried timed out, 502 when it was refused.
    let (status, counter) = last_failure.unwrap_or((503, &counters.no_backend));
    counter.fetch_add(1, Ordering::Relaxed);
    let elapsed = started.elapsed();
    counters.responses.observe(status, 0, elapsed);
    http_core::server::log_connection(Some(peer), status, 0, elapsed, &[]);
}
