//! `Body::Length` over real TCP on 127.0.0.1: a length with no bytes behind it
//! answers `HEAD`, and is refused (500, close) for any other request.

use std::net::SocketAddr;
use std::time::Duration;

use http_core::{Body, Request, Response, Server, ServerHandle, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `/length` answers every method with `Body::Length(1918)`; anything else
/// with a short text naming the path.
struct LengthService;

impl Service for LengthService {
    async fn call(&self, req: Request<'_>) -> Response {
        match req.head.path() {
            "/length" => Response::new(200)
                .header("Content-Type", "text/html")
                .body(Body::Length(1918)),
            path => Response::text(200, format!("path={path}\n")),
        }
    }
}

async fn start() -> (ServerHandle, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::new(LengthService).spawn(listener).unwrap();
    let addr = handle.local_addr();
    (handle, addr)
}

/// Everything the server sends until it closes (5 s at most: a failure, not a hang).
async fn read_until_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// The response heads and bodies in `text` with their `Date` lines removed.
fn undated(text: &str) -> String {
    text.split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Date: "))
        .collect()
}

#[tokio::test]
async fn head_gets_the_length_and_no_body() {
    let (server, addr) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Pipelined behind the HEAD: a body byte sent for the HEAD would show up
    // between the two answers.
    s.write_all(
        b"HEAD /length HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_until_close(&mut s).await;
    assert_eq!(
        undated(&got),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1918\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\
         Content-Length: 12\r\n\r\npath=/after\n"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn head_from_http10_gets_the_length_too() {
    let (server, addr) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"HEAD /length HTTP/1.0\r\n\r\n").await.unwrap();
    let got = read_until_close(&mut s).await;
    assert_eq!(
        undated(&got),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: 1918\r\n\r\n"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_length_without_body_for_get_is_answered_500_and_closed() {
    let (server, addr) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A keep-alive request: the server closes after the 500 all the same.
    s.write_all(b"GET /length HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_close(&mut s).await;
    let text = "internal error: a length without its body\n";
    assert_eq!(
        undated(&got),
        format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )
    );
    server.shutdown().await;
}
