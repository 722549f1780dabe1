//! Consistent hashing with bounded loads: a key (the client's address, or a
//! header's value) goes to the backend after its place on a hash ring, unless
//! that backend already carries more than its share of the requests in
//! progress.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::{Pick, PickRequest, Strategy};
use crate::hash::{derive, stable_hash};
use crate::{Backend, StrategyError};

/// Points on the ring per backend of average weight (as ketama).
const POINTS_PER_BACKEND: u64 = 160;
/// Rings kept for recently seen candidate sets (the eligible set, and the
/// subsets hooks pick from).
const RING_CACHE: usize = 4;

/// What [`ConsistentHash`] hashes.
///
/// Parsed from `client-ip` or `header:NAME`:
/// ```
/// use rr_proxy::HashKey;
///
/// assert_eq!("client-ip".parse::<HashKey>().unwrap(), HashKey::ClientIp);
/// assert_eq!("header:X-User".parse::<HashKey>().unwrap().to_string(), "header:x-user");
/// assert!("cookie:a".parse::<HashKey>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashKey {
    /// The client's IP address (the port left out), the default.
    #[default]
    ClientIp,
    /// The first value of this request header (the name in lower case); a
    /// request without it, or with an empty one, is hashed by its client IP
    /// address. In TCP mode there are no headers: always the client's address.
    Header(Box<str>),
}

impl FromStr for HashKey {
    type Err = StrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "client-ip" {
            return Ok(HashKey::ClientIp);
        }
        match s.strip_prefix("header:") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) =>
            {
                Ok(HashKey::Header(name.to_ascii_lowercase().into()))
            }
            _ => Err(StrategyError::BadHashKey(s.to_owned())),
        }
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashKey::ClientIp => f.write_str("client-ip"),
            HashKey::Header(n) => write!(f, "header:{n}"),
        }
    }
}

/// The bounded-load factor of [`ConsistentHash`], as in "Consistent Hashing
/// with Bounded Loads" (Mirrokni, Thorup, Zadimoghaddam, 2018): no backend is
/// given a request while it carries `factor` times its share of the requests
/// in progress. Default 1.25; from 1 to 100 in hundredths, or 0 (`off`): no
/// bound, the ring alone decides.
///
/// ```
/// use rr_proxy::HashBalance;
///
/// assert_eq!(HashBalance::default().to_string(), "1.25");
/// assert_eq!("2".parse::<HashBalance>().unwrap().to_string(), "2.00");
/// assert_eq!("0".parse::<HashBalance>().unwrap(), HashBalance::OFF);
/// assert!("0.5".parse::<HashBalance>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashBalance {
    /// The factor in hundredths; 0 for no bound.
    hundredths: u32,
}

impl HashBalance {
    /// No bound: every key goes where the ring says, however loaded.
    pub const OFF: HashBalance = HashBalance { hundredths: 0 };

    /// The factor (0.0 when off).
    pub fn factor(self) -> f64 {
        f64::from(self.hundredths) / 100.0
    }
}

impl Default for HashBalance {
    fn default() -> Self {
        HashBalance { hundredths: 125 }
    }
}

impl FromStr for HashBalance {
    type Err = StrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StrategyError::BadBalance(s.to_owned());
        if s == "off" {
            return Ok(HashBalance::OFF);
        }
        let f: f64 = s.parse().map_err(|_| bad())?;
        if f == 0.0 {
            return Ok(HashBalance::OFF);
        }
        if !(1.0..=100.0).contains(&f) {
            return Err(bad());
        }
        Ok(HashBalance {
            hundredths: (f * 100.0).round() as u32,
        })
    }
}

impl fmt::Display for HashBalance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hundredths {
            0 => f.write_str("off"),
            h => write!(f, "{}.{:02}", h / 100, h % 100),
        }
    }
}

