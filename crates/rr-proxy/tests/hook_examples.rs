//! The hook examples (`examples/canary.rs`, `examples/auth.rs`) over real
//! sockets: their hooks types in a proxy, recording backends behind it, and
//! independent clients in front (ureq, and raw sockets where the exact bytes
//! matter). Everything binds 127.0.0.1 port 0 and every wait is bounded.

#[allow(dead_code)]
#[path = "../examples/canary.rs"]
mod canary;

#[allow(dead_code)]
#[path = "../examples/auth.rs"]
mod auth;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_core::{Request, Response, Server, ServerHandle, Service};
use rr_proxy::{PassiveHealth, Proxy, ProxyBuilder, ProxyHandle, ProxyHooks};
use tokio::runtime::Runtime;

use auth::{BearerAuth, USER_HEADER};
use canary::{CanaryRouting, GROUP_HEADER};

/// The longest any single wait may take.
const STEP: Duration = Duration::from_secs(10);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---------------------------------------------------------------------------
// Backends that record what they received.

/// One request as a backend received it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Records every request and answers `200` with its own name and the target.
struct Recorder {
    name: &'static str,
    seen: Mutex<Vec<Seen>>,
}

impl Service for Recorder {
    async fn call(&self, mut req: Request<'_>) -> Response {
        let body = match req.body.to_bytes(1 << 20).await {
            Ok(b) => b.to_vec(),
            Err(e) => return Response::text(400, format!("{e}\n")),
        };
        let seen = Seen {
            target: req.head.target().to_owned(),
            headers: req
                .head
                .headers()
                .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
            body,
        };
        self.seen.lock().expect("recorder lock").push(seen);
        Response::text(200, format!("{} {}", self.name, req.head.target()))
    }
}

struct TestBackend {
    rec: Arc<Recorder>,
    addr: SocketAddr,
    _server: ServerHandle,
}

impl TestBackend {
    fn start(rt: &Runtime, name: &'static str) -> TestBackend {
        let rec = Arc::new(Recorder {
            name,
            seen: Mutex::new(Vec::new()),
        });
        let server = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a backend");
            Server::from_arc(rec.clone())
                .spawn(listener)
                .expect("start a backend")
        });
        TestBackend {
            rec,
            addr: server.local_addr(),
            _server: server,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.rec.seen.lock().expect("recorder lock").clone()
    }

    fn count(&self) -> usize {
        self.rec.seen.lock().expect("recorder lock").len()
    }
}

/// An address nothing listens on (bound, then released): connecting is refused.
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local address")
}

// ---------------------------------------------------------------------------
// The proxy under test.

struct TestProxy {
    addr: SocketAddr,
    handle: ProxyHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestProxy {
    fn start<H: ProxyHooks>(rt: &Runtime, builder: ProxyBuilder<H>) -> TestProxy {
        let proxy = builder.build().expect("a valid proxy");
        let handle = proxy.handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the proxy");
            let addr = listener.local_addr().expect("local address");
            tokio::spawn(proxy.serve(listener, async {
                let _ = stopped.await;
            }));
            addr
        });
        TestProxy {
            addr,
            handle,
            stop: Some(stop),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ---------------------------------------------------------------------------
// Clients.

/// A response as a client received it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// Everything received, for checks on the exact bytes.
    raw: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn parse(raw: &[u8]) -> Reply {
        let raw = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
            raw: raw.clone(),
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_read_timeout(Some(STEP)).expect("read timeout");
    s.set_write_timeout(Some(STEP)).expect("write timeout");
    s
}

/// Sends `request` (exact bytes, ending the connection with `Connection:
/// close`) and reads the answer to the end of the connection.
fn exchange(addr: SocketAddr, request: &str) -> Reply {
    let mut s = connect(addr);
    s.write_all(request.as_bytes()).expect("send the request");
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("read the answer within the timeout");
    Reply::parse(&out)
}

/// A GET of `path` with `extra` header lines (each ending in CRLF).
fn get(addr: SocketAddr, path: &str, extra: &str) -> Reply {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n"),
    )
}

/// Reads one response head (an interim one included) from `s`: its bytes up to
/// and including the blank line. `buf` keeps what came after it.
fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            return String::from_utf8_lossy(&head).into_owned();
        }
        assert!(Instant::now() < deadline, "no response head within {STEP:?}");
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read within the timeout");
        assert!(n > 0, "connection closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(STEP).build()
}

