//! How the next backend is chosen: the [`Strategy`] trait and the five provided.
//!
//! Every provided strategy honours backend weights. [`RoundRobin`] rotates
//! strictly when the weights are equal and falls back to nginx's smooth weighted
//! round-robin ([`Smooth`]) when they differ; [`Weighted`] is the same strategy
//! under its older name; [`LeastConnections`] picks the fewest requests in
//! progress per unit of weight, as HAProxy's `leastconn` does. Two look at the
//! request ([`Strategy::pick_for`]): [`StickyCookie`] keeps a client on the
//! backend its cookie names, and [`ConsistentHash`] maps a key (the client's
//! address or a header) to a backend on a hash ring, with bounded loads.

mod ring;
mod sticky;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use http_core::RequestHead;

use crate::Backend;

pub use ring::{ConsistentHash, HashBalance, HashKey};
pub use sticky::{CookieName, StickyCookie};

/// What a strategy may look at in the request being placed: the client's
/// address and the request's headers, borrowed from the parsed head (nothing
/// is copied). In TCP mode there is no head: only the address.
///
/// ```
/// use rr_proxy::PickRequest;
///
/// let head = http_core::RequestHead::parse_complete(
///     bytes::Bytes::from_static(b"GET / HTTP/1.1\r\nHost: a\r\nX-User: 42\r\n\r\n"),
///     &http_core::Limits::default(),
/// )
/// .unwrap();
/// let req = PickRequest::new(&head, "10.0.0.7:5000".parse().ok());
/// assert_eq!(req.header("x-user"), Some(&b"42"[..]));
/// assert_eq!(req.client_ip(), "10.0.0.7".parse().ok());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PickRequest<'a> {
    head: Option<&'a RequestHead>,
    peer: Option<SocketAddr>,
}

impl<'a> PickRequest<'a> {
    /// An HTTP request: its head and the client's address (when the transport has one).
    pub fn new(head: &'a RequestHead, peer: Option<SocketAddr>) -> Self {
        PickRequest {
            head: Some(head),
            peer,
        }
    }

    /// A connection without a request (TCP mode): the client's address only.
    pub fn connection(peer: Option<SocketAddr>) -> Self {
        PickRequest { head: None, peer }
    }

    /// The request head (`None` in TCP mode).
    pub fn head(&self) -> Option<&'a RequestHead> {
        self.head
    }

    /// The client's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The client's IP address (an IPv4-mapped IPv6 address as the IPv4 one).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.peer.map(|p| p.ip().to_canonical())
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.head?.header(name)
    }

    /// Every value of header `name`, in the order received (a header may come
    /// in several lines, as `Cookie` may).
    pub fn header_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        self.head
            .into_iter()
            .flat_map(|h| h.headers().raw())
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// A strategy's choice for one request: the index of the backend among the
/// candidates, and whether the proxy should ask the strategy for a response
/// header once a backend answered ([`Strategy::response_header`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// The index in `candidates` of the backend chosen.
    pub index: usize,
    /// Call [`Strategy::response_header`] when a backend answers this request.
    pub response_header: bool,
}

impl Pick {
    /// The backend at `index`; no response header.
    pub fn new(index: usize) -> Pick {
        Pick {
            index,
            response_header: false,
        }
    }

    /// The same pick, asking for [`Strategy::response_header`] once a backend answers.
    pub fn with_response_header(self) -> Pick {
        Pick {
            response_header: true,
            ..self
        }
    }
}

impl From<usize> for Pick {
    fn from(index: usize) -> Pick {
        Pick::new(index)
    }
}

