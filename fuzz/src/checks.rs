//! The body of every fuzz target: one function per target taking the raw input.
//!
//! The fuzz targets in `fuzz/fuzz_targets/` call these through the `rr_http_fuzz`
//! library; `crates/cli/tests/fuzz_corpus_replay.rs` includes this same file with
//! `#[path]` and runs every committed corpus input through it on stable, so the
//! checks are written once. Each function returns normally on any input the code
//! handles correctly and panics on a broken invariant.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http_core::net::{CertPair, TlsConfig};
use http_core::{
    parse_request, parse_response, serve_connection, serve_h2_connection, write_header, write_request_line,
    Body, BodyDecoder, BodyKind, ChunkedDecoder, ChunkedEncoder, ClientConn, H2Limits, Limits, Method,
    ReadHeadError, Request, RequestHead, Response, SendError, Service, ShutdownSignal, H2_PREFACE,
};
use static_server::StaticFiles;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Small limits, so that inputs of a few hundred bytes reach every limit check.
fn small_limits() -> Limits {
    Limits {
        max_uri_len: 256,
        max_head_len: 1024,
        max_headers: 16,
        max_body_len: 4096,
        max_chunk_line_len: 64,
        max_trailer_len: 256,
        ..Limits::default()
    }
}

/// `parse_request` on the input, with default and small limits.
pub fn request_head(data: &[u8]) {
    for limits in [Limits::default(), small_limits()] {
        let Ok(Some(parsed)) = parse_request(data, &limits) else {
            continue;
        };
        let len = parsed.len();
        let body = parsed.body();
        assert!(len > 0 && len <= data.len() && len <= limits.max_head_len);
        assert!(
            body != BodyKind::UntilClose,
            "a request body is never close-delimited"
        );
        // The head is the same without the bytes after it, and a prefix of it is
        // not a complete head.
        let alone = parse_request(&data[..len], &limits)
            .expect("the head alone parses")
            .expect("complete");
        assert_eq!((alone.len(), alone.body()), (len, body));
        assert!(!matches!(parse_request(&data[..len - 1], &limits), Ok(Some(_))));
        let head = parsed.into_head(data[..len].to_vec().into());
        let again =
            RequestHead::parse_complete(data[..len].to_vec().into(), &limits).expect("parse_complete");
        assert_eq!(again.target(), head.target());
        touch_request(&head);
    }
}

/// Every accessor of a request head, checked against the others where they overlap.
fn touch_request(head: &RequestHead) {
    let _ = (head.method(), head.method_str(), head.version(), head.body());
    let (target, path) = (head.target(), head.path());
    assert!(target.len() >= path.len());
    if let Some(q) = head.query() {
        assert!(target.ends_with(q));
    }
    let _ = (head.host(), head.is_absolute_form(), head.keep_alive());
    let _ = (
        head.expects_continue(),
        head.is_upgrade(),
        head.connection_names_fields(),
    );
    let origin = head.origin_form();
    assert!(origin.len() <= target.len());
    let mut n = 0;
    for (name, _) in head.headers() {
        assert!(head.header(name).is_some());
        n += 1;
    }
    assert!(n <= http_core::MAX_HEADERS_CAP);
    assert!(!head.as_bytes().is_empty());
}

/// `parse_response` on the input after its first byte, which picks the request method.
pub fn response_head(data: &[u8]) {
    let Some((&m, data)) = data.split_first() else {
        return;
    };
    let method = [Method::Get, Method::Head, Method::Connect, Method::Post][usize::from(m % 4)];
    for limits in [Limits::default(), small_limits()] {
        let Ok(Some(parsed)) = parse_response(data, method, &limits) else {
            continue;
        };
        let (len, body, status) = (parsed.len(), parsed.body(), parsed.status());
        assert!(len > 0 && len <= data.len() && len <= limits.max_head_len);
        assert!((100..=999).contains(&status));
        if method == Method::Head || (100..200).contains(&status) || status == 204 || status == 304 {
            assert_eq!(body, BodyKind::Empty);
        }
        assert!(!matches!(
            parse_response(&data[..len - 1], method, &limits),
            Ok(Some(_))
        ));
        let head = parsed.into_head(data[..len].to_vec().into());
        assert_eq!((head.status(), head.body()), (status, body));
        if body == BodyKind::UntilClose {
            assert!(!head.keep_alive());
        }
        let _ = (head.reason(), head.version());
        for (name, _) in head.headers() {
            assert!(head.header(name).is_some());
        }
    }
}

