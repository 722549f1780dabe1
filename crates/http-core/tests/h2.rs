//! The HTTP/2 driver over real sockets on 127.0.0.1: h2c with prior knowledge
//! beside HTTP/1.1 on one listener, served to clients written elsewhere
//! (curl, nghttp2's h2load, Python's h2 at the frame level, the h2 crate's
//! client), the smuggling vectors of an h2-to-h1 path and the known attacks,
//! each with its exact outcome and another client served meanwhile.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_core::{
    AccessRecord, Body, H2Limits, Limits, Method, Request, Response, Server, ServerHandle, Service, Version,
};
use serde_json::Value;
use test_support::{curl, python_script, run_within, runtime};

/// A service whose behaviour is chosen by the path; it notes every target it
/// is called with (for `/probe/` ones, once their body has been read whole)
/// and every answer it is told of.
#[derive(Default)]
struct TestService {
    seen: Mutex<Vec<String>>,
    answered: Mutex<Vec<(u16, Option<Version>)>>,
    slow_started: AtomicUsize,
    slow_cancelled: AtomicUsize,
}

/// Counts a `/slow` call dropped before it answered.
struct CancelGuard<'a>(&'a AtomicUsize, bool);
impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

const BIG: usize = 1 << 20;

fn big_body() -> Bytes {
    Bytes::from((0..BIG).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

impl Service for TestService {
    async fn call(&self, mut req: Request<'_>) -> Response {
        if req.head.path().starts_with("/probe/") {
            // A probe's request counts as seen only once its body has been
            // read whole: what a proxy would forward.
            return match req.body.to_bytes(4 << 20).await {
                Ok(_) => {
                    self.seen.lock().unwrap().push(req.head.target().to_owned());
                    Response::text(200, "probe served\n")
                }
                Err(e) => Response::text(500, format!("{e}\n")),
            };
        }
        self.seen.lock().unwrap().push(req.head.target().to_owned());
        match req.head.path() {
            "/info" => {
                let mut text = format!(
                    "version={} method={} host={} target={} body={:?}\n",
                    req.head.version().as_str(),
                    req.head.method_str(),
                    String::from_utf8_lossy(req.head.host().unwrap_or_default()),
                    req.head.target(),
                    req.head.body(),
                );
                for (n, v) in req.head.headers() {
                    text.push_str(&format!("{n}: {}\n", String::from_utf8_lossy(v)));
                }
                Response::text(200, text)
            }
            "/echo" => {
                let chunked = req.body.is_chunked();
                match req.body.to_bytes(4 << 20).await {
                    Ok(b) => Response::new(200)
                        .header("X-Len", b.len().to_string())
                        .header("X-Chunked", if chunked { "yes" } else { "no" })
                        .body(b),
                    Err(_) => Response::text(500, "body failed\n"),
                }
            }
            "/stream" => Response::new(200).body(Body::Stream {
                len: None,
                reader: Box::new(std::io::Cursor::new(b"streamed-body;".repeat(5000))),
            }),
            "/stream-len" => Response::new(200).body(Body::Stream {
                len: Some(70_000),
                reader: Box::new(std::io::Cursor::new(b"streamed-body;".repeat(5000))),
            }),
            // 64 MiB made as it is read: nothing is held unless the
            // server queues it.
            "/endless" => Response::new(200).body(Body::Stream {
                len: Some(64 << 20),
                reader: Box::new(tokio::io::AsyncReadExt::take(tokio::io::repeat(b'e'), 64 << 20)),
            }),
            "/short-stream" => Response::new(200).body(Body::Stream {
                len: Some(100),
                reader: Box::new(std::io::Cursor::new(b"only ten!!".to_vec())),
            }),
            "/big" => Response::new(200).body(big_body()),
            "/head-len" if req.head.method() == Method::Head => Response::new(200).body(Body::Length(1234)),
            "/no-content" => Response::new(204),
            "/headers" => Response::new(200)
                .header("X-One", "1")
                .header("Keep-Alive", "timeout=5")
                .header("Upgrade", "h2c")
                .header("Set-Cookie", "a=1")
                .header("Set-Cookie", "b=2")
                .body("headers\n"),
            "/slow" => {
                self.slow_started.fetch_add(1, Ordering::SeqCst);
                let mut guard = CancelGuard(&self.slow_cancelled, false);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                guard.1 = true;
                Response::text(200, "slow done\n")
            }
            _ => Response::text(200, format!("ok {}\n", req.head.target())),
        }
    }

    fn on_response(&self, record: &AccessRecord<'_>) {
        self.answered
            .lock()
            .unwrap()
            .push((record.status, record.head.map(|h| h.version())));
    }
}

struct TestServer {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    service: Arc<TestService>,
    handle: Option<ServerHandle>,
}

impl TestServer {
    fn start(h2c: bool) -> TestServer {
        Self::with(
            h2c,
            Limits {
                write_timeout: Duration::from_secs(2),
                max_body_len: 2 << 20,
                ..Limits::default()
            },
        )
    }

    fn with(h2c: bool, limits: Limits) -> TestServer {
        let rt = runtime();
        let service = Arc::new(TestService::default());
        let server = Server::from_arc(service.clone())
            .limits(limits)
            .h2c(h2c)
            .h2_limits(H2Limits::default())
            .shutdown_timeout(Duration::from_secs(5));
        let handle = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            server.spawn(listener).unwrap()
        });
        TestServer {
            addr: handle.local_addr(),
            rt,
            service,
            handle: Some(handle),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self, target: &str) -> bool {
        self.service.seen.lock().unwrap().iter().any(|t| t == target)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

/// curl over h2c with prior knowledge; `None` (skipped, reason printed) without curl.
fn curl_h2(args: &[&str]) -> Option<(String, String)> {
    let mut all = vec!["--http2-prior-knowledge", "-D", "/dev/stderr"];
    all.extend_from_slice(args);
    let out = curl(&all)?;
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    Some((
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[test]
fn curl_prior_knowledge_gets_every_kind_of_body() {
    let s = TestServer::start(true);
    let Some((head, body)) = curl_h2(&[&s.url("/info?x=1")]) else {
        return;
    };
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(head.contains("content-length: "), "{head}");
    assert!(head.contains("date: "), "{head}");
    let first = body.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "version=HTTP/2.0 method=GET host={} target=/info?x=1 body=Empty",
            s.addr
        )
    );
    // :authority became the one Host line, in the HTTP/1.1 form.
    assert!(body.contains(&format!("host: {}\n", s.addr)), "{body}");

    let (head, body) = curl_h2(&["-I", &s.url("/head-len")]).unwrap();
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(head.contains("content-length: 1234"), "{head}");
    assert!(
        body.starts_with("HTTP/2 200"),
        "HEAD prints the head on stdout: {body}"
    );

    let (head, body) = curl_h2(&[&s.url("/stream")]).unwrap();
    assert!(
        head.starts_with("HTTP/2 200") && !head.contains("content-length"),
        "{head}"
    );
    assert_eq!(body, "streamed-body;".repeat(5000));

    let (head, body) = curl_h2(&[&s.url("/stream-len")]).unwrap();
    assert!(head.contains("content-length: 70000"), "{head}");
    assert_eq!(body.len(), 70_000);

    let (head, body) = curl_h2(&[&s.url("/no-content")]).unwrap();
    assert!(
        head.starts_with("HTTP/2 204") && !head.contains("content-length"),
        "{head}"
    );
    assert!(body.is_empty());

    // Connection-specific fields never go out over HTTP/2; repeated ones do.
    let (head, _) = curl_h2(&[&s.url("/headers")]).unwrap();
    assert!(head.contains("x-one: 1"), "{head}");
    assert!(
        !head.contains("keep-alive") && !head.contains("upgrade"),
        "{head}"
    );
    assert!(
        head.contains("set-cookie: a=1") && head.contains("set-cookie: b=2"),
        "{head}"
    );

    // A 1 MiB body in memory, through the flow-control windows, intact.
    let out = curl(&["--http2-prior-knowledge", "-o", "-", &s.url("/big")]).unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, big_body());

    // A body with content-length, echoed.
    let file = std::env::temp_dir().join(format!("h2-upload-{}", std::process::id()));
    std::fs::write(&file, vec![b'u'; 300_000]).unwrap();
    let at_file = format!("@{}", file.display());
    let (head, body) = curl_h2(&["--data-binary", &at_file, &s.url("/echo")]).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        head.contains("x-len: 300000") && head.contains("x-chunked: no"),
        "{head}"
    );
    assert_eq!(body.len(), 300_000);

    // Each answer was told to the service with the protocol it came on.
    let answered = s.service.answered.lock().unwrap().clone();
    assert!(answered.len() >= 8, "{answered:?}");
    assert!(
        answered.iter().all(|(_, v)| *v == Some(Version::Http2)),
        "{answered:?}"
    );
}

#[test]
fn http11_is_still_served_on_an_h2c_listener_and_the_preface_is_505_without_it() {
    let s = TestServer::start(true);
    let r = test_support::get(&test_support::agent(), &s.url("/info"));
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("version=HTTP/1.1 "), "{}", r.text());

    let plain = TestServer::start(false);
    let reply = test_support::exchange(plain.addr, http_core::H2_PREFACE);
    assert!(reply.starts_with("HTTP/1.1 505 "), "{reply}");
    // curl with prior knowledge cannot talk to it.
    if let Some(out) = curl(&["--http2-prior-knowledge", &plain.url("/")]) {
        assert!(!out.status.success() || !String::from_utf8_lossy(&out.stdout).starts_with("ok"));
    }
}

#[test]
fn a_preface_in_pieces_and_a_later_one() {
    use std::io::{Read, Write};
    let s = TestServer::start(true);
    // The preface split over writes still selects HTTP/2: the server answers
    // with its SETTINGS frame (type 4 on stream 0).
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&http_core::H2_PREFACE[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(&http_core::H2_PREFACE[10..]).unwrap();
    let mut frame = [0u8; 9];
    c.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 4, "a SETTINGS frame first: {frame:?}");
    // After an HTTP/1.1 request the preface is just a bad request line.
    let mut req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    req.extend_from_slice(http_core::H2_PREFACE);
    let reply = test_support::exchange(s.addr, &req);
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(reply.contains("HTTP/1.1 505 "), "{reply}");
}

#[test]
fn many_streams_over_few_connections_with_h2load() {
    let s = TestServer::start(true);
    let out = run_within(
        Command::new("h2load").args(["-n", "200", "-c", "2", "-m", "10", &s.url("/info")]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
    assert!(text.contains("status codes: 200 2xx"), "{text}");
    // nghttp: several URIs over one connection.
    let out = run_within(
        Command::new("nghttp").args(["-n", "-s", &s.url("/big"), &s.url("/stream"), &s.url("/info")]),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" 200 ").count(), 3, "{text}");
}

/// Runs the Python probe `scenario` against `addr`: its JSON verdict.
/// `None` (skipped, reason printed) when python3 or its h2 module is missing.
fn probe(addr: SocketAddr, scenario: &str, path: &str, extra: &[&str]) -> Option<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_probe.py");
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let mut args = vec![ip.as_str(), port.as_str(), scenario, path];
    args.extend_from_slice(extra);
    let out = python_script(
        script,
        &["h2", "hpack", "hyperframe"],
        &args,
        Duration::from_secs(30),
    )?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{scenario}: {e}: {out:?}"));
    Some(v)
}

/// The outcome of a probe as one short string: `rst:1`, `goaway:11`, `status:400`.
fn verdict(v: &Value) -> String {
    match v["outcome"].as_str().unwrap_or("?") {
        "rst" | "goaway" => format!("{}:{}", v["outcome"].as_str().unwrap(), v["code"]),
        "status" => format!("status:{}", v["status"]),
        other => other.to_string(),
    }
}

const PROTOCOL_ERROR: u32 = 1;
const CANCEL: u32 = 8;
const ENHANCE_YOUR_CALM: u32 = 11;

/// Each smuggling vector of an HTTP/2 request bound for an HTTP/1.1 path, with
/// the exact answer and the request never reaching the service; the rows a
/// stream error covers leave the connection serving.
#[test]
fn smuggling_vectors_are_refused_with_their_exact_outcome() {
    let s = TestServer::start(true);
    let rst = format!("rst:{PROTOCOL_ERROR}");
    let rows: &[(&str, &str)] = &[
        // The body is held to its content-length (RFC 9113 §8.1.1).
        ("cl_more", &rst),
        ("cl_less", &rst),
        ("cl_zero_with_data", &rst),
        // A field RFC 9113 §8.2.1 does not allow: the request is
        // malformed, a stream error (§8.1.1); the connection goes on.
        ("cr_in_value", &rst),
        ("lf_in_value", &rst),
        ("nul_in_value", &rst),
        ("uppercase_name", &rst),
        ("colon_in_name", &rst),
        // Connection-specific fields, te, pseudo-header order: stream errors.
        ("transfer_encoding", &rst),
        ("connection", &rst),
        ("te_gzip", &rst),
        ("pseudo_after_regular", &rst),
        ("duplicate_path", &rst),
        ("missing_method", &rst),
        // Ours: RFC 9113 §8.3.1 and §8.2.1.
        ("host_mismatch", &rst),
        ("space_around_value", &rst),
        // The HTTP/1.1 rule and its status.
        ("body_too_large", "status:413"),
    ];
    for (scenario, want) in rows {
        let path = format!("/probe/{scenario}");
        let Some(v) = probe(s.addr, scenario, &path, &[]) else {
            return;
        };
        assert_eq!(verdict(&v), *want, "{scenario}: {v}");
        assert!(!s.seen(&path), "{scenario}: the service was called");
    }
    // The server kept serving throughout.
    let v = probe(s.addr, "get", "/after", &[]).unwrap();
    assert_eq!(verdict(&v), "status:200", "{v}");
}

/// Runs `attack` while another client makes requests; returns the attack's
/// verdict after checking that every one of the others was answered.
fn under_attack(s: &TestServer, scenario: &str, path: &str, extra: &[&str]) -> Option<Value> {
    let addr = s.addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut served = 0;
            while !stop.load(Ordering::SeqCst) {
                let v = probe(addr, "get", "/bystander", &[])?;
                assert_eq!(verdict(&v), "status:200", "a bystander: {v}");
                served += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(served)
        })
    };
    let v = probe(addr, scenario, path, extra);
    stop.store(true, Ordering::SeqCst);
    let served = other.join().unwrap();
    if let Some(n) = served {
        assert!(n >= 1, "{scenario}: no bystander request finished");
    }
    v
}

