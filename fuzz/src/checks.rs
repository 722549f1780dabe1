//! The body of every fuzz target: one function per target taking the raw input.
//!
//! The fuzz targets in `fuzz/fuzz_targets/` call these through the `rr_http_fuzz`
//! library; `crates/cli/tests/fuzz_corpus_replay.rs` includes this same file with
//! `#[path]` and runs every committed corpus input through it on stable, so the
//! checks are written once. Each function returns normally on any input the code
//! handles correctly and panics on a broken invariant.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http_core::{
    parse_request, parse_response, serve_connection, Body, BodyKind, ChunkedDecoder, ChunkedEncoder, Limits,
    Method, Request, RequestHead, Response, Service, ShutdownSignal,
};
use static_server::StaticFiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let Some((&[mode, cap], mut rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut pieces = Vec::new();
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        pieces.push(tail[..n].to_vec());
        rest = &tail[n..];
    }
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let out = rt.block_on(async {
        let (client, server) = tokio::io::duplex(16 << (cap % 8));
        let (mut rd, mut wr) = tokio::io::split(client);
        let conn = serve_connection(
            server,
            None,
            service.clone(),
            limits.clone(),
            ShutdownSignal::never(),
        );
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
            .expect("the driver hung")
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
