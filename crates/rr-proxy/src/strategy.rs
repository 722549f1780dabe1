//! How the next backend is chosen: the [`Strategy`] trait and the three provided.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::Backend;

/// Chooses the backend for the next request (HTTP mode) or connection (TCP mode).
///
/// `candidates` holds the eligible backends (healthy, not draining), never empty,
/// in the order they were added. Return an index into it. The proxy calls `pick`
/// from many tasks and worker threads at once; a strategy keeps its own state
/// behind atomics or a lock.
///
/// When the picked backend already failed for this request, the proxy moves on to
/// the next candidate in order itself, so strategies need not track retries.
///
/// ```
/// use std::sync::Arc;
/// use rr_proxy::{Backend, Strategy};
///
/// /// Always the first eligible backend: active/standby.
/// struct FirstUp;
/// impl Strategy for FirstUp {
///     fn pick(&self, _candidates: &[Arc<Backend>]) -> usize {
///         0
///     }
///     fn name(&self) -> &str {
///         "first-up"
///     }
/// }
/// let proxy = rr_proxy::Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 1)
///     .strategy(FirstUp)
///     .build()
///     .unwrap();
/// assert_eq!(proxy.handle().stats().strategy, "first-up");
/// ```
pub trait Strategy: Send + Sync + 'static {
    /// The index in `candidates` (non-empty) of the backend to use.
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize;

    /// A short name for stats and logs.
    fn name(&self) -> &str {
        "custom"
    }
}

/// Strict rotation over the eligible backends (the default).
///
/// One counter shared by every worker thread, advanced with a single atomic
/// `fetch_add` per pick: N picks over k unchanging backends give each exactly
/// ⌊N/k⌋ or ⌈N/k⌉, however many clients and threads ask at once.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A rotation starting at the first backend.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Strategy for RoundRobin {
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % candidates.len()
    }

    fn name(&self) -> &str {
        "round-robin"
    }
}

/// Smooth weighted round-robin, as nginx does it: every pick adds each backend's
/// weight to its running score, takes the highest score, and subtracts the total
/// weight from the winner. Weights 5, 1, 1 give `a a b a c a a`: proportional and
/// interleaved rather than in bursts.
#[derive(Debug, Default)]
pub struct Weighted {
    lock: Mutex<()>,
}

impl Weighted {
    /// A fresh weighted rotation.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Strategy for Weighted {
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut total: i64 = 0;
        let mut best = 0;
        let mut best_score = i64::MIN;
        for (i, b) in candidates.iter().enumerate() {
            let w = i64::from(b.weight());
            total += w;
            let score = b.wrr_current.load(Ordering::Relaxed) + w;
            b.wrr_current.store(score, Ordering::Relaxed);
            if score > best_score {
                best_score = score;
                best = i;
            }
        }
        candidates[best].wrr_current.fetch_sub(total, Ordering::Relaxed);
        best
    }

    fn name(&self) -> &str {
        "weighted"
    }
}

/// The backend with the fewest requests in progress; ties are broken by rotation,
/// so idle backends still take turns.
#[derive(Debug, Default)]
pub struct LeastConnections {
    next: AtomicUsize,
}

impl LeastConnections {
    /// A fresh least-connections strategy.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Strategy for LeastConnections {
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
        let n = candidates.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best = start;
        let mut least = usize::MAX;
        for k in 0..n {
            let i = (start + k) % n;
            let load = candidates[i].in_flight();
            if load < least {
                least = load;
                best = i;
            }
        }
        best
    }

    fn name(&self) -> &str {
        "least-connections"
    }
}

/// The provided strategies by name, for command lines and configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrategyKind {
    /// [`RoundRobin`]
    #[default]
    RoundRobin,
    /// [`Weighted`]
    Weighted,
    /// [`LeastConnections`]
    LeastConnections,
}

impl StrategyKind {
    /// A new strategy of this kind.
    pub fn build(self) -> Box<dyn Strategy> {
        match self {
            StrategyKind::RoundRobin => Box::new(RoundRobin::new()),
            StrategyKind::Weighted => Box::new(Weighted::new()),
            StrategyKind::LeastConnections => Box::new(LeastConnections::new()),
        }
    }

    /// `round-robin`, `weighted` or `least-connections`.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::RoundRobin => "round-robin",
            StrategyKind::Weighted => "weighted",
            StrategyKind::LeastConnections => "least-connections",
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StrategyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round-robin" | "rr" => Ok(StrategyKind::RoundRobin),
            "weighted" | "wrr" => Ok(StrategyKind::Weighted),
            "least-connections" | "least-conn" | "lc" => Ok(StrategyKind::LeastConnections),
            other => Err(format!(
                "unknown strategy {other:?}: expected round-robin, weighted or least-connections"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(weights: &[u32]) -> Vec<Arc<Backend>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Arc::new(Backend::new(
                    i as u64,
                    format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                    w,
                ))
            })
            .collect()
    }

    #[test]
    fn round_robin_is_strict() {
        let bs = backends(&[1, 1, 1]);
        let rr = RoundRobin::new();
        let picks: Vec<usize> = (0..7).map(|_| rr.pick(&bs)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn round_robin_is_strict_across_threads() {
        let bs = Arc::new(backends(&[1, 1, 1, 1]));
        let rr = Arc::new(RoundRobin::new());
        let counts: Vec<Vec<usize>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (bs, rr) = (bs.clone(), rr.clone());
                    s.spawn(move || {
                        let mut c = vec![0usize; 4];
                        for _ in 0..1000 {
                            c[rr.pick(&bs)] += 1;
                        }
                        c
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for b in 0..4 {
            assert_eq!(counts.iter().map(|c| c[b]).sum::<usize>(), 2000);
        }
    }

    #[test]
    fn weighted_matches_nginx_sequence() {
        let bs = backends(&[5, 1, 1]);
        let w = Weighted::new();
        let picks: String = (0..14).map(|_| (b'a' + w.pick(&bs) as u8) as char).collect();
        assert_eq!(picks, "aabacaaaabacaa");
    }

    #[test]
    fn weighted_is_proportional() {
        let bs = backends(&[3, 2, 1]);
        let w = Weighted::new();
        let mut c = [0; 3];
        for _ in 0..600 {
            c[w.pick(&bs)] += 1;
        }
        assert_eq!(c, [300, 200, 100]);
    }

    #[test]
    fn least_connections_prefers_idle_and_rotates_ties() {
        let bs = backends(&[1, 1, 1]);
        let lc = LeastConnections::new();
        let _busy = bs[0].start();
        let _busy2 = bs[0].start();
        let _busy3 = bs[1].start();
        assert_eq!(lc.pick(&bs), 2);
        drop(_busy3);
        let picks: Vec<usize> = (0..4).map(|_| lc.pick(&bs)).collect();
        assert!(!picks.contains(&0), "{picks:?}");
        assert!(picks.contains(&1) && picks.contains(&2), "{picks:?}");
    }

    #[test]
    fn names_parse() {
        assert_eq!("weighted".parse::<StrategyKind>(), Ok(StrategyKind::Weighted));
        assert!("random".parse::<StrategyKind>().is_err());
        assert_eq!(StrategyKind::LeastConnections.build().name(), "least-connections");
    }
}
