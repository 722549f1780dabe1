//! TLS to backends (`https://HOST:PORT`): certificates verified against a
//! test CA, SNI, pooled and resumed sessions, stale pooled connections,
//! health checks, bodies and upgrades through TLS; discovered backends over
//! TLS (`dns:https://`, `srv:https://`, names answered by `dnsmasq`), https
//! backends added through the admin API, and a reload switching a source
//! between plain and TLS. The backends are rustls
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

// ---- Discovered backends over TLS (dns:https://, srv:https://), backends
// added through the admin API, reloads. DNS answers come from `dnsmasq` on a
// loopback port (as in tests/dns_discovery.rs); the backends listen on
// 127.0.0.2–127.0.0.9 (Linux routes all of 127.0.0.0/8 to loopback).

impl TlsBackend {
    /// A backend on `addr` (an IP with port 0 or a given port); `None` when
    /// that cannot be bound.
    fn start_on(
        rt: &Runtime,
        ca: &TestCa,
        name: &str,
        names: &[&str],
        addr: SocketAddr,
    ) -> Option<TlsBackend> {
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).ok()?;
        let addr = listener.local_addr().ok()?;
        Some(Self::serve(
            rt,
            ca,
            name,
            names,
            Limits::default(),
            listener,
            addr,
        ))
    }

    /// Stops it: its port is free when this returns.
    fn stop(mut self, rt: &Runtime) {
        self.task.abort();
        let _ = rt.block_on(&mut self.task);
    }

    fn snis(&self) -> Vec<Option<String>> {
        self.hellos().into_iter().map(|h| h.sni).collect()
    }
}

/// TLS backends on 127.0.0.{octet}, all on one port, each with a certificate
/// for `names[i]` (and named `t{octet}`).
fn tls_backends_on_one_port(
    rt: &Runtime,
    ca: &TestCa,
    octets: &[u8],
    names: &[&str],
) -> (u16, Vec<TlsBackend>) {
    let ip = |o: u8| std::net::IpAddr::from([127, 0, 0, o]);
    for _ in 0..20 {
        let Some(first) = TlsBackend::start_on(
            rt,
            ca,
            &format!("t{}", octets[0]),
            &[names[0]],
            SocketAddr::new(ip(octets[0]), 0),
        ) else {
            continue;
        };
        let port = first.addr.port();
        let mut all = vec![first];
        for (i, &o) in octets.iter().enumerate().skip(1) {
            match TlsBackend::start_on(
                rt,
                ca,
                &format!("t{o}"),
                &[names[i]],
                SocketAddr::new(ip(o), port),
            ) {
                Some(b) => all.push(b),
                None => break,
            }
        }
        if all.len() == octets.len() {
            return (port, all);
        }
    }
    panic!("no port free on every loopback address {octets:?}");
}

fn resolver(dns: &test_support::Dnsmasq) -> rr_proxy::ResolverConfig {
    rr_proxy::ResolverConfig {
        nameserver: Some(dns.addr),
        ttl_min: Duration::from_millis(200),
        ttl_max: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
    }
}

fn dns_source(text: &str, dns: &test_support::Dnsmasq) -> rr_proxy::DnsDiscovery {
    let spec: rr_proxy::BackendSource = text.parse().unwrap();
    rr_proxy::DnsDiscovery::new(&spec, &resolver(dns)).unwrap()
}

