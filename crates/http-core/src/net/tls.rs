//! TLS termination: certificates chosen by SNI and reloaded in place, and the
//! TLS transport the driver runs a connection over.
//!
//! [`TlsConfig`] holds the certificate set (a certificate and key per PEM file
//! pair, each answering for the DNS names in its certificate's
//! subjectAltName, the first pair for clients that name no host or an unknown
//! one), rustls' server configuration (TLS 1.2 and 1.3 only, rustls' default
//! cipher suites, all with forward secrecy; session resumption by stateless
//! tickets and an in-memory session cache) and the handshake counters. Give
//! it to [`Server::tls`](crate::Server::tls): the handshake then runs on each
//! connection's own task, bounded by the handshake timeout, and the same
//! HTTP/1.1 driver serves the decrypted stream.
//!
//! Crypto provider: rustls' default, aws-lc-rs (built from source by its
//! crate, with the C compiler alone): its handshakes cost less CPU than
//! ring's, which is what a server answering one request per connection spends
//! its time on.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::io::Io;
use super::lazy::LazyTcpStream;
use super::tls_stream::TlsStream;

/// The application protocols offered by ALPN, most preferred first: HTTP/2,
/// then HTTP/1.1. A [`Server`](crate::Server) serves a connection whose ALPN
/// chose `h2` with [`serve_h2_connection`](crate::serve_h2_connection).
pub const ALPN_PROTOCOLS: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Sessions the in-memory cache keeps for resumption by session ID (TLS 1.2
/// clients without ticket support); tickets need no server memory.
const SESSION_CACHE: usize = 1024;

/// Why a certificate set could not be loaded. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// No certificate and key pair was given.
    #[error("no certificate and key given")]
    NoPairs,
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A certificate file holds no PEM `CERTIFICATE` (or is not PEM).
    #[error("{}: no PEM certificate in the file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[error("{}: no PEM private key in the file", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a kind or size the crypto provider does not support.
    #[error("{}: unsupported private key: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What the provider said.
        reason: String,
    },
    /// The certificate does not parse as X.509.
    #[error("{}: bad certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{}: the key does not match the certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration (no ticket key could be made).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// One certificate file and its key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// PEM certificate chain: the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl CertPair {
    /// A pair of paths.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        CertPair {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// A loaded certificate: its key and the names it answers for.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
}

/// The certificates in force: looked up by SNI name.
#[derive(Debug)]
struct CertSet {
    default: Arc<CertifiedKey>,
    /// Lower-case DNS names.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Each pair's names, in order, for logs and summaries.
    names: Vec<Vec<String>>,
}

impl CertSet {
    fn build(loaded: Vec<Loaded>) -> Result<Self, TlsError> {
        let default = loaded.first().ok_or(TlsError::NoPairs)?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut names = Vec::with_capacity(loaded.len());
        for l in loaded {
            for name in &l.names {
                let name = name.to_ascii_lowercase();
                // The first pair that names a host wins, as nginx's first server does.
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_owned()),
                    None => exact.entry(name),
                }
                .or_insert_with(|| l.key.clone());
            }
            names.push(l.names);
        }
        Ok(CertSet {
            default,
            exact,
            wildcard,
            names,
        })
    }

    fn lookup(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni else {
            return self.default.clone();
        };
        // rustls hands SNI over in lower case, without a trailing dot.
        if let Some(k) = self.exact.get(name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

/// rustls' hook: picks the certificate for each handshake from the set in force.
#[derive(Debug)]
struct Resolver {
    set: RwLock<Arc<CertSet>>,
}

impl Resolver {
    fn current(&self) -> Arc<CertSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().lookup(hello.server_name()))
    }
}

