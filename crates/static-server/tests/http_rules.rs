//! The HTTP rules of the static server over real TCP: methods, directories and
//! listings, Content-Type, validators and conditional requests, precompressed
//! sidecars, instance headers, pipelining, builder errors.

mod common;

use std::time::{Duration, SystemTime};

use common::{fixed_time, set_mtime, Site, Srv, FIXED_DATE};
use static_server::{Error, StaticFiles};

const PAGE: &str = "<!DOCTYPE html><h1>page</h1>\n";

fn basic_site() -> Site {
    let site = Site::new("rules");
    site.file("page.html", PAGE);
    site.file("index.html", "ROOT INDEX\n");
    site
}

// ---------------------------------------------------------------- methods

#[test]
fn get_serves_the_file_with_all_headers() {
    let srv = Srv::start(basic_site(), |b| b);
    let r = srv.get("/page.html", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), PAGE);
    r.expect("Content-Type", "text/html; charset=utf-8")
        .expect("Content-Length", &PAGE.len().to_string())
        .expect("Last-Modified", FIXED_DATE)
        .expect("Accept-Ranges", "bytes")
        .expect("X-Content-Type-Options", "nosniff")
        .expect_absent("Vary")
        .expect_absent("Content-Encoding")
        .expect_absent("X-Served-By");
    let etag = r.header("ETag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "strong ETag: {etag}"
    );
    assert!(httpdate::parse_http_date(r.header("Date").unwrap()).is_ok());
}

