//! The builder, the proxy, its shared state and the run-time handle.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http_core::{Limits, Server, ShutdownSignal, ShutdownTrigger};
use tokio::net::TcpListener;

use crate::balancer::{Balancer, Common, Config};
use crate::config::{HealthCheck, Mode, PassiveHealth, PoolConfig, Timeouts, MAX_WEIGHT};
use crate::discovery::Discovery;
use crate::forward::ProxyService;
use crate::hooks::{NoHooks, ProxyHooks};
use crate::reload::{PoolPlan, ReloadStatus, Reloaded};
use crate::routing::{Rule, Table};
use crate::strategy::{RoundRobin, Strategy};
use crate::{BackendStats, ProxyConfig, ProxyError, ProxyStats};

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
    /// Pools and routes from a configuration ([`ProxyBuilder::config`]).
    pools: Vec<PoolPlan>,
    routes: Vec<Rule>,
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
            .field("pools", &self.pools.iter().map(|p| &p.name).collect::<Vec<_>>())
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
            pools: Vec::new(),
            routes: Vec::new(),
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
            pools: self.pools,
            routes: self.routes,
            upstream_tls: self.upstream_tls,
        }
    }

    /// Takes the pools, the routes and the proxy-wide settings of a
    /// configuration ([`ProxyConfig`], usually read from a file): `mode`,
    /// `h2c`, `max_connections`, `keep_alive_timeout`, `header_timeout`,
    /// `shutdown_timeout`, and each `[[pool]]` with its own strategy,
    /// backends (`dns:` and `srv:` ones followed with the file's `resolver`
    /// settings), health check, timeouts and retries. The listeners, the
    /// admin and the TLS files are the program's to set up. With a
    /// configuration, the builder's own backends, discovery sources and
    /// strategy are an error at [`build`](Self::build), and its pool settings
    /// ([`timeouts`](Self::timeouts) and the rest) are the pools' (a later
    /// call changes nothing). [`ProxyHandle::reload`] swaps in a new one.
    ///
    /// ```
    /// let text = r#"
    /// [[pool]]
    /// name = "web"
    /// backends = ["127.0.0.1:9002", "127.0.0.1:9003"]
    /// [[pool]]
    /// name = "api"
    /// backends = ["127.0.0.1:9004"]
    /// [[route]]
    /// path = "/api"
    /// pool = "api"
    /// [[route]]
    /// pool = "web"
    /// "#;
    /// let config = rr_proxy::ProxyConfig::from_toml_str(text, "proxy.toml").unwrap();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let proxy = rr_proxy::Proxy::builder().config(&config).unwrap().build().unwrap();
    /// let stats = proxy.handle().stats();
    /// assert_eq!(stats.pools.len(), 2);
    /// assert_eq!(stats.backends.len(), 3);
    /// # });
    /// ```
    ///
    /// Fails when a `dns:` or `srv:` source cannot be set up (a resolver
    /// configuration the system cannot give). Call it within a Tokio runtime
    /// when the configuration has such sources.
    pub fn config(mut self, config: &ProxyConfig) -> Result<Self, ProxyError> {
        self.config.mode = config.mode;
        self.config.h2c = config.h2c;
        if let Some(n) = config.max_connections {
            self.config.max_connections = n.max(1);
        }
        self.config.limits.keep_alive_timeout = config.keep_alive_timeout;
        self.config.limits.header_timeout = config.header_timeout;
        self.config.shutdown_timeout = config.shutdown_timeout;
        let (pools, routes) = crate::reload::plans(config, &self.config)?;
        self.pools = pools;
        self.routes = routes;
        Ok(self)
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
        check_global(&self.config)?;
        let mut plans = self.pools;
        if plans.is_empty() {
            if self.backends.is_empty() && self.discovery.is_empty() {
                return Err(ProxyError::NoBackends);
            }
            let tls_sources = self.discovery.iter().any(|d| d.tls());
            self.config.backend_tls = self.upstream_tls.finish(self.config.mode, tls_sources)?;
            plans.push(PoolPlan {
                name: "default".into(),
                strategy: self.strategy,
                config: self.config.clone(),
                backends: self.backends,
                https: self.upstream_tls.names(),
                discovery: self.discovery,
            });
        } else if !self.backends.is_empty() || !self.discovery.is_empty() {
            return Err(ProxyError::InvalidConfig(
                "backends given both to the builder and in the configuration's pools",
            ));
        }
        // Read now, so that where /proc is missing the start time is the build's.
        let _ = http_core::metrics::process_start_time();
        let common = Common::new();
        let table = crate::reload::build_table(plans, self.routes, &common, None)?;
        let shared = Arc::new(Shared {
            table: ArcSwap::from_pointee(table),
            common,
            config: self.config,
            reloads: ReloadStatus::default(),
            serving: Mutex::new(None),
            reload_lock: Mutex::new(()),
        });
        Ok(Proxy {
            shared,
            hooks: Arc::new(self.hooks),
        })
    }
}