/// Consistent hashing with bounded loads: requests with the same key (the
/// client's IP address, or a header's value: [`HashKey`]) go to the same
/// backend while the eligible set stays the same, and when a backend leaves or
/// joins, only the keys it had (or takes) move: about 1/n of them.
///
/// - **The ring.** Each backend has points on a ring of 2⁶⁴ positions, 160 for
///   a backend of average weight and in proportion to weight otherwise (at
///   least one), placed by hashing [`Backend::key`] (its `IP:PORT`): the same
///   in every process, so several proxies agree. A key goes to the owner of
///   the first point at or after the key's hash. A ring rather than Maglev's
///   table: a backend leaving moves exactly the keys it had (Maglev moves a
///   few more), weights are a number of points, and "the next backend on the
///   ring" is what bounded loads need. A lookup is a binary search over
///   160 × n points.
/// - **Bounded loads.** With a factor c ([`HashBalance`], default 1.25), a
///   backend of weight w is skipped for the next one on the ring while its
///   requests in progress reach ⌈c · (L + 1) · w / W⌉ (L: the requests in
///   progress on all candidates; W: their total weight), so a hot key spills
///   over to the next backends instead of flattening one. Only a loaded
///   backend is skipped: with a few requests in progress and the key's
///   backend busy with one of the same key, the next arrives elsewhere.
/// - **Cached.** The ring is built once per candidate set (the backends' ids
///   in order) and kept for the next requests; a drain, ejection, addition or
///   removal changes the set and builds a new one (the last four are kept,
///   for hooks that pick from subsets).
///
/// ```
/// use rr_proxy::{ConsistentHash, HashKey, Proxy};
///
/// let proxy = Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 1)
///     .backend("127.0.0.1:9003".parse().unwrap(), 2)
///     .strategy(ConsistentHash::new("header:x-user".parse::<HashKey>().unwrap()))
///     .build()
///     .unwrap();
/// assert_eq!(proxy.handle().stats().strategy, "consistent-hash");
/// ```
#[derive(Debug)]
pub struct ConsistentHash {
    key: HashKey,
    balance: HashBalance,
    rings: RwLock<Vec<Arc<Ring>>>,
    builds: AtomicU64,
}

impl Default for ConsistentHash {
    fn default() -> Self {
        ConsistentHash::new(HashKey::ClientIp)
    }
}

impl ConsistentHash {
    /// Consistent hashing on `key`, loads bounded at the default factor 1.25.
    pub fn new(key: HashKey) -> Self {
        ConsistentHash {
            key,
            balance: HashBalance::default(),
            rings: RwLock::new(Vec::new()),
            builds: AtomicU64::new(0),
        }
    }

    /// Sets the bounded-load factor ([`HashBalance::OFF`]: no bound).
    pub fn balance(mut self, balance: HashBalance) -> Self {
        self.balance = balance;
        self
    }

    /// What is hashed.
    pub fn key(&self) -> &HashKey {
        &self.key
    }

