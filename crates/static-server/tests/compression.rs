//! Compression on the fly, over real sockets: negotiation from `Accept-Encoding`
//! (q-values, ties, `identity;q=0`, `*`), `Vary`, an ETag per encoding and 304s
//! per encoding, ranges of a cached compressed form, sidecar precedence, the
//! compressed form refreshed when the file changes and made once however many
//! ask, files too large to cache compressed as a chunked stream, and what is
//! never compressed. Bodies are decoded by the flate2, brotli and zstd crates,
//! by curl `--compressed` and by Python's gzip, brotli and zstandard modules.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use common::{set_mtime, Site};
use http_core::ServerHandle;
use static_server::{Builder, Coding, CompressionLevel, Metrics, StaticFiles};
use test_support::{agent, curl, run_within, send, RawConn, Reply, TIMEOUT};

/// A server whose metrics the test can read.
struct Srv {
    rt: tokio::runtime::Runtime,
    handle: Option<ServerHandle>,
    addr: SocketAddr,
    metrics: Metrics,
    agent: ureq::Agent,
    /// Kept so the directory lives as long as the server.
    _site: Site,
}

impl Srv {
    fn start(site: Site, configure: impl FnOnce(Builder) -> Builder) -> Srv {
        let rt = test_support::runtime();
        let files = configure(StaticFiles::builder(&site.root)).build().unwrap();
        let metrics = files.metrics();
        let handle = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            files.spawn(listener).unwrap()
        });
        Srv {
            addr: handle.local_addr(),
            rt,
            handle: Some(handle),
            metrics,
            agent: test_support::agent(),
            _site: site,
        }
    }

    fn url(&self, target: &str) -> String {
        format!("http://{}{}", self.addr, target)
    }

    /// `method target` with `headers` through ureq, which sends no
    /// `Accept-Encoding` of its own and decodes nothing: the body is as sent.
    fn req(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.request(method, &self.url(target));
        for (n, v) in headers {
            req = req.set(n, v);
        }
        send(req, None).unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    fn get(&self, target: &str, accept: Option<&str>) -> Reply {
        match accept {
            Some(a) => self.req("GET", target, &[("Accept-Encoding", a)]),
            None => self.req("GET", target, &[]),
        }
    }

    fn compressions(&self, c: Coding) -> u64 {
        let s = self.metrics.snapshot();
        s.compression.iter().find(|x| x.coding == c).unwrap().compressions
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

/// Text that compresses well but not absurdly: lines with numbers.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "<li class=\"row\">item {i} of the list, {}</li>\n",
                i * 7919 % 1000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// Decodes `body` as `Content-Encoding: coding` says.
fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::decode_all(body).unwrap(),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

fn site_with_page() -> (Site, Vec<u8>) {
    let site = Site::new("compress");
    let page = text(4000);
    site.file("page.html", &page);
    (site, page)
}

#[test]
fn negotiation_table() {
    let (site, page) = site_with_page();
    let srv = Srv::start(site, |b| b);
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some(""), None),
        (Some("identity"), None),
        (Some("gzip"), Some("gzip")),
        (Some("x-gzip"), Some("gzip")),
        (Some("br"), Some("br")),
        (Some("zstd"), Some("zstd")),
        (Some("gzip, br"), Some("br")), // bench.py's header: br wins the tie
        (Some("gzip, deflate, br, zstd"), Some("zstd")),
        (Some("*"), Some("zstd")),
        (Some("deflate"), None),
        (Some("gzip;q=0.5, br;q=0.4"), Some("gzip")),
        (Some("zstd;q=0.1, br;q=0.2, gzip;q=0.3"), Some("gzip")),
        (Some("zstd;q=0, br;q=0, gzip"), Some("gzip")),
        (Some("*;q=0.5, zstd;q=0"), Some("br")),
        (Some("*;q=0"), None),
        (Some("gzip;q=0"), None),
        (Some("identity;q=0, gzip;q=0.2"), Some("gzip")),
        // Nothing acceptable, identity refused too: identity all the same (no 406).
        (Some("identity;q=0, deflate"), None),
        (Some("GZIP;Q=1"), Some("gzip")),
        (Some("gzip;q=2"), None),
    ];
    for (accept, want) in cases {
        let r = srv.get("/page.html", *accept);
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.header("Content-Encoding"), *want, "{accept:?}");
        r.expect("Vary", "Accept-Encoding");
        assert_eq!(decode(*want, &r.body), page, "{accept:?}");
        assert_eq!(r.header("Content-Length"), Some(&*r.body.len().to_string()));
        if want.is_some() {
            assert!(
                r.body.len() < page.len() / 2,
                "{accept:?}: {} bytes",
                r.body.len()
            );
        }
        // HEAD: the same headers, no body, and the same length.
        let h = srv.req(
            "HEAD",
            "/page.html",
            &accept.map(|a| vec![("Accept-Encoding", a)]).unwrap_or_default(),
        );
        assert_eq!(h.comparable_headers(), r.comparable_headers(), "HEAD {accept:?}");
        assert!(h.body.is_empty());
    }
    // The server's order breaks ties.
    let (site, page) = site_with_page();
    let srv = Srv::start(site, |b| b.compression([Coding::Gzip, Coding::Brotli]));
    let r = srv.get("/page.html", Some("br, gzip, zstd"));
    r.expect("Content-Encoding", "gzip");
    assert_eq!(decode(Some("gzip"), &r.body), page);
    // zstd is not in the list and there is no sidecar: never sent.
    srv.get("/page.html", Some("zstd"))
        .expect_absent("Content-Encoding");
    srv.get("/page.html", Some("zstd, br;q=0.5"))
        .expect("Content-Encoding", "br");
}

