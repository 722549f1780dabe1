//! What crosses the proxy: headers (hop-by-hop, X-Forwarded-*, Via, Host) and
//! body framing in both directions.

mod common;

use std::io::Read;

use common::*;
use rr_proxy::Proxy;

#[test]
fn request_hop_by_hop_and_connection_named_headers_are_removed() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let req = "GET /h?q=1 HTTP/1.1\r\n\
        Host: example.com:8080\r\n\
        Connection: keep-alive, X-Private, x-other\r\n\
        X-Private: secret\r\n\
        X-Other: secret too\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Connection: keep-alive\r\n\
        TE: trailers\r\n\
        Trailer: X-Sum\r\n\
        Upgrade: h2c\r\n\
        X-Normal: yes\r\n\
        \r\n";
    let out = raw_one(proxy.addr, req);
    assert_eq!(status_of(&out), 200, "{out}");
    let seen = &b.rec.seen()[0];
    assert_eq!(seen.target, "/h?q=1");
    assert_eq!(seen.version, "HTTP/1.1");
    assert_eq!(seen.header("Host"), Some("example.com:8080"));
    assert_eq!(seen.header("X-Normal"), Some("yes"));
    for gone in [
        "Connection",
        "X-Private",
        "X-Other",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Upgrade",
        "Transfer-Encoding",
    ] {
        assert!(
            seen.header(gone).is_none(),
            "{gone} was forwarded: {:?}",
            seen.headers
        );
    }
}

/// One request on a fresh connection; reads one Content-Length response.
fn raw_one(addr: std::net::SocketAddr, req: &str) -> String {
    let mut req = req.to_owned();
    if !req.contains("Connection: close") && !req.contains("HTTP/1.0") {
        // Let the proxy close after answering so `raw` returns promptly.
        req = req.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        // A second Connection line is fine: tokens accumulate.
    }
    exchange(addr, req.as_bytes())
}

#[test]
fn forwarded_headers_are_appended_and_overwritten() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let agent = agent();
    let r = agent
        .get(&proxy.url("/xf"))
        .set("Host", "site.example")
        .set("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
        .set("X-Forwarded-Proto", "https")
        .set("X-Forwarded-Host", "evil.example")
        .set("Via", "1.0 earlier")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = &b.rec.seen()[0];
    assert_eq!(
        seen.headers_named("X-Forwarded-For"),
        ["203.0.113.7, 10.0.0.1, 127.0.0.1"]
    );
    assert_eq!(seen.headers_named("X-Forwarded-Proto"), ["http"]);
    assert_eq!(seen.headers_named("X-Forwarded-Host"), ["site.example"]);
    assert_eq!(seen.headers_named("Via"), ["1.0 earlier, 1.1 rr-proxy"]);
    assert_eq!(seen.header("Host"), Some("site.example"));

    // Without earlier values: set fresh.
    get(&agent, &proxy.url("/xf2"));
    let seen = &b.rec.seen()[1];
    assert_eq!(seen.headers_named("X-Forwarded-For"), ["127.0.0.1"]);
    assert_eq!(seen.headers_named("Via"), ["1.1 rr-proxy"]);
    assert_eq!(seen.headers_named("X-Forwarded-Host"), [proxy.addr.to_string()]);
}

/// RFC 9112 §3.2.2: for an absolute-form target the received Host is ignored and
/// replaced by the target's authority; the backend gets the origin form.
#[test]
fn absolute_form_target_goes_on_in_origin_form_with_its_authority_as_host() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let r = raw_one(
        proxy.addr,
        "GET http://site.example:8080/abs?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let r = raw_one(
        proxy.addr,
        "GET http://site.example?q HTTP/1.1\r\nHost: site.example\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let seen = b.rec.seen();
    assert_eq!(seen[0].target, "/abs?x=1");
    assert_eq!(seen[0].headers_named("Host"), ["site.example:8080"]);
    assert_eq!(seen[0].headers_named("X-Forwarded-Host"), ["site.example:8080"]);
    assert_eq!(seen[1].target, "/?q");
    assert_eq!(seen[1].headers_named("Host"), ["site.example"]);
}