    /// How many rings were built so far (one per change of the candidates).
    pub fn rings_built(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// The hash of the request's key.
    fn hash_of(&self, req: &PickRequest<'_>) -> u64 {
        if let HashKey::Header(name) = &self.key {
            if let Some(v) = req.header(name).filter(|v| !v.is_empty()) {
                return stable_hash(v);
            }
        }
        match req.client_ip() {
            Some(IpAddr::V4(ip)) => stable_hash(&ip.octets()),
            Some(IpAddr::V6(ip)) => stable_hash(&ip.octets()),
            None => stable_hash(b""),
        }
    }

    /// The index in `candidates` for a key hashing to `h`.
    pub(crate) fn pick_hash(&self, candidates: &[Arc<Backend>], h: u64) -> usize {
        if candidates.len() <= 1 {
            return 0;
        }
        {
            let rings = self.rings.read().unwrap_or_else(|e| e.into_inner());
            if let Some(ring) = rings.iter().find(|r| r.is_for(candidates)) {
                return self.walk(ring, candidates, h);
            }
        }
        let ring = Arc::new(Ring::build(candidates));
        self.builds.fetch_add(1, Ordering::Relaxed);
        let i = self.walk(&ring, candidates, h);
        let mut rings = self.rings.write().unwrap_or_else(|e| e.into_inner());
        if !rings.iter().any(|r| r.is_for(candidates)) {
            rings.insert(0, ring);
            rings.truncate(RING_CACHE);
        }
        i
    }

    /// From the key's place on the ring, the first backend with room.
    fn walk(&self, ring: &Ring, candidates: &[Arc<Backend>], h: u64) -> usize {
        let start = ring.position(h);
        let owner = ring.member(start);
        if self.balance == HashBalance::OFF {
            return owner;
        }
        let (load, weights) = candidates.iter().fold((0u128, 0u128), |(l, w), b| {
            (l + b.in_flight() as u128, w + u128::from(b.weight()))
        });
        let c = u128::from(self.balance.hundredths);
        // ceil(c/100 · (L + 1) · w / W) > in_flight, in integers.
        let has_room = |b: &Backend| {
            let slots = (c * (load + 1) * u128::from(b.weight())).div_ceil(100 * weights.max(1));
            (b.in_flight() as u128) < slots
        };
        let n = ring.points.len();
        let mut last = usize::MAX;
        for k in 0..n {
            let m = ring.member((start + k) % n);
            if m != last {
                if candidates.get(m).is_some_and(|b| has_room(b)) {
                    return m;
                }
                last = m;
            }
        }
        // Unreachable while the counts hold still (the slots add up to more
        // than the load); under a race, the key's own backend.
        owner
    }
}

impl Strategy for ConsistentHash {
    /// Without a request, every pick hashes the same empty key.
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
        self.pick_hash(candidates, stable_hash(b""))
    }

    fn pick_for(&self, candidates: &[Arc<Backend>], req: &PickRequest<'_>) -> Pick {
        Pick::new(self.pick_hash(candidates, self.hash_of(req)))
    }

    fn name(&self) -> &str {
        "consistent-hash"
    }
}

/// The ring for one candidate set.
#[derive(Debug)]
pub(crate) struct Ring {
    /// The candidates' ids and weights, in order: which set this ring is for
    /// (a weight changed in place by discovery builds a new ring).
    ids: Box<[(u64, u32)]>,
    /// (position, index of the candidate), sorted by position.
    points: Box<[(u64, u32)]>,
}

impl Ring {
    pub(crate) fn build(candidates: &[Arc<Backend>]) -> Ring {
        let n = candidates.len() as u128;
        let total: u128 = candidates.iter().map(|b| u128::from(b.weight())).sum();
        let mut points = Vec::new();
        for (i, b) in candidates.iter().enumerate() {
            // 160 for an average weight: 160 · n · w / W, rounded, at least 1.
            let share = (u128::from(POINTS_PER_BACKEND) * n * u128::from(b.weight()) * 2 + total.max(1))
                / (2 * total.max(1));
            let count = share.max(1) as u64;
            points.extend((0..count).map(|j| (derive(b.key(), j), i as u32)));
        }
        points.sort_unstable();
        Ring {
            ids: candidates.iter().map(|b| (b.id(), b.weight())).collect(),
            points: points.into(),
        }
    }

    fn is_for(&self, candidates: &[Arc<Backend>]) -> bool {
        self.ids.len() == candidates.len()
            && self
                .ids
                .iter()
                .zip(candidates)
                .all(|(&(id, w), b)| id == b.id() && w == b.weight())
    }

    /// The index of the first point at or after `h` (wrapping to the first).
    fn position(&self, h: u64) -> usize {
        let i = self.points.partition_point(|&(p, _)| p < h);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }

