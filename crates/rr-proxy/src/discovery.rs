//! Backends found at run time: the [`Discovery`] trait, the task that applies
//! each set a source yields as a diff to the balancer, and [`DnsDiscovery`]
//! (A/AAAA and SRV records through `hickory-resolver`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, ResolveError, TokioResolver};
use http_core::ShutdownSignal;

use crate::backend_tls::TlsTarget;
use crate::balancer::Balancer;
use crate::config::{BackendSource, MAX_WEIGHT};

/// A set of backends a [`Discovery`] source yields, and how long it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveredSet {
    /// The backends with their weights (1 to [`MAX_WEIGHT`]; others are
    /// clamped). An address given twice counts once, with the larger weight.
    pub backends: Vec<(SocketAddr, u32)>,
    /// When to ask the source again (zero: at once, for a source whose
    /// [`discover`](Discovery::discover) waits for the next change itself).
    pub refresh_after: Duration,
    /// The backends of `backends` spoken to over TLS, each with the name its
    /// certificate is verified for against the pool's trust anchors (a DNS
    /// name, also sent as SNI; or an IP address the certificate must carry,
    /// with no SNI). Empty (the default): every backend is plain HTTP. A
    /// source that fills it says so with [`Discovery::tls`].
    pub tls_names: Vec<(SocketAddr, String)>,
}

/// Why a source yielded no set this time. Either way the proxy keeps the last
/// good set of that source and asks again after
/// [`Discovery::retry_after`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The source answered that there is nothing (NXDOMAIN, no records, an
    /// empty list). Not followed: see the crate README on scale-to-zero.
    #[error("empty answer: {0}")]
    Empty(String),
    /// The source could not be asked or did not answer (timeout, refused,
    /// SERVFAIL, a watcher disconnected).
    #[error("{0}")]
    Failed(String),
    /// The source cannot be built from these settings (from
    /// [`DnsDiscovery::new`]).
    #[error("cannot set up discovery: {0}")]
    Config(String),
}

/// What [`Discovery::discover`] returns.
pub type DiscoverFuture<'a> =
    Pin<Box<dyn Future<Output = Result<DiscoveredSet, DiscoveryError>> + Send + 'a>>;

/// A source of backends that change at run time: DNS ([`DnsDiscovery`]), or
/// one of an embedder's own (a Kubernetes watcher, a service registry).
///
/// The proxy runs one task per source while it serves: it calls
/// [`discover`](Self::discover), applies the set as a diff to the backends
/// (new addresses are added, vanished ones removed — drained: requests in
/// progress on them finish — unchanged ones keep their connections, health
/// and counters, a new weight is set in place), waits
/// [`DiscoveredSet::refresh_after`] and asks again. On an error or an empty
/// set it keeps the source's last good set, logs a warning once per outage,
/// and retries after [`retry_after`](Self::retry_after). A backend given
/// statically or added through the admin API is never removed by a source;
/// an address two sources yield stays while either has it.
///
/// A source fed by a channel (a push source):
/// ```
/// use std::net::SocketAddr;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
/// use rr_proxy::{DiscoverFuture, DiscoveredSet, Discovery, DiscoveryError, Proxy};
/// use tokio::sync::{watch, Mutex};
///
/// /// Yields the set on the channel now, then each new one as it is sent.
/// struct Pushed {
///     rx: Mutex<watch::Receiver<Vec<(SocketAddr, u32)>>>,
///     started: AtomicBool,
/// }
///
/// impl Discovery for Pushed {
///     fn name(&self) -> &str {
///         "pushed"
///     }
///     fn discover(&self) -> DiscoverFuture<'_> {
///         Box::pin(async move {
///             let mut rx = self.rx.lock().await;
///             if self.started.swap(true, Ordering::Relaxed) {
///                 rx.changed().await.map_err(|_| DiscoveryError::Failed("sender gone".into()))?;
///             }
///             let backends = rx.borrow_and_update().clone();
///             Ok(DiscoveredSet { backends, refresh_after: Duration::ZERO, ..Default::default() })
///         })
///     }
/// }
///
/// let (tx, rx) = watch::channel(vec![("127.0.0.1:9002".parse().unwrap(), 1)]);
/// let source = Pushed { rx: Mutex::new(rx), started: AtomicBool::new(false) };
/// // No fixed backend needed: the source brings them once the proxy serves.
/// let proxy = Proxy::builder().discovery(source).build().unwrap();
/// assert_eq!(proxy.handle().stats().discovery[0].name, "pushed");
/// // Later, from anywhere: the proxy follows.
/// tx.send(vec![("127.0.0.1:9003".parse().unwrap(), 2)]).unwrap();
/// ```
pub trait Discovery: Send + Sync + 'static {
    /// The source's name in logs, `/stats` and `/metrics` (such as `dns:web.internal:9002`).
    fn name(&self) -> &str;

    /// The current set. May wait (for a change, or for the answer); the
    /// proxy stops waiting when it shuts down.
    fn discover(&self) -> DiscoverFuture<'_>;

    /// True when the backends it yields are spoken to over TLS (it names them
    /// in [`DiscoveredSet::tls_names`]): the proxy then loads trust anchors
    /// when it is built (the system's roots, unless
    /// [`ProxyBuilder::backend_tls`](crate::ProxyBuilder::backend_tls) gives
    /// others) and refuses TCP mode. Default: false.
    fn tls(&self) -> bool {
        false
    }

    /// How long to wait before asking again after `failures` failed or empty
    /// answers in a row (1 or more). Default: 1 s doubling to at most 30 s.
    fn retry_after(&self, failures: u32) -> Duration {
        backoff(Duration::from_secs(1), Duration::from_secs(30), failures)
    }
}