#[test]
fn rapid_reset_is_stopped_and_reset_calls_are_cancelled() {
    let s = TestServer::start(true);
    let rss_before = test_support::rss_bytes(None);
    let Some(v) = under_attack(&s, "rapid_reset", "/slow", &[]) else {
        return;
    };
    // 2000 streams opened and reset at once: GOAWAY ENHANCE_YOUR_CALM.
    assert_eq!(verdict(&v), format!("goaway:{ENHANCE_YOUR_CALM}"), "{v}");
    // Few service calls started, and every one was cancelled with its stream.
    let started = s.service.slow_started.load(Ordering::SeqCst);
    assert!(started <= 200, "{started} calls for 2000 reset streams");
    test_support::wait_for(Duration::from_secs(5), "the calls to be cancelled", || {
        s.service.slow_cancelled.load(Ordering::SeqCst) == started
    });
    let grown = test_support::rss_bytes(None).saturating_sub(rss_before);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
}

#[test]
fn continuation_flood_is_a_connection_error() {
    let s = TestServer::start(true);
    let Some(v) = under_attack(&s, "continuation_flood", "/probe/flood", &[]) else {
        return;
    };
    assert_eq!(verdict(&v), format!("goaway:{ENHANCE_YOUR_CALM}"), "{v}");
    assert!(!s.seen("/probe/flood"));
}