#[test]
fn vary_only_where_answers_can_differ() {
    let site = Site::new("vary");
    site.file("big.css", text(2000));
    site.file("tiny.css", "a{}\n");
    site.file("image.png", vec![7u8; 4000]);
    site.file("font.woff2", vec![7u8; 4000]);
    site.file("archive.zip", vec![7u8; 4000]);
    site.file("blob.bin", vec![7u8; 4000]);
    site.file("data.json", text(2000));
    site.file("logo.svg", text(2000));
    site.file("module.wasm", vec![0u8; 4000]);
    site.file("sided.png", vec![7u8; 4000]);
    site.file("sided.png.br", "BR-SIDECAR");
    let srv = Srv::start(site, |b| b);
    let cases: &[(&str, bool)] = &[
        ("/big.css", true),
        ("/data.json", true),
        ("/logo.svg", true),
        ("/module.wasm", true),
        ("/tiny.css", false),
        ("/image.png", false),
        ("/font.woff2", false),
        ("/archive.zip", false),
        ("/blob.bin", false),
        ("/sided.png", true),
    ];
    for (path, varies) in cases {
        for accept in [None, Some("gzip, br, zstd")] {
            let r = srv.get(path, accept);
            assert_eq!(r.status, 200);
            if *varies {
                r.expect("Vary", "Accept-Encoding");
                assert_eq!(r.header("Content-Encoding").is_some(), accept.is_some(), "{path}");
            } else {
                r.expect_absent("Vary").expect_absent("Content-Encoding");
            }
            // A 304 says the same.
            let etag = r.header("ETag").unwrap().to_owned();
            let mut headers = vec![("If-None-Match", etag.as_str())];
            headers.extend(accept.map(|a| ("Accept-Encoding", a)));
            let nm = srv.req("GET", path, &headers);
            assert_eq!(nm.status, 304, "{path} {accept:?}");
            assert_eq!(nm.header("Vary"), r.header("Vary"), "{path} 304");
            assert_eq!(nm.header("ETag"), Some(etag.as_str()));
        }
    }
    // Errors about a varying file vary too: 412 and 416.
    let r = srv.req(
        "GET",
        "/big.css",
        &[("Accept-Encoding", "br"), ("If-Match", "\"nope\"")],
    );
    assert_eq!(r.status, 412);
    r.expect("Vary", "Accept-Encoding");
    let r = srv.req(
        "GET",
        "/big.css",
        &[("Accept-Encoding", "br"), ("Range", "bytes=999999-")],
    );
    assert_eq!(r.status, 416);
    r.expect("Vary", "Accept-Encoding");
    let r = srv.req("GET", "/image.png", &[("Range", "bytes=999999-")]);
    assert_eq!(r.status, 416);
    r.expect_absent("Vary");
    // With compression off, a file without sidecars never varies.
    let site = Site::new("vary-off");
    site.file("big.css", text(2000));
    let srv = Srv::start(site, |b| b.compression([]));
    srv.get("/big.css", Some("gzip, br, zstd"))
        .expect_absent("Vary")
        .expect_absent("Content-Encoding");
}

