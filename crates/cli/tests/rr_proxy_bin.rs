//! The `rr-proxy` binary as a user runs it: the listening line, balancing over
//! `static-server` children, the admin listener, the flag errors, a taken port,
//! `--help`/`--version`, shutdown on SIGTERM/SIGINT, and the admin's protection
//! (`--admin-token`, `--admin-host`). Requests go through ureq, and through curl
//! where a test sets `Host` or `Origin` itself.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use common::{assert_help_and_version, assert_one_error_line, run, Server, RR_PROXY};
use test_support::{accepts_connections, agent, curl_status, TempDir, TIMEOUT};

/// [`Server::start`], checking the announced address: 127.0.0.1 and a real port.
fn start(bin: &str, name: &str, args: &[&str]) -> Server {
    let server = Server::start(bin, name, args);
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(server.addr.port(), 0, "the line must give the real port");
    server
}

/// `rr-proxy` with `args`, once it listens, its health checks probing a page
/// the `static/` backends have (their `/` is 404, which fails the check).
fn start_proxy(args: &[&str]) -> Server {
    let args: Vec<&str> = ["--health-path", "/page.html"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    start(RR_PROXY, "rr-proxy", &args)
}

/// A `static-server` on a free port serving `static/`, naming itself `id`.
fn start_backend(id: &str) -> Server {
    let server = common::start_static_backend(id);
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    server
}

/// The admin listener's address, from its announcement (`admin listening on
/// http://ADDR`) or, failing that, the proxy's log line about it.
fn admin_addr(proxy: &mut Server) -> SocketAddr {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let line = match proxy.process.next_line(deadline) {
            Ok(line) => line,
            Err(e) => panic!(
                "no admin address within {TIMEOUT:?} ({e}); stderr: {:#?}",
                proxy.process.stderr()
            ),
        };
        for marker in ["admin listening on http://", "admin endpoint on http://"] {
            if let Some(i) = line.find(marker) {
                let rest = &line[i + marker.len()..];
                let addr = rest.split_whitespace().next().unwrap_or_default();
                return addr.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
            }
        }
    }
}

/// GET with a fresh agent (so a fresh connection): status, `X-Served-By`, body.
fn get(url: &str) -> (u16, String, String) {
    let r = test_support::get(&agent(), url);
    let by = r.header("X-Served-By").unwrap_or_default().to_string();
    (r.status, by, String::from_utf8(r.body).unwrap())
}

/// Who answered `n` requests for page.html, counted by `X-Served-By`.
fn served_by(proxy: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let (status, by, body) = get(&format!("http://{proxy}/page.html"));
        assert_eq!(status, 200);
        assert!(body.contains("Round-robin demo"), "{body}");
        *counts.entry(by).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

#[test]
fn prints_the_real_port_balances_and_serves_stats() {
    let a = start_backend("backend-a");
    let b = start_backend("backend-b");
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let mut proxy = start_proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &a_addr,
        "--backend",
        &b_addr,
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = admin_addr(&mut proxy);
    assert_ne!(admin.port(), 0);

    assert_eq!(
        served_by(proxy.addr, 6),
        counts(&[("backend-a", 3), ("backend-b", 3)])
    );

    let (status, _, stats) = get(&format!("http://{admin}/stats"));
    assert_eq!(status, 200, "{stats}");
    assert!(stats.contains("\"strategy\":\"round-robin\""), "{stats}");
    assert!(stats.contains("\"mode\":\"http\""), "{stats}");
    for addr in [&a_addr, &b_addr] {
        assert!(
            stats.contains(&format!(
                "{{\"addr\":\"{addr}\",\"weight\":1,\"state\":\"healthy\""
            )),
            "{addr} in {stats}"
        );
    }
    assert_eq!(
        stats.matches("\"requests\":3,").count(),
        2,
        "3 requests each: {stats}"
    );
    let (status, _, metrics) = get(&format!("http://{admin}/metrics"));
    assert_eq!(status, 200);
    assert!(!metrics.is_empty());
}

#[test]
fn weights_and_strategies_from_the_command_line() {
    let a = start_backend("backend-a");
    let b = start_backend("backend-b");
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let weighted = start_proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--strategy",
        "weighted",
        "--backend",
        &format!("{a_addr}=3"),
        "--backend",
        &format!("{b_addr}=1"),
    ]);
    assert_eq!(
        served_by(weighted.addr, 8),
        counts(&[("backend-a", 6), ("backend-b", 2)])
    );

    // TCP mode balances connections: each fresh connection goes to the next one.
    let tcp = start_proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--mode",
        "tcp",
        "--backend",
        &a_addr,
        "--backend",
        &b_addr,
    ]);
    assert_eq!(
        served_by(tcp.addr, 4),
        counts(&[("backend-a", 2), ("backend-b", 2)])
    );
}

