//! The server's metrics: what it counts of its responses, connections and
//! cache, and the Prometheus `/metrics` endpoint that renders them, served on a
//! listener of its own.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_core::metrics::{ConnectionGauge, ResponseMetrics, ResponseSnapshot};
use http_core::{Method, Request, RequestHead, Response, Server, ServerHandle, Service, TlsConfig};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

use crate::{Coding, Inner, StaticFiles};

/// Upper bounds of the request-duration buckets: 0.1 ms to 10 s. A file
/// answered from memory takes tens of microseconds, so the buckets start
/// lower than a proxy's.
pub const DURATION_BUCKETS: [Duration; 16] = [
    Duration::from_micros(100),
    Duration::from_micros(250),
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

/// The `Content-Type` of the rendering: `text/plain; version=0.0.4; charset=utf-8`.
const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Most connections the metrics listener serves at once: scrapers, not clients.
const MAX_CONNECTIONS: usize = 64;

/// What a server counts as it answers (kept in the server's shared state).
#[derive(Debug)]
pub(crate) struct Counters {
    /// Durations, statuses and body bytes, fed by `Service::on_response`.
    pub responses: ResponseMetrics,
    /// Client connections open, counted by the server's accept loop.
    pub connections: ConnectionGauge,
    /// Answers by content coding, and the compressions made.
    pub compression: CompressionCounters,
}

/// Per coding (indexed by `Coding::index`): answers sent with it, and the
/// in-memory compressions made, their input and output bytes and CPU time.
/// Only the compressed paths touch these.
#[derive(Debug, Default)]
pub(crate) struct CompressionCounters {
    responses: [AtomicU64; 3],
    compressions: [AtomicU64; 3],
    input: [AtomicU64; 3],
    output: [AtomicU64; 3],
    micros: [AtomicU64; 3],
}

impl CompressionCounters {
    /// One answer carrying coding `c` (a sidecar, a cached or a streamed form).
    pub fn answered(&self, c: Coding) {
        self.responses[c.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// One file compressed in memory.
    pub fn record(&self, c: Coding, input: u64, output: u64, took: Duration) {
        let i = c.index();
        self.compressions[i].fetch_add(1, Ordering::Relaxed);
        self.input[i].fetch_add(input, Ordering::Relaxed);
        self.output[i].fetch_add(output, Ordering::Relaxed);
        self.micros[i].fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<CodingCounts> {
        let get = |a: &[AtomicU64; 3], c: Coding| a[c.index()].load(Ordering::Relaxed);
        Coding::ALL
            .into_iter()
            .map(|c| CodingCounts {
                coding: c,
                responses: get(&self.responses, c),
                compressions: get(&self.compressions, c),
                input_bytes: get(&self.input, c),
                output_bytes: get(&self.output, c),
                compress_micros: get(&self.micros, c),
            })
            .collect()
    }
}

/// What was sent and made with one content coding (see [`MetricsSnapshot::compression`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodingCounts {
    /// The coding.
    pub coding: Coding,
    /// Answers carrying it (from a sidecar, a cached compressed form, or a stream; 304s included).
    pub responses: u64,
    /// Files compressed in memory to it (once per file version kept in the cache).
    pub compressions: u64,
    /// Bytes those compressions read.
    pub input_bytes: u64,
    /// Bytes they made (`input_bytes - output_bytes` saved per copy sent).
    pub output_bytes: u64,
    /// Time they took (on the blocking pool, hand-off included), in microseconds.
    pub compress_micros: u64,
}

impl Default for Counters {
    fn default() -> Self {
        // Read now, so that where /proc is missing the start time is the build's.
        let _ = http_core::metrics::process_start_time();
        Counters {
            responses: ResponseMetrics::new(&DURATION_BUCKETS),
            connections: ConnectionGauge::new(),
            compression: CompressionCounters::default(),
        }
    }
}

/// A handle on a [`StaticFiles`](crate::StaticFiles) server's metrics, from
/// [`StaticFiles::metrics`](crate::StaticFiles::metrics): read them
/// ([`snapshot`](Self::snapshot), [`render`](Self::render)) or serve them on a
/// listener of their own ([`serve`](Self::serve), [`spawn`](Self::spawn)).
/// Cheap to clone.
///
/// As an [`http_core::Service`] it answers `GET /metrics` (and `HEAD`) with the
/// Prometheus text format, 404 on any other path and 405 to other methods. The
/// endpoint is read-only and holds counts only: no paths, no client addresses.
/// It binds wherever it is told, as Prometheus' own exporters do, so that a
/// scraper on another machine can reach it; like nginx's `stub_status`, keep it
/// on a loopback or internal address, or behind a firewall, when the counts
/// are not for everyone.
///
/// ```
/// use static_server::StaticFiles;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let root = std::env::temp_dir();
/// let files = StaticFiles::builder(&root).build().unwrap();
/// let metrics = files.metrics();
/// let text = metrics.render().unwrap();
/// assert!(text.contains("# TYPE static_server_request_duration_seconds histogram\n"));
/// assert_eq!(metrics.snapshot().responses.duration.count(), 0);
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let handle = metrics.spawn(listener).unwrap(); // GET http://{handle.local_addr()}/metrics
/// handle.shutdown().await;
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
    /// Serve them over HTTPS (see [`Metrics::tls`]).
    tls: Option<TlsConfig>,
}

/// A server's metrics at one moment (see [`Metrics::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Request durations, responses by status, response body bytes, refusals by reason.
    pub responses: ResponseSnapshot,
    /// Client connections open.
    pub connections: usize,
    /// Files answered from the in-memory cache (fresh, or revalidated unchanged).
    pub cache_hits: u64,
    /// Files whose headers (and, when small enough, content) had to be read
    /// from the disk: not in the cache, changed, or the cache is off.
    pub cache_misses: u64,
    /// Cache entries dropped to make room for others.
    pub cache_evictions: u64,
    /// Files in the cache.
    pub cache_entries: usize,
    /// Bytes of file content held in the cache (compressed forms included).
    pub cache_memory_bytes: u64,
    /// Per content coding (zstd, br, gzip): answers and compressions.
    pub compression: Vec<CodingCounts>,
    /// Configuration reloads, for a server of sites ([`StaticFiles::from_sites`](crate::StaticFiles::from_sites)).
    pub config_reloads: Option<crate::ReloadCounts>,
}

impl Metrics {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Metrics { inner, tls: None }
    }

    /// Serves the metrics over HTTPS with these certificates (the file
    /// server's, usually) instead of plain HTTP.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The counts now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = self.inner.cache.counters();
        MetricsSnapshot {
            responses: self.inner.counters.responses.snapshot(),
            connections: self.inner.counters.connections.get(),
            cache_hits: c.hits,
            cache_misses: c.misses,
            cache_evictions: c.evictions,
            cache_entries: c.entries,
            cache_memory_bytes: c.memory_bytes,
            compression: self.inner.counters.compression.snapshot(),
            config_reloads: crate::sites::counts(&self.inner),
        }
    }

    /// The counts now in the Prometheus text format (version 0.0.4): every
    /// name starts with `static_server_`, but `process_start_time_seconds`.
    /// The crate's README lists every family.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(http_core::metrics::ProcessStartCollector));
        let sub = registry.sub_registry_with_prefix("static_server");
        sub.register_collector(Box::new(Snapshot(self.snapshot())));
        if let Some(tls) = &self.inner.cfg.tls {
            sub.register_collector(Box::new(tls.collector()));
        }
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }

    /// The gauge of open client connections, for a server of the embedder's
    /// own that runs the [`StaticFiles`](crate::StaticFiles) service
    /// ([`http_core::Server::connection_gauge`]); [`StaticFiles::serve`](crate::StaticFiles::serve)
    /// and [`spawn`](crate::StaticFiles::spawn) use it already.
    pub fn connection_gauge(&self) -> ConnectionGauge {
        self.inner.counters.connections.clone()
    }

    /// Serves `GET /metrics` on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        Self::server(self).serve(listener, shutdown).await
    }

    /// Serves `GET /metrics` on `listener` on a new task; the handle knows the
    /// bound address and stops it.
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<ServerHandle> {
        Self::server(self).spawn(listener)
    }

    /// The listener's server runs the file server's own service type in its
    /// metrics role, not `Metrics`: a second service type would instantiate
    /// http-core's connection driver a second time in the program, after
    /// which the compiler no longer inlines the request parser into the file
    /// server's driver. That cost 230 instructions a request (callgrind), more
    /// than everything the metrics count.
    fn server(self) -> Server<StaticFiles> {
        let tls = self.tls;
        let role = StaticFiles {
            inner: self.inner,
            role: crate::Role::Metrics,
        };
        let server = Server::new(role)
            .max_connections(MAX_CONNECTIONS)
            .shutdown_timeout(Duration::from_secs(1));
        match tls {
            Some(tls) => server.tls(tls),
            None => server,
        }
    }
}

