//! The connection driver over real TCP on 127.0.0.1 and over in-memory duplex pipes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_core::{Body, Limits, Request, Response, Server, Service, ShutdownSignal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use test_support::{agent, read_head, read_response, read_to_close, status_of};

/// A service whose behaviour is chosen by the path; it counts the requests it sees.
#[derive(Default)]
struct TestService {
    seen: AtomicUsize,
}

impl Service for TestService {
    async fn call(&self, mut req: Request<'_>) -> Response {
        self.seen.fetch_add(1, Ordering::SeqCst);
        match req.head.path() {
            "/echo" => match req.body.to_bytes(1 << 20).await {
                Ok(body) => Response::new(200)
                    .header("X-Len", body.len().to_string())
                    .body(body),
                Err(_) => Response::text(500, "body failed\n"),
            },
            "/slow" => {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Response::text(200, "slow done\n")
            }
            "/stream" => Response::new(200).body(Body::Stream {
                len: None,
                reader: Box::new(std::io::Cursor::new(b"streamed-body".repeat(3))),
            }),
            "/short-stream" => Response::new(200).body(Body::Stream {
                len: Some(100),
                reader: Box::new(std::io::Cursor::new(b"only ten!!".to_vec())),
            }),
            "/big" => Response::new(200).body(Bytes::from(vec![b'x'; 100_000])),
            "/upgrade" => Response::new(101)
                .header("Upgrade", "echo")
                .on_upgrade(|mut up| async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = up.read(&mut buf).await {
                        if n == 0 || up.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }),
            "/no-content" => Response::new(204),
            _ => Response::text(200, format!("target={}\n", req.head.target())),
        }
    }
}

