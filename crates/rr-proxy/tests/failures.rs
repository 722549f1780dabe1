//! Failures: 503 / 504 / 502, refused connects, a backend killed mid-stream and
//! coming back, exactly-once POSTs, and a pool whose connections the backend closes.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use http_core::Limits;
use rr_proxy::{BackendState, HealthCheck, PassiveHealth, PoolConfig, Proxy};

fn fast_health() -> HealthCheck {
    HealthCheck {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
        path: "/health".into(),
        expect: 200..=299,
        rise: 2,
        fall: 2,
        tcp_only: false,
    }
}

/// An address nothing listens on.
fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn no_eligible_backend_is_503_with_retry_after() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]).retry_after(7));
    proxy.handle.drain(b.addr).unwrap();
    let agent = agent();
    let r = get(&agent, &proxy.url("/x"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("7"));
    assert_eq!(
        r.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(b.rec.count(), 0);
    // The connection stays usable (keep-alive), and enabling brings traffic back.
    proxy.handle.enable(b.addr).unwrap();
    assert_eq!(get(&agent, &proxy.url("/y")).status, 200);
    assert_eq!(proxy.handle.stats().no_backend, 1);
}

#[test]
fn failing_health_checks_take_backends_out_then_503() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    b.set(STALL); // /health answers 503
    let proxy = TestProxy::start(&rt, builder(&[&b]).health_check(fast_health()));
    wait_for(TIMEOUT, "the backend to be marked down", || {
        proxy.handle.stats().backends[0].state == BackendState::Unhealthy
    });
    let r = get(&agent(), &proxy.url("/x"));
    assert_eq!(r.status, 503);
    assert!(r.header("Retry-After").is_some());
    assert_eq!(b.rec.count(), 0);
    b.set(NORMAL);
    wait_for(TIMEOUT, "the backend to recover", || {
        proxy.handle.stats().backends[0].state == BackendState::Healthy
    });
    assert_eq!(get(&agent(), &proxy.url("/x")).status, 200);
}

#[test]
fn stalled_backend_is_504_and_not_retried() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let other = TestBackend::start(&rt, "b1");
    b.set(STALL);
    let proxy = TestProxy::start(
        &rt,
        builder(&[&b, &other]).response_timeout(Duration::from_millis(300)),
    );
    let agent = agent();
    let started = Instant::now();
    let r = get(&agent, &proxy.url("/first")); // round-robin: b0 first
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(b.rec.count(), 1);
    assert_eq!(other.rec.count(), 0, "a timed-out request must not be sent again");
    let post = call(&agent, "POST", &proxy.url("/p"), Some(b"once")).unwrap();
    assert_eq!(post.status, 200, "next in turn is b1");
    assert_eq!(proxy.handle.stats().gateway_timeout, 1);
}

#[test]
fn malformed_backend_responses_are_502() {
    let rt = runtime();
    let answers: [&'static [u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    ];
    for answer in answers {
        let bad = RawBackend::start(&rt, answer, true);
        let proxy = TestProxy::start(&rt, Proxy::builder().backend(bad.addr, 1));
        let r = get(&agent(), &proxy.url("/"));
        assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(answer));
        assert_eq!(
            bad.accepted.load(Ordering::SeqCst),
            1,
            "a GET answered with garbage is not retried"
        );
        assert_eq!(proxy.handle.stats().backends[0].failures, 1);
    }
    // A bad chunk in the body: the client connection is cut, not given a wrong body.
    let bad = RawBackend::start(
        &rt,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
        true,
    );
    let proxy = TestProxy::start(&rt, Proxy::builder().backend(bad.addr, 1));
    let out = exchange(proxy.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(
        !out.ends_with("0\r\n\r\n"),
        "a broken body must not be completed: {out}"
    );
}

#[test]
fn refused_connections_go_to_the_next_backend_and_eject() {
    let rt = runtime();
    let live = TestBackend::start(&rt, "live");
    let dead = dead_addr();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend(dead, 1)
            .backend(live.addr, 1)
            .passive_health(PassiveHealth {
                max_failures: 3,
                ejection: Duration::from_secs(60),
            }),
    );
    let agent = agent();
    for i in 0..20 {
        let r = call(&agent, "POST", &proxy.url(&format!("/p{i}")), Some(b"x")).unwrap();
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(live.rec.count(), 20);
    let stats = proxy.handle.stats();
    let d = &stats.backends[0];
    assert_eq!(d.failures, 3, "ejected after three refused connects: {stats:?}");
    assert_eq!(d.state, BackendState::Unhealthy);

    // All backends refusing: 502 after the bounded attempts.
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder().backend(dead_addr(), 1).backend(dead_addr(), 1),
    );
    let r = get(&agent, &proxy.url("/"));
    assert_eq!(r.status, 502);
}

