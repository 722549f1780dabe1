//! Strict rotation: sequential and concurrent clients, HTTP and TCP mode; weights
//! under the default round-robin (3:1 interleaved, concurrent, TCP mode, a backend
//! added at run time), under `weighted`, and least-connections.

mod common;

use common::*;
use rr_proxy::{LeastConnections, Mode, Weighted};

fn counts(bs: &[TestBackend]) -> Vec<usize> {
    bs.iter().map(|b| b.rec.count()).collect()
}

#[test]
fn sequential_requests_rotate_strictly() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 4);
    let proxy = TestProxy::start(&rt, builder(&bs.iter().collect::<Vec<_>>()));
    let agent = agent();
    let mut order = Vec::new();
    for i in 0..400 {
        let r = get(&agent, &proxy.url(&format!("/r{i}")));
        assert_eq!(r.status, 200, "{}", r.text());
        order.push(r.header("X-Backend").unwrap().to_owned());
    }
    assert_eq!(counts(&bs), [100, 100, 100, 100]);
    // Strict turns: b0 b1 b2 b3 b0 ...
    for (i, name) in order.iter().enumerate() {
        assert_eq!(name, &format!("b{}", i % 4), "request {i}");
    }
    let stats = proxy.handle.stats();
    assert_eq!(stats.requests, 400);
    assert!(stats.backends.iter().all(|b| b.requests == 100));
    // The pool was used: far fewer connections than requests.
    let connects: u64 = stats.backends.iter().map(|b| b.connects).sum();
    assert!(connects <= 8, "{connects} upstream connections for 400 requests");
}

#[test]
fn concurrent_clients_rotate_strictly() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 4);
    let proxy = TestProxy::start(&rt, builder(&bs.iter().collect::<Vec<_>>()));
    let url = proxy.url("/c");
    std::thread::scope(|s| {
        for _ in 0..40 {
            let url = url.clone();
            s.spawn(move || {
                let agent = agent();
                for _ in 0..10 {
                    assert_eq!(get(&agent, &url).status, 200);
                }
            });
        }
    });
    assert_eq!(counts(&bs), [100, 100, 100, 100]);
}

#[test]
fn tcp_mode_rotates_per_connection() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 4);
    let proxy = TestProxy::start(&rt, builder(&bs.iter().collect::<Vec<_>>()).mode(Mode::Tcp));
    for i in 0..40 {
        // Each connection carries two requests: both go to the same backend.
        let req = format!(
            "GET /t{i} HTTP/1.1\r\nHost: x\r\n\r\nGET /t{i}b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let out = exchange(proxy.addr, req.as_bytes());
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
        let want = format!("X-Backend: b{}", i % 4);
        assert_eq!(out.matches(&want).count(), 2, "{out}");
    }
    assert_eq!(counts(&bs), [20, 20, 20, 20]);
    // TCP mode forwards bytes unchanged: no X-Forwarded-For added.
    assert!(bs[0].rec.seen()[0].header("X-Forwarded-For").is_none());
    assert_eq!(proxy.handle.stats().requests, 40);
}

#[test]
fn weighted_follows_weights() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 4);
    let b = rr_proxy::Proxy::builder()
        .backend(bs[0].addr, 4)
        .backend(bs[1].addr, 2)
        .backend(bs[2].addr, 1)
        .backend(bs[3].addr, 1)
        .strategy(Weighted::new());
    let proxy = TestProxy::start(&rt, b);
    let agent = agent();
    for _ in 0..80 {
        assert_eq!(get(&agent, &proxy.url("/w")).status, 200);
    }
    assert_eq!(counts(&bs), [40, 20, 10, 10]);
}

#[test]
fn least_connections_avoids_the_busy_backend() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>()).strategy(LeastConnections::new()),
    );
    let slow_url = proxy.url("/slow?ms=1500");
    std::thread::scope(|s| {
        // One long request occupies one backend...
        let h = s.spawn(move || get(&agent(), &slow_url));
        wait_for(TIMEOUT, "the slow request to start", || {
            bs.iter().any(|b| b.rec.count() == 1)
        });
        let busy = if bs[0].rec.count() == 1 { 0 } else { 1 };
        // ...so the quick ones all go to the other.
        let agent = agent();
        for _ in 0..10 {
            let r = get(&agent, &proxy.url("/quick"));
            assert_eq!(r.header("X-Backend").unwrap(), format!("b{}", 1 - busy));
        }
        assert_eq!(h.join().unwrap().status, 200);
    });
}

#[test]
fn round_robin_honours_weights_3_to_1_interleaved() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    // The default strategy: no `.strategy(...)`.
    let b = rr_proxy::Proxy::builder()
        .backend(bs[0].addr, 3)
        .backend(bs[1].addr, 1);
    let proxy = TestProxy::start(&rt, b);
    assert_eq!(proxy.handle.stats().strategy, "round-robin");
    let agent = agent();
    let mut order = String::new();
    for i in 0..400 {
        let r = get(&agent, &proxy.url(&format!("/w{i}")));
        assert_eq!(r.status, 200, "{}", r.text());
        order.push_str(&r.header("X-Backend").unwrap()[1..]);
    }
    assert_eq!(counts(&bs), [300, 100]);
    // Smoothly interleaved, never b0 four times running: 0 0 1 0, 0 0 1 0, ...
    assert_eq!(order, "0010".repeat(100));
    let stats = proxy.handle.stats();
    assert_eq!(
        (stats.backends[0].requests, stats.backends[1].requests),
        (300, 100)
    );
}

#[test]
fn weights_hold_for_concurrent_clients_tcp_mode_and_backends_added_at_run_time() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 3);
    let proxy = TestProxy::start(
        &rt,
        rr_proxy::Proxy::builder()
            .backend(bs[0].addr, 3)
            .backend(bs[1].addr, 1),
    );
    let url = proxy.url("/c");
    std::thread::scope(|s| {
        for _ in 0..40 {
            let url = url.clone();
            s.spawn(move || {
                let agent = agent();
                for _ in 0..10 {
                    assert_eq!(get(&agent, &url).status, 200);
                }
            });
        }
    });
    assert_eq!(counts(&bs), [300, 100, 0]);

    // A backend of weight 4 added at run time takes half from then on.
    proxy.handle.add_backend(bs[2].addr, 4).unwrap();
    let agent = agent();
    for _ in 0..80 {
        assert_eq!(get(&agent, &proxy.url("/added")).status, 200);
    }
    assert_eq!(counts(&bs), [330, 110, 40]);

    // TCP mode balances connections by the same weights.
    let tcp = TestProxy::start(
        &rt,
        rr_proxy::Proxy::builder()
            .backend(bs[0].addr, 1)
            .backend(bs[1].addr, 3)
            .mode(Mode::Tcp),
    );
    for b in &bs {
        b.rec.clear();
    }
    for i in 0..40 {
        let req = format!("GET /t{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(status_of(exchange(tcp.addr, req.as_bytes())), 200);
    }
    assert_eq!(counts(&bs), [10, 30, 0]);
}
