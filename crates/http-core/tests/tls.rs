//! TLS termination through `Server::tls`, over real sockets on 127.0.0.1,
//! with rustls' own client (written elsewhere) trusting a test CA: SNI
//! choice, ALPN, keep-alive and pipelining, HSTS, handshake timeouts and
//! garbage, plain HTTP on the TLS port, reload, and the load errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_core::net::{CertPair, TlsConfig, TlsError};
use http_core::{Limits, Request, Response, Server, ServerHandle, Service};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use test_support::{read_response, read_to_close, replace_file, TempDir, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Answers with the path and whether the request came over TLS.
struct Echo;

impl Service for Echo {
    async fn call(&self, req: Request<'_>) -> Response {
        Response::text(200, format!("{} tls={}\n", req.head.path(), req.tls))
    }
}

struct Fixture {
    _dir: TempDir,
    ca: TestCa,
    a: CertPair,
    b: CertPair,
}

fn fixture() -> Fixture {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let a = ca.issue(dir.path(), "a", &["a.test", "localhost"], 1);
    let b = ca.issue(dir.path(), "b", &["b.test", "*.wild.test"], 2);
    Fixture {
        a: CertPair::new(a.cert, a.key),
        b: CertPair::new(b.cert, b.key),
        ca,
        _dir: dir,
    }
}

fn client_config(ca: &TestCa, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca.ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn connect(
    addr: SocketAddr,
    ca: &TestCa,
    name: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(client_config(ca, alpn));
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

fn peer_cert(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn cert_der(pair: &CertPair) -> Vec<u8> {
    CertificateDer::pem_file_iter(&pair.cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

async fn start(tls: TlsConfig, limits: Limits) -> ServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::new(Echo).limits(limits).tls(tls).spawn(listener).unwrap()
}

#[tokio::test]
async fn serves_https_with_keep_alive_pipelining_and_hsts() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(&[f.a.clone(), f.b.clone()])
        .unwrap()
        .hsts(Duration::from_secs(600));
    let server = start(tls.clone(), Limits::default()).await;
    let mut s = connect(server.local_addr(), &f.ca, "a.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // Keep-alive: two requests one after the other on the connection.
    for path in ["/one", "/two"] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let r = read_response(&mut s).await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains("\r\nStrict-Transport-Security: max-age=600\r\n"),
            "{r}"
        );
        assert!(r.ends_with(&format!("{path} tls=true\n")), "{r}");
    }
    // Pipelining: two requests in one write, answered in order.
    s.write_all(b"GET /p1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (all, closed) = read_to_close(&mut s).await;
    assert!(closed, "the server closes after the last request");
    let first = all.find("/p1 tls=true\n").expect(&all);
    let second = all.find("/p2 tls=true\n").expect(&all);
    assert!(first < second, "{all}");
    assert_eq!(all.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{all}");
    assert_eq!(tls.stats().handshakes, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn the_certificate_is_chosen_by_sni() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(&[f.a.clone(), f.b.clone()]).unwrap();
    assert_eq!(
        tls.names(),
        vec![
            vec!["a.test".to_owned(), "localhost".to_owned()],
            vec!["b.test".to_owned(), "*.wild.test".to_owned()]
        ]
    );
    let server = start(tls, Limits::default()).await;
    let addr = server.local_addr();
    let (a, b) = (cert_der(&f.a), cert_der(&f.b));
    assert_eq!(peer_cert(&connect(addr, &f.ca, "a.test", &[]).await.unwrap()), a);
    assert_eq!(peer_cert(&connect(addr, &f.ca, "B.TEST", &[]).await.unwrap()), b);
    assert_eq!(
        peer_cert(&connect(addr, &f.ca, "x.wild.test", &[]).await.unwrap()),
        b
    );
    // An unknown name gets the first pair's certificate, which the client then
    // refuses for that name; an IP address sends no SNI at all.
    let unknown = connect(addr, &f.ca, "other.test", &[]).await;
    assert!(unknown.is_err(), "a.test's certificate does not cover other.test");
    let no_sni = connect(addr, &f.ca, "127.0.0.1", &[]).await;
    let e = no_sni.expect_err("the default certificate has no IP address");
    assert!(e.to_string().contains("certificate"), "{e}");
    server.shutdown().await;
}

#[tokio::test]
async fn alpn_h2_is_served_over_http2_and_no_protocol_in_common_is_refused() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(std::slice::from_ref(&f.a))
        .unwrap()
        .hsts(Duration::from_secs(600));
    let server = start(tls.clone(), Limits::default()).await;
    let addr = server.local_addr();
    // h2 first, as browsers offer it: HTTP/2 it is, through the h2 crate's
    // client (written elsewhere), with Request::tls and HSTS as over HTTP/1.1.
    for offer in [&[&b"h2"[..]][..], &[b"h2", b"http/1.1"]] {
        let s = connect(addr, &f.ca, "a.test", offer).await.unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = h2::client::handshake(s).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("https://a.test/over-h2").body(()).unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["strict-transport-security"],
            "max-age=600",
            "{:?}",
            resp.headers()
        );
        let body = resp.into_body().data().await.unwrap().unwrap();
        assert_eq!(&body[..], b"/over-h2 tls=true\n");
    }
    // A client that offers neither: no protocol in common, refused.
    let e = connect(addr, &f.ca, "a.test", &[b"spdy/3.1"])
        .await
        .expect_err("no protocol in common");
    assert!(
        e.to_string().to_lowercase().contains("noapplicationprotocol"),
        "{e}"
    );
    test_support::wait_for(Duration::from_secs(5), "the failure counted", || {
        tls.stats().handshake_failures == 1
    });
    server.shutdown().await;
}

#[tokio::test]
async fn stalled_and_garbage_handshakes_are_closed_without_stopping_others() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(std::slice::from_ref(&f.a))
        .unwrap()
        .handshake_timeout(Duration::from_millis(300));
    let server = start(tls.clone(), Limits::default()).await;
    let addr = server.local_addr();
    // Says nothing: closed after the handshake timeout.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Sends bytes that are not TLS.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8])
        .await
        .unwrap();
    // Plain HTTP on the TLS port.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    // Meanwhile a real client is served.
    let mut ok = connect(addr, &f.ca, "a.test", &[]).await.unwrap();
    ok.write_all(b"GET /fine HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut ok).await.ends_with("/fine tls=true\n"));
    for (what, s) in [
        ("silent", &mut silent),
        ("garbage", &mut garbage),
        ("plain HTTP", &mut plain),
    ] {
        let (got, closed) = read_to_close(s).await;
        assert!(closed, "{what}: the connection was closed");
        assert!(
            !got.contains("HTTP/1.1"),
            "{what}: no HTTP answer over a broken handshake: {got:?}"
        );
    }
    test_support::wait_for(Duration::from_secs(5), "the counters", || {
        let s = tls.stats();
        s.handshake_timeouts == 1 && s.handshake_failures == 2 && s.handshakes == 1
    });
    // The served client is still there.
    ok.write_all(b"GET /again HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut ok).await.ends_with("/again tls=true\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn reload_swaps_certificates_for_new_connections_only() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(std::slice::from_ref(&f.a)).unwrap();
    let server = start(tls.clone(), Limits::default()).await;
    let addr = server.local_addr();
    let old = cert_der(&f.a);
    let mut kept = connect(addr, &f.ca, "a.test", &[]).await.unwrap();
    assert_eq!(peer_cert(&kept), old);

    // A bad new certificate (a key from elsewhere): the old set stays.
    let (cert2, key2) = f.ca.issue_pem(&["a.test"], 7);
    let (_, stray_key) = f.ca.issue_pem(&["a.test"], 8);
    replace_file(&f.a.cert, &cert2);
    replace_file(&f.a.key, &stray_key);
    assert!(matches!(tls.reload(), Err(TlsError::KeyMismatch { .. })));
    assert_eq!(
        peer_cert(&connect(addr, &f.ca, "a.test", &[]).await.unwrap()),
        old
    );
    // Half a file: no certificate in it.
    replace_file(&f.a.key, &key2[..key2.len() / 2]);
    assert!(matches!(tls.reload(), Err(TlsError::NoKey { .. })));
    assert_eq!(
        peer_cert(&connect(addr, &f.ca, "a.test", &[]).await.unwrap()),
        old
    );

    replace_file(&f.a.key, &key2);
    tls.reload().unwrap();
    let new = cert_der(&f.a);
    assert_ne!(new, old);
    assert_eq!(
        peer_cert(&connect(addr, &f.ca, "a.test", &[]).await.unwrap()),
        new
    );
    // The connection made before keeps working, on its own certificate.
    kept.write_all(b"GET /kept HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut kept).await.ends_with("/kept tls=true\n"));
    let s = tls.stats();
    assert_eq!((s.reloads, s.reload_failures), (1, 2));
    server.shutdown().await;
}

#[tokio::test]
async fn changed_files_are_reloaded_by_the_watcher() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(std::slice::from_ref(&f.a)).unwrap();
    let watcher = tokio::spawn(tls.clone().watch_files(Duration::from_millis(100)));
    let server = start(tls.clone(), Limits::default()).await;
    let addr = server.local_addr();
    let (cert2, key2) = f.ca.issue_pem(&["a.test"], 9);
    replace_file(&f.a.key, &key2);
    replace_file(&f.a.cert, &cert2);
    let mut waited = Duration::ZERO;
    while tls.stats().reloads == 0 {
        assert!(
            waited < Duration::from_secs(10),
            "the watcher reloads within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(
        peer_cert(&connect(addr, &f.ca, "a.test", &[]).await.unwrap()),
        cert_der(&f.a)
    );
    watcher.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_tls_connections() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(std::slice::from_ref(&f.a)).unwrap();
    let server = start(tls, Limits::default()).await;
    let mut s = connect(server.local_addr(), &f.ca, "a.test", &[]).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut s).await;
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown does not wait for the idle connection");
    // close_notify, then the end of the stream: a clean end for the client.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn load_errors_name_the_file() {
    let f = fixture();
    let dir = TempDir::new("tls-bad");
    let missing = dir.join("missing.pem");
    let junk = dir.file("junk.pem", "not PEM at all\n");
    let e = TlsConfig::from_pem_files(&[CertPair::new(&missing, &f.a.key)]).unwrap_err();
    assert!(
        matches!(e, TlsError::Read { .. }) && e.to_string().contains("missing.pem"),
        "{e}"
    );
    let e = TlsConfig::from_pem_files(&[CertPair::new(&junk, &f.a.key)]).unwrap_err();
    assert!(
        matches!(e, TlsError::NoCertificate { .. }) && e.to_string().contains("junk.pem"),
        "{e}"
    );
    let e = TlsConfig::from_pem_files(&[CertPair::new(&f.a.cert, &junk)]).unwrap_err();
    assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    // A certificate given as the key: no private key in it.
    let e = TlsConfig::from_pem_files(&[CertPair::new(&f.a.cert, &f.a.cert)]).unwrap_err();
    assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    let e = TlsConfig::from_pem_files(&[CertPair::new(&f.a.cert, &f.b.key)]).unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("b.key") && e.to_string().contains("a.crt"),
        "{e}"
    );
    assert!(matches!(TlsConfig::from_pem_files(&[]), Err(TlsError::NoPairs)));
}

/// Reads a POST's body and answers with its length and a checksum; a GET of
/// `/big?N` is answered with N bytes.
struct Sink;

impl Service for Sink {
    async fn call(&self, mut req: Request<'_>) -> Response {
        if let Some(n) = req.head.query().and_then(|q| q.parse::<usize>().ok()) {
            return Response::text(200, "0123456789abcdef".repeat(n / 16));
        }
        match req.body.to_bytes(8 << 20).await {
            Ok(body) => Response::text(
                200,
                format!(
                    "{} {}
",
                    body.len(),
                    checksum(&body)
                ),
            ),
            Err(e) => Response::text(400, format!("{e}\n")),
        }
    }
}

fn checksum(body: &[u8]) -> u32 {
    body.iter()
        .fold(0u32, |s, &b| s.wrapping_mul(31).wrapping_add(u32::from(b)))
}

async fn start_sink(tls: TlsConfig) -> ServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::new(Sink).tls(tls).spawn(listener).unwrap()
}

/// Records cut anywhere by TCP and requests cut anywhere by records: a
/// 700 kB upload written in odd pieces, many requests pipelined in one write,
/// and a 1 MB answer read slowly, all on one connection.
#[tokio::test]
async fn bodies_and_pipelines_cross_record_and_segment_boundaries() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(std::slice::from_ref(&f.a)).unwrap();
    let server = start_sink(tls.clone()).await;
    let mut s = connect(server.local_addr(), &f.ca, "a.test", &[b"http/1.1"])
        .await
        .unwrap();
    let body: Vec<u8> = (0..700_001u32).map(|i| (i * 7 % 251) as u8).collect();
    s.write_all(
        format!(
            "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // One byte, then pieces that straddle rustls' 16 KiB records.
    let mut rest = &body[..];
    for size in [1usize, 3, 16_383, 16_385, 40_000].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = (*size).min(rest.len());
        s.write_all(&rest[..n]).await.unwrap();
        s.flush().await.unwrap();
        rest = &rest[n..];
    }
    let r = read_response(&mut s).await;
    assert!(
        r.ends_with(&format!("\r\n\r\n{} {}\n", body.len(), checksum(&body))),
        "{r}"
    );

    // 200 pipelined requests in one write: one answer each, in order.
    let mut many = String::new();
    for i in 0..200 {
        many += &format!(
            "POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n{}",
            i.to_string().len(),
            i
        );
    }
    s.write_all(many.as_bytes()).await.unwrap();
    for i in 0..200 {
        let r = read_response(&mut s).await;
        let digits = i.to_string();
        assert!(
            r.ends_with(&format!(
                "\r\n\r\n{} {}\n",
                digits.len(),
                checksum(digits.as_bytes())
            )),
            "{i}: {r}"
        );
    }

    // A 1 MB answer, read 1000 bytes at a time with pauses.
    s.write_all(b"GET /big?1048576 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1000];
    loop {
        let n = s
            .read(&mut chunk)
            .await
            .expect("a clean end: close_notify, then FIN");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        if got.len() % 100_000 < 1000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let text = String::from_utf8(got).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body.len(), 1_048_576);
    assert_eq!(body, "0123456789abcdef".repeat(65_536));
    server.shutdown().await;
}

/// A client that renews its keys mid-connection (a TLS 1.3 KeyUpdate asking
/// for the server's too) goes on being served, and a client that ends its
/// side with close_notify gets its answer and the server's close_notify.
#[tokio::test]
async fn key_updates_and_close_notify_from_the_client() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(std::slice::from_ref(&f.a)).unwrap();
    let server = start_sink(tls.clone()).await;
    let mut s = connect(server.local_addr(), &f.ca, "a.test", &[b"http/1.1"])
        .await
        .unwrap();
    for round in 0..3 {
        s.write_all(b"POST /k HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        let r = read_response(&mut s).await;
        assert!(
            r.ends_with(&format!("\r\n\r\n5 {}\n", checksum(b"hello"))),
            "round {round}: {r}"
        );
        s.get_mut().1.refresh_traffic_keys().unwrap();
    }
    // The request, then close_notify and FIN: the answer still comes, and
    // ends with the server's close_notify (rustls' client reports a cut
    // stream as an error, so a clean end is Ok(0)).
    s.write_all(b"POST /k HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nok")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .await
        .expect("the server's close_notify ends the stream");
    let all = String::from_utf8(all).unwrap();
    assert!(
        all.ends_with(&format!("\r\n\r\n2 {}\n", checksum(b"ok"))),
        "{all}"
    );
    assert_eq!(tls.stats().handshakes, 1);
    assert_eq!(tls.stats().handshake_failures, 0);
    server.shutdown().await;
}

/// `TlsConfig::accept_io`: TLS over a transport that is not TCP (here an
/// in-memory pipe), served by the same driver, counted in the same stats.
#[tokio::test]
async fn tls_over_another_transport_with_accept_io() {
    let f = fixture();
    let tls = TlsConfig::from_pem_files(std::slice::from_ref(&f.a)).unwrap();
    let (client, server) = tokio::io::duplex(4096);
    let stream = tls.accept_io(server).unwrap();
    let served = tokio::spawn(http_core::serve_connection(
        stream,
        None,
        Arc::new(Echo),
        Arc::new(Limits::default()),
        http_core::ShutdownSignal::never(),
    ));
    let connector = tokio_rustls::TlsConnector::from(client_config(&f.ca, &[b"http/1.1"]));
    let mut s = connector
        .connect(ServerName::try_from("a.test").unwrap(), client)
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    s.write_all(b"GET /piped HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .await
        .expect("close_notify, then the end of the pipe");
    let all = String::from_utf8(all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.ends_with("/piped tls=true\n"), "{all}");
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the connection ended")
        .unwrap();
    assert_eq!(tls.stats().handshakes, 1);
    // Garbage on another pipe: a failed handshake, counted, the pipe closed.
    let (mut client, server) = tokio::io::duplex(4096);
    let served = tokio::spawn(http_core::serve_connection(
        tls.accept_io(server).unwrap(),
        None,
        Arc::new(Echo),
        Arc::new(Limits::default()),
        http_core::ShutdownSignal::never(),
    ));
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(
        got.first(),
        Some(&21),
        "a TLS alert record, then the end: {got:?}"
    );
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tls.stats().handshake_failures, 1);
}
