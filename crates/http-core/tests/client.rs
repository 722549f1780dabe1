//! The client role on its own: `ClientConn` against scripted servers, over
//! in-memory streams (exact bytes both ways) and real sockets on 127.0.0.1.

use std::io;
use std::time::Duration;

use http_core::{
    write_header, write_request_line, BodyKind, ClientConn, Error, Limits, Method, ReadHeadError, SendError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(5);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A server that reads one request head (and `body` more bytes), records it, and
/// answers `answer`, then closes.
fn scripted(answer: &'static [u8], body: usize) -> (DuplexStream, tokio::task::JoinHandle<Vec<u8>>) {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(async move {
        let got = read_request(&mut server, body).await;
        let _ = server.write_all(answer).await;
        let _ = server.shutdown().await;
        got
    });
    (client, task)
}

async fn read_request<S: AsyncRead + Unpin>(s: &mut S, body: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + body {
                return got;
            }
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn get<T: AsyncRead + AsyncWrite + Unpin + Send>(conn: &mut ClientConn<T>, path: &str) {
    conn.start_request(BodyKind::Empty, |out| {
        write_request_line(out, "GET", path);
        write_header(out, "Host", b"backend");
    });
}

async fn body_of<T: AsyncRead + AsyncWrite + Unpin + Send>(
    conn: ClientConn<T>,
    head: &http_core::ResponseHead,
) -> (io::Result<Vec<u8>>, bool) {
    let mut body = conn.into_body(head, &Limits::default(), T);
    let mut out = Vec::new();
    let r = body.read_to_end(&mut out).await.map(|_| out);
    let reusable = body.take_conn().is_some();
    (r, reusable)
}

#[test]
fn writes_exact_request_bytes_for_each_framing() {
    rt().block_on(async {
        let (io, server) = scripted(b"HTTP/1.1 204 No Content\r\n\r\n", 0);
        let mut conn = ClientConn::new(io);
        get(&mut conn, "/a?b=1");
        conn.finish_request(T).await.unwrap();
        conn.read_head(Method::Get, &Limits::default(), T).await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            b"GET /a?b=1 HTTP/1.1\r\nHost: backend\r\n\r\n"
        );

        let wire = b"POST /up HTTP/1.1\r\nHost: backend\r\nContent-Length: 11\r\n\r\nhello world";
        let (io, server) = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 11);
        let mut conn = ClientConn::new(io);
        conn.start_request(BodyKind::Length(11), |out| {
            write_request_line(out, "POST", "/up");
            write_header(out, "Host", b"backend");
        });
        conn.send_data(b"hello", T).await.unwrap();
        conn.send_data(b" world", T).await.unwrap();
        conn.finish_request(T).await.unwrap();
        assert_eq!(conn.written(), wire.len() as u64);
        conn.read_head(Method::Post, &Limits::default(), T).await.unwrap();
        assert_eq!(server.await.unwrap(), wire);

        let (io, server) = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 25);
        let mut conn = ClientConn::new(io);
        conn.start_request(BodyKind::Chunked, |out| {
            write_request_line(out, "PUT", "/c");
            write_header(out, "Host", b"backend");
        });
        conn.send_data(b"abc", T).await.unwrap();
        conn.send_data(b"", T).await.unwrap();
        conn.send_data(&[b'x'; 16], T).await.unwrap();
        conn.finish_request(T).await.unwrap();
        conn.read_head(Method::Put, &Limits::default(), T).await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            &b"PUT /c HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n\
               3\r\nabc\r\n10\r\nxxxxxxxxxxxxxxxx\r\n0\r\n\r\n"[..]
        );
    });
}

#[test]
fn a_body_that_disagrees_with_its_length_is_refused_before_it_is_sent() {
    rt().block_on(async {
        let (io, _server) = scripted(b"", 0);
        let mut conn = ClientConn::new(io);
        conn.start_request(BodyKind::Length(3), |out| write_request_line(out, "POST", "/"));
        assert!(matches!(
            conn.send_data(b"four", T).await,
            Err(SendError::Framing(Error::BadContentLength))
        ));
        let (io, _server) = scripted(b"", 0);
        let mut conn = ClientConn::new(io);
        conn.start_request(BodyKind::Length(3), |out| write_request_line(out, "POST", "/"));
        conn.send_data(b"ab", T).await.unwrap();
        assert!(matches!(
            conn.finish_request(T).await,
            Err(SendError::Framing(Error::UnexpectedEof))
        ));
        assert_eq!(conn.written(), 0, "nothing of a broken request left the buffer");
    });
}