/// A ureq GET with `headers`: the status, the group header and the body.
fn ureq_get(url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut req = agent().get(url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    let resp = match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let group = resp.header(GROUP_HEADER).map(str::to_owned);
    (status, group, resp.into_string().expect("a text body"))
}

/// Waits until `f` holds (the logging phase of a request may run a moment after
/// its client has the whole response).
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {STEP:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// Canary routing.

/// Each case's header lines, and whether it opts in to the canary.
const CANARY_CASES: &[(&str, bool)] = &[
    ("Cookie: canary=always\r\n", true),
    ("Cookie: theme=dark; canary=always; lang=en\r\n", true),
    ("Cookie: theme=dark\r\nCookie: canary=always\r\n", true),
    ("Cookie: a=1;canary=always\r\n", true),
    ("Cookie: canary=\"always\"\r\n", true),
    ("X-Canary: 1\r\n", true),
    ("x-canary: 1\r\nCookie: canary=never\r\n", true),
    ("", false),
    ("Cookie: canary=never\r\n", false),
    ("Cookie: Canary=always\r\n", false),
    ("Cookie: xcanary=always; canary=alwaysx\r\n", false),
    ("Cookie: note=canary=always\r\n", false),
    ("Cookie: theme=dark\r\nCookie: lang=en\r\n", false),
    ("X-Canary: 0\r\n", false),
    ("X-Canary: yes\r\n", false),
];

#[test]
fn canary_requests_reach_only_canary_backends_and_the_rest_only_stable_ones() {
    let rt = runtime();
    let s1 = TestBackend::start(&rt, "stable-1");
    let c1 = TestBackend::start(&rt, "canary-1");
    let s2 = TestBackend::start(&rt, "stable-2");
    let c2 = TestBackend::start(&rt, "canary-2");
    let hooks = CanaryRouting::new([c1.addr, c2.addr]);
    let counts = hooks.counts();
    // The groups interleaved in the backend list: membership is by address.
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backends([s1.addr, c1.addr, s2.addr, c2.addr].map(|a| (a, 1)))
            .hooks(hooks),
    );

    for (i, (extra, canary)) in CANARY_CASES.iter().enumerate() {
        let group = if *canary { "canary" } else { "stable" };
        let r = get(proxy.addr, &format!("/case/{i}/{group}"), extra);
        assert_eq!(r.status, 200, "case {i} {extra:?}: {}", r.raw);
        assert_eq!(
            r.header(GROUP_HEADER),
            Some(group),
            "case {i} {extra:?}: {}",
            r.raw
        );
        assert!(r.body.starts_with(group), "case {i} {extra:?}: {}", r.raw);
    }
    // Runs of one group alone rotate over that group's backends.
    for i in 0..4 {
        let (status, group, body) = ureq_get(&proxy.url(&format!("/run/{i}/canary")), &[("X-Canary", "1")]);
        assert_eq!((status, group.as_deref()), (200, Some("canary")), "{body}");
    }
    for i in 0..4 {
        let (status, group, body) = ureq_get(&proxy.url(&format!("/run/{i}/stable")), &[]);
        assert_eq!((status, group.as_deref()), (200, Some("stable")), "{body}");
    }

    for b in [&c1, &c2] {
        let seen = b.seen();
        assert!(
            seen.len() >= 2,
            "{} took part in the canary run: {seen:?}",
            b.rec.name
        );
        for s in seen {
            assert!(
                s.target.ends_with("/canary"),
                "{} received {}",
                b.rec.name,
                s.target
            );
        }
    }
    for b in [&s1, &s2] {
        let seen = b.seen();
        assert!(
            seen.len() >= 2,
            "{} took part in the stable run: {seen:?}",
            b.rec.name
        );
        for s in seen {
            assert!(
                s.target.ends_with("/stable"),
                "{} received {}",
                b.rec.name,
                s.target
            );
        }
    }
    let n_canary = CANARY_CASES.iter().filter(|(_, c)| *c).count() as u64 + 4;
    let n_stable = CANARY_CASES.len() as u64 + 8 - n_canary;
    assert_eq!((c1.count() + c2.count()) as u64, n_canary);
    assert_eq!((s1.count() + s2.count()) as u64, n_stable);
    wait_until("every request counted", || {
        counts.snapshot() == (n_stable, n_canary, 0, 0)
    });
}

#[test]
fn a_canary_request_falls_back_to_stable_when_no_canary_is_up() {
    let rt = runtime();
    let s1 = TestBackend::start(&rt, "stable-1");
    let c1 = TestBackend::start(&rt, "canary-1");

    // The canary drained: not eligible, so never tried.
    let hooks = CanaryRouting::new([c1.addr]);
    let counts = hooks.counts();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backends([(s1.addr, 1), (c1.addr, 1)])
            .hooks(hooks),
    );
    let r = get(proxy.addr, "/before", "Cookie: canary=always\r\n");
    assert_eq!(
        (r.status, r.header(GROUP_HEADER)),
        (200, Some("canary")),
        "{}",
        r.raw
    );
    proxy.handle.drain(c1.addr).expect("drain the canary");
    let r = get(proxy.addr, "/drained", "Cookie: canary=always\r\n");
    assert_eq!(
        (r.status, r.header(GROUP_HEADER)),
        (200, Some("stable")),
        "{}",
        r.raw
    );
    assert!(r.body.starts_with("stable-1"), "{}", r.raw);
    assert_eq!(
        c1.count(),
        1,
        "only the request before the drain reached the canary"
    );
    wait_until("the fallback counted", || counts.snapshot() == (1, 1, 1, 0));

    // The canary down (not yet known to be): the refused attempt is retried
    // on the stable set, a POST too, since no byte of it reached a backend.
    let dead = dead_addr();
    let hooks = CanaryRouting::new([dead]);
    let counts = hooks.counts();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder().backends([(dead, 1), (s1.addr, 1)]).hooks(hooks),
    );
    let r = get(proxy.addr, "/down", "X-Canary: 1\r\n");
    assert_eq!(
        (r.status, r.header(GROUP_HEADER)),
        (200, Some("stable")),
        "{}",
        r.raw
    );
    let r = exchange(
        proxy.addr,
        "POST /down-post HTTP/1.1\r\nHost: test\r\nX-Canary: 1\r\nContent-Length: 5\r\n\
         Connection: close\r\n\r\nhello",
    );
    assert_eq!(
        (r.status, r.header(GROUP_HEADER)),
        (200, Some("stable")),
        "{}",
        r.raw
    );
    let seen = s1.seen();
    let post = seen
        .iter()
        .find(|s| s.target == "/down-post")
        .expect("the POST reached stable-1");
    assert_eq!(post.body, b"hello");
    wait_until("the fallbacks counted", || counts.snapshot() == (2, 0, 2, 0));
}