/// Handshake and reload counts of a [`TlsConfig`] (see [`TlsConfig::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that failed: a client that is not speaking TLS, offers nothing
    /// in common (no protocol version, cipher suite or ALPN protocol), or
    /// closed the connection during the handshake.
    pub handshake_failures: u64,
    /// Handshakes not completed within the handshake timeout.
    pub handshake_timeouts: u64,
    /// Reloads that replaced the certificate set.
    pub reloads: u64,
    /// Reloads that failed (the old set was kept).
    pub reload_failures: u64,
    /// When the set in force was loaded, in seconds since the Unix epoch.
    pub loaded_at_seconds: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) handshakes: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    loaded_at_seconds: AtomicU64,
}

pub(crate) struct Shared {
    pairs: Vec<CertPair>,
    resolver: Arc<Resolver>,
    config: Arc<ServerConfig>,
    pub(crate) counters: Counters,
    /// Serialises reloads (SIGHUP and the file watcher may race).
    reloading: std::sync::Mutex<()>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("pairs", &self.pairs)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// TLS for a [`Server`](crate::Server): the certificate set, chosen by SNI and
/// reloadable without a restart, rustls' server configuration, and the
/// options of the connections (handshake timeout, HSTS). Cheap to clone: the
/// clones share the set and the counters.
///
/// ```
/// use std::time::Duration;
/// use http_core::net::{CertPair, TlsConfig, TlsError};
///
/// let missing = TlsConfig::from_pem_files(&[CertPair::new("/nonexistent/cert.pem", "/nonexistent/key.pem")]);
/// assert!(matches!(missing, Err(TlsError::Read { .. })));
///
/// # fn serve(pairs: &[CertPair]) -> Result<(), TlsError> {
/// // With real files: a certificate per host name, the first for everyone else.
/// let tls = TlsConfig::from_pem_files(pairs)?.hsts(Duration::from_secs(31_536_000));
/// // http_core::Server::new(service).tls(tls.clone()).serve(listener, shutdown)
/// tls.reload()?; // after the files were replaced (SIGHUP); existing connections keep theirs
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TlsConfig {
    shared: Arc<Shared>,
    hsts: Option<Bytes>,
    handshake_timeout: Option<Duration>,
}

impl TlsConfig {
    /// Loads every pair (certificate chain and key, PEM) and builds the server
    /// configuration: TLS 1.3 and 1.2, ALPN [`ALPN_PROTOCOLS`], session tickets
    /// and a session cache. The first pair is the default certificate; each
    /// answers for the DNS names (and `*.` wildcards) of its subjectAltName.
    pub fn from_pem_files(pairs: &[CertPair]) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let set = load_set(pairs, &provider)?;
        let resolver = Arc::new(Resolver {
            set: RwLock::new(Arc::new(set)),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        config.ticketer =
            rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        let config = Arc::new(config);
        // Connections are made from this configuration as clients arrive, where
        // an error could only close them: one is made here so that a
        // configuration rustls would refuse fails now.
        rustls::server::UnbufferedServerConnection::new(config.clone())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let counters = Counters::default();
        counters.loaded_at_seconds.store(unix_now(), Ordering::Relaxed);
        Ok(TlsConfig {
            shared: Arc::new(Shared {
                pairs: pairs.to_vec(),
                resolver,
                config,
                counters,
                reloading: std::sync::Mutex::new(()),
            }),
            hsts: None,
            handshake_timeout: None,
        })
    }

    /// Adds `Strict-Transport-Security: max-age=SECONDS` to every response
    /// sent over TLS (never to plain ones: RFC 6797 §7.2).
    pub fn hsts(mut self, max_age: Duration) -> Self {
        self.hsts = Some(Bytes::from(format!(
            "Strict-Transport-Security: max-age={}\r\n",
            max_age.as_secs()
        )));
        self
    }

    /// Sets how long a client may take to complete the handshake (default:
    /// the server's header timeout, [`Limits::header_timeout`](crate::Limits::header_timeout), 10 s unless changed).
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = Some(d);
        self
    }