#[test]
fn head_has_the_same_headers_as_get_and_no_body() {
    let site = basic_site();
    site.file("big.bin", common::pattern(50_000));
    // `big.bin` exceeds the cache's file limit, so it is streamed from disk.
    let srv = Srv::start(site, |b| b.cache(1024, 1 << 20));
    for target in ["/page.html", "/big.bin", "/missing", "/", "/sub"] {
        let mut c = srv.raw();
        c.send(
            format!(
                "GET {target} HTTP/1.1\r\nHost: t\r\n\r\n\
                 HEAD {target} HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            .as_bytes(),
        );
        let get = c.response(false);
        let head = c.response(true);
        assert_eq!(head.status, get.status, "{target}");
        assert_eq!(head.comparable_headers(), get.comparable_headers(), "{target}");
        assert!(head.body.is_empty());
        // Had HEAD sent a body, this would not parse as the page.
        let next = c.response(false);
        assert_eq!((next.status, next.text().as_str()), (200, PAGE), "{target}");
    }
}

#[test]
fn options_answers_204_with_allow() {
    let srv = Srv::start(basic_site(), |b| b.server_id("opt"));
    for target in ["/page.html", "*", "/missing"] {
        let mut c = srv.raw();
        c.send(
            format!("OPTIONS {target} HTTP/1.1\r\nHost: t\r\n\r\nGET /page.html HTTP/1.1\r\nHost: t\r\n\r\n")
                .as_bytes(),
        );
        let r = c.response(false);
        assert_eq!(r.status, 204, "{target}");
        r.expect("Allow", "GET, HEAD, OPTIONS")
            .expect("X-Served-By", "opt")
            .expect_absent("Content-Length")
            .expect_absent("Connection");
        assert!(r.body.is_empty());
        assert_eq!(
            c.response(false).text(),
            PAGE,
            "kept alive after OPTIONS {target}"
        );
    }
    let r = srv.ureq("OPTIONS", "/page.html", &[]);
    assert_eq!(r.status, 204);
    r.expect("Allow", "GET, HEAD, OPTIONS");
}

#[test]
fn other_methods_get_405_with_allow_and_the_connection_is_kept() {
    let srv = Srv::start(basic_site(), |b| b);
    for request in [
        "POST /page.html HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        "POST /page.html HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "PUT /page.html HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
        "DELETE /page.html HTTP/1.1\r\nHost: t\r\n\r\n",
        "PATCH /page.html HTTP/1.1\r\nHost: t\r\n\r\n",
        "TRACE / HTTP/1.1\r\nHost: t\r\n\r\n",
        "PROPFIND / HTTP/1.1\r\nHost: t\r\n\r\n",
        "FOO /missing HTTP/1.1\r\nHost: t\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "get /page.html HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let mut c = srv.raw();
        c.send(request.as_bytes());
        c.send(b"GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response(false);
        assert_eq!(r.status, 405, "{request:?}");
        r.expect("Allow", "GET, HEAD, OPTIONS")
            .expect("Content-Type", "text/plain; charset=utf-8")
            .expect("Content-Length", "19")
            .expect_absent("Connection");
        assert_eq!(r.text(), "method not allowed\n");
        let next = c.response(false);
        assert_eq!(
            (next.status, next.text().as_str()),
            (200, PAGE),
            "kept alive after {request:?}"
        );
    }
    // And through ureq.
    for m in ["POST", "PUT", "DELETE"] {
        let r = srv.ureq(m, "/page.html", &[]);
        assert_eq!(r.status, 405, "{m}");
        r.expect("Allow", "GET, HEAD, OPTIONS");
    }
}

#[test]
fn http_1_0_clients_are_served_and_the_connection_closes() {
    let srv = Srv::start(basic_site(), |b| b);
    let mut c = srv.raw();
    c.send(b"GET /page.html HTTP/1.0\r\n\r\n");
    let r = c.response(false);
    assert_eq!((r.status, r.text().as_str()), (200, PAGE));
    r.expect("Connection", "close");
    assert!(c.closed());
    // With keep-alive asked for, the connection stays.
    let mut c = srv.raw();
    c.send(b"GET /page.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /index.html HTTP/1.0\r\n\r\n");
    c.response(false).expect("Connection", "keep-alive");
    assert_eq!(c.response(false).text(), "ROOT INDEX\n");
}

#[test]
fn query_strings_are_ignored_for_lookup() {
    let srv = Srv::start(basic_site(), |b| b);
    let r = srv.get("/page.html?v=123&x=%2e%2e/secret", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, PAGE));
}

// ------------------------------------------------------------ directories

fn dir_site() -> Site {
    let site = basic_site();
    site.file("docs/index.html", "DOCS INDEX\n");
    site.file("list/b.txt", "bbb");
    site.file("list/a.txt", "aaaaaaaaaa");
    site.file("list/<script>.txt", "x");
    site.file("list/q\"&'.txt", "quote");
    site.file("list/sub/inner.txt", "inner");
    site.file("list/.hidden", "hidden");
    site.file("list/Z.txt", "capital");
    site.file("list/caf\u{e9} \u{1f600}.txt", "unicode");
    site.dir("a b");
    site
}

#[test]
fn directory_without_slash_redirects_keeping_the_query() {
    let srv = Srv::start(dir_site(), |b| b);
    for (target, location) in [
        ("/docs", "/docs/"),
        ("/docs?x=1&y=%2F", "/docs/?x=1&y=%2F"),
        ("/list", "/list/"),
        ("/a%20b", "/a%20b/"),
        ("/a%20b?q", "/a%20b/?q"),
        ("/list/sub", "/list/sub/"),
        ("/./docs", "/docs/"),
    ] {
        let r = srv.raw_get(target, "");
        assert_eq!(r.status, 301, "{target}");
        r.expect("Location", location)
            .expect("Content-Type", "text/plain; charset=utf-8");
        assert_eq!(r.text(), "moved permanently\n");
    }
    // ureq sees the same.
    let r = srv.get("/docs?x=1", &[]);
    assert_eq!(r.status, 301);
    r.expect("Location", "/docs/?x=1");
}

#[test]
fn directory_with_slash_serves_index_html() {
    let srv = Srv::start(dir_site(), |b| b);
    let r = srv.get("/docs/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "DOCS INDEX\n"));
    r.expect("Content-Type", "text/html; charset=utf-8");
    let r = srv.get("/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ROOT INDEX\n"));
    let r = srv.get("/docs/?q=1", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "DOCS INDEX\n"));
}