#[test]
fn etag_per_encoding_and_304_per_encoding() {
    let (site, page) = site_with_page();
    let srv = Srv::start(site, |b| b);
    let mut tags = Vec::new();
    for accept in [None, Some("gzip"), Some("br"), Some("zstd")] {
        let r = srv.get("/page.html", accept);
        let tag = r.header("ETag").unwrap().to_owned();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "strong tag {tag}");
        // Asked again: the same tag and the same bytes (the cached form).
        let again = srv.get("/page.html", accept);
        assert_eq!(again.header("ETag"), Some(tag.as_str()));
        assert_eq!(again.body, r.body);
        tags.push((accept, tag, r.header("Content-Encoding").map(str::to_owned)));
    }
    for (i, (_, a, _)) in tags.iter().enumerate() {
        for (_, b, _) in &tags[i + 1..] {
            assert_ne!(a, b, "two encodings share a tag");
        }
    }
    for (accept, tag, coding) in &tags {
        let mut h = vec![("If-None-Match", tag.as_str())];
        h.extend(accept.map(|a| ("Accept-Encoding", a)));
        let r = srv.req("GET", "/page.html", &h);
        assert_eq!(r.status, 304, "{accept:?}");
        assert_eq!(r.header("ETag"), Some(tag.as_str()));
        assert_eq!(r.header("Content-Encoding"), coding.as_deref());
        assert!(r.body.is_empty());
        // Another encoding's tag does not match this encoding.
        for (other_accept, other_tag, _) in &tags {
            if other_tag == tag {
                continue;
            }
            let mut h = vec![("If-None-Match", other_tag.as_str())];
            h.extend(accept.map(|a| ("Accept-Encoding", a)));
            let r = srv.req("GET", "/page.html", &h);
            assert_eq!(r.status, 200, "{accept:?} with the tag of {other_accept:?}");
            assert_eq!(decode(coding.as_deref(), &r.body), page);
        }
        // If-Match is strong and per encoding too.
        let mut h = vec![("If-Match", tag.as_str())];
        h.extend(accept.map(|a| ("Accept-Encoding", a)));
        assert_eq!(srv.req("GET", "/page.html", &h).status, 200);
    }
    let identity_tag = &tags[0].1;
    let r = srv.req(
        "GET",
        "/page.html",
        &[("If-Match", identity_tag), ("Accept-Encoding", "br")],
    );
    assert_eq!(r.status, 412);
}

#[test]
fn ranges_of_a_cached_compressed_form_are_exact() {
    let (site, page) = site_with_page();
    let srv = Srv::start(site, |b| b);
    let full = srv.get("/page.html", Some("br"));
    let tag = full.header("ETag").unwrap().to_owned();
    let len = full.body.len();
    full.expect("Accept-Ranges", "bytes");
    let r = srv.req(
        "GET",
        "/page.html",
        &[("Accept-Encoding", "br"), ("Range", "bytes=10-99")],
    );
    assert_eq!(r.status, 206);
    r.expect("Content-Encoding", "br")
        .expect("Content-Range", &format!("bytes 10-99/{len}"))
        .expect("ETag", &tag)
        .expect("Vary", "Accept-Encoding");
    assert_eq!(r.body, full.body[10..100]);
    // A resumed download: the head, then the rest with If-Range, decodes whole.
    let rest = srv.req(
        "GET",
        "/page.html",
        &[
            ("Accept-Encoding", "br"),
            ("Range", "bytes=100-"),
            ("If-Range", &tag),
        ],
    );
    assert_eq!(rest.status, 206);
    let mut joined = full.body[..100].to_vec();
    joined.extend_from_slice(&rest.body);
    assert_eq!(decode(Some("br"), &joined), page);
    // If-Range with another encoding's tag: the whole (br) representation.
    let identity_tag = srv.get("/page.html", None).header("ETag").unwrap().to_owned();
    let r = srv.req(
        "GET",
        "/page.html",
        &[
            ("Accept-Encoding", "br"),
            ("Range", "bytes=100-"),
            ("If-Range", &identity_tag),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full.body);
    // Several ranges: multipart, each part of the compressed bytes.
    let r = srv.req(
        "GET",
        "/page.html",
        &[("Accept-Encoding", "br"), ("Range", "bytes=0-4,20-29")],
    );
    assert_eq!(r.status, 206);
    let boundary = common::boundary_of(r.header("Content-Type").unwrap());
    let parts = common::parse_multipart(&r.body, &boundary);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].data, full.body[0..5]);
    assert_eq!(parts[1].data, full.body[20..30]);
    assert_eq!(parts[0].content_type, "text/html; charset=utf-8");
}