/// Chooses the backend for the next request (HTTP mode) or connection (TCP mode).
///
/// `candidates` holds the eligible backends (healthy, not draining), never empty,
/// in the order they were added. Return an index into it. The proxy calls
/// [`pick_for`](Strategy::pick_for) (whose default calls `pick`) from many
/// tasks and worker threads at once; a strategy keeps its own state behind
/// atomics or a lock.
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
///
/// A strategy that looks at the request implements
/// [`pick_for`](Strategy::pick_for) as well:
///
/// ```
/// use std::sync::Arc;
/// use rr_proxy::{Backend, Pick, PickRequest, Strategy};
///
/// /// `X-Tier: gold` goes to the first backend, everything else to the last.
/// struct Tiers;
/// impl Strategy for Tiers {
///     fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
///         candidates.len() - 1
///     }
///     fn pick_for(&self, candidates: &[Arc<Backend>], req: &PickRequest<'_>) -> Pick {
///         match req.header("x-tier") {
///             Some(b"gold") => Pick::new(0),
///             _ => Pick::new(self.pick(candidates)),
///         }
///     }
/// }
/// # let _ = rr_proxy::Proxy::builder().backend("127.0.0.1:9002".parse().unwrap(), 1).strategy(Tiers).build().unwrap();
/// ```
pub trait Strategy: Send + Sync + 'static {
    /// The index in `candidates` (non-empty) of the backend to use.
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize;

    /// The choice for one request (HTTP mode) or connection (TCP mode), with
    /// what can be seen of it. Default: [`pick`](Strategy::pick), the request
    /// unseen and no response header.
    fn pick_for(&self, candidates: &[Arc<Backend>], req: &PickRequest<'_>) -> Pick {
        let _ = req;
        Pick::new(self.pick(candidates))
    }

    /// A header to add to the response to `req`, now that `backend` answered it
    /// (after any retries: the backend that answered, not the one first
    /// picked). Called only when the pick asked for it
    /// ([`Pick::response_header`]), after the hooks' response filter; the
    /// header is added beside the backend's own (a `Set-Cookie` of the
    /// backend's is kept). Default: none.
    fn response_header(&self, req: &PickRequest<'_>, backend: &Backend) -> Option<(&str, Bytes)> {
        let _ = (req, backend);
        None
    }

    /// A short name for stats and logs.
    fn name(&self) -> &str {
        "custom"
    }
}

/// Round-robin over the eligible backends, in proportion to their weights (the
/// default).
///
/// - **Equal weights** (the usual case, whatever the value): strict rotation.
///   One counter shared by every worker thread, advanced with a single atomic
///   `fetch_add` per pick, no lock: N picks over k unchanging backends give each
///   exactly ⌊N/k⌋ or ⌈N/k⌉, however many clients and threads ask at once.
/// - **Different weights**: nginx's smooth weighted round-robin ([`Smooth`]),
///   under a lock: a backend of weight w gets w picks in every `sum(weights)`
///   consecutive picks, spread out rather than in a burst (weights 5, 1, 1 give
///   `a a b a c a a`).
///
/// Which of the two applies is decided per pick from the weights of the
/// candidates at hand, so a backend added at run time with another weight
/// (or the only differently weighted one leaving) switches between them.
///
/// ```
/// // Three requests in four to the first backend, the default strategy.
/// let proxy = rr_proxy::Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 3)
///     .backend("127.0.0.1:9003".parse().unwrap(), 1)
///     .build()
///     .unwrap();
/// assert_eq!(proxy.handle().stats().strategy, "round-robin");
/// ```
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
    smooth: Smooth,
}

impl RoundRobin {
    /// A rotation starting at the first backend.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Strategy for RoundRobin {
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
        let Some(first) = candidates.first() else {
            return 0;
        };
        let w = first.weight();
        if candidates.iter().all(|b| b.weight() == w) {
            self.next.fetch_add(1, Ordering::Relaxed) % candidates.len()
        } else {
            self.smooth.pick(candidates)
        }
    }

    fn name(&self) -> &str {
        "round-robin"
    }
}

