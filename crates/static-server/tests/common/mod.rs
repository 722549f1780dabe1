//! The static-server behaviour tests' fixtures: a temporary site whose files
//! have a fixed modification time, a server on its own runtime bound to
//! 127.0.0.1:0, and multipart/byteranges parsing. The clients (ureq, curl, a raw
//! socket) and the temporary directory are test-support's.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use http_core::ServerHandle;
use static_server::{Builder, StaticFiles};
use test_support::{agent, find, runtime, send, RawConn, Reply, TempDir};

/// A fixed modification time (2021-01-01T00:00:00.5Z) so dates are predictable.
pub fn fixed_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(1_609_459_200, 500_000_000)
}

/// `fixed_time()` as an HTTP date (whole seconds).
pub const FIXED_DATE: &str = "Fri, 01 Jan 2021 00:00:00 GMT";

/// A temporary directory: `base/` holds files outside the served root,
/// `base/root/` is the root. Removed on drop.
pub struct Site {
    pub base: PathBuf,
    pub root: PathBuf,
    dir: TempDir,
}

impl Site {
    pub fn new(tag: &str) -> Site {
        let dir = TempDir::new(tag);
        let root = dir.dir("root");
        Site {
            base: dir.path().to_path_buf(),
            root,
            dir,
        }
    }

    /// Writes `data` to `rel` under the root (parents created), mtime fixed.
    pub fn file(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        self.outside(Path::new("root").join(rel), data)
    }

    /// Creates a directory under the root.
    pub fn dir(&self, rel: &str) -> PathBuf {
        self.dir.dir(Path::new("root").join(rel))
    }

    /// Writes `data` to `rel` under the base, i.e. outside the root (parents
    /// created), mtime fixed.
    pub fn outside(&self, rel: impl AsRef<Path>, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.file(rel, data);
        set_mtime(&p, fixed_time());
        p
    }

    /// A symbolic link at `rel` (under the root) pointing to `target` as given.
    pub fn symlink(&self, rel: &str, target: impl AsRef<Path>) {
        std::os::unix::fs::symlink(target, self.root.join(rel)).unwrap();
    }
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
        let rt = runtime();
        let files = configure(StaticFiles::builder(&site.root)).build().unwrap();
        let handle = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            files.spawn(listener).unwrap()
        });
        let addr = handle.local_addr();
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0);
        Srv {
            rt,
            handle: Some(handle),
            addr,
            agent: agent(),
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
        send(req, None).unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Reply {
        self.ureq("GET", target, headers)
    }

    /// A fresh raw connection.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.addr)
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