/// What each backend's body says it is, over `n` requests.
fn served_by(proxy: &TestProxy, n: usize) -> Vec<String> {
    let agent = agent();
    let mut names: Vec<String> = (0..n)
        .map(|_| {
            let r = get(&agent, &proxy.url("/d"));
            assert_eq!(r.status, 200, "{}", r.text());
            r.text().split(' ').next().unwrap_or_default().to_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn dns_https_speaks_tls_to_every_address_with_the_name_as_sni() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let (port, backends) = tls_backends_on_one_port(&rt, &ca, &[2, 3], &["web.test", "web.test"]);
    let Some(dns) = test_support::Dnsmasq::start("127.0.0.2 web.test\n127.0.0.3 web.test\n", "") else {
        return;
    };
    let check = HealthCheck {
        path: "/health".into(),
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        ..HealthCheck::default()
    };
    let name = format!("dns:https://web.test:{port}");
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .discovery(dns_source(&name, &dns))
            .health_check(check),
    );
    wait_for(TIMEOUT, "the two addresses", || {
        proxy.handle.backends().len() == 2
    });
    assert_eq!(served_by(&proxy, 10), [["t2"; 5], ["t3"; 5]].concat());
    for b in &backends {
        let snis = b.snis();
        assert!(
            !snis.is_empty() && snis.iter().all(|s| s.as_deref() == Some("web.test")),
            "{}: {snis:?}",
            b.addr
        );
    }
    // Health checks go over TLS too, and pass.
    wait_for(TIMEOUT, "health checks over TLS", || {
        backends
            .iter()
            .all(|b| b.seen.health_checks.load(Ordering::SeqCst) > 0)
            && proxy.handle.backends().iter().all(|s| s.health_checks_passed > 0)
    });
    let stats = proxy.handle.stats();
    assert_eq!(stats.discovery[0].name, name, "the source shows its scheme");
    let tls = stats.backend_tls.expect("handshakes counted");
    assert!(tls.full >= 2 && tls.failed == 0, "{tls:?}");
    let json = serde_json::to_string(&stats).unwrap();
    assert!(json.contains(&format!("\"name\":\"{name}\"")), "{json}");
}

#[test]
fn dns_https_refuses_a_certificate_for_another_name() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let (port, backends) = tls_backends_on_one_port(&rt, &ca, &[4], &["other.test"]);
    let Some(dns) = test_support::Dnsmasq::start("127.0.0.4 web.test\n", "") else {
        return;
    };
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .discovery(dns_source(&format!("dns:https://web.test:{port}"), &dns))
            .max_attempts(1),
    );
    wait_for(TIMEOUT, "the address", || proxy.handle.backends().len() == 1);
    let r = get(&agent(), &proxy.url("/"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.text(), "TLS handshake with the backend failed\n");
    let b = proxy.handle.backend(backends[0].addr).unwrap();
    assert_eq!(
        b.last_failure,
        Some(FailureReason::Tls(TlsFailure::NotValidForName))
    );
    assert_eq!(proxy.handle.stats().backend_tls.map(|s| s.failed), Some(1));
    assert_eq!(backends[0].hellos(), [], "no handshake ended");
}

#[test]
fn srv_https_verifies_each_target_by_its_own_name() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let (port_a, a) = tls_backends_on_one_port(&rt, &ca, &[5], &["a.web.test"]);
    let (port_b, b) = tls_backends_on_one_port(&rt, &ca, &[6], &["b.web.test"]);
    let hosts = "127.0.0.5 a.web.test\n127.0.0.6 b.web.test\n";
    let conf = format!(
        "srv-host=_https._tcp.web.test,a.web.test,{port_a},0,1\n\
         srv-host=_https._tcp.web.test,b.web.test,{port_b},0,1\n"
    );
    let Some(dns) = test_support::Dnsmasq::start(hosts, &conf) else {
        return;
    };
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .discovery(dns_source("srv:https://_https._tcp.web.test", &dns)),
    );
    wait_for(TIMEOUT, "the two targets", || proxy.handle.backends().len() == 2);
    assert_eq!(served_by(&proxy, 6), ["t5", "t5", "t5", "t6", "t6", "t6"]);
    assert!(
        a[0].snis().iter().all(|s| s.as_deref() == Some("a.web.test")),
        "{:?}",
        a[0].snis()
    );
    assert!(
        b[0].snis().iter().all(|s| s.as_deref() == Some("b.web.test")),
        "{:?}",
        b[0].snis()
    );
    assert_eq!(
        proxy.handle.stats().discovery[0].name,
        "srv:https://_https._tcp.web.test"
    );
}