/// Everything a `ChunkedDecoder` makes of `input` fed in pieces of the given sizes
/// (cycled; 0 means all the rest): the body, the bytes consumed, done or the error.
fn decode_split(
    input: &[u8],
    limits: &Limits,
    sizes: &[u8],
) -> (Vec<u8>, usize, Result<bool, http_core::Error>) {
    let mut dec = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    // Bytes handed to the decoder so far; it has consumed `pos` of them.
    let (mut avail, mut pos) = (0, 0);
    let mut piece = 0;
    loop {
        let p = match dec.decode(&input[pos..avail]) {
            Ok(p) => p,
            // Where an error is noticed depends on the split; what it is does not.
            Err(e) => return (body, 0, Err(e)),
        };
        assert!(p.data.start <= p.data.end && p.data.end <= p.consumed && p.consumed <= avail - pos);
        body.extend_from_slice(&input[pos..][p.data.clone()]);
        pos += p.consumed;
        // `total` counts the sizes of the chunks begun, data received or not.
        assert!(dec.total() >= body.len() as u64);
        if p.done {
            assert!(dec.is_done());
            assert_eq!(dec.total(), body.len() as u64);
            return (body, pos, Ok(true));
        }
        if p.consumed == 0 || pos == avail {
            if avail == input.len() {
                return (body, pos, Ok(false));
            }
            let size = sizes.get(piece % sizes.len().max(1)).copied().unwrap_or(0);
            piece += 1;
            avail = if size == 0 {
                input.len()
            } else {
                (avail + usize::from(size)).min(input.len())
            };
        }
    }
}

/// The chunked decoder: the input after its first two bytes decoded whole and in
/// pieces must give the same result (the first byte picks the piece sizes); and the
/// same bytes chunk-encoded must decode back to themselves.
pub fn chunked(data: &[u8]) {
    let Some((&[seed, limit], input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = if limit % 2 == 0 {
        Limits::default()
    } else {
        small_limits()
    };
    let whole = decode_split(input, &limits, &[0]);
    let bytewise = decode_split(input, &limits, &[1]);
    assert_eq!(whole, bytewise, "byte-by-byte decoding differs");
    let sizes = [seed % 7 + 1, seed / 7 % 13 + 1, seed / 91 + 1];
    assert_eq!(
        whole,
        decode_split(input, &limits, &sizes),
        "split decoding differs"
    );
    if whole.2 == Ok(true) {
        assert!(whole.1 <= input.len());
    }

    let mut encoded = bytes::BytesMut::new();
    for part in input.chunks(usize::from(seed) + 1) {
        ChunkedEncoder::chunk(part, &mut encoded);
    }
    ChunkedEncoder::finish(&mut encoded);
    let roomy = Limits {
        max_body_len: u64::MAX,
        ..Limits::default()
    };
    let (body, used, end) = decode_split(&encoded, &roomy, &[seed]);
    assert_eq!(end, Ok(true));
    assert_eq!((body.as_slice(), used), (input, encoded.len()));
}

/// The `Range` and `If-*` parsers of the static server. The input is lines: a
/// `Range` value, then `If-Match`, `If-None-Match`, `If-Modified-Since`,
/// `If-Unmodified-Since`, `If-Range` values and the representation's entity-tag;
/// the first eight bytes (before the lines) give the representation's length.
pub fn range_conditional(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*len);
    let mut lines = rest.split(|&b| b == b'\n');
    let range = lines.next().unwrap_or_default();
    for l in [len, len % 1024, 0, u64::MAX] {
        static_server::fuzzing::check_range(range, l);
    }
    let names = [
        "If-Match",
        "If-None-Match",
        "If-Modified-Since",
        "If-Unmodified-Since",
        "If-Range",
    ];
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for name in ["Range"].iter().chain(&names) {
        let value = if *name == "Range" {
            Some(range)
        } else {
            lines.next()
        };
        if let Some(v) = value.filter(|v| !v.is_empty() && !v.contains(&b'\r')) {
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(v);
            raw.extend_from_slice(b"\r\n");
        }
    }
    raw.extend_from_slice(b"\r\n");
    let etag = lines.next().filter(|e| !e.is_empty()).unwrap_or(b"\"fuzz\"");
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    // A value the request parser refuses never reaches the static server.
    if let Ok(head) = RequestHead::parse_complete(raw.into(), &Limits::default()) {
        static_server::fuzzing::check_conditional(&head, etag, modified);
        if let Some(r) = head.header("range") {
            static_server::fuzzing::check_range(r, len);
        }
    }
}

/// A small site in a temporary directory, made once per process: files, a hidden
/// file, a directory, links inside and outside the root, and a link loop.
fn site_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("rr-http-fuzz-site-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["a/b", ".well-known", ".git", "docs"] {
            std::fs::create_dir_all(root.join(dir)).expect("create the fuzz site");
        }
        let files: &[(&str, &[u8])] = &[
            ("index.html", b"<h1>home</h1>\n"),
            ("page.html", b"<p>page</p>\n"),
            ("a/b/c.txt", b"0123456789abcdefghijklmnopqrstuvwxyz\n"),
            ("a/index.html", b"a index\n"),
            ("docs/big.bin", &[b'x'; 70_000]),
            ("docs/style.css", b"body{}\n"),
            ("docs/style.css.gz", b"\x1f\x8bnot really gzip"),
            (".env", b"SECRET=1\n"),
            (".git/config", b"[core]\n"),
            (".well-known/security.txt", b"Contact: x\n"),
            ("caf\u{e9} b.txt", b"cafe\n"),
        ];
        for (name, body) in files {
            std::fs::write(root.join(name), body).expect("write the fuzz site");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            let _ = symlink("/etc", root.join("out"));
            let _ = symlink("/etc/passwd", root.join("a/passwd"));
            let _ = symlink("b", root.join("a/in"));
            let _ = symlink("loop", root.join("loop"));
        }
        std::fs::canonicalize(&root).expect("canonical fuzz site")
    })
}