#[test]
fn sidecars_win_and_each_accepted_coding_is_tried_in_the_clients_order() {
    let site = Site::new("sidecars");
    let page = text(3000);
    site.file("all.html", &page);
    site.file("all.html.zst", "ZSTD-SIDECAR");
    site.file("all.html.br", "BR-SIDECAR");
    site.file("all.html.gz", "GZIP-SIDECAR");
    site.file("gz-only.html", &page);
    site.file("gz-only.html.gz", "GZIP-SIDECAR");
    site.file("data.bin", vec![1u8; 3000]);
    site.file("data.bin.zst", "ZSTD-SIDECAR");
    let srv = Srv::start(site, |b| b);
    /// Path, Accept-Encoding, the coding expected, the sidecar's bytes if one is sent.
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a [u8]>);
    let cases: &[Case] = &[
        ("/all.html", "zstd", Some("zstd"), Some(b"ZSTD-SIDECAR")),
        ("/all.html", "br", Some("br"), Some(b"BR-SIDECAR")),
        ("/all.html", "gzip", Some("gzip"), Some(b"GZIP-SIDECAR")),
        ("/all.html", "gzip, br", Some("br"), Some(b"BR-SIDECAR")),
        ("/all.html", "gzip, br;q=0.5", Some("gzip"), Some(b"GZIP-SIDECAR")),
        // No br sidecar: br is made on the fly, which the client prefers.
        ("/gz-only.html", "br, gzip;q=0.5", Some("br"), None),
        (
            "/gz-only.html",
            "gzip, br;q=0.5",
            Some("gzip"),
            Some(b"GZIP-SIDECAR"),
        ),
        ("/gz-only.html", "zstd", Some("zstd"), None),
        // Not compressible, but a sidecar exists: it is served.
        ("/data.bin", "gzip, br, zstd", Some("zstd"), Some(b"ZSTD-SIDECAR")),
        ("/data.bin", "gzip, br", None, None),
    ];
    for (path, accept, coding, body) in cases {
        let r = srv.get(path, Some(accept));
        assert_eq!(r.header("Content-Encoding"), *coding, "{path} {accept}");
        r.expect("Vary", "Accept-Encoding");
        match body {
            Some(b) => assert_eq!(r.body, *b, "{path} {accept}"),
            None if path.ends_with(".html") => assert_eq!(decode(*coding, &r.body), page),
            None => assert_eq!(r.body, vec![1u8; 3000]),
        }
    }
    // With compression off, only sidecars are sent.
    let site = Site::new("sidecars-off");
    site.file("gz-only.html", &page);
    site.file("gz-only.html.gz", "GZIP-SIDECAR");
    let srv = Srv::start(site, |b| b.compression([]));
    let r = srv.get("/gz-only.html", Some("br, zstd, gzip;q=0.1"));
    r.expect("Content-Encoding", "gzip");
    assert_eq!(r.body, b"GZIP-SIDECAR");
    let r = srv.get("/gz-only.html", Some("br"));
    r.expect_absent("Content-Encoding")
        .expect("Vary", "Accept-Encoding");
    assert_eq!(r.body, page);
}