/// Smooth weighted round-robin, as nginx does it: every pick adds each
/// candidate's weight to its running score, takes the highest score (the first
/// one on a tie), and subtracts the candidates' total weight from the winner.
/// Weights 5, 1, 1 give `a a b a c a a`: proportional and interleaved rather
/// than in bursts.
///
/// The scores belong to this value (one per strategy), kept by backend behind
/// a lock. Over every `sum(weights)` consecutive picks among the same
/// candidates each backend gets exactly its weight. A backend that leaves the
/// candidates (down, drained, or outside a subset a hook picks from) keeps its
/// score until it comes back, as in nginx; after such a change the picks become
/// exact per `sum(weights)` again within a few picks. The scores of removed
/// backends are dropped when a new backend first shows up.
///
/// [`RoundRobin`] uses it when weights differ; it is public for strategies of
/// one's own that want the same rotation.
///
/// ```
/// use std::sync::Arc;
/// use rr_proxy::{Proxy, Smooth, Strategy};
///
/// /// Smooth weighted round-robin, reported under another name.
/// #[derive(Default)]
/// struct Mine(Smooth);
/// impl Strategy for Mine {
///     fn pick(&self, candidates: &[Arc<rr_proxy::Backend>]) -> usize {
///         self.0.pick(candidates)
///     }
///     fn name(&self) -> &str {
///         "mine"
///     }
/// }
/// let proxy = Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 2)
///     .strategy(Mine::default())
///     .build()
///     .unwrap();
/// assert_eq!(proxy.handle().stats().strategy, "mine");
/// ```
#[derive(Debug, Default)]
pub struct Smooth {
    scores: Mutex<HashMap<usize, Score>>,
}

/// One backend's running score, keyed by the address of its allocation; the
/// weak reference keeps that address from being reused while the entry lives.
#[derive(Debug)]
struct Score {
    current: i64,
    backend: Weak<Backend>,
}

impl Smooth {
    /// Fresh scores: the first pick is the first backend of the highest weight.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index in `candidates` of the next backend (0 when it is empty).
    pub fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
        // A panic while holding the lock leaves at worst a skewed score.
        let mut scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        let mut total: i64 = 0;
        let mut best = 0;
        let mut best_score = i64::MIN;
        let mut newcomer = false;
        for (i, b) in candidates.iter().enumerate() {
            let w = i64::from(b.weight());
            total += w;
            let entry = scores.entry(key(b)).or_insert_with(|| {
                newcomer = true;
                Score {
                    current: 0,
                    backend: Arc::downgrade(b),
                }
            });
            entry.current += w;
            if entry.current > best_score {
                best_score = entry.current;
                best = i;
            }
        }
        if let Some(winner) = candidates.get(best).and_then(|b| scores.get_mut(&key(b))) {
            winner.current -= total;
        }
        if newcomer {
            scores.retain(|_, s| s.backend.upgrade().is_some_and(|b| !b.is_removed()));
        }
        best
    }
}

fn key(b: &Arc<Backend>) -> usize {
    Arc::as_ptr(b) as usize
}

/// The weight-aware round-robin under its older name, `weighted`: the same
/// strategy as [`RoundRobin`] (which honours weights too), kept so that code
/// naming it and `--strategy weighted` go on working; only the name in stats
/// and logs differs.
#[derive(Debug, Default)]
pub struct Weighted(RoundRobin);

impl Weighted {
    /// A fresh weighted rotation.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Strategy for Weighted {
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
        self.0.pick(candidates)
    }

    fn name(&self) -> &str {
        "weighted"
    }
}

/// The backend with the fewest requests in progress for its weight, as HAProxy's
/// `leastconn`: the lowest `(in_flight + 1) / weight`, so with equal weights the
/// fewest requests in progress, and a backend of weight 3 is given three times
/// the load of one of weight 1. Ties are broken by rotation, so equally loaded
/// backends take turns.
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
        if n == 0 {
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // (in_flight + 1, weight) of the best so far; compared by cross-multiplying.
        let load = |b: &Backend| (b.in_flight() as u128 + 1, u128::from(b.weight().max(1)));
        let mut best = start;
        let (mut best_load, mut best_weight) = load(&candidates[start]);
        for k in 1..n {
            let i = (start + k) % n;
            let (l, w) = load(&candidates[i]);
            if l * best_weight < best_load * w {
                (best, best_load, best_weight) = (i, l, w);
            }
        }
        best
    }

    fn name(&self) -> &str {
        "least-connections"
    }
}