#[test]
fn tcp_mode_refuses_discovered_tls_backends() {
    let config = rr_proxy::ResolverConfig {
        nameserver: Some("127.0.0.1:53".parse().unwrap()),
        ..Default::default()
    };
    for text in ["dns:https://web.test:443", "srv:https://_https._tcp.web.test"] {
        let spec: rr_proxy::BackendSource = text.parse().unwrap();
        let source = rr_proxy::DnsDiscovery::new(&spec, &config).unwrap();
        let built = rt_free_build(Proxy::builder().discovery(source).mode(rr_proxy::Mode::Tcp));
        assert!(
            matches!(&built, Err(ProxyError::InvalidConfig(m)) if m.contains("https backends need HTTP mode")),
            "{text}: {built:?}"
        );
    }
}

/// Builds on a runtime (the resolver wants one), the result without the proxy.
fn rt_free_build(b: rr_proxy::ProxyBuilder) -> Result<(), ProxyError> {
    runtime().block_on(async { b.build().map(|_| ()) })
}

/// The admin endpoint on a loopback port, until dropped.
struct Admin {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Admin {
    fn start(rt: &Runtime, proxy: &TestProxy) -> Admin {
        let (listener, addr) = bind(rt);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(rr_proxy::serve_admin(proxy.handle.clone(), listener, async {
            let _ = rx.await;
        }));
        Admin { addr, _stop: tx }
    }

    fn post(&self, path: &str) -> (u16, String) {
        let r = call(
            &agent(),
            "POST",
            &format!("http://{}{path}", self.addr),
            Some(b""),
        )
        .unwrap();
        (r.status, r.text())
    }
}

#[test]
fn https_backends_added_through_the_admin_api_are_verified_and_get_requests() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let plain = TestBackend::start(&rt, "plain");
    let named = TlsBackend::start(&rt, &ca, "named", &["localhost"], Limits::default());
    let by_ip = TlsBackend::start(&rt, &ca, "byip", &["127.0.0.1"], Limits::default());
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder().backend_tls(trust(&ca)).backend(plain.addr, 1),
    );
    let admin = Admin::start(&rt, &proxy);

    // Percent-encoded, by name, with a weight.
    let (status, body) = admin.post(&format!(
        "/backends/https%3A%2F%2Flocalhost%3A{}?weight=2",
        named.addr.port()
    ));
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["addr"].as_str(), v["weight"].as_u64()),
        (Some(&*named.addr.to_string()), Some(2))
    );
    // As written, by IP address.
    let (status, body) = admin.post(&format!("/backends/https://{}", by_ip.addr));
    assert_eq!(status, 201, "{body}");
    assert_eq!(proxy.handle.backends().len(), 3);

    let agent = agent();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..8 {
        let r = get(&agent, &proxy.url("/a"));
        assert_eq!(r.status, 200, "{}", r.text());
        let who = match r.header("X-Backend") {
            Some(b) => b.to_owned(),
            None => r.text().split(' ').next().unwrap_or_default().to_owned(),
        };
        *seen.entry(who).or_default() += 1;
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            ("byip".to_owned(), 2),
            ("named".to_owned(), 4),
            ("plain".to_owned(), 2)
        ]
    );
    assert_eq!(named.snis()[0].as_deref(), Some("localhost"));
    assert_eq!(by_ip.snis()[0], None, "no SNI for an IP address");

    // Bad forms and names that do not resolve: 400, saying why; nothing added.
    for (path, says) in [
        (
            "/backends/https%3A%2F%2Flocalhost".to_owned(),
            "bad https backend",
        ),
        (
            "/backends/https%3A%2F%2Flocalhost%3A0".to_owned(),
            "bad https backend",
        ),
        ("/backends/https%3A%2F%2F%3A443".to_owned(), "bad https backend"),
        (
            "/backends/https%3A%2F%2Flocal%20host%3A443".to_owned(),
            "bad https backend",
        ),
        (
            format!("/backends/https%3A%2F%2Flocalhost%3A{}%3D2", named.addr.port()),
            "give the weight as ?weight=N",
        ),
        (
            "/backends/https%3A%2F%2Fno-such-host.invalid%3A443".to_owned(),
            "cannot resolve backend address",
        ),
    ] {
        let (status, body) = admin.post(&path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    // A duplicate is 409, as for plain backends; plain adds keep working.
    let (status, _) = admin.post(&format!(
        "/backends/https%3A%2F%2Flocalhost%3A{}",
        named.addr.port()
    ));
    assert_eq!(status, 409);
    let plain2 = TestBackend::start(&rt, "plain2");
    assert_eq!(admin.post(&format!("/backends/{}", plain2.addr)).0, 201);
    assert_eq!(proxy.handle.backends().len(), 4);
}

#[test]
fn an_https_backend_added_with_a_wrong_name_gets_502() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let b = TlsBackend::start(&rt, &ca, "w", &["other.example"], Limits::default());
    let plain = TestBackend::start(&rt, "plain");
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend_tls(trust(&ca))
            .backend(plain.addr, 1)
            .max_attempts(1),
    );
    proxy.handle.drain(plain.addr).unwrap();
    let admin = Admin::start(&rt, &proxy);
    let (status, body) = admin.post(&format!("/backends/https%3A%2F%2Flocalhost%3A{}", b.addr.port()));
    assert_eq!(status, 201, "{body}");
    let r = get(&agent(), &proxy.url("/"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        proxy.handle.backend(b.addr).unwrap().last_failure,
        Some(FailureReason::Tls(TlsFailure::NotValidForName))
    );
}