/// Static path decoding and resolution: the first byte allows dotfiles (odd) or
/// not; the rest is the request path.
pub fn static_path(data: &[u8]) {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    static_server::fuzzing::check_path(raw, flags % 2 == 1, site_root());
}

/// The service of the driver target: a few behaviours picked by the path, and a
/// record of the methods it saw (so that the responses can be parsed in turn).
struct Fuzz {
    methods: Mutex<Vec<Method>>,
    files: Option<StaticFiles>,
}

impl Service for Fuzz {
    async fn call(&self, mut req: Request<'_>) -> Response {
        self.methods.lock().unwrap().push(req.head.method());
        if let Some(files) = &self.files {
            return files.call(req).await;
        }
        let path = req.head.path();
        if path.starts_with("/echo") {
            return match req.body.to_bytes(8192).await {
                Ok(b) => Response::new(200).body(b),
                Err(_) => Response::text(500, "body failed\n"),
            };
        }
        if path.starts_with("/read") {
            let mut n = 0;
            while let Ok(Some(d)) = req.body.data().await {
                n += d.len();
            }
            return Response::text(200, format!("{n}\n"));
        }
        match path {
            "/stream" => Response::new(200).body(Body::Stream {
                len: None,
                reader: Box::new(std::io::Cursor::new(b"streamed ".repeat(5))),
            }),
            "/sized" => Response::new(200).body(Body::Stream {
                len: Some(9),
                reader: Box::new(std::io::Cursor::new(b"nine byte".to_vec())),
            }),
            "/close" => Response::text(200, "bye\n").close(),
            "/204" => Response::new(204),
            "/304" => Response::new(304),
            _ => Response::text(200, "ok\n"),
        }
    }
}

/// The whole connection driver over an in-memory pipe. The first byte picks the
/// service (odd: the static server over [`site_root`]) and the limits; the second
/// the pipe's capacity; then a sequence of writes, each a length byte and that
/// many bytes (a short last piece is written as it is). The client then closes its
/// side and reads to the end. Time is paused, so timeouts cost nothing and an input
/// the driver never finishes (a virtual hour) is reported as a hang.
pub fn driver(data: &[u8]) {
    let Some((&[mode, cap], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let pieces = length_prefixed_pieces(rest);
    let service = Arc::new(Fuzz {
        methods: Mutex::new(Vec::new()),
        files: (mode % 2 == 1).then(|| {
            StaticFiles::builder(site_root())
                .listing(mode & 4 != 0)
                .build()
                .expect("static site")
        }),
    });
    let limits = if mode & 2 == 0 {
        Limits::default()
    } else {
        small_limits()
    };
    let limits = Arc::new(limits);
    let out = over_duplex(16 << (cap % 8), pieces, |server| {
        serve_connection(
            server,
            None,
            service.clone(),
            limits.clone(),
            ShutdownSignal::never(),
        )
    });
    let methods = service.methods.lock().unwrap().clone();
    check_responses(&out, &methods);
}

/// The driver's output is a sequence of well-formed responses, one per request the
/// service saw (plus interim 1xx and at most one error answer), each with exactly
/// the body its head declares; only the last may be cut short by a close.
fn check_responses(mut out: &[u8], methods: &[Method]) {
    let limits = Limits {
        max_body_len: u64::MAX,
        ..Limits::default()
    };
    let mut answered = 0;
    while !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 "),
            "{:?}",
            String::from_utf8_lossy(out)
        );
        let mut method = methods.get(answered).copied().unwrap_or(Method::Get);
        let mut parsed = parse_response(out, method, &limits);
        if let (Method::Head, Ok(Some(p))) = (method, &parsed) {
            // A request whose body turned out malformed is answered with an error
            // that has a body, even for HEAD.
            let after = &out[p.len()..];
            if !after.is_empty() && !after.starts_with(b"HTTP/1.1 ") {
                method = Method::Get;
                parsed = parse_response(out, method, &limits);
            }
        }
        let parsed = match parsed {
            Ok(Some(p)) => p,
            other => panic!("bad response head {other:?}: {:?}", String::from_utf8_lossy(out)),
        };
        let status = parsed.status();
        let body = parsed.body();
        out = &out[parsed.len()..];
        match body {
            BodyKind::Empty => {}
            BodyKind::Length(n) => {
                // A body the driver could not finish aborts the connection.
                let n = usize::try_from(n).unwrap().min(out.len());
                out = &out[n..];
            }
            BodyKind::Chunked => {
                let (_, used, end) = decode_split(out, &limits, &[0]);
                match end {
                    Ok(true) => out = &out[used..],
                    // Cut short by a close.
                    Ok(false) => out = &[],
                    Err(e) => panic!("bad chunked response body: {e}"),
                }
            }
            BodyKind::UntilClose => out = &[],
        }
        if status >= 200 {
            answered += 1;
        }
    }
    assert!(
        answered <= methods.len() + 1,
        "{answered} answers to {} requests",
        methods.len()
    );
}