    /// The handshake timeout set, if any.
    pub fn handshake_timeout_value(&self) -> Option<Duration> {
        self.handshake_timeout
    }

    /// The HSTS header line (with its CRLF) when set.
    pub(crate) fn hsts_line(&self) -> Option<Bytes> {
        self.hsts.clone()
    }

    /// The file pairs the set is loaded from.
    pub fn pairs(&self) -> &[CertPair] {
        &self.shared.pairs
    }

    /// The DNS names of each pair's certificate, in the order given.
    pub fn names(&self) -> Vec<Vec<String>> {
        self.shared.resolver.current().names.clone()
    }

    /// Reads every pair again and, if all load, swaps the new set in at once:
    /// handshakes from then on use it, established connections keep theirs.
    /// If any file is unreadable, half-written or mismatched, the old set stays
    /// in force. Logs the outcome (info, or warn with the reason) and counts it.
    pub fn reload(&self) -> Result<(), TlsError> {
        let _one_at_a_time = self.shared.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let counters = &self.shared.counters;
        match load_set(&self.shared.pairs, &provider) {
            Ok(set) => {
                let names = set.names.clone();
                *self
                    .shared
                    .resolver
                    .set
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
                counters.reloads.fetch_add(1, Ordering::Relaxed);
                counters.loaded_at_seconds.store(unix_now(), Ordering::Relaxed);
                tracing::info!(certificates = ?names, "TLS certificates reloaded");
                Ok(())
            }
            Err(e) => {
                counters.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("TLS certificates not reloaded, the old ones stay in use: {e}");
                Err(e)
            }
        }
    }

    /// Watches the certificate and key files and reloads when one has changed
    /// (its modification time, size, inode or device) and then stayed the same
    /// for one more look, so a file caught half-written is not loaded; looks
    /// every `every`. The files are first looked at when this is called.
    /// Runs until dropped: spawn it and abort it with the server.
    pub fn watch_files(self, every: Duration) -> impl Future<Output = ()> + Send {
        let loaded = self.fingerprint();
        self.watch_from(loaded, every)
    }

    async fn watch_from(self, mut loaded: Vec<Option<FileStamp>>, every: Duration) {
        let mut seen = loaded.clone();
        loop {
            tokio::time::sleep(every).await;
            let now = self.fingerprint();
            if now != loaded && now == seen {
                // A failed reload is not retried until the files change again.
                let _ = self.reload();
                loaded = now.clone();
            }
            seen = now;
        }
    }

    fn fingerprint(&self) -> Vec<Option<FileStamp>> {
        self.shared
            .pairs
            .iter()
            .flat_map(|p| [FileStamp::of(&p.cert), FileStamp::of(&p.key)])
            .collect()
    }

    /// The handshake and reload counts.
    pub fn stats(&self) -> TlsStats {
        let c = &self.shared.counters;
        TlsStats {
            handshakes: c.handshakes.load(Ordering::Relaxed),
            handshake_failures: c.handshake_failures.load(Ordering::Relaxed),
            handshake_timeouts: c.handshake_timeouts.load(Ordering::Relaxed),
            reloads: c.reloads.load(Ordering::Relaxed),
            reload_failures: c.reload_failures.load(Ordering::Relaxed),
            loaded_at_seconds: c.loaded_at_seconds.load(Ordering::Relaxed),
        }
    }

    /// A Prometheus collector of [`stats`](Self::stats): `tls_handshakes_total`,
    /// `tls_handshake_failures_total{reason="error"|"timeout"}`,
    /// `tls_reloads_total{result="ok"|"failed"}` and
    /// `tls_certificates_loaded_timestamp_seconds`, under the prefix of the
    /// registry it is registered in.
    pub fn collector(&self) -> TlsCollector {
        TlsCollector(self.clone())
    }

