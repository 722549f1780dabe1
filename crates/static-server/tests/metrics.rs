//! `StaticFiles::metrics` served on its own listener, over real sockets: the
//! numbers move as files are requested (durations, codes, body bytes, cache
//! hits, misses and evictions, open connections), read by Python's
//! `prometheus_client` parser (the checks of values skip, saying so, without
//! it, except under CI).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Site;
use static_server::StaticFiles;
use test_support::{
    agent, exchange, get, parse_prometheus, runtime, status_of, wait_for, Parsed, RawConn, TIMEOUT,
};

fn get_close(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn body_len(resp: &str) -> f64 {
    resp.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len()) as f64
}

fn scrape(metrics: SocketAddr) -> Option<Parsed> {
    let r = get(&agent(), &format!("http://{metrics}/metrics"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_prometheus(&r.text())
}

#[test]
fn metrics_move_with_requests() {
    let site = Site::new("metrics");
    site.file("page.html", "<p>hello</p>\n");
    for name in ["a", "b", "c"] {
        site.file(&format!("{name}.bin"), vec![b'x'; 1000]);
    }
    let rt = runtime();
    let files = StaticFiles::builder(&site.root)
        .cache(1000, 2500)
        .build()
        .unwrap();
    let metrics = files.metrics();
    let (server, metrics_addr) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let m = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_handle = metrics.clone().spawn(m).unwrap();
        (files.spawn(l).unwrap(), metrics_handle)
    });
    let addr = server.local_addr();
    let m_addr = metrics_addr.local_addr();

    // Only /metrics, only GET and HEAD.
    let r = get(&agent(), &format!("http://{m_addr}/"));
    assert_eq!(r.status, 404);
    let r = exchange(
        m_addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&r), 405, "{r}");
    let r = exchange(
        m_addr,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&r), 200, "{r}");

    let Some(before) = scrape(m_addr) else { return };
    assert_eq!(
        before.kind("static_server_request_duration_seconds"),
        Some("histogram")
    );
    assert_eq!(
        before.value(
            "static_server_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    let start = before.value("process_start_time_seconds", &[]).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start <= now && start > now - 3600.0, "{start} {now}");
    // The metrics listener's own requests are not counted.
    assert_eq!(
        before.value("static_server_responses_total", &[("code", "404")]),
        None
    );
    assert_eq!(
        before.value("static_server_request_duration_seconds_count", &[]),
        Some(0.0)
    );

    let mut body = 0.0;
    for _ in 0..3 {
        let r = get_close(addr, "/page.html");
        assert_eq!(status_of(&r), 200, "{r}");
        body += body_len(&r);
    }
    for _ in 0..2 {
        let r = get_close(addr, "/missing");
        assert_eq!(status_of(&r), 404, "{r}");
        body += body_len(&r);
    }
    // Refused by the HTTP layer: counted by status and reason, not timed.
    let r = exchange(addr, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&r), 400, "{r}");
    body += body_len(&r);
    let after = scrape(m_addr).unwrap();
    let d = |name: &str, labels: &[(&str, &str)]| {
        after.value_or_zero(name, labels) - before.value_or_zero(name, labels)
    };
    assert_eq!(d("static_server_request_duration_seconds_count", &[]), 5.0);
    assert_eq!(
        d("static_server_request_duration_seconds_bucket", &[("le", "+Inf")]),
        5.0
    );
    assert!(d("static_server_request_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(d("static_server_responses_total", &[("code", "200")]), 3.0);
    assert_eq!(d("static_server_responses_total", &[("code", "404")]), 2.0);
    assert_eq!(d("static_server_responses_total", &[("code", "400")]), 1.0);
    assert_eq!(
        d("static_server_refused_total", &[("reason", "missing_host")]),
        1.0
    );
    assert_eq!(d("static_server_response_body_bytes_total", &[]), body);
    assert!(body > 3.0 * 13.0 + 2.0 * 10.0);
    // The first request read the file; the next two came from memory.
    assert_eq!(d("static_server_cache_misses_total", &[]), 1.0);
    assert_eq!(d("static_server_cache_hits_total", &[]), 2.0);
    assert_eq!(after.value("static_server_cache_entries", &[]), Some(1.0));
    assert_eq!(after.value("static_server_cache_memory_bytes", &[]), Some(13.0));

    // Three 1000-byte files in a 2500-byte cache: one is evicted.
    for name in ["a", "b", "c"] {
        assert_eq!(status_of(get_close(addr, &format!("/{name}.bin"))), 200);
    }
    let m = scrape(m_addr).unwrap();
    assert!(m.value("static_server_cache_evictions_total", &[]).unwrap() >= 1.0);
    assert!(m.value("static_server_cache_memory_bytes", &[]).unwrap() <= 2500.0);
    assert_eq!(m.value("static_server_cache_misses_total", &[]), Some(4.0));

    // Open connections, counted while open.
    let mut held: Vec<RawConn> = (0..2).map(|_| RawConn::connect(addr)).collect();
    for c in &mut held {
        c.send(b"GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.response(false).status, 200);
    }
    let open = |want: f64| {
        wait_for(TIMEOUT, &format!("{want} open connections"), || {
            scrape(m_addr)
                .unwrap()
                .value("static_server_client_connections", &[])
                == Some(want)
        })
    };
    open(2.0);
    drop(held);
    open(0.0);

    // The same numbers through the handle.
    let s = metrics.snapshot();
    assert_eq!(s.responses.duration.count(), 5 + 3 + 2);
    assert_eq!(s.connections, 0);
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), server.shutdown())
            .await
            .unwrap();
        metrics_addr.shutdown().await;
    });
}