#[test]
fn a_reload_switches_a_dns_source_between_plain_and_tls() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let Some(mut dns) = test_support::Dnsmasq::start("127.0.0.8 web.test\n", "") else {
        return;
    };
    // The same address, first plain, then over TLS, then plain again.
    let plain = (0..20)
        .find_map(|_| TestBackend::start_on(&rt, "plain", "127.0.0.8:0".parse().unwrap()))
        .expect("a port on 127.0.0.8");
    let addr = plain.addr;
    let dns_addr = dns.addr;
    let config = |source: &str| {
        let text = format!(
            "resolver = \"{}\"\ndns_ttl_min = \"200ms\"\ndns_ttl_max = \"1s\"\n\
             [[pool]]\nname = \"web\"\nbackends = [\"{source}\"]\npool_max_idle = 0\nbackend_ca = \"{}\"\n",
            dns_addr,
            ca.ca_pem.display()
        );
        let text = if source.starts_with("dns:https") {
            text
        } else {
            text.replace(&format!("backend_ca = \"{}\"\n", ca.ca_pem.display()), "")
        };
        rr_proxy::ProxyConfig::from_toml_str(&text, "test.toml").unwrap()
    };
    let plain_source = format!("dns:web.test:{}", addr.port());
    let tls_source = format!("dns:https://web.test:{}", addr.port());
    let proxy = TestProxy::start(&rt, Proxy::builder().config(&config(&plain_source)).unwrap());
    let source_has_one = |name: &str| {
        let s = proxy.handle.stats();
        s.discovery.iter().any(|d| d.name == name && d.backends == 1) && s.backends.len() == 1
    };
    wait_for(TIMEOUT, "the plain source", || source_has_one(&plain_source));
    let agent = agent();
    let r = get(&agent, &proxy.url("/p"));
    assert_eq!((r.status, r.header("X-Backend")), (200, Some("plain")));

    let mut plain = plain;
    plain.kill(&rt);
    let tls = TlsBackend::start_on(&rt, &ca, "tls", &["web.test"], addr).expect("the same address");
    // (on the runtime: the new pools' tasks start there)
    rt.block_on(async { proxy.handle.reload(&config(&tls_source)) })
        .unwrap();
    wait_for(TIMEOUT, "the TLS source", || source_has_one(&tls_source));
    let r = get(&agent, &proxy.url("/t"));
    assert_eq!((r.status, r.text().as_str()), (200, "tls /t\n"));
    assert_eq!(tls.snis(), [Some("web.test".to_owned())]);
    assert!(proxy.handle.backend_tls().is_some());
    // Reloaded with the same source while DNS is down: what the source found
    // is carried over, and still spoken to over TLS (a new connection each
    // request: no pooling here).
    dns.kill();
    rt.block_on(async { proxy.handle.reload(&config(&tls_source)) })
        .unwrap();
    let r = get(&agent, &proxy.url("/t2"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            200, "tls /t2
"
        )
    );
    assert_eq!(tls.snis().len(), 2);
    dns.restart();

    // And back: the address is spoken to in plain HTTP again.
    tls.stop(&rt);
    plain.restart(&rt);
    rt.block_on(async { proxy.handle.reload(&config(&plain_source)) })
        .unwrap();
    wait_for(TIMEOUT, "the plain source again", || {
        source_has_one(&plain_source)
    });
    let r = get(&agent, &proxy.url("/p2"));
    assert_eq!((r.status, r.header("X-Backend")), (200, Some("plain")));
    assert_eq!(proxy.handle.stats().reloads.succeeded, 3);
}