#[test]
fn a_stable_request_never_goes_to_a_canary() {
    let rt = runtime();
    let s1 = TestBackend::start(&rt, "stable-1");
    let c1 = TestBackend::start(&rt, "canary-1");

    // Every stable backend drained: the proxy's own 503, no group header.
    let hooks = CanaryRouting::new([c1.addr]);
    let counts = hooks.counts();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backends([(s1.addr, 1), (c1.addr, 1)])
            .hooks(hooks),
    );
    proxy.handle.drain(s1.addr).expect("drain the stable backend");
    let r = get(proxy.addr, "/no-stable", "");
    assert_eq!(r.status, 503, "{}", r.raw);
    assert!(r.header("Retry-After").is_some(), "{}", r.raw);
    assert_eq!(
        r.header(GROUP_HEADER),
        None,
        "the proxy's own answer names no group"
    );
    // The canary is up, and canary requests still reach it.
    let r = get(proxy.addr, "/canary-ok", "X-Canary: 1\r\n");
    assert_eq!(
        (r.status, r.header(GROUP_HEADER)),
        (200, Some("canary")),
        "{}",
        r.raw
    );
    assert_eq!(
        c1.seen().iter().map(|s| s.target.as_str()).collect::<Vec<_>>(),
        ["/canary-ok"]
    );
    assert_eq!(s1.count(), 0);
    wait_until("the unserved request counted", || {
        counts.snapshot() == (0, 1, 0, 1)
    });

    // The only stable backend down: its failure is the answer (502), the
    // canary is not tried instead; once the backend is ejected, 503.
    let dead = dead_addr();
    let hooks = CanaryRouting::new([c1.addr]);
    let counts = hooks.counts();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backends([(dead, 1), (c1.addr, 1)])
            .passive_health(PassiveHealth {
                max_failures: 2,
                ..PassiveHealth::default()
            })
            .hooks(hooks),
    );
    for (i, status) in [502, 502, 503].into_iter().enumerate() {
        let r = get(proxy.addr, &format!("/stable-down/{i}"), "");
        assert_eq!(r.status, status, "request {i}: {}", r.raw);
        assert_eq!(r.header(GROUP_HEADER), None, "{}", r.raw);
    }
    assert_eq!(c1.count(), 1, "the canary got only the canary request");
    wait_until("the unserved requests counted", || {
        counts.snapshot() == (0, 0, 0, 3)
    });
}

// ---------------------------------------------------------------------------
// Bearer authentication.

