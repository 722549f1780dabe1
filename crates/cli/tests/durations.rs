//! Duration flags (`DUR`) on all three binaries: one format, humantime's
//! (`1500ms`, `10s`, `1m30s`), read by one parser (`cli::parse_duration`); a bare
//! number still means seconds; a bad value is one line naming the flag.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{assert_one_error_line, run, static_root, Cluster, Server, RR_CLUSTER, RR_PROXY, STATIC_SERVER};

/// Sends the start of a request head and never the rest: the status line that
/// comes back and how long it took (the header timeout).
fn half_a_head(addr: SocketAddr) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let start = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    (status, start.elapsed())
}

/// A 408 after about 1.5 s: not the 10 s default, not zero.
#[track_caller]
fn assert_408_after_1500ms(addr: SocketAddr) {
    let (status, took) = half_a_head(addr);
    assert!(status.starts_with("HTTP/1.1 408"), "{status:?}");
    assert!(
        took >= Duration::from_millis(1300) && took < Duration::from_secs(6),
        "408 after {took:?}"
    );
}

fn static_args<'a>(root: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--root", root, "--listen", "127.0.0.1:0", "--threads", "1"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn static_server_takes_humantime_durations() {
    let root = static_root();
    let root = root.to_str().unwrap();
    let server = Server::start(
        STATIC_SERVER,
        "static-server",
        &static_args(
            root,
            &[
                "--header-timeout",
                "1500ms",
                "--keep-alive-timeout",
                "1m30s",
                "--revalidate",
                "0",
            ],
        ),
    );
    assert_eq!(server.get("/page.html").status, 200);
    assert_408_after_1500ms(server.addr);
}

#[test]
fn a_bare_number_is_still_seconds() {
    let root = static_root();
    let root = root.to_str().unwrap();
    let server = Server::start(
        STATIC_SERVER,
        "static-server",
        &static_args(root, &["--header-timeout", "1.5", "--revalidate-ms", "500"]),
    );
    assert_408_after_1500ms(server.addr);
}

#[test]
fn rr_proxy_takes_humantime_durations() {
    let proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "127.0.0.1:1",
            "--no-health-check",
            "--threads",
            "1",
            "--header-timeout",
            "1500ms",
            "--connect-timeout",
            "1s",
            "--eject-for",
            "1m",
        ],
    );
    assert_408_after_1500ms(proxy.addr);
}

#[test]
fn rr_cluster_takes_humantime_durations() {
    let cluster = Cluster::start(
        &static_root(),
        &[
            "--threads",
            "2",
            "--header-timeout",
            "1500ms",
            "--keep-alive-timeout",
            "30s",
        ],
    );
    assert_408_after_1500ms(cluster.proxy);
}

#[test]
fn a_bad_duration_is_one_clear_line() {
    let root = static_root();
    let root = root.to_str().unwrap();
    let proxy = ["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"];
    for (bin, base) in [
        (STATIC_SERVER, static_args(root, &[])),
        (RR_PROXY, proxy.to_vec()),
        (RR_CLUSTER, vec!["--listen", "127.0.0.1:0"]),
    ] {
        for (value, says) in [("abc", "e.g. 1500ms"), ("10x", "10x"), ("0s", "longer than zero")] {
            let mut args = base.clone();
            args.extend(["--header-timeout", value]);
            let out = run(bin, &args);
            assert_eq!(out.status.code(), Some(2), "{bin} {args:?}: {out:?}");
            assert_one_error_line(&out, &["--header-timeout", value, says]);
        }
    }
    // Both forms of the revalidation time at once: which one is meant?
    let out = run(
        STATIC_SERVER,
        &static_args(root, &["--revalidate", "1s", "--revalidate-ms", "5"]),
    );
    assert_one_error_line(&out, &["--revalidate"]);
}

#[test]
fn help_says_the_format() {
    for bin in [STATIC_SERVER, RR_PROXY, RR_CLUSTER] {
        let out = run(bin, &["--help"]);
        assert!(out.status.success(), "{out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--header-timeout <DUR>"), "{bin}: {help}");
        assert!(help.contains("DUR is a duration"), "{bin}: {help}");
        assert!(help.contains("1500ms"), "{bin}: {help}");
        assert!(help.contains("a bare number means seconds"), "{bin}: {help}");
    }
}