/// How the server's side of the `client_response` wire ends once all its bytes
/// were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireEnd {
    /// The server closes (reads return 0).
    Close,
    /// The server sends nothing more and keeps the connection open.
    Stall,
    /// The connection is reset.
    Reset,
}

impl WireEnd {
    /// The error a body cut short by this end reads as.
    fn body_error(self) -> io::ErrorKind {
        match self {
            WireEnd::Close => io::ErrorKind::UnexpectedEof,
            WireEnd::Stall => io::ErrorKind::TimedOut,
            WireEnd::Reset => io::ErrorKind::ConnectionReset,
        }
    }
}

/// The server end of a `ClientConn` in `client_response`: it hands out the fuzz
/// input in pieces and records what the client writes.
struct WireState {
    /// Everything the server sends.
    input: Vec<u8>,
    /// Bytes of `input` handed to the client so far.
    pos: usize,
    /// Piece sizes, cycled (0: all the rest).
    sizes: Vec<usize>,
    pieces: usize,
    /// Bytes left in the current piece.
    left: usize,
    /// Each piece is preceded by one `Pending` (woken at once).
    pause: bool,
    paused: bool,
    end: WireEnd,
    /// What the client wrote.
    written: Vec<u8>,
    /// Most bytes taken per write (0: any).
    write_max: usize,
    /// Writes stall for good once this many bytes were taken.
    write_stall: Option<usize>,
    /// Bytes handed out by the last read.
    last_read: usize,
    /// Most room the client ever offered for one read.
    max_room: usize,
}

#[derive(Clone)]
struct Wire(Arc<Mutex<WireState>>);

impl Wire {
    fn state(&self) -> std::sync::MutexGuard<'_, WireState> {
        self.0.lock().unwrap()
    }
}