#[test]
fn response_hop_by_hop_headers_are_removed() {
    let rt = runtime();
    let raw_backend = RawBackend::start(
        &rt,
        b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: hidden\r\nKeep-Alive: timeout=5\r\n\
Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok",
        false,
    );
    let proxy = TestProxy::start(&rt, rr_proxy::Proxy::builder().backend(raw_backend.addr, 1));
    let r = get(&agent(), &proxy.url("/"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("X-Kept"), Some("yes"));
    for gone in ["X-Secret", "Keep-Alive", "Proxy-Connection", "Upgrade"] {
        assert!(
            r.header(gone).is_none(),
            "{gone} reached the client: {:?}",
            r.headers
        );
    }
    // The backend's own hop-by-hop headers on an http-core backend, too.
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let r = get(&agent(), &proxy.url("/hop"));
    assert_eq!(r.header("X-Kept"), Some("yes"));
    assert!(r.header("Keep-Alive").is_none() && r.header("Upgrade").is_none());
    assert!(r.header("Proxy-Connection").is_none());
}

#[test]
fn chunked_request_passes_as_chunked_and_lengths_stay() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let out = exchange(
        proxy.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(status_of(&out), 200, "{out}");
    assert!(out.ends_with("\r\n\r\nhello world"), "{out}");
    let seen = &b.rec.seen()[0];
    assert_eq!(seen.header("Transfer-Encoding"), Some("chunked"));
    assert!(seen.header("Content-Length").is_none());
    assert_eq!(seen.body, b"hello world");

    // Content-Length bodies keep their length (duplicates normalised to one line).
    let out = exchange(
        proxy.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde",
    );
    assert_eq!(status_of(&out), 200, "{out}");
    let seen = &b.rec.seen()[1];
    assert_eq!(seen.headers_named("Content-Length"), ["5"]);
    assert!(seen.header("Transfer-Encoding").is_none());
    assert_eq!(seen.body, b"abcde");
}

#[test]
fn streamed_chunked_upload_larger_than_the_prefetch() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    // ureq sends a reader as chunked.
    let r = agent()
        .post(&proxy.url("/echo"))
        .send(std::io::Cursor::new(body.clone()))
        .unwrap();
    let mut echoed = Vec::new();
    r.into_reader().read_to_end(&mut echoed).unwrap();
    assert_eq!(echoed.len(), body.len());
    assert!(echoed == body);
    assert_eq!(b.rec.seen()[0].header("Transfer-Encoding"), Some("chunked"));
}

