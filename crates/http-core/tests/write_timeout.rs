//! Regression: a client that never reads its download was closed only after two
//! write timeouts (the failed flush, then again when closing tried to send the
//! same buffered bytes), about 60 s where the README promises 30.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_core::{serve_connection, Body, Limits, Request, Response, Service, ShutdownSignal};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// An endless streamed download of a declared length.
struct Download;

impl Service for Download {
    async fn call(&self, _req: Request<'_>) -> Response {
        Response::new(200).body(Body::Stream {
            len: Some(1 << 40),
            reader: Box::new(tokio::io::repeat(b'x')),
        })
    }
}

#[tokio::test]
async fn never_reading_client_is_closed_after_one_write_timeout() {
    let write_timeout = Duration::from_millis(800);
    let limits = Limits {
        write_timeout,
        ..Limits::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server_side, peer) = listener.accept().await.unwrap();
    client
        .write_all(b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let served = tokio::spawn(serve_connection(
        server_side,
        Some(peer),
        Arc::new(Download),
        Arc::new(limits),
        ShutdownSignal::never(),
    ));
    // The client never reads; the server fills the socket buffers within
    // milliseconds, then must give up one write timeout later.
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the connection was never closed")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= write_timeout,
        "closed after {took:?}, before the write timeout"
    );
    assert!(
        took < write_timeout * 3 / 2,
        "closed after {took:?}: more than one write timeout ({write_timeout:?})"
    );
    drop(client);
}