/// GET page.html with `header` (name, value): `X-Served-By` and the `Set-Cookie` lines.
fn visit(proxy: SocketAddr, header: Option<(&str, &str)>) -> (String, Vec<String>) {
    let mut req = agent().get(&format!("http://{proxy}/page.html"));
    if let Some((n, v)) = header {
        req = req.set(n, v);
    }
    let r = test_support::send(req, None).unwrap();
    assert_eq!(r.status, 200);
    let by = r.header("X-Served-By").unwrap_or_default().to_owned();
    (by, r.all("set-cookie").into_iter().map(str::to_owned).collect())
}

#[test]
fn sticky_cookie_and_consistent_hash_from_the_command_line() {
    let a = start_backend("backend-a");
    let b = start_backend("backend-b");
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let backends = ["--backend", &a_addr, "--backend", &b_addr];

    let mut sticky = start_proxy(
        &[
            &[
                "--listen",
                "127.0.0.1:0",
                "--strategy",
                "sticky-cookie",
                "--sticky-cookie",
                "SID",
            ][..],
            &backends,
        ]
        .concat(),
    );
    sticky
        .process
        .wait_for_line(&["rr-proxy on", "strategy sticky-cookie (cookie SID);"]);
    let (home, set) = visit(sticky.addr, None);
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(
        set[0].starts_with("SID=") && set[0].ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{set:?}"
    );
    let cookie = set[0].split(';').next().unwrap().to_owned();
    for _ in 0..10 {
        assert_eq!(
            visit(sticky.addr, Some(("Cookie", &cookie))),
            (home.clone(), vec![])
        );
    }

    let mut hashed = start_proxy(
        &[
            &[
                "--listen",
                "127.0.0.1:0",
                "--strategy",
                "consistent-hash",
                "--hash-key",
                "header:X-User",
                "--hash-balance",
                "2",
            ][..],
            &backends,
        ]
        .concat(),
    );
    hashed.process.wait_for_line(&[
        "rr-proxy on",
        "strategy consistent-hash (key header:x-user, balance 2.00);",
    ]);
    let mut seen = BTreeMap::new();
    for round in 0..3 {
        for k in 0..20 {
            let user = format!("user-{k}");
            let (by, set) = visit(hashed.addr, Some(("X-User", &user)));
            assert!(set.is_empty());
            assert_eq!(
                seen.entry(k).or_insert_with(|| by.clone()),
                &by,
                "key {k}, round {round}"
            );
        }
    }
    // Both backends have keys.
    let owners: std::collections::BTreeSet<&String> = seen.values().collect();
    assert_eq!(owners.len(), 2, "{seen:?}");
}

