//! Shared helpers for the static-server behaviour tests: a temporary site, a
//! server on its own runtime bound to 127.0.0.1:0, and three clients written
//! elsewhere or by hand — ureq, curl, and a raw tokio `TcpStream` — each with a
//! timeout on every read.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http_core::ServerHandle;
use static_server::{Builder, StaticFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single network wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A fixed modification time (2021-01-01T00:00:00.5Z) so dates are predictable.
pub fn fixed_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(1_609_459_200, 500_000_000)
}

/// `fixed_time()` as an HTTP date (whole seconds).
pub const FIXED_DATE: &str = "Fri, 01 Jan 2021 00:00:00 GMT";

/// A unique directory under the system temp dir: `base/` holds files outside
/// the served root, `base/root/` is the root. Removed on drop.
pub struct Site {
    pub base: PathBuf,
    pub root: PathBuf,
}

impl Site {
    pub fn new(tag: &str) -> Site {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let base = std::env::temp_dir().join(format!(
            "static-server-test-{}-{tag}-{n}-{nanos:x}",
            std::process::id()
        ));
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        Site { base, root }
    }

    /// Writes `data` to `rel` under the root (parents created), mtime fixed.
    pub fn file(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.root.join(rel);
        write_file(&p, data.as_ref());
        p
    }

    /// Creates a directory under the root.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Writes `data` to `rel` under the base, i.e. outside the root.
    pub fn outside(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.base.join(rel);
        write_file(&p, data.as_ref());
        p
    }

    /// A symbolic link at `rel` (under the root) pointing to `target` as given.
    pub fn symlink(&self, rel: &str, target: impl AsRef<Path>) {
        std::os::unix::fs::symlink(target, self.root.join(rel)).unwrap();
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

pub fn write_file(p: &Path, data: &[u8]) {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, data).unwrap();
    set_mtime(p, fixed_time());
}

pub fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Deterministic, non-repeating-looking content of `len` bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / 251) % 251) as u8).collect()
}

/// A server over a [`Site`], on its own multi-thread runtime.
pub struct Srv {
    pub rt: tokio::runtime::Runtime,
    handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    agent: ureq::Agent,
    pub site: Site,
}