/// `first`, doubling with each failure after the first, at most `max`.
fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    first.saturating_mul(1 << doublings).min(max).max(first.min(max))
}

/// Clamps a record's remaining TTL to `[min, max]`.
fn clamp_ttl(ttl: Duration, min: Duration, max: Duration) -> Duration {
    ttl.max(min).min(max.max(min))
}

/// How a set differs from the last one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Diff {
    /// New addresses, with their weights, in address order.
    pub added: Vec<(SocketAddr, u32)>,
    /// Vanished addresses, in address order.
    pub removed: Vec<SocketAddr>,
    /// Addresses whose weight changed, with the new weight, in address order.
    pub reweighted: Vec<(SocketAddr, u32)>,
    /// Addresses kept whose TLS name changed (an SRV target renamed), in
    /// address order (filled by [`Balancer::apply_discovered`]).
    pub renamed: Vec<SocketAddr>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.reweighted.is_empty()
            && self.renamed.is_empty()
    }
}

/// The TLS target of each backend of `set` that `set` names for TLS, with
/// the pool's trust anchors.
fn tls_targets(
    shared: &Balancer,
    set: &DiscoveredSet,
) -> Result<HashMap<SocketAddr, TlsTarget>, DiscoveryError> {
    if set.tls_names.is_empty() {
        return Ok(HashMap::new());
    }
    let Some(tls) = shared.config.backend_tls.as_ref() else {
        return Err(DiscoveryError::Failed(
            "backends over TLS, but the pool has no trust anchors (Discovery::tls is false)".to_owned(),
        ));
    };
    set.tls_names
        .iter()
        .map(|(addr, name)| {
            tls.target(name).map(|t| (*addr, t)).map_err(|_| {
                DiscoveryError::Failed(format!("{name:?} is no name a certificate can be verified for"))
            })
        })
        .collect()
}

/// The diff from `old` to `new` (both address → weight).
pub(crate) fn diff(old: &BTreeMap<SocketAddr, u32>, new: &BTreeMap<SocketAddr, u32>) -> Diff {
    let mut d = Diff::default();
    for (&addr, &w) in new {
        match old.get(&addr) {
            None => d.added.push((addr, w)),
            Some(&old_w) if old_w != w => d.reweighted.push((addr, w)),
            Some(_) => {}
        }
    }
    d.removed = old.keys().filter(|a| !new.contains_key(a)).copied().collect();
    d
}

/// A source's list as a map: weights clamped to 1..=MAX_WEIGHT, the larger
/// weight kept for an address given twice.
pub(crate) fn normalize(list: &[(SocketAddr, u32)]) -> BTreeMap<SocketAddr, u32> {
    let mut map = BTreeMap::new();
    for &(addr, w) in list {
        let w = w.clamp(1, MAX_WEIGHT);
        let e = map.entry(addr).or_insert(w);
        *e = (*e).max(w);
    }
    map
}

