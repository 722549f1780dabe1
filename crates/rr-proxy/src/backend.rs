//! A backend: address, weight, health, counters and its idle-connection pool.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::backend_tls::TlsTarget;
use crate::config::PassiveHealth;
use crate::reason::FailureReason;
use crate::transport::Upstream;

const ENABLED: u8 = 0;
const DRAINING: u8 = 1;

/// One server behind the proxy. Strategies see backends through the accessors;
/// the proxy updates the counters as it forwards.
#[derive(Debug)]
pub struct Backend {
    id: u64,
    addr: SocketAddr,
    label: Arc<str>,
    /// `stable_hash` of `label`.
    key: u64,
    weight: AtomicU32,
    admin: AtomicU8,
    healthy: AtomicBool,
    removed: AtomicBool,
    /// Failed exchanges in a row (passive health).
    consecutive_failures: AtomicU32,
    /// Passing / failing active probes in a row.
    probe_passes: AtomicU32,
    probe_fails: AtomicU32,
    /// When a passively ejected backend may be tried again (ms since `epoch`), 0 if not ejected.
    ejected_until_ms: AtomicU64,
    epoch: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    connects: AtomicU64,
    reused: AtomicU64,
    checks_passed: AtomicU64,
    checks_failed: AtomicU64,
    last_failure: Mutex<Option<FailureReason>>,
    pool: Mutex<Vec<Idle>>,
    /// Spoken to over TLS (an `https://` backend).
    /// How to speak TLS to it (`None`: plain TCP); a reload may change it.
    tls: arc_swap::ArcSwapOption<TlsTarget>,
}

/// A backend's health changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// It takes requests again.
    Up,
    /// It takes no more requests.
    Down,
}

/// A pooled upstream connection (it holds no buffer while idle).
#[derive(Debug)]
pub(crate) struct Idle {
    pub stream: Upstream,
    since: Instant,
}

/// Where a backend stands. Serializes as [`as_str`](BackendState::as_str) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Receives new requests.
    Healthy,
    /// Failed its health checks or was ejected: receives nothing until it recovers.
    Unhealthy,
    /// Taken out of rotation by an operator: finishes what it has, receives nothing new.
    Draining,
}

impl BackendState {
    /// `"healthy"`, `"unhealthy"` or `"draining"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Healthy => "healthy",
            BackendState::Unhealthy => "unhealthy",
            BackendState::Draining => "draining",
        }
    }
}

/// A snapshot of a backend's counters.
///
/// With serde it serializes to the admin endpoint's JSON for one backend, its
/// fields in this order (`addr` as `"IP:PORT"`, `state` as `"healthy"`,
/// `"unhealthy"` or `"draining"`, `last_failure` as a phrase such as `"status
/// 500"`, or `null`; `tls_name` only for a backend spoken to over TLS).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendStats {
    /// Address.
    pub addr: SocketAddr,
    /// Weight.
    pub weight: u32,
    /// Rotation state (draining wins over health).
    pub state: BackendState,
    /// Passes health checks (independently of draining).
    pub healthy: bool,
    /// Drained by an operator (independently of health; the same as
    /// `state == BackendState::Draining`).
    pub draining: bool,
    /// Requests (HTTP mode) or connections (TCP mode) sent to it.
    pub requests: u64,
    /// Failed exchanges: refused or timed-out connects, timeouts, malformed responses.
    pub failures: u64,
    /// Requests or tunnels in progress.
    pub active: usize,
    /// Idle pooled connections.
    pub idle: usize,
    /// Body bytes sent to it (TCP mode: all bytes).
    pub bytes_sent: u64,
    /// Body bytes received from it (TCP mode: all bytes).
    pub bytes_received: u64,
    /// Connections opened to it.
    pub connects: u64,
    /// Requests sent over a reused pooled connection.
    pub reused: u64,
    /// Why it last failed a health check or an exchange (kept after it
    /// recovers; `None` if it never failed).
    pub last_failure: Option<FailureReason>,
    /// Active health checks it passed.
    pub health_checks_passed: u64,
    /// Active health checks it failed.
    pub health_checks_failed: u64,
    /// The pool it is in (`default` for a proxy built without pools).
    pub pool: String,
    /// Spoken to over TLS: the name its certificate is verified for (an IP
    /// address for one given by address). `None`, and left out of the JSON,
    /// for a plain backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
}