struct TestServer {
    addr: SocketAddr,
    service: Arc<TestService>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start(limits: Limits) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = Arc::new(TestService::default());
        let (tx, rx) = oneshot::channel::<()>();
        let server = Server::from_arc(service.clone())
            .limits(limits)
            .shutdown_timeout(Duration::from_secs(5));
        let done = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            addr,
            service,
            stop: Some(tx),
            done,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    for i in 0..3 {
        s.write_all(format!("GET /n{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let r = read_response(&mut s).await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with(&format!("target=/n{i}\n")), "{r}");
        assert!(r.contains("\r\nDate: "), "{r}");
        assert!(!r.contains("Connection: close"), "{r}");
    }
    assert_eq!(srv.service.seen.load(Ordering::SeqCst), 3);
}

/// A duplex end that counts the writes made on it.
struct CountingIo {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(_))) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl http_core::Io for CountingIo {}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_in_one_write() {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let io = CountingIo {
        inner: server,
        writes: writes.clone(),
    };
    let mut pipeline = String::new();
    for i in 0..10 {
        pipeline.push_str(&format!("GET /p{i} HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
    // Everything is buffered before the server reads a byte.
    client.write_all(pipeline.as_bytes()).await.unwrap();
    let conn = tokio::spawn(http_core::serve_connection(
        io,
        None,
        Arc::new(TestService::default()),
        Arc::new(Limits::default()),
        ShutdownSignal::never(),
    ));
    for i in 0..10 {
        let r = read_response(&mut client).await;
        assert!(
            r.ends_with(&format!("target=/p{i}\n")),
            "response {i} out of order: {r}"
        );
    }
    assert_eq!(
        writes.load(Ordering::SeqCst),
        1,
        "ten buffered requests, one write"
    );
    drop(client);
    conn.await.unwrap();
}

#[tokio::test]
async fn http10_closes_unless_keep_alive_is_asked() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /a HTTP/1.0\r\n\r\n").await.unwrap();
    let (r, closed) = read_to_close(&mut s).await;
    assert!(closed);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
    assert!(r.ends_with("target=/a\n"));

    let mut s = srv.connect().await;
    for _ in 0..2 {
        s.write_all(b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let r = read_response(&mut s).await;
        assert!(r.contains("\r\nConnection: keep-alive\r\n"), "{r}");
        assert!(r.ends_with("target=/k\n"));
    }
}

#[tokio::test]
async fn expect_continue_is_answered_when_the_body_is_read() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let r = read_response(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\nhello"), "{r}");
}

#[tokio::test]
async fn expect_continue_is_not_sent_when_the_service_ignores_the_body() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"POST /ignored HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let (r, closed) = read_to_close(&mut s).await;
    assert!(closed, "the body was never invited, so the connection closes");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(!r.contains("100 Continue"), "{r}");
    assert!(r.contains("Connection: close"), "{r}");
}

#[tokio::test]
async fn unread_small_body_is_drained_and_the_connection_kept() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"POST /ignored HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let r1 = read_response(&mut s).await;
    let r2 = read_response(&mut s).await;
    assert!(r1.ends_with("target=/ignored\n"), "{r1}");
    assert!(r2.ends_with("target=/next\n"), "{r2}");
    assert_eq!(
        srv.service.seen.load(Ordering::SeqCst),
        2,
        "the body was not taken for a request"
    );
}

#[tokio::test]
async fn header_timeout_answers_408_and_closes() {
    let limits = Limits {
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let srv = TestServer::start(limits).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let (r, closed) = read_to_close(&mut s).await;
    assert!(closed);
    assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{r}");
    assert!(r.contains("Connection: close"), "{r}");
    assert_eq!(srv.service.seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn idle_connection_closes_silently_after_keep_alive_timeout() {
    let limits = Limits {
        keep_alive_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let srv = TestServer::start(limits).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let _ = read_response(&mut s).await;
    let (rest, closed) = read_to_close(&mut s).await;
    assert!(closed);
    assert_eq!(rest, "", "no 408 for a connection that sent nothing");
}

#[tokio::test]
async fn oversized_head_is_431_and_closes() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..2000 {
        req.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(20)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let _ = s.write_all(&req).await; // the server may close before reading it all
    let (r, _) = read_to_close(&mut s).await;
    assert!(
        r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{r}"
    );
    assert_eq!(srv.service.seen.load(Ordering::SeqCst), 0);
}

/// Every row of the bad-input table: exact status, a text body with a correct
/// Content-Length, the connection closed, the service never called, and another
/// client served meanwhile.
#[tokio::test]
async fn bad_input_gets_its_status_and_a_closed_connection() {
    let limits = Limits {
        max_body_len: 1000,
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let srv = TestServer::start(limits).await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n".to_vec(), 400),
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 400),
        (b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n folded\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(), 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(), 400),
        (
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nf0000000000000003\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n".to_vec(), 400),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n".to_vec(), 400),
        (long_target.into_bytes(), 414),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n".to_vec(), 413),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n".to_vec(), 413),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec(), 505),
        (b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec(), 408),
    ];
    let mut other = srv.connect().await;
    for (input, want) in cases {
        let mut s = srv.connect().await;
        let _ = s.write_all(&input).await;
        let (r, closed) = read_to_close(&mut s).await;
        let shown = String::from_utf8_lossy(&input[..input.len().min(120)]).into_owned();
        assert!(closed, "connection left open after {shown:?}");
        assert_eq!(status_of(&r), want, "{shown:?} -> {r}");
        let (head, body) = r.split_once("\r\n\r\n").expect("a complete response");
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(head.contains("\r\nContent-Type: text/plain"), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {}", body.len())),
            "{head}"
        );
        assert!(!body.is_empty());
        // Someone else is unaffected.
        other
            .write_all(b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let r = read_response(&mut other).await;
        assert!(r.ends_with("target=/other\n"), "{r}");
    }
    // Besides the other client's 25 requests, only the five rows with a valid head
    // and a bad chunked body reach the service; the smuggled request behind the
    // overflowing chunk size never does.
    let served = srv.service.seen.load(Ordering::SeqCst);
    assert_eq!(served, 25 + 5, "requests the service saw");
}

#[tokio::test]
async fn chunked_request_body_is_decoded() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_response(&mut s).await;
    assert!(r.contains("\r\nX-Len: 11\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\nhello world"), "{r}");
    // The connection is still usable after the trailer section.
    s.write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.ends_with("target=/after\n"));
}

#[tokio::test]
async fn unknown_length_bodies_are_chunked_for_11_and_close_delimited_for_10() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (r, _) = read_to_close(&mut s).await;
    assert!(r.contains("\r\nTransfer-Encoding: chunked\r\n"), "{r}");
    assert!(
        r.ends_with("\r\n\r\n27\r\nstreamed-bodystreamed-bodystreamed-body\r\n0\r\n\r\n"),
        "{r}"
    );

    let mut s = srv.connect().await;
    s.write_all(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let (r, closed) = read_to_close(&mut s).await;
    assert!(closed, "close-delimited body ends the connection");
    assert!(!r.contains("Transfer-Encoding"), "{r}");
    assert!(!r.contains("Content-Length"), "{r}");
    assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
    assert!(
        r.ends_with("\r\n\r\nstreamed-bodystreamed-bodystreamed-body"),
        "{r}"
    );
}

#[tokio::test]
async fn a_body_shorter_than_declared_aborts_the_connection() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /short-stream HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (r, closed) = read_to_close(&mut s).await;
    assert!(closed);
    assert!(r.contains("Content-Length: 100\r\n"), "{r}");
    assert!(r.ends_with("only ten!!"), "{r}");
}

#[tokio::test]
async fn head_gets_the_headers_of_get_without_a_body() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"HEAD /big HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.contains("\r\nContent-Length: 100000\r\n"), "{head}");
    // The very next bytes are the second response, not a body.
    assert!(read_response(&mut s).await.ends_with("target=/after\n"));
}