#[test]
fn killed_backend_loses_no_get_and_returns_after_health_checks() {
    let rt = runtime();
    let mut bs = TestBackend::start_many(&rt, 4);
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>()).health_check(fast_health()),
    );
    let stop = AtomicBool::new(false);
    let ok = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for c in 0..4 {
            let (stop, ok, failed, url) = (&stop, &ok, &failed, proxy.url(&format!("/client{c}")));
            s.spawn(move || {
                let agent = agent();
                while !stop.load(Ordering::SeqCst) {
                    match call(&agent, "GET", &url, None) {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => failed.lock().unwrap().push(format!("{} {}", r.status, r.text())),
                        Err(e) => failed.lock().unwrap().push(e),
                    }
                }
            });
        }
        wait_for(TIMEOUT, "traffic", || ok.load(Ordering::SeqCst) > 200);
        bs[2].kill(&rt);
        let at_kill = ok.load(Ordering::SeqCst);
        wait_for(TIMEOUT, "traffic after the kill", || {
            ok.load(Ordering::SeqCst) > at_kill + 400
        });
        wait_for(TIMEOUT, "b2 marked down", || {
            proxy.handle.stats().backends[2].state == BackendState::Unhealthy
        });
        let before = bs[2].rec.count();
        bs[2].restart(&rt);
        wait_for(TIMEOUT, "b2 back in rotation with traffic", || {
            bs[2].rec.count() > before + 20
        });
        stop.store(true, Ordering::SeqCst);
    });
    let failed = failed.into_inner().unwrap();
    assert!(failed.is_empty(), "failed GETs: {failed:?}");
    assert_eq!(proxy.handle.stats().backends[2].state, BackendState::Healthy);
}

#[test]
fn posts_reach_a_backend_exactly_once() {
    let rt = runtime();
    let mut bs = TestBackend::start_many(&rt, 4);
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>())
            .health_check(fast_health())
            .response_timeout(Duration::from_millis(400)),
    );
    let answers = Mutex::new(HashMap::<String, u16>::new());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..6 {
            let (answers, next, stop, url) = (&answers, &next, &stop, proxy.url("/order"));
            s.spawn(move || {
                let agent = agent();
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("id-{}", next.fetch_add(1, Ordering::SeqCst));
                    let status = match call(&agent, "POST", &url, Some(id.as_bytes())) {
                        Ok(r) => r.status,
                        Err(_) => 0,
                    };
                    answers.lock().unwrap().insert(id, status);
                }
            });
        }
        wait_for(TIMEOUT, "traffic", || next.load(Ordering::SeqCst) > 200);
        bs[1].set(STALL);
        wait_for(TIMEOUT, "traffic", || next.load(Ordering::SeqCst) > 400);
        bs[3].kill(&rt);
        wait_for(TIMEOUT, "traffic", || next.load(Ordering::SeqCst) > 800);
        stop.store(true, Ordering::SeqCst);
    });
    let mut reached: HashMap<String, usize> = HashMap::new();
    for b in &bs {
        for seen in b.rec.seen() {
            if seen.method == "POST" {
                *reached.entry(String::from_utf8(seen.body).unwrap()).or_default() += 1;
            }
        }
    }
    let twice: Vec<_> = reached.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "POSTs sent twice: {twice:?}");
    let answers = answers.into_inner().unwrap();
    let ok = answers.values().filter(|&&s| (200..300).contains(&s)).count();
    for (id, status) in &answers {
        if (200..300).contains(status) {
            assert!(
                reached.contains_key(id),
                "{id} answered {status} but never reached a backend"
            );
        }
    }
    assert!(ok > 700, "{ok} of {} POSTs succeeded", answers.len());
    // The stalled backend answered nothing: those POSTs got 504, once each.
    assert!(answers.values().any(|&s| s == 504));
}

#[test]
fn backend_closing_idle_connections_never_causes_502() {
    let rt = runtime();
    // The backends close idle keep-alive connections after 150 ms; the proxy would
    // keep them for 30 s.
    let limits = Limits {
        keep_alive_timeout: Duration::from_millis(150),
        ..Limits::default()
    };
    let bs: Vec<TestBackend> = (0..2)
        .map(|i| TestBackend::start_with(&rt, &format!("b{i}"), limits.clone()))
        .collect();
    let proxy = TestProxy::start(
        &rt,
        builder(&[&bs[0], &bs[1]]).pool(PoolConfig {
            max_idle: 16,
            idle_timeout: Duration::from_secs(30),
        }),
    );
    let agent = agent();
    for round in 0..8 {
        for i in 0..4 {
            let r = get(&agent, &proxy.url(&format!("/g{round}-{i}")));
            assert_eq!(r.status, 200, "{}", r.text());
            let r = call(&agent, "POST", &proxy.url("/echo"), Some(b"body")).unwrap();
            assert_eq!(r.status, 200, "POST in round {round}: {}", r.text());
        }
        // Longer than the backends' keep-alive: every pooled connection is now closed.
        std::thread::sleep(Duration::from_millis(250));
    }
    let stats = proxy.handle.stats();
    assert_eq!(stats.bad_gateway, 0, "{stats:?}");
    let reused: u64 = stats.backends.iter().map(|b| b.reused).sum();
    assert!(reused > 0, "the pool was used: {stats:?}");
    for b in &bs {
        assert_eq!(b.rec.count(), 32);
    }
}

