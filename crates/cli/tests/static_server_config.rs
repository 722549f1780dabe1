//! `static-server --config FILE` as a user runs it: `check` on good and bad
//! files (exit 0 or 1, errors naming the file, line and key), sites by host
//! name over real sockets, flags over the file, and SIGHUP reloads under a
//! bounded client loop (a good file swaps in with no failed request; a broken
//! one keeps the old configuration, logs why and says so in the metrics).

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run, Server, STATIC_SERVER};
use test_support::{agent, curl, exchange, get, status_of, wait_for, TempDir, TestCa, TIMEOUT};

/// Writes `text` as `NAME` in `dir` and returns its path as a string.
fn config(dir: &TempDir, name: &str, text: &str) -> String {
    dir.file(name, text).to_str().unwrap().to_owned()
}

/// GET / with `Host: host` on a fresh connection: (status, whole response).
fn get_host(addr: SocketAddr, host: &str) -> (u16, String) {
    let r = exchange(
        addr,
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    (status_of(&r), r)
}

#[test]
fn check_accepts_the_example_file() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/static-server.toml");
    let out = run(STATIC_SERVER, &["check", "--config", example.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains(": ok\n"), "{stdout}");
    assert!(stdout.contains("listen 127.0.0.1:8080"), "{stdout}");
    assert!(stdout.contains("site docs.example.com -> "), "{stdout}");
    assert!(stdout.contains("site example.com,*.example.com -> "), "{stdout}");
    assert!(stdout.contains("site default -> "), "{stdout}");
}

#[test]
fn check_names_file_line_and_key_of_each_mistake() {
    let dir = TempDir::new("config-bad");
    dir.file("a/index.html", "a\n");
    dir.file("a/.env", "secret\n");
    // (file, line, column, key, part of the message)
    let cases: &[(&str, usize, usize, &str, &str)] = &[
        ("root = \"a\"\nlisting = true\nlistin = true\n", 3, 1, "listin", "unknown field `listin`"),
        ("root = \"a\"\nlisting = \"yes\"\n", 2, 11, "listing", "expected a boolean"),
        (
            "root = \"a\"\n[[site]]\nhost = \"x.test\"\nroot = \"a\"\n[[site]]\nhosts = [\"y.test\", \"X.test\"]\nroot = \"a\"\n",
            6,
            20,
            "site[2].hosts",
            "duplicate host \"x.test\"",
        ),
        ("root = \"a\"\n\n[[site]]\nhost = \"x.test\"\nroot = \"missing\"\n", 5, 8, "site[1].root", "root directory"),
        ("root = \"a\"\nheader_rules = [\"*.css: Cache-Control\"]\n", 2, 17, "header_rules", "header rule"),
        ("root = \"a\"\nerror_pages = { 200 = \"index.html\" }\n", 2, 17, "error_pages.200", "400 to 599"),
        ("root = \"a\"\nerror_pages = { 404 = \"gone.html\" }\n", 2, 23, "error_pages.404", "no such file"),
        ("root = \"a\"\nfallback = \".env\"\n", 2, 12, "fallback", "a dot name"),
        ("root = \"a\"\ncache_size = \"12XB\"\n", 2, 14, "cache_size", "bad size \"12XB\""),
        ("root = \"a\"\nrevalidate = \"soon\"\n", 2, 14, "revalidate", "bad duration"),
        ("root = \"a\"\nlisten = \"localhost\"\n", 2, 10, "listen", "bad address"),
        ("root = \"a\"\n[[site]]\nroot = \"a\"\n", 2, 1, "site[1]", "needs `host` or `hosts`"),
        ("root = \"a\"\n[[site]]\nhost = \"a.test:80\"\nroot = \"a\"\n", 3, 8, "site[1].host", "not a host name"),
        ("listing = true\n", 0, 0, "root", "nothing to serve"),
        ("root = \"a\"\ntls = [{ cert = \"none.pem\", key = \"none.key\" }]\n", 2, 8, "tls[1]", "cert "),
        ("root = \"a\"\ntls = [{ cert = \"a/index.html\" }]\n", 2, 8, "tls", "missing field `key`"),
        ("root = \"a\"\nhsts = 600\n", 2, 1, "hsts", "needs `tls`"),
    ];
    for (i, (text, line, column, key, message)) in cases.iter().enumerate() {
        let path = config(&dir, &format!("bad{i}.toml"), text);
        let out = run(STATIC_SERVER, &["check", "--config", &path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {out:?}");
        assert!(out.stdout.is_empty(), "{text}: {out:?}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{text}: {stderr}");
        let want = if *line == 0 {
            format!("{path}: {key}: ")
        } else {
            format!("{path}:{line}:{column}: {key}: ")
        };
        assert!(lines[0].starts_with(&want), "{text}: want {want:?}, got {stderr}");
        assert!(lines[0].contains(message), "{text}: want {message:?} in {stderr}");
    }
    // A file that is not there, and serving a bad file: one line, exit 1.
    let missing = dir.join("none.toml");
    let out = run(STATIC_SERVER, &["check", "--config", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration file"));
    let path = config(&dir, "serve-bad.toml", "root = \"a\"\nlisting = 3\n");
    let out = run(STATIC_SERVER, &["--config", &path]);
    common::assert_one_error_line(&out, &[&format!("{path}:2:11: listing: ")]);
}

#[test]
fn sites_are_chosen_by_host_name() {
    let dir = TempDir::new("config-sites");
    for site in ["default", "exact", "wild", "other"] {
        dir.file(format!("{site}/index.html"), format!("site {site}\n"));
    }
    let path = config(
        &dir,
        "sites.toml",
        "listen = \"127.0.0.1:0\"\nroot = \"default\"\n\n\
         [[site]]\nhost = \"*.example.test\"\nroot = \"wild\"\n\n\
         [[site]]\nhost = \"www.example.test\"\nroot = \"exact\"\n\n\
         [[site]]\nhosts = [\"other.test\", \"*.other.test\"]\nroot = \"other\"\nserver_id = \"other-id\"\n",
    );
    let srv = Server::start(STATIC_SERVER, "static-server", &["--config", &path]);
    let table = [
        ("www.example.test", "site exact"), // exact beats the wildcard listed first
        ("WWW.Example.Test:8080", "site exact"),
        ("a.example.test", "site wild"),
        ("a.b.example.test.", "site wild"),
        ("example.test", "site default"), // the wildcard needs a label before it
        ("other.test", "site other"),
        ("x.other.test:1", "site other"),
        ("unknown.test", "site default"),
        ("127.0.0.1", "site default"),
    ];
    for (host, body) in table {
        let (status, r) = get_host(srv.addr, host);
        assert_eq!(status, 200, "{host}: {r}");
        assert!(
            r.ends_with(&format!("\r\n\r\n{body}\n")),
            "{host}: want {body}: {r}"
        );
        assert_eq!(
            r.contains("X-Served-By: other-id\r\n"),
            body == "site other",
            "{host}: {r}"
        );
    }

    // Without a top-level root, hosts no site names get 421.
    let path = config(
        &dir,
        "no-default.toml",
        "listen = \"127.0.0.1:0\"\n[[site]]\nhost = \"www.example.test\"\nroot = \"exact\"\n",
    );
    let srv = Server::start(STATIC_SERVER, "static-server", &["--config", &path]);
    assert_eq!(get_host(srv.addr, "www.example.test").0, 200);
    let (status, r) = get_host(srv.addr, "unknown.test");
    assert_eq!(status, 421, "{r}");
    assert!(r.ends_with("no site for this host name\n"), "{r}");
}

#[test]
fn a_flag_given_on_the_command_line_overrides_the_file() {
    let dir = TempDir::new("config-flags");
    dir.file("file-root/index.html", "from the file's root\n");
    dir.file("flag-root/sub/a.txt", "a\n");
    let path = config(
        &dir,
        "flags.toml",
        "listen = \"127.0.0.1:0\"\nroot = \"file-root\"\nserver_id = \"from-file\"\nlisting = false\n",
    );
    // Without flags: the file's values.
    let srv = Server::start(STATIC_SERVER, "static-server", &["--config", &path]);
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "from the file's root\n");
    r.expect("X-Served-By", "from-file");
    drop(srv);
    // --root (from the current directory), --server-id and --listing win; a
    // flag left at its default (--index) does not.
    let flag_root = dir.join("flag-root");
    let srv = Server::start(
        STATIC_SERVER,
        "static-server",
        &[
            "--config",
            &path,
            "--root",
            flag_root.to_str().unwrap(),
            "--server-id",
            "from-flag",
            "--listing",
        ],
    );
    let r = srv.get("/sub/");
    assert_eq!(r.status, 200, "listing from --listing");
    assert!(r.text().contains("a.txt"), "{}", r.text());
    r.expect("X-Served-By", "from-flag");
    assert_eq!(
        srv.get("/index.html").status,
        404,
        "the file's root is not served"
    );
}

/// Polls GET `path` until its body is `want` (bounded).
fn wait_body(srv: &Server, path: &str, want: &str) {
    wait_for(TIMEOUT, &format!("{path} to read {want:?}"), || {
        srv.get(path).text() == want
    });
}

#[test]
fn sighup_reloads_the_file_while_clients_keep_getting_answers() {
    let dir = TempDir::new("config-reload");
    dir.file("one/index.html", "one\n");
    dir.file("two/index.html", "two\n");
    let file = |root: &str, rule: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nroot = \"{root}\"\n\
             header_rules = [\"*.html: X-Version: {rule}\"]\n"
        )
    };
    let path = config(&dir, "reload.toml", &file("one", "v1"));
    let mut srv = Server::start(STATIC_SERVER, "static-server", &["--config", &path]);
    let (who, metrics) = srv.process.next_listener(Instant::now() + TIMEOUT);
    assert_eq!(who, "metrics");
    let r = srv.get("/");
    assert_eq!(r.text(), "one\n");
    r.expect("X-Version", "v1");

    // Two clients loop (bounded in time) while the file is reloaded.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let url = srv.url("/");
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let until = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    let r = get(&agent, &url);
                    let body = r.text();
                    let version = r.header("X-Version").unwrap_or("").to_owned();
                    // Each answer is whole and from one configuration.
                    if r.status == 200
                        && ((body == "one\n" && version == "v1") || (body == "two\n" && version == "v2"))
                    {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&path, file("two", "v2")).unwrap();
    srv.process.signal("HUP");
    srv.process
        .wait_for_line(&["INFO", "configuration reloaded from"]);
    wait_body(&srv, "/", "two\n");
    srv.get("/").expect("X-Version", "v2");
    std::thread::sleep(Duration::from_millis(300));

    // A broken file: the running configuration stays, a warning says why.
    std::fs::write(&path, file("two", "v3") + "listing = maybe\n").unwrap();
    srv.process.signal("HUP");
    let warn = srv.process.wait_for_line(&["WARN", "configuration not reloaded"]);
    assert!(warn.contains(&format!("{path}:5:11: listing: ")), "{warn}");
    // A root that is gone: refused too.
    std::fs::write(&path, file("three", "v3")).unwrap();
    srv.process.signal("HUP");
    let warn = srv
        .process
        .wait_for_line(&["WARN", "configuration not reloaded", "three"]);
    assert!(warn.contains(&format!("{path}:3:8: root: ")), "{warn}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests during the reloads"
    );
    assert!(ok.load(Ordering::Relaxed) > 10, "too few requests: {ok:?}");
    let r = srv.get("/");
    assert_eq!(r.text(), "two\n");
    r.expect("X-Version", "v2");

    // A new listen address whose port is taken: refused as a whole.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let listen_at = |addr: SocketAddr| {
        file("two", "v2").replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""))
    };
    std::fs::write(&path, listen_at(taken_addr)).unwrap();
    srv.process.signal("HUP");
    srv.process.wait_for_line(&[
        "WARN",
        "configuration not reloaded",
        &format!("listen: cannot listen on {taken_addr}"),
    ]);
    // A free one: served first, then the old listener stops accepting while
    // a request in progress on it still finishes.
    drop(taken);
    let mut slow = std::net::TcpStream::connect(srv.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    std::fs::write(&path, listen_at(taken_addr)).unwrap();
    srv.process.signal("HUP");
    srv.process
        .wait_for_line(&["static-server listening on", &taken_addr.to_string()]);
    srv.process
        .wait_for_line(&["INFO", "configuration reloaded from"]);
    let r = get(&agent(), &format!("http://{taken_addr}/"));
    assert_eq!(r.text(), "two\n");
    wait_for(TIMEOUT, "the old address to stop accepting", || {
        std::net::TcpStream::connect(srv.addr).is_err()
    });
    slow.write_all(b"Connection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    let text = get(&agent(), &format!("http://{metrics}/metrics")).text();
    assert!(
        text.contains("static_server_config_reloads_total{result=\"success\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("static_server_config_reloads_total{result=\"failure\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("static_server_config_last_reload_success 1\n"),
        "{text}"
    );
    let stamp = text
        .lines()
        .find_map(|l| l.strip_prefix("static_server_config_last_reload_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("the timestamp gauge");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(stamp + 60 > now && stamp <= now, "{stamp} vs {now}");
}

#[test]
fn tls_from_the_file_serves_https() {
    let dir = TempDir::new("config-tls");
    dir.file("site/index.html", "secure\n");
    let ca = TestCa::new(dir.path());
    let files = ca.issue(dir.path(), "localhost", &["localhost"], 7);
    let path = config(
        &dir,
        "tls.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nroot = \"site\"\nhsts = 600\ntls = [{{ cert = {:?}, key = {:?} }}]\n",
            files.cert.to_str().unwrap(),
            files.key.to_str().unwrap()
        ),
    );
    let out = run(STATIC_SERVER, &["check", "--config", &path]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("(redirect from off, hsts max-age=600)"));
    let mut srv = Server::start(STATIC_SERVER, "static-server", &["--config", &path]);
    srv.process.wait_for_line(&["listening on https://"]);
    let url = format!("https://localhost:{}/", srv.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr.port());
    let ca_file = ca.ca_pem.to_str().unwrap();
    let out = curl(&["-s", "-i", "--cacert", ca_file, "--resolve", &resolve, &url])
        .expect("curl is installed (CI installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("strict-transport-security: max-age=600")
            || text.contains("Strict-Transport-Security: max-age=600"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nsecure\n"), "{text}");
}