const ALICE: &str = "alice-token-1";
const BOB: &str = "bob.token/2+x==";

fn auth_proxy(rt: &Runtime, backend: &TestBackend) -> TestProxy {
    let hooks = BearerAuth::new("test").token(ALICE, "alice").token(BOB, "bob");
    TestProxy::start(rt, Proxy::builder().backend(backend.addr, 1).hooks(hooks))
}

#[test]
fn requests_without_a_valid_token_are_refused_before_any_backend() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "app");
    let proxy = auth_proxy(&rt, &b);
    let plain = "Bearer realm=\"test\"";
    let invalid = "Bearer realm=\"test\", error=\"invalid_token\"";
    let cases: &[(&str, u16, &str)] = &[
        ("", 401, plain),
        ("Authorization: Basic YWxpY2U6cHc=\r\n", 401, plain),
        ("Authorization:\r\n", 401, plain),
        ("Authorization: Bearer\r\n", 401, invalid),
        ("Authorization: Bearer wrong\r\n", 401, invalid),
        ("Authorization: Bearer alice-token-\r\n", 401, invalid),
        ("Authorization: Bearer alice-token-12\r\n", 401, invalid),
        ("Authorization: Bearer ALICE-TOKEN-1\r\n", 401, invalid),
        ("Authorization: Bearer alice-token-1 x\r\n", 401, invalid),
        ("Authorization: Bearer alice-token-1,\r\n", 401, invalid),
        ("Authorization: BearerX alice-token-1\r\n", 401, plain),
        (
            "Authorization: Bearer alice-token-1\r\nAuthorization: Bearer bob.token/2+x==\r\n",
            400,
            "Bearer realm=\"test\", error=\"invalid_request\"",
        ),
    ];
    for (extra, status, challenge) in cases {
        let r = get(proxy.addr, "/private", extra);
        assert_eq!(r.status, *status, "{extra:?}: {}", r.raw);
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some(*challenge),
            "{extra:?}: {}",
            r.raw
        );
        assert_eq!(r.header("Cache-Control"), Some("no-store"), "{extra:?}");
    }
    // With a body, chunked or not.
    for body in [
        "Content-Length: 5\r\n\r\nhello",
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let r = exchange(
            proxy.addr,
            &format!("POST /upload HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{body}"),
        );
        assert_eq!(r.status, 401, "{}", r.raw);
    }
    let (status, _, _) = ureq_get(&proxy.url("/private"), &[("Authorization", "Bearer nope")]);
    assert_eq!(status, 401);
    assert_eq!(
        b.count(),
        0,
        "the backend saw an unauthenticated request: {:?}",
        b.seen()
    );

    // The scheme is case-insensitive, and the space before the token may be several.
    let r = get(
        proxy.addr,
        "/private",
        "Authorization: bearer   alice-token-1\r\n",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "app /private"), "{}", r.raw);
    let (status, _, body) = ureq_get(
        &proxy.url("/private"),
        &[("Authorization", "Bearer bob.token/2+x==")],
    );
    assert_eq!((status, body.as_str()), (200, "app /private"));
    assert_eq!(b.count(), 2);
}

#[test]
fn the_backend_gets_the_user_but_neither_the_token_nor_a_forged_user() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "app");
    let proxy = auth_proxy(&rt, &b);
    // Forged copies in every spelling; and the header named in `Connection`
    // (hop-by-hop), which must not take away the one the proxy sets.
    let r = get(
        proxy.addr,
        "/me",
        "X-Authenticated-User: admin\r\nAuthorization: Bearer alice-token-1\r\n\
         x-authenticated-user: root\r\nX-Authenticated_User: root\r\nX-Kept: 1\r\n\
         Connection: X-Authenticated-User\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    let (status, _, _) = ureq_get(
        &proxy.url("/me-too"),
        &[
            ("Authorization", "Bearer bob.token/2+x=="),
            ("X-Authenticated-User", "alice"),
        ],
    );
    assert_eq!(status, 200);

    let seen = b.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (s, user) in seen.iter().zip(["alice", "bob"]) {
        assert_eq!(s.headers_named(USER_HEADER), [user], "{s:?}");
        assert!(
            s.headers_named("Authorization").is_empty(),
            "the token was forwarded: {s:?}"
        );
        assert!(
            s.headers_named("X-Authenticated_User").is_empty(),
            "a look-alike of the user header was forwarded: {s:?}"
        );
    }
    assert_eq!(seen[0].headers_named("X-Kept"), ["1"]);
}

