//! The admin endpoint and the handle: stats, metrics, drain / enable / add / remove;
//! and who may use the endpoint (Host, Origin, body types, bearer token).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use rr_proxy::{AdminError, AdminSecurity, AdminService, AdminToken, BackendState, ProxyError};
use test_support::{accepts_connections, TempDir};

struct Admin {
    addr: std::net::SocketAddr,
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

/// An admin endpoint on 127.0.0.1 with `security`.
fn start_admin_with(rt: &tokio::runtime::Runtime, proxy: &TestProxy, security: AdminSecurity) -> Admin {
    let (listener, addr) = bind(rt);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(rr_proxy::serve_admin_with(
        proxy.handle.clone(),
        listener,
        security,
        async {
            let _ = rx.await;
        },
    ));
    Admin { addr, _stop: tx }
}

/// One request over a fresh TCP connection, written exactly as given: `Host`,
/// then `headers`, then `body` with its `Content-Length`. The status and the whole
/// response.
fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    host: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let resp = exchange(addr, req.as_bytes());
    (status_of(&resp), resp)
}

/// The `X-Backend` names of `n` requests through the proxy, sorted.
fn served_by(proxy: &TestProxy, n: usize) -> Vec<String> {
    let agent = agent();
    let mut names: Vec<String> = (0..n)
        .map(|_| {
            let r = get(&agent, &proxy.url("/page"));
            assert_eq!(r.status, 200, "{}", r.text());
            r.header("X-Backend").unwrap_or_default().to_owned()
        })
        .collect();
    names.sort();
    names
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
        let line = format!(
            "rr_proxy_backend_requests_total{{backend=\"{}\",pool=\"default\"}} 5\n",
            b.addr
        );
        assert!(text.contains(&line), "{text}");
        let up = format!(
            "rr_proxy_backend_up{{backend=\"{}\",pool=\"default\"}} 1\n",
            b.addr
        );
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
    // No other site may frame it and trick clicks on its drain buttons.
    assert_eq!(page.header("X-Frame-Options"), Some("DENY"));
    let csp = page.header("Content-Security-Policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let html = page.text();
    assert!(html.contains("fetch(\"/stats\""), "{html}");
    assert!(
        html.contains("/backends/${encodeURIComponent(addr)}/${action}"),
        "{html}"
    );
    // No resource from elsewhere: nothing loaded by URL (the page names
    // https:// backends, which is text, not a resource).
    for external in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(!html.contains(external), "no external resources: {external}");
    }
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
        wait_for(TIMEOUT, "the slow request to reach b0", || {
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

    // Round-robin honours the weight given to the one added over HTTP.
    for _ in 0..8 {
        get(&agent, &proxy.url("/three"));
    }
    assert_eq!([b0.rec.count(), b1.rec.count(), b2.rec.count()], [2, 2, 4]);

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

    // A host name works as on the command line (`--backend HOST:PORT`): looked
    // up once, its first address kept; a name or port that cannot be is a 400.
    let by_name = rr_proxy::BackendSpec::resolve(&format!("localhost:{}", b1.addr.port()))
        .unwrap()
        .addr;
    let r = call(
        &agent,
        "POST",
        &admin.url(&format!("/backends/localhost:{}", b1.addr.port())),
        Some(b""),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["addr"], by_name.to_string());
    let r = call(
        &agent,
        "POST",
        &admin.url(&format!("/backends/localhost:{}/drain", b1.addr.port())),
        Some(b""),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    for bad in ["bad_name:80", "localhost:0", "localhost"] {
        let r = call(&agent, "POST", &admin.url(&format!("/backends/{bad}")), Some(b"")).unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

#[test]
fn graceful_shutdown_finishes_the_request_in_progress() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let mut proxy = TestProxy::start(&rt, builder(&[&b]));
    let url = proxy.url("/slow?ms=400");
    std::thread::scope(|s| {
        let slow = s.spawn(move || get(&agent(), &url));
        wait_for(TIMEOUT, "the request to reach the backend", || b.rec.count() == 1);
        let started = std::time::Instant::now();
        proxy.stop(&rt);
        assert!(started.elapsed() < Duration::from_secs(5));
        let r = slow.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with("slow from b0"));
    });
    assert!(!accepts_connections(proxy.addr), "no longer listening");
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

/// The attacks, as a page on another site sends them: a cross-origin
/// `text/plain` POST (no CORS preflight) drained both backends and the proxy
/// answered 503; adding the attacker's backend and draining the real ones served
/// the attacker's content. Each is refused now, and the proxy keeps serving.
#[test]
fn cross_site_post_cannot_drain_backends() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    let evil = TestBackend::start(&rt, "evil");
    let proxy = TestProxy::start(&rt, builder(&[&bs[0], &bs[1]]));
    let admin = start_admin(&rt, &proxy);
    let host = admin.addr.to_string();
    let evil_origin = "Origin: http://evil.example";
    for b in &bs {
        let drain = format!("/backends/{}/drain", b.addr);
        // fetch(url, {method: "POST", mode: "no-cors", body: "x"}): text/plain.
        let (status, resp) = send(
            admin.addr,
            "POST",
            &drain,
            &host,
            &[
                evil_origin,
                "Sec-Fetch-Site: cross-site",
                "Content-Type: text/plain;charset=UTF-8",
            ],
            "x",
        );
        assert_eq!(status, 403, "{resp}");
        // The same without a body, and with only one of the two headers.
        for headers in [
            &[evil_origin][..],
            &["Sec-Fetch-Site: cross-site"],
            &["Sec-Fetch-Site: same-site"],
            &["Origin: null"],
            &[&*format!("Origin: http://127.0.0.1:{}", proxy.addr.port())],
        ] {
            let (status, resp) = send(admin.addr, "POST", &drain, &host, headers, "");
            assert_eq!(status, 403, "{headers:?}: {resp}");
        }
        // An HTML form (sends Origin in today's browsers; its body types are
        // refused even without it).
        for (ct, body) in [
            ("application/x-www-form-urlencoded", "a=b"),
            ("multipart/form-data; boundary=xyz", "--xyz--\r\n"),
            ("text/plain", "a=b"),
        ] {
            let ct = format!("Content-Type: {ct}");
            let (status, resp) = send(admin.addr, "POST", &drain, &host, &[&ct], body);
            assert_eq!(status, 415, "{ct}: {resp}");
        }
        // A body without a type (fetch with a Blob body) is not a command either.
        let (status, resp) = send(admin.addr, "POST", &drain, &host, &[], "{}");
        assert_eq!(status, 415, "{resp}");
        // Removing the backend.
        let (status, resp) = send(
            admin.addr,
            "DELETE",
            &format!("/backends/{}", b.addr),
            &host,
            &[evil_origin],
            "",
        );
        assert_eq!(status, 403, "{resp}");
    }
    // Adding the attacker's backend.
    let (status, resp) = send(
        admin.addr,
        "POST",
        &format!("/backends/{}?weight=100", evil.addr),
        &host,
        &[evil_origin, "Content-Type: text/plain"],
        "x",
    );
    assert_eq!(status, 403, "{resp}");

    let stats = proxy.handle.stats();
    assert_eq!(stats.backends.len(), 2, "{stats:?}");
    assert!(
        stats.backends.iter().all(|b| b.state == BackendState::Healthy),
        "{stats:?}"
    );
    assert_eq!(served_by(&proxy, 4), ["b0", "b0", "b1", "b1"]);
    assert_eq!(evil.rec.count(), 0);

    // The admin's own page, in a browser: same origin, no body. That works.
    let own = format!("Origin: http://{host}");
    let (status, resp) = send(
        admin.addr,
        "POST",
        &format!("/backends/{}/drain", bs[0].addr),
        &host,
        &[&own, "Sec-Fetch-Site: same-origin"],
        "",
    );
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("\"state\":\"draining\""), "{resp}");
    // A script with a JSON body works as well.
    let (status, resp) = send(
        admin.addr,
        "POST",
        &format!("/backends/{}/enable", bs[0].addr),
        &host,
        &["Content-Type: application/json"],
        "{}",
    );
    assert_eq!(status, 200, "{resp}");
    assert_eq!(served_by(&proxy, 4), ["b0", "b0", "b1", "b1"]);
}

/// DNS rebinding: a page on a name its author controls, re-pointed at this
/// machine, is same-origin with itself and can read the answers; it sends its own
/// name as `Host`, which the admin no longer accepts.
#[test]
fn dns_rebinding_host_is_misdirected() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    let proxy = TestProxy::start(&rt, builder(&[&bs[0], &bs[1]]));
    let admin = start_admin(&rt, &proxy);
    let port = admin.addr.port();
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        format!("[::1]:{port}"),
    ] {
        for path in ["/stats", "/metrics", "/", "/help"] {
            let (status, resp) = send(admin.addr, "GET", path, &host, &[], "");
            assert_eq!(status, 421, "{host} {path}: {resp}");
            assert!(!resp.contains(&bs[0].addr.to_string()), "{resp}");
        }
        let origin = format!("Origin: http://{host}");
        let (status, resp) = send(
            admin.addr,
            "POST",
            &format!("/backends/{}/drain", bs[0].addr),
            &host,
            &[&origin, "Sec-Fetch-Site: same-origin"],
            "",
        );
        assert_eq!(status, 421, "{host}: {resp}");
    }
    assert_eq!(proxy.handle.stats().backends[0].state, BackendState::Healthy);

    // Its own address, and localhost (it listens on loopback), through a client
    // that sets Host itself.
    let agent = agent();
    for url in [
        format!("http://127.0.0.1:{port}/stats"),
        format!("http://localhost:{port}/stats"),
    ] {
        let r = get(&agent, &url);
        assert_eq!(r.status, 200, "{url}: {}", r.text());
    }

    // A name configured for it (a DNS name, a reverse proxy's, a port mapping's).
    let named = start_admin_with(
        &rt,
        &proxy,
        AdminSecurity {
            hosts: vec!["admin.test".into()],
            ..AdminSecurity::default()
        },
    );
    let (status, resp) = send(named.addr, "GET", "/stats", "admin.test", &[], "");
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = send(
        named.addr,
        "POST",
        &format!("/backends/{}/drain", bs[1].addr),
        "admin.test:8443",
        &["Origin: https://admin.test:8443", "Sec-Fetch-Site: same-origin"],
        "",
    );
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = send(named.addr, "GET", "/stats", "evil.test", &[], "");
    assert_eq!(status, 421, "{resp}");
}

