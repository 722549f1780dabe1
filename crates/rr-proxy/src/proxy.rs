//! The builder, the proxy, its shared state and the run-time handle.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http_core::{Limits, Server, ShutdownSignal};
use tokio::net::TcpListener;

use crate::backend::Backend;
use crate::balancer::{Balancer, Config};
use crate::config::{HealthCheck, Mode, PassiveHealth, PoolConfig, Timeouts, MAX_WEIGHT};
use crate::discovery::{Discovery, SourceStatus};
use crate::forward::ProxyService;
use crate::hooks::{NoHooks, ProxyHooks};
use crate::strategy::{RoundRobin, Strategy};
use crate::{BackendStats, ProxyError, ProxyStats};

/// Builds a [`Proxy`]. Every setting has a documented default; only backends are required.
///
/// ```
/// use std::time::Duration;
/// use rr_proxy::{HealthCheck, Proxy, Weighted};
///
/// let proxy = Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 3)
///     .backend("127.0.0.1:9003".parse().unwrap(), 1)
///     .strategy(Weighted::new())
///     .connect_timeout(Duration::from_secs(1))
///     .response_timeout(Duration::from_secs(10))
///     .health_check(HealthCheck { path: "/healthz".into(), ..HealthCheck::default() })
///     .build()
///     .unwrap();
/// assert_eq!(proxy.handle().backends().len(), 2);
/// ```
pub struct ProxyBuilder<H = NoHooks> {
    backends: Vec<(SocketAddr, u32)>,
    discovery: Vec<Arc<dyn Discovery>>,
    strategy: Box<dyn Strategy>,
    config: Config,
    hooks: H,
    /// `https://` backends and their trust anchors (see `backend_tls.rs`).
    pub(crate) upstream_tls: crate::backend_tls::Setup,
}

impl<H> std::fmt::Debug for ProxyBuilder<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBuilder")
            .field("backends", &self.backends)
            .field(
                "discovery",
                &self.discovery.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .field("strategy", &self.strategy.name())
            .field("config", &self.config)
            .finish()
    }
}

impl Default for ProxyBuilder {
    fn default() -> Self {
        ProxyBuilder {
            backends: Vec::new(),
            discovery: Vec::new(),
            strategy: Box::new(RoundRobin::new()),
            config: Config {
                mode: Mode::Http,
                timeouts: Timeouts::default(),
                limits: Limits::default(),
                pool: PoolConfig::default(),
                health: None,
                passive: PassiveHealth::default(),
                max_attempts: 3,
                retry_after: 1,
                max_connections: http_core::connection_capacity(2),
                shutdown_timeout: Duration::from_secs(10),
                tls: None,
                h2c: false,
                backend_tls: None,
            },
            hooks: NoHooks,
            upstream_tls: Default::default(),
        }
    }
}

impl<H: ProxyHooks> ProxyBuilder<H> {
    /// Sets the hooks that change how HTTP requests are handled (see
    /// [`ProxyHooks`]). Default [`NoHooks`]: the stock proxy.
    pub fn hooks<H2: ProxyHooks>(self, hooks: H2) -> ProxyBuilder<H2> {
        ProxyBuilder {
            backends: self.backends,
            discovery: self.discovery,
            strategy: self.strategy,
            config: self.config,
            hooks,
            upstream_tls: self.upstream_tls,
        }
    }

    /// Adds a backend with a weight (1 to [`MAX_WEIGHT`](crate::MAX_WEIGHT)):
    /// every provided strategy gives a backend of weight 3 three times the
    /// requests (or, with [`LeastConnections`](crate::LeastConnections), the
    /// load) of one of weight 1.
    pub fn backend(mut self, addr: SocketAddr, weight: u32) -> Self {
        self.backends.push((addr, weight));
        self
    }

    /// Adds several backends.
    pub fn backends(mut self, list: impl IntoIterator<Item = (SocketAddr, u32)>) -> Self {
        self.backends.extend(list);
        self
    }

    /// Adds a source of backends that change at run time, such as
    /// [`DnsDiscovery`](crate::DnsDiscovery) or one of an embedder's own
    /// (see [`Discovery`]). The proxy asks it while it serves and applies each
    /// set as a diff; a proxy with a source needs no fixed backend (until the
    /// source's first answer, requests get 503).
    pub fn discovery(mut self, source: impl Discovery) -> Self {
        self.discovery.push(Arc::new(source));
        self
    }

