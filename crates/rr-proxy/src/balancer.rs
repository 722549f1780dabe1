//! The balancer state shared by forwarding, TCP mode, the health checker, the
//! admin endpoint and every handle: the backends, the strategy, picking, failure
//! accounting and the proxy-wide counters.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use http_core::metrics::{ConnectionGauge, DurationHistogram, ResponseMetrics, DEFAULT_BUCKETS};
use http_core::Limits;

use crate::backend::{Backend, Change};
use crate::backend_tls::TlsTarget;
use crate::config::{HealthCheck, Mode, PassiveHealth, PoolConfig, Timeouts};
use crate::discovery::{Diff, SourceStatus};
use crate::reason::FailureReason;
use crate::strategy::{PickRequest, Strategy};
use crate::ProxyError;

/// Everything fixed when the proxy is built.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub mode: Mode,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub pool: PoolConfig,
    pub health: Option<HealthCheck>,
    pub passive: PassiveHealth,
    pub max_attempts: usize,
    pub retry_after: u64,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    /// Serve clients over TLS (HTTP mode).
    pub tls: Option<http_core::TlsConfig>,
    /// Serve HTTP/2 with prior knowledge on the plain listener (HTTP mode).
    pub h2c: bool,
    /// The client configuration for `https://` backends.
    pub backend_tls: Option<crate::BackendTls>,
}

/// What every pool of a proxy shares: backend ids, the proxy-wide counters,
/// the start time.
#[derive(Debug)]
pub(crate) struct Common {
    pub ids: Arc<AtomicU64>,
    pub counters: Arc<Counters>,
    pub started: std::time::Instant,
}

impl Common {
    pub fn new() -> Common {
        Common {
            ids: Arc::new(AtomicU64::new(0)),
            counters: Arc::new(Counters::default()),
            started: std::time::Instant::now(),
        }
    }
}

/// Proxy-wide counters.
#[derive(Debug)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub no_backend: AtomicU64,
    pub retries: AtomicU64,
    pub bad_gateway: AtomicU64,
    pub gateway_timeout: AtomicU64,
    /// Responses to clients: durations, statuses, body bytes, refusals (HTTP
    /// mode, from `Service::on_response`; TCP mode counts each connection as
    /// its access line shows it).
    pub responses: ResponseMetrics,
    /// From sending a request to a backend to its response head (HTTP mode).
    pub upstream_duration: DurationHistogram,
    /// Client connections open now.
    pub client_connections: ConnectionGauge,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: AtomicU64::new(0),
            no_backend: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            bad_gateway: AtomicU64::new(0),
            gateway_timeout: AtomicU64::new(0),
            responses: ResponseMetrics::new(&DEFAULT_BUCKETS),
            upstream_duration: DurationHistogram::new(&DEFAULT_BUCKETS),
            client_connections: ConnectionGauge::new(),
        }
    }
}

/// One pool's balancer state, which forwarding, TCP mode, the health checker
/// and every handle share: the backends, the strategy, picking, and failure
/// accounting. A reload replaces it with a successor holding the same
/// [`Backend`]s (their health, counters and idle connections); requests that
/// started on it finish on it.
pub(crate) struct Balancer {
    /// The pool's name (`default` for a proxy built without pools).
    pub name: Arc<str>,
    pub config: Config,
    pub strategy: Box<dyn Strategy>,
    /// Requests (connections in TCP mode) routed to this pool; shared with
    /// the pool's successors, so that it counts on across reloads.
    pub routed: Arc<AtomicU64>,
    /// Every backend, in the order added.
    all: RwLock<Arc<[Arc<Backend>]>>,
    /// The backends that may take new requests, in the order added.
    eligible: RwLock<Arc<[Arc<Backend>]>>,
    /// The eligible set is empty (said once in the log, until one comes back).
    none_left: AtomicBool,
    /// Backend ids, unique across every pool of the proxy (and its reloads).
    next_id: Arc<AtomicU64>,
    /// Proxy-wide counters, shared by every pool.
    pub counters: Arc<Counters>,
    /// The balancer a reload replaced this one with: a backend's health
    /// changing through a request that started here refreshes it too.
    successor: OnceLock<Weak<Balancer>>,
    /// Who put each backend there: fixed (the builder, the admin API) and
    /// which discovery sources, with the weight each gave. Locked before `all`.
    owners: Mutex<HashMap<SocketAddr, Owners>>,
    /// Each discovery source's status, by index.
    pub sources: Vec<Arc<SourceStatus>>,
    /// The system's roots, loaded for an https backend added through the
    /// handle to a pool that had no trust anchors.
    late_tls: OnceLock<crate::BackendTls>,
}