#[test]
fn http10_client_gets_a_dechunked_close_delimited_body() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let out = exchange(proxy.addr, b"GET /chunked?n=100000 HTTP/1.0\r\n\r\n");
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(!head.contains("Transfer-Encoding"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(body.len(), 100_000);
    assert!(body.bytes().all(|c| c == b'z'));
    // The backend got an HTTP/1.1 request with a Host.
    let seen = &b.rec.seen()[0];
    assert_eq!(seen.version, "HTTP/1.1");
    assert_eq!(seen.header("Host"), Some(b.addr.to_string().as_str()));

    // An HTTP/1.1 client gets the same body chunked.
    let r = get(&agent(), &proxy.url("/chunked?n=100000"));
    assert_eq!(r.body.len(), 100_000);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
}

#[test]
fn head_and_bodiless_responses_keep_their_framing() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let agent = agent();
    let r = call(&agent, "HEAD", &proxy.url("/big?n=12345"), None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("12345"));
    assert!(r.body.is_empty());
    // The pooled connection stays usable after HEAD.
    for _ in 0..3 {
        let r = get(&agent, &proxy.url("/big?n=10"));
        assert_eq!(r.body, b"zzzzzzzzzz");
    }
    let stats = proxy.handle.stats();
    assert_eq!(stats.backends[0].connects, 1, "{stats:?}");
    assert_eq!(stats.backends[0].reused, 3);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    let proxy = TestProxy::start(&rt, builder(&[&bs[0], &bs[1]]));
    let mut req = String::new();
    for i in 0..6 {
        req.push_str(&format!("GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    req.push_str("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = exchange(proxy.addr, req.as_bytes());
    let mut pos = 0;
    for i in 0..6 {
        let needle = format!("b{} /p{i}\n", i % 2);
        let at = out[pos..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{needle:?} in {out}"));
        pos += at;
    }
    assert!(out.ends_with("/last\n"), "{out}");
}

/// How long the slow backends below pause between the first part of a body and
/// the rest.
const PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// A backend that answers every request with `head` and `first`, then pauses for
/// [`PAUSE`], then sends `rest` (and closes when `close`).
fn pausing_backend(
    rt: &tokio::runtime::Runtime,
    head: &'static str,
    first: &'static str,
    rest: &'static str,
    close: bool,
) -> ScriptBackend {
    ScriptBackend::start(rt, move |mut s, _| async move {
        use tokio::io::AsyncWriteExt;
        let mut buf = Vec::new();
        while next_head(&mut s, &mut buf).await.is_some() {
            let now = format!("{head}{first}");
            if s.write_all(now.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(PAUSE).await;
            if s.write_all(rest.as_bytes()).await.is_err() {
                return;
            }
            if close {
                return;
            }
        }
    })
}

/// Sends one GET through the proxy and returns how long the first part of the
/// body (`first`) took to arrive, after checking that the whole body follows.
fn time_to_first_part(proxy: &TestProxy, http10: bool, first: &str, end: &str) -> std::time::Duration {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
    let req: &[u8] = if http10 {
        b"GET /events HTTP/1.0\r\n\r\n"
    } else {
        b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n"
    };
    let sent = std::time::Instant::now();
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, first.as_bytes());
    let took = sent.elapsed();
    read_until(&mut s, &mut buf, end.as_bytes());
    took
}

/// The driver used to hold streamed body bytes until 32 KiB had gathered or the
/// body ended: a server-sent event or a long-poll answer waited for the next.
#[test]
fn a_chunked_body_is_not_held_back_until_32k_or_its_end() {
    let rt = runtime();
    let b = pausing_backend(
        &rt,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        "c\r\ndata: first\n\r\n",
        "b\r\ndata: rest\n\r\n0\r\n\r\n",
        false,
    );
    let proxy = TestProxy::start(&rt, Proxy::builder().backend(b.addr, 1));
    let took = time_to_first_part(&proxy, false, "data: first\n", "\r\n0\r\n\r\n");
    assert!(took < PAUSE / 2, "the first chunk took {took:?}");
}

#[test]
fn a_length_delimited_body_is_not_held_back_until_32k_or_its_end() {
    let rt = runtime();
    let b = pausing_backend(
        &rt,
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
        "first",
        "rest",
        false,
    );
    let proxy = TestProxy::start(&rt, Proxy::builder().backend(b.addr, 1));
    let took = time_to_first_part(&proxy, false, "first", "firstrest");
    assert!(took < PAUSE / 2, "the first bytes took {took:?}");
}

#[test]
fn a_close_delimited_body_is_not_held_back_until_32k_or_its_end() {
    let rt = runtime();
    let b = pausing_backend(&rt, "HTTP/1.1 200 OK\r\n\r\n", "first", "rest", true);
    let proxy = TestProxy::start(&rt, Proxy::builder().backend(b.addr, 1));
    // Re-chunked for an HTTP/1.1 client, close-delimited again for HTTP/1.0.
    let took = time_to_first_part(&proxy, false, "first", "\r\n0\r\n\r\n");
    assert!(took < PAUSE / 2, "the first bytes took {took:?} (HTTP/1.1)");
    let took = time_to_first_part(&proxy, true, "first", "firstrest");
    assert!(took < PAUSE / 2, "the first bytes took {took:?} (HTTP/1.0)");
}