/// Every well-framed response kind: the body read, and whether the connection
/// can carry another request afterwards.
#[test]
fn response_bodies_of_every_framing_and_reuse() {
    let cases: &[(&[u8], Method, &[u8], bool)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Method::Get, b"hello", true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=y\r\nllo\r\n0\r\nT: v\r\n\r\n", Method::Get, b"hello", true),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil close", Method::Get, b"until close", false),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", Method::Get, b"ok", false),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", Method::Get, b"ok", false),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", Method::Get, b"ok", true),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::Head, b"", true),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", Method::Get, b"", true),
        (b"HTTP/1.1 204 No Content\r\n\r\n", Method::Get, b"", true),
        // Interim answers are skipped; the final one counts.
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", Method::Post, b"x", true),
        // A byte nobody asked for after the body: never reused.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokX", Method::Get, b"ok", false),
    ];
    rt().block_on(async {
        for (answer, method, want, reusable) in cases {
            let (client, mut server) = tokio::io::duplex(1 << 16);
            let answer = answer.to_vec();
            // The server keeps the connection open: only framing ends a body.
            let keep_open = tokio::spawn(async move {
                read_request(&mut server, 0).await;
                server.write_all(&answer).await.unwrap();
                let until_close = !answer
                    .windows(14)
                    .any(|w| w.eq_ignore_ascii_case(b"content-length"))
                    && !answer.windows(7).any(|w| w == b"chunked");
                if until_close {
                    server.shutdown().await.unwrap();
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(server);
            });
            let mut conn = ClientConn::new(client);
            get(&mut conn, "/");
            conn.finish_request(T).await.unwrap();
            let head = conn.read_head(*method, &Limits::default(), T).await.unwrap();
            let (body, reused) = body_of(conn, &head).await;
            let text = String::from_utf8_lossy(want);
            assert_eq!(body.unwrap(), *want, "{text}");
            assert_eq!(reused, *reusable, "{text}");
            keep_open.abort();
        }
    });
}

/// Every malformed response the proxy answers with 502: refused at the head,
/// or (framing errors inside a body) as a read error; the connection is never
/// reused after either.
#[test]
fn malformed_responses_are_refused() {
    let heads: &[(&[u8], Error)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
            Error::BadResponse,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            Error::BadResponse,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            Error::BadResponse,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
            Error::BadResponse,
        ),
        (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", Error::BadResponse),
        (b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", Error::BadResponse),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", Error::BadResponse),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Error::BadResponse,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            Error::BadResponse,
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Error::BadResponse,
        ),
        (b"HTTP/1.1 2000 OK\r\n\r\n", Error::BadResponse),
        (b"HTTP/2.0 200 OK\r\n\r\n", Error::BadResponse),
        (b"garbage\r\n\r\n", Error::BadResponse),
    ];
    rt().block_on(async {
        for (answer, want) in heads {
            let (io, _server) = scripted(answer, 0);
            let mut conn = ClientConn::new(io);
            get(&mut conn, "/");
            conn.finish_request(T).await.unwrap();
            let got = conn.read_head(Method::Get, &Limits::default(), T).await;
            assert_eq!(
                got.err(),
                Some(ReadHeadError::Malformed(*want)),
                "{}",
                String::from_utf8_lossy(answer)
            );
            assert!(!conn.is_reusable());
        }

        let bodies: &[(&[u8], io::ErrorKind)] = &[
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
                io::ErrorKind::InvalidData,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\n",
                io::ErrorKind::InvalidData,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
                io::ErrorKind::InvalidData,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                io::ErrorKind::UnexpectedEof,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                io::ErrorKind::UnexpectedEof,
            ),
        ];
        for (answer, kind) in bodies {
            let (io, _server) = scripted(answer, 0);
            let mut conn = ClientConn::new(io);
            get(&mut conn, "/");
            conn.finish_request(T).await.unwrap();
            let head = conn.read_head(Method::Get, &Limits::default(), T).await.unwrap();
            let (body, reused) = body_of(conn, &head).await;
            assert_eq!(
                body.map_err(|e| e.kind()).err(),
                Some(*kind),
                "{}",
                String::from_utf8_lossy(answer)
            );
            assert!(!reused);
        }
    });
}

#[test]
fn an_oversized_head_is_refused_as_too_large() {
    rt().block_on(async {
        let limits = Limits {
            max_head_len: 1024,
            ..Limits::default()
        };
        let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..100 {
            answer.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(20)).as_bytes());
        }
        answer.extend_from_slice(b"\r\n");
        let answer: &'static [u8] = Box::leak(answer.into_boxed_slice());
        let (io, _server) = scripted(answer, 0);
        let mut conn = ClientConn::new(io);
        get(&mut conn, "/");
        conn.finish_request(T).await.unwrap();
        assert_eq!(
            conn.read_head(Method::Get, &limits, T).await.err(),
            Some(ReadHeadError::Malformed(Error::HeadTooLarge))
        );
    });
}

