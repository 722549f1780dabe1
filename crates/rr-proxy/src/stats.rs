//! Counters and their JSON/Prometheus rendering.
//!
//! [`ProxyStats`] (with a [`BackendStats`] per backend) is the snapshot
//! [`ProxyHandle::stats`](crate::ProxyHandle::stats) returns. The admin endpoint
//! renders it two ways:
//! - `GET /stats`: the snapshot serialized with serde, field for field (a backend
//!   alone for `GET /backends/{addr}`);
//! - `GET /metrics`: the Prometheus text format (version 0.0.4), written by the
//!   `prometheus-client` crate from a collector over the snapshot.

use std::collections::BTreeMap;

use http_core::metrics::HistogramSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

use crate::{BackendStats, DiscoveryStats, Mode, ReloadStats};

/// Proxy-wide counters and every backend's.
///
/// With serde it serializes to the admin endpoint's `GET /stats` document, its
/// fields in this order (`mode` as `"http"` or `"tcp"`, `responses` as an
/// object from status code to count, each backend as [`BackendStats`]
/// describes; the duration histograms are left out: they are for `/metrics`):
///
/// ```
/// let proxy = rr_proxy::Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 1)
///     .build()
///     .unwrap();
/// let json = serde_json::to_string(&proxy.handle().stats()).unwrap();
/// assert!(json.starts_with(r#"{"strategy":"round-robin","mode":"http","requests":0,"#));
/// assert!(json.contains(r#""backends":[{"addr":"127.0.0.1:9002","weight":1,"state":"healthy","#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// The strategy's name.
    pub strategy: String,
    /// `http` or `tcp`.
    pub mode: Mode,
    /// Requests (HTTP mode) or connections (TCP mode) received. HTTP mode: not
    /// those the HTTP layer refused itself (malformed, too large, too slow),
    /// which `responses` counts.
    pub requests: u64,
    /// Requests answered 503 (TCP mode: connections closed) because no backend was available.
    pub no_backend: u64,
    /// Extra attempts made on another backend or connection.
    pub retries: u64,
    /// Requests the proxy answered 502 itself (TCP mode: connections closed
    /// because the last backend tried refused the connection).
    pub bad_gateway: u64,
    /// Requests the proxy answered 504 itself (TCP mode: connections closed
    /// because connecting to the last backend tried timed out).
    pub gateway_timeout: u64,
    /// Client connections open now.
    pub client_connections: usize,
    /// Bytes sent to clients: response bodies in HTTP mode (heads not counted;
    /// responses written whole), every byte in TCP mode.
    pub client_sent_bytes: u64,
    /// Responses sent to clients by status code, those the proxy or its HTTP
    /// layer made itself included (TCP mode: connections by the status their
    /// access line shows); codes never sent are absent.
    pub responses: BTreeMap<u16, u64>,
    /// Requests the HTTP layer refused itself (malformed, too large, too slow),
    /// by reason ([`http_core::Error::code`]); reasons never seen are absent.
    pub refused: BTreeMap<&'static str, u64>,
    /// Request durations: from the request head to the end of the response
    /// for each response the proxy made (HTTP mode; not the refusals), a
    /// connection's lifetime (TCP mode).
    #[serde(skip)]
    pub request_duration: HistogramSnapshot,
    /// From sending a request to a backend to its response head, for each
    /// attempt that got one (HTTP mode).
    #[serde(skip)]
    pub upstream_duration: HistogramSnapshot,
    /// Each backend, in the order added.
    pub backends: Vec<BackendStats>,
    /// Each discovery source (`dns:`/`srv:` entries, an embedder's own), in
    /// the order given; empty without discovery.
    pub discovery: Vec<DiscoveryStats>,
    /// The version of this document's layout: [`STATS_SCHEMA_VERSION`]. It goes
    /// up when a field changes meaning or goes away (a new field leaves it).
    pub schema_version: u32,
    /// Whole seconds since the proxy was built.
    pub uptime_seconds: u64,
    /// TLS handshakes with `https://` backends (absent, and left out of the
    /// JSON, when the proxy has no TLS configuration for backends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_tls: Option<crate::BackendTlsStats>,
    /// Each pool, in order (one, `default`, for a proxy built without pools).
    pub pools: Vec<PoolStats>,
    /// Configuration reloads.
    pub reloads: ReloadStats,
}

/// One pool's figures in [`ProxyStats::pools`] (its backends are in
/// [`ProxyStats::backends`], each naming its pool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// Its strategy's name.
    pub strategy: String,
    /// Requests (TCP mode: connections) routed to it.
    pub requests: u64,
    /// Its backends.
    pub backends: usize,
    /// Its backends that may take new requests now.
    pub eligible: usize,
}

/// The current version of the `/stats` layout ([`ProxyStats::schema_version`]).
pub const STATS_SCHEMA_VERSION: u32 = 1;

/// `value` as a JSON document: compact, in field order, ending in a newline.
pub(crate) fn json_document(value: &impl Serialize) -> Result<String, serde_json::Error> {
    let mut out = serde_json::to_string(value)?;
    out.push('\n');
    Ok(out)
}