#[test]
fn a_changed_file_gets_a_new_compressed_form_and_tag() {
    let (site, page) = site_with_page();
    let path = site.root.join("page.html");
    let srv = Srv::start(site, |b| b.revalidate_after(Duration::ZERO));
    let first = srv.get("/page.html", Some("br"));
    assert_eq!(decode(Some("br"), &first.body), page);
    assert_eq!(srv.get("/page.html", Some("br")).body, first.body);
    assert_eq!(srv.compressions(Coding::Brotli), 1, "compressed once");
    let cached = srv.metrics.snapshot().cache_memory_bytes;
    assert_eq!(
        cached,
        (page.len() + first.body.len()) as u64,
        "the cache counts the compressed form"
    );

    let new = text(5000);
    std::fs::write(&path, &new).unwrap();
    set_mtime(&path, common::fixed_time() + Duration::from_secs(60));
    let second = srv.get("/page.html", Some("br"));
    assert_eq!(decode(Some("br"), &second.body), new);
    assert_ne!(second.header("ETag"), first.header("ETag"));
    assert_eq!(srv.compressions(Coding::Brotli), 2);
    let r = srv.req(
        "GET",
        "/page.html",
        &[
            ("Accept-Encoding", "br"),
            ("If-None-Match", first.header("ETag").unwrap()),
        ],
    );
    assert_eq!(r.status, 200, "the old tag no longer matches");
    assert_eq!(
        srv.metrics.snapshot().cache_memory_bytes,
        (new.len() + second.body.len()) as u64,
        "the old form's memory was given back"
    );
    // A file gone: 404 for every encoding, and its memory freed.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(srv.get("/page.html", Some("br")).status, 404);
    assert_eq!(srv.metrics.snapshot().cache_memory_bytes, 0);
}