    /// Adds a boxed discovery source (see [`discovery`](Self::discovery)).
    pub fn discovery_boxed(mut self, source: Box<dyn Discovery>) -> Self {
        self.discovery.push(Arc::from(source));
        self
    }

    /// Sets the strategy. Default [`RoundRobin`].
    pub fn strategy(mut self, strategy: impl Strategy) -> Self {
        self.strategy = Box::new(strategy);
        self
    }

    /// Sets a boxed strategy (e.g. from [`StrategyKind::build`](crate::StrategyKind::build)).
    pub fn strategy_boxed(mut self, strategy: Box<dyn Strategy>) -> Self {
        self.strategy = strategy;
        self
    }

    /// HTTP (default) or TCP balancing.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Sets all backend timeouts at once. Default [`Timeouts::default`].
    pub fn timeouts(mut self, t: Timeouts) -> Self {
        self.config.timeouts = t;
        self
    }

    /// Backend connect timeout. Default 3 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.timeouts.connect = d;
        self
    }

    /// Wait for a backend's response head. Default 30 s (then 504).
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.config.timeouts.response = d;
        self
    }

    /// Longest pause while streaming a body to or from a backend. Default 30 s.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.config.timeouts.idle = d;
        self
    }

    /// Limits applied to clients (sizes, client-side timeouts). Default [`Limits::default`];
    /// its sizes also bound backend response heads.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Upstream connection pool. Default [`PoolConfig::default`].
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.config.pool = pool;
        self
    }

    /// Turns on active health checks. Default: off (passive ejection only).
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.config.health = Some(check);
        self
    }

    /// Passive ejection settings. Default [`PassiveHealth::default`].
    pub fn passive_health(mut self, passive: PassiveHealth) -> Self {
        self.config.passive = passive;
        self
    }

    /// Most backends tried for one request when connecting fails. Default 3 (at least 1).
    pub fn max_attempts(mut self, n: usize) -> Self {
        self.config.max_attempts = n.max(1);
        self
    }

    /// `Retry-After` seconds sent with 503 when no backend is available. Default 1.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.config.retry_after = secs;
        self
    }

    /// Most client connections served at once. Default: what the open-file
    /// limit allows at two descriptors a client ([`http_core::connection_capacity`]`(2)`),
    /// at most 25 000. At the cap, idle keep-alive clients are closed to make room.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n.max(1);
        self
    }

    /// How long in-flight work may take to finish after shutdown begins. Default 10 s.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.config.shutdown_timeout = d;
        self
    }

    /// Serves clients over TLS with these certificates (HTTP mode only):
    /// backends stay plain, and learn the client's scheme from
    /// `X-Forwarded-Proto: https`. The handshake counts join the metrics.
    pub fn tls(mut self, tls: http_core::TlsConfig) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Also serves HTTP/2 with prior knowledge (h2c) to clients on a plain
    /// listener (HTTP mode only; [`http_core::Server::h2c`]); over TLS,
    /// HTTP/2 is chosen by ALPN whatever this says. Requests received over
    /// HTTP/2 go to the backends as HTTP/1.1, re-framed from scratch (their
    /// head is what the strict HTTP/1.1 parser makes of them) with `Via: 2.0
    /// rr-proxy`. Default: off.
    pub fn h2c(mut self, on: bool) -> Self {
        self.config.h2c = on;
        self
    }

    /// Checks the settings and builds the proxy.
    pub fn build(mut self) -> Result<Proxy<H>, ProxyError> {
        if self.backends.is_empty() && self.discovery.is_empty() {
            return Err(ProxyError::NoBackends);
        }
        if self.config.tls.is_some() && self.config.mode == Mode::Tcp {
            return Err(ProxyError::InvalidConfig(
                "TLS termination needs HTTP mode (TCP mode relays bytes as they come)",
            ));
        }
        if self.config.h2c && self.config.mode == Mode::Tcp {
            return Err(ProxyError::InvalidConfig(
                "h2c needs HTTP mode (TCP mode relays bytes as they come)",
            ));
        }
        if self.config.timeouts.connect.is_zero()
            || self.config.timeouts.response.is_zero()
            || self.config.timeouts.idle.is_zero()
        {
            return Err(ProxyError::InvalidConfig("timeouts must be longer than zero"));
        }
        if let Some(h) = &self.config.health {
            if h.interval.is_zero() || h.timeout.is_zero() {
                return Err(ProxyError::InvalidConfig(
                    "health-check interval and timeout must be longer than zero",
                ));
            }
            if !h.path.starts_with('/') || !h.path.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ProxyError::InvalidConfig(
                    "health-check path must start with / and hold no spaces or control bytes",
                ));
            }
        }
        self.config.backend_tls = self.upstream_tls.finish(self.config.mode)?;
        let mut list: Vec<Arc<Backend>> = Vec::with_capacity(self.backends.len());
        for (i, (addr, weight)) in self.backends.iter().enumerate() {
            check_weight(*addr, *weight)?;
            if list.iter().any(|b| b.addr() == *addr) {
                return Err(ProxyError::DuplicateBackend(*addr));
            }
            let backend = self.upstream_tls.attach(Backend::new(i as u64, *addr, *weight))?;
            list.push(Arc::new(backend));
        }
        // Read now, so that where /proc is missing the start time is the build's.
        let _ = http_core::metrics::process_start_time();
        let mut balancer = Balancer::new(self.config, self.strategy, list);
        balancer.sources = self
            .discovery
            .iter()
            .map(|d| Arc::new(SourceStatus::new(d.name().to_owned())))
            .collect();
        let shared = Arc::new(balancer);
        Ok(Proxy {
            shared,
            discovery: self.discovery,
            hooks: Arc::new(self.hooks),
        })
    }
}