#[test]
fn bad_strategy_settings_are_one_line_and_exit_2() {
    let base = ["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"];
    for (extra, says) in [
        (
            &["--strategy", "consistent-hash", "--hash-key", "cookie:x"][..],
            "bad hash key \"cookie:x\"",
        ),
        (
            &["--strategy", "consistent-hash", "--hash-key", "header:"],
            "bad hash key",
        ),
        (
            &["--strategy", "consistent-hash", "--hash-balance", "0.5"],
            "bad hash balance factor",
        ),
        (
            &["--strategy", "sticky-cookie", "--sticky-cookie", "a;b"],
            "bad cookie name",
        ),
        (
            &["--strategy", "sticky-cookie", "--mode", "tcp"],
            "needs --mode http",
        ),
        (
            &[
                "--strategy",
                "consistent-hash",
                "--hash-key",
                "header:x",
                "--mode",
                "tcp",
            ],
            "needs --mode http",
        ),
        (
            &["--hash-key", "client-ip"],
            "--hash-key applies to --strategy consistent-hash",
        ),
        (
            &["--strategy", "round-robin", "--sticky-cookie", "SID"],
            "--sticky-cookie applies",
        ),
        (&["--strategy", "random"], "unknown strategy"),
    ] {
        let out = run(RR_PROXY, &[&base[..], extra].concat());
        assert_one_error_line(&out, &[says]);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
    }
    // rr-cluster takes the same flags.
    let out = run(
        common::RR_CLUSTER,
        &["--strategy", "consistent-hash", "--hash-key", "ip"],
    );
    assert_one_error_line(&out, &["bad hash key"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_backend_answering_404_to_the_health_path_is_down_and_the_log_says_why() {
    let backend = start_backend("backend-a");
    let b = backend.addr.to_string();
    let fast = ["--health-interval", "100ms", "--health-fall", "2"];
    // The default health path `/`: static/ has no index, so 404.
    let mut by_default = start(
        RR_PROXY,
        "rr-proxy",
        &[
            &["--listen", "127.0.0.1:0", "--backend", &b, "--health-check"][..],
            &fast,
        ]
        .concat(),
    );
    let line = by_default.process.wait_for_line(&[&format!("backend {b} down")]);
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(
            "health check GET / failed 2 times in a row, the last: status 404 (expected 200-399); 0 of 1 backend left"
        ),
        "{line}"
    );
    let line = by_default.process.wait_for_line(&["no backend left"]);
    assert!(line.contains(" ERROR "), "{line}");
    assert!(line.contains("every request gets 503"), "{line}");
    assert_eq!(get(&by_default.url("/page.html")).0, 503);

    // Probing a page that exists, it stays up.
    let mut on_a_page = start_proxy(&[&["--listen", "127.0.0.1:0", "--backend", &b][..], &fast].concat());
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(get(&on_a_page.url("/page.html")).0, 200);
    let log = on_a_page.process.stderr().join("\n");
    assert!(!log.contains(" down"), "{log}");

    // Without --health-path or --health-check there are no active checks (as in
    // nginx, and HAProxy without `check`): the same backend stays up.
    let mut unchecked = start(
        RR_PROXY,
        "rr-proxy",
        &[&["--listen", "127.0.0.1:0", "--backend", &b][..], &fast].concat(),
    );
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(get(&unchecked.url("/page.html")).0, 200);
    let log = unchecked.process.stderr().join("\n");
    assert!(
        !log.contains(" down") && !log.contains("health check GET"),
        "{log}"
    );
}

#[test]
fn sigterm_and_sigint_shut_down_with_exit_0() {
    let backend = start_backend("backend-a");
    let backend_addr = backend.addr.to_string();
    for sig in ["TERM", "INT"] {
        let mut proxy = start_proxy(&[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend_addr,
            "--admin",
            "127.0.0.1:0",
        ]);
        let admin = admin_addr(&mut proxy);
        assert_eq!(get(&format!("http://{}/page.html", proxy.addr)).0, 200);
        proxy.process.signal(sig);
        let status = proxy.process.wait_exit(TIMEOUT);
        assert_eq!(status.code(), Some(0), "SIG{sig}: {status:?}");
        for addr in [proxy.addr, admin] {
            assert!(!accepts_connections(addr), "SIG{sig}: {addr} still open");
        }
    }
}

#[test]
fn no_backend_is_one_clear_error() {
    let out = run(RR_PROXY, &["--listen", "127.0.0.1:0"]);
    assert_one_error_line(&out, &["no backends", "--backend"]);
}

#[test]
fn a_bad_weight_is_one_clear_error() {
    let out = run(
        RR_PROXY,
        &["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1=abc"],
    );
    assert_one_error_line(&out, &["127.0.0.1:1=abc", "abc"]);
    let out = run(
        RR_PROXY,
        &["--listen", "127.0.0.1:0", "--backend", "not-an-address"],
    );
    assert_one_error_line(&out, &["not-an-address"]);
    let out = run(
        RR_PROXY,
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "127.0.0.1:1",
            "--no-such-flag",
        ],
    );
    assert_one_error_line(&out, &["--no-such-flag"]);
}

#[test]
fn a_taken_port_is_one_clear_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The taken listener doubles as the backend, so health checks find it up.
    let out = run(RR_PROXY, &["--listen", &addr, "--backend", &addr]);
    assert_one_error_line(&out, &[&addr, "already in use"]);
    let out = run(
        RR_PROXY,
        &["--listen", "127.0.0.1:0", "--admin", &addr, "--backend", &addr],
    );
    assert_one_error_line(&out, &[&addr, "already in use"]);
}

