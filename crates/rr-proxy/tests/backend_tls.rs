//! TLS to backends (`https://HOST:PORT`): certificates verified against a
//! test CA, SNI, pooled and resumed sessions, stale pooled connections,
//! health checks, bodies and upgrades through TLS. The backends are rustls
//! servers written here (they record the SNI and the handshake kind of each
//! connection) serving HTTP with http-core's driver; the clients are ureq and
//! raw sockets.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_core::{serve_connection, Io, Limits, Request, Response, Service, ShutdownSignal};
use rr_proxy::{BackendTls, FailureReason, HealthCheck, PoolConfig, Proxy, ProxyError, TlsFailure};
use rustls::HandshakeKind;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use test_support::{head_len, TempDir, TestCa};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::runtime::Runtime;

/// What a TLS backend saw of one connection: the SNI and the handshake kind.
#[derive(Debug, Clone, PartialEq)]
struct Hello {
    sni: Option<String>,
    kind: Option<HandshakeKind>,
}

#[derive(Default)]
struct Seen {
    hellos: Mutex<Vec<Hello>>,
    /// Connections open now (their HTTP served).
    open: AtomicUsize,
    /// Handshakes that failed.
    failed: AtomicUsize,
    health_checks: AtomicUsize,
}

/// One open connection of a backend, until dropped.
struct Open(Arc<Seen>);

impl Open {
    fn new(seen: Arc<Seen>) -> Open {
        seen.open.fetch_add(1, Ordering::SeqCst);
        Open(seen)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A backend speaking HTTP/1.1 over TLS with a certificate for `names`.
struct TlsBackend {
    addr: SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsBackend {
    fn start(rt: &Runtime, ca: &TestCa, name: &str, names: &[&str], limits: Limits) -> TlsBackend {
        let (listener, addr) = bind(rt);
        Self::serve(rt, ca, name, names, limits, listener, addr)
    }

    fn serve(
        rt: &Runtime,
        ca: &TestCa,
        name: &str,
        names: &[&str],
        limits: Limits,
        listener: tokio::net::TcpListener,
        addr: SocketAddr,
    ) -> TlsBackend {
        let (cert_pem, key_pem) = ca.issue_pem(names, 7);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let seen = Arc::new(Seen::default());
        let service = Arc::new(Svc {
            name: name.to_owned(),
            seen: seen.clone(),
        });
        let limits = Arc::new(limits);
        let seen2 = seen.clone();
        let task = rt.spawn(async move {
            // The connections die with this task (the set aborts them when dropped).
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    return;
                };
                while conns.try_join_next().is_some() {}
                let (acceptor, seen, service, limits) =
                    (acceptor.clone(), seen2.clone(), service.clone(), limits.clone());
                conns.spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(t) => t,
                        Err(_) => {
                            seen.failed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    let conn = tls.get_ref().1;
                    seen.hellos.lock().unwrap().push(Hello {
                        sni: conn.server_name().map(str::to_owned),
                        kind: conn.handshake_kind(),
                    });
                    // Counted until the connection is dropped, served to its
                    // end or aborted with the backend.
                    let _open = Open::new(seen);
                    serve_connection(TlsIo(tls), Some(peer), service, limits, ShutdownSignal::never()).await;
                });
            }
        });
        TlsBackend { addr, seen, task }
    }

    fn hellos(&self) -> Vec<Hello> {
        self.seen.hellos.lock().unwrap().clone()
    }
}

/// The backend's service: `/echo` returns the body, `/ws` switches to an
/// echo protocol, `/health` answers ok, anything else names the backend.
struct Svc {
    name: String,
    seen: Arc<Seen>,
}

impl Service for Svc {
    async fn call(&self, mut req: Request<'_>) -> Response {
        let target = req.head.target().to_owned();
        match req.head.path() {
            "/health" => {
                self.seen.health_checks.fetch_add(1, Ordering::SeqCst);
                Response::text(200, "ok\n")
            }
            "/echo" => match req.body.to_bytes(16 << 20).await {
                Ok(b) => Response::new(200).body(Bytes::from(b.to_vec())),
                Err(_) => Response::text(400, "bad body\n"),
            },
            "/ws" => Response::new(101)
                .header("Upgrade", "echo")
                .on_upgrade(|mut up| async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(Ok(n)) = tokio::time::timeout(TIMEOUT, up.read(&mut buf)).await {
                        if n == 0 {
                            break;
                        }
                        let mut out = b"echo:".to_vec();
                        out.extend_from_slice(&buf[..n]);
                        if up.write_all(&out).await.is_err() {
                            break;
                        }
                    }
                }),
            _ => Response::text(200, format!("{} {target}\n", self.name)),
        }
    }
}