/// The provided strategies by name, for command lines and configuration files:
/// `round-robin`, `weighted`, `least-connections`, `sticky-cookie`,
/// `consistent-hash`. [`build_with`](StrategyKind::build_with) makes one with
/// the settings of the last two.
///
/// ```
/// use rr_proxy::{StrategyKind, StrategyOptions};
///
/// let kind: StrategyKind = "consistent-hash".parse().unwrap();
/// let options = StrategyOptions {
///     hash_key: "header:x-user".parse().unwrap(),
///     ..StrategyOptions::default()
/// };
/// assert_eq!(kind.build_with(&options).name(), "consistent-hash");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrategyKind {
    /// [`RoundRobin`]
    #[default]
    RoundRobin,
    /// [`Weighted`]: the same rotation as [`RoundRobin`], named `weighted`.
    Weighted,
    /// [`LeastConnections`]
    LeastConnections,
    /// [`StickyCookie`]
    StickyCookie,
    /// [`ConsistentHash`]
    ConsistentHash,
}

/// The settings of the strategies that have some; each strategy reads its own
/// and ignores the rest. Every field is checked when parsed, so any value
/// builds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StrategyOptions {
    /// `sticky-cookie`: the cookie's name (default `rr_backend`).
    pub sticky_cookie: CookieName,
    /// `consistent-hash`: what is hashed (default the client's IP address).
    pub hash_key: HashKey,
    /// `consistent-hash`: the bounded-load factor (default 1.25).
    pub hash_balance: HashBalance,
}

impl StrategyKind {
    /// A new strategy of this kind, with the default settings.
    pub fn build(self) -> Box<dyn Strategy> {
        self.build_with(&StrategyOptions::default())
    }

    /// A new strategy of this kind, with `options` for those that have settings.
    pub fn build_with(self, options: &StrategyOptions) -> Box<dyn Strategy> {
        match self {
            StrategyKind::RoundRobin => Box::new(RoundRobin::new()),
            StrategyKind::Weighted => Box::new(Weighted::new()),
            StrategyKind::LeastConnections => Box::new(LeastConnections::new()),
            StrategyKind::StickyCookie => Box::new(StickyCookie::new(options.sticky_cookie.clone())),
            StrategyKind::ConsistentHash => {
                Box::new(ConsistentHash::new(options.hash_key.clone()).balance(options.hash_balance))
            }
        }
    }

