//! `Server::connection_gauge`: open connections are counted from accept until
//! their task ends, and the count goes back to zero when the server stops.

use std::time::{Duration, Instant};

use http_core::metrics::ConnectionGauge;
use http_core::{Request, Response, Server, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Hello;

impl Service for Hello {
    async fn call(&self, _req: Request<'_>) -> Response {
        Response::text(200, "hello\n")
    }
}

async fn settles(gauge: &ConnectionGauge, want: usize) {
    let start = Instant::now();
    while gauge.get() != want {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "gauge at {}, expected {want}",
            gauge.get()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn exchange(s: &mut TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
}

#[tokio::test]
async fn open_connections_are_counted_until_they_close() {
    let gauge = ConnectionGauge::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::new(Hello)
        .connection_gauge(gauge.clone())
        .spawn(listener)
        .unwrap();
    let addr = handle.local_addr();
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    exchange(&mut a).await;
    exchange(&mut b).await;
    settles(&gauge, 2).await;
    drop(a);
    settles(&gauge, 1).await;
    // Shared with another counter (a second listener, say): counts add up.
    let _other = gauge.enter();
    settles(&gauge, 2).await;
    handle.shutdown().await;
    assert_eq!(gauge.get(), 1, "the server took its own connections off");
    drop(b);
}