impl Service for Metrics {
    async fn call(&self, req: Request<'_>) -> Response {
        answer(&self.inner, req.head)
    }
}

/// The metrics listener's answer to `head`. Kept out of line: inlined into
/// the file server's `call` it would swell the request path the compiler
/// optimises as one piece.
#[cold]
#[inline(never)]
pub(crate) fn answer(inner: &Arc<Inner>, head: &RequestHead) -> Response {
    // Not `head.path()`, nor a search for `?`: a second caller of either
    // would have the compiler stop inlining it into the file server's
    // request path.
    let target = head.target();
    if target != "/metrics" && !target.starts_with("/metrics?") {
        return Response::text(404, "not found: the metrics are at /metrics\n");
    }
    if !matches!(head.method(), Method::Get | Method::Head) {
        return Response::text(405, "method not allowed\n").header("Allow", "GET, HEAD");
    }
    match Metrics::new(inner.clone()).render() {
        Ok(text) => Response::new(200)
            .header("Content-Type", CONTENT_TYPE)
            .header("Cache-Control", "no-store")
            .body(text),
        Err(_) => Response::text(500, "cannot render the metrics\n"),
    }
}

const DURATION_HELP: &str =
    "Time from a request's head to the end of writing its response, for responses the server made (not the refusals).";