#[test]
fn many_clients_at_once_cause_one_compression() {
    let site = Site::new("herd");
    let page = text(900_000);
    site.file("big.html", &page);
    let srv = Srv::start(site, |b| b.compression_level(CompressionLevel::Balanced));
    // Load the entry (no compression yet), then ask for br from 8 clients at once.
    assert_eq!(srv.get("/big.html", None).body.len(), page.len());
    let url = srv.url("/big.html");
    let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                s.spawn(move || {
                    let r = send(agent().get(&url).set("Accept-Encoding", "br"), None).unwrap();
                    r.expect("Content-Encoding", "br");
                    r.body
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for b in &bodies {
        assert_eq!(b, &bodies[0]);
    }
    assert_eq!(decode(Some("br"), &bodies[0]), page);
    assert_eq!(srv.compressions(Coding::Brotli), 1);
    let c = srv.metrics.snapshot();
    let br = c.compression.iter().find(|x| x.coding == Coding::Brotli).unwrap();
    assert_eq!(br.responses, 8);
    assert_eq!(br.input_bytes, page.len() as u64);
    assert_eq!(br.output_bytes, bodies[0].len() as u64);
    // The same counts in the Prometheus text, under the names the README lists.
    let text = srv.metrics.render().unwrap();
    for line in [
        "static_server_encoded_responses_total{coding=\"br\"} 8\n",
        "static_server_compressions_total{coding=\"br\"} 1\n",
        "static_server_compressions_total{coding=\"gzip\"} 0\n",
        &format!(
            "static_server_compression_input_bytes_total{{coding=\"br\"}} {}\n",
            page.len()
        ),
        &format!(
            "static_server_compression_output_bytes_total{{coding=\"br\"}} {}\n",
            bodies[0].len()
        ),
        "# TYPE static_server_compression_seconds_total counter\n",
    ] {
        assert!(text.contains(line), "{line:?} not in {text}");
    }
}

#[test]
fn never_compressed_tiny_uncompressible_or_not_smaller() {
    let site = Site::new("never");
    site.file("tiny.html", "<p>hi</p>\n");
    site.file("photo.jpg", vec![9u8; 5000]);
    site.file("clip.mp4", vec![9u8; 5000]);
    site.file("song.mp3", vec![9u8; 5000]);
    site.file("fonts.woff", vec![9u8; 5000]);
    site.file("pack.gz", vec![9u8; 5000]);
    // Random bytes named .txt: compressed, they are no smaller.
    let mut x = 0x1234_5678_u64;
    let noise: Vec<u8> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    site.file("noise.txt", &noise);
    site.file("edge.css", text(512));
    site.file("under.css", text(511));
    let srv = Srv::start(site, |b| b);
    for path in [
        "/tiny.html",
        "/photo.jpg",
        "/clip.mp4",
        "/song.mp3",
        "/fonts.woff",
        "/pack.gz",
        "/under.css",
    ] {
        srv.get(path, Some("gzip, br, zstd"))
            .expect_absent("Content-Encoding")
            .expect_absent("Vary");
    }
    srv.get("/edge.css", Some("gzip"))
        .expect("Content-Encoding", "gzip");
    for accept in ["gzip", "br", "zstd"] {
        let r = srv.get("/noise.txt", Some(accept));
        r.expect_absent("Content-Encoding")
            .expect("Vary", "Accept-Encoding");
        assert_eq!(r.body, noise);
        assert_eq!(srv.get("/noise.txt", Some(accept)).body, noise);
    }
    assert_eq!(
        srv.compressions(Coding::Gzip),
        1 + 1,
        "edge.css and noise.txt, once each"
    );
    // A higher minimum, and a type added to the list.
    let site = Site::new("never-2");
    site.file("edge.css", text(512));
    site.file("data.foo", text(2000));
    let srv = Srv::start(site, |b| {
        b.compression_min_size(1000)
            .compress_type("application/octet-stream")
    });
    srv.get("/edge.css", Some("gzip"))
        .expect_absent("Content-Encoding");
    srv.get("/data.foo", Some("gzip"))
        .expect("Content-Encoding", "gzip");
}

#[test]
fn a_file_too_large_to_cache_is_compressed_as_a_stream() {
    let site = Site::new("stream");
    let big = text(3 << 20);
    site.file("big.js", &big);
    let srv = Srv::start(site, |b| b.cache(64 * 1024, 1 << 20));
    let identity = srv.get("/big.js", None);
    identity
        .expect("Vary", "Accept-Encoding")
        .expect("Accept-Ranges", "bytes");
    let identity_tag = identity.header("ETag").unwrap().to_owned();
    for coding in ["gzip", "br", "zstd"] {
        let r = srv.get("/big.js", Some(coding));
        assert_eq!(r.status, 200);
        r.expect("Content-Encoding", coding)
            .expect("Transfer-Encoding", "chunked")
            .expect("Vary", "Accept-Encoding")
            .expect_absent("Content-Length")
            .expect_absent("Accept-Ranges");
        assert_eq!(decode(Some(coding), &r.body), big, "{coding}");
        assert!(r.body.len() < big.len() / 3);
        let tag = r.header("ETag").unwrap().to_owned();
        assert_ne!(tag, identity_tag);
        // Range ignored on a stream: the whole representation, 200.
        let ranged = srv.req(
            "GET",
            "/big.js",
            &[("Accept-Encoding", coding), ("Range", "bytes=0-99")],
        );
        assert_eq!(ranged.status, 200);
        assert_eq!(decode(Some(coding), &ranged.body), big);
        // 304 by its tag.
        let nm = srv.req(
            "GET",
            "/big.js",
            &[("Accept-Encoding", coding), ("If-None-Match", &tag)],
        );
        assert_eq!(nm.status, 304);
        nm.expect("ETag", &tag).expect("Content-Encoding", coding);
        // HEAD: the same headers but the framing (the driver writes none for
        // HEAD of an unknown length), and nothing compressed.
        let mut raw = RawConn::connect(srv.addr);
        raw.send(format!("HEAD /big.js HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {coding}\r\n\r\n").as_bytes());
        let h = raw.response(true);
        let framing = |n: &str| n == "transfer-encoding" || n == "content-length";
        let without = |r: &Reply| -> Vec<(String, String)> {
            r.comparable_headers()
                .into_iter()
                .filter(|(n, _)| !framing(n))
                .collect()
        };
        assert_eq!(without(&h), without(&r));
    }
    // Ranges on the identity stream still work.
    let r = srv.req("GET", "/big.js", &[("Range", "bytes=0-99")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, big[..100]);
    // Streams are not counted as in-memory compressions.
    assert_eq!(srv.compressions(Coding::Gzip), 0);
}

#[test]
fn curl_decodes_every_coding() {
    let (site, page) = site_with_page();
    let big = text(2 << 20);
    site.file("big.txt", &big);
    let srv = Srv::start(site, |b| b.cache(256 * 1024, 4 << 20));
    let dir = test_support::TempDir::new("curl-out");
    for (path, want) in [("/page.html", &page), ("/big.txt", &big)] {
        for coding in ["gzip", "br", "zstd"] {
            let out_file = dir.join("out");
            let head_file = dir.join("head");
            let Some(out) = curl(&[
                "--compressed",
                "-H",
                &format!("Accept-Encoding: {coding}"),
                "-D",
                head_file.to_str().unwrap(),
                "-o",
                out_file.to_str().unwrap(),
                &srv.url(path),
            ]) else {
                return;
            };
            assert!(out.status.success(), "curl {path} {coding}: {out:?}");
            let head = std::fs::read_to_string(&head_file).unwrap().to_ascii_lowercase();
            assert!(
                head.contains(&format!("content-encoding: {coding}\r\n")),
                "{head}"
            );
            assert_eq!(std::fs::read(&out_file).unwrap(), *want, "{path} {coding}");
        }
    }
    // curl's own Accept-Encoding (`--compressed` alone).
    let Some(out) = curl(&["--compressed", "-D", "-", &srv.url("/page.html")]) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.contains("content-encoding: "), "{text}");
}

/// The Python check: urllib fetches each coding (no decoding of its own) and
/// gzip (stdlib), brotli and zstandard (PyPI) decode. Skips, saying so, only
/// outside CI when a module is missing.
#[test]
fn python_modules_decode_every_coding() {
    let probe = run_within(
        std::process::Command::new("python3").args(["-c", "import gzip, brotli, zstandard"]),
        TIMEOUT,
    );
    if !probe.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but python3 with brotli and zstandard is missing (.ci/run installs them): {probe:?}"
        );
        eprintln!("SKIPPED: python3 modules brotli/zstandard missing (pip install brotli zstandard)");
        return;
    }
    let (site, page) = site_with_page();
    let big = text(1 << 20);
    site.file("big.json", &big);
    let srv = Srv::start(site, |b| b.cache(128 * 1024, 4 << 20));
    let script = r#"
import gzip, sys, urllib.request, brotli, zstandard
base, path, expect = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
decoders = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    # The stream's frame has no content size: decode as a stream.
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}
for coding, decode in decoders.items():
    req = urllib.request.Request(base + path, headers={"Accept-Encoding": coding})
    with urllib.request.urlopen(req, timeout=10) as r:
        got = r.headers.get("Content-Encoding")
        assert got == coding, (coding, got)
        assert r.headers.get("Vary") == "Accept-Encoding"
        body = r.read()
    assert decode(body) == expect, coding
    print(coding, len(body), len(expect))