    /// Starts the handshake of an accepted connection; it runs as the stream
    /// is first read, within `timeout`.
    pub(crate) fn accept(
        &self,
        stream: LazyTcpStream,
        peer: Option<SocketAddr>,
        timeout: Duration,
    ) -> io::Result<TlsStream> {
        TlsStream::new(
            stream,
            self.shared.config.clone(),
            peer,
            timeout,
            self.shared.clone(),
        )
    }

    /// The server side of TLS over a transport of one's own (a Unix socket,
    /// an in-memory pipe): the handshake runs as the stream is first read or
    /// written, within the handshake timeout (10 s unless
    /// [`handshake_timeout`](Self::handshake_timeout) says otherwise), and
    /// is counted in [`stats`](Self::stats). The stream is an
    /// [`Io`](crate::Io): give it to [`serve_connection`](crate::serve_connection).
    ///
    /// ```no_run
    /// # async fn run(tls: http_core::net::TlsConfig) -> std::io::Result<()> {
    /// let (_client, server) = tokio::io::duplex(64 * 1024);
    /// let stream = tls.accept_io(server)?;
    /// // http_core::serve_connection(stream, None, service, limits, shutdown).await;
    /// # drop(stream); Ok(()) }
    /// ```
    pub fn accept_io<T: Io>(&self, io: T) -> io::Result<TlsStream<T>> {
        let timeout = self.handshake_timeout.unwrap_or(Duration::from_secs(10));
        TlsStream::new(io, self.shared.config.clone(), None, timeout, self.shared.clone())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What is compared to notice that a file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    dev: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let (inode, dev) = {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), m.dev())
        };
        #[cfg(not(unix))]
        let (inode, dev) = (0, 0);
        Some(FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode,
            dev,
        })
    }
}

fn load_set(pairs: &[CertPair], provider: &CryptoProvider) -> Result<CertSet, TlsError> {
    let loaded = pairs
        .iter()
        .map(|p| load_pair(p, provider))
        .collect::<Result<Vec<_>, _>>()?;
    CertSet::build(loaded)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_pair(pair: &CertPair, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let cert_pem = read(&pair.cert)?;
    let key_pem = read(&pair.key)?;
    let no_cert = || TlsError::NoCertificate {
        path: pair.cert.clone(),
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| no_cert())?;
    let leaf = chain.first().ok_or_else(no_cert)?;
    let names = {
        let parsed = webpki::EndEntityCert::try_from(leaf).map_err(|e| TlsError::BadCertificate {
            path: pair.cert.clone(),
            reason: format!("{e:?}"),
        })?;
        parsed.valid_dns_names().map(str::to_owned).collect::<Vec<_>>()
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: pair.key.clone(),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey {
            path: pair.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::KeyMismatch {
                cert: pair.cert.clone(),
                key: pair.key.clone(),
            })
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        names,
    })
}

/// The Prometheus collector of a [`TlsConfig`]'s counts (see [`TlsConfig::collector`]).
#[derive(Debug)]
pub struct TlsCollector(TlsConfig);

impl prometheus_client::collector::Collector for TlsCollector {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;
        let s = self.0.stats();
        let counter = ConstCounter::new(s.handshakes);
        counter.encode(encoder.encode_descriptor(
            "tls_handshakes",
            "TLS handshakes completed",
            None,
            MetricType::Counter,
        )?)?;
        let mut family = encoder.encode_descriptor(
            "tls_handshake_failures",
            "TLS handshakes that failed (error) or did not complete in time (timeout)",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [("error", s.handshake_failures), ("timeout", s.handshake_timeouts)] {
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tls_reloads",
            "Certificate reloads: ok (the new set is in force) or failed (the old one was kept)",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [("ok", s.reloads), ("failed", s.reload_failures)] {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        ConstGauge::new(s.loaded_at_seconds as i64).encode(encoder.encode_descriptor(
            "tls_certificates_loaded_timestamp_seconds",
            "When the certificate set in force was loaded (Unix time)",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}