impl Backend {
    pub(crate) fn new(id: u64, addr: SocketAddr, weight: u32) -> Backend {
        let label: Arc<str> = Arc::from(addr.to_string());
        Backend {
            id,
            addr,
            key: crate::hash::stable_hash(label.as_bytes()),
            label,
            weight: AtomicU32::new(weight),
            admin: AtomicU8::new(ENABLED),
            healthy: AtomicBool::new(true),
            removed: AtomicBool::new(false),
            consecutive_failures: AtomicU32::new(0),
            probe_passes: AtomicU32::new(0),
            probe_fails: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            checks_passed: AtomicU64::new(0),
            checks_failed: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            pool: Mutex::new(Vec::new()),
            tls: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// The same backend, spoken to over TLS.
    pub(crate) fn with_tls(self, tls: TlsTarget) -> Backend {
        self.set_tls(Some(tls));
        self
    }

    /// Speaks TLS (or plain TCP, with `None`) on the connections opened
    /// from now on (a reload's new trust anchors); pooled ones stay.
    pub(crate) fn set_tls(&self, tls: Option<TlsTarget>) {
        self.tls.store(tls.map(Arc::new));
    }

    /// How to speak TLS to it (`None`: plain TCP).
    pub(crate) fn tls(&self) -> Option<Arc<TlsTarget>> {
        self.tls.load_full()
    }

    /// True for an `https://` backend (spoken to over TLS).
    pub fn is_tls(&self) -> bool {
        self.tls.load().is_some()
    }

    /// A number unique among the backends of one proxy.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as text (shared, for log lines).
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// A 64-bit number derived from the address alone (its text, `IP:PORT`),
    /// the same in every process and on every machine: what the
    /// `sticky-cookie` strategy puts in its cookie and where the
    /// `consistent-hash` ring places the backend, so that a restart or a
    /// second proxy in front of the same backends agrees with the first.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The weight (1 or more). It may change while the backend serves (a
    /// discovery source found a new weight for the same address): strategies
    /// read it at each pick.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Changes the weight in place: the backend keeps its pool, health and counters.
    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    /// Requests (or tunnels, or TCP connections) in progress.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// True when health checks pass.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// True when an operator drained it.
    pub fn is_draining(&self) -> bool {
        self.admin.load(Ordering::Relaxed) == DRAINING
    }

    /// True when it may receive new requests: healthy, not drained, not removed.
    pub fn is_eligible(&self) -> bool {
        self.is_healthy() && !self.is_draining() && !self.is_removed()
    }

    /// The rotation state.
    pub fn state(&self) -> BackendState {
        if self.is_draining() {
            BackendState::Draining
        } else if self.is_healthy() {
            BackendState::Healthy
        } else {
            BackendState::Unhealthy
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BackendStats {
        BackendStats {
            addr: self.addr,
            weight: self.weight(),
            state: self.state(),
            healthy: self.is_healthy(),
            draining: self.is_draining(),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            active: self.in_flight(),
            idle: self.lock_pool().len(),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            last_failure: self.last_failure(),
            health_checks_passed: self.checks_passed.load(Ordering::Relaxed),
            health_checks_failed: self.checks_failed.load(Ordering::Relaxed),
            pool: String::new(),
            tls_name: self.tls.load().as_deref().map(|t| t.host().to_owned()),
        }
    }

    /// Why it last failed a health check or an exchange (`None` if it never did).
    pub fn last_failure(&self) -> Option<FailureReason> {
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_last_failure(&self, reason: FailureReason) {
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    /// True once it was removed from the proxy.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    // ---- counters ----

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_connect(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_reuse(&self) {
        self.reused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_received(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks one more exchange in progress until the guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    // ---- health ----

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Counts a failed exchange. `Some(n)` when this ejected the backend after
    /// `n` failures in a row (the caller logs it).
    pub(crate) fn record_failure(&self, passive: &PassiveHealth, reason: FailureReason) -> Option<u32> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.set_last_failure(reason);
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if passive.max_failures > 0
            && n >= passive.max_failures
            && self.healthy.swap(false, Ordering::Relaxed)
        {
            let until = self.now_ms() + passive.ejection.as_millis() as u64;
            self.ejected_until_ms.store(until, Ordering::Relaxed);
            self.probe_passes.store(0, Ordering::Relaxed);
            return Some(n);
        }
        None
    }

    /// Counts a successful exchange.
    pub(crate) fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Re-admits a passively ejected backend once its ejection time is over (used
    /// when there are no active checks). True when it changed state.
    pub(crate) fn maybe_readmit(&self, passive: &PassiveHealth) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        if until == 0 || self.is_healthy() || self.now_ms() < until {
            return false;
        }
        self.ejected_until_ms.store(0, Ordering::Relaxed);
        // Half-open: one more failure ejects it again.
        self.consecutive_failures
            .store(passive.max_failures.saturating_sub(1), Ordering::Relaxed);
        self.healthy.store(true, Ordering::Relaxed);
        true
    }

    /// Counts an active probe: passed, or failed for a reason. `Some` when the
    /// backend changed health (the caller logs it).
    pub(crate) fn record_probe(
        &self,
        result: Result<(), FailureReason>,
        rise: u32,
        fall: u32,
    ) -> Option<Change> {
        match result {
            Ok(()) => {
                self.checks_passed.fetch_add(1, Ordering::Relaxed);
                self.probe_fails.store(0, Ordering::Relaxed);
                let n = self.probe_passes.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= rise.max(1) && !self.is_healthy() {
                    self.consecutive_failures.store(0, Ordering::Relaxed);
                    self.ejected_until_ms.store(0, Ordering::Relaxed);
                    self.healthy.store(true, Ordering::Relaxed);
                    return Some(Change::Up);
                }
            }
            Err(reason) => {
                self.checks_failed.fetch_add(1, Ordering::Relaxed);
                self.set_last_failure(reason);
                self.probe_passes.store(0, Ordering::Relaxed);
                let n = self.probe_fails.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= fall.max(1) && self.healthy.swap(false, Ordering::Relaxed) {
                    self.clear_pool();
                    return Some(Change::Down);
                }
            }
        }
        None
    }

    pub(crate) fn set_draining(&self, draining: bool) {
        self.admin
            .store(if draining { DRAINING } else { ENABLED }, Ordering::Relaxed);
        if draining {
            self.clear_pool();
        }
    }

    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Relaxed);
        self.clear_pool();
    }

    // ---- pool ----

    fn lock_pool(&self) -> MutexGuard<'_, Vec<Idle>> {
        // A panic while holding the lock cannot leave the Vec inconsistent.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection that is still open; the most recently used first.
    /// Connections past `idle_timeout`, closed by the backend, or with unexpected
    /// bytes waiting are dropped on the way.
    pub(crate) fn take_idle(&self, idle_timeout: Duration) -> Option<Upstream> {
        loop {
            let mut idle = self.lock_pool().pop()?;
            if idle.since.elapsed() >= idle_timeout {
                // Everything older is expired too.
                self.lock_pool().clear();
                return None;
            }
            if idle.stream.is_open_and_quiet() {
                return Some(idle.stream);
            }
            tracing::debug!(backend = %self.addr, "pooled connection closed by the backend; replaced");
        }
    }

    /// Returns a connection whose exchange ended cleanly. Dropped instead when the
    /// pool is full or the backend no longer takes requests.
    pub(crate) fn put_idle(&self, stream: Upstream, max_idle: usize) {
        if !self.is_eligible() {
            return;
        }
        stream.quiesce();
        let mut pool = self.lock_pool();
        if pool.len() < max_idle {
            pool.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
    }

    /// Closes pooled connections idle for `idle_timeout` or longer.
    pub(crate) fn sweep_pool(&self, idle_timeout: Duration) {
        self.lock_pool().retain(|i| i.since.elapsed() < idle_timeout);
    }

    /// Closes every pooled connection.
    pub(crate) fn clear_pool(&self) {
        self.lock_pool().clear();
    }
}

/// An exchange in progress on a backend (see [`Backend::in_flight`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Backend>);

impl InFlight {
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