impl AsyncRead for Wire {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut st = self.state();
        assert!(
            buf.remaining() > 0,
            "a read with no room looks like the end of the stream"
        );
        st.max_room = st.max_room.max(buf.remaining());
        if st.pos == st.input.len() {
            return match st.end {
                WireEnd::Close => Poll::Ready(Ok(())),
                // Nothing wakes the reader: only its own timer can.
                WireEnd::Stall => Poll::Pending,
                WireEnd::Reset => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            };
        }
        if st.left == 0 {
            if st.pause && !st.paused {
                st.paused = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            st.paused = false;
            let size = st.sizes[st.pieces % st.sizes.len()];
            st.pieces += 1;
            st.left = if size == 0 { usize::MAX } else { size };
        }
        let n = st.left.min(st.input.len() - st.pos).min(buf.remaining());
        let pos = st.pos;
        buf.put_slice(&st.input[pos..pos + n]);
        st.pos += n;
        st.left -= n;
        st.last_read = n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.state();
        let mut n = data.len();
        if st.write_max > 0 {
            n = n.min(st.write_max);
        }
        if let Some(at) = st.write_stall {
            let room = at.saturating_sub(st.written.len());
            if room == 0 {
                return Poll::Pending;
            }
            n = n.min(room);
        }
        st.written.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What `read_head` must make of the server's bytes from some offset, worked out
/// on all of them at once.
#[derive(Debug)]
enum HeadExpect {
    /// The final head lies at `start..end` (after any interim 1xx).
    Head {
        start: usize,
        end: usize,
        status: u16,
        body: BodyKind,
        keep_alive: bool,
    },
    /// `read_head` fails so, on the head at `start`.
    Fails { start: usize, err: ReadHeadError },
    /// A malformed byte beyond `max_head_len` of the head at `start`: whether it
    /// is seen before the head is found too large depends on where reads end.
    TooLargeOrBad { start: usize },
}

fn expect_head(s: &[u8], start: usize, method: Method, limits: &Limits, end: WireEnd) -> HeadExpect {
    let mut p = start;
    loop {
        match parse_response(&s[p..], method, limits) {
            Ok(Some(h)) if (100..200).contains(&h.status()) && h.status() != 101 => p += h.len(),
            Ok(Some(h)) => {
                let len = h.len();
                let head = h.into_head(bytes::Bytes::copy_from_slice(&s[p..p + len]));
                return HeadExpect::Head {
                    start: p,
                    end: p + len,
                    status: head.status(),
                    body: head.body(),
                    keep_alive: head.keep_alive(),
                };
            }
            Ok(None) => {
                let err = match end {
                    WireEnd::Stall => ReadHeadError::TimedOut,
                    WireEnd::Close | WireEnd::Reset => ReadHeadError::Closed {
                        any_bytes: s.len() > start,
                    },
                };
                return HeadExpect::Fails { start: p, err };
            }
            Err(http_core::Error::BadResponse)
                if s.len() - p > limits.max_head_len
                    && parse_response(&s[p..p + limits.max_head_len + 1], method, limits)
                        == Err(http_core::Error::HeadTooLarge) =>
            {
                return HeadExpect::TooLargeOrBad { start: p }
            }
            Err(e) => {
                return HeadExpect::Fails {
                    start: p,
                    err: ReadHeadError::Malformed(e),
                }
            }
        }
    }
}

/// The body a response framed as `kind` must read as, its head ending at `at`:
/// the payload, and where the body ends on the wire or the error reading it ends
/// with. Worked out without `BodyDecoder`: a length is a slice, a chunked body
/// goes through `ChunkedDecoder` in one piece.
fn expect_body(
    s: &[u8],
    at: usize,
    kind: BodyKind,
    limits: &Limits,
    end: WireEnd,
) -> (Vec<u8>, Result<usize, io::ErrorKind>) {
    let rest = &s[at..];
    match kind {
        BodyKind::Empty => (Vec::new(), Ok(at)),
        BodyKind::Length(n) => match usize::try_from(n).ok().filter(|&n| n <= rest.len()) {
            Some(n) => (rest[..n].to_vec(), Ok(at + n)),
            None => (rest.to_vec(), Err(end.body_error())),
        },
        BodyKind::Chunked => {
            let (body, used, r) = decode_split(rest, limits, &[0]);
            match r {
                Ok(true) => (body, Ok(at + used)),
                Ok(false) => (body, Err(end.body_error())),
                Err(_) => (body, Err(io::ErrorKind::InvalidData)),
            }
        }
        BodyKind::UntilClose => (
            rest.to_vec(),
            match end {
                WireEnd::Close => Ok(s.len()),
                _ => Err(end.body_error()),
            },
        ),
    }
}

/// One way of feeding the server's bytes to the client.
struct Feed {
    sizes: Vec<usize>,
    pause: bool,
    /// The size of the caller's buffer reading the body.
    read: usize,
}

/// The request side of `client_response`.
struct Exchange {
    method: Method,
    limits: Limits,
    end: WireEnd,
    body: BodyKind,
    data: Vec<u8>,
    write_max: usize,
    write_stall: Option<usize>,
}

/// Up to this many exchanges on one connection, while it is handed back.
const MAX_EXCHANGES: usize = 4;

/// `ClientConn` against arbitrary server bytes. The first byte picks the request
/// method (bits 0-1: GET, HEAD, POST, CONNECT), the limits (bit 2: small), how
/// the server's bytes end (bits 3-4: close, stall, reset, close), the request
/// body (bits 5-6: none, a length, chunked, a length) and whether writes stall
/// (bit 7); the second picks piece sizes; the third the request body's length
/// (bits 0-4), the most bytes per write (bits 5-7) and where writes stall. The
/// rest is what the server sends.
///
/// The bytes are fed whole, byte by byte, and in pieces with a `Pending` before
/// each, with a paused clock (timeouts cost nothing; a hang is a crash). Each time
/// every exchange must agree with [`expect_head`] and [`expect_body`], worked out
/// on all the bytes at once, so the split changes nothing but where reads end.
/// Heads are framed consistently (no interim 1xx; HEAD, 204, 304, 101 and CONNECT
/// 2xx bodiless; close-delimited never kept alive). `take_conn` hands the
/// connection back exactly when the body ended cleanly, the head keeps it alive,
/// the request was sent whole and not a byte past the body was read; then the
/// next exchange reads the bytes that follow. What was written is the request
/// asked for, its body framed as announced.
pub fn client_response(data: &[u8]) {
    let Some((&[mode, split, write], server)) = data.split_first_chunk::<3>() else {
        return;
    };
    let (method, name) = [
        (Method::Get, "GET"),
        (Method::Head, "HEAD"),
        (Method::Post, "POST"),
        (Method::Connect, "CONNECT"),
    ][usize::from(mode & 3)];
    let len = usize::from(write & 31);
    let body = match mode >> 5 & 3 {
        _ if method == Method::Connect => BodyKind::Empty,
        0 => BodyKind::Empty,
        2 => BodyKind::Chunked,
        _ => BodyKind::Length(len as u64),
    };
    let ex = Exchange {
        method,
        limits: if mode & 4 == 0 {
            Limits::default()
        } else {
            small_limits()
        },
        end: [WireEnd::Close, WireEnd::Stall, WireEnd::Reset, WireEnd::Close][usize::from(mode >> 3 & 3)],
        body,
        data: if body == BodyKind::Empty {
            Vec::new()
        } else {
            (0..len).map(|i| b'a' + (i % 26) as u8).collect()
        },
        write_max: usize::from(write >> 5),
        write_stall: (mode & 0x80 != 0).then_some(usize::from(write) / 2),
    };
    let feeds = [
        Feed {
            sizes: vec![0],
            pause: false,
            read: 8192,
        },
        Feed {
            sizes: vec![1],
            pause: false,
            read: 1,
        },
        Feed {
            sizes: [split % 7 + 1, split / 7 % 13 + 1, split / 91 + 1]
                .map(|n| usize::from(n) * usize::from(n))
                .to_vec(),
            pause: true,
            read: [3, 100, 4096][usize::from(split % 3)],
        },
    ];
    for feed in &feeds {
        run_client(server, name, &ex, feed);
    }
}

fn run_client(server: &[u8], name: &str, ex: &Exchange, feed: &Feed) {
    const T: Duration = Duration::from_secs(10);
    let wire = Wire(Arc::new(Mutex::new(WireState {
        input: server.to_vec(),
        pos: 0,
        sizes: feed.sizes.clone(),
        pieces: 0,
        left: 0,
        pause: feed.pause,
        paused: false,
        end: ex.end,
        written: Vec::new(),
        write_max: ex.write_max,
        write_stall: ex.write_stall,
        last_read: 0,
        max_room: 0,
    })));
    let limits = &ex.limits;
    let run = async {
        let mut conn = ClientConn::new(wire.clone());
        for round in 0..MAX_EXCHANGES {
            // Send.
            let w0 = wire.state().written.len();
            conn.start_request(ex.body, |out| {
                let target = if ex.method == Method::Connect {
                    "fuzz:443".to_owned()
                } else {
                    format!("/fuzz/{round}")
                };
                write_request_line(out, name, &target);
                write_header(out, "Host", b"fuzz");
            });
            let half = ex.data.len() / 2;
            let sent = async {
                if ex.body != BodyKind::Empty {
                    conn.send_data(&ex.data[..half], T).await?;
                    conn.send_data(&ex.data[half..], T).await?;
                }
                conn.finish_request(T).await
            }
            .await;
            match &sent {
                Ok(()) => check_request(&wire.state().written[w0..], conn.written(), ex),
                Err(SendError::TimedOut) => assert!(ex.write_stall.is_some()),
                Err(e) => panic!("sending failed: {e}"),
            }

            // The head. A request not sent whole may still be answered (early).
            let start = wire.state().pos;
            let want = expect_head(server, start, ex.method, limits, ex.end);
            let got = conn.read_head(ex.method, limits, T).await;
            let head = match (got, want) {
                (
                    Ok(head),
                    HeadExpect::Head {
                        start,
                        end,
                        status,
                        body,
                        keep_alive,
                    },
                ) => {
                    assert_eq!(
                        (head.status(), head.body(), head.keep_alive()),
                        (status, body, keep_alive)
                    );
                    assert_eq!(&head.as_bytes()[..], &server[start..end]);
                    check_framing(&head, ex.method, limits);
                    (head, end)
                }
                (Err(e), want) => {
                    let start = match want {
                        HeadExpect::Fails { start, err } if err == e => start,
                        HeadExpect::TooLargeOrBad { start }
                            if matches!(
                                e,
                                ReadHeadError::Malformed(
                                    http_core::Error::HeadTooLarge | http_core::Error::BadResponse
                                )
                            ) =>
                        {
                            start
                        }
                        _ => panic!("{e:?}, expected {want:?}"),
                    };
                    // A malformed head is refused without reading far past the limit.
                    if let ReadHeadError::Malformed(_) = e {
                        let st = wire.state();
                        assert!(
                            st.pos - start <= limits.max_head_len + st.last_read,
                            "read {} bytes of a refused head",
                            st.pos - start
                        );
                    }
                    assert!(!conn.is_reusable(), "reusable after {e:?}");
                    return;
                }
                (Ok(head), want) => panic!("got {} {:?}, expected {want:?}", head.status(), head.body()),
            };
            let (head, head_end) = head;

            // The body.
            let (want_body, want_end) = expect_body(server, head_end, head.body(), limits, ex.end);
            let mut body = conn.into_body(&head, limits, T);
            let mut got_body = Vec::new();
            let mut buf = vec![0; feed.read];
            let end = loop {
                match body.read(&mut buf).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => got_body.extend_from_slice(&buf[..n]),
                    Err(e) => break Err(e.kind()),
                }
            };
            assert!(
                got_body == want_body,
                "body {:?}, expected {:?}",
                String::from_utf8_lossy(&got_body),
                String::from_utf8_lossy(&want_body)
            );
            assert_eq!(end, want_end.map(|_| ()), "how the body ended");
            assert_eq!(body.is_end(), end.is_ok());
            assert_eq!(body.received(), got_body.len() as u64);
            let delivered = wire.state().pos;
            let clean_end = want_end.ok();
            let status = head.status();
            // After a protocol switch the connection carries no more requests.
            let switched = status == 101 || (ex.method == Method::Connect && (200..300).contains(&status));
            let framed = head.keep_alive() && !switched && clean_end == Some(delivered);
            let reusable = framed && sent.is_ok();
            match body.take_conn() {
                Some(c) if reusable => conn = c,
                None if !reusable => return,
                taken => panic!(
                    "take_conn {}: sent whole {}, keep-alive {}, body end {clean_end:?}, read up to {delivered}",
                    if taken.is_some() { "Some" } else { "None" },
                    sent.is_ok(),
                    head.keep_alive(),
                ),
            }
        }
    };
    paused_runtime(async {
        tokio::time::timeout(Duration::from_secs(3600), run)
            .await
            .expect("the client hung")
    });
    // A read buffer of a size set by the limits, whatever the server sends.
    let room = wire.state().max_room;
    assert!(
        room <= 4 * (limits.max_head_len + 64 * 1024),
        "a read into {room} bytes"
    );
}

/// The framing rules a response head must follow whatever the server sent.
fn check_framing(head: &http_core::ResponseHead, method: Method, limits: &Limits) {
    let s = head.status();
    assert!(!(100..200).contains(&s) || s == 101, "interim {s} handed out");
    if method == Method::Head
        || matches!(s, 101 | 204 | 304)
        || (method == Method::Connect && (200..300).contains(&s))
    {
        assert_eq!(head.body(), BodyKind::Empty, "{method:?} {s}");
    }
    if head.body() == BodyKind::UntilClose {
        assert!(!head.keep_alive());
    }
    assert!(head.as_bytes().len() <= limits.max_head_len);
}

/// What the client wrote for one request: the request asked for, its body framed
/// as announced, and `written` counts it all.
fn check_request(sent: &[u8], written: u64, ex: &Exchange) {
    assert_eq!(written, sent.len() as u64);
    let parsed = parse_request(sent, &Limits::default())
        .expect("the client's request parses")
        .expect("the client's request is complete");
    let len = parsed.len();
    let head = parsed.into_head(sent[..len].to_vec().into());
    assert_eq!(head.method(), ex.method);
    let mut dec = BodyDecoder::new(head.body(), &Limits::default());
    let mut body = Vec::new();
    let mut pos = len;
    while !dec.is_done() {
        let p = dec
            .decode(&sent[pos..])
            .expect("the client's request body decodes");
        assert!(p.consumed > 0 || p.done, "request body cut short");
        body.extend_from_slice(&sent[pos..][p.data.clone()]);
        pos += p.consumed;
    }
    assert_eq!((body.as_slice(), pos), (ex.data.as_slice(), sent.len()));
}

/// Runs `f` on this thread's current-thread runtime, whose clock is paused: it
/// jumps to the next timer whenever every task waits.
fn paused_runtime<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// The HTTP/2 driver (the h2 crate under http-core's frame check) on one
/// connection: the client preface, then the input as the client's bytes,
/// written in the pieces its length bytes say (as in `driver`). Whatever the
/// frames, the connection ends (no hang, no panic) and what the server wrote
/// is a sequence of whole frames of known types, SETTINGS first (the last
/// may be cut where the connection died).
pub fn h2(data: &[u8]) {
    let Some((&[cap], rest)) = data.split_first_chunk::<1>() else {
        return;
    };
    let mut pieces = vec![H2_PREFACE.to_vec()];
    pieces.extend(length_prefixed_pieces(rest));
    let service = Arc::new(Fuzz {
        methods: Mutex::new(Vec::new()),
        files: None,
    });
    let out = over_duplex(64 << (cap % 8), pieces, |server| {
        serve_h2_connection(
            server,
            None,
            service.clone(),
            Arc::new(small_limits()),
            H2Limits::default(),
            ShutdownSignal::never(),
        )
    });
    // Whole frames, the server's SETTINGS first (when it wrote anything);
    // only the last may be cut, when the connection died under it (the
    // client's side ended, or its frames were refused): the bytes h2 still
    // held are dropped with the connection, never mixed into another frame.
    let mut at = 0;
    let mut first = true;
    while at + 9 <= out.len() {
        let len = usize::from(out[at]) << 16 | usize::from(out[at + 1]) << 8 | usize::from(out[at + 2]);
        if first {
            assert_eq!(out[at + 3], 0x4, "the server's first frame is SETTINGS");
            first = false;
        }
        assert!(len <= 16_384, "a frame over the default SETTINGS_MAX_FRAME_SIZE");
        assert!(
            out[at + 3] <= 0x9,
            "a frame type the server never sends: {}",
            out[at + 3]
        );
        at += 9 + len;
    }
}

/// A self-signed certificate for `fuzz.test` and its key (EC P-256), made
/// for this harness alone: the TLS target's server identity.
const FUZZ_CERT: &str = r"-----BEGIN CERTIFICATE-----
MIIBlTCCATugAwIBAgIUe20iJMauLg09zji1lStiFlXBDX8wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJZnV6ei50ZXN0MCAXDTI2MTEyNzA0NTIxN1oYDzIxMjYxMTAz
MDQ1MjE3WjAUMRIwEAYDVQQDDAlmdXp6LnRlc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARlgj/d34mZ4p0Q44x5qjpU5WXhLAICp2olDyoll15GhhDTKVrPrFKr
f0P36fkhu4fMNQzPbjZl2nmcr5XakJ/Do2kwZzAdBgNVHQ4EFgQUxdtPlzVXf3x5
K17IsFPX5iKuAKYwHwYDVR0jBBgwFoAUxdtPlzVXf3x5K17IsFPX5iKuAKYwDwYD
VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglmdXp6LnRlc3QwCgYIKoZIzj0EAwID
SAAwRQIhANxnMEIV5ZaHTtQZqv31AvQdboEeH55w2gsCBuVUKzaoAiAjqH+rPO4e
N9c+7eAIVZH4PXGzOwjJTjYMXcAgM9DiOw==
-----END CERTIFICATE-----
";
const FUZZ_KEY: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgikLRC98LkUcYg/ov
Ru83CAuEwaUlGZ1C8S42lR4oe2GhRANCAARlgj/d34mZ4p0Q44x5qjpU5WXhLAIC
p2olDyoll15GhhDTKVrPrFKrf0P36fkhu4fMNQzPbjZl2nmcr5XakJ/D
-----END PRIVATE KEY-----
";

/// The TLS configuration of the `tls` target, from files written once per
/// process.
fn fuzz_tls() -> &'static TlsConfig {
    static TLS: OnceLock<TlsConfig> = OnceLock::new();
    TLS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rr-http-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz TLS directory");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, FUZZ_CERT).expect("write the certificate");
        std::fs::write(&key, FUZZ_KEY).expect("write the key");
        TlsConfig::from_pem_files(&[CertPair::new(cert, key)]).expect("the fuzz certificate loads")
    })
}