/// Who holds a backend in the set.
#[derive(Debug, Default)]
struct Owners {
    /// Given to the builder or added through the handle (admin API).
    fixed: bool,
    /// Discovery sources that yield it: (index, the weight it gave).
    sources: Vec<(usize, u32)>,
}

/// How many backends may take requests after a change, for the log.
#[must_use = "log the change, then call `log_summary`"]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Eligibility {
    /// Backends that may take new requests.
    pub eligible: usize,
    /// Every backend.
    pub total: usize,
    /// The change left none (there were some before).
    emptied: bool,
    /// The change brought one back (there were none before).
    refilled: bool,
}

impl Eligibility {
    /// `2 of 4 backends` (or `1 of 1 backend`).
    pub fn count(&self) -> String {
        let noun = if self.total == 1 { "backend" } else { "backends" };
        format!("{} of {} {noun}", self.eligible, self.total)
    }

    /// Says what the change means for every request, when it means something
    /// new: none left (error, once), or requests served again (info).
    pub fn log_summary(&self) {
        if self.emptied {
            tracing::error!(
                total = self.total,
                "no backend left: every request gets 503 until one comes back"
            );
        } else if self.refilled {
            tracing::info!(
                eligible = self.eligible,
                total = self.total,
                "{} eligible again: requests are served again",
                self.count()
            );
        }
    }
}