    fn member(&self, point: usize) -> usize {
        self.points.get(point).map_or(0, |&(_, m)| m as usize)
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
                    format!("10.0.0.{}:8080", i + 1).parse().unwrap(),
                    w,
                ))
            })
            .collect()
    }

    /// The hashes of `n` distinct keys.
    fn keys(n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| stable_hash(format!("user-{i}").as_bytes()))
            .collect()
    }

    /// The backend (by address) of each key, with the bound off.
    fn owners(set: &[Arc<Backend>], keys: &[u64]) -> Vec<std::net::SocketAddr> {
        let ch = ConsistentHash::default().balance(HashBalance::OFF);
        keys.iter().map(|&h| set[ch.pick_hash(set, h)].addr()).collect()
    }

    fn shares(set: &[Arc<Backend>], keys: &[u64]) -> Vec<usize> {
        let o = owners(set, keys);
        set.iter()
            .map(|b| o.iter().filter(|&&a| a == b.addr()).count())
            .collect()
    }

    #[test]
    fn equal_weights_share_evenly() {
        let keys = keys(10_000);
        for n in [2, 3, 4, 5, 8] {
            let set = backends(&vec![1; n]);
            let expected = 10_000 / n;
            for (i, &c) in shares(&set, &keys).iter().enumerate() {
                // 160 points each: within ±20 % of the even share.
                assert!(
                    c * 5 >= expected * 4 && c * 5 <= expected * 6,
                    "{n} backends: backend {i} has {c} of 10000 keys (expected about {expected})"
                );
            }
        }
    }

    #[test]
    fn unequal_weights_share_in_proportion() {
        let keys = keys(10_000);
        for weights in [&[3, 1][..], &[1, 2, 3, 4], &[5, 1, 1]] {
            let set = backends(weights);
            let total: u32 = weights.iter().sum();
            for (i, &c) in shares(&set, &keys).iter().enumerate() {
                let expected = 10_000 * weights[i] as usize / total as usize;
                assert!(
                    c * 5 >= expected * 4 && c * 5 <= expected * 6,
                    "{weights:?}: backend {i} has {c} keys (expected about {expected})"
                );
            }
        }
        // Weights up to the maximum: the points stay bounded.
        let ring = Ring::build(&backends(&[1, crate::MAX_WEIGHT]));
        assert!(ring.points.len() <= 2 * 160 + 2, "{}", ring.points.len());
    }

    #[test]
    fn removing_or_adding_one_backend_moves_only_its_keys() {
        let keys = keys(10_000);
        let all = backends(&[1; 5]);
        let before = owners(&all, &keys);
        // Remove the third: exactly its keys move, about 1/5.
        let fewer: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 2)
            .map(|(_, b)| b.clone())
            .collect();
        let after = owners(&fewer, &keys);
        let gone = all[2].addr();
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*b, gone, "a key moved from a backend that stayed");
                moved += 1;
            }
        }
        assert_eq!(moved, before.iter().filter(|&&b| b == gone).count());
        assert!(
            (1600..=2400).contains(&moved),
            "{moved} of 10000 keys moved (about 2000 expected)"
        );
        // Add it back: the same keys return, nothing else moves.
        assert_eq!(owners(&all, &keys), before);
        // Add a sixth: only keys that go to it move, about 1/6.
        let more = backends(&[1; 6]);
        let after = owners(&more, &keys);
        let new = more[5].addr();
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert!(before.iter().zip(&after).all(|(b, a)| b == a || *a == new));
        assert!(
            (1300..=2100).contains(&moved),
            "{moved} of 10000 keys moved (about 1667 expected)"
        );
    }

    #[test]
    fn the_ring_is_cached_per_candidate_set() {
        let all = backends(&[1, 1, 1]);
        let ch = ConsistentHash::default();
        for h in keys(100) {
            ch.pick_hash(&all, h);
        }
        assert_eq!(ch.rings_built(), 1);
        // A drained backend: another set, one more ring; back again: cached.
        let two = &all[..2];
        for h in keys(100) {
            ch.pick_hash(two, h);
            ch.pick_hash(&all, h);
        }
        assert_eq!(ch.rings_built(), 2);
    }

    #[test]
    fn bounded_loads_spread_a_hot_key() {
        let set = backends(&[1; 4]);
        let ch = ConsistentHash::default();
        let hot = stable_hash(b"hot");
        let owner = ch.pick_hash(&set, hot);
        let mut held = Vec::new();
        let mut per = [0usize; 4];
        for k in 0..40 {
            let i = ch.pick_hash(&set, hot);
            // The bound at this pick: ceil(1.25 · (k + 1) / 4).
            let slots = (125 * (k + 1usize)).div_ceil(400);
            assert!(set[i].in_flight() < slots, "pick {k}: backend {i} full");
            per[i] += 1;
            held.push(set[i].start());
        }
        // No backend carries more than ceil(1.25 · 40 / 4) = 13; the key's own
        // backend is filled first, then the next ones on the ring.
        assert!(per.iter().all(|&c| c <= 13), "{per:?}");
        assert!(per[owner] >= 12, "{per:?}");
        assert!(per.iter().filter(|&&c| c > 0).count() >= 3, "{per:?}");
        // Requests done: the key goes home again.
        drop(held);
        assert_eq!(ch.pick_hash(&set, hot), owner);
        // Without a bound, everything goes to the owner.
        let off = ConsistentHash::default().balance(HashBalance::OFF);
        let _busy: Vec<_> = (0..10).map(|_| set[owner].start()).collect();
        assert_eq!(off.pick_hash(&set, hot), owner);
        assert_ne!(ch.pick_hash(&set, hot), owner);
    }

    #[test]
    fn bounded_loads_follow_weights() {
        let set = backends(&[3, 1]);
        let ch = ConsistentHash::default();
        let hot = stable_hash(b"hot");
        let mut held = Vec::new();
        for _ in 0..40 {
            let i = ch.pick_hash(&set, hot);
            held.push(set[i].start());
        }
        let (a, b) = (set[0].in_flight(), set[1].in_flight());
        // Bounds: ceil(1.25 · 40 · 3/4) = 38 and ceil(1.25 · 40 / 4) = 13.
        assert!(a <= 38 && b <= 13, "{a} {b}");
    }

    #[test]
    fn keys_parse() {
        assert_eq!(
            "header:X-Api-Key".parse::<HashKey>(),
            Ok(HashKey::Header("x-api-key".into()))
        );
        for bad in ["", "header:", "header:a b", "ip", "client-ip:x", "Header:x"] {
            assert!(bad.parse::<HashKey>().is_err(), "{bad:?}");
        }
        for (s, want) in [
            ("1.25", "1.25"),
            ("1", "1.00"),
            ("100", "100.00"),
            ("off", "off"),
            ("0", "off"),
        ] {
            assert_eq!(s.parse::<HashBalance>().unwrap().to_string(), want);
        }
        for bad in ["0.99", "-1", "101", "NaN", "inf", "x", ""] {
            assert!(bad.parse::<HashBalance>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_key_falls_back_to_the_client_address() {
        let ch = ConsistentHash::new("header:x-user".parse().unwrap());
        let parse = |raw: &'static str| {
            http_core::RequestHead::parse_complete(
                bytes::Bytes::from_static(raw.as_bytes()),
                &Default::default(),
            )
            .unwrap()
        };
        let with = parse("GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n");
        let empty = parse("GET / HTTP/1.1\r\nHost: a\r\nX-User: \r\n\r\n");
        let without = parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let peer = "192.0.2.1:4000".parse().ok();
        let peer_v6 = "[::ffff:192.0.2.1]:5000".parse().ok();
        assert_eq!(ch.hash_of(&PickRequest::new(&with, peer)), stable_hash(b"alice"));
        let by_ip = stable_hash(&[192, 0, 2, 1]);
        assert_eq!(ch.hash_of(&PickRequest::new(&empty, peer)), by_ip);
        assert_eq!(ch.hash_of(&PickRequest::new(&without, peer)), by_ip);
        // Another port, or the IPv4-mapped form: the same client.
        assert_eq!(ch.hash_of(&PickRequest::new(&without, peer_v6)), by_ip);
        assert_eq!(ch.hash_of(&PickRequest::connection(peer)), by_ip);
    }
}
