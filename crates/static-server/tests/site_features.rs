//! Header rules, the single-page-app fallback, error pages and listings (sorted,
//! human sizes, JSON) over real TCP: ureq for ordinary targets, raw sockets for
//! hostile ones, serde_json to read the JSON listings.

mod common;

use std::time::{Duration, SystemTime};

use common::{fixed_time, set_mtime, Site, Srv};
use static_server::{Error, HeaderRule, PageError, StaticFiles};
use test_support::Reply;

fn rule(text: &str) -> HeaderRule {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// One request (`GET`/`HEAD`/... with `extra` header lines) on a fresh raw connection.
fn raw(srv: &Srv, method: &str, target: &str, extra: &str) -> Reply {
    let mut c = srv.raw();
    c.send(format!("{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
    c.response(method == "HEAD")
}

// ------------------------------------------------------------ header rules

const LONG: &str = "public, max-age=31536000, immutable";

fn rules_site() -> Site {
    let site = Site::new("rules-hdr");
    site.file("index.html", "<h1>index</h1>\n");
    site.file("app.css", "body{}\n");
    site.file("app.js", "console.log(1);\n");
    site.file("app.js.gz", "pretend-gzip");
    site.file("vendor/lib.js", "lib();\n");
    site.file("assets/img/logo.png", "PNG");
    site.file("other.txt", "other\n");
    site.file("docs/index.html", "<h1>docs</h1>\n");
    site
}

fn rules_server(site: Site, cache: bool) -> Srv {
    Srv::start(site, |b| {
        b.cache(1 << 20, if cache { 64 << 20 } else { 0 })
            .server_id("s1")
            .header("Cache-Control", "private")
            .header_rule(rule(&format!("*.css,*.js: Cache-Control: {LONG}")))
            .header_rule(rule("*.html: Cache-Control: no-cache"))
            .header_rule(rule("/assets/**: X-Asset: yes"))
            .header_rule(rule("vendor/*.js: Cache-Control: no-store"))
            .header_rule(rule("*.wasm: X-Wasm: yes"))
    })
}

/// Every answer for a file (200, HEAD, 206 single and multipart, 304, the
/// gzip variant) carries the rule's header once; files no rule matches keep
/// the extra header; cached or not, first request or repeated.
#[test]
fn header_rules_reach_200_206_and_304_and_later_rules_win() {
    let table: &[(&str, &str, Option<&str>)] = &[
        ("/app.css", LONG, None),
        ("/app.js", LONG, None),
        ("/vendor/lib.js", "no-store", None), // the later rule wins
        ("/index.html", "no-cache", None),
        ("/", "no-cache", None),      // the index file's path is what matches
        ("/docs/", "no-cache", None), // in a subdirectory too
        ("/other.txt", "private", None),
        ("/assets/img/logo.png", "private", Some("yes")),
    ];
    for cache in [true, false] {
        let srv = rules_server(rules_site(), cache);
        for &(target, cc, asset) in table {
            let first = srv.get(target, &[]);
            let etag = first.header("ETag").unwrap().to_owned();
            let requests = [
                ("GET", String::new(), 200),
                ("GET", String::new(), 200), // now from the cache, when on
                ("HEAD", String::new(), 200),
                ("GET", "Range: bytes=0-1\r\n".to_owned(), 206),
                ("GET", "Range: bytes=0-0,2-2\r\n".to_owned(), 206),
                ("GET", format!("If-None-Match: {etag}\r\n"), 304),
                ("GET", "Accept-Encoding: gzip\r\n".to_owned(), 200),
            ];
            for (method, extra, status) in &requests {
                let r = raw(&srv, method, target, extra);
                let what = format!("{method} {target} {extra:?} cache {cache}");
                assert_eq!(r.status, *status, "{what}");
                assert_eq!(r.all("Cache-Control"), [cc], "{what}");
                assert_eq!(r.header("X-Asset"), asset, "{what}");
                r.expect("X-Served-By", "s1").expect_absent("X-Wasm");
            }
        }
        // The gzip sidecar got the rule: it is the variant served.
        let r = raw(&srv, "GET", "/app.js", "Accept-Encoding: gzip\r\n");
        r.expect("Content-Encoding", "gzip");
        assert_eq!(r.text(), "pretend-gzip");
        // Error answers and listings do not take rules: a 404 for a path a
        // rule would match has only the extra header.
        for target in ["/missing.css", "/x.wasm", "/assets/none.png"] {
            let r = raw(&srv, "GET", target, "");
            assert_eq!(r.status, 404, "{target}");
            assert_eq!(r.all("Cache-Control"), ["private"], "{target}");
            r.expect_absent("X-Asset").expect_absent("X-Wasm");
        }
    }
}

#[test]
fn no_rules_means_the_headers_of_today() {
    let site = rules_site();
    let srv = Srv::start(site, |b| b);
    for target in ["/app.css", "/index.html", "/assets/img/logo.png"] {
        let r = srv.get(target, &[]);
        assert_eq!(r.status, 200);
        r.expect_absent("Cache-Control").expect_absent("X-Asset");
        let names: Vec<String> = r.comparable_headers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "etag",
                "last-modified",
                "accept-ranges",
                "x-content-type-options",
                "content-length"
            ],
            "{target}"
        );
    }
}

#[test]
fn bad_rules_are_refused_with_typed_errors() {
    for (text, check) in [
        ("*.css", "expected `GLOB[,GLOB]: Name: value`"),
        ("a[: X-A: 1", "glob"),
        ("*: Bad Name: 1", "invalid header name"),
        ("*: Content-Length: 1", "set by the server"),
        ("*: Transfer-Encoding: chunked", "set by the server"),
        ("*: Connection: close", "set by the server"),
        ("*: Content-Range: bytes 0-1/2", "set by the server"),
    ] {
        let e = text.parse::<HeaderRule>().unwrap_err();
        assert!(e.to_string().contains(check), "{text}: {e}");
    }
    assert!(HeaderRule::new("*.css", "X-A", "a\r\nInjected: 1").is_err());
    assert!(HeaderRule::new("*.css", "X-A", "").is_err());
}

// ---------------------------------------------------------------- fallback

const SPA: &str = "<!DOCTYPE html><div id=app></div>\n";
const SECRET: &str = "SECRET outside the root\n";

fn spa_site() -> Site {
    let site = Site::new("spa");
    site.file("index.html", SPA);
    site.file("app.js", "app();\n");
    site.file(".env", "ENV=secret\n");
    site.file(".git/config", "[core]\n");
    site.file("docs/readme.txt", "readme\n");
    site.outside("secret", SECRET);
    site.symlink("escape", "../secret");
    site
}

#[test]
fn fallback_serves_app_routes_and_nothing_else() {
    let srv = Srv::start(spa_site(), |b| b.fallback("index.html").server_id("s"));
    let spa_etag = srv.get("/index.html", &[]).header("ETag").unwrap().to_owned();
    // (target, status, body: Some(SPA) for the fallback, Some(text) otherwise)
    let table: &[(&str, u16, &str)] = &[
        ("/users/42", 200, SPA),
        ("/users/42/", 200, SPA),
        ("/about", 200, SPA),
        ("/a/b/c/d", 200, SPA),
        ("/users/42?tab=x", 200, SPA),
        ("/v1.2/users", 200, SPA), // only the last segment's extension counts
        // An extension: an asset that is missing, not a route.
        ("/missing.png", 404, "not found\n"),
        ("/users/john.doe", 404, "not found\n"),
        ("/app.js", 200, "app();\n"),
        ("/app.js/", 404, "not found\n"),
        // A directory without an index (listing off) is not absent.
        ("/docs/", 404, "not found\n"),
        ("/docs", 301, "moved permanently\n"),
        // Traversal and malformed paths: refused, never the fallback.
        ("/../etc/passwd", 400, "bad request path\n"),
        ("/%2e%2e/x", 400, "bad request path\n"),
        ("/.%2e/secret", 400, "bad request path\n"),
        ("/a%2f..%2f..%2fsecret", 400, "bad request path\n"),
        ("/a%5c..%5csecret", 400, "bad request path\n"),
        ("/x%00", 400, "bad request path\n"),
        ("/%zz", 400, "bad request path\n"),
        ("/c:/windows", 400, "bad request path\n"),
        // Dot names: 404, never the dotfile and never the fallback.
        ("/.env", 404, "not found\n"),
        ("/.git/config", 404, "not found\n"),
        ("/.git/HEAD", 404, "not found\n"),
        ("/.git", 404, "not found\n"),
        ("/.hidden-route", 404, "not found\n"),
        ("/users/.x", 404, "not found\n"),
        // A link out of the root counts as absent: the app, never the target.
        ("/escape", 200, SPA),
    ];
    for &(target, status, body) in table {
        let r = raw(&srv, "GET", target, "");
        assert_eq!((r.status, r.text().as_str()), (status, body), "GET {target}");
        assert!(
            !r.text().contains("SECRET") && !r.text().contains("ENV="),
            "{target}"
        );
        r.expect("X-Served-By", "s");
        if body == SPA {
            // Served as the file itself, revalidated by the browser.
            r.expect("Content-Type", "text/html; charset=utf-8")
                .expect("ETag", &spa_etag)
                .expect("Cache-Control", "no-cache")
                .expect("Accept-Ranges", "bytes");
        }
    }
    // HEAD: the same headers, no body.
    let head = raw(&srv, "HEAD", "/users/42", "");
    assert_eq!(head.status, 200);
    head.expect("Content-Length", &SPA.len().to_string());
    assert!(head.body.is_empty());
    // Conditional requests and ranges work on the fallback answer.
    let r = raw(
        &srv,
        "GET",
        "/users/42",
        &format!("If-None-Match: {spa_etag}\r\n"),
    );
    assert_eq!(r.status, 304);
    r.expect("Cache-Control", "no-cache");
    let r = raw(&srv, "GET", "/users/42", "Range: bytes=0-8\r\n");
    assert_eq!((r.status, r.text().as_str()), (206, "<!DOCTYPE"));
    // Other methods: 405, as everywhere.
    for method in ["POST", "PUT", "DELETE"] {
        let r = raw(&srv, method, "/users/42", "Content-Length: 0\r\n");
        assert_eq!(r.status, 405, "{method}");
        r.expect("Allow", "GET, HEAD, OPTIONS");
    }
    // The fallback file asked for directly, or as the root's index, is the
    // same resource with the same headers.
    for target in ["/index.html", "/"] {
        let r = srv.get(target, &[]);
        assert_eq!(r.text(), SPA);
        r.expect("Cache-Control", "no-cache").expect("ETag", &spa_etag);
    }
}

#[test]
fn fallback_extensions_rules_and_a_vanished_file() {
    let site = spa_site();
    let index = site.root.join("index.html");
    let srv = Srv::start(site, |b| {
        b.fallback("/index.html")
            .fallback_extensions(["html", ".HTM"])
            .revalidate_after(Duration::ZERO)
            .header_rule(rule("index.html: Cache-Control: max-age=60"))
    });
    for (target, status) in [
        ("/about.html", 200),
        ("/about.HTML", 200),
        ("/old.htm", 200),
        ("/route", 200),
        ("/logo.png", 404),
        ("/.about.html", 404),
    ] {
        let r = raw(&srv, "GET", target, "");
        assert_eq!(r.status, status, "{target}");
        if status == 200 {
            assert_eq!(r.text(), SPA);
            // A rule's Cache-Control replaces the default: never two.
            assert_eq!(r.all("Cache-Control"), ["max-age=60"], "{target}");
        }
    }
    std::fs::remove_file(&index).unwrap();
    let r = raw(&srv, "GET", "/route", "");
    assert_eq!((r.status, r.text().as_str()), (404, "not found\n"));
}

#[test]
fn fallback_and_error_page_files_are_checked_at_build() {
    let site = spa_site();
    site.file("errors/404.html", "gone");
    let build = |b: static_server::Builder| b.build().map(|_| ()).unwrap_err();
    type Check = fn(&PageError) -> bool;
    let cases: Vec<(&str, Check)> = vec![
        ("missing.html", |r| matches!(r, PageError::Absent)),
        (".env", |r| matches!(r, PageError::Hidden)),
        (".git/config", |r| matches!(r, PageError::Hidden)),
        ("../secret", |r| matches!(r, PageError::Invalid)),
        ("a/../../secret", |r| matches!(r, PageError::Invalid)),
        ("docs", |r| matches!(r, PageError::NotAFile)),
        ("docs/", |r| matches!(r, PageError::Invalid)),
        ("escape", |r| matches!(r, PageError::Absent)),
        ("", |r| matches!(r, PageError::Invalid)),
    ];
    for (file, want) in &cases {
        let e = build(StaticFiles::builder(&site.root).fallback(file));
        match &e {
            Error::Fallback { reason, .. } => assert!(want(reason), "{file}: {e}"),
            other => panic!("{file}: {other:?}"),
        }
        assert!(e.to_string().contains("fallback"), "{e}");
        let e = build(StaticFiles::builder(&site.root).error_page(404, file));
        match &e {
            Error::ErrorPage {
                status: 404, reason, ..
            } => assert!(want(reason), "{file}: {e}"),
            other => panic!("{file}: {other:?}"),
        }
    }
    for status in [0, 200, 302, 399, 600] {
        let e = build(StaticFiles::builder(&site.root).error_page(status, "errors/404.html"));
        assert!(matches!(e, Error::ErrorPageStatus(s) if s == status), "{e:?}");
    }
    assert!(StaticFiles::builder(&site.root)
        .fallback("index.html")
        .error_page(404, "errors/404.html")
        .error_page(500, "/errors/404.html")
        .build()
        .is_ok());
}

// ------------------------------------------------------------- error pages

const PAGE_404: &str = "<!DOCTYPE html><h1>Nothing here</h1>\n";

fn pages_site() -> Site {
    let site = Site::new("pages");
    site.file("page.html", "<p>page</p>\n");
    site.file("errors/404.html", PAGE_404);
    site.file("errors/400.html", "<h1>Bad path</h1>\n");
    site.file("errors/405.txt", "method not welcome\n");
    site.file("errors/416.html", "<h1>Bad range</h1>\n");
    site.file(".env", "ENV=secret\n");
    site
}

#[test]
fn error_pages_are_served_with_their_status() {
    let srv = Srv::start(pages_site(), |b| {
        b.server_id("s")
            .header_rule(rule("*.html: X-Rule: yes"))
            .error_page(404, "errors/404.html")
            .error_page(400, "errors/400.html")
            .error_page(405, "errors/405.txt")
            .error_page(416, "/errors/416.html")
    });
    // (method, target, extra, status, content type, body)
    let html = "text/html; charset=utf-8";
    let table: &[(&str, &str, &str, u16, &str, &str)] = &[
        ("GET", "/missing", "", 404, html, PAGE_404),
        ("GET", "/missing.png", "", 404, html, PAGE_404),
        ("GET", "/.env", "", 404, html, PAGE_404),
        ("GET", "/page.html/", "", 404, html, PAGE_404),
        ("GET", "/../etc/passwd", "", 400, html, "<h1>Bad path</h1>\n"),
        ("GET", "/%2e%2e/x", "", 400, html, "<h1>Bad path</h1>\n"),
        (
            "POST",
            "/page.html",
            "Content-Length: 0\r\n",
            405,
            "text/plain; charset=utf-8",
            "method not welcome\n",
        ),
        (
            "GET",
            "/page.html",
            "Range: bytes=999-\r\n",
            416,
            html,
            "<h1>Bad range</h1>\n",
        ),
        // No page for 412: the built-in text.
        (
            "GET",
            "/page.html",
            "If-Match: \"nope\"\r\n",
            412,
            "text/plain; charset=utf-8",
            "precondition failed\n",
        ),
    ];
    for &(method, target, extra, status, ctype, body) in table {
        for m in [method, "HEAD"] {
            if m == "HEAD" && method != "GET" {
                continue;
            }
            let what = format!("{m} {target} {extra:?}");
            let mut c = srv.raw();
            c.send(format!("{m} {target} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
            c.send(b"GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n");
            let r = c.response(m == "HEAD");
            assert_eq!(r.status, status, "{what}");
            r.expect("Content-Type", ctype)
                .expect("Content-Length", &body.len().to_string())
                .expect("X-Served-By", "s")
                .expect_absent("ETag")
                .expect_absent("Last-Modified")
                .expect_absent("Accept-Ranges")
                .expect_absent("X-Rule");
            assert_eq!(r.text(), if m == "HEAD" { "" } else { body }, "{what}");
            // The other headers of the status stay.
            match status {
                405 => {
                    r.expect("Allow", "GET, HEAD, OPTIONS");
                }
                416 => {
                    r.expect("Content-Range", "bytes */12");
                }
                _ => {}
            }
            // And the connection is kept.
            let next = c.response(false);
            assert_eq!(
                (next.status, next.text().as_str()),
                (200, "<p>page</p>\n"),
                "{what}"
            );
        }
    }
    // Errors the connection driver gives keep their text (and close).
    let mut c = srv.raw();
    c.send(b"GET /missing HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 400);
    r.expect("Content-Type", "text/plain; charset=utf-8");
    assert!(c.closed());
    // ureq agrees.
    let r = srv.get("/nothing", &[]);
    assert_eq!((r.status, r.text().as_str()), (404, PAGE_404));
}

#[test]
fn error_page_edits_show_and_a_vanished_page_falls_back_to_text() {
    let site = pages_site();
    let page = site.root.join("errors/404.html");
    let srv = Srv::start(site, |b| {
        b.error_page(404, "errors/404.html")
            .revalidate_after(Duration::ZERO)
    });
    assert_eq!(srv.raw_get("/x", "").text(), PAGE_404);
    std::fs::write(&page, "<h1>Edited</h1>\n").unwrap();
    set_mtime(&page, SystemTime::now());
    let r = srv.raw_get("/x", "");
    assert_eq!((r.status, r.text().as_str()), (404, "<h1>Edited</h1>\n"));
    std::fs::remove_file(&page).unwrap();
    let r = srv.raw_get("/x", "");
    assert_eq!((r.status, r.text().as_str()), (404, "not found\n"));
    r.expect("Content-Type", "text/plain; charset=utf-8");
}

#[test]
fn a_large_error_page_streams_from_disk() {
    let site = pages_site();
    let big = "<p>".to_owned() + &"x".repeat(40_000) + "</p>\n";
    site.file("errors/big.html", &big);
    let srv = Srv::start(site, |b| {
        b.cache(1024, 1 << 20).error_page(404, "errors/big.html")
    });
    let r = srv.raw_get("/x", "");
    assert_eq!((r.status, r.body.len()), (404, big.len()));
    assert_eq!(r.text(), big);
    let r = raw(&srv, "HEAD", "/x", "");
    assert_eq!(r.status, 404);
    r.expect("Content-Length", &big.len().to_string());
}

// ---------------------------------------------------------------- listings

/// Names a listing must escape in every context.
const HOSTILE: &[&str] = &[
    "<script>alert(1)<\u{2215}script>.txt",
    "<img src=x onerror=alert(1)>.txt",
    "\"quote\".txt",
    "it's.txt",
    "a&b.txt",
    "x&amp;y.txt",
    "100%.txt",
    "%41.txt",
    "sp ace.txt",
    "q?x=1#frag.txt",
    "caf\u{e9} \u{2603} \u{202e}txt.exe",
    "\u{1f600}.txt",
];

fn listing_site() -> Site {
    let site = Site::new("listing");
    let t0 = fixed_time();
    let files: &[(&str, usize, u64)] = &[("small.txt", 3, 30), ("mid.bin", 2000, 10), ("big.bin", 5000, 20)];
    for &(name, len, age) in files {
        let p = site.file(&format!("d/{name}"), vec![b'x'; len]);
        set_mtime(&p, t0 + Duration::from_secs(age));
    }
    for (i, name) in HOSTILE.iter().enumerate() {
        let p = site.file(&format!("d/{name}"), format!("content of {name}"));
        set_mtime(&p, t0 + Duration::from_secs(100 + i as u64));
    }
    site.file("d/.hidden", "hidden");
    site.file("d/.git/config", "hidden");
    site.file("d/zdir/in.txt", "in");
    site.file("d/adir/in.txt", "in");
    set_dir_mtime(&site.root.join("d/zdir"), t0 + Duration::from_secs(5));
    set_dir_mtime(&site.root.join("d/adir"), t0 + Duration::from_secs(1));
    site
}

fn set_dir_mtime(dir: &std::path::Path, t: SystemTime) {
    std::fs::File::open(dir).unwrap().set_modified(t).unwrap();
}

/// Undoes the HTML escaping of an attribute value.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The `./...` links of a listing's rows, HTML-unescaped, in order.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"./")
        .skip(1)
        .map(|rest| unescape(&rest[..rest.find('"').unwrap()]))
        .collect()
}

fn names_in_json(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn listing_links_lead_to_each_file_and_names_are_escaped() {
    let srv = Srv::start(listing_site(), |b| b.listing(true));
    let r = srv.get("/d/", &[]);
    assert_eq!(r.status, 200);
    r.expect("Content-Type", "text/html; charset=utf-8")
        .expect("Vary", "Accept")
        .expect("Cache-Control", "no-cache")
        .expect("X-Content-Type-Options", "nosniff");
    let html = r.text();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains(">&lt;script&gt;alert(1)&lt;\u{2215}script&gt;.txt</a>"),
        "{html}"
    );
    assert!(
        html.contains(">&lt;img src=x onerror=alert(1)&gt;.txt</a>"),
        "{html}"
    );
    assert!(html.contains(">&quot;quote&quot;.txt</a>"), "{html}");
    assert!(html.contains("href=\"./%22quote%22.txt\""), "{html}");
    assert!(html.contains("href=\"./100%25.txt\""), "{html}");
    assert!(html.contains("href=\"./sp%20ace.txt\""), "{html}");
    assert!(html.contains("href=\"./q%3Fx=1%23frag.txt\""), "{html}");
    assert!(!html.contains("hidden") && !html.contains(".git"), "{html}");
    // Every link, as a browser resolves it, reaches its file.
    let hrefs = links(&html);
    assert_eq!(hrefs.len(), HOSTILE.len() + 5, "{hrefs:?}");
    let mut hostile_reached = 0;
    for href in &hrefs {
        let r = srv.raw_get(&format!("/d/{href}"), "");
        if href.ends_with('/') {
            // A directory without an index: its own listing.
            assert_eq!(r.status, 200, "{href}");
            assert!(r.text().contains("<a href=\"./in.txt\">in.txt</a>"), "{href}");
            continue;
        }
        assert_eq!(r.status, 200, "{href}");
        if let Some(name) = HOSTILE
            .iter()
            .find(|n| percent_encoding::percent_decode_str(href).decode_utf8().unwrap() == **n)
        {
            assert_eq!(r.text(), format!("content of {name}"), "{href}");
            hostile_reached += 1;
        }
    }
    assert_eq!(hostile_reached, HOSTILE.len());
    // Hidden names are not reachable through the listing's links either.
    assert_eq!(srv.raw_get("/d/.hidden", "").status, 404);
}

#[test]
fn listing_sorts_by_name_size_and_mtime_directories_first() {
    let srv = Srv::start(listing_site(), |b| b.listing(true));
    let order = |query: &str| -> Vec<String> {
        let r = srv.raw_get(&format!("/d/{query}"), "");
        assert_eq!(r.status, 200, "{query}");
        links(&r.text())
            .into_iter()
            .filter(|l| {
                !HOSTILE
                    .iter()
                    .any(|h| percent_encoding::percent_decode_str(l).decode_utf8().unwrap() == *h)
            })
            .collect()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        order(""),
        s(&["adir/", "zdir/", "big.bin", "mid.bin", "small.txt"])
    );
    assert_eq!(
        order("?sort=name&order=desc"),
        s(&["zdir/", "adir/", "small.txt", "mid.bin", "big.bin"])
    );
    assert_eq!(
        order("?sort=size"),
        s(&["adir/", "zdir/", "small.txt", "mid.bin", "big.bin"])
    );
    assert_eq!(
        order("?sort=size&order=desc"),
        s(&["zdir/", "adir/", "big.bin", "mid.bin", "small.txt"])
    );
    assert_eq!(
        order("?sort=mtime"),
        s(&["adir/", "zdir/", "mid.bin", "big.bin", "small.txt"])
    );
    assert_eq!(
        order("?sort=mtime&order=desc"),
        s(&["zdir/", "adir/", "small.txt", "big.bin", "mid.bin"])
    );
    // Unknown values: the default order, not an error.
    let default = srv.raw_get("/d/", "").text();
    for q in [
        "?sort=bogus",
        "?order=sideways",
        "?sort=",
        "?sort=size&sort=bogus&order=up",
    ] {
        let r = srv.raw_get(&format!("/d/{q}"), "");
        assert_eq!(r.status, 200, "{q}");
        if q != "?sort=size&sort=bogus&order=up" {
            assert_eq!(r.text(), default, "{q}");
        }
    }
    // The column headers toggle the order of the current column.
    let html = srv.raw_get("/d/?sort=size&order=desc", "").text();
    assert!(
        html.contains("<th aria-sort=\"descending\"><a href=\"?sort=size&amp;order=asc\">Size</a></th>"),
        "{html}"
    );
    assert!(
        html.contains("<th><a href=\"?sort=name&amp;order=asc\">Name</a></th>"),
        "{html}"
    );
    let html = srv.raw_get("/d/", "").text();
    assert!(
        html.contains("<th aria-sort=\"ascending\"><a href=\"?sort=name&amp;order=desc\">Name</a></th>"),
        "{html}"
    );
    // Sizes for people, the exact count in the title.
    assert!(html.contains("<td title=\"2000 bytes\">2.0 KiB</td>"), "{html}");
    assert!(html.contains("<td title=\"5000 bytes\">4.9 KiB</td>"), "{html}");
    assert!(html.contains("<td title=\"3 bytes\">3 B</td>"), "{html}");
}

#[test]
fn listing_as_json_by_query_or_accept() {
    let srv = Srv::start(listing_site(), |b| b.listing(true));
    let t0 = fixed_time()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (target, accept) in [
        ("/d/?format=json", None),
        ("/d/?format=json&sort=size", Some("text/html")),
        ("/d/", Some("application/json")),
        ("/d/?sort=mtime", Some("application/json, */*;q=0.5")),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = srv.get(target, &headers);
        assert_eq!(r.status, 200, "{target}");
        r.expect("Content-Type", "application/json")
            .expect("Vary", "Accept")
            .expect("X-Content-Type-Options", "nosniff");
        let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
        let entries = v.as_array().unwrap();
        assert_eq!(entries.len(), HOSTILE.len() + 5, "{target}");
        for e in entries {
            let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 4, "{e}");
        }
        let find = |name: &str| {
            entries
                .iter()
                .find(|e| e["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing from {v}"))
        };
        assert_eq!(find("mid.bin")["type"], "file");
        assert_eq!(find("mid.bin")["size"], 2000);
        assert_eq!(find("mid.bin")["mtime"], t0 + 10);
        assert_eq!(find("adir")["type"], "dir");
        assert!(find("adir")["size"].is_null());
        assert_eq!(find("adir")["mtime"], t0 + 1);
        // Names come back exactly as they are on disk, whatever they hold.
        for name in HOSTILE {
            assert_eq!(find(name)["type"], "file", "{name}");
        }
        let names = names_in_json(&r.text());
        assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
    }
    // The JSON order follows ?sort and ?order like the page.
    let names = names_in_json(&srv.get("/d/?format=json&sort=size&order=desc", &[]).text());
    assert_eq!(&names[..4], ["zdir", "adir", "big.bin", "mid.bin"]);
    assert_eq!(names.last().unwrap(), "small.txt");
    // A browser's Accept, or ?format=html, gets the page.
    for (target, accept) in [
        (
            "/d/",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("/d/?format=html", "application/json"),
        ("/d/", "*/*"),
    ] {
        let r = srv.get(target, &[("Accept", accept)]);
        r.expect("Content-Type", "text/html; charset=utf-8")
            .expect("Vary", "Accept");
    }
    // Python's json module reads it too, when python3 is there.
    let body = srv.get("/d/?format=json", &[]).body;
    if let Some(names) = python_json_names(&body) {
        let mut want: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
        want.extend(["adir", "zdir", "small.txt", "mid.bin", "big.bin"].map(String::from));
        want.sort();
        let mut got = names;
        got.sort();
        assert_eq!(got, want);
    }
}

/// The names of a JSON listing as Python's json module reads them, or None
/// (with the reason printed) when python3 cannot be run.
fn python_json_names(body: &[u8]) -> Option<Vec<String>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = "import json,sys\nfor e in json.load(sys.stdin): print(json.dumps(e['name']))";
    let mut child = match Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "python3 missing under CI: {e}");
            eprintln!("skipping the python3 check: {e}");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<String>(l).unwrap())
            .collect(),
    )
}