/// A per-coding counter family: name, unit, help, and the count it reads.
type PerCoding = (&'static str, Option<Unit>, &'static str, fn(&CodingCounts) -> u64);

/// A snapshot, encoded on each scrape of the registry it is in.
#[derive(Debug)]
struct Snapshot(MetricsSnapshot);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let mut family = encoder.encode_descriptor(
            "responses",
            "Responses by status code, the HTTP layer's refusals of malformed requests included.",
            None,
            MetricType::Counter,
        )?;
        for (code, n) in &s.responses.statuses {
            let code = itoa::Buffer::new().format(*code).to_owned();
            ConstCounter::new(*n).encode(family.encode_family(&[("code", code)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "refused",
            "Requests the HTTP layer refused itself, by reason (also in static_server_responses_total by status; not in the duration histogram).",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in &s.responses.refused {
            ConstCounter::new(*n).encode(family.encode_family(&[("reason", *reason)])?)?;
        }
        let family = encoder.encode_descriptor(
            "request_duration",
            DURATION_HELP,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        s.responses.duration.encode_seconds(family)?;
        let counters: [(&str, Option<Unit>, &str, u64); 4] = [
            (
                "response_body",
                Some(Unit::Bytes),
                "Response body bytes sent (heads not counted; responses written whole).",
                s.responses.body_bytes,
            ),
            (
                "cache_hits",
                None,
                "Files answered from the in-memory cache (fresh, or revalidated unchanged).",
                s.cache_hits,
            ),
            (
                "cache_misses",
                None,
                "Files whose entry was built from the disk: not cached, changed, or the cache is off.",
                s.cache_misses,
            ),
            (
                "cache_evictions",
                None,
                "Cache entries dropped to make room for others.",
                s.cache_evictions,
            ),
        ];
        for (name, unit, help, value) in counters {
            let family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
            ConstCounter::new(value).encode(family)?;
        }
        let gauges: [(&str, Option<Unit>, &str, u64); 3] = [
            (
                "client_connections",
                None,
                "Client connections open.",
                s.connections as u64,
            ),
            (
                "cache_entries",
                None,
                "Files in the in-memory cache.",
                s.cache_entries as u64,
            ),
            (
                "cache_memory",
                Some(Unit::Bytes),
                "Bytes of file content held in the in-memory cache.",
                s.cache_memory_bytes,
            ),
        ];
        for (name, unit, help, value) in gauges {
            let family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            ConstGauge::new(value).encode(family)?;
        }
        let per_coding: [PerCoding; 4] = [
            (
                "encoded_responses",
                None,
                "Answers sent with a content coding (precompressed sidecar, cached compressed form or compressed stream), by coding.",
                |c| c.responses,
            ),
            (
                "compressions",
                None,
                "Files compressed in memory (once per file version and coding while cached), by coding.",
                |c| c.compressions,
            ),
            (
                "compression_input",
                Some(Unit::Bytes),
                "Bytes read by the in-memory compressions, by coding.",
                |c| c.input_bytes,
            ),
            (
                "compression_output",
                Some(Unit::Bytes),
                "Bytes made by the in-memory compressions, by coding.",
                |c| c.output_bytes,
            ),
        ];
        for (name, unit, help, get) in per_coding {
            let mut family = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
            for c in &s.compression {
                ConstCounter::new(get(c)).encode(family.encode_family(&[("coding", c.coding.token())])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "compression",
            "Time the in-memory compressions took (on the blocking pool), by coding.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for c in &s.compression {
            ConstCounter::new(c.compress_micros as f64 / 1e6)
                .encode(family.encode_family(&[("coding", c.coding.token())])?)?;
        }
        if let Some(r) = &s.config_reloads {
            let mut family = encoder.encode_descriptor(
                "config_reloads",
                "Configuration reloads (SIGHUP, StaticFiles::reload), by result.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(r.succeeded).encode(family.encode_family(&[("result", "success")])?)?;
            ConstCounter::new(r.failed).encode(family.encode_family(&[("result", "failure")])?)?;
            let family = encoder.encode_descriptor(
                "config_last_reload_timestamp",
                "When the last configuration reload ended (0: none yet).",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            ConstGauge::new(r.last_timestamp).encode(family)?;
            let family = encoder.encode_descriptor(
                "config_last_reload_success",
                "1 when the last configuration reload succeeded (or none was tried), 0 when it failed.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(u64::from(r.last_succeeded)).encode(family)?;
        }
        encoder
            .encode_descriptor("build", "The server's version.", None, MetricType::Info)?
            .encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        Ok(())
    }
}