    /// `round-robin`, `weighted`, `least-connections`, `sticky-cookie` or
    /// `consistent-hash`.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::RoundRobin => "round-robin",
            StrategyKind::Weighted => "weighted",
            StrategyKind::LeastConnections => "least-connections",
            StrategyKind::StickyCookie => "sticky-cookie",
            StrategyKind::ConsistentHash => "consistent-hash",
        }
    }

    /// True when the strategy needs HTTP requests (a cookie, a header) and
    /// cannot work on bare TCP connections: `sticky-cookie`.
    pub fn needs_http(self) -> bool {
        self == StrategyKind::StickyCookie
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
            "sticky-cookie" => Ok(StrategyKind::StickyCookie),
            "consistent-hash" => Ok(StrategyKind::ConsistentHash),
            other => Err(format!(
                "unknown strategy {other:?}: expected round-robin, weighted, least-connections, \
                 sticky-cookie or consistent-hash"
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

    /// Each backend's picks when 8 threads each pick `per_thread` times at once
    /// from backends of `weights` through one shared round-robin.
    fn totals_across_threads(weights: &[u32], per_thread: usize) -> Vec<usize> {
        let bs = Arc::new(backends(weights));
        let rr = Arc::new(RoundRobin::new());
        let counts: Vec<Vec<usize>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (bs, rr) = (bs.clone(), rr.clone());
                    s.spawn(move || {
                        let mut c = vec![0usize; bs.len()];
                        for _ in 0..per_thread {
                            c[rr.pick(&bs)] += 1;
                        }
                        c
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        (0..weights.len())
            .map(|b| counts.iter().map(|c| c[b]).sum())
            .collect()
    }

    #[test]
    fn round_robin_is_strict_across_threads() {
        assert_eq!(totals_across_threads(&[1, 1, 1, 1], 1000), [2000; 4]);
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

    fn letters(picks: impl IntoIterator<Item = usize>) -> String {
        picks.into_iter().map(|i| (b'a' + i as u8) as char).collect()
    }

    /// Every `sum(weights)` consecutive picks from `from` on give each backend
    /// exactly its weight.
    fn assert_exact_windows(picks: &[usize], weights: &[u32], from: usize) {
        let total = weights.iter().sum::<u32>() as usize;
        assert!(picks.len() >= from + 2 * total, "too few picks to check");
        for start in from..=picks.len() - total {
            let mut c = vec![0u32; weights.len()];
            for &p in &picks[start..start + total] {
                c[p] += 1;
            }
            assert_eq!(
                c,
                weights,
                "window at {start}: {}",
                letters(picks.iter().copied())
            );
        }
    }

    #[test]
    fn round_robin_with_equal_weights_is_plain_rotation_whatever_the_weight() {
        for w in [1, 3, 1000] {
            let bs = backends(&[w, w, w]);
            let rr = RoundRobin::new();
            let picks: Vec<usize> = (0..7).map(|_| rr.pick(&bs)).collect();
            assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0], "weight {w}");
            // The lock-free path: the smooth scores were never touched.
            assert!(rr.smooth.scores.lock().unwrap().is_empty());
        }
    }

    #[test]
    fn round_robin_honours_weights_smoothly() {
        let bs = backends(&[5, 1, 1]);
        let rr = RoundRobin::new();
        assert_eq!(letters((0..14).map(|_| rr.pick(&bs))), "aabacaaaabacaa");
        let bs = backends(&[3, 1]);
        let rr = RoundRobin::new();
        assert_eq!(letters((0..8).map(|_| rr.pick(&bs))), "aabaaaba");
    }

    #[test]
    fn weighted_picks_are_exact_over_every_cycle() {
        for weights in [
            &[3, 1][..],
            &[5, 1, 1],
            &[3, 2, 1],
            &[4, 2, 1, 1],
            &[7, 3, 2, 9],
            &[1, 2],
        ] {
            let bs = backends(weights);
            let rr = RoundRobin::new();
            let total = weights.iter().sum::<u32>() as usize;
            let picks: Vec<usize> = (0..10 * total).map(|_| rr.pick(&bs)).collect();
            assert_exact_windows(&picks, weights, 0);
        }
    }

    #[test]
    fn weighted_round_robin_is_exact_across_threads() {
        assert_eq!(totals_across_threads(&[3, 2, 1], 600), [2400, 1600, 800]);
    }

    #[test]
    fn a_backend_added_at_run_time_gets_its_share() {
        let bs = backends(&[1, 1, 2]);
        let rr = RoundRobin::new();
        // Two equal backends rotate; a third of weight 2 joins.
        assert_eq!(letters((0..4).map(|_| rr.pick(&bs[..2]))), "abab");
        let picks: Vec<usize> = (0..40).map(|_| rr.pick(&bs)).collect();
        assert_exact_windows(&picks, &[1, 1, 2], 0);
        // It leaves again: plain rotation.
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(&bs[..2])).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 3, "{picks:?}");
    }

    #[test]
    fn a_backend_that_left_and_came_back_is_exact_again_within_a_cycle() {
        let weights = [4, 2, 1, 3];
        let total = 10;
        let bs = backends(&weights);
        for (before, away, gone) in [(3, 5, 1), (7, 11, 0), (1, 2, 3), (9, 4, 2)] {
            let rr = RoundRobin::new();
            for _ in 0..before {
                rr.pick(&bs);
            }
            let rest: Vec<Arc<Backend>> = bs
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != gone)
                .map(|(_, b)| b.clone())
                .collect();
            for _ in 0..away {
                rr.pick(&rest);
            }
            let picks: Vec<usize> = (0..6 * total).map(|_| rr.pick(&bs)).collect();
            assert_exact_windows(&picks, &weights, total);
        }
    }

    #[test]
    fn subsets_picked_in_turn_each_keep_their_proportions() {
        // As `Candidates::pick_where` does with the proxy's own strategy.
        let bs = backends(&[3, 1, 2, 1]);
        let (left, right) = (&bs[..2], &bs[2..]);
        let rr = RoundRobin::new();
        let (mut l, mut r) = (Vec::new(), Vec::new());
        for _ in 0..40 {
            l.push(rr.pick(left));
            r.push(rr.pick(right));
        }
        assert_exact_windows(&l, &[3, 1], 0);
        assert_exact_windows(&r, &[2, 1], 0);
    }

    #[test]
    fn scores_of_removed_backends_are_dropped() {
        let bs = backends(&[2, 1, 1]);
        let smooth = Smooth::new();
        smooth.pick(&bs[..2]);
        bs[1].mark_removed();
        assert_eq!(smooth.scores.lock().unwrap().len(), 2);
        // A newcomer shows up: the removed one's score goes.
        smooth.pick(&[bs[0].clone(), bs[2].clone()]);
        let scores = smooth.scores.lock().unwrap();
        assert_eq!(scores.len(), 2);
        assert!(!scores.contains_key(&key(&bs[1])));
    }

    #[test]
    fn weighted_is_round_robin_under_its_old_name() {
        let bs = backends(&[2, 1]);
        let (w, rr) = (Weighted::new(), RoundRobin::new());
        for _ in 0..9 {
            assert_eq!(w.pick(&bs), rr.pick(&bs));
        }
        assert_eq!((w.name(), rr.name()), ("weighted", "round-robin"));
        let bs = backends(&[1, 1, 1]);
        assert_eq!(letters((0..4).map(|_| w.pick(&bs))), "abca");
    }

    #[test]
    fn least_connections_honours_weights() {
        let bs = backends(&[3, 1]);
        let lc = LeastConnections::new();
        // Idle: the heavier one ((0+1)/3 < (0+1)/1).
        assert_eq!(lc.pick(&bs), 0);
        // Requests that stay in progress spread 3:1.
        let mut held = Vec::new();
        let mut c = [0; 2];
        for _ in 0..8 {
            let i = lc.pick(&bs);
            c[i] += 1;
            held.push(bs[i].start());
        }
        assert_eq!(c, [6, 2]);
        drop(held);
        // Equal weights: the fewest in progress, as before.
        let bs = backends(&[2, 2]);
        let _busy = bs[0].start();
        assert_eq!(lc.pick(&bs), 1);
    }

    #[test]
    fn empty_candidates_give_zero_without_panicking() {
        assert_eq!(RoundRobin::new().pick(&[]), 0);
        assert_eq!(Smooth::new().pick(&[]), 0);
        assert_eq!(LeastConnections::new().pick(&[]), 0);
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
        for name in [
            "round-robin",
            "weighted",
            "least-connections",
            "sticky-cookie",
            "consistent-hash",
        ] {
            let kind: StrategyKind = name.parse().unwrap();
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.build().name(), name);
            assert_eq!(kind.build_with(&StrategyOptions::default()).name(), name);
        }
        assert!(StrategyKind::StickyCookie.needs_http() && !StrategyKind::ConsistentHash.needs_http());
    }

    #[test]
    fn the_default_pick_for_is_pick() {
        // A strategy written before pick_for existed goes on working.
        struct Last;
        impl Strategy for Last {
            fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
                candidates.len() - 1
            }
        }
        let bs = backends(&[1, 1, 1]);
        assert_eq!(Last.pick_for(&bs, &PickRequest::default()), Pick::new(2));
        assert_eq!(Last.response_header(&PickRequest::default(), &bs[0]), None);
    }
}