#[tokio::test]
async fn no_content_has_no_framing_headers() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /no-content HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (r, _) = read_to_close(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 204 No Content\r\n"), "{r}");
    assert!(
        !r.contains("Content-Length") && !r.contains("Transfer-Encoding"),
        "{r}"
    );
}

#[tokio::test]
async fn upgrade_hands_the_raw_connection_over() {
    let srv = TestServer::start(Limits::default()).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    assert!(head.contains("\r\nUpgrade: echo\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: upgrade\r\n"), "{head}");
    let mut echoed = [0u8; 5];
    s.read_exact(&mut echoed).await.unwrap();
    assert_eq!(
        &echoed, b"early",
        "bytes sent after the request reach the new protocol"
    );
    s.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    s.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let mut srv = TestServer::start(Limits::default()).await;
    let mut busy = srv.connect().await;
    let mut idle = srv.connect().await;
    idle.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let _ = read_response(&mut idle).await;
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = srv.stop.take().unwrap().send(());
    let (r, closed) = read_to_close(&mut busy).await;
    assert!(closed);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("Connection: close"), "{r}");
    assert!(r.ends_with("slow done\n"), "{r}");
    let (rest, closed) = read_to_close(&mut idle).await;
    assert!(closed && rest.is_empty(), "idle connections close at once");
    tokio::time::timeout(Duration::from_secs(5), &mut srv.done)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(srv.addr).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn an_independent_client_is_served() {
    let srv = TestServer::start(Limits::default()).await;
    let base = format!("http://{}", srv.addr);
    let (get, post) = tokio::task::spawn_blocking(move || {
        let agent = agent();
        let get = agent.get(&format!("{base}/hello?x=1")).call().unwrap();
        let get = (get.status(), get.into_string().unwrap());
        let post = agent
            .post(&format!("{base}/echo"))
            .send_string("payload")
            .unwrap();
        let post = (
            post.status(),
            post.header("x-len").map(str::to_owned),
            post.into_string().unwrap(),
        );
        (get, post)
    })
    .await
    .unwrap();
    assert_eq!(get, (200, "target=/hello?x=1\n".to_owned()));
    assert_eq!(post, (200, Some("7".to_owned()), "payload".to_owned()));
}

/// At the connection limit a waiting client is let in as soon as a connection
/// is idle (the idle one is closed to make room), but not while all are busy.
#[tokio::test]
async fn connections_over_the_limit_wait_for_one_to_be_idle() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Server::new(TestService::default())
        .max_connections(1)
        .spawn(listener)
        .unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The second connection is only in the listen backlog while the first is busy.
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(200), second.read(&mut byte)).await;
    assert!(early.is_err(), "served while the limit was reached");
    // Once answered, the first connection is idle and gives way.
    assert!(read_response(&mut first).await.ends_with("slow done\n"));
    assert!(read_response(&mut second).await.ends_with("target=/two\n"));
    let closed = tokio::time::timeout(Duration::from_secs(2), first.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the idle connection was closed: {closed:?}"
    );
    handle.shutdown().await;
}

/// Under load the listener defers accepting until a connection's first bytes
/// arrive; a client that connects and only writes later must still be served,
/// as must one whose request arrives at once, on both sides of the switch.
#[tokio::test]
async fn clients_are_served_whether_accept_is_deferred_or_not() {
    let srv = TestServer::start(Limits::default()).await;
    // Open keep-alive connections count as load: deferral switches on.
    let mut busy = Vec::new();
    for i in 0..4 {
        let mut s = srv.connect().await;
        s.write_all(format!("GET /busy{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        assert!(read_response(&mut s)
            .await
            .ends_with(&format!("target=/busy{i}\n")));
        busy.push(s);
    }
    // Connects now, speaks after a pause longer than the deferral period.
    let mut late = srv.connect().await;
    let mut prompt = srv.connect().await;
    prompt.write_all(b"GET /prompt HTTP/1.0\r\n\r\n").await.unwrap();
    let (r, closed) = read_to_close(&mut prompt).await;
    assert!(closed && r.ends_with("target=/prompt\n"), "{r}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    late.write_all(b"GET /late HTTP/1.0\r\n\r\n").await.unwrap();
    let (r, closed) = read_to_close(&mut late).await;
    assert!(closed && r.ends_with("target=/late\n"), "{r}");
    // Load gone: deferral switches off again and a fresh client is served.
    drop(busy);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /after HTTP/1.0\r\n\r\n").await.unwrap();
    let (r, closed) = read_to_close(&mut s).await;
    assert!(closed && r.ends_with("target=/after\n"), "{r}");
    assert_eq!(srv.service.seen.load(Ordering::SeqCst), 7);
}