/// The server side of a TLS connection as http-core's transport.
struct TlsIo(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Io for TlsIo {
    fn is_tls(&self) -> bool {
        true
    }
}

fn trust(ca: &TestCa) -> BackendTls {
    BackendTls::from_ca_file(&ca.ca_pem).unwrap()
}

fn ca_in(dir: &Path) -> TestCa {
    TestCa::new(dir)
}

#[test]
fn valid_certificate_gets_200_with_sni_and_one_pooled_connection() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let b = TlsBackend::start(&rt, &ca, "tls0", &["localhost"], Limits::default());
    let tls = trust(&ca);
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(tls.clone())
            .https_backend(b.addr, 1, "localhost"),
    );
    let agent = agent();
    for i in 0..3 {
        let r = get(&agent, &proxy.url(&format!("/page{i}")));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), format!("tls0 /page{i}\n"));
        // Time for a TLS 1.3 server's session tickets to arrive on the idle
        // connection: they are not bytes nobody asked for.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        b.hellos(),
        vec![Hello {
            sni: Some("localhost".into()),
            kind: Some(HandshakeKind::Full)
        }],
        "one connection, named localhost"
    );
    let stats = proxy.handle.backend(b.addr).unwrap();
    assert_eq!(
        (stats.connects, stats.reused, stats.failures),
        (1, 2, 0),
        "{stats:?}"
    );
    assert_eq!(tls.stats().full, 1);
    assert!(proxy
        .handle
        .backend_tls()
        .unwrap()
        .trust()
        .starts_with("CA file "));
}

#[test]
fn a_new_connection_resumes_the_session() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let b = TlsBackend::start(&rt, &ca, "tls0", &["localhost"], Limits::default());
    let tls = trust(&ca);
    // No pooling: every request opens a connection.
    let pool = PoolConfig {
        max_idle: 0,
        ..PoolConfig::default()
    };
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(tls.clone())
            .https_backend(b.addr, 1, "localhost")
            .pool(pool),
    );
    let agent = agent();
    for _ in 0..3 {
        assert_eq!(get(&agent, &proxy.url("/")).status, 200);
    }
    let kinds: Vec<_> = b.hellos().into_iter().map(|h| h.kind).collect();
    assert_eq!(
        kinds,
        vec![
            Some(HandshakeKind::Full),
            Some(HandshakeKind::Resumed),
            Some(HandshakeKind::Resumed)
        ]
    );
    let s = tls.stats();
    assert_eq!((s.full, s.resumed, s.failed), (1, 2, 0), "{s:?}");
    assert_eq!(
        proxy.handle.stats().backend_tls,
        Some(s),
        "in /stats and /metrics"
    );
    assert_eq!(proxy.handle.backend(b.addr).unwrap().connects, 3);
}

/// A certificate for another name, one from a CA not trusted (given CA file
/// or the system's roots), a backend that does not speak TLS: 502, and the
/// reason in the backend's accounts (`/stats` last_failure).
#[test]
fn refused_certificates_get_502_with_the_reason() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let other_dir = TempDir::new("backend-tls");
    let other_ca = ca_in(other_dir.path());
    let wrong_name = TlsBackend::start(&rt, &ca, "w", &["other.example"], Limits::default());
    let untrusted = TlsBackend::start(&rt, &other_ca, "u", &["localhost"], Limits::default());
    let plain = TestBackend::start(&rt, "plain");

    let cases: Vec<(&str, rr_proxy::ProxyBuilder, SocketAddr, TlsFailure)> = vec![
        (
            "certificate for another name",
            Proxy::builder()
                .backend_tls(trust(&ca))
                .https_backend(wrong_name.addr, 1, "localhost"),
            wrong_name.addr,
            TlsFailure::NotValidForName,
        ),
        (
            "IP address not in the certificate",
            Proxy::builder()
                .backend_tls(trust(&ca))
                .https_backend(wrong_name.addr, 1, "127.0.0.1"),
            wrong_name.addr,
            TlsFailure::NotValidForName,
        ),
        (
            "CA not the one given",
            Proxy::builder()
                .backend_tls(trust(&ca))
                .https_backend(untrusted.addr, 1, "localhost"),
            untrusted.addr,
            TlsFailure::UnknownIssuer,
        ),
        (
            "test CA not among the system's roots",
            Proxy::builder().https_backend(untrusted.addr, 1, "localhost"),
            untrusted.addr,
            TlsFailure::UnknownIssuer,
        ),
        (
            "backend speaking plain HTTP",
            Proxy::builder()
                .backend_tls(trust(&ca))
                .https_backend(plain.addr, 1, "localhost"),
            plain.addr,
            TlsFailure::NotTls,
        ),
    ];
    let agent = agent();
    for (what, builder, addr, failure) in cases {
        let proxy = TestProxy::start(&rt, builder.max_attempts(1));
        let r = get(&agent, &proxy.url("/"));
        assert_eq!(r.status, 502, "{what}: {}", r.text());
        assert_eq!(r.text(), "TLS handshake with the backend failed\n", "{what}");
        let stats = proxy.handle.backend(addr).unwrap();
        assert_eq!(stats.last_failure, Some(FailureReason::Tls(failure)), "{what}");
        assert_eq!((stats.failures, stats.connects), (1, 0), "{what}: {stats:?}");
        let json = serde_json::to_string(&proxy.handle.stats()).unwrap();
        assert!(
            json.contains(&format!("\"last_failure\":\"TLS: {failure}\"")),
            "{what}: {json}"
        );
        assert_eq!(proxy.handle.backend_tls().unwrap().stats().failed, 1, "{what}");
    }
    assert!(plain.rec.seen().is_empty(), "the plain backend got no request");
    assert_eq!(wrong_name.seen.hellos.lock().unwrap().len(), 0);
}

