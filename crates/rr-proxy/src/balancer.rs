//! The balancer state shared by forwarding, TCP mode, the health checker, the
//! admin endpoint and every handle: the backends, the strategy, picking, failure
//! accounting and the proxy-wide counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_core::Limits;

use crate::backend::Backend;
use crate::config::{HealthCheck, Mode, PassiveHealth, PoolConfig, Timeouts};
use crate::strategy::Strategy;
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
}

/// Proxy-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub no_backend: AtomicU64,
    pub retries: AtomicU64,
    pub bad_gateway: AtomicU64,
    pub gateway_timeout: AtomicU64,
}

/// The balancer state that forwarding, TCP mode, the health checker and every
/// handle share: the backends, the strategy, picking, and failure accounting.
pub(crate) struct Balancer {
    pub config: Config,
    pub strategy: Box<dyn Strategy>,
    /// Every backend, in the order added.
    all: RwLock<Arc<[Arc<Backend>]>>,
    /// The backends that may take new requests, in the order added.
    eligible: RwLock<Arc<[Arc<Backend>]>>,
    next_id: AtomicU64,
    pub counters: Counters,
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

    /// Recomputes the eligible set after a health or admin change.
    pub fn refresh(&self) {
        let all = self.all();
        let eligible: Arc<[Arc<Backend>]> = all.iter().filter(|b| b.is_eligible()).cloned().collect();
        *self.eligible.write().unwrap_or_else(|e| e.into_inner()) = eligible;
    }

    /// Picks a backend for a request, skipping those `tried` already.
    pub fn pick(&self, tried: impl Fn(u64) -> bool) -> Option<Arc<Backend>> {
        self.pick_from(&self.eligible(), tried)
    }

    /// Picks among `eligible` (a snapshot of [`eligible`](Self::eligible)),
    /// skipping those `tried` already: the strategy's choice, or the next one
    /// in order after it when that one was tried.
    pub fn pick_from(&self, eligible: &[Arc<Backend>], tried: impl Fn(u64) -> bool) -> Option<Arc<Backend>> {
        if eligible.is_empty() {
            return None;
        }
        let first = self.strategy.pick(eligible) % eligible.len();
        (0..eligible.len())
            .map(|k| &eligible[(first + k) % eligible.len()])
            .find(|b| !tried(b.id()))
            .cloned()
    }

    /// Counts a failed exchange on `backend`, ejecting it when it failed too often.
    pub fn failure(&self, backend: &Backend) {
        if backend.record_failure(&self.config.passive) {
            backend.clear_pool();
            self.refresh();
        }
    }

    /// Builds the state for `backends` (already checked).
    pub fn new(config: Config, strategy: Box<dyn Strategy>, backends: Vec<Arc<Backend>>) -> Self {
        let all: Arc<[Arc<Backend>]> = backends.into();
        Balancer {
            config,
            strategy,
            eligible: RwLock::new(all.clone()),
            next_id: AtomicU64::new(all.len() as u64),
            all: RwLock::new(all),
            counters: Counters::default(),
        }
    }

    /// Adds a backend; it takes requests at once.
    pub fn add(&self, addr: SocketAddr, weight: u32) -> Result<(), ProxyError> {
        {
            let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
            if all.iter().any(|b| b.addr() == addr) {
                return Err(ProxyError::DuplicateBackend(addr));
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let mut list: Vec<Arc<Backend>> = all.to_vec();
            list.push(Arc::new(Backend::new(id, addr, weight)));
            *all = list.into();
        }
        self.refresh();
        Ok(())
    }

    /// Removes a backend: no new requests, its pool closed.
    pub fn remove(&self, addr: SocketAddr) -> Result<(), ProxyError> {
        {
            let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
            let Some(pos) = all.iter().position(|b| b.addr() == addr) else {
                return Err(ProxyError::UnknownBackend(addr));
            };
            all[pos].mark_removed();
            let mut list: Vec<Arc<Backend>> = all.to_vec();
            list.remove(pos);
            *all = list.into();
        }
        self.refresh();
        Ok(())
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