#[test]
fn a_refused_upload_is_answered_401_without_100_continue() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "app");
    let proxy = auth_proxy(&rt, &b);
    let upload = |auth: &str| {
        format!(
            "POST /upload HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: 1000\r\n\
             Expect: 100-continue\r\n\r\n"
        )
    };

    // Without a token: the answer is the 401 itself, and the connection ends
    // (the body it would have had to skip was never invited).
    let mut s = connect(proxy.addr);
    s.write_all(upload("").as_bytes()).expect("send the head");
    let mut buf = Vec::new();
    let head = read_head(&mut s, &mut buf);
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    s.read_to_end(&mut buf)
        .expect("the connection ends within the timeout");
    let rest = String::from_utf8_lossy(&buf);
    assert!(
        !head.contains("100 Continue") && !rest.contains("100 Continue"),
        "{head}{rest}"
    );
    assert_eq!(rest, "authentication required\n");
    assert_eq!(b.count(), 0);

    // With one: invited, sent, received whole.
    let mut s = connect(proxy.addr);
    s.write_all(upload("Authorization: Bearer alice-token-1\r\n").as_bytes())
        .expect("send the head");
    let mut buf = Vec::new();
    let interim = read_head(&mut s, &mut buf);
    assert!(interim.starts_with("HTTP/1.1 100 Continue\r\n"), "{interim}");
    s.write_all(&[b'u'; 1000]).expect("send the body");
    let head = read_head(&mut s, &mut buf);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let seen = b.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, [b'u'; 1000]);
    assert_eq!(seen[0].headers_named(USER_HEADER), ["alice"]);
}

/// Regression: with the proxy's one rotation shared by both groups, strictly
/// alternating stable and canary requests sent every stable one to the same
/// backend. Each group now keeps its own rotation.
#[test]
fn alternating_groups_still_rotate_within_each_group() {
    let rt = runtime();
    let s1 = TestBackend::start(&rt, "stable-1");
    let s2 = TestBackend::start(&rt, "stable-2");
    let c1 = TestBackend::start(&rt, "canary-1");
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backends([(s1.addr, 1), (s2.addr, 1), (c1.addr, 1)])
            .hooks(CanaryRouting::new([c1.addr])),
    );
    for i in 0..10 {
        assert_eq!(get(proxy.addr, &format!("/s/{i}"), "").status, 200);
        assert_eq!(get(proxy.addr, &format!("/c/{i}"), "X-Canary: 1\r\n").status, 200);
    }
    assert_eq!((s1.count(), s2.count(), c1.count()), (5, 5, 10));
}

/// Regression: when the backends the hook would choose were all out but others
/// were up, the proxy invited and read the body (`100 Continue`) before
/// answering 503. The first backend is now chosen before the body is read.
#[test]
fn no_backend_for_the_hook_is_answered_before_the_body_is_invited() {
    let rt = runtime();
    let s1 = TestBackend::start(&rt, "stable-1");
    let c1 = TestBackend::start(&rt, "canary-1");
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backends([(s1.addr, 1), (c1.addr, 1)])
            .hooks(CanaryRouting::new([c1.addr])),
    );
    proxy.handle.drain(s1.addr).expect("drain the stable backend");
    let mut s = connect(proxy.addr);
    s.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
        .expect("send the head");
    let mut buf = Vec::new();
    let head = read_head(&mut s, &mut buf);
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(!head.contains("100 Continue"), "{head}");
    assert_eq!((s1.count(), c1.count()), (0, 0));
}

/// A hook sees the case where no backend is left after a failure, and can
/// answer it with a page of its own.
#[test]
fn on_failure_can_answer_when_nothing_is_left_to_try() {
    use rr_proxy::{OnFailure, RequestInfo, UpstreamFailure};
    struct Sorry;
    impl ProxyHooks for Sorry {
        type Ctx = ();
        fn on_failure(&self, _req: RequestInfo<'_>, f: &UpstreamFailure, _ctx: &mut ()) -> OnFailure {
            if f.retryable {
                OnFailure::Default
            } else {
                OnFailure::Answer(Response::text(
                    503,
                    format!("sorry: {:?} after {}\n", f.kind, f.attempts),
                ))
            }
        }
    }
    let rt = runtime();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backends([(dead_addr(), 1)])
            .passive_health(PassiveHealth {
                max_failures: 0,
                ..PassiveHealth::default()
            })
            .hooks(Sorry),
    );
    let r = get(proxy.addr, "/", "");
    assert_eq!(r.status, 503, "{}", r.raw);
    assert!(r.raw.ends_with("sorry: Connect after 1\n"), "{}", r.raw);
}