#[test]
fn an_ip_address_backend_is_verified_by_its_address_without_sni() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let b = TlsBackend::start(&rt, &ca, "ip", &["localhost", "127.0.0.1"], Limits::default());
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .https_backend(b.addr, 1, "127.0.0.1"),
    );
    let r = get(&agent(), &proxy.url("/x"));
    assert_eq!((r.status, r.text().as_str()), (200, "ip /x\n"));
    assert_eq!(b.hellos()[0].sni, None);
}

/// The backend closes idle connections after 200 ms (with close_notify);
/// the pooled connection is found closed before reuse and replaced.
#[test]
fn a_pooled_tls_connection_the_backend_closed_is_replaced() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let limits = Limits {
        keep_alive_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let b = TlsBackend::start(&rt, &ca, "tls0", &["localhost"], limits);
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .https_backend(b.addr, 1, "localhost"),
    );
    let agent = agent();
    for round in 1..=2u64 {
        assert_eq!(get(&agent, &proxy.url("/")).status, 200);
        wait_for(TIMEOUT, "the backend to close its idle connection", || {
            b.seen.open.load(Ordering::SeqCst) == 0
        });
        let stats = proxy.handle.backend(b.addr).unwrap();
        assert_eq!((stats.connects, stats.failures), (round, 0), "{stats:?}");
    }
    let r = get(&agent, &proxy.url("/after"));
    assert_eq!(r.text(), "tls0 /after\n");
    let stats = proxy.handle.backend(b.addr).unwrap();
    // (Replaced before reuse, or, had the close not arrived yet, retried on
    // a new connection: either way not a failure.)
    assert_eq!((stats.connects, stats.failures), (3, 0), "{stats:?}");
}

/// The backend's connections are cut without close_notify (its tasks
/// aborted): the pooled connection is replaced too.
#[test]
fn a_pooled_tls_connection_cut_without_close_notify_is_replaced() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let b = TlsBackend::start(&rt, &ca, "tls0", &["localhost"], Limits::default());
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .https_backend(b.addr, 1, "localhost"),
    );
    let agent = agent();
    assert_eq!(get(&agent, &proxy.url("/")).status, 200);
    assert_eq!(proxy.handle.backend(b.addr).unwrap().idle, 1);
    // A new server on the same port after the old one and its connections died.
    let (addr, seen) = (b.addr, b.seen.clone());
    drop(b);
    wait_for(TIMEOUT, "the old backend's connections to be cut", || {
        seen.open.load(Ordering::SeqCst) == 0
    });
    let listener = rt.block_on(async {
        for _ in 0..100 {
            if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("port {addr} not free again");
    });
    let b = TlsBackend::serve(
        &rt,
        &ca,
        "tls1",
        &["localhost"],
        Limits::default(),
        listener,
        addr,
    );
    let r = get(&agent, &proxy.url("/again"));
    assert_eq!((r.status, r.text().as_str()), (200, "tls1 /again\n"));
    let stats = proxy.handle.backend(addr).unwrap();
    assert_eq!((stats.connects, stats.failures), (2, 0), "{stats:?}");
    assert_eq!(b.hellos().len(), 1);
}

