//! The admin endpoint and the handle: stats, metrics, drain / enable / add / remove.

mod common;

use std::time::Duration;

use common::*;
use rr_proxy::{BackendState, ProxyError};

struct Admin {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn start_admin(rt: &tokio::runtime::Runtime, proxy: &TestProxy) -> Admin {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(rr_proxy::serve_admin(proxy.handle.clone(), listener, async {
        let _ = rx.await;
    }));
    Admin { addr, _stop: tx }
}

impl Admin {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

#[test]
fn stats_and_metrics() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    let proxy = TestProxy::start(&rt, builder(&[&bs[0], &bs[1]]));
    let admin = start_admin(&rt, &proxy);
    let agent = agent();
    for _ in 0..10 {
        call(&agent, "POST", &proxy.url("/echo"), Some(b"12345")).unwrap();
    }
    let r = get(&agent, &admin.url("/stats"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["strategy"], "round-robin");
    assert_eq!(v["mode"], "http");
    assert_eq!(v["requests"], 10);
    let backends = v["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2);
    for (b, json) in bs.iter().zip(backends) {
        assert_eq!(json["addr"], b.addr.to_string());
        assert_eq!(json["requests"], 5);
        assert_eq!(json["failures"], 0);
        assert_eq!(json["state"], "healthy");
        assert_eq!(json["active"], 0);
        assert_eq!(json["bytes_sent"], 25);
        assert_eq!(json["bytes_received"], 25);
    }

    let m = get(&agent, &admin.url("/metrics"));
    assert_eq!(m.status, 200);
    assert!(m
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = m.text();
    assert!(
        text.contains("# TYPE rr_proxy_requests_total counter\nrr_proxy_requests_total 10\n"),
        "{text}"
    );
    for b in &bs {
        let line = format!("rr_proxy_backend_requests_total{{backend=\"{}\"}} 5\n", b.addr);
        assert!(text.contains(&line), "{text}");
        let up = format!("rr_proxy_backend_up{{backend=\"{}\"}} 1\n", b.addr);
        assert!(text.contains(&up), "{text}");
    }
    // Every sample line is `name{labels} value` or `name value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        value.parse::<f64>().unwrap();
    }
    // `/` is the live status page: HTML that renders `/stats` and drains/enables
    // through the API, with nothing loaded from elsewhere.
    let page = get(&agent, &admin.url("/"));
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = page.text();
    assert!(html.contains("fetch(\"/stats\""), "{html}");
    assert!(
        html.contains("/backends/${encodeURIComponent(addr)}/${action}"),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
    let help = get(&agent, &admin.url("/help"));
    assert_eq!(help.status, 200);
    assert!(help.text().contains("POST   /backends/{addr}/drain"));
    assert_eq!(get(&agent, &admin.url("/nope")).status, 404);
    assert_eq!(
        call(&agent, "POST", &admin.url("/stats"), Some(b""))
            .unwrap()
            .status,
        405
    );
}

#[test]
fn drain_and_enable_over_http() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    let proxy = TestProxy::start(&rt, builder(&[&bs[0], &bs[1]]));
    let admin = start_admin(&rt, &proxy);
    let agent = agent();
    for _ in 0..4 {
        get(&agent, &proxy.url("/warm"));
    }
    assert!(proxy.handle.stats().backends[0].idle >= 1);

    // A slow request is in progress on b0 when it is drained: it finishes.
    let slow_url = proxy.url("/slow?ms=500");
    std::thread::scope(|s| {
        let slow = s.spawn(move || get(&common::agent(), &slow_url));
        wait_for(STEP, "the slow request to reach b0", || {
            bs[0].rec.seen().iter().any(|r| r.target.starts_with("/slow"))
        });
        let r = call(
            &agent,
            "POST",
            &admin.url(&format!("/backends/{}/drain", bs[0].addr)),
            Some(b""),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["state"], "draining");
        assert_eq!(v["draining"], true);
        assert_eq!(v["active"], 1);
        assert_eq!(v["idle"], 0, "pooled connections of a drained backend are closed");
        assert_eq!(slow.join().unwrap().status, 200);
    });
    let before = bs[0].rec.count();
    for _ in 0..10 {
        assert_eq!(
            get(&agent, &proxy.url("/drained")).header("X-Backend"),
            Some("b1")
        );
    }
    assert_eq!(
        bs[0].rec.count(),
        before,
        "a drained backend gets no new requests"
    );
    assert_eq!(proxy.handle.stats().backends[0].idle, 0);

    let r = call(
        &agent,
        "POST",
        &admin.url(&format!("/backends/{}/enable", bs[0].addr)),
        Some(b""),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let mut names: Vec<String> = (0..4)
        .map(|_| {
            get(&agent, &proxy.url("/again"))
                .header("X-Backend")
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["b0", "b0", "b1", "b1"]);

    // Errors.
    let unknown = call(
        &agent,
        "POST",
        &admin.url("/backends/127.0.0.1:1/drain"),
        Some(b""),
    )
    .unwrap();
    assert_eq!(unknown.status, 404);
    let bad = call(
        &agent,
        "POST",
        &admin.url("/backends/not-an-addr/drain"),
        Some(b""),
    )
    .unwrap();
    assert_eq!(bad.status, 400);
    let wrong = get(&agent, &admin.url(&format!("/backends/{}/drain", bs[0].addr)));
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("Allow"), Some("POST"));
}

#[test]
fn add_and_remove_backends_at_run_time() {
    let rt = runtime();
    let b0 = TestBackend::start(&rt, "b0");
    let b1 = TestBackend::start(&rt, "b1");
    let b2 = TestBackend::start(&rt, "b2");
    let proxy = TestProxy::start(&rt, builder(&[&b0]));
    let admin = start_admin(&rt, &proxy);
    let agent = agent();

    // Through the handle...
    proxy.handle.add_backend(b1.addr, 1).unwrap();
    assert_eq!(
        proxy.handle.add_backend(b1.addr, 1),
        Err(ProxyError::DuplicateBackend(b1.addr))
    );
    assert!(matches!(
        proxy.handle.add_backend(b2.addr, 0),
        Err(ProxyError::ZeroWeight(_))
    ));
    // ...and over HTTP.
    let r = call(
        &agent,
        "POST",
        &admin.url(&format!("/backends/{}?weight=2", b2.addr)),
        Some(b""),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["weight"], 2);
    let dup = call(
        &agent,
        "POST",
        &admin.url(&format!("/backends/{}", b2.addr)),
        Some(b""),
    )
    .unwrap();
    assert_eq!(dup.status, 409);

    for _ in 0..9 {
        get(&agent, &proxy.url("/three"));
    }
    assert_eq!([b0.rec.count(), b1.rec.count(), b2.rec.count()], [3, 3, 3]);

    let r = call(
        &agent,
        "DELETE",
        &admin.url(&format!("/backends/{}", b1.addr)),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    proxy.handle.remove_backend(b2.addr).unwrap();
    assert_eq!(
        proxy.handle.remove_backend(b2.addr),
        Err(ProxyError::UnknownBackend(b2.addr))
    );
    for _ in 0..5 {
        assert_eq!(get(&agent, &proxy.url("/one")).header("X-Backend"), Some("b0"));
    }
    let stats = proxy.handle.stats();
    assert_eq!(stats.backends.len(), 1);
    assert_eq!(stats.backends[0].state, BackendState::Healthy);
}

#[test]
fn graceful_shutdown_finishes_the_request_in_progress() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let mut proxy = TestProxy::start(&rt, builder(&[&b]));
    let url = proxy.url("/slow?ms=400");
    std::thread::scope(|s| {
        let slow = s.spawn(move || get(&agent(), &url));
        wait_for(STEP, "the request to reach the backend", || b.rec.count() == 1);
        let started = std::time::Instant::now();
        proxy.stop(&rt);
        assert!(started.elapsed() < Duration::from_secs(5));
        let r = slow.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with("slow from b0"));
    });
    assert!(
        std::net::TcpStream::connect(proxy.addr).is_err(),
        "no longer listening"
    );
}

#[test]
fn builder_refuses_bad_settings() {
    assert_eq!(
        rr_proxy::Proxy::builder().build().unwrap_err(),
        ProxyError::NoBackends
    );
    let a: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(
        rr_proxy::Proxy::builder()
            .backend(a, 1)
            .backend(a, 2)
            .build()
            .unwrap_err(),
        ProxyError::DuplicateBackend(a)
    );
    assert_eq!(
        rr_proxy::Proxy::builder().backend(a, 0).build().unwrap_err(),
        ProxyError::ZeroWeight(a)
    );
    assert!(rr_proxy::Proxy::builder()
        .backend(a, 1)
        .connect_timeout(Duration::ZERO)
        .build()
        .is_err());
}