impl Srv {
    /// Builds `StaticFiles` over `site.root` with `configure` applied and spawns it.
    pub fn start(site: Site, configure: impl FnOnce(Builder) -> Builder) -> Srv {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let files = configure(StaticFiles::builder(&site.root)).build().unwrap();
        let handle = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            files.spawn(listener).unwrap()
        });
        let addr = handle.local_addr();
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0);
        let agent = ureq::AgentBuilder::new().redirects(0).timeout(TIMEOUT).build();
        Srv {
            rt,
            handle: Some(handle),
            addr,
            agent,
            site,
        }
    }

    pub fn url(&self, target: &str) -> String {
        format!("http://{}{}", self.addr, target)
    }

    /// A request through ureq (which normalises the path: use it for normal targets only).
    pub fn ureq(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.request(method, &self.url(target));
        for (n, v) in headers {
            req = req.set(n, v);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {target}: {e}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .flat_map(|n| {
                resp.all(&n)
                    .into_iter()
                    .map(|v| (n.clone(), v.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut body = Vec::new();
        if method != "HEAD" {
            std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
        }
        Reply {
            status,
            headers,
            body,
            raw: Vec::new(),
        }
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Reply {
        self.ureq("GET", target, headers)
    }

    /// A fresh raw connection.
    pub fn raw(&self) -> RawConn {
        let handle = self.rt.handle().clone();
        let addr = self.addr;
        let stream = handle.block_on(async {
            tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
                .await
                .expect("connect timed out")
                .unwrap()
        });
        RawConn {
            rt: handle,
            stream,
            buf: Vec::new(),
        }
    }

    /// `GET target` with `extra` header lines on a fresh connection; one response.
    pub fn raw_get(&self, target: &str, extra: &str) -> Reply {
        let mut c = self.raw();
        c.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n").as_bytes());
        c.response(false)
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(3), h.shutdown()).await });
        }
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// In order, names as sent (ureq lowercases them).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The whole response as received (raw connections only).
    pub raw: Vec<u8>,
}

impl Reply {
    /// The only value of header `name`; panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} appears {} times", all.len());
        all.first().copied()
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Asserts `name: value` is present exactly once.
    #[track_caller]
    pub fn expect(&self, name: &str, value: &str) -> &Self {
        assert_eq!(
            self.header(name),
            Some(value),
            "header {name} in {:?}",
            self.headers
        );
        self
    }

    #[track_caller]
    pub fn expect_absent(&self, name: &str) -> &Self {
        assert_eq!(self.header(name), None, "header {name} in {:?}", self.headers);
        self
    }

    /// Headers except `Date`, lowercased names, for comparing two answers.
    pub fn comparable_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw TCP connection that writes exact bytes and parses responses by hand.
pub struct RawConn {
    rt: tokio::runtime::Handle,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn send(&mut self, bytes: &[u8]) {
        let s = &mut self.stream;
        self.rt.block_on(async {
            tokio::time::timeout(TIMEOUT, s.write_all(bytes))
                .await
                .expect("write timed out")
                .unwrap();
        });
    }

    /// Reads more bytes into the buffer; 0 at EOF (or reset).
    fn fill(&mut self) -> usize {
        let s = &mut self.stream;
        let mut chunk = vec![0u8; 256 * 1024];
        let n = self.rt.block_on(async {
            match tokio::time::timeout(TIMEOUT, s.read(&mut chunk)).await {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => 0,
                Err(_) => panic!("read timed out after {TIMEOUT:?}"),
            }
        });
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response. `head_request`: the request was HEAD (no body follows).
    /// The body is framed by `Content-Length`; 1xx, 204 and 304 have none.
    pub fn response(&mut self, head_request: bool) -> Reply {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
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

    /// True if the server closes the connection (EOF or reset) with no further
    /// bytes, within the timeout.
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }

    /// Bytes buffered but not yet parsed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
pub struct Part {
    pub content_type: String,
    pub content_range: String,
    pub data: Vec<u8>,
}

/// The boundary named by a `multipart/byteranges; boundary=...` Content-Type.
pub fn boundary_of(content_type: &str) -> String {
    let rest = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type}"));
    assert!(
        !rest.is_empty() && !rest.contains([';', ' ', '"']),
        "boundary {rest:?}"
    );
    rest.to_owned()
}

/// Parses a multipart/byteranges body strictly (RFC 9110 §14.6, RFC 2046): every
/// part's length is taken from its Content-Range, and the delimiters must be exact.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let delim = format!("--{boundary}");
    let mut rest = body;
    let mut parts = Vec::new();
    rest = rest
        .strip_prefix(delim.as_bytes())
        .unwrap_or_else(|| panic!("body does not start with the boundary"));
    loop {
        if rest == b"--\r\n" {
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after the boundary");
        let end = find(rest, b"\r\n\r\n").expect("end of part headers");
        let head = std::str::from_utf8(&rest[..end]).unwrap();
        rest = &rest[end + 4..];
        let mut content_type = None;
        let mut content_range = None;
        for line in head.split("\r\n") {
            let (n, v) = line.split_once(':').unwrap();
            match n.to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(v.trim().to_owned()),
                "content-range" => content_range = Some(v.trim().to_owned()),
                other => panic!("unexpected part header {other}"),
            }
        }
        let content_range = content_range.expect("part without Content-Range");
        let (start, end) = parse_content_range(&content_range).0;
        let len = (end - start + 1) as usize;
        parts.push(Part {
            content_type: content_type.expect("part without Content-Type"),
            content_range,
            data: rest[..len].to_vec(),
        });
        rest = &rest[len..];
        rest = rest.strip_prefix(b"\r\n").expect("CRLF before the next boundary");
        rest = rest
            .strip_prefix(delim.as_bytes())
            .expect("boundary after a part");
    }
}

/// `bytes S-E/LEN` → ((S, E), LEN).
pub fn parse_content_range(v: &str) -> ((u64, u64), u64) {
    let r = v
        .strip_prefix("bytes ")
        .unwrap_or_else(|| panic!("Content-Range {v:?}"));
    let (range, len) = r.split_once('/').unwrap();
    let (s, e) = range.split_once('-').unwrap();
    ((s.parse().unwrap(), e.parse().unwrap()), len.parse().unwrap())
}

/// Runs curl with `args` (plus `-s -S --max-time`); `None` (with the reason
/// printed) when curl is not installed. CI installs it.
pub fn curl(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("curl")
        .args(["-s", "-S", "--max-time", "10"])
        .args(args)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            eprintln!("SKIPPED: curl is not available ({e}); install curl to run this check");
            None
        }
    }
}