#[test]
fn health_checks_over_tls_mark_a_bad_certificate_down_and_a_good_one_up() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let good = TlsBackend::start(&rt, &ca, "good", &["localhost"], Limits::default());
    let bad = TlsBackend::start(&rt, &ca, "bad", &["other.example"], Limits::default());
    let check = HealthCheck {
        path: "/health".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        rise: 1,
        fall: 1,
        ..HealthCheck::default()
    };
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .https_backend(good.addr, 1, "localhost")
            .https_backend(bad.addr, 1, "localhost")
            .health_check(check),
    );
    wait_for(TIMEOUT, "the bad backend to be marked down", || {
        !proxy.handle.backend(bad.addr).unwrap().healthy
    });
    let bad_stats = proxy.handle.backend(bad.addr).unwrap();
    assert_eq!(
        bad_stats.last_failure,
        Some(FailureReason::Tls(TlsFailure::NotValidForName))
    );
    wait_for(TIMEOUT, "the good backend to pass checks", || {
        proxy.handle.backend(good.addr).unwrap().health_checks_passed >= 2
    });
    let good_stats = proxy.handle.backend(good.addr).unwrap();
    assert!(good_stats.healthy, "{good_stats:?}");
    assert!(good.seen.health_checks.load(Ordering::SeqCst) >= 2);
    // Probes resume sessions too (the same client configuration).
    assert!(good
        .hellos()
        .iter()
        .any(|h| h.kind == Some(HandshakeKind::Resumed)));
    assert!(good
        .hellos()
        .iter()
        .all(|h| h.sni.as_deref() == Some("localhost")));
    let agent = agent();
    for _ in 0..4 {
        let r = get(&agent, &proxy.url("/"));
        assert_eq!((r.status, r.text().as_str()), (200, "good /\n"));
    }
    assert_eq!(bad.seen.health_checks.load(Ordering::SeqCst), 0);
}

#[test]
fn a_post_body_streams_through_tls_both_ways() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let b = TlsBackend::start(&rt, &ca, "tls0", &["localhost"], Limits::default());
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .https_backend(b.addr, 1, "localhost"),
    );
    let body: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let agent = agent();
    for _ in 0..2 {
        let r = call(&agent, "POST", &proxy.url("/echo"), Some(&body)).unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.body == body,
            "the body came back whole ({} bytes)",
            r.body.len()
        );
    }
    let stats = proxy.handle.backend(b.addr).unwrap();
    assert_eq!(stats.connects, 1, "{stats:?}");
    assert_eq!(stats.bytes_sent, 2 * body.len() as u64);
    assert_eq!(stats.bytes_received, 2 * body.len() as u64);
}

#[test]
fn an_upgrade_tunnels_through_a_tls_backend_connection() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let b = TlsBackend::start(&rt, &ca, "tls0", &["localhost"], Limits::default());
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .https_backend(b.addr, 1, "localhost"),
    );
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly")
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"echo:early");
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{text}");
    assert_eq!(&text[head_len(&buf).unwrap()..], "echo:early");
    for msg in ["ping", "hello over tls"] {
        s.write_all(msg.as_bytes()).unwrap();
        let mut got = Vec::new();
        let want = format!("echo:{msg}");
        read_until(&mut s, &mut got, want.as_bytes());
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
    drop(s);
    wait_for(TIMEOUT, "the tunnel to close", || {
        proxy.handle.backend(b.addr).unwrap().active == 0
    });
}

#[test]
fn tcp_mode_and_bad_names_are_refused_at_build() {
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let addr: SocketAddr = "127.0.0.1:9443".parse().unwrap();
    let tcp = Proxy::builder()
        .backend_tls(trust(&ca))
        .https_backend(addr, 1, "localhost")
        .mode(rr_proxy::Mode::Tcp)
        .build();
    assert!(
        matches!(tcp, Err(ProxyError::InvalidConfig(m)) if m.contains("https backends need HTTP mode")),
        "{tcp:?}"
    );
    let bad = Proxy::builder()
        .backend_tls(trust(&ca))
        .https_backend(addr, 1, "not a name")
        .build();
    assert!(
        matches!(&bad, Err(ProxyError::BadServerName(n)) if n == "not a name"),
        "{bad:?}"
    );
    // A CA file without a certificate, or missing.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let e = BackendTls::from_ca_file(&empty).unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let e = BackendTls::from_ca_file(dir.path().join("missing.pem")).unwrap_err();
    assert!(e.to_string().starts_with("cannot read CA file "), "{e}");
}