/// The outcome of one resolution, as `/stats` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryResult {
    /// A non-empty set, applied.
    Ok,
    /// The source failed; the last good set is kept.
    Failed,
    /// The source answered with nothing; the last good set is kept.
    Empty,
}

impl DiscoveryResult {
    /// `"ok"`, `"failed"` or `"empty"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryResult::Ok => "ok",
            DiscoveryResult::Failed => "failed",
            DiscoveryResult::Empty => "empty",
        }
    }
}

/// A snapshot of one discovery source, in `/stats`' `discovery` array.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiscoveryStats {
    /// The source's name ([`Discovery::name`]).
    pub name: String,
    /// Backends the source has now (its last good set).
    pub backends: usize,
    /// The outcome of the last resolution (`None` before the first one ends).
    pub last_result: Option<DiscoveryResult>,
    /// The last error or empty answer, kept after recovery (`None` if none yet).
    pub last_error: Option<String>,
    /// When the last resolution ended, in seconds since the Unix epoch.
    pub last_resolution_unix_seconds: Option<u64>,
    /// Resolutions that gave a set.
    pub resolutions_ok: u64,
    /// Resolutions that failed.
    pub resolutions_failed: u64,
    /// Resolutions that gave nothing.
    pub resolutions_empty: u64,
    /// The pool the source feeds.
    pub pool: String,
}

/// One source's live status.
#[derive(Debug)]
pub(crate) struct SourceStatus {
    name: String,
    ok: AtomicU64,
    failed: AtomicU64,
    empty: AtomicU64,
    last: Mutex<LastResolution>,
}

#[derive(Debug, Default)]
struct LastResolution {
    result: Option<DiscoveryResult>,
    error: Option<String>,
    at: Option<SystemTime>,
    backends: usize,
}

impl SourceStatus {
    /// The source's name ([`Discovery::name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn new(name: String) -> SourceStatus {
        SourceStatus {
            name,
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            empty: AtomicU64::new(0),
            last: Mutex::new(LastResolution::default()),
        }
    }

    fn record(&self, result: DiscoveryResult, error: Option<String>, backends: usize) {
        match result {
            DiscoveryResult::Ok => &self.ok,
            DiscoveryResult::Failed => &self.failed,
            DiscoveryResult::Empty => &self.empty,
        }
        .fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.result = Some(result);
        if error.is_some() {
            last.error = error;
        }
        last.at = Some(SystemTime::now());
        last.backends = backends;
    }

    pub fn stats(&self) -> DiscoveryStats {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        DiscoveryStats {
            name: self.name.clone(),
            backends: last.backends,
            last_result: last.result,
            last_error: last.error.clone(),
            last_resolution_unix_seconds: last
                .at
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            resolutions_ok: self.ok.load(Ordering::Relaxed),
            resolutions_failed: self.failed.load(Ordering::Relaxed),
            resolutions_empty: self.empty.load(Ordering::Relaxed),
            pool: String::new(),
        }
    }
}

/// `+A -B ~C=3`, for the change log line.
fn describe(d: &Diff) -> String {
    let mut parts: Vec<String> = Vec::new();
    parts.extend(d.added.iter().map(|(a, _)| format!("+{a}")));
    parts.extend(d.removed.iter().map(|a| format!("-{a}")));
    parts.extend(d.reweighted.iter().map(|(a, w)| format!("~{a}={w}")));
    parts.extend(d.renamed.iter().map(|a| format!("~{a} (new TLS name)")));
    parts.join(" ")
}

/// `1 backend`, `3 backends`.
fn backends(n: usize) -> String {
    format!("{n} backend{}", if n == 1 { "" } else { "s" })
}