/// Trust anchors for https backends added later: a pool's `backend_ca` with
/// no backend over TLS yet (the file has an admin endpoint) is loaded and
/// used; a pool with none loads the system's roots, which do not know the
/// test CA (502, unknown issuer, counted in `backend_tls`).
#[test]
fn admin_added_https_backends_use_the_pools_ca_or_the_system_roots() {
    let rt = runtime();
    let dir = TempDir::new("backend-tls");
    let ca = ca_in(dir.path());
    let plain = TestBackend::start(&rt, "plain");
    let b = TlsBackend::start(&rt, &ca, "tls", &["localhost"], Limits::default());
    let add = format!("/backends/https%3A%2F%2Flocalhost%3A{}", b.addr.port());
    let text = format!(
        "admin = \"127.0.0.1:0\"\n[[pool]]\nname = \"web\"\nbackends = [\"{}\"]\nbackend_ca = \"{}\"\n",
        plain.addr,
        ca.ca_pem.display()
    );
    let config = rr_proxy::ProxyConfig::from_toml_str(&text, "test.toml").unwrap();
    let proxy = TestProxy::start(&rt, Proxy::builder().config(&config).unwrap());
    assert!(proxy.handle.backend_tls().unwrap().trust().contains("ca.pem"));
    let admin = Admin::start(&rt, &proxy);
    let (status, body) = admin.post(&format!("{add}?pool=web"));
    assert_eq!(status, 201, "{body}");
    proxy.handle.drain(plain.addr).unwrap();
    let r = get(&agent(), &proxy.url("/x"));
    assert_eq!((r.status, r.text().as_str()), (200, "tls /x\n"));
    drop(admin);
    drop(proxy);

    // No trust anchors in the pool: the system's roots, loaded at the add.
    let proxy = TestProxy::start(&rt, Proxy::builder().backend(plain.addr, 1).max_attempts(1));
    assert!(proxy.handle.backend_tls().is_none());
    let admin = Admin::start(&rt, &proxy);
    assert_eq!(admin.post(&add).0, 201);
    assert!(proxy
        .handle
        .backend_tls()
        .unwrap()
        .trust()
        .starts_with("system roots"));
    proxy.handle.drain(plain.addr).unwrap();
    let r = get(&agent(), &proxy.url("/x"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        proxy.handle.backend(b.addr).unwrap().last_failure,
        Some(FailureReason::Tls(TlsFailure::UnknownIssuer))
    );
    assert_eq!(proxy.handle.stats().backend_tls.map(|s| s.failed), Some(1));
    // TCP mode refuses it.
    let tcp = TestProxy::start(
        &rt,
        Proxy::builder().backend(plain.addr, 1).mode(rr_proxy::Mode::Tcp),
    );
    let admin = Admin::start(&rt, &tcp);
    let (status, body) = admin.post(&add);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("https backends need HTTP mode"), "{body}");
}
