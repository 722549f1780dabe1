//! `static-server --metrics ADDR` as a user runs it: the second listening line,
//! `/metrics` moving as files are requested (read by Python's
//! `prometheus_client` parser; the value checks skip, saying so, without it,
//! except under CI), a bad address refused, and shutdown with both listeners.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{assert_one_error_line, run, Server, STATIC_SERVER};
use test_support::{agent, exchange, get, parse_prometheus, status_of, wait_for, Parsed, TempDir, TIMEOUT};

fn get_close(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn metrics_text(addr: SocketAddr) -> String {
    let r = get(&agent(), &format!("http://{addr}/metrics"));
    assert_eq!(r.status, 200);
    r.text()
}

fn scrape(addr: SocketAddr) -> Option<Parsed> {
    parse_prometheus(&metrics_text(addr))
}

#[test]
fn metrics_flag_serves_metrics_that_move() {
    let root = TempDir::new("metrics-flag");
    root.file("page.html", "<p>hello</p>\n");
    let root_arg = root.path().to_str().unwrap();
    let args = [
        "--root",
        root_arg,
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ];
    let mut srv = Server::start(STATIC_SERVER, "static-server", &args);
    let (who, metrics) = srv.process.next_listener(Instant::now() + TIMEOUT);
    assert_eq!(who, "metrics");
    assert_ne!(metrics.port(), 0);
    assert_ne!(metrics, srv.addr);
    // The start-up summary names it.
    srv.process
        .wait_for_line(&["static-server on", &format!("; metrics {metrics}")]);
    // Only /metrics on the metrics listener; no /metrics on the file server.
    assert_eq!(get(&agent(), &format!("http://{metrics}/page.html")).status, 404);
    assert_eq!(srv.get("/metrics").status, 404);

    let text = metrics_text(metrics);
    for family in [
        "static_server_request_duration_seconds histogram",
        "static_server_responses_total counter",
        "static_server_response_body_bytes_total counter",
        "static_server_client_connections gauge",
        "static_server_cache_hits_total counter",
        "static_server_cache_misses_total counter",
        "static_server_cache_evictions_total counter",
        "static_server_build_info gauge",
        "process_start_time_seconds gauge",
    ] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "{family}: {text}");
    }
    let Some(before) = scrape(metrics) else { return };

    for _ in 0..2 {
        assert_eq!(status_of(get_close(srv.addr, "/page.html")), 200);
    }
    assert_eq!(status_of(get_close(srv.addr, "/nope")), 404);
    // The responses were counted before the connections closed.
    let after = scrape(metrics).unwrap();
    let d = |name: &str, labels: &[(&str, &str)]| {
        after.value_or_zero(name, labels) - before.value_or_zero(name, labels)
    };
    assert_eq!(d("static_server_request_duration_seconds_count", &[]), 3.0);
    assert_eq!(d("static_server_responses_total", &[("code", "200")]), 2.0);
    assert_eq!(d("static_server_responses_total", &[("code", "404")]), 1.0);
    assert_eq!(
        d("static_server_response_body_bytes_total", &[]),
        2.0 * 13.0 + 10.0
    );
    assert_eq!(
        d("static_server_cache_hits_total", &[]) + d("static_server_cache_misses_total", &[]),
        2.0
    );
    wait_for(TIMEOUT, "no open connections", || {
        scrape(metrics)
            .unwrap()
            .value("static_server_client_connections", &[])
            == Some(0.0)
    });

    srv.process.signal("TERM");
    assert!(srv.process.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn a_bad_metrics_address_is_one_line() {
    let root = TempDir::new("metrics-bad");
    let root_arg = root.path().to_str().unwrap();
    let out = run(STATIC_SERVER, &["--root", root_arg, "--metrics", "localhost"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--metrics"), "{stderr}");

    // A taken port: one line naming it, exit 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(
        STATIC_SERVER,
        &["--root", root_arg, "--listen", "127.0.0.1:0", "--metrics", &addr],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_one_error_line(&out, &[&addr, "already in use"]);
}