#[test]
fn hpack_bomb_is_refused_before_it_grows() {
    let s = TestServer::start(true);
    let rss_before = test_support::rss_bytes(None);
    // 16 MB of header list from a 4 KB block: a connection error.
    let Some(v) = under_attack(&s, "hpack_bomb", "/probe/bomb", &[]) else {
        return;
    };
    assert_eq!(verdict(&v), format!("goaway:{ENHANCE_YOUR_CALM}"), "{v}");
    // Past the header list size (32 KiB) but not absurdly: 431.
    let v = probe(s.addr, "hpack_oversize", "/probe/oversize", &[]).unwrap();
    assert_eq!(verdict(&v), "status:431", "{v}");
    assert!(!s.seen("/probe/bomb") && !s.seen("/probe/oversize"));
    let grown = test_support::rss_bytes(None).saturating_sub(rss_before);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
}

/// SETTINGS or PING frames sent without ever reading the acknowledgements:
/// the server answers one at a time, stops reading once its answers back up,
/// and closes the connection after the write timeout (2 s here).
fn flood(scenario: &str) {
    let s = TestServer::start(true);
    let rss_before = test_support::rss_bytes(None);
    let started = Instant::now();
    let Some(v) = under_attack(&s, scenario, "/", &["8"]) else {
        return;
    };
    assert_eq!(v["outcome"], "closed", "{scenario}: {v}");
    assert_eq!(
        v["blocked"], true,
        "{scenario}: the server never stopped reading: {v}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let grown = test_support::rss_bytes(None).saturating_sub(rss_before);
    assert!(grown < 64 << 20, "{scenario}: RSS grew by {grown} bytes");
}

#[test]
fn settings_flood_without_reading_is_bounded_and_closed() {
    flood("settings_flood");
}

#[test]
fn ping_flood_without_reading_is_bounded_and_closed() {
    flood("ping_flood");
}

#[test]
fn a_peer_that_never_opens_its_window_gets_the_stream_reset() {
    let s = TestServer::start(true);
    let Some(v) = under_attack(&s, "zero_window", "/big", &["8"]) else {
        return;
    };
    // The head went out, then no byte of body could: reset after the write
    // timeout (2 s here).
    assert_eq!(verdict(&v), format!("rst:{CANCEL}"), "{v}");
    assert_eq!(v["status"], 200, "{v}");
}

/// A peer that opens its windows as wide as HTTP/2 allows (2^31 - 1 on
/// every stream and the connection) and asks for 100 streamed bodies of 64
/// MiB, then never reads: the frames queued for it stay within the
/// connection's send buffer (64 KiB, `H2Limits::max_send_buffer`; the bodies
/// are read from their source only as frames leave), not the 12.5 TiB its
/// windows allow; others are served meanwhile.
#[test]
fn a_peer_that_opens_its_windows_and_never_reads_holds_the_send_buffer() {
    let s = TestServer::start(true);
    let rss_before = test_support::rss_bytes(None);
    let Some(v) = under_attack(&s, "open_windows_never_read", "/endless", &["3"]) else {
        return;
    };
    assert_eq!(v["outcome"], "closed", "{v}");
    let grown = test_support::rss_bytes(None).saturating_sub(rss_before);
    assert!(grown < 32 << 20, "RSS grew by {grown} bytes");
}

/// The h2 crate's client (not ours): a body without content-length arrives
/// as the HTTP/1.1 form's chunked body, and the body limit holds (413).
#[test]
fn bodies_without_length_and_over_the_limit() {
    let s = TestServer::start(true);
    s.rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);

        let post = |path: &str| {
            http::Request::post(format!("http://{}{path}", s.addr))
                .body(())
                .unwrap()
        };
        let (resp, mut body) = send.send_request(post("/echo"), false).unwrap();
        for _ in 0..10 {
            body.send_data(Bytes::from(vec![b'c'; 10_000]), false).unwrap();
        }
        body.send_data(Bytes::new(), true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-len"], "100000");
        assert_eq!(resp.headers()["x-chunked"], "yes");

        // The service reads and the limit (2 MiB here) stops it: 413.
        let (resp, mut body) = send.send_request(post("/echo"), false).unwrap();
        let pump = tokio::spawn(async move {
            for _ in 0..300 {
                body.reserve_capacity(16_384);
                let Some(Ok(_)) = std::future::poll_fn(|cx| body.poll_capacity(cx)).await else {
                    break;
                };
                if body.send_data(Bytes::from(vec![b'd'; 16_384]), false).is_err() {
                    break;
                }
            }
        });
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 413);
        pump.abort();

        // The connection still serves.
        let get = http::Request::get(format!("http://{}/info", s.addr))
            .body(())
            .unwrap();
        let (resp, _) = send.send_request(get, true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
    });
}