/// Runs source number `index` until `shutdown` fires.
pub(crate) async fn run(
    shared: Arc<Balancer>,
    index: usize,
    source: Arc<dyn Discovery>,
    status: Arc<SourceStatus>,
    mut shutdown: ShutdownSignal,
) {
    let name = source.name().to_owned();
    let mut failures: u32 = 0;
    let mut first = true;
    loop {
        let result = tokio::select! {
            r = source.discover() => r,
            () = shutdown.triggered() => return,
        };
        let set = match result {
            Ok(set) if !set.backends.is_empty() => tls_targets(&shared, &set).map(|t| (set, t)),
            Ok(_) => Err(DiscoveryError::Empty("no backends".to_owned())),
            Err(e) => Err(e),
        };
        let wait = match set {
            Ok((set, targets)) => {
                let new = normalize(&set.backends);
                let d = shared.apply_discovered(index, &new, &targets);
                let count = new.len();
                status.record(DiscoveryResult::Ok, None, count);
                if failures > 0 {
                    tracing::info!(
                        source = %name,
                        backends = count,
                        "{name}: resolves again after {failures} failed or empty attempts ({})",
                        backends(count)
                    );
                }
                if !d.is_empty() {
                    let e = shared.refresh();
                    tracing::info!(
                        source = %name,
                        backends = count,
                        "{name}: {} ({})",
                        describe(&d),
                        backends(count)
                    );
                    e.log_summary();
                }
                failures = 0;
                first = false;
                set.refresh_after
            }
            Err(e) => {
                let kept = shared.discovered_count(index);
                let result = match e {
                    DiscoveryError::Empty(_) => DiscoveryResult::Empty,
                    _ => DiscoveryResult::Failed,
                };
                status.record(result, Some(e.to_string()), kept);
                failures = failures.saturating_add(1);
                if failures == 1 {
                    if first {
                        tracing::warn!(
                            source = %name,
                            "{name}: first resolution failed ({e}); no backends from this source until it resolves"
                        );
                    } else {
                        tracing::warn!(
                            source = %name,
                            backends = kept,
                            "{name}: resolution failed ({e}); keeping the last good set ({}) until it resolves again",
                            backends(kept)
                        );
                    }
                } else {
                    tracing::debug!(source = %name, failures, "{name}: still failing: {e}");
                }
                source.retry_after(failures)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.triggered() => return,
        }
    }
}

/// How [`DnsDiscovery`] resolves: which nameserver, and the bounds on how
/// often it asks again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// The nameserver (`IP:PORT`, asked over UDP, then TCP for truncated
    /// answers). `None` (default): the system's, from `/etc/resolv.conf`.
    pub nameserver: Option<SocketAddr>,
    /// Shortest time between two resolutions, whatever the record's TTL (and
    /// the first retry after a failure). Default 1 s.
    pub ttl_min: Duration,
    /// Longest time between two resolutions, whatever the record's TTL (and
    /// the longest wait between retries after failures). Default 60 s.
    pub ttl_max: Duration,
    /// How long one query may take. Default 2 s.
    pub timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameserver: None,
            ttl_min: Duration::from_secs(1),
            ttl_max: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
        }
    }
}

/// What a [`DnsDiscovery`] asks for.
#[derive(Debug, Clone)]
enum Query {
    /// A and AAAA of the name, each address on `port` with `weight`.
    Addresses { name: Name, port: u16, weight: u32 },
    /// SRV of the name, then the targets' addresses.
    Srv { name: Name },
}

/// Backends from DNS, for `dns:NAME:PORT[=WEIGHT]` and `srv:NAME` entries
/// (and their TLS forms `dns:https://NAME:PORT[=WEIGHT]` and `srv:https://NAME`).
///
/// - `dns:NAME:PORT` asks for both A and AAAA records; every address found,
///   IPv4 and IPv6, becomes a backend on `PORT` with the entry's weight.
/// - `srv:NAME` asks for SRV records and uses only those of the lowest
///   priority value (RFC 2782: higher priorities are fallbacks; they are not
///   followed here). Each target's addresses come from the answer's
///   additional records when present, otherwise from its own A/AAAA lookup;
///   each address gets the record's port and its SRV weight (0 counts as 1).
///   A target of `.` (service not offered) is skipped.
/// - It asks again when the answer's TTL runs out, clamped to
///   [`ResolverConfig::ttl_min`]..=[`ResolverConfig::ttl_max`]; after a
///   failure, after `ttl_min` doubling up to `ttl_max`.
/// - Failures (timeout, refused, SERVFAIL) and empty answers (NXDOMAIN, no
///   records) keep the last good set.
/// - Over TLS ([`Discovery::tls`] is true), each set names every backend's
///   TLS name ([`DiscoveredSet::tls_names`]): `NAME` for every address of a
///   `dns:https://` entry; the target's name (without its final dot) for
///   the addresses of each SRV target of an `srv:https://` entry.
///
/// ```
/// use rr_proxy::{BackendSource, DnsDiscovery, Proxy, ResolverConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let config = ResolverConfig { nameserver: Some("127.0.0.1:8600".parse().unwrap()), ..Default::default() };
/// let source: BackendSource = "srv:web.service.consul".parse().unwrap();
/// let dns = DnsDiscovery::new(&source, &config).unwrap();
/// let proxy = Proxy::builder().discovery(dns).build().unwrap();
/// assert_eq!(proxy.handle().stats().discovery[0].name, "srv:web.service.consul");
/// # });
/// ```
pub struct DnsDiscovery {
    label: String,
    query: Query,
    /// `dns:https://` or `srv:https://`.
    tls: bool,
    resolver: TokioResolver,
    ttl_min: Duration,
    ttl_max: Duration,
}

