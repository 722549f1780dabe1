//! `Service::on_response`: called once per response written, with what the
//! access line says, and for requests the driver refused itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_core::{AccessRecord, Error, Request, Response, Server, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one record said: the target, status, bytes, refusal and field count.
type Seen = (Option<String>, u16, Option<u64>, Option<Error>, usize);

#[derive(Default)]
struct Recording {
    seen: Mutex<Vec<Seen>>,
}

impl Service for Recording {
    async fn call(&self, req: Request<'_>) -> Response {
        Response::text(200, format!("hello {}\n", req.head.path()))
            .log_field("backend", http_core::LogValue::Text("b1".into()))
    }

    fn on_response(&self, r: &AccessRecord<'_>) {
        assert!(r.peer.is_some());
        assert!(r.elapsed < Duration::from_secs(5));
        self.seen.lock().unwrap().push((
            r.head.map(|h| h.target().to_owned()),
            r.status,
            r.bytes,
            r.refused,
            r.fields.len(),
        ));
    }
}

#[tokio::test]
async fn every_response_and_every_refusal_is_reported_once() {
    let svc = Arc::new(Recording::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::from_arc(svc.clone()).spawn(listener).unwrap();
    let addr = handle.local_addr();

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert_eq!(out.windows(8).filter(|w| w == b"HTTP/1.1").count(), 2);

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"HTTP/1.1 400 "));

    handle.shutdown().await;
    let seen = svc.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (Some("/a".to_owned()), 200, Some(9), None, 1),
            (Some("/bb".to_owned()), 200, Some(10), None, 1),
            (None, 400, Some(23), Some(Error::BadContentLength), 0),
        ]
    );
}
