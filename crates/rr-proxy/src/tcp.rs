//! TCP mode: each accepted connection goes to the next backend, bytes copied both ways.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http_core::LogValue;
use tokio::net::{TcpListener, TcpStream};

use crate::balancer::Balancer;
use crate::reason::FailureReason;

/// Accepts until `shutdown` resolves, then lets open tunnels run for the
/// shutdown timeout before closing them.
pub(crate) async fn serve(
    shared: Arc<Balancer>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (max, grace) = (shared.config.max_connections, shared.config.shutdown_timeout);
    // A tunnel carries no requests to finish: it runs until its ends close, or
    // until the shutdown timeout aborts it.
    http_core::accept_loop(listener, max, grace, shutdown, move |stream, peer, _signal| {
        let shared = shared.clone();
        async move { relay(&shared, stream, peer).await }
    })
    .await
}

/// Connects `client` to the next healthy backend (trying a bounded number) and
/// copies bytes both ways until both sides are done.
async fn relay(shared: &Balancer, mut client: http_core::LazyTcpStream, peer: SocketAddr) {
    let started = Instant::now();
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let mut tried: Vec<u64> = Vec::new();
    for attempt in 0..shared.config.max_attempts {
        let Some(backend) = shared.pick(|id| tried.contains(&id)) else {
            break;
        };
        if attempt > 0 {
            shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        tried.push(backend.id());
        let connected =
            tokio::time::timeout(shared.config.timeouts.connect, TcpStream::connect(backend.addr())).await;
        let mut upstream = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(backend = %backend.addr(), error = %e, "cannot connect to backend");
                shared.failure(&backend, FailureReason::Connect(e.kind()));
                continue;
            }
            Err(_) => {
                tracing::warn!(backend = %backend.addr(), "connecting to backend timed out");
                shared.failure(&backend, FailureReason::ConnectTimeout);
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
        http_core::server::log_connection(
            Some(peer),
            200,
            received,
            started.elapsed(),
            &[
                ("backend", LogValue::Text(backend.label().clone())),
                ("received", LogValue::Count(sent)),
            ],
        );
        return;
    }
    shared.counters.no_backend.fetch_add(1, Ordering::Relaxed);
    // As HTTP mode answers: 502 when backends were tried and none could be
    // reached, 503 when none was available.
    let status = if tried.is_empty() { 503 } else { 502 };
    http_core::server::log_connection(Some(peer), status, 0, started.elapsed(), &[]);
}
