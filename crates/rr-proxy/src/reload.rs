//! Turning a configuration into pools and routes, and swapping them in while
//! the proxy serves: what a pool keeps across a reload, and how reloads are
//! counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::backend::Backend;
use crate::backend_tls::BackendTls;
use crate::balancer::{Balancer, Common, Config};
use crate::config::{BackendSource, Mode};
use crate::discovery::{Discovery, DnsDiscovery, SourceStatus};
use crate::proxy::{check_pool, Shared};
use crate::routing::{Pool, Rule, Table};
use crate::strategy::Strategy;
use crate::{ProxyConfig, ProxyError};

/// A pool to build: what a configuration (or the builder) says of it.
pub(crate) struct PoolPlan {
    pub name: String,
    pub strategy: Box<dyn Strategy>,
    /// The proxy-wide settings with the pool's own.
    pub config: Config,
    pub backends: Vec<(SocketAddr, u32)>,
    /// The `https://` ones among `backends`: address and name (spoken to
    /// with `config.backend_tls`).
    pub https: Vec<(SocketAddr, String)>,
    pub discovery: Vec<Arc<dyn Discovery>>,
}

/// The pools and routes of `config`, the proxy-wide settings taken from
/// `global`. `dns:` and `srv:` sources are made here (their first lookup
/// happens when the pool's tasks start).
pub(crate) fn plans(config: &ProxyConfig, global: &Config) -> Result<(Vec<PoolPlan>, Vec<Rule>), ProxyError> {
    let mut plans = Vec::with_capacity(config.pools.len());
    // Read once for every pool that trusts them.
    let mut system_roots: Option<BackendTls> = None;
    for p in &config.pools {
        let mut backends = Vec::new();
        let mut https = Vec::new();
        let mut discovery: Vec<Arc<dyn Discovery>> = Vec::new();
        for b in &p.backends {
            match b {
                BackendSource::Static(spec) => backends.push((spec.addr, spec.weight)),
                BackendSource::Https { spec, host } => {
                    backends.push((spec.addr, spec.weight));
                    https.push((spec.addr, host.clone()));
                }
                source => {
                    let d =
                        DnsDiscovery::new(source, &config.resolver).map_err(|e| ProxyError::Discovery {
                            name: source.to_string(),
                            reason: e.to_string(),
                        })?;
                    discovery.push(Arc::new(d));
                }
            }
        }
        // A CA file with no backend over TLS yet is loaded for https
        // backends added through the handle (the admin API) in HTTP mode.
        let no_tls = https.is_empty()
            && !discovery.iter().any(|d| d.tls())
            && (p.backend_ca.is_none() || global.mode == Mode::Tcp);
        let backend_tls = match (&p.backend_ca, no_tls) {
            (_, true) => None,
            _ if global.mode == Mode::Tcp => {
                return Err(ProxyError::InvalidConfig(
                    "https backends need HTTP mode (TCP mode relays bytes as they come)",
                ))
            }
            // Read again at each reload: a replaced CA file takes effect.
            (Some(ca), false) => {
                Some(BackendTls::from_ca_file(ca).map_err(|e| ProxyError::BackendTls(e.to_string()))?)
            }
            (None, false) => match &system_roots {
                Some(t) => Some(t.clone()),
                None => {
                    let t = BackendTls::system_roots().map_err(|e| ProxyError::BackendTls(e.to_string()))?;
                    system_roots = Some(t.clone());
                    Some(t)
                }
            },
        };
        let pool_config = Config {
            timeouts: p.timeouts.clone(),
            pool: p.pool.clone(),
            health: p.health.clone(),
            passive: p.passive.clone(),
            max_attempts: p.max_attempts.max(1),
            backend_tls,
            ..global.clone()
        };
        plans.push(PoolPlan {
            name: p.name.clone(),
            strategy: p.strategy.build_with(&p.options),
            config: pool_config,
            backends,
            https,
            discovery,
        });
    }
    let routes = config
        .routes
        .iter()
        .map(|r| Rule {
            host: r.host.clone(),
            path: r.path.clone(),
            pool: r.pool,
        })
        .collect();
    Ok((plans, routes))
}