"#;
    let dir = test_support::TempDir::new("py-expect");
    for (path, want) in [("/page.html", &page), ("/big.json", &big)] {
        let expect = dir.file("expect", want);
        let out = run_within(
            std::process::Command::new("python3").args([
                "-c",
                script,
                &format!("http://{}", srv.addr),
                path,
                expect.to_str().unwrap(),
            ]),
            TIMEOUT,
        );
        assert!(out.status.success(), "{path}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    }
}

#[test]
fn a_bad_media_type_is_refused_by_build() {
    let site = Site::new("bad-type");
    for bad in ["text", "text/", "/json", "a/b/c", "text/html; q=1", ""] {
        let err = StaticFiles::builder(&site.root)
            .compress_type(bad)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, static_server::Error::BadMediaType(_)),
            "{bad:?}: {err}"
        );
    }
}

/// Regression (the merge of compression with header rules): a form compressed
/// on the fly carries the header rules of its file, as the identity form and a
/// sidecar do, on 200 and 304 alike.
#[test]
fn header_rules_reach_the_forms_compressed_on_the_fly() {
    let (site, page) = site_with_page();
    let srv = Srv::start(site, |b| {
        b.header_rule("*.html: Cache-Control: no-cache".parse().unwrap())
            .header_rule("*.css: Cache-Control: immutable".parse().unwrap())
    });
    for accept in [None, Some("gzip"), Some("br"), Some("zstd")] {
        let r = srv.get("/page.html", accept);
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.header("content-encoding"), accept, "{accept:?}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{accept:?}");
        assert_eq!(decode(accept, &r.body), page, "{accept:?}");
        let tag = r.header("etag").unwrap().to_owned();
        let mut headers = vec![("If-None-Match", tag.as_str())];
        if let Some(a) = accept {
            headers.push(("Accept-Encoding", a));
        }
        let again = srv.req("GET", "/page.html", &headers);
        assert_eq!(again.status, 304, "{accept:?}");
        assert_eq!(again.header("cache-control"), Some("no-cache"), "{accept:?}");
    }
}