impl std::fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("name", &self.label)
            .field("ttl_min", &self.ttl_min)
            .field("ttl_max", &self.ttl_max)
            .finish_non_exhaustive()
    }
}

impl DnsDiscovery {
    /// A source for a `dns:` or `srv:` entry ([`BackendSource::Static`] is an
    /// error: it needs no discovery), asking `config`'s nameserver.
    pub fn new(source: &BackendSource, config: &ResolverConfig) -> Result<DnsDiscovery, DiscoveryError> {
        let parse = |name: &str| {
            Name::from_utf8(name).map_err(|e| DiscoveryError::Config(format!("bad DNS name {name:?}: {e}")))
        };
        let query = match source {
            BackendSource::Static(spec) | BackendSource::Https { spec, .. } => {
                return Err(DiscoveryError::Config(format!(
                    "{} is a fixed address, not a dns: or srv: entry",
                    spec.addr
                )))
            }
            BackendSource::Dns {
                name, port, weight, ..
            } => Query::Addresses {
                name: parse(name)?,
                port: *port,
                weight: (*weight).clamp(1, MAX_WEIGHT),
            },
            BackendSource::Srv { name, .. } => Query::Srv { name: parse(name)? },
        };
        if config.ttl_min.is_zero() || config.timeout.is_zero() {
            return Err(DiscoveryError::Config(
                "the minimum TTL and the query timeout must be longer than zero".to_owned(),
            ));
        }
        if config.ttl_max < config.ttl_min {
            return Err(DiscoveryError::Config(
                "the maximum TTL must not be shorter than the minimum".to_owned(),
            ));
        }
        let mut builder = match config.nameserver {
            Some(ns) => {
                let mut c = hickory_resolver::config::ResolverConfig::new();
                c.add_name_server(NameServerConfig::new(ns, Protocol::Udp));
                c.add_name_server(NameServerConfig::new(ns, Protocol::Tcp));
                let mut b = TokioResolver::builder_with_config(c, TokioConnectionProvider::default());
                b.options_mut().use_hosts_file = ResolveHosts::Never;
                b
            }
            None => TokioResolver::builder_tokio().map_err(|e| {
                DiscoveryError::Config(format!("cannot read the system's resolver settings: {e}"))
            })?,
        };
        let opts = builder.options_mut();
        // Every resolution asks the nameserver: the answer's TTL is followed here.
        opts.cache_size = 0;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = config.timeout;
        opts.attempts = 1;
        Ok(DnsDiscovery {
            label: source.to_string(),
            query,
            tls: source.is_tls(),
            resolver: builder.build(),
            ttl_min: config.ttl_min,
            ttl_max: config.ttl_max,
        })
    }