/// Builds the pools of `plans` (checked here), each taking over from the
/// pool of the same name in `old`: its backends (matched by address) with
/// their state, what its discovery sources found (matched by name), their
/// status, and its request counter.
pub(crate) fn build_table(
    plans: Vec<PoolPlan>,
    rules: Vec<Rule>,
    common: &Common,
    old: Option<&Table>,
) -> Result<Table, ProxyError> {
    for (i, p) in plans.iter().enumerate() {
        check_pool(&p.config, &p.backends)?;
        if plans[..i].iter().any(|q| q.name == p.name) {
            return Err(ProxyError::InvalidConfig("two pools have the same name"));
        }
    }
    if plans.is_empty() {
        return Err(ProxyError::NoBackends);
    }
    if rules.iter().any(|r| r.pool >= plans.len()) {
        return Err(ProxyError::InvalidConfig(
            "a route names a pool that does not exist",
        ));
    }
    let mut pools = Vec::with_capacity(plans.len());
    for plan in plans {
        let before = old.and_then(|t| t.pool(&plan.name)).map(|p| &p.balancer);
        pools.push(Arc::new(build_pool(plan, common, before.map(|b| &**b))?));
    }
    Ok(Table { pools, rules })
}

fn build_pool(mut plan: PoolPlan, common: &Common, old: Option<&Balancer>) -> Result<Pool, ProxyError> {
    // A pool's handshakes count on across reloads.
    let tls = match (
        plan.config.backend_tls.take(),
        old.and_then(|o| o.config.backend_tls.as_ref()),
    ) {
        (Some(new), Some(before)) => Some(new.counted_as(before)),
        (new, _) => new,
    };
    plan.config.backend_tls = tls.clone();
    let mut targets = Vec::with_capacity(plan.https.len());
    for (addr, host) in &plan.https {
        match &tls {
            Some(tls) => targets.push((*addr, tls.target(host)?)),
            None => {
                return Err(ProxyError::InvalidConfig(
                    "https backends need the trust anchors of ProxyBuilder::backend_tls",
                ))
            }
        }
    }
    let old_all = old.map(|b| b.all());
    let kept = |addr: SocketAddr| {
        old_all
            .as_ref()
            .and_then(|all| all.iter().find(|b| b.addr() == addr).cloned())
    };
    // The same backend object when the address was there, so that its
    // health, counters, drained state and idle connections carry on; it
    // speaks TLS (with this configuration's trust anchors) or not as the
    // new entry says (`carried`: a backend a source of the same name found,
    // which speaks as before: a source's name holds its scheme).
    let take = |addr: SocketAddr, weight: u32, carried: bool| -> Result<Arc<Backend>, ProxyError> {
        let tls = if carried {
            match (kept(addr).and_then(|b| b.tls()), &tls) {
                (Some(before), Some(tls)) => Some(tls.target(before.host())?),
                _ => None,
            }
        } else {
            targets.iter().find(|(a, _)| *a == addr).map(|(_, t)| t.clone())
        };
        let kept = kept(addr);
        Ok(match kept {
            Some(b) => {
                b.set_weight(weight);
                b.set_tls(tls);
                b
            }
            None => {
                let b = Backend::new(common.ids.fetch_add(1, Ordering::Relaxed), addr, weight);
                Arc::new(match tls {
                    Some(t) => b.with_tls(t),
                    None => b,
                })
            }
        })
    };
    let mut list: Vec<Arc<Backend>> = plan
        .backends
        .iter()
        .map(|&(a, w)| take(a, w, false))
        .collect::<Result<_, _>>()?;
    // What each source of the same name found before, kept until it answers again.
    let mut carried: Vec<(usize, SocketAddr, u32)> = Vec::new();
    let mut statuses = Vec::with_capacity(plan.discovery.len());
    for (i, d) in plan.discovery.iter().enumerate() {
        let before = old.and_then(|o| o.sources.iter().position(|s| s.name() == d.name()));
        match (old, before) {
            (Some(o), Some(j)) => {
                carried.extend(o.discovered(j).into_iter().map(|(a, w)| (i, a, w)));
                statuses.push(o.sources[j].clone());
            }
            _ => statuses.push(Arc::new(SourceStatus::new(d.name().to_owned()))),
        }
    }
    for &(_, addr, weight) in &carried {
        if !list.iter().any(|b| b.addr() == addr) {
            list.push(take(addr, weight, true)?);
        }
    }
    let routed = old.map_or_else(|| Arc::new(AtomicU64::new(0)), |o| o.routed.clone());
    let fixed: Vec<SocketAddr> = plan.backends.iter().map(|&(a, _)| a).collect();
    let mut balancer = Balancer::new(plan.name.into(), plan.config, plan.strategy, list, common, routed);
    for (i, addr, weight) in carried {
        balancer.adopt_discovered(i, addr, weight, fixed.contains(&addr));
    }
    balancer.sources = statuses;
    Ok(Pool::new(Arc::new(balancer), plan.discovery))
}

