//! TLS to backends (`https://HOST:PORT`): the trust anchors and the one rustls
//! client configuration that forwarding and health checks share, the
//! handshake, and what a failed handshake is called.
//!
//! [`BackendTls`] holds rustls' [`ClientConfig`]: TLS 1.2 and 1.3 with rustls'
//! default cipher suites (all with forward secrecy), ALPN `http/1.1` only
//! (the proxy speaks HTTP/1.1 to backends), and an in-memory session cache
//! (TLS 1.3 tickets, TLS 1.2 tickets or session IDs) so that a new
//! connection to a backend resumes the last session instead of doing a full
//! handshake. Certificates are always verified (rustls' WebPKI verifier):
//! against the system's trust store ([`BackendTls::system_roots`], read by
//! the `rustls-native-certs` crate from the platform's store, on Linux
//! `/etc/ssl/certs` or what `SSL_CERT_FILE` / `SSL_CERT_DIR` name), or, when
//! a CA file is given ([`BackendTls::from_ca_file`]), against the
//! certificates in that file alone, as nginx's `proxy_ssl_trusted_certificate`.
//! There is no switch that turns verification off.
//!
//! A backend given by name (`https://web.internal:443`) is sent that name as
//! SNI and its certificate must be valid for it; a backend given by IP
//! (`https://10.0.0.5:443`) is sent no SNI and its certificate must carry
//! that IP address as a subjectAltName.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::Mode;
use crate::hooks::ProxyHooks;
use crate::proxy::ProxyBuilder;
use crate::ProxyError;

/// Servers whose sessions the client cache keeps (rustls keeps a few TLS 1.3
/// tickets per server name).
const SESSION_CACHE: usize = 256;

/// The protocol offered by ALPN: the proxy speaks HTTP/1.1 to backends.
const ALPN: &[u8] = b"http/1.1";

/// Why the trust anchors for backend certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendTlsError {
    /// The CA file could not be read.
    #[error("cannot read CA file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The CA file holds no PEM `CERTIFICATE`.
    #[error("{}: no PEM certificate in the file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in the CA file is not a usable trust anchor.
    #[error("{}: bad CA certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The system's trust store holds no usable certificate.
    #[error("no trusted root certificates found on this system ({0}); name a CA file instead")]
    NoSystemRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Handshakes with backends, proxy-wide.
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    full: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
}

/// Counts of TLS handshakes with backends, proxy-wide (forwarding and health
/// checks alike). In `/stats` as `"backend_tls":{"full":N,"resumed":N,"failed":N}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackendTlsStats {
    /// Full handshakes (a new session).
    pub full: u64,
    /// Handshakes that resumed a cached session.
    pub resumed: u64,
    /// Handshakes that failed (certificate, protocol, connection closed, timed out).
    pub failed: u64,
}

/// The trust anchors and rustls client configuration for `https://` backends:
/// one per proxy, shared by forwarding and health checks (and so is its
/// session cache). Cheap to clone.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("rr-proxy-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let ca = dir.join("missing.pem");
/// use rr_proxy::{BackendTls, Proxy};
///
/// // A CA file that cannot be read is an error that names it.
/// let err = BackendTls::from_ca_file(&ca).unwrap_err();
/// assert!(err.to_string().contains("missing.pem"));
///
/// // With the system's roots (the default for https backends):
/// # if let Ok(tls) = BackendTls::system_roots() {
/// let proxy = Proxy::builder()
///     .backend_tls(tls)
///     .https_backend("127.0.0.1:9443".parse().unwrap(), 1, "localhost")
///     .build()
///     .unwrap();
/// assert!(proxy.handle().backend_tls().unwrap().trust().starts_with("system roots"));
/// # }
/// ```
#[derive(Clone)]
pub struct BackendTls {
    connector: TlsConnector,
    trust: Arc<str>,
    handshakes: Arc<Handshakes>,
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTls").field("trust", &self.trust).finish()
    }
}