#[test]
fn closed_and_silent_servers_are_told_apart() {
    rt().block_on(async {
        let (io, _server) = scripted(b"", 0);
        let mut conn = ClientConn::new(io);
        get(&mut conn, "/");
        conn.finish_request(T).await.unwrap();
        assert_eq!(
            conn.read_head(Method::Get, &Limits::default(), T).await.err(),
            Some(ReadHeadError::Closed { any_bytes: false })
        );
        let (io, _server) = scripted(b"HTTP/1.1 200 O", 0);
        let mut conn = ClientConn::new(io);
        get(&mut conn, "/");
        conn.finish_request(T).await.unwrap();
        assert_eq!(
            conn.read_head(Method::Get, &Limits::default(), T).await.err(),
            Some(ReadHeadError::Closed { any_bytes: true })
        );
        // A server that never answers.
        let (client, _keep) = tokio::io::duplex(4096);
        let mut conn = ClientConn::new(client);
        get(&mut conn, "/");
        conn.finish_request(T).await.unwrap();
        assert_eq!(
            conn.read_head(Method::Get, &Limits::default(), Duration::from_millis(100))
                .await
                .err(),
            Some(ReadHeadError::TimedOut)
        );
    });
}

#[test]
fn a_stalled_body_times_out() {
    rt().block_on(async {
        let (client, mut server) = tokio::io::duplex(4096);
        let _server = tokio::spawn(async move {
            read_request(&mut server, 0).await;
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let mut conn = ClientConn::new(client);
        get(&mut conn, "/");
        conn.finish_request(T).await.unwrap();
        let head = conn.read_head(Method::Get, &Limits::default(), T).await.unwrap();
        let mut body = conn.into_body(&head, &Limits::default(), Duration::from_millis(100));
        let mut out = Vec::new();
        let err = body.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(out, b"abc");
        assert!(body.take_conn().is_none());
    });
}

/// Over real sockets: keep-alive reuse of one connection for several requests,
/// a large body read in pieces, and the bytes after a 101 kept for the tunnel.
#[test]
fn real_sockets_reuse_large_bodies_and_upgrades() {
    rt().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = big.clone();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for _ in 0..2 {
                read_request(&mut s, 0).await;
                s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).as_bytes())
                    .await
                    .unwrap();
                s.write_all(&big).await.unwrap();
            }
            read_request(&mut s, 0).await;
            s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\nfirst",
            )
            .await
            .unwrap();
            let mut rest = [0u8; 4];
            s.read_exact(&mut rest).await.unwrap();
            rest
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut conn = ClientConn::new(stream);
        for _ in 0..2 {
            get(&mut conn, "/big");
            conn.finish_request(T).await.unwrap();
            let head = conn.read_head(Method::Get, &Limits::default(), T).await.unwrap();
            assert_eq!(head.body(), BodyKind::Length(expected.len() as u64));
            let mut body = conn.into_body(&head, &Limits::default(), T);
            let mut out = Vec::new();
            body.read_to_end(&mut out).await.unwrap();
            assert!(out == expected, "the body arrived intact");
            conn = body
                .take_conn()
                .expect("a cleanly framed body leaves the connection reusable");
        }
        get(&mut conn, "/ws");
        conn.finish_request(T).await.unwrap();
        let head = conn.read_head(Method::Get, &Limits::default(), T).await.unwrap();
        assert_eq!(head.status(), 101);
        let (mut stream, early) = conn.into_parts();
        assert_eq!(&early[..], b"first");
        stream.write_all(b"next").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"next");
    });
}

/// Regression (found by the `client_response` fuzz target): after a request that
/// could not be sent whole, a cleanly framed response left the connection
/// "reusable", and the next request would have been read as the rest of this one.
#[test]
fn a_connection_whose_request_was_not_sent_whole_is_never_reused() {
    rt().block_on(async {
        // The server never reads: 64 bytes fit in the pipe, the rest of the
        // request waits until the write timeout; the server answers anyway.
        let (client, mut server) = tokio::io::duplex(64);
        let answer = tokio::spawn(async move {
            server
                .write_all(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 2\r\n\r\nno")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(server);
        });
        let mut conn = ClientConn::new(client);
        conn.start_request(BodyKind::Length(1000), |out| {
            write_request_line(out, "POST", "/upload");
            write_header(out, "Host", b"backend");
        });
        let sent = async {
            conn.send_data(&[b'x'; 1000], Duration::from_millis(100)).await?;
            conn.finish_request(Duration::from_millis(100)).await
        };
        assert!(matches!(sent.await, Err(SendError::TimedOut)));
        assert!(conn.written() > 0 && conn.written() < 1000);
        let head = conn.read_head(Method::Post, &Limits::default(), T).await.unwrap();
        assert_eq!(head.status(), 413);
        let (body, reused) = body_of(conn, &head).await;
        assert_eq!(body.unwrap(), b"no");
        assert!(!reused, "half a request is still on this connection");
        answer.abort();
    });
}

/// After a 101 the connection carries another protocol: never handed back for
/// HTTP requests, even with nothing buffered.
#[test]
fn a_switched_connection_is_never_reused() {
    rt().block_on(async {
        let (io, _server) = scripted(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
            0,
        );
        let mut conn = ClientConn::new(io);
        get(&mut conn, "/ws");
        conn.finish_request(T).await.unwrap();
        let head = conn.read_head(Method::Get, &Limits::default(), T).await.unwrap();
        assert_eq!(head.status(), 101);
        assert!(!conn.is_reusable());
    });
}