/// What a reload changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloaded {
    /// Pools in force now.
    pub pools: usize,
    /// Routes in force now.
    pub routes: usize,
    /// Backends that were in no pool of that name before.
    pub added: usize,
    /// Backends no longer in their pool (drained: requests in progress finish).
    pub removed: usize,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pools, {} routes; {} backends added, {} removed",
            self.pools, self.routes, self.added, self.removed
        )
    }
}

/// Builds the pools and routes of `config` and swaps them in.
pub(crate) fn reload(shared: &Shared, config: &ProxyConfig) -> Result<Reloaded, ProxyError> {
    let _one = shared.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
    let g = &shared.config;
    let max_connections_changed = config
        .max_connections
        .is_some_and(|n| n.max(1) != g.max_connections);
    let restart = [
        ("mode", config.mode != g.mode),
        ("h2c", config.h2c != g.h2c),
        ("max_connections", max_connections_changed),
        (
            "keep_alive_timeout",
            config.keep_alive_timeout != g.limits.keep_alive_timeout,
        ),
        ("header_timeout", config.header_timeout != g.limits.header_timeout),
        ("shutdown_timeout", config.shutdown_timeout != g.shutdown_timeout),
    ];
    if let Some((key, _)) = restart.iter().find(|(_, changed)| *changed) {
        return Err(ProxyError::NeedsRestart(key));
    }
    let old = shared.table.load_full();
    let (plans, rules) = plans(config, g)?;
    let table = build_table(plans, rules, &shared.common, Some(&old))?;

    let mut added = 0;
    let mut removed = 0;
    for p in &table.pools {
        let before = old.pool(&p.balancer.name).map(|o| o.balancer.all());
        for b in p.balancer.all().iter() {
            if !before
                .as_ref()
                .is_some_and(|all| all.iter().any(|o| Arc::ptr_eq(o, b)))
            {
                added += 1;
            }
        }
    }
    for o in &old.pools {
        let after = table.pool(&o.balancer.name).map(|p| p.balancer.all());
        for b in o.balancer.all().iter() {
            let kept = after
                .as_ref()
                .is_some_and(|all| all.iter().any(|n| Arc::ptr_eq(n, b)));
            if !kept {
                b.mark_removed();
                removed += 1;
                tracing::info!(backend = %b.addr(), pool = %o.balancer.name, "backend {} removed from pool {} by the reload", b.addr(), o.balancer.name);
            }
        }
    }
    for o in &old.pools {
        // Requests still on the old pools retry among what is left.
        let _ = o.balancer.refresh();
    }
    let done = Reloaded {
        pools: table.pools.len(),
        routes: table.rules.len(),
        added,
        removed,
    };
    let table = Arc::new(table);
    for o in &old.pools {
        if let Some(p) = table.pool(&o.balancer.name) {
            o.balancer.set_successor(&p.balancer);
        }
    }
    shared.table.store(table.clone());
    for o in &old.pools {
        o.stop();
    }
    shared.start_pools(&table);
    for p in &table.pools {
        p.balancer.refresh().log_summary();
    }
    tracing::info!("configuration reloaded: {done}");
    Ok(done)
}

