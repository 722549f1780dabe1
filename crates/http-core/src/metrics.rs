//! What a server measures for its metrics, kept without locks or allocation per
//! request: a duration histogram with fixed buckets, responses by status code,
//! body bytes, and the open connections. The crates above render them (in the
//! Prometheus text format) from a snapshot taken at scrape time.
//!
//! ```
//! use std::time::Duration;
//! use http_core::metrics::{DurationHistogram, DEFAULT_BUCKETS};
//!
//! let h = DurationHistogram::new(&DEFAULT_BUCKETS);
//! h.observe(Duration::from_micros(700));
//! h.observe(Duration::from_secs(60));
//! let s = h.snapshot();
//! assert_eq!(s.count(), 2);
//! // Bucket counts are per bucket (not cumulative); the last is over the last bound.
//! assert_eq!(s.counts[1], 1); // 0.5 ms < 0.7 ms <= 1 ms
//! assert_eq!(s.counts[DEFAULT_BUCKETS.len()], 1); // over 10 s
//! ```
//!
//! Every update is a relaxed atomic add: a scrape that runs while requests are
//! answered may see a histogram's sum a request ahead of or behind its counts,
//! as with any lock-free client library; the count is always the sum of the
//! bucket counts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{AccessRecord, Error};

/// Upper bounds for request durations: 0.5 ms to 10 s, about three to a
/// decade (Prometheus' usual 1, 2.5, 5 steps).
pub const DEFAULT_BUCKETS: [Duration; 14] = [
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2500),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// A histogram of durations over fixed buckets, found by a scan of the bounds
/// (which stops at the first bucket for the fast, common case): per
/// observation two relaxed atomic adds, the bucket's count and the bucket's
/// sum, which share a cache line. Under contention an observation then moves
/// one cache line between cores, as a mutex-guarded histogram does, and never
/// waits for a lock.
#[derive(Debug)]
pub struct DurationHistogram {
    /// The bounds, ascending, in nanoseconds.
    bounds_ns: Box<[u64]>,
    bounds: Box<[Duration]>,
    /// One more than `bounds` (the last: over the last bound).
    slots: Box<[Slot]>,
}

