//! The upgrade tunnel: after a backend's `101 Switching Protocols`, bytes are
//! copied both ways between the client and the backend until both are done.

use std::io;

use http_core::Response;
use tokio::io::AsyncWriteExt;

use super::upstream::UpstreamConn;
use crate::backend::InFlight;

/// Turns the backend's 101 into the client's, then copies bytes both ways: the
/// backend's bytes that followed its 101 first, then the client's bytes that
/// followed its upgrade request (held back until now), then everything else.
pub(crate) fn tunnel(resp: Response, conn: UpstreamConn, guard: InFlight) -> Response {
    resp.on_upgrade(move |client| async move {
        let (mut client, client_early) = client.into_parts();
        let (mut backend, backend_early) = conn.into_parts();
        let early = async {
            if !backend_early.is_empty() {
                client.write_all(&backend_early).await?;
            }
            if !client_early.is_empty() {
                backend.write_all(&client_early).await?;
            }
            io::Result::Ok(())
        };
        if early.await.is_err() {
            return;
        }
        match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            Ok((to_backend, to_client)) => {
                let b = guard.backend();
                b.add_sent(to_backend + client_early.len() as u64);
                b.add_received(to_client + backend_early.len() as u64);
            }
            Err(e) => tracing::debug!(error = %e, "tunnel closed"),
        }
        let _ = backend.shutdown().await;
        let _ = client.shutdown().await;
        drop(guard);
    })
}