fn check_weight(addr: SocketAddr, weight: u32) -> Result<(), ProxyError> {
    if weight == 0 || weight > MAX_WEIGHT {
        return Err(ProxyError::ZeroWeight(addr));
    }
    Ok(())
}

/// A load balancer ready to serve. Build it with [`Proxy::builder`], keep a
/// [`ProxyHandle`] for stats and run-time changes, then [`serve`](Proxy::serve).
pub struct Proxy<H = NoHooks> {
    shared: Arc<Balancer>,
    discovery: Vec<Arc<dyn Discovery>>,
    hooks: Arc<H>,
}

impl<H> std::fmt::Debug for Proxy<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("mode", &self.shared.config.mode)
            .field("backends", &self.shared.all().len())
            .finish()
    }
}

impl Proxy {
    /// A builder with every default.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }
}

impl<H: ProxyHooks> Proxy<H> {
    /// The shared state (for the crate's own tests).
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Balancer> {
        &self.shared
    }

    /// The hooks the proxy calls (to read state they keep, such as counters).
    pub fn hooks(&self) -> &Arc<H> {
        &self.hooks
    }

    /// A handle for stats and run-time changes; cheap to clone, usable from any thread.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves clients accepted on `listener` until `shutdown` resolves, then stops
    /// accepting, lets in-flight requests finish (within the shutdown timeout) and
    /// returns. Runs the health checker meanwhile. HTTP mode serves through
    /// [`http_core::Server`]; TCP mode copies bytes per connection.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (trigger, signal) = ShutdownSignal::new();
        // The checker stops with the proxy, also when this future is dropped.
        let mut health = AbortOnDrop(tokio::spawn(crate::health::run(
            self.shared.clone(),
            signal.clone(),
        )));
        // One task per discovery source, stopped the same way.
        let mut sources: Vec<AbortOnDrop> = Vec::with_capacity(self.discovery.len());
        for (index, (source, status)) in self.discovery.iter().zip(&self.shared.sources).enumerate() {
            let task = crate::discovery::run(
                self.shared.clone(),
                index,
                source.clone(),
                status.clone(),
                signal.clone(),
            );
            sources.push(AbortOnDrop(tokio::spawn(task)));
        }
        let config = &self.shared.config;
        let result = match config.mode {
            Mode::Http => {
                let service = ProxyService::new(self.shared.clone(), self.hooks.clone());
                let server = Server::new(service)
                    .h2c(config.h2c)
                    .connection_gauge(self.shared.counters.client_connections.clone())
                    .limits(config.limits.clone())
                    .max_connections(config.max_connections)
                    .shutdown_timeout(config.shutdown_timeout);
                match &config.tls {
                    Some(tls) => server.tls(tls.clone()),
                    None => server,
                }
                .serve(listener, shutdown)
                .await
            }
            Mode::Tcp => crate::tcp::serve(self.shared.clone(), listener, shutdown).await,
        };
        trigger.trigger();
        let _ = (&mut health.0).await;
        for s in &mut sources {
            let _ = (&mut s.0).await;
        }
        result
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads stats and changes the backends of a running (or not yet running) proxy.
///
/// ```
/// let proxy = rr_proxy::Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 1)
///     .build()
///     .unwrap();
/// let handle = proxy.handle();
/// handle.add_backend("127.0.0.1:9003".parse().unwrap(), 1).unwrap();
/// handle.drain("127.0.0.1:9002".parse().unwrap()).unwrap();
/// let stats = handle.stats();
/// assert_eq!(stats.backends.len(), 2);
/// assert_eq!(stats.backends[0].state, rr_proxy::BackendState::Draining);
/// ```
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Balancer>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle").finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The certificates the proxy serves clients with, when it terminates TLS
    /// ([`ProxyBuilder::tls`]).
    pub fn tls(&self) -> Option<&http_core::TlsConfig> {
        self.shared.config.tls.as_ref()
    }