/// A directory with more entries than a listing shows: the first ones in the
/// order asked for, and how many were left out, in HTML and in JSON.
#[test]
fn huge_directories_are_listed_in_part() {
    let site = Site::new("huge");
    let extra = 25;
    let total = 10_000 + extra;
    let dir = site.dir("big");
    for i in 0..total {
        std::fs::File::create(dir.join(format!("f{i:05}"))).unwrap();
    }
    let srv = Srv::start(site, |b| b.listing(true));
    let r = srv.get("/big/?format=json", &[]);
    r.expect("X-Listing-Omitted", &extra.to_string());
    let names = names_in_json(&r.text());
    assert_eq!(names.len(), 10_000);
    assert_eq!((names[0].as_str(), names[9_999].as_str()), ("f00000", "f09999"));
    let names = names_in_json(&srv.get("/big/?format=json&order=desc", &[]).text());
    assert_eq!(names[0], format!("f{:05}", total - 1));
    assert_eq!(names[9_999], format!("f{:05}", extra));
    let r = srv.get("/big/", &[]);
    r.expect("X-Listing-Omitted", &extra.to_string());
    let html = r.text();
    assert!(
        html.contains(&format!("<p>{extra} more entries not shown")),
        "{}",
        &html[html.len() - 300..]
    );
    assert_eq!(links(&html).len(), 10_000);
    // A small directory says nothing of the kind.
    srv.get("/", &[]).expect_absent("X-Listing-Omitted");
}

#[test]
fn listing_respects_an_extra_cache_control_header() {
    let srv = Srv::start(listing_site(), |b| {
        b.listing(true).header("Cache-Control", "no-store")
    });
    let r = srv.get("/d/", &[]);
    assert_eq!(r.all("Cache-Control"), ["no-store"]);
}
