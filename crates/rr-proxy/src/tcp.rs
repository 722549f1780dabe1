//! TCP mode: each accepted connection goes to the next backend, bytes copied both ways.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::proxy::Shared;

/// Accepts until `shutdown` resolves, then lets open tunnels run for the
/// shutdown timeout before closing them.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(shared.config.max_connections));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                tasks.spawn(async move {
                    relay(&shared, stream, peer).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(shared.config.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "shutdown timeout: closing remaining connections"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Connects `client` to the next healthy backend (trying a bounded number) and
/// copies bytes both ways until both sides are done.
async fn relay(shared: &Shared, mut client: TcpStream, peer: SocketAddr) {
    let started = Instant::now();
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_nodelay(true);
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
                shared.failure(&backend);
                continue;
            }
            Err(_) => {
                tracing::warn!(backend = %backend.addr(), "connecting to backend timed out");
                shared.failure(&backend);
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
        tracing::info!(
            target: "access",
            "{peer} TCP backend={} sent={sent} received={received} {:.3}ms",
            backend.addr(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        return;
    }
    shared.counters.no_backend.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(target: "access", "{peer} TCP no backend available: connection closed");
}