impl Balancer {
    /// The backends that may take new requests now.
    pub fn eligible(&self) -> Arc<[Arc<Backend>]> {
        self.eligible.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every backend.
    pub fn all(&self) -> Arc<[Arc<Backend>]> {
        self.all.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Recomputes the eligible set after a health or admin change. Computed
    /// under the lock, so that of two changes at once the later one's view wins.
    pub fn refresh(&self) -> Eligibility {
        let mut slot = self.eligible.write().unwrap_or_else(|e| e.into_inner());
        let all = self.all();
        let eligible: Arc<[Arc<Backend>]> = all.iter().filter(|b| b.is_eligible()).cloned().collect();
        let none = eligible.is_empty();
        let was_none = self.none_left.swap(none, Ordering::Relaxed);
        let e = Eligibility {
            eligible: eligible.len(),
            total: all.len(),
            emptied: none && !was_none,
            refilled: !none && was_none,
        };
        *slot = eligible;
        drop(slot);
        if let Some(next) = self.successor.get().and_then(Weak::upgrade) {
            let _ = next.refresh();
        }
        e
    }

    /// Names the balancer a reload replaced this one with.
    pub fn set_successor(&self, next: &Arc<Balancer>) {
        let _ = self.successor.set(Arc::downgrade(next));
    }

    /// Picks a backend for a request (or connection), skipping those `tried` already.
    pub fn pick(&self, req: &PickRequest<'_>, tried: impl Fn(u64) -> bool) -> Option<Arc<Backend>> {
        self.pick_from(&self.eligible(), req, tried).map(|(b, _)| b)
    }

    /// Picks among `eligible` (a snapshot of [`eligible`](Self::eligible)),
    /// skipping those `tried` already: the strategy's choice, or the next one
    /// in order after it when that one was tried. With the backend, whether
    /// the strategy asked for [`Strategy::response_header`].
    pub fn pick_from(
        &self,
        eligible: &[Arc<Backend>],
        req: &PickRequest<'_>,
        tried: impl Fn(u64) -> bool,
    ) -> Option<(Arc<Backend>, bool)> {
        if eligible.is_empty() {
            return None;
        }
        let pick = self.strategy.pick_for(eligible, req);
        let first = pick.index % eligible.len();
        (0..eligible.len())
            .map(|k| &eligible[(first + k) % eligible.len()])
            .find(|b| !tried(b.id()))
            .map(|b| (b.clone(), pick.response_header))
    }

    /// Counts a failed exchange on `backend` (`reason`: why), ejecting it when
    /// it failed too often.
    pub fn failure(&self, backend: &Backend, reason: FailureReason) {
        if let Some(n) = backend.record_failure(&self.config.passive, reason) {
            backend.clear_pool();
            let e = self.refresh();
            tracing::warn!(
                backend = %backend.addr(),
                eligible = e.eligible,
                total = e.total,
                "backend {} down: {n} failed requests in a row, the last: {reason}; {} left",
                backend.addr(),
                e.count()
            );
            e.log_summary();
        }
    }

    /// Counts an active health check on `backend` (passed, or failed for a
    /// reason), taking it out or bringing it back when `check`'s rise or fall
    /// is reached.
    pub fn probed(&self, backend: &Backend, result: Result<(), FailureReason>, check: &HealthCheck) {
        let Some(change) = backend.record_probe(result, check.rise, check.fall) else {
            return;
        };
        if backend.is_removed() {
            return;
        }
        let e = self.refresh();
        let addr = backend.addr();
        match (change, result) {
            (Change::Down, Err(reason)) => {
                let probe = if check.tcp_only {
                    "TCP connect".to_owned()
                } else {
                    format!("GET {}", check.path)
                };
                let expected = match reason {
                    FailureReason::Status(_) => {
                        format!(" (expected {}-{})", check.expect.start(), check.expect.end())
                    }
                    _ => String::new(),
                };
                tracing::warn!(
                    backend = %addr,
                    eligible = e.eligible,
                    total = e.total,
                    "backend {addr} down: health check {probe} failed {} times in a row, the last: {reason}{expected}; {} left",
                    check.fall.max(1),
                    e.count()
                );
            }
            _ => tracing::info!(
                backend = %addr,
                eligible = e.eligible,
                total = e.total,
                "backend {addr} up: {} health checks passed in a row; {} eligible",
                check.rise.max(1),
                e.count()
            ),
        }
        e.log_summary();
    }

    /// Re-admits the passively ejected backends whose ejection time is over
    /// (when there are no active checks).
    pub fn readmit_expired(&self) {
        for b in self.all().iter() {
            if b.maybe_readmit(&self.config.passive) {
                let e = self.refresh();
                tracing::info!(
                    backend = %b.addr(),
                    eligible = e.eligible,
                    total = e.total,
                    "backend {} back after its {:?} ejection (one more failure ejects it again); {} eligible",
                    b.addr(),
                    self.config.passive.ejection,
                    e.count()
                );
                e.log_summary();
            }
        }
    }

    /// Builds the state for `backends` (already checked, with ids from `ids`).
    pub fn new(
        name: Arc<str>,
        config: Config,
        strategy: Box<dyn Strategy>,
        backends: Vec<Arc<Backend>>,
        common: &Common,
        routed: Arc<AtomicU64>,
    ) -> Self {
        let all: Arc<[Arc<Backend>]> = backends.into();
        let eligible: Arc<[Arc<Backend>]> = all.iter().filter(|b| b.is_eligible()).cloned().collect();
        Balancer {
            name,
            config,
            strategy,
            routed,
            none_left: AtomicBool::new(eligible.is_empty()),
            eligible: RwLock::new(eligible),
            next_id: common.ids.clone(),
            counters: common.counters.clone(),
            successor: OnceLock::new(),
            owners: Mutex::new(
                all.iter()
                    .map(|b| {
                        let o = Owners {
                            fixed: true,
                            sources: Vec::new(),
                        };
                        (b.addr(), o)
                    })
                    .collect(),
            ),
            all: RwLock::new(all),
            sources: Vec::new(),
            late_tls: OnceLock::new(),
        }
    }

    /// The pool's trust anchors for backends over TLS: its configuration's,
    /// or those loaded for a backend added later.
    pub fn tls(&self) -> Option<&crate::BackendTls> {
        self.config.backend_tls.as_ref().or_else(|| self.late_tls.get())
    }

    /// The pool's trust anchors, the system's roots loaded now (**blocking**)
    /// when it has none.
    pub fn tls_or_system(&self) -> Result<&crate::BackendTls, ProxyError> {
        if let Some(t) = self.tls() {
            return Ok(t);
        }
        let roots = crate::BackendTls::system_roots().map_err(|e| ProxyError::BackendTls(e.to_string()))?;
        Ok(self.late_tls.get_or_init(|| roots))
    }

    /// Records, before the balancer is shared, that discovery source `index`
    /// yields `addr` with `weight`; unless `fixed`, only that source holds it
    /// (a backend a reload carried over from its predecessor's source).
    pub fn adopt_discovered(&mut self, index: usize, addr: SocketAddr, weight: u32, fixed: bool) {
        let owners = self.owners.get_mut().unwrap_or_else(|e| e.into_inner());
        let o = owners.entry(addr).or_default();
        o.fixed = fixed;
        o.sources.push((index, weight));
    }

    /// What discovery source `index` holds now: each address with the weight it gave.
    pub fn discovered(&self, index: usize) -> Vec<(SocketAddr, u32)> {
        held_by(&self.owners(), index).into_iter().collect()
    }

    /// A fresh backend id, unique in the proxy.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Owners>> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many backends discovery source `index` holds now.
    pub fn discovered_count(&self, index: usize) -> usize {
        self.owners()
            .values()
            .filter(|o| o.sources.iter().any(|&(i, _)| i == index))
            .count()
    }

    /// Applies source `index`'s new set as a diff to what it held: new
    /// addresses added (or, when another owner has them, shared), vanished
    /// ones removed when no other owner holds them (requests in progress on
    /// them finish), a new weight set in place when the source is the
    /// address's only owner. Unchanged backends are untouched. The
    /// addresses in `tls` are spoken to over TLS with their target: a new
    /// backend from the start, a kept one the source alone holds from its
    /// next connection when its name changed (an address another owner
    /// brought first speaks as that owner said). Returns the diff from the
    /// source's view; the caller refreshes the eligible set.
    pub fn apply_discovered(
        &self,
        index: usize,
        new: &BTreeMap<SocketAddr, u32>,
        tls: &HashMap<SocketAddr, TlsTarget>,
    ) -> Diff {
        let mut owners = self.owners();
        let old = held_by(&owners, index);
        let mut d = crate::discovery::diff(&old, new);
        // Kept backends this source alone holds: a new TLS name (or none) applies.
        for (addr, b) in self.all().iter().map(|b| (b.addr(), b)) {
            let alone = owners
                .get(&addr)
                .is_some_and(|o| !o.fixed && o.sources.len() == 1 && o.sources[0].0 == index);
            if !alone || !new.contains_key(&addr) {
                continue;
            }
            let want = tls.get(&addr);
            let now = b.tls();
            if want.map(TlsTarget::host) != now.as_deref().map(TlsTarget::host) {
                b.set_tls(want.cloned());
                d.renamed.push(addr);
            }
        }
        d.renamed.sort();
        if d.is_empty() {
            return d;
        }
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Arc<Backend>> = all.to_vec();
        for &(addr, weight) in &d.added {
            let o = owners.entry(addr).or_default();
            o.sources.push((index, weight));
            if !list.iter().any(|b| b.addr() == addr) {
                let id = self.next_id();
                let b = Backend::new(id, addr, weight);
                list.push(Arc::new(match tls.get(&addr) {
                    Some(t) => b.with_tls(t.clone()),
                    None => b,
                }));
            }
        }
        for addr in &d.removed {
            let gone = match owners.get_mut(addr) {
                Some(o) => {
                    o.sources.retain(|&(i, _)| i != index);
                    !o.fixed && o.sources.is_empty()
                }
                None => false,
            };
            if gone {
                owners.remove(addr);
                if let Some(pos) = list.iter().position(|b| b.addr() == *addr) {
                    list[pos].mark_removed();
                    list.remove(pos);
                }
            }
        }
        for &(addr, weight) in &d.reweighted {
            if let Some(o) = owners.get_mut(&addr) {
                for s in o.sources.iter_mut().filter(|s| s.0 == index) {
                    s.1 = weight;
                }
                if !o.fixed && o.sources.len() == 1 {
                    if let Some(b) = list.iter().find(|b| b.addr() == addr) {
                        b.set_weight(weight);
                    }
                }
            }
        }
        *all = list.into();
        d
    }

    /// Adds a backend (spoken to over TLS with `tls`); it takes requests at once.
    pub fn add(
        &self,
        addr: SocketAddr,
        weight: u32,
        tls: Option<TlsTarget>,
    ) -> Result<Eligibility, ProxyError> {
        {
            let mut owners = self.owners();
            let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
            if all.iter().any(|b| b.addr() == addr) {
                return Err(ProxyError::DuplicateBackend(addr));
            }
            let id = self.next_id();
            let mut list: Vec<Arc<Backend>> = all.to_vec();
            let b = Backend::new(id, addr, weight);
            list.push(Arc::new(match tls {
                Some(t) => b.with_tls(t),
                None => b,
            }));
            *all = list.into();
            owners.entry(addr).or_default().fixed = true;
        }
        Ok(self.refresh())
    }

    /// Removes a backend: no new requests, its pool closed.
    /// Whoever added it: a discovery source adds it again at its next
    /// resolution if its records still hold it.
    pub fn remove(&self, addr: SocketAddr) -> Result<Eligibility, ProxyError> {
        {
            let mut owners = self.owners();
            let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
            let Some(pos) = all.iter().position(|b| b.addr() == addr) else {
                return Err(ProxyError::UnknownBackend(addr));
            };
            all[pos].mark_removed();
            let mut list: Vec<Arc<Backend>> = all.to_vec();
            list.remove(pos);
            *all = list.into();
            owners.remove(&addr);
        }
        Ok(self.refresh())
    }

    /// The backend with address `addr`.
    pub fn find(&self, addr: SocketAddr) -> Result<Arc<Backend>, ProxyError> {
        self.all()
            .iter()
            .find(|b| b.addr() == addr)
            .cloned()
            .ok_or(ProxyError::UnknownBackend(addr))
    }
}

/// What source `index` holds in `owners`: each address with the weight it gave.
fn held_by(owners: &HashMap<SocketAddr, Owners>, index: usize) -> BTreeMap<SocketAddr, u32> {
    owners
        .iter()
        .filter_map(|(a, o)| {
            o.sources
                .iter()
                .find(|&&(i, _)| i == index)
                .map(|&(_, w)| (*a, w))
        })
        .collect()
}