/// The `Content-Type` of [`prometheus_text`]: `text/plain; version=0.0.4; charset=utf-8`.
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The version in `rr_proxy_build_info`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `/metrics` document: `stats` in the Prometheus text format (version 0.0.4).
/// Every name starts with `rr_proxy_` but `process_start_time_seconds` (the
/// standard name); per-backend series carry a `backend` label holding the
/// backend's `IP:PORT`. The README lists every family.
/// With `tls`, the handshake and reload counts of the client side's TLS too
/// (`rr_proxy_tls_*`).
pub(crate) fn prometheus_text(
    stats: ProxyStats,
    tls: Option<&http_core::TlsConfig>,
) -> Result<String, std::fmt::Error> {
    let capacity = 4096 + 2048 * stats.backends.len();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(http_core::metrics::ProcessStartCollector));
    let sub = registry.sub_registry_with_prefix("rr_proxy");
    let backend_tls = stats.backend_tls;
    sub.register_collector(Box::new(Snapshot(stats)));
    if let Some(handshakes) = backend_tls {
        sub.register_collector(Box::new(BackendTlsCollector(handshakes)));
    }
    if let Some(tls) = tls {
        sub.register_collector(Box::new(tls.collector()));
    }
    let mut out = String::with_capacity(capacity);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One metric family: its name after `rr_proxy_` (without the unit or the
/// `_total` that counters get), unit, type, help, and its value.
struct Family<T> {
    name: &'static str,
    unit: Option<Unit>,
    kind: MetricType,
    help: &'static str,
    value: fn(&T) -> u64,
}

const fn family<T>(
    kind: MetricType,
    name: &'static str,
    unit: Option<Unit>,
    help: &'static str,
    value: fn(&T) -> u64,
) -> Family<T> {
    Family {
        name,
        unit,
        kind,
        help,
        value,
    }
}

const fn counter<T>(name: &'static str, help: &'static str, value: fn(&T) -> u64) -> Family<T> {
    family(MetricType::Counter, name, None, help, value)
}

const fn bytes_counter<T>(name: &'static str, help: &'static str, value: fn(&T) -> u64) -> Family<T> {
    family(MetricType::Counter, name, Some(Unit::Bytes), help, value)
}

const fn gauge<T>(name: &'static str, help: &'static str, value: fn(&T) -> u64) -> Family<T> {
    family(MetricType::Gauge, name, None, help, value)
}

/// The proxy-wide families with one unlabelled value.
const PROXY_METRICS: [Family<ProxyStats>; 8] = [
    counter(
        "requests",
        "Requests (HTTP mode) or connections (TCP mode) received; HTTP mode: not those the HTTP layer refused itself (see rr_proxy_responses_total).",
        |s| s.requests,
    ),
    counter(
        "no_backend",
        "Requests answered 503 (TCP mode: connections closed) because no backend was available.",
        |s| s.no_backend,
    ),
    counter(
        "retries",
        "Extra attempts on another backend or connection.",
        |s| s.retries,
    ),
    counter(
        "bad_gateway",
        "Requests the proxy answered 502 itself, not a backend (TCP mode: connections closed, the last backend refused).",
        |s| s.bad_gateway,
    ),
    counter(
        "gateway_timeout",
        "Requests the proxy answered 504 itself, not a backend (TCP mode: connections closed, connecting timed out).",
        |s| s.gateway_timeout,
    ),
    gauge("client_connections", "Client connections open.", |s| {
        s.client_connections as u64
    }),
    gauge(
        "upstream_connections",
        "Connections to backends: exchanges in progress (HTTP mode) or tunnels (TCP mode), plus idle pooled connections.",
        |s| s.backends.iter().map(|b| (b.active + b.idle) as u64).sum(),
    ),
    bytes_counter(
        "client_sent",
        "Bytes sent to clients: response bodies only in HTTP mode (heads not counted; responses written whole), every byte in TCP mode.",
        |s| s.client_sent_bytes,
    ),
];

/// The per-backend families with one value each, with a `backend` label.
const BACKEND_METRICS: [Family<BackendStats>; 11] = [
    counter(
        "backend_requests",
        "Requests or connections sent to the backend.",
        |b| b.requests,
    ),
    counter("backend_failures", "Failed exchanges with the backend.", |b| {
        b.failures
    }),
    gauge(
        "backend_active",
        "Requests or tunnels in progress on the backend.",
        |b| b.active as u64,
    ),
    gauge(
        "backend_idle_connections",
        "Idle pooled connections to the backend.",
        |b| b.idle as u64,
    ),
    gauge("backend_up", "1 when the backend passes health checks.", |b| {
        u64::from(b.healthy)
    }),
    gauge("backend_draining", "1 when the backend is drained.", |b| {
        u64::from(b.draining)
    }),
    bytes_counter(
        "backend_sent",
        "Request body bytes sent to the backend in HTTP mode (heads not counted); every byte in TCP mode.",
        |b| b.bytes_sent,
    ),
    bytes_counter(
        "backend_received",
        "Response body bytes received from the backend in HTTP mode (heads not counted); every byte in TCP mode.",
        |b| b.bytes_received,
    ),
    counter("backend_connections", "Connections opened to the backend.", |b| {
        b.connects
    }),
    counter(
        "backend_connection_reuses",
        "Requests sent over a reused pooled connection to the backend (HTTP mode).",
        |b| b.reused,
    ),
    gauge(
        "backend_weight",
        "The backend's weight (used by the weighted strategy).",
        |b| u64::from(b.weight),
    ),
];

const REQUEST_DURATION_HELP: &str = "Time from a request's head to the end of writing its response, for responses the proxy made, not the refusals (HTTP mode); a connection's lifetime (TCP mode).";
const UPSTREAM_DURATION_HELP: &str =
    "Time from sending a request to a backend to its response head, for each attempt that got one (HTTP mode).";

/// A snapshot, encoded on each scrape of the registry it is in.
#[derive(Debug)]
struct Snapshot(ProxyStats);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        for m in &PROXY_METRICS {
            let family = encoder.encode_descriptor(m.name, m.help, m.unit.as_ref(), m.kind)?;
            encode_value(m.kind, (m.value)(stats), family)?;
        }
        let mut family = encoder.encode_descriptor(
            "responses",
            "Responses sent to clients by status code, the proxy's own and its HTTP layer's refusals included (TCP mode: connections, by the status of their access line).",
            None,
            MetricType::Counter,
        )?;
        for (code, n) in &stats.responses {
            let code = itoa::Buffer::new().format(*code).to_owned();
            ConstCounter::new(*n).encode(family.encode_family(&[("code", code)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "refused",
            "Requests the HTTP layer refused itself, by reason (also in rr_proxy_responses_total by status; not in the duration histogram).",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in &stats.refused {
            ConstCounter::new(*n).encode(family.encode_family(&[("reason", *reason)])?)?;
        }
        for (name, help, h) in [
            ("request_duration", REQUEST_DURATION_HELP, &stats.request_duration),
            (
                "upstream_duration",
                UPSTREAM_DURATION_HELP,
                &stats.upstream_duration,
            ),
        ] {
            let family =
                encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
            h.encode_seconds(family)?;
        }
        encoder
            .encode_descriptor("build", "The proxy's version.", None, MetricType::Info)?
            .encode_info(&[("version", VERSION)])?;
        encoder
            .encode_descriptor(
                "strategy",
                "How the proxy chooses backends, in the strategy label.",
                None,
                MetricType::Info,
            )?
            .encode_info(&[("strategy", stats.strategy.as_str())])?;

        for m in &BACKEND_METRICS {
            let mut family = encoder.encode_descriptor(m.name, m.help, m.unit.as_ref(), m.kind)?;
            for b in &stats.backends {
                let labels = [("backend", b.addr.to_string()), ("pool", b.pool.clone())];
                encode_value(m.kind, (m.value)(b), family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "backend_health_checks",
            "Active health checks of the backend by result (pass, fail).",
            None,
            MetricType::Counter,
        )?;
        for b in &stats.backends {
            let addr = b.addr.to_string();
            for (result, n) in [("pass", b.health_checks_passed), ("fail", b.health_checks_failed)] {
                let labels = [
                    ("backend", addr.as_str()),
                    ("pool", b.pool.as_str()),
                    ("result", result),
                ];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "backend_last_failure",
            "Why the backend last failed a health check or an exchange, in the reason label (kept after it recovers; absent before its first failure).",
            None,
            MetricType::Info,
        )?;
        for b in &stats.backends {
            if let Some(f) = &b.last_failure {
                let labels = [
                    ("backend", b.addr.to_string()),
                    ("pool", b.pool.clone()),
                    ("reason", f.to_string()),
                ];
                family.encode_info(&labels)?;
            }
        }
        encode_discovery(&stats.discovery, &mut encoder)?;
        encode_pools(stats, &mut encoder)
    }
}

/// The per-pool families (a `pool` label) and the reload families.
fn encode_pools(stats: &ProxyStats, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "pool_requests",
        "Requests (TCP mode: connections) routed to the pool.",
        None,
        MetricType::Counter,
    )?;
    for p in &stats.pools {
        ConstCounter::new(p.requests).encode(family.encode_family(&[("pool", p.name.as_str())])?)?;
    }
    let mut family = encoder.encode_descriptor(
        "pool_eligible_backends",
        "Backends of the pool that may take new requests now.",
        None,
        MetricType::Gauge,
    )?;
    for p in &stats.pools {
        ConstGauge::new(p.eligible as u64).encode(family.encode_family(&[("pool", p.name.as_str())])?)?;
    }
    let r = &stats.reloads;
    let mut family = encoder.encode_descriptor(
        "config_reloads",
        "Configuration reloads by result (success; failure: the running configuration was kept).",
        None,
        MetricType::Counter,
    )?;
    for (result, n) in [("success", r.succeeded), ("failure", r.failed)] {
        ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
    }
    if let (Some(at), Some(ok)) = (r.last_unix_seconds, r.last_succeeded) {
        let m = encoder.encode_descriptor(
            "config_last_reload_success",
            "1 when the last configuration reload took effect, 0 when it was refused (absent before the first).",
            None,
            MetricType::Gauge,
        )?;
        encode_value(MetricType::Gauge, u64::from(ok), m)?;
        let m = encoder.encode_descriptor(
            "config_last_reload_timestamp",
            "When the last configuration reload ended, in seconds since the Unix epoch (absent before the first).",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        encode_value(MetricType::Gauge, at, m)?;
    }
    Ok(())
}

/// `rr_proxy_backend_tls_handshakes_total{result="full"|"resumed"|"failed"}`.
#[derive(Debug)]
struct BackendTlsCollector(crate::BackendTlsStats);

impl Collector for BackendTlsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "backend_tls_handshakes",
            "TLS handshakes with https backends (forwarding and health checks), by result: full, resumed (a cached session), failed.",
            None,
            MetricType::Counter,
        )?;
        let s = &self.0;
        for (result, n) in [("full", s.full), ("resumed", s.resumed), ("failed", s.failed)] {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }
}

/// The per-source families, with a `source` label (`dns:NAME:PORT`, `srv:NAME`).
fn encode_discovery(
    sources: &[DiscoveryStats],
    encoder: &mut DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "discovery_resolutions",
        "Resolutions by a discovery source, by result (ok; failed or empty: the last good set is kept).",
        None,
        MetricType::Counter,
    )?;
    for s in sources {
        for (result, n) in [
            ("ok", s.resolutions_ok),
            ("failed", s.resolutions_failed),
            ("empty", s.resolutions_empty),
        ] {
            let labels = [
                ("source", s.name.as_str()),
                ("pool", s.pool.as_str()),
                ("result", result),
            ];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "discovery_backends",
        "Backends a discovery source holds now (its last good set).",
        None,
        MetricType::Gauge,
    )?;
    for s in sources {
        let labels = [("source", s.name.as_str()), ("pool", s.pool.as_str())];
        ConstGauge::new(s.backends as u64).encode(family.encode_family(&labels)?)?;
    }
    let mut family = encoder.encode_descriptor(
        "discovery_last_resolution_timestamp",
        "When a discovery source's last resolution ended, in seconds since the Unix epoch (absent before the first).",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for s in sources {
        if let Some(t) = s.last_resolution_unix_seconds {
            let labels = [("source", s.name.as_str()), ("pool", s.pool.as_str())];
            ConstGauge::new(t).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn encode_value(kind: MetricType, value: u64, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(encoder),
        _ => ConstGauge::new(value).encode(encoder),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{BackendState, FailureReason};

    fn sample() -> ProxyStats {
        let ms = Duration::from_millis;
        ProxyStats {
            strategy: "round-robin".into(),
            mode: Mode::Http,
            requests: 10,
            no_backend: 1,
            retries: 2,
            bad_gateway: 3,
            gateway_timeout: 4,
            client_connections: 5,
            client_sent_bytes: 12345,
            responses: [(200, 8), (400, 1), (404, 1), (502, 3)].into_iter().collect(),
            refused: [("bad_request_line", 1)].into_iter().collect(),
            request_duration: HistogramSnapshot {
                bounds: vec![ms(1), ms(10)],
                counts: vec![5, 4, 1],
                sum: ms(12_250),
            },
            upstream_duration: HistogramSnapshot {
                bounds: vec![Duration::from_micros(500), ms(1), Duration::from_micros(2500)],
                counts: vec![6, 0, 0, 0],
                sum: Duration::from_micros(1500),
            },
            backends: vec![
                BackendStats {
                    addr: "127.0.0.1:9002".parse().unwrap(),
                    weight: 3,
                    state: BackendState::Healthy,
                    healthy: true,
                    draining: false,
                    requests: 6,
                    failures: 0,
                    active: 1,
                    idle: 2,
                    bytes_sent: 100,
                    bytes_received: 2000,
                    connects: 3,
                    reused: 4,
                    last_failure: None,
                    health_checks_passed: 20,
                    health_checks_failed: 0,
                    pool: "web".into(),
                    tls_name: None,
                },
                BackendStats {
                    addr: "[::1]:9003".parse().unwrap(),
                    weight: 1,
                    state: BackendState::Draining,
                    healthy: false,
                    draining: true,
                    requests: 4,
                    failures: 5,
                    active: 0,
                    idle: 0,
                    bytes_sent: 7,
                    bytes_received: 8,
                    connects: 9,
                    reused: 0,
                    last_failure: Some(FailureReason::Connect(std::io::ErrorKind::ConnectionRefused)),
                    health_checks_passed: 1,
                    health_checks_failed: 3,
                    pool: "web".into(),
                    tls_name: None,
                },
            ],
            discovery: vec![DiscoveryStats {
                name: "dns:web.internal:9002".into(),
                backends: 2,
                last_result: Some(crate::DiscoveryResult::Failed),
                last_error: Some("web.internal.: request timed out".into()),
                last_resolution_unix_seconds: Some(1_700_000_000),
                resolutions_ok: 5,
                resolutions_failed: 1,
                resolutions_empty: 0,
                pool: "web".into(),
            }],
            schema_version: STATS_SCHEMA_VERSION,
            uptime_seconds: 3600,
            backend_tls: None,
            pools: vec![
                PoolStats {
                    name: "web".into(),
                    strategy: "round-robin".into(),
                    requests: 9,
                    backends: 2,
                    eligible: 1,
                },
                PoolStats {
                    name: "api".into(),
                    strategy: "least-connections".into(),
                    requests: 1,
                    backends: 0,
                    eligible: 0,
                },
            ],
            reloads: ReloadStats {
                succeeded: 2,
                failed: 1,
                last_unix_seconds: Some(1_700_000_100),
                last_succeeded: Some(false),
                last_message: Some("pool[0].backends: bad backend".into()),
            },
        }
    }

    /// The `/stats` document: the fields of the hand-written rendering before
    /// serde, byte for byte, then those added since.
    const STATS_JSON: &str = concat!(
        r#"{"strategy":"round-robin","mode":"http","requests":10,"no_backend":1,"retries":2,"#,
        r#""bad_gateway":3,"gateway_timeout":4,"#,
        r#""client_connections":5,"client_sent_bytes":12345,"responses":{"200":8,"400":1,"404":1,"502":3},"#,
        r#""refused":{"bad_request_line":1},"#,
        r#""backends":["#,
        r#"{"addr":"127.0.0.1:9002","weight":3,"state":"healthy","healthy":true,"draining":false,"#,
        r#""requests":6,"failures":0,"active":1,"idle":2,"bytes_sent":100,"bytes_received":2000,"#,
        r#""connects":3,"reused":4,"last_failure":null,"health_checks_passed":20,"health_checks_failed":0,"pool":"web"},"#,
        r#"{"addr":"[::1]:9003","weight":1,"state":"draining","healthy":false,"draining":true,"#,
        r#""requests":4,"failures":5,"active":0,"idle":0,"bytes_sent":7,"bytes_received":8,"#,
        r#""connects":9,"reused":0,"last_failure":"connection refused","#,
        r#""health_checks_passed":1,"health_checks_failed":3,"pool":"web"}],"#,
        r#""discovery":[{"name":"dns:web.internal:9002","backends":2,"last_result":"failed","#,
        r#""last_error":"web.internal.: request timed out","last_resolution_unix_seconds":1700000000,"#,
        r#""resolutions_ok":5,"resolutions_failed":1,"resolutions_empty":0,"pool":"web"}],"#,
        r#""schema_version":1,"uptime_seconds":3600,"#,
        r#""pools":[{"name":"web","strategy":"round-robin","requests":9,"backends":2,"eligible":1},"#,
        r#"{"name":"api","strategy":"least-connections","requests":1,"backends":0,"eligible":0}],"#,
        r#""reloads":{"succeeded":2,"failed":1,"last_unix_seconds":1700000100,"last_succeeded":false,"#,
        r#""last_message":"pool[0].backends: bad backend"}}"#,
        "\n"
    );

    /// The `/metrics` document, the process's start time as `START`. The
    /// families and HELP texts of the first rendering keep their names.
    const METRICS: &str = r#"# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds START
# HELP rr_proxy_requests_total Requests (HTTP mode) or connections (TCP mode) received; HTTP mode: not those the HTTP layer refused itself (see rr_proxy_responses_total).
# TYPE rr_proxy_requests_total counter
rr_proxy_requests_total 10
# HELP rr_proxy_no_backend_total Requests answered 503 (TCP mode: connections closed) because no backend was available.
# TYPE rr_proxy_no_backend_total counter
rr_proxy_no_backend_total 1
# HELP rr_proxy_retries_total Extra attempts on another backend or connection.
# TYPE rr_proxy_retries_total counter
rr_proxy_retries_total 2
# HELP rr_proxy_bad_gateway_total Requests the proxy answered 502 itself, not a backend (TCP mode: connections closed, the last backend refused).
# TYPE rr_proxy_bad_gateway_total counter
rr_proxy_bad_gateway_total 3
# HELP rr_proxy_gateway_timeout_total Requests the proxy answered 504 itself, not a backend (TCP mode: connections closed, connecting timed out).
# TYPE rr_proxy_gateway_timeout_total counter
rr_proxy_gateway_timeout_total 4
# HELP rr_proxy_client_connections Client connections open.
# TYPE rr_proxy_client_connections gauge
rr_proxy_client_connections 5
# HELP rr_proxy_upstream_connections Connections to backends: exchanges in progress (HTTP mode) or tunnels (TCP mode), plus idle pooled connections.
# TYPE rr_proxy_upstream_connections gauge
rr_proxy_upstream_connections 3
# HELP rr_proxy_client_sent_bytes_total Bytes sent to clients: response bodies only in HTTP mode (heads not counted; responses written whole), every byte in TCP mode.
# TYPE rr_proxy_client_sent_bytes_total counter
rr_proxy_client_sent_bytes_total 12345
# HELP rr_proxy_responses_total Responses sent to clients by status code, the proxy's own and its HTTP layer's refusals included (TCP mode: connections, by the status of their access line).
# TYPE rr_proxy_responses_total counter
rr_proxy_responses_total{code="200"} 8
rr_proxy_responses_total{code="400"} 1
rr_proxy_responses_total{code="404"} 1
rr_proxy_responses_total{code="502"} 3
# HELP rr_proxy_refused_total Requests the HTTP layer refused itself, by reason (also in rr_proxy_responses_total by status; not in the duration histogram).
# TYPE rr_proxy_refused_total counter
rr_proxy_refused_total{reason="bad_request_line"} 1
# HELP rr_proxy_request_duration_seconds Time from a request's head to the end of writing its response, for responses the proxy made, not the refusals (HTTP mode); a connection's lifetime (TCP mode).
# TYPE rr_proxy_request_duration_seconds histogram
rr_proxy_request_duration_seconds_bucket{le="0.001"} 5
rr_proxy_request_duration_seconds_bucket{le="0.01"} 9
rr_proxy_request_duration_seconds_bucket{le="+Inf"} 10
rr_proxy_request_duration_seconds_sum 12.25
rr_proxy_request_duration_seconds_count 10
# HELP rr_proxy_upstream_duration_seconds Time from sending a request to a backend to its response head, for each attempt that got one (HTTP mode).
# TYPE rr_proxy_upstream_duration_seconds histogram
rr_proxy_upstream_duration_seconds_bucket{le="0.0005"} 6
rr_proxy_upstream_duration_seconds_bucket{le="0.001"} 6
rr_proxy_upstream_duration_seconds_bucket{le="0.0025"} 6
rr_proxy_upstream_duration_seconds_bucket{le="+Inf"} 6
rr_proxy_upstream_duration_seconds_sum 0.0015
rr_proxy_upstream_duration_seconds_count 6
# HELP rr_proxy_build_info The proxy's version.
# TYPE rr_proxy_build_info gauge
rr_proxy_build_info{version="0.1.0"} 1
# HELP rr_proxy_strategy_info How the proxy chooses backends, in the strategy label.
# TYPE rr_proxy_strategy_info gauge
rr_proxy_strategy_info{strategy="round-robin"} 1
# HELP rr_proxy_backend_requests_total Requests or connections sent to the backend.
# TYPE rr_proxy_backend_requests_total counter
rr_proxy_backend_requests_total{backend="127.0.0.1:9002",pool="web"} 6
rr_proxy_backend_requests_total{backend="[::1]:9003",pool="web"} 4
# HELP rr_proxy_backend_failures_total Failed exchanges with the backend.
# TYPE rr_proxy_backend_failures_total counter
rr_proxy_backend_failures_total{backend="127.0.0.1:9002",pool="web"} 0
rr_proxy_backend_failures_total{backend="[::1]:9003",pool="web"} 5
# HELP rr_proxy_backend_active Requests or tunnels in progress on the backend.
# TYPE rr_proxy_backend_active gauge
rr_proxy_backend_active{backend="127.0.0.1:9002",pool="web"} 1
rr_proxy_backend_active{backend="[::1]:9003",pool="web"} 0
# HELP rr_proxy_backend_idle_connections Idle pooled connections to the backend.
# TYPE rr_proxy_backend_idle_connections gauge
rr_proxy_backend_idle_connections{backend="127.0.0.1:9002",pool="web"} 2
rr_proxy_backend_idle_connections{backend="[::1]:9003",pool="web"} 0
# HELP rr_proxy_backend_up 1 when the backend passes health checks.
# TYPE rr_proxy_backend_up gauge
rr_proxy_backend_up{backend="127.0.0.1:9002",pool="web"} 1
rr_proxy_backend_up{backend="[::1]:9003",pool="web"} 0
# HELP rr_proxy_backend_draining 1 when the backend is drained.
# TYPE rr_proxy_backend_draining gauge
rr_proxy_backend_draining{backend="127.0.0.1:9002",pool="web"} 0
rr_proxy_backend_draining{backend="[::1]:9003",pool="web"} 1
# HELP rr_proxy_backend_sent_bytes_total Request body bytes sent to the backend in HTTP mode (heads not counted); every byte in TCP mode.
# TYPE rr_proxy_backend_sent_bytes_total counter
rr_proxy_backend_sent_bytes_total{backend="127.0.0.1:9002",pool="web"} 100
rr_proxy_backend_sent_bytes_total{backend="[::1]:9003",pool="web"} 7
# HELP rr_proxy_backend_received_bytes_total Response body bytes received from the backend in HTTP mode (heads not counted); every byte in TCP mode.
# TYPE rr_proxy_backend_received_bytes_total counter
rr_proxy_backend_received_bytes_total{backend="127.0.0.1:9002",pool="web"} 2000
rr_proxy_backend_received_bytes_total{backend="[::1]:9003",pool="web"} 8
# HELP rr_proxy_backend_connections_total Connections opened to the backend.
# TYPE rr_proxy_backend_connections_total counter
rr_proxy_backend_connections_total{backend="127.0.0.1:9002",pool="web"} 3
rr_proxy_backend_connections_total{backend="[::1]:9003",pool="web"} 9
# HELP rr_proxy_backend_connection_reuses_total Requests sent over a reused pooled connection to the backend (HTTP mode).
# TYPE rr_proxy_backend_connection_reuses_total counter
rr_proxy_backend_connection_reuses_total{backend="127.0.0.1:9002",pool="web"} 4
rr_proxy_backend_connection_reuses_total{backend="[::1]:9003",pool="web"} 0
# HELP rr_proxy_backend_weight The backend's weight (used by the weighted strategy).
# TYPE rr_proxy_backend_weight gauge
rr_proxy_backend_weight{backend="127.0.0.1:9002",pool="web"} 3
rr_proxy_backend_weight{backend="[::1]:9003",pool="web"} 1
# HELP rr_proxy_backend_health_checks_total Active health checks of the backend by result (pass, fail).
# TYPE rr_proxy_backend_health_checks_total counter
rr_proxy_backend_health_checks_total{backend="127.0.0.1:9002",pool="web",result="pass"} 20
rr_proxy_backend_health_checks_total{backend="127.0.0.1:9002",pool="web",result="fail"} 0
rr_proxy_backend_health_checks_total{backend="[::1]:9003",pool="web",result="pass"} 1
rr_proxy_backend_health_checks_total{backend="[::1]:9003",pool="web",result="fail"} 3
# HELP rr_proxy_backend_last_failure_info Why the backend last failed a health check or an exchange, in the reason label (kept after it recovers; absent before its first failure).
# TYPE rr_proxy_backend_last_failure_info gauge
rr_proxy_backend_last_failure_info{backend="[::1]:9003",pool="web",reason="connection refused"} 1
# HELP rr_proxy_discovery_resolutions_total Resolutions by a discovery source, by result (ok; failed or empty: the last good set is kept).
# TYPE rr_proxy_discovery_resolutions_total counter
rr_proxy_discovery_resolutions_total{source="dns:web.internal:9002",pool="web",result="ok"} 5
rr_proxy_discovery_resolutions_total{source="dns:web.internal:9002",pool="web",result="failed"} 1
rr_proxy_discovery_resolutions_total{source="dns:web.internal:9002",pool="web",result="empty"} 0
# HELP rr_proxy_discovery_backends Backends a discovery source holds now (its last good set).
# TYPE rr_proxy_discovery_backends gauge
rr_proxy_discovery_backends{source="dns:web.internal:9002",pool="web"} 2
# HELP rr_proxy_discovery_last_resolution_timestamp_seconds When a discovery source's last resolution ended, in seconds since the Unix epoch (absent before the first).
# TYPE rr_proxy_discovery_last_resolution_timestamp_seconds gauge
rr_proxy_discovery_last_resolution_timestamp_seconds{source="dns:web.internal:9002",pool="web"} 1700000000
# HELP rr_proxy_pool_requests_total Requests (TCP mode: connections) routed to the pool.
# TYPE rr_proxy_pool_requests_total counter
rr_proxy_pool_requests_total{pool="web"} 9
rr_proxy_pool_requests_total{pool="api"} 1
# HELP rr_proxy_pool_eligible_backends Backends of the pool that may take new requests now.
# TYPE rr_proxy_pool_eligible_backends gauge
rr_proxy_pool_eligible_backends{pool="web"} 1
rr_proxy_pool_eligible_backends{pool="api"} 0
# HELP rr_proxy_config_reloads_total Configuration reloads by result (success; failure: the running configuration was kept).
# TYPE rr_proxy_config_reloads_total counter
rr_proxy_config_reloads_total{result="success"} 2
rr_proxy_config_reloads_total{result="failure"} 1
# HELP rr_proxy_config_last_reload_success 1 when the last configuration reload took effect, 0 when it was refused (absent before the first).
# TYPE rr_proxy_config_last_reload_success gauge
rr_proxy_config_last_reload_success 0
# HELP rr_proxy_config_last_reload_timestamp_seconds When the last configuration reload ended, in seconds since the Unix epoch (absent before the first).
# TYPE rr_proxy_config_last_reload_timestamp_seconds gauge
rr_proxy_config_last_reload_timestamp_seconds 1700000100
"#;

    /// [`prometheus_text`] with the start time's value replaced by `START`.
    fn render(stats: ProxyStats) -> String {
        let text = prometheus_text(stats, None).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            match line.strip_prefix("process_start_time_seconds ") {
                Some(value) => {
                    let secs: f64 = value.parse().unwrap();
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs_f64();
                    assert!(secs <= now && secs > now - 86_400.0, "{value}");
                    out.push_str("process_start_time_seconds START");
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn json_is_unchanged_and_parses() {
        let s = sample();
        let text = json_document(&s).unwrap();
        assert_eq!(text, STATS_JSON);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["mode"], "http");
        assert_eq!(v["backends"][1]["addr"], "[::1]:9003");
        assert_eq!(v["backends"][1]["state"], "draining");
        assert_eq!(v["backends"][1]["draining"], true);
        assert_eq!(v["backends"][0]["bytes_received"], 2000);
        let one = json_document(&s.backends[1]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert_eq!(v["failures"], 5);
        assert_eq!(v["last_failure"], "connection refused");
        assert!(one.ends_with("}\n"));
    }

    #[test]
    fn tcp_mode_and_strategy_names_are_json_strings() {
        let s = ProxyStats {
            strategy: "my \"own\"\n".into(),
            mode: Mode::Tcp,
            backends: Vec::new(),
            ..sample()
        };
        let v: serde_json::Value = serde_json::from_str(&json_document(&s).unwrap()).unwrap();
        assert_eq!(v["mode"], "tcp");
        assert_eq!(v["strategy"], "my \"own\"\n");
        assert_eq!(v["backends"], serde_json::json!([]));
    }

    #[test]
    fn metrics_are_as_documented() {
        assert_eq!(render(sample()), METRICS);
    }

    #[test]
    fn backend_tls_handshakes_are_counted_by_result_when_there_is_backend_tls() {
        let s = ProxyStats {
            backend_tls: Some(crate::BackendTlsStats {
                full: 2,
                resumed: 5,
                failed: 1,
            }),
            ..sample()
        };
        let text = render(s.clone());
        assert!(
            text.contains(
                "# TYPE rr_proxy_backend_tls_handshakes_total counter\n\
                 rr_proxy_backend_tls_handshakes_total{result=\"full\"} 2\n\
                 rr_proxy_backend_tls_handshakes_total{result=\"resumed\"} 5\n\
                 rr_proxy_backend_tls_handshakes_total{result=\"failed\"} 1\n"
            ),
            "{text}"
        );
        let json = json_document(&s).unwrap();
        assert!(
            json.contains(
                r#""uptime_seconds":3600,"backend_tls":{"full":2,"resumed":5,"failed":1},"pools":"#
            ),
            "{json}"
        );
        assert!(!render(sample()).contains("backend_tls"));
        assert!(!json_document(&sample()).unwrap().contains("backend_tls"));
    }

    #[test]
    fn metrics_without_backends_keep_their_families() {
        let text = prometheus_text(
            ProxyStats {
                backends: Vec::new(),
                ..sample()
            },
            None,
        )
        .unwrap();
        assert!(text.contains("# TYPE rr_proxy_backend_up gauge\n"), "{text}");
        assert!(!text.contains("backend=\""), "{text}");
    }

    /// What Python's `prometheus_client` parser (the reference implementation of
    /// the text format) reads from [`prometheus_text`]: every family typed, every
    /// sample read. Skips, saying so, without python3 or the module, except
    /// under CI.
    #[test]
    fn metrics_parse_with_the_reference_parser() {
        let text = prometheus_text(sample(), None).unwrap();
        let Some(parsed) = test_support::parse_prometheus(&text) else {
            return;
        };
        let lines = parsed.lines();
        let b1 = "backend=127.0.0.1:9002,pool=web";
        let b2 = "backend=[::1]:9003,pool=web";
        for (want, why) in [
            ("rr_proxy_requests counter rr_proxy_requests_total - 10", "proxy counter"),
            ("rr_proxy_gateway_timeout counter rr_proxy_gateway_timeout_total - 4", "proxy counter"),
            (&format!("rr_proxy_backend_requests counter rr_proxy_backend_requests_total {b1} 6"), "labelled counter"),
            (&format!("rr_proxy_backend_up gauge rr_proxy_backend_up {b2} 0"), "IPv6 label value"),
            (&format!("rr_proxy_backend_draining gauge rr_proxy_backend_draining {b2} 1"), "gauge"),
            (
                &format!("rr_proxy_backend_received_bytes counter rr_proxy_backend_received_bytes_total {b1} 2000"),
                "counter with a unit",
            ),
            ("rr_proxy_responses counter rr_proxy_responses_total code=404 1", "code label"),
            ("rr_proxy_client_sent_bytes counter rr_proxy_client_sent_bytes_total - 12345", "bytes"),
            ("rr_proxy_client_connections gauge rr_proxy_client_connections - 5", "gauge"),
            ("rr_proxy_upstream_connections gauge rr_proxy_upstream_connections - 3", "active + idle"),
            (
                "rr_proxy_request_duration_seconds histogram rr_proxy_request_duration_seconds_bucket le=0.01 9",
                "cumulative bucket",
            ),
            (
                "rr_proxy_request_duration_seconds histogram rr_proxy_request_duration_seconds_bucket le=+Inf 10",
                "+Inf bucket",
            ),
            (
                "rr_proxy_request_duration_seconds histogram rr_proxy_request_duration_seconds_count - 10",
                "count",
            ),
            (
                "rr_proxy_request_duration_seconds histogram rr_proxy_request_duration_seconds_sum - 12.25",
                "sum in seconds",
            ),
            (
                "rr_proxy_upstream_duration_seconds histogram rr_proxy_upstream_duration_seconds_bucket le=0.0005 6",
                "0.5 ms bucket",
            ),
            ("rr_proxy_build_info gauge rr_proxy_build_info version=0.1.0 1", "build info"),
            (
                "rr_proxy_strategy_info gauge rr_proxy_strategy_info strategy=round-robin 1",
                "strategy",
            ),
            (
                &format!("rr_proxy_backend_health_checks counter rr_proxy_backend_health_checks_total {b2},result=fail 3"),
                "checks by result",
            ),
            (
                &format!(
                    "rr_proxy_backend_last_failure_info gauge rr_proxy_backend_last_failure_info \
                     {b2},reason=connection refused 1"
                ),
                "last failure",
            ),
            ("rr_proxy_refused counter rr_proxy_refused_total reason=bad_request_line 1", "refusal reason"),
            (
                "rr_proxy_discovery_resolutions counter rr_proxy_discovery_resolutions_total pool=web,result=failed,source=dns:web.internal:9002 1",
                "discovery counter",
            ),
            ("rr_proxy_pool_requests counter rr_proxy_pool_requests_total pool=api 1", "pool counter"),
            ("rr_proxy_config_reloads counter rr_proxy_config_reloads_total result=failure 1", "reloads"),
            ("rr_proxy_config_last_reload_success gauge rr_proxy_config_last_reload_success - 0", "last reload"),
        ] {
            assert!(lines.iter().any(|l| l == want), "{why}: {want:?} not in\n{lines:#?}");
        }
        assert_eq!(parsed.kind("process_start_time_seconds"), Some("gauge"));
        assert_eq!(parsed.kind("rr_proxy_backend_weight"), Some("gauge"));
        // Every family is typed (none fell back to "unknown"), every sample read.
        assert!(parsed.samples.iter().all(|s| s.kind != "unknown"), "{lines:#?}");
        let families = 1 + 8 + 2 + 2 + 1 + 1 + 11 + 2 + 3 + 2 + 3;
        let samples =
            1 + 8 + 4 + 1 + (3 + 2) + (4 + 2) + 1 + 1 + 11 * 2 + 4 + 1 + (3 + 1 + 1) + (2 + 2) + (2 + 1 + 1);
        assert_eq!(parsed.samples.len(), samples, "{lines:#?}");
        let mut names: Vec<&str> = parsed.samples.iter().map(|s| s.family.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), families, "{names:?}");
    }
}