#[test]
fn admin_token_is_required_and_compared() {
    const TOKEN: &str = "c2f1d0a9e8b7c6d5a4f3e2d1";
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    let proxy = TestProxy::start(&rt, builder(&[&bs[0], &bs[1]]));
    let admin = start_admin_with(
        &rt,
        &proxy,
        AdminSecurity {
            token: Some(AdminToken::new(TOKEN).unwrap()),
            ..AdminSecurity::default()
        },
    );
    let agent = agent();
    let with = |method: &str, path: &str, auth: Option<&str>| {
        let mut req = agent.request(method, &admin.url(path));
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        let r = test_support::send(req, None).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let challenge = r.header("WWW-Authenticate").unwrap_or_default().to_owned();
        (r.status, challenge, r.text())
    };
    let right = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1]);
    for path in [
        "/stats",
        "/metrics",
        "/help",
        &format!("/backends/{}", bs[0].addr),
    ] {
        let (status, challenge, body) = with("GET", path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(challenge.starts_with("Bearer"), "{path}: {challenge:?}");
        assert!(!body.contains(&bs[0].addr.to_string()), "{body}");
        for bad in [
            &*wrong,
            "Bearer ",
            &*format!("Basic {TOKEN}"),
            &*format!("Bearer {TOKEN}{TOKEN}"),
        ] {
            let (status, challenge, _) = with("GET", path, Some(bad));
            assert_eq!(status, 401, "{path} with {bad:?}");
            assert!(challenge.starts_with("Bearer"), "{challenge:?}");
        }
        let (status, _, body) = with("GET", path, Some(&right));
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, _, stats) = with("GET", "/stats", Some(&right));
    assert!(stats.contains(&bs[0].addr.to_string()), "{stats}");
    // The page shell holds no data: it loads without the token and asks for it.
    let (status, _, html) = with("GET", "/", None);
    assert_eq!(status, 200);
    assert!(html.contains("Authorization: `Bearer ${token}`"), "{html}");

    let drain = format!("/backends/{}/drain", bs[0].addr);
    for auth in [None, Some(&*wrong)] {
        let (status, _, body) = with("POST", &drain, auth);
        assert_eq!(status, 401, "{auth:?}: {body}");
    }
    assert_eq!(proxy.handle.stats().backends[0].state, BackendState::Healthy);
    let (status, _, body) = with("POST", &drain, Some(&format!("bearer {TOKEN}")));
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.handle.stats().backends[0].state, BackendState::Draining);
}

