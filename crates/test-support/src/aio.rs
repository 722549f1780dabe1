//! The same clients for async tests (tokio), over any `AsyncRead`: a TCP
//! stream, half of one, or an in-memory duplex pipe. Also the runtime and the
//! loopback listener the blocking tests serve on.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use crate::wire::{content_length, head_len};
use crate::{SHORT_TIMEOUT, TIMEOUT};

/// A multi-thread runtime with two workers, like a small server.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A listener on 127.0.0.1 and a port of the system's choosing, made on `rt`,
/// and its address.
pub fn bind(rt: &Runtime) -> (TcpListener, SocketAddr) {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Reads until the peer closes, for at most [`SHORT_TIMEOUT`]: what came, as
/// text, and whether the peer closed in time (a failure to note, not a hang).
pub async fn read_to_close<R: AsyncRead + Unpin>(s: &mut R) -> (String, bool) {
    let mut out = Vec::new();
    let r = tokio::time::timeout(SHORT_TIMEOUT, s.read_to_end(&mut out)).await;
    (String::from_utf8_lossy(&out).into_owned(), r.is_ok())
}

/// Reads one response head (through the blank line), byte by byte, so nothing
/// after it is consumed. Panics if the peer closes first or a byte takes longer
/// than [`SHORT_TIMEOUT`].
pub async fn read_head<R: AsyncRead + Unpin>(s: &mut R) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(SHORT_TIMEOUT, s.read(&mut byte))
            .await
            .expect("response head in time")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed inside a head: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    String::from_utf8(buf).unwrap()
}

/// Reads exactly one response framed by its `Content-Length` (none: no body),
/// head and body as text.
pub async fn read_response<R: AsyncRead + Unpin>(s: &mut R) -> String {
    let head = read_head(s).await;
    let len = content_length(&head).unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// Reads the next request head from `s` as a server would: bytes after it stay
/// in `buf` for the next call. `None` when the peer closes or nothing arrives
/// within [`TIMEOUT`].
pub async fn next_head<R: AsyncRead + Unpin>(s: &mut R, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = head_len(buf) {
            let head: Vec<u8> = buf.drain(..end).collect();
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(TIMEOUT, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}
