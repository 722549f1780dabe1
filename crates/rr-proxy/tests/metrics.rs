//! The admin endpoint's `/metrics` over real sockets: the numbers move as
//! requests go through the proxy, in HTTP and TCP mode, read by Python's
//! `prometheus_client` parser (the tests skip, saying so, without it, except
//! under CI).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use rr_proxy::{HealthCheck, Mode};
use test_support::{parse_prometheus, Parsed, RawConn};

struct Admin {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn start_admin(rt: &tokio::runtime::Runtime, proxy: &TestProxy) -> Admin {
    let (listener, addr) = bind(rt);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(rr_proxy::serve_admin(proxy.handle.clone(), listener, async {
        let _ = rx.await;
    }));
    Admin { addr, _stop: tx }
}

impl Admin {
    /// `/metrics` as the reference parser reads it; `None` when it is missing.
    fn scrape(&self) -> Option<Parsed> {
        let r = get(&test_support::agent(), &format!("http://{}/metrics", self.addr));
        assert_eq!(r.status, 200);
        parse_prometheus(&r.text())
    }

    /// Scrapes until `cond` holds (bounded): for what changes after the
    /// client has its answer (a tunnel's counts, a closed connection).
    fn scrape_until(&self, what: &str, cond: impl Fn(&Parsed) -> bool) -> Parsed {
        let mut last = None;
        wait_for(TIMEOUT, what, || {
            let m = self.scrape().expect("parser present");
            let ok = cond(&m);
            last = Some(m);
            ok
        });
        last.expect("scraped")
    }
}

fn get_close(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Body bytes of a response (everything after the head).
fn body_len(resp: &str) -> u64 {
    resp.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len() as u64)
}

fn delta(before: &Parsed, after: &Parsed, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value_or_zero(name, labels) - before.value_or_zero(name, labels)
}

#[test]
fn http_mode_metrics_move_with_requests() {
    let rt = runtime();
    let mut bs = TestBackend::start_many(&rt, 2);
    let check = HealthCheck {
        path: "/health".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        rise: 1,
        fall: 1,
        ..HealthCheck::default()
    };
    let proxy = TestProxy::start(&rt, builder(&[&bs[0], &bs[1]]).health_check(check));
    let admin = start_admin(&rt, &proxy);
    let Some(before) = admin.scrape() else { return };
    for name in [
        "rr_proxy_request_duration_seconds",
        "rr_proxy_upstream_duration_seconds",
    ] {
        assert_eq!(before.kind(name), Some("histogram"), "{name}");
    }
    assert_eq!(
        before.value("rr_proxy_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
    let start = before.value("process_start_time_seconds", &[]).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start <= now && start > now - 3600.0, "{start} {now}");

    let mut body_bytes = 0;
    for _ in 0..6 {
        let r = get_close(proxy.addr, "/page");
        assert_eq!(status_of(&r), 200, "{r}");
        body_bytes += body_len(&r);
    }
    for _ in 0..2 {
        let r = get_close(proxy.addr, "/reject");
        assert_eq!(status_of(&r), 413, "{r}");
        body_bytes += body_len(&r);
    }
    // Refused by the HTTP layer: counted by code and reason, not timed, never forwarded.
    let r = exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    );
    assert_eq!(status_of(&r), 400, "{r}");
    body_bytes += body_len(&r);

    let after = admin.scrape().unwrap();
    let d = |name: &str, labels: &[(&str, &str)]| delta(&before, &after, name, labels);
    assert_eq!(d("rr_proxy_requests_total", &[]), 8.0);
    assert_eq!(d("rr_proxy_responses_total", &[("code", "200")]), 6.0);
    assert_eq!(d("rr_proxy_responses_total", &[("code", "413")]), 2.0);
    assert_eq!(d("rr_proxy_responses_total", &[("code", "400")]), 1.0);
    assert_eq!(
        d("rr_proxy_refused_total", &[("reason", "bad_content_length")]),
        1.0
    );
    assert_eq!(d("rr_proxy_request_duration_seconds_count", &[]), 8.0);
    assert_eq!(
        d("rr_proxy_request_duration_seconds_bucket", &[("le", "+Inf")]),
        8.0
    );
    assert!(d("rr_proxy_request_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(d("rr_proxy_upstream_duration_seconds_count", &[]), 8.0);
    assert_eq!(d("rr_proxy_client_sent_bytes_total", &[]), body_bytes as f64);
    let received: f64 = bs
        .iter()
        .map(|b| {
            d(
                "rr_proxy_backend_received_bytes_total",
                &[("backend", &b.addr.to_string())],
            )
        })
        .sum();
    assert!(received >= 6.0 * 9.0, "{received}");
    // The pooled connections the requests left behind.
    assert!(after.value("rr_proxy_upstream_connections", &[]).unwrap() >= 1.0);

    // Open client connections, counted while they are open.
    let mut held: Vec<RawConn> = (0..3).map(|_| RawConn::connect(proxy.addr)).collect();
    for c in &mut held {
        c.send(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.response(false).status, 200);
    }
    admin.scrape_until("3 client connections", |m| {
        m.value("rr_proxy_client_connections", &[]) == Some(3.0)
    });
    drop(held);
    admin.scrape_until("no client connections", |m| {
        m.value("rr_proxy_client_connections", &[]) == Some(0.0)
    });

    // Health checks by result, and the last failure's reason once a backend dies.
    let b0 = bs[0].addr.to_string();
    let b1 = bs[1].addr.to_string();
    admin.scrape_until("passed health checks", |m| {
        [&b0, &b1].iter().all(|b| {
            m.value_or_zero(
                "rr_proxy_backend_health_checks_total",
                &[("backend", b), ("result", "pass")],
            ) >= 1.0
        })
    });
    let failure = "rr_proxy_backend_last_failure_info";
    assert_eq!(admin.scrape().unwrap().value(failure, &[]), None);
    bs[1].kill(&rt);
    let m = admin.scrape_until("a failed health check", |m| {
        m.value(failure, &[("backend", &b1)]).is_some()
    });
    let s = m.samples.iter().find(|s| s.name == failure).unwrap();
    assert_eq!(s.label("reason"), Some("connection refused"), "{s:?}");
    assert_eq!(s.value, 1.0);
    assert!(
        m.value_or_zero(
            "rr_proxy_backend_health_checks_total",
            &[("backend", &b1), ("result", "fail")]
        ) >= 1.0
    );
    assert_eq!(m.value("rr_proxy_backend_up", &[("backend", &b1)]), Some(0.0));
    assert_eq!(m.value(failure, &[("backend", &b0)]), None);
}

/// A backend's own statuses are counted by code, and the bodies' bytes.
#[test]
fn backend_statuses_are_counted_by_code() {
    let rt = runtime();
    const ANSWER: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n";
    let backend = RawBackend::start(&rt, ANSWER, false);
    let proxy = TestProxy::start(&rt, rr_proxy::Proxy::builder().backend(backend.addr, 1));
    let admin = start_admin(&rt, &proxy);
    let Some(before) = admin.scrape() else { return };
    for _ in 0..3 {
        let r = get_close(proxy.addr, "/missing");
        assert_eq!(status_of(&r), 404, "{r}");
    }
    let after = admin.scrape().unwrap();
    let d = |name: &str, labels: &[(&str, &str)]| delta(&before, &after, name, labels);
    assert_eq!(d("rr_proxy_responses_total", &[("code", "404")]), 3.0);
    assert_eq!(after.value("rr_proxy_responses_total", &[("code", "200")]), None);
    assert_eq!(d("rr_proxy_client_sent_bytes_total", &[]), 30.0);
    assert_eq!(d("rr_proxy_request_duration_seconds_count", &[]), 3.0);
    assert_eq!(d("rr_proxy_upstream_duration_seconds_count", &[]), 3.0);
}

/// TCP mode counts a connection as HTTP mode counts a request: requests,
/// responses by the status of its access line, durations, bytes to clients
/// (every byte), and a refused backend as `bad_gateway` (502), not `no_backend`.
#[test]
fn tcp_mode_counts_connections_as_requests() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "t0");
    let proxy = TestProxy::start(&rt, builder(&[&b]).mode(Mode::Tcp));
    let admin = start_admin(&rt, &proxy);
    let Some(before) = admin.scrape() else { return };
    let mut all_bytes = 0;
    for _ in 0..3 {
        let r = get_close(proxy.addr, "/page");
        assert_eq!(status_of(&r), 200, "{r}");
        all_bytes += r.len() as u64;
    }
    let after = admin.scrape_until("3 tunnels done", |m| {
        delta(&before, m, "rr_proxy_request_duration_seconds_count", &[]) == 3.0
            && m.value("rr_proxy_client_connections", &[]) == Some(0.0)
    });
    let d = |name: &str, labels: &[(&str, &str)]| delta(&before, &after, name, labels);
    assert_eq!(d("rr_proxy_requests_total", &[]), 3.0);
    assert_eq!(d("rr_proxy_responses_total", &[("code", "200")]), 3.0);
    assert_eq!(d("rr_proxy_client_sent_bytes_total", &[]), all_bytes as f64);
    let addr = b.addr.to_string();
    assert_eq!(
        d("rr_proxy_backend_received_bytes_total", &[("backend", &addr)]),
        all_bytes as f64
    );
    assert_eq!(d("rr_proxy_upstream_duration_seconds_count", &[]), 0.0);

    // A backend that refuses: the connection is closed and counted as 502 would be.
    let dead = {
        let (l, a) = bind(&rt);
        drop(l);
        a
    };
    let proxy = TestProxy::start(&rt, rr_proxy::Proxy::builder().backend(dead, 1).mode(Mode::Tcp));
    let admin = start_admin(&rt, &proxy);
    let r = get_close(proxy.addr, "/page");
    assert_eq!(r, "");
    let m = admin.scrape_until("a refused connection counted", |m| {
        m.value("rr_proxy_bad_gateway_total", &[]) == Some(1.0)
    });
    assert_eq!(m.value("rr_proxy_responses_total", &[("code", "502")]), Some(1.0));
    assert_eq!(m.value("rr_proxy_request_duration_seconds_count", &[]), Some(1.0));
    assert_eq!(m.value("rr_proxy_no_backend_total", &[]), Some(0.0));
    assert_eq!(m.value("rr_proxy_requests_total", &[]), Some(1.0));
}