#[test]
fn an_early_answer_to_an_upload_is_passed_on() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]).idle_timeout(Duration::from_secs(2)));
    let size = 32usize << 20;
    let out = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn(async move {
            let head = format!("POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
            let _ = w.write_all(head.as_bytes()).await;
            let chunk = vec![b'q'; 1 << 16];
            for _ in 0..size / chunk.len() {
                if w.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut out)).await;
        writer.abort();
        String::from_utf8_lossy(&out).into_owned()
    });
    assert_eq!(status_of(&out), 413, "{out}");
    assert!(out.contains("too big for me"), "{out}");
    // One connection, one request: nothing was retried.
    assert_eq!(proxy.handle.stats().backends[0].requests, 1);
}

#[test]
fn unsolicited_bytes_on_an_idle_connection_never_reach_a_client() {
    let rt = runtime();
    let b = RawBackend::start_with_extra(
        &rt,
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood",
        false,
        Some(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"),
    );
    let proxy = TestProxy::start(&rt, Proxy::builder().backend(b.addr, 1));
    let agent = agent();
    for _ in 0..5 {
        let r = get(&agent, &proxy.url("/"));
        assert_eq!((r.status, r.text().as_str()), (200, "good"));
        // Let the unasked bytes arrive on the now idle pooled connection.
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(
        b.accepted.load(Ordering::SeqCst),
        5,
        "each dirty connection was replaced"
    );
}

#[test]
fn no_backend_answers_before_inviting_a_body() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    proxy.handle.drain(b.addr).unwrap();
    let out = exchange(
        proxy.addr,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(status_of(&out), 503, "{out}");
    assert!(!out.contains("100 Continue"), "{out}");
    assert!(out.contains("Retry-After: 1"), "{out}");
}

/// How old the `Date` of a response is at `received` (negative ages are zero).
fn date_age(got: &Reply, received: std::time::SystemTime) -> Duration {
    let date = got.header("Date").expect("a Date header");
    let date = httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("Date {date:?}: {e}"));
    received.duration_since(date).unwrap_or_default()
}

/// The most a fresh `Date` may lag at receipt: it is truncated to its second
/// (under 1 s), plus a margin for a loaded machine.
const FRESH: Duration = Duration::from_millis(1500);

/// A 504 used to carry the `Date` of the moment the request arrived, the
/// response timeout earlier.
#[test]
fn a_504_carries_a_date_from_when_it_was_sent_not_when_the_request_came() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    b.set(STALL);
    let proxy = TestProxy::start(&rt, builder(&[&b]).response_timeout(Duration::from_secs(3)));
    let r = get(&agent(), &proxy.url("/"));
    let received = std::time::SystemTime::now();
    assert_eq!(r.status, 504, "{}", r.text());
    let age = date_age(&r, received);
    assert!(
        age < FRESH,
        "the 504's Date is {age:?} old: {:?}",
        r.header("Date")
    );
}

/// A slow backend's answer used to carry the `Date` of the moment the request
/// arrived at the proxy.
#[test]
fn a_slow_proxied_response_carries_a_current_date() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let r = get(&agent(), &proxy.url("/slow?ms=3000"));
    let received = std::time::SystemTime::now();
    assert_eq!(r.status, 200, "{}", r.text());
    let age = date_age(&r, received);
    assert!(
        age < FRESH,
        "the response's Date is {age:?} old: {:?}",
        r.header("Date")
    );
}

/// A backend that sends a second, unasked response right behind a complete one,
/// in the same write, used to have it read as the answer to the next request
/// on the pooled connection whenever the complete response exactly filled the
/// proxy's read buffer: the extra bytes stayed in the socket, and the pool's
/// check only looked for readiness events, of which there was no new one. The
/// sizes swept here cover every buffer size within 64 bytes of 4 KiB.
#[test]
fn an_unsolicited_response_behind_a_complete_one_never_answers_the_next_request() {
    let rt = runtime();
    let answered = std::sync::Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let b = ScriptBackend::start(&rt, move |mut s, _| {
        let count = count.clone();
        async move {
            use tokio::io::AsyncWriteExt;
            let mut buf = Vec::new();
            while next_head(&mut s, &mut buf).await.is_some() {
                let n = count.fetch_add(1, Ordering::SeqCst);
                // Responses of 4032 to 4160 bytes in all.
                let total = 4032 + n % 129;
                let head_len = "HTTP/1.1 200 OK\r\nContent-Length: 0000\r\n\r\n".len();
                let body = "g".repeat(total - head_len);
                let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                out.push_str("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected");
                if s.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    });
    let proxy = TestProxy::start(&rt, Proxy::builder().backend(b.addr, 1));
    let agent = agent();
    let mut wrong = Vec::new();
    for i in 0..129 {
        let r = get(&agent, &proxy.url(&format!("/{i}")));
        if r.status != 200 || r.body.is_empty() || r.body.iter().any(|&c| c != b'g') {
            wrong.push(format!("request {i}: {} {:?}", r.status, r.text()));
        }
    }
    assert!(wrong.is_empty(), "{} wrong answers: {wrong:#?}", wrong.len());
    assert_eq!(
        answered.load(Ordering::SeqCst),
        129,
        "one backend answer per request"
    );
}