/// A stream whose body source ends before its length is reset, the
/// connection goes on.
#[test]
fn a_short_stream_resets_only_its_stream() {
    let s = TestServer::start(true);
    s.rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let get = |path: &str| {
            http::Request::get(format!("http://{}{path}", s.addr))
                .body(())
                .unwrap()
        };
        let (resp, _) = send.send_request(get("/short-stream"), true).unwrap();
        // The reset may overtake the head or come after some of the body.
        let failure = match resp.await {
            Err(e) => e,
            Ok(resp) => {
                let mut body = resp.into_body();
                loop {
                    match body.data().await {
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => break e,
                        None => panic!("the body ended as if whole"),
                    }
                }
            }
        };
        assert_eq!(failure.reason(), Some(h2::Reason::INTERNAL_ERROR), "{failure}");
        let (resp, _) = send.send_request(get("/info"), true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
    });
}

/// A connection with no open stream for the keep-alive timeout (1 s here)
/// gets GOAWAY NO_ERROR.
#[test]
fn an_idle_connection_gets_goaway_after_the_keep_alive_timeout() {
    let s = TestServer::with(
        true,
        Limits {
            keep_alive_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
    );
    let Some(v) = probe(s.addr, "idle", "/info", &[]) else {
        return;
    };
    assert_eq!(verdict(&v["first"]), "status:200", "{v}");
    assert_eq!(verdict(&v), "goaway:0", "{v}");
    let idle = v["idle_seconds"].as_f64().unwrap();
    assert!((0.5..8.0).contains(&idle), "{v}");
}

/// Shutdown: GOAWAY, the stream in flight finishes, then the connection closes.
#[test]
fn graceful_shutdown_lets_streams_in_flight_finish() {
    let mut s = TestServer::start(true);
    let url = s.url("/slow");
    let client = std::thread::spawn(move || curl_h2(&[&url]));
    test_support::wait_for(Duration::from_secs(5), "the slow call", || {
        s.service.slow_started.load(Ordering::SeqCst) == 1
    });
    let handle = s.handle.take().unwrap();
    let t = Instant::now();
    s.rt.block_on(handle.shutdown());
    assert!(t.elapsed() < Duration::from_secs(5));
    if let Some((head, body)) = client.join().unwrap() {
        assert!(head.starts_with("HTTP/2 200"), "{head}");
        assert_eq!(body, "slow done\n");
    }
    assert_eq!(s.service.slow_cancelled.load(Ordering::SeqCst), 0);
}

/// A server-side TCP stream that counts the writes reaching the socket.
struct CountedTcp {
    inner: tokio::net::TcpStream,
    writes: Arc<AtomicUsize>,
}

impl tokio::io::AsyncRead for CountedTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let p = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(p, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        p
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl http_core::Io for CountedTcp {}

/// Answers every request with 2 000 bytes held in memory.
struct TwoKilobytes;

impl Service for TwoKilobytes {
    async fn call(&self, _req: Request<'_>) -> Response {
        Response::new(200).body(Body::Full(Bytes::from(vec![b'x'; 2000])))
    }
}

/// Ten requests sent together on one connection are answered together: a
/// turn's answers leave in one write (the requests may arrive over a few
/// reads, so a few turns), not one write per answer; every answer arrives
/// whole, and a single answer afterwards still goes out at once.
#[test]
fn answers_finished_together_leave_together() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        let server = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            let io = CountedTcp {
                inner: tcp,
                writes: counted,
            };
            http_core::serve_h2_connection(
                io,
                Some(peer),
                Arc::new(TwoKilobytes),
                Arc::new(Limits::default()),
                H2Limits::default(),
                http_core::ShutdownSignal::never(),
            )
            .await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let get = |send: &mut h2::client::SendRequest<Bytes>| {
            let req = http::Request::get(format!("http://{addr}/f")).body(()).unwrap();
            send.send_request(req, true).unwrap().0
        };
        async fn whole(resp: h2::client::ResponseFuture) -> (u16, usize) {
            let resp = resp.await.unwrap();
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut n = 0;
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                n += chunk.len();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            (status, n)
        }
        let mut send = send.ready().await.unwrap();
        // The settings exchange and a first answer.
        assert_eq!(whole(get(&mut send)).await, (200, 2000));
        let before = writes.load(Ordering::SeqCst);
        let pending: Vec<_> = (0..10).map(|_| get(&mut send)).collect();
        for resp in pending {
            assert_eq!(whole(resp).await, (200, 2000));
        }
        let together = writes.load(Ordering::SeqCst) - before;
        assert!(
            (1..=3).contains(&together),
            "ten answers of 2 000 bytes took {together} writes"
        );
        // One answer alone is not held back.
        let before = writes.load(Ordering::SeqCst);
        assert_eq!(whole(get(&mut send)).await, (200, 2000));
        assert!(writes.load(Ordering::SeqCst) > before);
        drop(send);
        server.abort();
    });
}
