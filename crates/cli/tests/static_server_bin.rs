//! The `static-server` binary as a user runs it: flags, the listening line,
//! errors, and shutdown on SIGTERM/SIGINT. Requests go through ureq.

mod common;

use std::path::Path;

use common::{assert_help_and_version, assert_one_error_line, run, Server, STATIC_SERVER};
use test_support::{accepts_connections, agent, TempDir, TIMEOUT};

/// A temporary root with `page.html` and `dir/a.txt`.
fn root_with_a_page(tag: &str) -> TempDir {
    let root = TempDir::new(tag);
    root.file("page.html", "<p>hello</p>\n");
    root.file("dir/a.txt", "a");
    root
}

/// `static-server --root ROOT --listen 127.0.0.1:0` and `flags`, once it listens.
fn serve(root: &Path, flags: &[&str]) -> Server {
    let root = root.to_str().unwrap();
    let args = [&["--root", root, "--listen", "127.0.0.1:0"], flags].concat();
    Server::start(STATIC_SERVER, "static-server", &args)
}

#[test]
fn prints_the_real_port_serves_and_names_itself() {
    let root = root_with_a_page("serve");
    let srv = serve(
        root.path(),
        &["--server-id", "backend-9002", "--header", "X-Extra: yes"],
    );
    assert_eq!(srv.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(srv.addr.port(), 0);
    let r = srv.get("/page.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Served-By"), Some("backend-9002"));
    assert_eq!(r.header("X-Extra"), Some("yes"));
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.text(), "<p>hello</p>\n");
    let r = srv.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("X-Served-By"), Some("backend-9002"));
    // Listing is off by default.
    assert_eq!(srv.get("/dir/").status, 404);
}

#[test]
fn access_log_line_per_request() {
    let root = root_with_a_page("log");
    let mut srv = serve(root.path(), &[]);
    assert_eq!(srv.get("/page.html?x=1").status, 200);
    srv.process
        .wait_for_line(&["GET /page.html?x=1 HTTP/1.1\" 200 13"]);
}