impl BackendTls {
    /// Trusts the system's root certificates, read now, once, by the
    /// `rustls-native-certs` crate from the platform's store (on Linux
    /// `/etc/ssl/certs`, or what `SSL_CERT_FILE` / `SSL_CERT_DIR` name).
    /// Certificates it cannot parse are skipped; none at all is an error.
    pub fn system_roots() -> Result<BackendTls, BackendTlsError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = match found.errors.first() {
                Some(e) => e.to_string(),
                None => "the trust store is empty".to_owned(),
            };
            return Err(BackendTlsError::NoSystemRoots(why));
        }
        BackendTls::with_roots(roots, format!("system roots ({added} certificates)"))
    }

    /// Trusts the certificates of a PEM file (a CA bundle) and nothing else.
    pub fn from_ca_file(path: impl AsRef<Path>) -> Result<BackendTls, BackendTlsError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|source| BackendTlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| BackendTlsError::BadCertificate {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| BackendTlsError::BadCertificate {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(BackendTlsError::NoCertificate {
                path: path.to_owned(),
            });
        }
        BackendTls::with_roots(roots, format!("CA file {}", path.display()))
    }

    fn with_roots(roots: RootCertStore, trust: String) -> Result<BackendTls, BackendTlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| BackendTlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.resumption = Resumption::in_memory_sessions(SESSION_CACHE);
        Ok(BackendTls {
            connector: TlsConnector::from(Arc::new(config)),
            trust: trust.into(),
            handshakes: Arc::default(),
        })
    }

    /// What the certificates are verified against, for logs and summaries:
    /// `system roots (N certificates)` or `CA file PATH`.
    pub fn trust(&self) -> &str {
        &self.trust
    }

    /// The same trust anchors and session cache, its handshakes counted
    /// where `before`'s are (a reload's new configuration for a pool: the
    /// counts go on).
    pub(crate) fn counted_as(mut self, before: &BackendTls) -> BackendTls {
        self.handshakes = before.handshakes.clone();
        self
    }

    /// Handshakes so far.
    pub fn stats(&self) -> BackendTlsStats {
        BackendTlsStats {
            full: self.handshakes.full.load(Ordering::Relaxed),
            resumed: self.handshakes.resumed.load(Ordering::Relaxed),
            failed: self.handshakes.failed.load(Ordering::Relaxed),
        }
    }

    /// The target for a backend known as `host` (a DNS name or an IP
    /// address, without brackets or port).
    pub(crate) fn target(&self, host: &str) -> Result<TlsTarget, ProxyError> {
        let name =
            ServerName::try_from(host.to_owned()).map_err(|_| ProxyError::BadServerName(host.to_owned()))?;
        Ok(TlsTarget {
            tls: self.clone(),
            name,
            host: host.into(),
        })
    }
}

/// How to speak TLS to one backend: the shared configuration and the name
/// its certificate must be valid for.
#[derive(Clone)]
pub(crate) struct TlsTarget {
    tls: BackendTls,
    name: ServerName<'static>,
    /// `name` as given (for a reload's new trust anchors, and comparisons).
    host: Arc<str>,
}

impl fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTarget").field("name", &self.name).finish()
    }
}

impl TlsTarget {
    /// The name the certificate is verified against (and the SNI, for a DNS name).
    pub(crate) fn name(&self) -> &ServerName<'static> {
        &self.name
    }

    /// The name (or IP address) as given.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The client handshake on a connected socket. The caller bounds it in time.
    pub(crate) async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, TlsError> {
        match self.tls.connector.connect(self.name.clone(), tcp).await {
            Ok(stream) => {
                let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                let counter = if resumed {
                    &self.tls.handshakes.resumed
                } else {
                    &self.tls.handshakes.full
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(stream)
            }
            Err(e) => {
                self.count_failure();
                Err(TlsError::from_io(e))
            }
        }
    }

    /// Counts a handshake that did not end (timed out).
    pub(crate) fn count_failure(&self) {
        self.tls.handshakes.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A failed handshake: the phrase for the backend's accounts, and rustls'
/// (or the socket's) own words for the log.
#[derive(Debug)]
pub(crate) struct TlsError {
    pub failure: TlsFailure,
    pub detail: String,
}

impl TlsError {
    fn from_io(e: io::Error) -> TlsError {
        let detail = e.to_string();
        let failure = match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => TlsFailure::of(tls),
            // The socket failed or closed (EOF) before the handshake ended.
            None => TlsFailure::Closed,
        };
        TlsError { failure, detail }
    }
}

/// Why a TLS handshake with a backend failed (in
/// [`FailureReason::Tls`](crate::FailureReason::Tls)). Its
/// [`Display`](fmt::Display) is a short phrase; the log's warning line
/// carries rustls' full words (such as the names a certificate is valid for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The certificate is not valid for the name (or IP address) the backend
    /// was given as.
    NotValidForName,
    /// The certificate does not chain to a trusted root (its issuer is not
    /// trusted, or its signature does not verify with the trusted
    /// certificate of its issuer's name).
    UnknownIssuer,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotValidYet,
    /// The certificate is otherwise unusable (bad signature, wrong usage, ...).
    BadCertificate,
    /// The backend refused the handshake with an alert (no common protocol
    /// version or cipher suite, no `http/1.1` by ALPN, ...).
    Refused,
    /// The backend does not speak TLS (what it sent is no TLS record).
    NotTls,
    /// The handshake failed otherwise (a protocol error).
    Protocol,
    /// The connection closed or failed during the handshake.
    Closed,
}