/// One bucket: its count and the sum of its observations in microseconds
/// (rounded to the nearest; in nanoseconds a u64 would wrap after 584 years of
/// summed time, which 10,000 open long-polls reach in three weeks). Aligned to
/// 16 bytes, so a slot never straddles two cache lines.
#[derive(Debug, Default)]
#[repr(align(16))]
struct Slot {
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl DurationHistogram {
    /// A histogram with `bounds` as its buckets' upper bounds (sorted here;
    /// duplicates dropped). An observation equal to a bound falls in that
    /// bound's bucket, as Prometheus' `le` says.
    pub fn new(bounds: &[Duration]) -> Self {
        let mut sorted = bounds.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        DurationHistogram {
            bounds_ns: sorted.iter().map(|d| nanos(*d)).collect(),
            slots: (0..=sorted.len()).map(|_| Slot::default()).collect(),
            bounds: sorted.into(),
        }
    }

    /// Counts one duration.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let ns = nanos(d);
        let i = self
            .bounds_ns
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(self.bounds_ns.len());
        if let Some(slot) = self.slots.get(i) {
            slot.count.fetch_add(1, Ordering::Relaxed);
            slot.sum_us
                .fetch_add(ns.saturating_add(500) / 1000, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let sum_us = self.slots.iter().fold(0u64, |sum, s| {
            sum.saturating_add(s.sum_us.load(Ordering::Relaxed))
        });
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            counts: self
                .slots
                .iter()
                .map(|s| s.count.load(Ordering::Relaxed))
                .collect(),
            sum: Duration::from_micros(sum_us),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A [`DurationHistogram`]'s counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// The buckets' upper bounds, ascending.
    pub bounds: Vec<Duration>,
    /// Observations per bucket (not cumulative): `counts[i]` were over
    /// `bounds[i - 1]` and at most `bounds[i]`; the last entry, one past the
    /// bounds, counts those over the last bound.
    pub counts: Vec<u64>,
    /// The sum of the observations (to the microsecond).
    pub sum: Duration,
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound in seconds, observations in that bucket)` for every bucket,
    /// the last with `f64::INFINITY`: the form `prometheus-client`'s encoder
    /// takes (it adds the counts up itself).
    pub fn buckets_seconds(&self) -> Vec<(f64, u64)> {
        let bounds = self
            .bounds
            .iter()
            .map(Duration::as_secs_f64)
            .chain(std::iter::once(f64::INFINITY));
        bounds.zip(self.counts.iter().copied()).collect()
    }
}

/// Responses counted by status code (100 to 999: every code the wire can carry).
#[derive(Debug)]
pub struct StatusCounts {
    /// Indexed by `status - FIRST_STATUS`.
    counts: Box<[AtomicU64]>,
}

const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 999;

impl Default for StatusCounts {
    fn default() -> Self {
        StatusCounts {
            counts: (FIRST_STATUS..=LAST_STATUS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl StatusCounts {
    /// Counts one response with `status`; a status outside 100–999 (which no
    /// response on the wire has) is not counted.
    #[inline]
    pub fn count(&self, status: u16) {
        if let Some(c) = status
            .checked_sub(FIRST_STATUS)
            .and_then(|i| self.counts.get(usize::from(i)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(status, responses)` for every status seen at least once, ascending.
    pub fn snapshot(&self) -> Vec<(u16, u64)> {
        (FIRST_STATUS..)
            .zip(self.counts.iter())
            .map(|(s, c)| (s, c.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// What a service records of each response in
/// [`Service::on_response`](crate::Service::on_response): its duration, its
/// status, its body bytes, and for a request the driver refused itself, why.
///
/// ```
/// use http_core::metrics::{ResponseMetrics, DEFAULT_BUCKETS};
/// use http_core::{AccessRecord, Request, Response, Service};
///
/// struct Hello { metrics: ResponseMetrics }
/// impl Service for Hello {
///     async fn call(&self, _req: Request<'_>) -> Response {
///         Response::text(200, "hello\n")
///     }
///     fn on_response(&self, record: &AccessRecord<'_>) {
///         self.metrics.record(record);
///     }
/// }
/// let hello = Hello { metrics: ResponseMetrics::new(&DEFAULT_BUCKETS) };
/// assert_eq!(hello.metrics.snapshot().duration.count(), 0);
/// ```
#[derive(Debug)]
pub struct ResponseMetrics {
    duration: DurationHistogram,
    statuses: StatusCounts,
    body_bytes: AtomicU64,
    refused: RefusalCounts,
}

impl ResponseMetrics {
    /// Counters at zero, with `bounds` as the duration histogram's buckets.
    pub fn new(bounds: &[Duration]) -> Self {
        ResponseMetrics {
            duration: DurationHistogram::new(bounds),
            statuses: StatusCounts::default(),
            body_bytes: AtomicU64::new(0),
            refused: RefusalCounts::default(),
        }
    }

    /// Counts one response: its status, and its body bytes when it was
    /// written whole. A response the service made also goes into the duration
    /// histogram; a request the driver refused itself (`record.refused`) is
    /// counted by reason instead: its `elapsed` is the client's slowness (a
    /// 408's is the header timeout), not a response time.
    #[inline]
    pub fn record(&self, record: &AccessRecord<'_>) {
        let bytes = record.bytes.unwrap_or(0);
        match record.refused {
            None => self.observe(record.status, bytes, record.elapsed),
            Some(e) => {
                self.refused.count(e);
                self.statuses.count(record.status);
                self.add_bytes(bytes);
            }
        }
    }

    /// Counts an answer that is no HTTP response (a TCP relay's connection,
    /// with the status its access line shows): status, duration, bytes.
    #[inline]
    pub fn observe(&self, status: u16, body_bytes: u64, elapsed: Duration) {
        self.duration.observe(elapsed);
        self.statuses.count(status);
        self.add_bytes(body_bytes);
    }

    fn add_bytes(&self, n: u64) {
        if n > 0 {
            self.body_bytes.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> ResponseSnapshot {
        ResponseSnapshot {
            duration: self.duration.snapshot(),
            statuses: self.statuses.snapshot(),
            body_bytes: self.body_bytes.load(Ordering::Relaxed),
            refused: self.refused.snapshot(),
        }
    }
}

/// Requests the driver refused, by [`Error::code`].
#[derive(Debug, Default)]
struct RefusalCounts {
    /// Indexed by the error's discriminant (fewer than [`REFUSAL_SLOTS`] kinds).
    counts: [AtomicU64; REFUSAL_SLOTS],
    /// The code of each slot, set when it is first counted.
    codes: [OnceLock<&'static str>; REFUSAL_SLOTS],
}

const REFUSAL_SLOTS: usize = 32;

impl RefusalCounts {
    fn count(&self, e: Error) {
        let i = e as usize;
        if let (Some(c), Some(code)) = (self.counts.get(i), self.codes.get(i)) {
            code.get_or_init(|| e.code());
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(code, requests)` for each reason seen, by code.
    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut seen: Vec<(&'static str, u64)> = self
            .codes
            .iter()
            .zip(&self.counts)
            .filter_map(|(code, c)| Some((*code.get()?, c.load(Ordering::Relaxed))))
            .collect();
        seen.sort_unstable();
        seen
    }
}

/// [`ResponseMetrics`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseSnapshot {
    /// From the request's head to the end of writing the response, for each
    /// response the service made (refusals are not in it).
    pub duration: HistogramSnapshot,
    /// `(status, responses)` for each status seen, ascending, refusals included.
    pub statuses: Vec<(u16, u64)>,
    /// Body bytes of the responses written whole (heads not counted).
    pub body_bytes: u64,
    /// `(reason, requests)` the driver refused itself, by [`Error::code`]
    /// (`bad_request_line`, `header_timeout`, ...), for each reason seen.
    pub refused: Vec<(&'static str, u64)>,
}

/// The number of open connections, shared between the servers that update it
/// and whoever reads it. A [`Server`](crate::Server) given one with
/// [`connection_gauge`](crate::Server::connection_gauge) adds the connections it
/// serves and takes them off as they end; other servers (a TCP relay) hold a
/// [`ConnectionGuard`] per connection. Several servers may share one gauge.
#[derive(Debug, Clone, Default)]
pub struct ConnectionGauge(Arc<AtomicUsize>);

impl ConnectionGauge {
    /// A gauge at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections open now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one connection until the guard is dropped.
    pub fn enter(&self) -> ConnectionGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One connection counted in a [`ConnectionGauge`] while this lives.
#[derive(Debug)]
pub struct ConnectionGuard(ConnectionGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.sub(1);
    }
}

/// When this process started, as `process_start_time_seconds` reports it. On
/// Linux it is read from `/proc` (the process's start in clock ticks after
/// boot, at the kernel's fixed 100 ticks a second, as Prometheus' own process
/// collector reads it); elsewhere, or if `/proc` cannot be read, it is the time
/// of the first call. Read once and kept.
pub fn process_start_time() -> SystemTime {
    static START: OnceLock<SystemTime> = OnceLock::new();
    *START.get_or_init(|| proc_start_time().unwrap_or_else(SystemTime::now))
}

/// Clock ticks a second in `/proc`'s times (`USER_HZ`): fixed at 100 by the
/// kernel's interface on the architectures Linux runs on today.
const USER_HZ: u64 = 100;

fn proc_start_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks = start_ticks(&stat)?;
    let btime = boot_time(&boot)?;
    let after_boot = Duration::from_millis(ticks.checked_mul(1000)? / USER_HZ);
    UNIX_EPOCH
        .checked_add(Duration::from_secs(btime))?
        .checked_add(after_boot)
}

/// Field 22 of `/proc/self/stat` (`starttime`); the fields are counted after
/// the command name, which is in parentheses and may hold spaces or `)`.
///
/// (Both parsers search bytes, not `char`s: a `char` search here would be one
/// more caller of the `char` searcher the request path uses, and the compiler
/// would stop inlining it there.)
fn start_ticks(stat: &str) -> Option<u64> {
    let close = stat.bytes().rposition(|b| b == b')')?;
    // What follows the name begins with field 3 (state).
    stat.get(close + 1..)?
        .split_ascii_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()
}

/// The `btime` line of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    let at = stat.find("\nbtime ")? + "\nbtime ".len();
    let rest = stat.get(at..)?;
    let end = rest.bytes().position(|b| b == b'\n').unwrap_or(rest.len());
    rest.get(..end)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_what_is_at_most_their_bound() {
        let h = DurationHistogram::new(&[Duration::from_millis(10), Duration::from_millis(1)]);
        for d in [0, 1000, 1001, 10_000, 10_001] {
            h.observe(Duration::from_micros(d));
        }
        let s = h.snapshot();
        assert_eq!(s.bounds, [Duration::from_millis(1), Duration::from_millis(10)]);
        assert_eq!(s.counts, [2, 2, 1]);
        assert_eq!(s.count(), 5);
        assert_eq!(s.sum, Duration::from_micros(1000 + 1001 + 10_000 + 10_001));
        assert_eq!(s.buckets_seconds(), [(0.001, 2), (0.01, 2), (f64::INFINITY, 1)]);
        h.observe(Duration::MAX);
        assert_eq!(h.snapshot().counts, [2, 2, 2]);
    }

    #[test]
    fn sums_round_to_the_microsecond() {
        let h = DurationHistogram::new(&DEFAULT_BUCKETS);
        for _ in 0..4 {
            h.observe(Duration::from_nanos(20_600));
        }
        assert_eq!(h.snapshot().sum, Duration::from_micros(84));
    }

    #[test]
    fn statuses_outside_the_wire_range_are_not_counted() {
        let s = StatusCounts::default();
        for status in [200, 200, 404, 99, 0, 1000, u16::MAX, 100, 999] {
            s.count(status);
        }
        assert_eq!(s.snapshot(), [(100, 1), (200, 2), (404, 1), (999, 1)]);
    }

    #[test]
    fn refusals_are_counted_by_reason_and_status_but_not_timed() {
        let m = ResponseMetrics::new(&DEFAULT_BUCKETS);
        let record = |status, refused| AccessRecord {
            peer: None,
            head: None,
            status,
            bytes: Some(10),
            elapsed: Duration::from_secs(10),
            fields: &[],
            refused,
        };
        m.record(&record(200, None));
        m.record(&record(408, Some(Error::HeaderTimeout)));
        m.record(&record(408, Some(Error::HeaderTimeout)));
        m.record(&record(400, Some(Error::BadRequestLine)));
        m.observe(502, 0, Duration::from_millis(1));
        let s = m.snapshot();
        assert_eq!(s.duration.count(), 2);
        assert_eq!(s.statuses, [(200, 1), (400, 1), (408, 2), (502, 1)]);
        assert_eq!(s.refused, [("bad_request_line", 1), ("header_timeout", 2)]);
        assert_eq!(s.body_bytes, 40);
    }

    #[test]
    fn guards_count_connections() {
        let g = ConnectionGauge::new();
        let a = g.enter();
        let b = g.clone().enter();
        assert_eq!(g.get(), 2);
        drop(a);
        drop(b);
        assert_eq!(g.get(), 0);
    }

    #[test]
    fn proc_fields_are_read_past_a_name_with_spaces_and_parens() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50";
        assert_eq!(start_ticks(stat), Some(987654));
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1700000000)
        );
        assert_eq!(start_ticks("garbage"), None);
        assert_eq!(boot_time("cpu 1\n"), None);
    }

    #[test]
    fn the_process_started_before_now_and_not_long_ago() {
        let start = process_start_time();
        let age = SystemTime::now().duration_since(start).unwrap_or_default();
        assert!(age < Duration::from_secs(24 * 3600), "{age:?}");
        assert_eq!(process_start_time(), start);
    }
}

/// `process_start_time_seconds`, the standard name (no prefix), as a
/// `prometheus-client` collector: register it once in a registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessStartCollector;

impl prometheus_client::collector::Collector for ProcessStartCollector {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        let secs = process_start_time()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let family = encoder.encode_descriptor(
            "process_start_time",
            "Start time of the process since unix epoch in seconds.",
            Some(&prometheus_client::registry::Unit::Seconds),
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        prometheus_client::metrics::gauge::ConstGauge::new(secs).encode(family)
    }
}

impl HistogramSnapshot {
    /// Writes the histogram as a Prometheus histogram in seconds.
    pub fn encode_seconds(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> std::fmt::Result {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum.as_secs_f64(),
            self.count(),
            &self.buckets_seconds(),
            None,
        )
    }
}