/// Reloads counted, and the last one's outcome.
#[derive(Debug, Default)]
pub(crate) struct ReloadStatus {
    succeeded: AtomicU64,
    failed: AtomicU64,
    last: Mutex<Option<(SystemTime, Result<String, String>)>>,
}

impl ReloadStatus {
    pub fn record(&self, outcome: Result<String, String>) {
        let counter = if outcome.is_ok() {
            &self.succeeded
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((SystemTime::now(), outcome));
    }

    pub fn stats(&self) -> ReloadStats {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (at, ok, message) = match last.as_ref() {
            Some((at, r)) => {
                let secs = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let (ok, m) = match r {
                    Ok(m) => (true, m.clone()),
                    Err(m) => (false, m.clone()),
                };
                (Some(secs), Some(ok), Some(m))
            }
            None => (None, None, None),
        };
        ReloadStats {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_unix_seconds: at,
            last_succeeded: ok,
            last_message: message,
        }
    }
}

/// Configuration reloads ([`ProxyHandle::reload`](crate::ProxyHandle::reload),
/// SIGHUP and `POST /reload` in the binary): how many, and the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReloadStats {
    /// Reloads that took effect.
    pub succeeded: u64,
    /// Reloads refused (the old configuration kept serving).
    pub failed: u64,
    /// When the last reload ended, in seconds since the Unix epoch (`None`
    /// before the first).
    pub last_unix_seconds: Option<u64>,
    /// Whether the last reload took effect.
    pub last_succeeded: Option<bool>,
    /// What the last reload changed, or why it was refused.
    pub last_message: Option<String>,
}

#[cfg(test)]
mod tests {
    use crate::{BackendState, Proxy, ProxyConfig, ProxyError};

    fn config(text: &str) -> ProxyConfig {
        ProxyConfig::from_toml_str(text, "test.toml").unwrap()
    }

    #[test]
    fn kept_backends_keep_their_state_and_take_new_weights() {
        let proxy = Proxy::builder()
            .config(&config(
                "[[pool]]\nname = \"web\"\nbackends = [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n",
            ))
            .unwrap()
            .build()
            .unwrap();
        let h = proxy.handle();
        h.drain("10.0.0.2:80".parse().unwrap()).unwrap();
        let done = h
            .reload(&config(
                "[[pool]]\nname = \"web\"\nbackends = [\"10.0.0.2:80=2\", \"10.0.0.3:80\"]\n\
                 [[pool]]\nname = \"api\"\nbackends = [\"10.0.0.1:80\"]\n\
                 [[route]]\npath = \"/api\"\npool = \"api\"\n[[route]]\npool = \"web\"\n",
            ))
            .unwrap();
        assert_eq!((done.pools, done.routes, done.added, done.removed), (2, 2, 2, 1));
        let stats = h.stats();
        let find = |pool: &str, addr: &str| {
            stats
                .backends
                .iter()
                .find(|b| b.pool == pool && b.addr.to_string() == addr)
                .cloned()
                .unwrap_or_else(|| panic!("{pool} {addr}"))
        };
        let b = find("web", "10.0.0.2:80");
        assert_eq!((b.state, b.weight), (BackendState::Draining, 2));
        assert_eq!(find("web", "10.0.0.3:80").state, BackendState::Healthy);
        // The same address in another pool is another backend.
        assert_eq!(find("api", "10.0.0.1:80").state, BackendState::Healthy);
        assert_eq!(stats.backends.len(), 3);
        assert_eq!(h.pools(), ["web", "api"]);
        // The drained backend is not eligible in the new pool either.
        assert_eq!(stats.pools[0].eligible, 1);
    }

