//! Blocking raw TCP clients: exact bytes out, responses read by hand, every
//! read bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::wire::{find, head_len};
use crate::{Reply, SHORT_TIMEOUT, TIMEOUT};

/// Whether something accepts a TCP connection at `addr` within a second.
pub fn accepts_connections(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Writes `bytes` on a fresh connection to `addr` and reads until the peer
/// closes (or resets), or [`SHORT_TIMEOUT`] passes: what came, as text.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(SHORT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(SHORT_TIMEOUT)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + SHORT_TIMEOUT;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads from `s` into `buf` until `buf` holds `needle`; panics if the peer
/// closes first or a read waits longer than [`TIMEOUT`].
#[track_caller]
pub fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, needle: &[u8]) {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut chunk = [0u8; 4096];
    while find(buf, needle).is_none() {
        let n = s.read(&mut chunk).expect("read within the timeout");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A raw TCP connection that writes exact bytes and parses the responses by hand,
/// strictly: an `HTTP/1.1` status line, well-formed header lines, bodies framed
/// by `Content-Length` (chunked ones are refused). Every read and write waits at
/// most [`TIMEOUT`].
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connects to `addr`.
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream =
            TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes`.
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("write: {e}");
        }
    }

    /// Reads more bytes into the buffer; 0 at EOF (or reset).
    #[track_caller]
    fn fill(&mut self) -> usize {
        let mut chunk = vec![0u8; 256 * 1024];
        let n = match self.stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("read timed out after {TIMEOUT:?}")
            }
            Err(_) => 0,
        };
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response. `head_request`: the request was HEAD (no body follows).
    /// The body is framed by `Content-Length`; 1xx, 204 and 304 have none.
    #[track_caller]
    pub fn response(&mut self, head_request: bool) -> Reply {
        let head_end = loop {
            if let Some(end) = head_len(&self.buf) {
                break end;
            }
            assert!(
                self.fill() > 0,
                "connection closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .expect("head is not UTF-8")
            .to_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {status_line:?}");
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (n, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            assert_eq!(n.trim(), n, "whitespace in header name {n:?}");
            headers.push((n.to_owned(), v.trim().to_owned()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
            raw: Vec::new(),
        };
        assert_eq!(reply.header("Transfer-Encoding"), None, "unexpected chunked body");
        let bodiless = head_request || status < 200 || status == 204 || status == 304;
        let len = if bodiless {
            0
        } else {
            reply
                .header("Content-Length")
                .unwrap_or_else(|| panic!("no Content-Length in {head}"))
                .parse::<usize>()
                .unwrap()
        };
        while self.buf.len() < head_end + len {
            assert!(self.fill() > 0, "connection closed inside a body");
        }
        reply.raw = self.buf.drain(..head_end + len).collect();
        reply.body = reply.raw[head_end..].to_vec();
        reply
    }

    /// True if the peer closes the connection (EOF or reset) with no further
    /// bytes, within the timeout.
    #[track_caller]
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }
}