#[test]
fn admin_beyond_loopback_needs_a_token() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    for addr in ["0.0.0.0:9100", "[::]:9100", "192.0.2.1:9100"] {
        let addr: SocketAddr = addr.parse().unwrap();
        let refused = AdminService::new(proxy.handle.clone(), addr, AdminSecurity::default());
        assert!(
            matches!(refused, Err(AdminError::TokenRequired(a)) if a == addr),
            "{addr}: {refused:?}"
        );
        let token = AdminToken::new("c2f1d0a9e8b7c6d5a4f3e2d1").unwrap();
        let security = AdminSecurity {
            token: Some(token),
            ..AdminSecurity::default()
        };
        assert!(AdminService::new(proxy.handle.clone(), addr, security).is_ok());
    }
    // serve_admin (no token) on all addresses: an error at once, nothing served.
    let listener = rt.block_on(tokio::net::TcpListener::bind("0.0.0.0:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                rr_proxy::serve_admin(proxy.handle.clone(), listener, std::future::pending()),
            )
            .await
        })
        .expect("serve_admin returns at once")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("bearer token"), "{err}");
    assert!(
        !accepts_connections(SocketAddr::from(([127, 0, 0, 1], port))),
        "the listener was closed"
    );
}

#[test]
fn token_files() {
    let dir = TempDir::new("admin-token");
    let file = |name: &str, text: &str| dir.file(name, text);
    let t = AdminToken::from_file(file("ok", "c2f1d0a9e8b7c6d5a4f3e2d1\n")).unwrap();
    assert_eq!(t, AdminToken::new("c2f1d0a9e8b7c6d5a4f3e2d1").unwrap());
    let t = AdminToken::from_file(file("crlf", "c2f1d0a9e8b7c6d5a4f3e2d1\r\n")).unwrap();
    assert_eq!(t, AdminToken::new("c2f1d0a9e8b7c6d5a4f3e2d1").unwrap());
    assert!(!format!("{t:?}").contains("c2f1"), "Debug shows no token");
    for (name, text, why) in [
        ("empty", "", "empty"),
        ("newline", "\n", "empty"),
        ("short", "abc\n", "too short"),
        ("spaces", "c2f1d0a9e8b7 c6d5a4f3e2d1\n", "visible ASCII"),
    ] {
        let err = AdminToken::from_file(file(name, text)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(why) && msg.contains(name), "{name}: {msg}");
        assert!(!msg.contains("c2f1"), "no token in the message: {msg}");
    }
    let err = AdminToken::from_file(dir.join("missing")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}