#[test]
fn index_file_names_are_tried_in_order() {
    let site = dir_site();
    site.file("multi/default.htm", "DEFAULT\n");
    site.file("multi/home.html", "HOME\n");
    let srv = Srv::start(site, |b| {
        b.index_files(["index.html", "home.html", "default.htm"])
    });
    let r = srv.get("/multi/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "HOME\n"));
    let r = srv.get("/docs/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "DOCS INDEX\n"));
}

#[test]
fn directory_without_index_is_404_when_listing_is_off() {
    let srv = Srv::start(dir_site(), |b| b);
    let r = srv.raw_get("/list/", "");
    assert_eq!((r.status, r.text().as_str()), (404, "not found\n"));
}

#[test]
fn listing_is_escaped_sorted_with_size_and_time() {
    let srv = Srv::start(dir_site(), |b| b.listing(true));
    let r = srv.get("/list/", &[]);
    assert_eq!(r.status, 200);
    r.expect("Content-Type", "text/html; charset=utf-8")
        .expect("X-Content-Type-Options", "nosniff");
    let html = r.text();
    // Names escaped in text, percent-encoded in links; no raw markup from a name.
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;.txt"), "{html}");
    assert!(html.contains("href=\"./%3Cscript%3E.txt\""), "{html}");
    assert!(html.contains("q&quot;&amp;&#39;.txt"), "{html}");
    assert!(html.contains("href=\"./q%22&amp;&#39;.txt\""), "{html}");
    assert!(html.contains("caf\u{e9} \u{1f600}.txt"), "{html}");
    assert!(!html.contains(".hidden"), "dotfiles are not listed: {html}");
    // Directories first (marked with a slash), then files by name (byte order).
    let order = [
        "sub/",
        "&lt;script&gt;.txt",
        "Z.txt",
        "a.txt",
        "b.txt",
        "caf\u{e9}",
        "q&quot;",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|n| {
            html.find(&format!(">{n}"))
                .unwrap_or_else(|| panic!("{n} missing: {html}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "not sorted: {positions:?}\n{html}"
    );
    // Size and modification time on the file's row.
    let row_a = html.lines().find(|l| l.contains(">a.txt<")).unwrap();
    assert!(row_a.contains("<td title=\"10 bytes\">10 B</td>"), "{row_a}");
    assert!(row_a.contains(FIXED_DATE), "{row_a}");
    let row_b = html.lines().find(|l| l.contains(">b.txt<")).unwrap();
    assert!(row_b.contains("<td title=\"3 bytes\">3 B</td>"), "{row_b}");
    // The parent link, and the title escaped.
    assert!(html.contains("href=\"../\""), "{html}");
    assert!(html.contains("<title>Index of /list/</title>"), "{html}");
    // A directory with an index still serves the index.
    let r = srv.get("/docs/", &[]);
    assert_eq!(r.text(), "DOCS INDEX\n");
}

/// Regression: the link of a listed name was percent-encoded but not
/// HTML-escaped, so `x&amp;y.txt` was linked as `href="./x&amp;y.txt"`, which a
/// browser follows to `x&y.txt`, another file.
#[test]
fn listing_href_is_html_escaped() {
    let site = Site::new("href");
    site.file("d/x&amp;y.txt", "the one with the entity in its name");
    site.file("d/x&y.txt", "the other one");
    let srv = Srv::start(site, |b| b.listing(true));
    let html = srv.get("/d/", &[]).text();
    assert!(
        html.contains("<a href=\"./x&amp;amp;y.txt\">x&amp;amp;y.txt</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"./x&amp;y.txt\">x&amp;y.txt</a>"),
        "{html}"
    );
    // What a browser requests after decoding the attribute reaches the right file.
    let r = srv.get("/d/x&amp;y.txt", &[]);
    assert_eq!(r.text(), "the one with the entity in its name");
}

#[test]
fn listing_with_dotfiles_on_lists_them() {
    let srv = Srv::start(dir_site(), |b| b.listing(true).dotfiles(true));
    let html = srv.get("/list/", &[]).text();
    assert!(html.contains(">.hidden<"), "{html}");
}

// ----------------------------------------------------------- content type

#[test]
fn content_type_by_extension_with_charset_for_text() {
    let site = Site::new("ctype");
    let cases = [
        ("a.html", "text/html; charset=utf-8"),
        ("a.htm", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.xml", "text/xml; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.woff2", "font/woff2"),
        ("a.wasm", "application/wasm"),
        ("a.pdf", "application/pdf"),
        ("A.HTML", "text/html; charset=utf-8"),
        ("a.unknownext", "application/octet-stream"),
        ("Makefile", "application/octet-stream"),
        ("a.tar.gz", "application/gzip"),
    ];
    for (name, _) in cases {
        site.file(name, name);
    }
    let srv = Srv::start(site, |b| b);
    for (name, ctype) in cases {
        let r = srv.get(&format!("/{name}"), &[]);
        assert_eq!((r.status, r.text().as_str()), (200, name));
        r.expect("Content-Type", ctype)
            .expect("X-Content-Type-Options", "nosniff");
    }
}

// ------------------------------------------------------------- validators

#[test]
fn if_none_match_gives_304_with_etag_and_no_body() {
    let srv = Srv::start(basic_site(), |b| b.server_id("v"));
    let full = srv.get("/page.html", &[]);
    let etag = full.header("ETag").unwrap().to_owned();
    let weak = format!("W/{etag}");
    let list = format!("\"nope\", {etag}, \"other\"");
    let list_weak = format!("\"nope\",W/{etag}");
    for (inm, want) in [
        (etag.as_str(), 304),
        (weak.as_str(), 304),
        (list.as_str(), 304),
        (list_weak.as_str(), 304),
        ("*", 304),
        ("\"nope\"", 200),
        ("W/\"nope\", \"other\"", 200),
    ] {
        let mut c = srv.raw();
        c.send(
            format!(
                "GET /page.html HTTP/1.1\r\nHost: t\r\nIf-None-Match: {inm}\r\n\r\n\
                 GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = c.response(false);
        assert_eq!(r.status, want, "If-None-Match: {inm}");
        r.expect("ETag", &etag).expect("Last-Modified", FIXED_DATE);
        if want == 304 {
            r.expect_absent("Content-Length").expect("X-Served-By", "v");
            assert!(r.body.is_empty());
        } else {
            assert_eq!(r.text(), PAGE);
        }
        // No stray body bytes: the next response parses.
        assert_eq!(
            c.response(false).text(),
            "ROOT INDEX\n",
            "after If-None-Match: {inm}"
        );
    }
    // HEAD too.
    let mut c = srv.raw();
    c.send(format!("HEAD /page.html HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes());
    assert_eq!(c.response(true).status, 304);
}

#[test]
fn if_modified_since_only_without_if_none_match() {
    let srv = Srv::start(basic_site(), |b| b);
    let etag = srv.get("/page.html", &[]).header("ETag").unwrap().to_owned();
    let later = "Sat, 02 Jan 2021 00:00:00 GMT";
    let earlier = "Thu, 31 Dec 2020 23:59:59 GMT";
    let cases: Vec<(String, u16)> = vec![
        (format!("If-Modified-Since: {FIXED_DATE}"), 304),
        (format!("If-Modified-Since: {later}"), 304),
        (format!("If-Modified-Since: {earlier}"), 200),
        ("If-Modified-Since: not a date".to_owned(), 200),
        // If-None-Match present: If-Modified-Since is ignored.
        (
            format!("If-None-Match: \"nope\"\r\nIf-Modified-Since: {later}"),
            200,
        ),
        (
            format!("If-None-Match: {etag}\r\nIf-Modified-Since: {earlier}"),
            304,
        ),
    ];
    for (headers, want) in cases {
        let r = srv.raw_get("/page.html", &format!("{headers}\r\n"));
        assert_eq!(r.status, want, "{headers}");
        r.expect("ETag", &etag);
        assert_eq!(r.body.is_empty(), want == 304);
    }
    // Through ureq as well.
    let r = srv.get("/page.html", &[("If-Modified-Since", FIXED_DATE)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
}

#[test]
fn if_match_and_if_unmodified_since_give_412() {
    let srv = Srv::start(basic_site(), |b| b);
    let etag = srv.get("/page.html", &[]).header("ETag").unwrap().to_owned();
    let cases: Vec<(String, u16)> = vec![
        ("If-Match: \"nope\"".to_owned(), 412),
        (format!("If-Match: W/{etag}"), 412),
        (format!("If-Match: {etag}"), 200),
        (format!("If-Match: \"nope\", {etag}"), 200),
        ("If-Match: *".to_owned(), 200),
        (
            "If-Unmodified-Since: Thu, 31 Dec 2020 23:59:59 GMT".to_owned(),
            412,
        ),
        (format!("If-Unmodified-Since: {FIXED_DATE}"), 200),
    ];
    for (h, want) in cases {
        let r = srv.raw_get("/page.html", &format!("{h}\r\n"));
        assert_eq!(r.status, want, "{h}");
        if want == 412 {
            assert_eq!(r.text(), "precondition failed\n");
            r.expect("Content-Type", "text/plain; charset=utf-8");
        } else {
            assert_eq!(r.text(), PAGE);
        }
    }
}

#[test]
fn a_modified_file_gets_a_new_etag_after_revalidation() {
    let site = basic_site();
    let path = site.root.join("page.html");
    let srv = Srv::start(site, |b| b.revalidate_after(Duration::ZERO));
    let first = srv.get("/page.html", &[]);
    let etag1 = first.header("ETag").unwrap().to_owned();
    // Same length, new content, new mtime.
    let changed = PAGE.replace("page", "PAGE");
    std::fs::write(&path, &changed).unwrap();
    let t2 = fixed_time() + Duration::from_secs(3600);
    set_mtime(&path, t2);
    let second = srv.get("/page.html", &[]);
    assert_eq!(second.text(), changed);
    let etag2 = second.header("ETag").unwrap().to_owned();
    assert_ne!(etag1, etag2);
    second.expect("Last-Modified", &httpdate::fmt_http_date(t2));
    // The old validator no longer matches; the new one does.
    let r = srv.get("/page.html", &[("If-None-Match", &etag1)]);
    assert_eq!((r.status, r.text()), (200, changed.clone()));
    let r = srv.get("/page.html", &[("If-None-Match", &etag2)]);
    assert_eq!(r.status, 304);
    // A size change is seen too.
    std::fs::write(&path, "short\n").unwrap();
    let r = srv.get("/page.html", &[]);
    assert_eq!(r.text(), "short\n");
    r.expect("Content-Length", "6");
    // A deleted file is gone.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(srv.get("/page.html", &[]).status, 404);
}

/// Coarse file-system clocks (one tick of the kernel timer) can give two writes
/// close together the same ctime; a pause makes the change visible in ctime.
fn past_one_timestamp_tick() {
    std::thread::sleep(Duration::from_millis(30));
}

/// Regression: revalidation compared only size and mtime, so a new file renamed
/// into place with the same size and mtime (a new inode) was never seen, and its
/// content was served under the old file's ETag.
#[test]
fn content_renamed_into_place_with_same_size_and_mtime_is_served_after_revalidation() {
    let site = sidecar_site();
    let root = site.root.clone();
    let srv = Srv::start(site, |b| b.revalidate_after(Duration::ZERO));
    let first = srv.get("/page.html", &[]);
    assert_eq!(first.text(), PAGE);
    let etag1 = first.header("ETag").unwrap().to_owned();
    let gz1 = srv.raw_get("/app.js", "Accept-Encoding: gzip\r\n");
    assert_eq!(gz1.text(), "GZIP-BYTES-OF-app.js");
    let gz_etag1 = gz1.header("ETag").unwrap().to_owned();
    past_one_timestamp_tick();
    // New files of the same length with the same mtime, renamed over the old ones.
    let changed = PAGE.replace("page", "PAGE");
    for (name, data) in [
        ("page.html", changed.as_str()),
        ("app.js.gz", "GZIP-BYTES-OF-APP.JS"),
    ] {
        let tmp = srv.site.file(&format!("{name}.tmp"), data);
        std::fs::rename(&tmp, root.join(name)).unwrap();
    }
    let second = srv.get("/page.html", &[]);
    assert_eq!(second.text(), changed);
    second.expect("Last-Modified", FIXED_DATE);
    let etag2 = second.header("ETag").unwrap().to_owned();
    assert_ne!(etag1, etag2, "two contents share one strong ETag");
    // The old validator no longer matches: the new content, not a 304.
    let r = srv.get("/page.html", &[("If-None-Match", &etag1)]);
    assert_eq!((r.status, r.text()), (200, changed.clone()));
    let r = srv.get("/page.html", &[("If-None-Match", &etag2)]);
    assert_eq!(r.status, 304);
    // A sidecar is revalidated the same way.
    let gz2 = srv.raw_get("/app.js", "Accept-Encoding: gzip\r\n");
    assert_eq!(gz2.text(), "GZIP-BYTES-OF-APP.JS");
    assert_ne!(gz2.header("ETag").unwrap(), gz_etag1);
    let r = srv.raw_get(
        "/app.js",
        &format!("Accept-Encoding: gzip\r\nIf-None-Match: {gz_etag1}\r\n"),
    );
    assert_eq!((r.status, r.text()), (200, "GZIP-BYTES-OF-APP.JS".to_owned()));
}

/// Regression: a file rewritten in place (same inode) with its size kept and its
/// mtime restored was served from the cache forever; its ctime changes, and is
/// now compared.
#[test]
fn content_rewritten_in_place_with_restored_mtime_is_served_after_revalidation() {
    let site = basic_site();
    let path = site.root.join("page.html");
    let srv = Srv::start(site, |b| b.revalidate_after(Duration::from_millis(200)));
    let first = srv.get("/page.html", &[]);
    assert_eq!(first.text(), PAGE);
    let etag1 = first.header("ETag").unwrap().to_owned();
    past_one_timestamp_tick();
    let changed = PAGE.replace("page", "PAGE");
    std::fs::write(&path, &changed).unwrap();
    set_mtime(&path, fixed_time());
    // Past the revalidation interval the disk is looked at again.
    std::thread::sleep(Duration::from_millis(300));
    let second = srv.get("/page.html", &[]);
    assert_eq!(second.text(), changed);
    second.expect("Last-Modified", FIXED_DATE);
    let etag2 = second.header("ETag").unwrap().to_owned();
    assert_ne!(etag1, etag2, "two contents share one strong ETag");
    let r = srv.get("/page.html", &[("If-None-Match", &etag1)]);
    assert_eq!((r.status, r.text()), (200, changed.clone()));
    let r = srv.get("/page.html", &[("If-None-Match", &etag2)]);
    assert_eq!(r.status, 304);
    // An unchanged file keeps its ETag across revalidations.
    std::thread::sleep(Duration::from_millis(300));
    srv.get("/page.html", &[]).expect("ETag", &etag2);
}

#[test]
fn within_the_revalidation_interval_the_cached_copy_is_served() {
    let site = basic_site();
    let path = site.root.join("page.html");
    let srv = Srv::start(site, |b| b.revalidate_after(Duration::from_secs(3600)));
    assert_eq!(srv.get("/page.html", &[]).text(), PAGE);
    std::fs::write(&path, "changed\n").unwrap();
    // Cheap revalidation: the disk is not looked at again within the interval.
    assert_eq!(srv.get("/page.html", &[]).text(), PAGE);
}

// -------------------------------------------------- precompressed sidecars

fn sidecar_site() -> Site {
    let site = basic_site();
    site.file("app.js", "console.log('identity');\n");
    site.file("app.js.gz", "GZIP-BYTES-OF-app.js");
    site.file("app.js.br", "BROTLI-BYTES-OF-app.js");
    site.file("only-gz.css", "body{}\n");
    site.file("only-gz.css.gz", "GZIP-CSS");
    site
}

#[test]
fn precompressed_sidecars_follow_accept_encoding() {
    let srv = Srv::start(sidecar_site(), |b| b);
    let identity = "console.log('identity');\n";
    let cases: &[(Option<&str>, &str, Option<&str>)] = &[
        (None, identity, None),
        (Some("gzip"), "GZIP-BYTES-OF-app.js", Some("gzip")),
        (Some("br"), "BROTLI-BYTES-OF-app.js", Some("br")),
        (Some("gzip, deflate, br"), "BROTLI-BYTES-OF-app.js", Some("br")),
        (Some("br;q=0, gzip"), "GZIP-BYTES-OF-app.js", Some("gzip")),
        (Some("br;q=0.5, gzip;q=0.9"), "GZIP-BYTES-OF-app.js", Some("gzip")),
        (Some("gzip;q=0, br;q=0"), identity, None),
        (Some("*;q=0"), identity, None),
        (Some("identity"), identity, None),
        (Some("deflate"), identity, None),
        (Some("*"), "BROTLI-BYTES-OF-app.js", Some("br")),
    ];
    let mut etags = std::collections::HashMap::new();
    for (accept, body, coding) in cases {
        let extra = accept.map_or(String::new(), |a| format!("Accept-Encoding: {a}\r\n"));
        let r = srv.raw_get("/app.js", &extra);
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.text(), *body, "{accept:?}");
        r.expect("Vary", "Accept-Encoding")
            .expect("Content-Type", "text/javascript; charset=utf-8")
            .expect("Content-Length", &body.len().to_string());
        assert_eq!(r.header("Content-Encoding"), *coding, "{accept:?}");
        let etag = r.header("ETag").unwrap().to_owned();
        let prev = etags.insert(coding.map(str::to_owned), etag.clone());
        assert!(prev.is_none_or(|p| p == etag), "stable ETag per variant");
    }
    // Each representation has its own entity-tag.
    assert_eq!(etags.len(), 3);
    let distinct: std::collections::HashSet<_> = etags.values().collect();
    assert_eq!(distinct.len(), 3);
    // A file with only a gzip sidecar: br-only clients get identity (with Vary).
    let r = srv.raw_get("/only-gz.css", "Accept-Encoding: br\r\n");
    assert_eq!(r.text(), "body{}\n");
    r.expect("Vary", "Accept-Encoding")
        .expect_absent("Content-Encoding");
    let r = srv.raw_get("/only-gz.css", "Accept-Encoding: gzip, br\r\n");
    assert_eq!(r.text(), "GZIP-CSS");
    r.expect("Content-Encoding", "gzip")
        .expect("Content-Type", "text/css; charset=utf-8");
    // A file without sidecars has no Vary.
    srv.raw_get("/page.html", "Accept-Encoding: gzip, br\r\n")
        .expect_absent("Vary")
        .expect_absent("Content-Encoding");
}

#[test]
fn ranges_and_validators_apply_to_the_encoded_file() {
    let srv = Srv::start(sidecar_site(), |b| b);
    let r = srv.raw_get("/app.js", "Accept-Encoding: gzip\r\nRange: bytes=0-3\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "GZIP");
    r.expect("Content-Encoding", "gzip")
        .expect("Vary", "Accept-Encoding")
        .expect(
            "Content-Range",
            &format!("bytes 0-3/{}", "GZIP-BYTES-OF-app.js".len()),
        );
    let gz_etag = r.header("ETag").unwrap().to_owned();
    let r = srv.raw_get(
        "/app.js",
        &format!("Accept-Encoding: gzip\r\nIf-None-Match: {gz_etag}\r\n"),
    );
    assert_eq!(r.status, 304);
    r.expect("Content-Encoding", "gzip")
        .expect("Vary", "Accept-Encoding");
    // The gzip variant's tag does not validate the identity representation.
    let r = srv.raw_get("/app.js", &format!("If-None-Match: {gz_etag}\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "console.log('identity');\n");
}

#[test]
fn precompressed_off_serves_identity_only() {
    let srv = Srv::start(sidecar_site(), |b| b.precompressed(false));
    let r = srv.raw_get("/app.js", "Accept-Encoding: gzip, br\r\n");
    assert_eq!(r.text(), "console.log('identity');\n");
    r.expect_absent("Content-Encoding").expect_absent("Vary");
}

// ---------------------------------------------------- instance and extras

#[test]
fn server_id_and_extra_headers_on_every_response() {
    let site = basic_site();
    site.dir("d");
    let srv = Srv::start(site, |b| {
        b.server_id("backend-9002")
            .header("X-Frame-Options", "DENY")
            .header("Strict-Transport-Security", "max-age=63072000")
    });
    let etag = srv.get("/page.html", &[]).header("ETag").unwrap().to_owned();
    let cases: Vec<(String, u16)> = vec![
        ("GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n".into(), 200),
        ("HEAD /page.html HTTP/1.1\r\nHost: t\r\n\r\n".into(), 200),
        (
            "GET /page.html HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\n\r\n".into(),
            206,
        ),
        (
            "GET /page.html HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,3-4\r\n\r\n".into(),
            206,
        ),
        (
            "GET /page.html HTTP/1.1\r\nHost: t\r\nRange: bytes=9999-\r\n\r\n".into(),
            416,
        ),
        (
            format!("GET /page.html HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"),
            304,
        ),
        (
            "GET /page.html HTTP/1.1\r\nHost: t\r\nIf-Match: \"x\"\r\n\r\n".into(),
            412,
        ),
        ("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n".into(), 404),
        ("GET /../x HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400),
        ("GET /d HTTP/1.1\r\nHost: t\r\n\r\n".into(), 301),
        ("POST / HTTP/1.1\r\nHost: t\r\n\r\n".into(), 405),
        ("OPTIONS / HTTP/1.1\r\nHost: t\r\n\r\n".into(), 204),
    ];
    for (req, status) in cases {
        let mut c = srv.raw();
        c.send(req.as_bytes());
        let r = c.response(req.starts_with("HEAD"));
        assert_eq!(r.status, status, "{req:?}");
        r.expect("X-Served-By", "backend-9002")
            .expect("Server-Timing", "served-by;desc=\"backend-9002\"")
            .expect("X-Frame-Options", "DENY")
            .expect("Strict-Transport-Security", "max-age=63072000");
    }
    // ureq sees it too.
    srv.get("/", &[]).expect("X-Served-By", "backend-9002");
}

#[test]
fn builder_errors() {
    let site = basic_site();
    let missing = site.base.join("no-such-dir");
    let err = StaticFiles::builder(&missing).build().unwrap_err();
    assert!(matches!(err, Error::Root { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    let err = StaticFiles::builder(site.root.join("page.html"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::RootNotDirectory(_)), "{err:?}");
    for (n, v) in [
        ("Bad Name", "x"),
        ("X-Ok", "a\r\nInjected: 1"),
        ("Content-Length", "5"),
        ("", "x"),
    ] {
        let err = StaticFiles::builder(&site.root).header(n, v).build().unwrap_err();
        assert!(matches!(err, Error::BadHeader(_)), "{n:?}: {err:?}");
    }
    let err = StaticFiles::builder(&site.root)
        .server_id("a\nb")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::BadHeader(_)), "{err:?}");
    // The root is canonicalised.
    let files = StaticFiles::builder(site.root.join("./")).build().unwrap();
    assert_eq!(files.root(), std::fs::canonicalize(&site.root).unwrap());
}

// ------------------------------------------------------------- pipelining

#[test]
fn two_hundred_pipelined_requests_answered_in_order() {
    let site = basic_site();
    for i in 0..10 {
        site.file(&format!("f{i}.txt"), format!("file number {i}\n").repeat(i + 1));
    }
    let srv = Srv::start(site, |b| b);
    let mut all = Vec::new();
    let mut expected = Vec::new();
    for n in 0..200 {
        let i = n % 10;
        let (req, status, body) = match n % 7 {
            3 => (
                format!("GET /missing-{n} HTTP/1.1\r\nHost: t\r\n\r\n"),
                404,
                "not found\n".to_owned(),
            ),
            5 => (
                format!("GET /f{i}.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-10\r\n\r\n"),
                206,
                format!("file number {i}\n")[..11].to_owned(),
            ),
            _ => (
                format!("GET /f{i}.txt?n={n} HTTP/1.1\r\nHost: t\r\n\r\n"),
                200,
                format!("file number {i}\n").repeat(i + 1),
            ),
        };
        all.extend_from_slice(req.as_bytes());
        expected.push((status, body));
    }
    all.extend_from_slice(b"GET /page.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut c = srv.raw();
    c.send(&all);
    for (n, (status, body)) in expected.iter().enumerate() {
        let r = c.response(false);
        assert_eq!((r.status, &r.text()), (*status, body), "response {n}");
    }
    let last = c.response(false);
    assert_eq!(last.text(), PAGE);
    last.expect("Connection", "close");
    assert!(c.closed());
}

#[test]
fn mtime_in_the_future_or_past_is_reported_as_is() {
    let site = basic_site();
    let p = site.file("old.txt", "old\n");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
    set_mtime(&p, t);
    let srv = Srv::start(site, |b| b);
    srv.get("/old.txt", &[])
        .expect("Last-Modified", "Fri, 02 Jan 1970 00:00:00 GMT");
}