/// The server's TLS stream (http-core's, on rustls' unbuffered API) under the
/// HTTP/1.1 driver, the input as the client's bytes in the pieces its length
/// bytes say (as in `driver`; the first byte picks the duplex capacity).
/// Whatever the client sends, the connection ends (no hang, no panic) and what
/// the server wrote is a sequence of whole TLS records (the last may be cut
/// where the connection died) of the four record types, none longer than
/// TLS allows.
pub fn tls(data: &[u8]) {
    let Some((&[cap], rest)) = data.split_first_chunk::<1>() else {
        return;
    };
    let pieces = length_prefixed_pieces(rest);
    let service = Arc::new(Fuzz {
        methods: Mutex::new(Vec::new()),
        files: None,
    });
    let out = over_duplex(64 << (cap % 8), pieces, |server| {
        let stream = fuzz_tls().accept_io(server).expect("a TLS stream");
        serve_connection(
            stream,
            None,
            service.clone(),
            Arc::new(small_limits()),
            ShutdownSignal::never(),
        )
    });
    let mut at = 0;
    while at + 5 <= out.len() {
        let kind = out[at];
        assert!(
            (20..=23).contains(&kind),
            "a record type the server never sends: {kind}"
        );
        assert_eq!(out[at + 1], 3, "TLS record version");
        let len = usize::from(out[at + 3]) << 8 | usize::from(out[at + 4]);
        assert!(len <= 16_384 + 256, "a record longer than TLS allows: {len}");
        at += 5 + len;
    }
}

/// The client's writes an input describes: a length byte, then that many
/// bytes (fewer at the end), again and again.
fn length_prefixed_pieces(mut rest: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        pieces.push(tail[..n].to_vec());
        rest = &tail[n..];
    }
    pieces
}

/// Runs the server `serve` makes of one end of a duplex (`capacity` bytes
/// each way) on a current-thread runtime with time paused, the client
/// writing `pieces` one by one and then closing its side: everything the
/// server wrote until it closed. A server still running after an hour of
/// (paused) time is a hang, and panics.
fn over_duplex<F: std::future::Future<Output = ()>>(
    capacity: usize,
    pieces: Vec<Vec<u8>>,
    serve: impl FnOnce(tokio::io::DuplexStream) -> F,
) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(capacity);
        let (mut rd, mut wr) = tokio::io::split(client);
        let conn = serve(server);
        let write = async move {
            for p in &pieces {
                if wr.write_all(p).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _ = wr.shutdown().await;
        };
        let read = async move {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        };
        let all = async { tokio::join!(conn, write, read).2 };
        tokio::time::timeout(Duration::from_secs(3600), all)
            .await
            .expect("the server hung")
    })
}