#[test]
fn help_and_version() {
    assert_help_and_version(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "--backend",
            "--strategy",
            "sticky-cookie",
            "consistent-hash",
            "--sticky-cookie",
            "--hash-key",
            "--hash-balance",
            "--mode",
            "--threads",
            "--admin",
            "--admin-token",
            "--admin-host",
            "--help",
            "--version",
        ],
    );
}

const TOKEN: &str = "3b9e0c71d4a85f26e1c0b7a9";

/// A file holding `text`, in `dir`.
fn token_file(dir: &TempDir, name: &str, text: &str) -> String {
    dir.file(name, text).to_str().unwrap().to_string()
}

/// rr-proxy with a backend nobody listens on and `extra` flags, run to its exit
/// (these all refuse to start).
fn run_refused(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"];
    args.extend_from_slice(extra);
    run(RR_PROXY, &args)
}

#[test]
fn non_loopback_admin_without_token_refuses_to_start() {
    for admin in ["0.0.0.0:0", "[::]:0"] {
        let out = run_refused(&["--admin", admin]);
        assert_one_error_line(
            &out,
            &[&format!("--admin {admin}"), "loopback", "--admin-token FILE"],
        );
    }
    // The token files that are refused, each with one line that does not show it.
    let dir = TempDir::new("tokens");
    for (name, text, why) in [
        ("empty", "", "empty"),
        ("short", "abc123\n", "too short"),
        ("spaced", "3b9e0c71d4a8 5f26e1c0b7a9\n", "without spaces"),
    ] {
        let file = token_file(&dir, name, text);
        let out = run_refused(&["--admin", "0.0.0.0:0", "--admin-token", &file]);
        assert_one_error_line(&out, &["--admin-token", &file, why]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("abc123") && !stderr.contains("3b9e0c"),
            "{stderr}"
        );
    }
    let missing = dir.join("missing");
    let out = run_refused(&[
        "--admin",
        "127.0.0.1:0",
        "--admin-token",
        missing.to_str().unwrap(),
    ]);
    assert_one_error_line(&out, &["--admin-token", "missing"]);
    let out = run_refused(&["--admin", "127.0.0.1:0", "--admin-host", "admin.example:8080"]);
    assert_one_error_line(&out, &["--admin-host", "admin.example:8080", "without a port"]);
    let out = run_refused(&["--admin-token", &missing.to_string_lossy()]);
    assert_one_error_line(&out, &["--admin-token", "need --admin ADDR"]);
}

#[test]
fn admin_token_is_required_and_accepted() {
    let backend = start_backend("backend-a");
    let dir = TempDir::new("token");
    let file = token_file(&dir, "token", &format!("{TOKEN}\n"));
    // On all addresses, which a token makes allowed.
    let mut proxy = start_proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &backend.addr.to_string(),
        "--admin",
        "0.0.0.0:0",
        "--admin-token",
        &file,
        "--admin-host",
        "lb.example",
    ]);
    let admin = admin_addr(&mut proxy);
    assert!(admin.ip().is_unspecified(), "{admin}");
    let base = format!("http://127.0.0.1:{}", admin.port());
    let stats = format!("{base}/stats");
    let auth = format!("Authorization: Bearer {TOKEN}");

    let (status, body) = curl_status(&["-D", "-", &stats]);
    assert_eq!(status, 401, "{body}");
    assert!(
        body.to_ascii_lowercase().contains("www-authenticate: bearer"),
        "{body}"
    );
    let (status, _) = curl_status(&["-H", "Authorization: Bearer 3b9e0c71d4a85f26e1c0b7aa", &stats]);
    assert_eq!(status, 401);
    let (status, body) = curl_status(&["-H", &auth, &stats]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&backend.addr.to_string()), "{body}");
    // The status page's HTML loads without it (and asks for it).
    let (status, body) = curl_status(&[&format!("{base}/")]);
    assert_eq!(status, 200);
    assert!(body.contains("rr-proxy status"), "{body}");

    // The token does not let a foreign Host or Origin through.
    let (status, _) = curl_status(&["-H", &auth, "-H", "Host: evil.example", &stats]);
    assert_eq!(status, 421);
    let (status, _) = curl_status(&["-H", &auth, "-H", "Host: lb.example", &stats]);
    assert_eq!(status, 200, "--admin-host names it");
    let drain = format!("{base}/backends/{}/drain", backend.addr);
    let (status, _) = curl_status(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Origin: http://evil.example",
        "-H",
        "Content-Type: text/plain",
        "--data",
        "x",
        &drain,
    ]);
    assert_eq!(status, 403);
    let (status, body) = curl_status(&["-X", "POST", &drain]);
    assert_eq!(status, 401, "{body}");
    let (_, body) = curl_status(&["-H", &auth, &stats]);
    assert!(body.contains("\"state\":\"healthy\""), "{body}");
    let (status, body) = curl_status(&["-X", "POST", "-H", &auth, &drain]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"state\":\"draining\""), "{body}");

    // The token is never written to the log.
    proxy.process.signal("TERM");
    assert_eq!(proxy.process.wait_exit(TIMEOUT).code(), Some(0));
    let log = proxy.process.stderr().join("\n");
    assert!(!log.contains(TOKEN), "{log}");
}

