//! `rr-proxy --config FILE` and `rr-proxy check --config FILE`: the README's
//! example passes `check` without binding or resolving anything, a bad file
//! is one `FILE:LINE:COLUMN: KEY: MESSAGE` line and exit 1, and a running
//! proxy takes its pool, weights, admin and timeouts from the file with the
//! flags given on the command line over them.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use common::{assert_one_error_line, run, Server, RR_PROXY};
use test_support::{agent, TempDir};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rr-proxy.toml")
}

use common::start_static_backend as start_backend;

/// Who answered `n` requests for page.html through `proxy`.
fn served_by(proxy: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let r = test_support::get(&agent(), &format!("http://{proxy}/page.html"));
        assert_eq!(r.status, 200);
        *counts
            .entry(r.header("X-Served-By").unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn check_accepts_the_readme_example_without_binding_or_resolving() {
    // The example's own listen address is taken here: check must not bind it
    // (and its dns:/srv: names do not resolve: check must not look them up).
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = TempDir::new("check-example");
    let text = std::fs::read_to_string(example()).unwrap().replace(
        "listen = \"127.0.0.1:44444\"",
        &format!("listen = \"{}\"", taken.local_addr().unwrap()),
    );
    let path = dir.path().join("rr-proxy.toml");
    std::fs::write(&path, text).unwrap();
    let out = run(RR_PROXY, &["check", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        &format!("{}: ok", path.display()),
        &format!("listen {} (mode http)", taken.local_addr().unwrap()),
        "admin 127.0.0.1:44445",
        "pool web: round-robin; backends 127.0.0.1:9002, 127.0.0.1:9003=2; health check GET /page.html every 2s",
        "pool api: consistent-hash (key header:x-user, balance 1.25); backends 127.0.0.1:9004, 127.0.0.1:9005",
        "pool discovered: sticky-cookie (cookie rr_backend); backends dns:web.internal:9002, srv:_http._tcp.web.internal",
        "route 0: host api.example path /v1/ -> pool api",
        "route 1: host *.apps.example path * -> pool discovered",
        "route 2: host * path * -> pool web",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(line as &str)), "{line:?} not in:\n{stdout}");
    }
    // And the unmodified file too.
    let out = run(RR_PROXY, &["check", "--config", example().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn check_names_the_file_line_and_key_and_exits_1() {
    let dir = TempDir::new("check-bad");
    for (text, want) in [
        (
            "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\"]\nbogus = 1\n",
            ":4:1: pool[0].bogus: unknown field `bogus`",
        ),
        (
            "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\"]\n[[route]]\npool = \"api\"\n",
            ":5:8: route[0].pool: unknown pool \"api\" (pools: web)",
        ),
        (
            "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002=x\"]\n",
            ":3:13: pool[0].backends: bad backend weight \"x\"",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = run(RR_PROXY, &["check", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with(&format!("{}{want}", path.display())),
            "{want:?} vs {stderr}"
        );
    }
    let out = run(RR_PROXY, &["check", "--config", "/nonexistent/rr.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/rr.toml: cannot read: "));
    // What the file names is read too: the admin token, the certificates.
    for (text, want) in [
        (
            "admin = \"0.0.0.0:0\"\n[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\"]\n",
            "other.toml: admin: --admin 0.0.0.0:0 is not a loopback address",
        ),
        (
            "[tls]\n[[tls.pair]]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\"]\n",
            "other.toml: tls: ",
        ),
    ] {
        let other = dir.path().join("other.toml");
        std::fs::write(&other, text).unwrap();
        let out = run(RR_PROXY, &["check", "--config", other.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
    }
    let out = run(
        RR_PROXY,
        &[
            "check",
            "--config",
            dir.path().join("other.toml").to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.pem"),
        "{out:?}"
    );
    // The same error stops a proxy from starting.
    let path = dir.path().join("bad.toml");
    let out = run(RR_PROXY, &["--config", path.to_str().unwrap()]);
    assert_one_error_line(&out, &["bad.toml:3:13: pool[0].backends: bad backend weight"]);
}

#[test]
fn runs_from_the_file_with_flags_over_it() {
    let a = start_backend("backend-a");
    let b = start_backend("backend-b");
    // The file's listen address is taken: the --listen flag must win.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = TempDir::new("run-config");
    let path = dir.path().join("rr-proxy.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"{}\"\nadmin = \"127.0.0.1:0\"\n[[pool]]\nname = \"web\"\nstrategy = \"weighted\"\n\
             backends = [\"{}=3\", \"{}\"]\nmax_attempts = 2\n[pool.health]\npath = \"/page.html\"\n",
            taken.local_addr().unwrap(),
            a.addr,
            b.addr
        ),
    )
    .unwrap();
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--connect-timeout",
            "2s",
        ],
    );
    assert_ne!(proxy.addr, taken.local_addr().unwrap());
    // The summary shows the file's pool with the flag's timeout over it.
    let summary = proxy.process.wait_for_line(&["rr-proxy on", "strategy weighted"]);
    assert!(summary.contains("max attempts 2"), "{summary}");
    assert!(summary.contains("connect 2s"), "{summary}");
    assert!(summary.contains("health check GET /page.html"), "{summary}");
    assert!(summary.contains("admin 127.0.0.1:"), "{summary}");
    // Weights from the file: 3 to 1.
    let counts = served_by(proxy.addr, 8);
    assert_eq!(counts.get("backend-a"), Some(&6), "{counts:?}");
    assert_eq!(counts.get("backend-b"), Some(&2), "{counts:?}");
}

#[test]
fn backend_flags_with_config_and_tcp_mode_over_http_pools_are_refused() {
    let dir = TempDir::new("config-refused");
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\"]\n",
    )
    .unwrap();
    let out = run(
        RR_PROXY,
        &["--config", path.to_str().unwrap(), "--backend", "127.0.0.1:9003"],
    );
    assert_one_error_line(&out, &["--backend cannot be combined with --config"]);
    assert_eq!(out.status.code(), Some(2));
    // --mode tcp over a file whose pool needs HTTP.
    for (pool, want) in [
        (
            "strategy = \"sticky-cookie\"\n",
            "pool web: strategy sticky-cookie needs --mode http",
        ),
        (
            "strategy = \"consistent-hash\"\nhash_key = \"header:X-User\"\n",
            "pool web: hash_key header:NAME needs --mode http",
        ),
    ] {
        std::fs::write(
            &path,
            format!("[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\"]\n{pool}"),
        )
        .unwrap();
        let out = run(RR_PROXY, &["--config", path.to_str().unwrap(), "--mode", "tcp"]);
        assert_one_error_line(&out, &[want]);
        assert_eq!(out.status.code(), Some(2));
    }
}

#[test]
fn the_readme_shows_the_example_file_as_it_is() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let example = std::fs::read_to_string(example()).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{example}```")),
        "README.md's example differs from examples/rr-proxy.toml"
    );
}