    /// The trust anchors and client configuration for `https://` backends
    /// (when the proxy has some, or was given them: [`ProxyBuilder::backend_tls`]).
    pub fn backend_tls(&self) -> Option<&crate::BackendTls> {
        self.shared.config.backend_tls.as_ref()
    }

    /// Proxy-wide and per-backend counters.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let responses = c.responses.snapshot();
        ProxyStats {
            strategy: self.shared.strategy.name().to_owned(),
            mode: self.shared.config.mode,
            requests: c.requests.load(Ordering::Relaxed),
            no_backend: c.no_backend.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            bad_gateway: c.bad_gateway.load(Ordering::Relaxed),
            gateway_timeout: c.gateway_timeout.load(Ordering::Relaxed),
            client_connections: c.client_connections.get(),
            client_sent_bytes: responses.body_bytes,
            responses: responses.statuses.into_iter().collect(),
            refused: responses.refused.into_iter().collect(),
            request_duration: responses.duration,
            upstream_duration: c.upstream_duration.snapshot(),
            backends: self.backends(),
            discovery: self.shared.sources.iter().map(|s| s.stats()).collect(),
            schema_version: crate::stats::STATS_SCHEMA_VERSION,
            uptime_seconds: self.shared.started.elapsed().as_secs(),
            backend_tls: self
                .shared
                .config
                .backend_tls
                .as_ref()
                .map(crate::BackendTls::stats),
        }
    }

    /// Each backend's counters, in the order added.
    pub fn backends(&self) -> Vec<BackendStats> {
        self.shared.all().iter().map(|b| b.stats()).collect()
    }

    /// One backend's counters.
    pub fn backend(&self, addr: SocketAddr) -> Result<BackendStats, ProxyError> {
        Ok(self.shared.find(addr)?.stats())
    }

    /// Adds a backend; it takes requests at once (healthy until checks say
    /// otherwise), in proportion to its weight.
    pub fn add_backend(&self, addr: SocketAddr, weight: u32) -> Result<(), ProxyError> {
        check_weight(addr, weight)?;
        let e = self.shared.add(addr, weight)?;
        tracing::info!(backend = %addr, weight, "backend {addr} added; {} eligible", e.count());
        e.log_summary();
        Ok(())
    }

    /// Removes a backend: it gets no new requests, its idle connections close, and
    /// requests in progress on it finish.
    pub fn remove_backend(&self, addr: SocketAddr) -> Result<(), ProxyError> {
        let e = self.shared.remove(addr)?;
        tracing::info!(backend = %addr, "backend {addr} removed; {} left", e.count());
        e.log_summary();
        Ok(())
    }

    /// Drains a backend: no new requests; requests in progress finish; pooled
    /// connections close.
    pub fn drain(&self, addr: SocketAddr) -> Result<(), ProxyError> {
        self.shared.find(addr)?.set_draining(true);
        let e = self.shared.refresh();
        tracing::info!(backend = %addr, "backend {addr} draining; {} left", e.count());
        e.log_summary();
        Ok(())
    }

    /// Puts a drained backend back into rotation (if it is healthy).
    pub fn enable(&self, addr: SocketAddr) -> Result<(), ProxyError> {
        self.shared.find(addr)?.set_draining(false);
        let e = self.shared.refresh();
        tracing::info!(backend = %addr, "backend {addr} enabled; {} eligible", e.count());
        e.log_summary();
        Ok(())
    }
}