impl TlsFailure {
    /// A one-word code, as the access line's `tls_error` field gives it:
    /// `not-valid-for-name`, `unknown-issuer`, `expired`, `not-valid-yet`,
    /// `bad-certificate`, `refused`, `not-tls`, `protocol` or `closed`.
    pub fn code(self) -> &'static str {
        match self {
            TlsFailure::NotValidForName => "not-valid-for-name",
            TlsFailure::UnknownIssuer => "unknown-issuer",
            TlsFailure::Expired => "expired",
            TlsFailure::NotValidYet => "not-valid-yet",
            TlsFailure::BadCertificate => "bad-certificate",
            TlsFailure::Refused => "refused",
            TlsFailure::NotTls => "not-tls",
            TlsFailure::Protocol => "protocol",
            TlsFailure::Closed => "closed",
        }
    }

    fn of(e: &rustls::Error) -> TlsFailure {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(c) => match c {
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    TlsFailure::NotValidForName
                }
                CertificateError::UnknownIssuer | CertificateError::BadSignature => TlsFailure::UnknownIssuer,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsFailure::Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsFailure::NotValidYet
                }
                _ => TlsFailure::BadCertificate,
            },
            E::AlertReceived(_) | E::PeerIncompatible(_) | E::NoApplicationProtocol => TlsFailure::Refused,
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. } => TlsFailure::NotTls,
            _ => TlsFailure::Protocol,
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFailure::NotValidForName => "certificate not valid for the backend's name",
            TlsFailure::UnknownIssuer => "certificate not issued by a trusted CA",
            TlsFailure::Expired => "certificate expired",
            TlsFailure::NotValidYet => "certificate not valid yet",
            TlsFailure::BadCertificate => "bad certificate",
            TlsFailure::Refused => "backend refused the handshake",
            TlsFailure::NotTls => "backend does not speak TLS",
            TlsFailure::Protocol => "handshake failed",
            TlsFailure::Closed => "connection closed during the handshake",
        })
    }
}

/// What the builder was told about `https://` backends.
#[derive(Debug, Default)]
pub(crate) struct Setup {
    /// The trust anchors given ([`ProxyBuilder::backend_tls`]).
    tls: Option<BackendTls>,
    /// Each https backend's address and the name it was given as.
    names: Vec<(SocketAddr, String)>,
}

impl Setup {
    /// Each https backend's address and the name it was given as.
    pub(crate) fn names(&self) -> Vec<(SocketAddr, String)> {
        self.names.clone()
    }

    /// The configuration https backends use: the one given, or the system's
    /// roots when there are https backends (or discovery sources that speak
    /// TLS, `tls_sources`) and none was given. Refused in TCP mode (which
    /// relays bytes as they come and originates no TLS).
    pub(crate) fn finish(&mut self, mode: Mode, tls_sources: bool) -> Result<Option<BackendTls>, ProxyError> {
        if self.names.is_empty() && !tls_sources {
            return Ok(self.tls.clone());
        }
        if mode == Mode::Tcp {
            return Err(ProxyError::InvalidConfig(
                "https backends need HTTP mode (TCP mode relays bytes as they come)",
            ));
        }
        if self.tls.is_none() {
            let tls = BackendTls::system_roots().map_err(|e| ProxyError::BackendTls(e.to_string()))?;
            self.tls = Some(tls);
        }
        Ok(self.tls.clone())
    }
}

impl<H: ProxyHooks> ProxyBuilder<H> {
    /// Adds a backend spoken to over TLS (`https://HOST:PORT`): `addr` is
    /// where to connect, `host` the name its certificate must be valid for
    /// (a DNS name, also sent as SNI; or an IP address, which the certificate
    /// must carry as a subjectAltName, and no SNI is sent). The certificate is
    /// verified against the [`backend_tls`](Self::backend_tls) trust anchors,
    /// by default the system's roots. HTTP mode only: [`build`](Self::build)
    /// refuses it in TCP mode.
    pub fn https_backend(mut self, addr: SocketAddr, weight: u32, host: &str) -> Self {
        self.upstream_tls.names.push((addr, host.to_owned()));
        self.backend(addr, weight)
    }

    /// The trust anchors (and the shared client configuration, with its
    /// session cache) for [`https_backend`](Self::https_backend)s. Default:
    /// [`BackendTls::system_roots`], loaded by [`build`](Self::build) when
    /// there is an https backend.
    pub fn backend_tls(mut self, tls: BackendTls) -> Self {
        self.upstream_tls.tls = Some(tls);
        self
    }
}

/// The handshakes of every configuration in `all`, each set counted once
/// (pools may share one); `None` when there is none.
pub(crate) fn total_stats<'a>(all: impl Iterator<Item = &'a BackendTls>) -> Option<BackendTlsStats> {
    let mut seen: Vec<&Arc<Handshakes>> = Vec::new();
    let mut total: Option<BackendTlsStats> = None;
    for t in all {
        if seen.iter().any(|h| Arc::ptr_eq(h, &t.handshakes)) {
            continue;
        }
        seen.push(&t.handshakes);
        let s = t.stats();
        let sum = total.get_or_insert_with(BackendTlsStats::default);
        sum.full += s.full;
        sum.resumed += s.resumed;
        sum.failed += s.failed;
    }
    total
}