#[test]
fn listing_flag_turns_listings_on() {
    let root = root_with_a_page("listing");
    let srv = serve(root.path(), &["--listing"]);
    let r = srv.get("/dir/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains(">a.txt</a>"));
}

#[test]
fn builder_flags_reach_the_library() {
    let root = root_with_a_page("flags");
    root.file(".env", "ENV");
    root.file("dir/home.html", "HOME");
    root.file("page.html.gz", "GZ");
    std::os::unix::fs::symlink("page.html", root.join("link")).unwrap();
    let defaults = serve(root.path(), &[]);
    assert_eq!(defaults.get("/.env").status, 404);
    assert_eq!(defaults.get("/link").status, 200);
    assert_eq!(defaults.get("/dir/").status, 404);
    let gz = agent()
        .get(&defaults.url("/page.html"))
        .set("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(gz.header("Content-Encoding"), Some("gzip"));
    let srv = serve(
        root.path(),
        &[
            "--threads",
            "1",
            "--dotfiles",
            "--symlinks",
            "never",
            "--index",
            "home.html",
            "--no-precompressed",
            "--compression",
            "none",
            "--cache-size",
            "0",
        ],
    );
    assert_eq!(srv.get("/.env").text(), "ENV");
    assert_eq!(srv.get("/link").status, 404);
    assert_eq!(srv.get("/dir/").text(), "HOME");
    let plain = agent()
        .get(&srv.url("/page.html"))
        .set("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(plain.header("Content-Encoding"), None);
    assert_eq!(plain.into_string().unwrap(), "<p>hello</p>\n");
}

#[test]
fn site_flags_reach_the_library() {
    let root = root_with_a_page("site");
    root.file("index.html", "<div id=app></div>\n");
    root.file("app.css", "body{}\n");
    root.file("errors/404.html", "<h1>no such page</h1>\n");
    let srv = serve(
        root.path(),
        &[
            "--header-rule",
            "*.css,*.js: Cache-Control: public, max-age=31536000, immutable",
            "--header-rule",
            "*.html: Cache-Control: no-cache",
            "--header-rule",
            "/dir/**: X-Dir: yes",
            "--fallback",
            "index.html",
            "--fallback-extensions",
            "htm,php",
            "--error-page",
            "404=errors/404.html",
            "--listing",
        ],
    );
    let r = srv.get("/app.css");
    assert_eq!(
        r.header("Cache-Control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(srv.get("/page.html").header("Cache-Control"), Some("no-cache"));
    assert_eq!(srv.get("/dir/a.txt").header("X-Dir"), Some("yes"));
    for route in ["/users/42", "/old.php", "/x.htm"] {
        let r = srv.get(route);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "<div id=app></div>\n"),
            "{route}"
        );
    }
    for missing in ["/logo.png", "/.env"] {
        let r = srv.get(missing);
        assert_eq!(r.status, 404, "{missing}");
        assert_eq!(r.text(), "<h1>no such page</h1>\n");
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    }
    let r = srv.get("/dir/?format=json");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v[0]["name"], "a.txt");
    assert_eq!(v[0]["size"], 1);
}

#[test]
fn bad_site_flags_are_one_line_and_exit_2() {
    let root = root_with_a_page("badsite");
    let dir = root.path().to_str().unwrap();
    for (flag, value, says) in [
        ("--header-rule", "*.css", "expected `GLOB[,GLOB]: Name: value`"),
        ("--header-rule", "*.css: Cache-Control", "expected"),
        ("--header-rule", "*.css: Cache-Control:  ", "expected"),
        ("--header-rule", "a[: X-A: 1", "glob"),
        ("--header-rule", "*: Bad Name: 1", "invalid header name"),
        ("--header-rule", "*: Content-Length: 1", "set by the server"),
        (
            "--header-rule",
            "*: Transfer-Encoding: chunked",
            "set by the server",
        ),
        ("--header-rule", "*: Connection: close", "set by the server"),
        ("--error-page", "404", "STATUS=FILE"),
        ("--error-page", "abc=x.html", "400 to 599"),
        ("--error-page", "200=x.html", "400 to 599"),
        ("--error-page", "600=x.html", "400 to 599"),
        ("--error-page", "404=", "a file under the root"),
        ("--fallback", "", "a file under the root"),
    ] {
        let out = run(
            STATIC_SERVER,
            &["--root", dir, "--listen", "127.0.0.1:0", flag, value],
        );
        assert_eq!(out.status.code(), Some(2), "{flag} {value:?}: {out:?}");
        assert_one_error_line(&out, &[flag, says]);
    }
    // A rule value with CR/LF cannot be typed into a shell by accident, but
    // can be passed by a program. (clap echoes the value, so the one line is
    // cut at the CR.)
    let out = run(
        STATIC_SERVER,
        &[
            "--root",
            dir,
            "--listen",
            "127.0.0.1:0",
            "--header-rule",
            "*: X-A: a\r\nX-B: b",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(&out, &["invalid value"]);
    // --fallback-extensions needs --fallback.
    let out = run(
        STATIC_SERVER,
        &[
            "--root",
            dir,
            "--listen",
            "127.0.0.1:0",
            "--fallback-extensions",
            "html",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(&out, &["--fallback"]);
}

#[test]
fn fallback_and_error_page_files_that_cannot_be_served_are_one_line() {
    let root = root_with_a_page("badpage");
    root.file(".env", "ENV");
    let dir = root.path().to_str().unwrap();
    for (flag, value, says) in [
        ("--fallback", "missing.html", "no such file under the root"),
        ("--fallback", ".env", "dot name"),
        ("--fallback", "../page.html", "not a plain relative path"),
        ("--fallback", "dir", "not a regular file"),
        ("--error-page", "404=missing.html", "no such file under the root"),
        ("--error-page", "500=.env", "dot name"),
        (
            "--error-page",
            "404=/../../etc/passwd",
            "not a plain relative path",
        ),
    ] {
        let out = run(
            STATIC_SERVER,
            &["--root", dir, "--listen", "127.0.0.1:0", flag, value],
        );
        assert_eq!(out.status.code(), Some(1), "{flag} {value:?}: {out:?}");
        let file = value.split_once('=').map_or(value, |(_, f)| f);
        assert_one_error_line(&out, &[says, file]);
    }
}

#[test]
fn sigterm_and_sigint_shut_down_with_exit_0() {
    let root = root_with_a_page("signal");
    for (sig, threads) in [("TERM", "2"), ("INT", "1")] {
        let mut srv = serve(root.path(), &["--threads", threads]);
        assert_eq!(srv.get("/page.html").status, 200);
        srv.process.signal(sig);
        let status = srv.process.wait_exit(TIMEOUT);
        assert_eq!(status.code(), Some(0), "SIG{sig}: {status:?}");
        // The port is released.
        assert!(!accepts_connections(srv.addr));
    }
}

#[test]
fn a_missing_root_is_one_clear_error() {
    let root = root_with_a_page("missing");
    let missing = root.path().join("no-such-dir");
    let out = run(
        STATIC_SERVER,
        &["--root", missing.to_str().unwrap(), "--listen", "127.0.0.1:0"],
    );
    assert_one_error_line(&out, &[missing.to_str().unwrap()]);
    // A file given as root.
    let file = root.path().join("page.html");
    let out = run(
        STATIC_SERVER,
        &["--root", file.to_str().unwrap(), "--listen", "127.0.0.1:0"],
    );
    assert_one_error_line(&out, &["not a directory"]);
}

#[test]
fn a_taken_port_is_one_clear_error() {
    let root = root_with_a_page("taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(
        STATIC_SERVER,
        &["--root", root.path().to_str().unwrap(), "--listen", &addr],
    );
    assert_one_error_line(&out, &[&addr]);
    assert_one_error_line(&out, &["already in use"]);
}

#[test]
fn a_bad_flag_fails_with_a_clear_first_line() {
    let out = run(STATIC_SERVER, &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("--no-such-flag"),
        "{stderr}"
    );
    let out = run(STATIC_SERVER, &["--listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        STATIC_SERVER,
        &["--header", "no colon", "--listen", "127.0.0.1:0"],
    );
    assert_one_error_line(&out, &["--header"]);
}

#[test]
fn help_and_version() {
    assert_help_and_version(
        STATIC_SERVER,
        "static-server",
        &[
            "--root",
            "--listen",
            "--threads",
            "--server-id",
            "--listing",
            "--index",
            "--symlinks",
            "--dotfiles",
            "--no-precompressed",
            "--compression",
            "--compression-level",
            "--compression-min-size",
            "--cache-max-file",
            "--cache-size",
            "--header",
            "--header-rule",
            "--fallback",
            "--fallback-extensions",
            "--error-page",
            "--help",
            "--version",
        ],
    );
}