    #[test]
    fn a_change_that_needs_a_restart_is_refused_and_counted() {
        let text = "[[pool]]\nname = \"web\"\nbackends = [\"10.0.0.1:80\"]\n";
        let proxy = Proxy::builder().config(&config(text)).unwrap().build().unwrap();
        let h = proxy.handle();
        let tcp = config(&format!("mode = \"tcp\"\n{text}"));
        assert_eq!(h.reload(&tcp), Err(ProxyError::NeedsRestart("mode")));
        let slow = config(&format!("header_timeout = \"1s\"\n{text}"));
        assert_eq!(h.reload(&slow), Err(ProxyError::NeedsRestart("header_timeout")));
        h.reload_failed("test.toml:1:1: x: bad");
        let r = h.stats().reloads;
        assert_eq!((r.succeeded, r.failed, r.last_succeeded), (0, 3, Some(false)));
        assert_eq!(r.last_message.as_deref(), Some("test.toml:1:1: x: bad"));
        assert_eq!(h.stats().backends.len(), 1);
    }

    #[test]
    fn a_backend_keeps_its_state_when_it_turns_to_tls_and_back() {
        let dir = test_support::TempDir::new("reload-tls");
        let ca = test_support::TestCa::new(dir.path());
        let ca = ca.ca_pem.display();
        let plain = "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9443\"]\n";
        let https = format!(
            "[[pool]]\nname = \"web\"\nbackends = [\"https://127.0.0.1:9443\"]\nbackend_ca = \"{ca}\"\n"
        );
        let proxy = Proxy::builder().config(&config(plain)).unwrap().build().unwrap();
        let h = proxy.handle();
        h.drain("127.0.0.1:9443".parse().unwrap()).unwrap();
        let backend = || proxy.shared().find("127.0.0.1:9443".parse().unwrap()).unwrap();
        assert!(!backend().is_tls());
        assert!(h.backend_tls().is_none());
        h.reload(&config(&https)).unwrap();
        assert!(backend().is_tls(), "the kept backend speaks TLS now");
        assert_eq!(
            h.stats().backends[0].state,
            BackendState::Draining,
            "and keeps its state"
        );
        assert!(h.backend_tls().unwrap().trust().contains("ca.pem"));
        assert_eq!(h.stats().backend_tls.map(|s| s.full), Some(0));
        h.reload(&config(plain)).unwrap();
        assert!(!backend().is_tls());
        // A CA file that is gone fails the reload, which changes nothing.
        let gone = https.replace("ca.pem", "gone.pem");
        assert!(matches!(h.reload(&config(&gone)), Err(ProxyError::BackendTls(_))));
        assert!(!backend().is_tls());
    }

    #[test]
    fn an_ejection_through_the_old_pool_reaches_its_successor() {
        let text = "[[pool]]\nname = \"web\"\nbackends = [\"10.0.0.1:80\", \"10.0.0.2:80\"]\n";
        let proxy = Proxy::builder().config(&config(text)).unwrap().build().unwrap();
        let old = proxy.shared();
        proxy.handle().reload(&config(text)).unwrap();
        let new = proxy.shared();
        assert!(!std::sync::Arc::ptr_eq(&old, &new));
        // A request still on the old pool ejects a backend.
        let b = old.find("10.0.0.1:80".parse().unwrap()).unwrap();
        for _ in 0..10 {
            old.failure(&b, crate::FailureReason::ConnectTimeout);
        }
        assert_eq!(
            new.eligible().len(),
            1,
            "the new pool still offers the ejected backend"
        );
    }
}