    async fn resolve(&self) -> Result<DiscoveredSet, DiscoveryError> {
        let now = Instant::now();
        let (found, valid_until) = match &self.query {
            Query::Addresses { name, port, weight } => {
                let lookup = self
                    .resolver
                    .lookup_ip(name.clone())
                    .await
                    .map_err(|e| classify(name, e))?;
                let list = lookup
                    .iter()
                    .map(|ip| (SocketAddr::new(ip, *port), *weight, name.clone()))
                    .collect();
                (list, lookup.valid_until())
            }
            Query::Srv { name } => self.resolve_srv(name).await?,
        };
        if found.is_empty() {
            return Err(DiscoveryError::Empty(format!("{} has no addresses", self.label)));
        }
        let ttl = valid_until.saturating_duration_since(now);
        let tls_names = if self.tls {
            found
                .iter()
                .map(|(addr, _, name)| (*addr, tls_name(name)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(DiscoveredSet {
            backends: found.into_iter().map(|(addr, w, _)| (addr, w)).collect(),
            refresh_after: clamp_ttl(ttl, self.ttl_min, self.ttl_max),
            tls_names,
        })
    }

    /// Each target's addresses, with the record's port and weight and the target's name.
    async fn resolve_srv(
        &self,
        name: &Name,
    ) -> Result<(Vec<(SocketAddr, u32, Name)>, Instant), DiscoveryError> {
        let lookup = self
            .resolver
            .srv_lookup(name.clone())
            .await
            .map_err(|e| classify(name, e))?;
        let mut valid_until = lookup.as_lookup().valid_until();
        let records: Vec<_> = lookup.iter().filter(|s| !s.target().is_root()).cloned().collect();
        let Some(best) = records.iter().map(|s| s.priority()).min() else {
            return Ok((Vec::new(), valid_until));
        };
        // Addresses the answer carried along (additional records), by name.
        let mut extra: HashMap<Name, Vec<std::net::IpAddr>> = HashMap::new();
        for r in lookup.as_lookup().records() {
            let ip = match r.data() {
                RData::A(a) => std::net::IpAddr::V4(a.0),
                RData::AAAA(a) => std::net::IpAddr::V6(a.0),
                _ => continue,
            };
            extra.entry(r.name().to_lowercase()).or_default().push(ip);
        }
        let mut list = Vec::new();
        for srv in records.iter().filter(|s| s.priority() == best) {
            let target = srv.target().to_lowercase();
            let weight = u32::from(srv.weight()).max(1);
            let ips = match extra.get(&target) {
                Some(ips) => ips.clone(),
                None => match self.resolver.lookup_ip(target.clone()).await {
                    Ok(l) => {
                        valid_until = valid_until.min(l.valid_until());
                        l.iter().collect()
                    }
                    Err(e) if is_empty(&e) => Vec::new(),
                    Err(e) => return Err(classify(&target, e)),
                },
            };
            list.extend(
                ips.into_iter()
                    .map(|ip| (SocketAddr::new(ip, srv.port()), weight, target.clone())),
            );
        }
        Ok((list, valid_until))
    }
}

/// A DNS name as the certificate is verified for (and SNI): without the final dot.
fn tls_name(name: &Name) -> String {
    let text = name.to_utf8();
    text.strip_suffix('.').unwrap_or(&text).to_owned()
}

fn is_empty(e: &ResolveError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}

fn classify(name: &Name, e: ResolveError) -> DiscoveryError {
    if is_empty(&e) {
        DiscoveryError::Empty(format!("no records for {name}"))
    } else {
        DiscoveryError::Failed(format!("{name}: {e}"))
    }
}

impl Discovery for DnsDiscovery {
    fn name(&self) -> &str {
        &self.label
    }

    fn discover(&self) -> DiscoverFuture<'_> {
        Box::pin(self.resolve())
    }

    fn tls(&self) -> bool {
        self.tls
    }

    fn retry_after(&self, failures: u32) -> Duration {
        backoff(self.ttl_min, self.ttl_max, failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(list: &[(&str, u32)]) -> BTreeMap<SocketAddr, u32> {
        list.iter().map(|(a, w)| (a.parse().unwrap(), *w)).collect()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A plain set applied.
    fn apply(b: &Balancer, index: usize, new: &BTreeMap<SocketAddr, u32>) -> Diff {
        b.apply_discovered(index, new, &HashMap::new())
    }

    #[test]
    fn diffs() {
        let old = map(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 2)]);
        let new = map(&[("10.0.0.2:80", 1), ("10.0.0.3:80", 5), ("10.0.0.4:80", 1)]);
        assert_eq!(
            diff(&old, &new),
            Diff {
                added: vec![(addr("10.0.0.4:80"), 1)],
                removed: vec![addr("10.0.0.1:80")],
                reweighted: vec![(addr("10.0.0.3:80"), 5)],
                renamed: vec![],
            }
        );
        assert!(diff(&old, &old).is_empty());
        let empty = BTreeMap::new();
        assert_eq!(diff(&empty, &old).added.len(), 3);
        assert_eq!(diff(&old, &empty).removed.len(), 3);
        assert_eq!(
            describe(&diff(&old, &new)),
            "+10.0.0.4:80 -10.0.0.1:80 ~10.0.0.3:80=5"
        );
    }

    #[test]
    fn normalize_dedupes_and_clamps() {
        let list = [
            (addr("10.0.0.1:80"), 0),
            (addr("10.0.0.2:80"), 2),
            (addr("10.0.0.2:80"), 7),
            (addr("10.0.0.3:80"), u32::MAX),
        ];
        assert_eq!(
            normalize(&list),
            map(&[
                ("10.0.0.1:80", 1),
                ("10.0.0.2:80", 7),
                ("10.0.0.3:80", MAX_WEIGHT)
            ])
        );
    }

    #[test]
    fn ttl_clamping_and_backoff() {
        let s = Duration::from_secs;
        assert_eq!(clamp_ttl(s(0), s(1), s(60)), s(1));
        assert_eq!(clamp_ttl(s(30), s(1), s(60)), s(30));
        assert_eq!(clamp_ttl(s(86400), s(1), s(60)), s(60));
        assert_eq!(clamp_ttl(s(5), s(10), s(3)), s(10), "min wins over a smaller max");
        assert_eq!(
            (1..=8).map(|n| backoff(s(1), s(30), n)).collect::<Vec<_>>(),
            [s(1), s(2), s(4), s(8), s(16), s(30), s(30), s(30)]
        );
        assert_eq!(backoff(s(1), s(30), u32::MAX), s(30));
        assert_eq!(backoff(s(5), s(2), 1), s(2));
    }

    /// Sources own their addresses: a fixed backend is never removed by one,
    /// an address two sources yield stays while either has it, an unchanged
    /// backend is the same backend (its counters kept), a weight changes in
    /// place.
    #[test]
    fn sets_apply_as_diffs_with_owners() {
        let fixed = addr("10.0.0.1:80");
        let proxy = crate::Proxy::builder().backend(fixed, 1).build().unwrap();
        let b = &*proxy.shared();
        let ids = |b: &Balancer| {
            b.all()
                .iter()
                .map(|x| (x.addr(), x.id(), x.weight()))
                .collect::<Vec<_>>()
        };
        // Source 0 brings .2 and .3, and the fixed address too.
        let d = apply(
            b,
            0,
            &map(&[("10.0.0.1:80", 5), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)]),
        );
        assert_eq!(d.added.len(), 3);
        let _ = b.refresh();
        assert_eq!(b.eligible().len(), 3);
        let before = ids(b);
        assert_eq!(before[0], (fixed, 0, 1), "the fixed backend keeps its weight");
        b.find(addr("10.0.0.2:80")).unwrap().count_request();
        // Source 1 shares .3.
        apply(b, 1, &map(&[("10.0.0.3:80", 1)]));
        // Source 0 drops everything but .2, whose weight becomes 4.
        let d = apply(b, 0, &map(&[("10.0.0.2:80", 4)]));
        assert_eq!(d.removed, [fixed, addr("10.0.0.3:80")]);
        assert_eq!(d.reweighted, [(addr("10.0.0.2:80"), 4)]);
        let after = ids(b);
        assert_eq!(
            after,
            [
                (fixed, 0, 1),
                (addr("10.0.0.2:80"), before[1].1, 4),
                (addr("10.0.0.3:80"), before[2].1, 1)
            ],
            "fixed kept, .3 kept for source 1, .2 the same backend with a new weight"
        );
        assert_eq!(
            b.find(addr("10.0.0.2:80")).unwrap().stats().requests,
            1,
            "counters kept"
        );
        assert_eq!((b.discovered_count(0), b.discovered_count(1)), (1, 1));
        // Source 1 lets .3 go: now nobody holds it.
        apply(b, 1, &BTreeMap::new());
        assert!(b.find(addr("10.0.0.3:80")).is_err());
        // An unchanged set changes nothing.
        assert!(apply(b, 0, &map(&[("10.0.0.2:80", 4)])).is_empty());
        // Removed through the admin API: the source brings it back next time.
        let _ = b.remove(addr("10.0.0.2:80")).unwrap();
        assert_eq!(apply(b, 0, &map(&[("10.0.0.2:80", 4)])).added.len(), 1);
    }

    /// A discovered backend over TLS gets its target when added; a kept one
    /// the source alone holds follows a new name (or none); one a fixed
    /// entry holds speaks as that entry says.
    #[test]
    fn discovered_backends_get_their_tls_names() {
        let dir = test_support::TempDir::new("discovery-tls");
        let ca = test_support::TestCa::new(dir.path());
        let tls = crate::BackendTls::from_ca_file(&ca.ca_pem).unwrap();
        let fixed = addr("10.0.0.1:443");
        let proxy = crate::Proxy::builder()
            .backend_tls(tls.clone())
            .backend(fixed, 1)
            .build()
            .unwrap();
        let b = &*proxy.shared();
        let names = |list: &[(&str, &str)]| -> HashMap<SocketAddr, TlsTarget> {
            list.iter()
                .map(|(a, n)| (addr(a), tls.target(n).unwrap()))
                .collect()
        };
        let host = |a: &str| b.find(addr(a)).unwrap().tls().map(|t| t.host().to_owned());
        let set = map(&[("10.0.0.1:443", 1), ("10.0.0.2:443", 1), ("10.0.0.3:443", 1)]);
        let d = b.apply_discovered(
            0,
            &set,
            &names(&[
                ("10.0.0.1:443", "a.web"),
                ("10.0.0.2:443", "a.web"),
                ("10.0.0.3:443", "b.web"),
            ]),
        );
        assert_eq!(d.added.len(), 3);
        assert!(d.renamed.is_empty());
        assert_eq!(host("10.0.0.1:443"), None, "the fixed entry says plain");
        assert_eq!(host("10.0.0.2:443").as_deref(), Some("a.web"));
        assert_eq!(host("10.0.0.3:443").as_deref(), Some("b.web"));
        let before = b.find(addr("10.0.0.3:443")).unwrap().id();
        // The SRV target of .3 renamed; .2 unchanged: only .3 changes, in place.
        let d = b.apply_discovered(
            0,
            &set,
            &names(&[
                ("10.0.0.1:443", "a.web"),
                ("10.0.0.2:443", "a.web"),
                ("10.0.0.3:443", "c.web"),
            ]),
        );
        assert_eq!(d.renamed, [addr("10.0.0.3:443")]);
        assert_eq!(describe(&d), "~10.0.0.3:443 (new TLS name)");
        assert_eq!(host("10.0.0.3:443").as_deref(), Some("c.web"));
        assert_eq!(
            b.find(addr("10.0.0.3:443")).unwrap().id(),
            before,
            "the same backend"
        );
        // The same set again changes nothing.
        assert!(b
            .apply_discovered(
                0,
                &set,
                &names(&[
                    ("10.0.0.1:443", "a.web"),
                    ("10.0.0.2:443", "a.web"),
                    ("10.0.0.3:443", "c.web")
                ]),
            )
            .is_empty());
        // A set without names: plain from the next connection.
        let d = b.apply_discovered(0, &set, &HashMap::new());
        assert_eq!(d.renamed, [addr("10.0.0.2:443"), addr("10.0.0.3:443")]);
        assert_eq!(host("10.0.0.2:443"), None);
    }

    #[test]
    fn dns_discovery_checks_its_settings() {
        let dns: BackendSource = "dns:web.internal:80".parse().unwrap();
        let ns = ResolverConfig {
            nameserver: Some(addr("127.0.0.1:53")),
            ..ResolverConfig::default()
        };
        assert_eq!(
            DnsDiscovery::new(&dns, &ns).unwrap().name(),
            "dns:web.internal:80"
        );
        let fixed: BackendSource = "127.0.0.1:80".parse().unwrap();
        assert!(matches!(
            DnsDiscovery::new(&fixed, &ns),
            Err(DiscoveryError::Config(_))
        ));
        let bad = ResolverConfig {
            ttl_min: Duration::from_secs(10),
            ttl_max: Duration::from_secs(1),
            ..ns.clone()
        };
        assert!(matches!(
            DnsDiscovery::new(&dns, &bad),
            Err(DiscoveryError::Config(_))
        ));
        let zero = ResolverConfig {
            ttl_min: Duration::ZERO,
            ..ns
        };
        assert!(matches!(
            DnsDiscovery::new(&dns, &zero),
            Err(DiscoveryError::Config(_))
        ));
    }
}