#[test]
fn dns_and_srv_backends_through_the_binary() {
    let a = start_backend("backend-a");
    let b = start_backend("backend-b");
    let c = start_backend("backend-c");
    let (pa, pb) = (a.addr.port(), b.addr.port());
    // a.web.test by its A record, b.web.test through an SRV record of weight 2.
    let Some(dns) = test_support::Dnsmasq::start(
        "127.0.0.1 a.web.test\n127.0.0.1 b.web.test\n",
        &format!("srv-host=_http._tcp.web.test,b.web.test,{pb},0,2\n"),
    ) else {
        return;
    };
    let (dns_a, resolver, static_c) = (
        format!("dns:a.web.test:{pa}"),
        dns.addr.to_string(),
        c.addr.to_string(),
    );
    let mut proxy = start_proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &dns_a,
        "--backend",
        "srv:_http._tcp.web.test",
        "--backend",
        &static_c,
        "--resolver",
        &resolver,
        "--dns-ttl-min",
        "500ms",
        "--dns-ttl-max",
        "5s",
    ]);
    // The summary names the sources and the resolver.
    proxy.process.wait_for_line(&[
        "3 backends",
        &dns_a,
        "srv:_http._tcp.web.test",
        &format!("DNS discovery via resolver {resolver}"),
    ]);
    // Each change is one line: the source, what came and went, the count.
    proxy
        .process
        .wait_for_line(&[&format!("{dns_a}: +127.0.0.1:{pa} (1 backend)")]);
    proxy
        .process
        .wait_for_line(&[&format!("srv:_http._tcp.web.test: +127.0.0.1:{pb} (1 backend)")]);
    assert_eq!(
        served_by(proxy.addr, 8),
        counts(&[("backend-a", 2), ("backend-b", 4), ("backend-c", 2)])
    );
}

#[test]
fn bad_dns_backends_and_resolvers_are_one_line_and_exit_2() {
    for (args, says) in [
        (
            &["--backend", "dns:web.test"][..],
            "bad DNS backend \"dns:web.test\"",
        ),
        (&["--backend", "dns:web.test:0"], "bad DNS backend"),
        (&["--backend", "dns:we b:80"], "bad DNS name \"we b\""),
        (&["--backend", "dns:web.test:80=0"], "bad backend weight"),
        (&["--backend", "srv:_http._tcp.web=2"], "bad SRV backend"),
        (&["--backend", "srv:"], "bad DNS name"),
        (
            &["--backend", "dns:web.test:80", "--resolver", "nonsense"],
            "bad resolver \"nonsense\"",
        ),
        (
            &["--backend", "dns:web.test:80", "--resolver", "127.0.0.1:0"],
            "bad resolver",
        ),
        (
            &["--backend", "127.0.0.1:1", "--resolver", "127.0.0.1:53"],
            "--resolver needs a dns:NAME:PORT or srv:NAME --backend",
        ),
        (
            &[
                "--backend",
                "dns:web.test:80",
                "--dns-ttl-min",
                "10s",
                "--dns-ttl-max",
                "1s",
            ],
            "--dns-ttl-min must not be longer than --dns-ttl-max",
        ),
        (
            &["--backend", "dns:web.test:80", "--dns-ttl-max", "0s"],
            "bad duration",
        ),
    ] {
        let out = run(RR_PROXY, &[&["--listen", "127.0.0.1:0"][..], args].concat());
        assert_one_error_line(&out, &[says]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