/// The proxy-wide settings a proxy can be built with.
fn check_global(config: &Config) -> Result<(), ProxyError> {
    if config.tls.is_some() && config.mode == Mode::Tcp {
        return Err(ProxyError::InvalidConfig(
            "TLS termination needs HTTP mode (TCP mode relays bytes as they come)",
        ));
    }
    if config.h2c && config.mode == Mode::Tcp {
        return Err(ProxyError::InvalidConfig(
            "h2c needs HTTP mode (TCP mode relays bytes as they come)",
        ));
    }
    Ok(())
}

/// A pool's settings: timeouts, health check, weights, no address twice.
pub(crate) fn check_pool(config: &Config, backends: &[(SocketAddr, u32)]) -> Result<(), ProxyError> {
    if config.timeouts.connect.is_zero()
        || config.timeouts.response.is_zero()
        || config.timeouts.idle.is_zero()
    {
        return Err(ProxyError::InvalidConfig("timeouts must be longer than zero"));
    }
    if let Some(h) = &config.health {
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
    for (i, (addr, weight)) in backends.iter().enumerate() {
        check_weight(*addr, *weight)?;
        if backends[..i].iter().any(|(a, _)| a == addr) {
            return Err(ProxyError::DuplicateBackend(*addr));
        }
    }
    Ok(())
}

fn check_weight(addr: SocketAddr, weight: u32) -> Result<(), ProxyError> {
    if weight == 0 || weight > MAX_WEIGHT {
        return Err(ProxyError::ZeroWeight(addr));
    }
    Ok(())
}

/// The state a proxy and its handles share: the pools and routes in force
/// (swapped whole by a reload), the proxy-wide settings and counters.
pub(crate) struct Shared {
    pub table: ArcSwap<Table>,
    pub common: Common,
    /// The proxy-wide settings (and the pool settings of a proxy built
    /// without a configuration).
    pub config: Config,
    pub reloads: ReloadStatus,
    /// While serving (on one listener or more): the signal the pools' tasks
    /// stop on.
    serving: Mutex<Option<Serving>>,
    /// One reload at a time.
    pub reload_lock: Mutex<()>,
}

/// The pools' tasks run while at least one listener is served.
struct Serving {
    trigger: ShutdownTrigger,
    signal: ShutdownSignal,
    listeners: usize,
}

impl Shared {
    /// The first pool's balancer (TCP mode's and the builder's default).
    pub fn default_balancer(&self) -> Option<Arc<Balancer>> {
        self.table.load().default_pool().map(|p| p.balancer.clone())
    }

    fn serving(&self) -> std::sync::MutexGuard<'_, Option<Serving>> {
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A listener starts being served: the first starts the pools' tasks
    /// (and those of pools a reload brings later).
    fn enter(&self) {
        let mut serving = self.serving();
        match serving.as_mut() {
            Some(s) => s.listeners += 1,
            None => {
                let (trigger, signal) = ShutdownSignal::new();
                for p in &self.table.load().pools {
                    p.start(&signal);
                }
                *serving = Some(Serving {
                    trigger,
                    signal,
                    listeners: 1,
                });
            }
        }
    }

    /// A listener is no longer served; true when it was the last (the
    /// pools' tasks were told to stop).
    fn leave(&self) -> bool {
        let mut serving = self.serving();
        let last = serving.as_mut().is_some_and(|s| {
            s.listeners -= 1;
            s.listeners == 0
        });
        if last {
            if let Some(s) = serving.take() {
                s.trigger.trigger();
            }
        }
        last
    }

    /// Starts a new table's pools when the proxy is serving.
    pub fn start_pools(&self, table: &Table) {
        if let Some(s) = self.serving().as_ref() {
            for p in &table.pools {
                p.start(&s.signal);
            }
        }
    }

    /// After the last listener: waits for the pools' tasks to end.
    async fn join(&self) {
        let table = self.table.load_full();
        for p in &table.pools {
            p.join().await;
        }
    }

    /// Stops the pools' tasks at once (the last serving future was dropped).
    fn abort(&self) {
        for p in &self.table.load().pools {
            p.stop();
        }
    }
}

/// A load balancer ready to serve. Build it with [`Proxy::builder`], keep a
/// [`ProxyHandle`] for stats and run-time changes, then [`serve`](Proxy::serve).
///
/// A clone is the same proxy (pools, counters, hooks): serving a clone on
/// another listener serves both; to move to a new address without dropping
/// a request, serve a clone on the new listener, then resolve the old one's
/// shutdown future (its requests in progress finish).
pub struct Proxy<H = NoHooks> {
    shared: Arc<Shared>,
    hooks: Arc<H>,
}

impl<H> Clone for Proxy<H> {
    fn clone(&self) -> Self {
        Proxy {
            shared: self.shared.clone(),
            hooks: self.hooks.clone(),
        }
    }
}

impl<H> std::fmt::Debug for Proxy<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.shared.table.load();
        f.debug_struct("Proxy")
            .field("mode", &self.shared.config.mode)
            .field("pools", &table.pools.len())
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
    /// The first pool's balancer (for the crate's own tests).
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Arc<Balancer> {
        self.shared.default_balancer().expect("a pool")
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
    /// returns. Runs each pool's health checker and discovery sources meanwhile
    /// (while any clone serves). HTTP mode serves through [`http_core::Server`];
    /// TCP mode copies bytes per connection.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        self.shared.enter();
        // The pools' tasks stop with the last listener, also when this future
        // is dropped.
        let mut guard = LeaveOnDrop(Some(self.shared.clone()));
        let config = &self.shared.config;
        let result = match config.mode {
            Mode::Http => {
                let service = ProxyService::new(self.shared.clone(), self.hooks.clone());
                let server = Server::new(service)
                    .h2c(config.h2c)
                    .connection_gauge(self.shared.common.counters.client_connections.clone())
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
        guard.0 = None;
        if self.shared.leave() {
            self.shared.join().await;
        }
        result
    }
}

/// Leaves the serving count when dropped before the end, stopping the
/// pools' tasks at once when it was the last listener.
struct LeaveOnDrop(Option<Arc<Shared>>);

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            if shared.leave() {
                shared.abort();
            }
        }
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
    shared: Arc<Shared>,
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

    /// The trust anchors and client configuration for `https://` backends:
    /// the first pool's that has some (each pool has its own, from its
    /// `backend_ca`; [`ProxyBuilder::backend_tls`] for a proxy built without
    /// pools).
    pub fn backend_tls(&self) -> Option<crate::BackendTls> {
        let table = self.shared.table.load();
        table.pools.iter().find_map(|p| p.balancer.tls().cloned())
    }

    /// Proxy-wide counters, each pool's and each backend's.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.common.counters;
        let responses = c.responses.snapshot();
        let table = self.shared.table.load();
        let mut backends = Vec::new();
        let mut discovery = Vec::new();
        let mut pools = Vec::with_capacity(table.pools.len());
        for p in &table.pools {
            let b = &p.balancer;
            let before = backends.len();
            pool_backends(b, &mut backends);
            discovery.extend(b.sources.iter().map(|s| {
                let mut d = s.stats();
                d.pool = b.name.to_string();
                d
            }));
            let list = &backends[before..];
            pools.push(crate::stats::PoolStats {
                name: b.name.to_string(),
                strategy: b.strategy.name().to_owned(),
                requests: b.routed.load(Ordering::Relaxed),
                backends: list.len(),
                eligible: b.eligible().len(),
            });
        }
        ProxyStats {
            strategy: table
                .pools
                .first()
                .map_or_else(String::new, |p| p.balancer.strategy.name().to_owned()),
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
            backends,
            discovery,
            schema_version: crate::stats::STATS_SCHEMA_VERSION,
            uptime_seconds: self.shared.common.started.elapsed().as_secs(),
            backend_tls: crate::backend_tls::total_stats(table.pools.iter().filter_map(|p| p.balancer.tls())),
            pools,
            reloads: self.shared.reloads.stats(),
        }
    }

    /// Each backend's counters: each pool's in the order added, the pools in
    /// their order.
    pub fn backends(&self) -> Vec<BackendStats> {
        let mut out = Vec::new();
        for p in &self.shared.table.load().pools {
            pool_backends(&p.balancer, &mut out);
        }
        out
    }

    /// One backend's counters (the first pool's that holds it).
    pub fn backend(&self, addr: SocketAddr) -> Result<BackendStats, ProxyError> {
        let table = self.shared.table.load();
        let pool = table
            .holding(addr)
            .next()
            .ok_or(ProxyError::UnknownBackend(addr))?;
        let mut s = pool.balancer.find(addr)?.stats();
        s.pool = pool.balancer.name.to_string();
        Ok(s)
    }

    /// The pools' names, in order.
    pub fn pools(&self) -> Vec<String> {
        self.shared
            .table
            .load()
            .pools
            .iter()
            .map(|p| p.balancer.name.to_string())
            .collect()
    }

    /// Adds a backend to the first pool; it takes requests at once (healthy
    /// until checks say otherwise), in proportion to its weight.
    pub fn add_backend(&self, addr: SocketAddr, weight: u32) -> Result<(), ProxyError> {
        let table = self.shared.table.load();
        let pool = table.pools.first().ok_or(ProxyError::NoBackends)?;
        add_to(&pool.balancer, addr, weight)
    }

    /// Adds a backend to the pool named `pool` (see [`add_backend`](Self::add_backend)).
    pub fn add_backend_to(&self, pool: &str, addr: SocketAddr, weight: u32) -> Result<(), ProxyError> {
        let table = self.shared.table.load();
        let p = table
            .pool(pool)
            .ok_or_else(|| ProxyError::UnknownPool(pool.to_owned()))?;
        add_to(&p.balancer, addr, weight)
    }

    /// Adds a backend spoken to over TLS (`https://HOST:PORT`) to the pool
    /// named `pool` (the first pool with `None`): `addr` is where to connect,
    /// `host` the name its certificate must be valid for (a DNS name, also
    /// sent as SNI; or an IP address the certificate must carry). Verified
    /// against the pool's trust anchors (its `backend_ca`, or the system's
    /// roots, read now — **blocking** — for a pool that has none yet).
    /// Refused in TCP mode and for a `host` that is no DNS name or IP address.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let proxy = rr_proxy::Proxy::builder().backend("127.0.0.1:9002".parse()?, 1).build()?;
    /// let h = proxy.handle();
    /// # if rr_proxy::BackendTls::system_roots().is_ok() {
    /// h.add_https_backend(None, "127.0.0.1:9443".parse()?, 2, "localhost")?;
    /// assert_eq!(h.backend("127.0.0.1:9443".parse()?)?.weight, 2);
    /// # }
    /// assert!(h.add_https_backend(None, "127.0.0.1:9444".parse()?, 1, "not a name").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_https_backend(
        &self,
        pool: Option<&str>,
        addr: SocketAddr,
        weight: u32,
        host: &str,
    ) -> Result<(), ProxyError> {
        if self.shared.config.mode == Mode::Tcp {
            return Err(ProxyError::InvalidConfig(
                "https backends need HTTP mode (TCP mode relays bytes as they come)",
            ));
        }
        let table = self.shared.table.load();
        let p = match pool {
            Some(name) => table
                .pool(name)
                .ok_or_else(|| ProxyError::UnknownPool(name.to_owned()))?,
            None => table.pools.first().ok_or(ProxyError::NoBackends)?,
        };
        let b = &p.balancer;
        // The name is checked before the trust store is read.
        rustls_pki_types::ServerName::try_from(host)
            .map_err(|_| ProxyError::BadServerName(host.to_owned()))?;
        let target = b.tls_or_system()?.target(host)?;
        check_weight(addr, weight)?;
        let e = b.add(addr, weight, Some(target))?;
        tracing::info!(backend = %addr, weight, pool = %b.name, host, "backend https://{host} ({addr}) added; {} eligible", e.count());
        e.log_summary();
        Ok(())
    }

    /// Removes a backend from every pool that holds it: it gets no new
    /// requests, its idle connections close, and requests in progress on it finish.
    pub fn remove_backend(&self, addr: SocketAddr) -> Result<(), ProxyError> {
        self.each_holding(addr, |b| {
            let e = b.remove(addr)?;
            tracing::info!(backend = %addr, pool = %b.name, "backend {addr} removed; {} left", e.count());
            e.log_summary();
            Ok(())
        })
    }

    /// Drains a backend in every pool that holds it: no new requests;
    /// requests in progress finish; pooled connections close.
    pub fn drain(&self, addr: SocketAddr) -> Result<(), ProxyError> {
        self.each_holding(addr, |b| {
            b.find(addr)?.set_draining(true);
            let e = b.refresh();
            tracing::info!(backend = %addr, pool = %b.name, "backend {addr} draining; {} left", e.count());
            e.log_summary();
            Ok(())
        })
    }

    /// Puts a drained backend back into rotation (if it is healthy), in every
    /// pool that holds it.
    pub fn enable(&self, addr: SocketAddr) -> Result<(), ProxyError> {
        self.each_holding(addr, |b| {
            b.find(addr)?.set_draining(false);
            let e = b.refresh();
            tracing::info!(backend = %addr, pool = %b.name, "backend {addr} enabled; {} eligible", e.count());
            e.log_summary();
            Ok(())
        })
    }

    fn each_holding(
        &self,
        addr: SocketAddr,
        mut f: impl FnMut(&Balancer) -> Result<(), ProxyError>,
    ) -> Result<(), ProxyError> {
        let table = self.shared.table.load();
        let mut found = false;
        for p in table.holding(addr) {
            found = true;
            f(&p.balancer)?;
        }
        if found {
            Ok(())
        } else {
            Err(ProxyError::UnknownBackend(addr))
        }
    }

    /// Swaps in the pools and routes of `config`, atomically: requests in
    /// progress finish on the pools they started with; a backend in a pool
    /// of the same name before and after (matched by address) keeps its
    /// health, counters, drained state and idle connections (a new weight
    /// applies); a backend the new pool lacks is removed (its requests in
    /// progress finish); backends a `dns:` or `srv:` source of the pool
    /// found stay until that source answers again. Backends added through
    /// the handle or the admin endpoint are not in `config`, so a reload
    /// removes them, as a restart would; so are discovery sources of the
    /// embedder's own ([`ProxyBuilder::discovery`]): a pool's sources after
    /// a reload are the `dns:` and `srv:` entries of `config`.
    ///
    /// Refused, leaving everything as it was, when `config` changes a
    /// proxy-wide setting that needs a restart (`mode`, `h2c`,
    /// `max_connections`, `keep_alive_timeout`, `header_timeout`,
    /// `shutdown_timeout`) or when a pool cannot be set up. Either way the
    /// outcome is counted in [`ProxyStats::reloads`] (and `/metrics`).
    /// The listeners, admin and TLS files of `config` are the program's.
    ///
    /// ```
    /// let first = rr_proxy::ProxyConfig::from_toml_str(
    ///     "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\"]\n", "a.toml").unwrap();
    /// let second = rr_proxy::ProxyConfig::from_toml_str(
    ///     "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\", \"127.0.0.1:9003=2\"]\n", "b.toml").unwrap();
    /// let proxy = rr_proxy::Proxy::builder().config(&first).unwrap().build().unwrap();
    /// let reloaded = proxy.handle().reload(&second).unwrap();
    /// assert_eq!(reloaded.added, 1);
    /// assert_eq!(proxy.handle().stats().backends.len(), 2);
    /// assert_eq!(proxy.handle().stats().reloads.succeeded, 1);
    /// ```
    pub fn reload(&self, config: &ProxyConfig) -> Result<Reloaded, ProxyError> {
        let r = crate::reload::reload(&self.shared, config);
        match &r {
            Ok(done) => self.shared.reloads.record(Ok(done.to_string())),
            Err(e) => self.shared.reloads.record(Err(e.to_string())),
        }
        r
    }

    /// Counts a reload that failed before it reached [`reload`](Self::reload)
    /// (a file that does not parse, a listener that cannot be bound), so that
    /// [`ProxyStats::reloads`] and `/metrics` tell every outcome.
    pub fn reload_failed(&self, why: &str) {
        self.shared.reloads.record(Err(why.to_owned()));
    }
}

/// `b`'s backends' counters, with the pool's name, appended to `out`.
fn pool_backends(b: &Balancer, out: &mut Vec<BackendStats>) {
    out.extend(b.all().iter().map(|x| {
        let mut s = x.stats();
        s.pool = b.name.to_string();
        s
    }));
}

fn add_to(b: &Balancer, addr: SocketAddr, weight: u32) -> Result<(), ProxyError> {
    check_weight(addr, weight)?;
    let e = b.add(addr, weight, None)?;
    tracing::info!(backend = %addr, weight, pool = %b.name, "backend {addr} added; {} eligible", e.count());
    e.log_summary();
    Ok(())
}
