//! Counters and their JSON/Prometheus rendering.
//!
//! [`ProxyStats`] (with a [`BackendStats`] per backend) is the snapshot
//! [`ProxyHandle::stats`](crate::ProxyHandle::stats) returns. The admin endpoint
//! renders it two ways:
//! - `GET /stats`: the snapshot serialized with serde, field for field (a backend
//!   alone for `GET /backends/{addr}`);
//! - `GET /metrics`: the Prometheus text format (version 0.0.4), written by the
//!   `prometheus-client` crate from a collector over the snapshot.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

use crate::{BackendStats, Mode};

/// Proxy-wide counters and every backend's.
///
/// With serde it serializes to the admin endpoint's `GET /stats` document, its
/// fields in this order (`mode` as `"http"` or `"tcp"`, each backend as
/// [`BackendStats`] describes):
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
    /// Requests (HTTP mode) or connections (TCP mode) received.
    pub requests: u64,
    /// Requests answered 503 because no backend was available.
    pub no_backend: u64,
    /// Extra attempts made on another backend or connection.
    pub retries: u64,
    /// Requests answered 502.
    pub bad_gateway: u64,
    /// Requests answered 504.
    pub gateway_timeout: u64,
    /// Each backend, in the order added.
    pub backends: Vec<BackendStats>,
}

/// `value` as a JSON document: compact, in field order, ending in a newline.
pub(crate) fn json_document(value: &impl Serialize) -> Result<String, serde_json::Error> {
    let mut out = serde_json::to_string(value)?;
    out.push('\n');
    Ok(out)
}

/// The `Content-Type` of [`prometheus_text`]: `text/plain; version=0.0.4; charset=utf-8`.
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `/metrics` document: `stats` in the Prometheus text format (version 0.0.4).
/// Every name starts with `rr_proxy_`; per-backend series carry a `backend`
/// label holding the backend's `IP:PORT`.
pub(crate) fn prometheus_text(stats: ProxyStats) -> Result<String, std::fmt::Error> {
    let capacity = 1024 + 512 * stats.backends.len();
    let mut registry = Registry::with_prefix("rr_proxy");
    registry.register_collector(Box::new(Snapshot(stats)));
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

/// The proxy-wide families.
const PROXY_METRICS: [Family<ProxyStats>; 5] = [
    counter(
        "requests",
        "Requests (HTTP mode) or connections (TCP mode) received.",
        |s| s.requests,
    ),
    counter(
        "no_backend",
        "Requests answered 503 because no backend was available.",
        |s| s.no_backend,
    ),
    counter(
        "retries",
        "Extra attempts on another backend or connection.",
        |s| s.retries,
    ),
    counter("bad_gateway", "Requests answered 502.", |s| s.bad_gateway),
    counter("gateway_timeout", "Requests answered 504.", |s| s.gateway_timeout),
];

/// The per-backend families, each with a `backend` label.
const BACKEND_METRICS: [Family<BackendStats>; 9] = [
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
        "Body bytes sent to the backend (TCP mode: all bytes).",
        |b| b.bytes_sent,
    ),
    bytes_counter(
        "backend_received",
        "Body bytes received from the backend (TCP mode: all bytes).",
        |b| b.bytes_received,
    ),
    counter("backend_connections", "Connections opened to the backend.", |b| {
        b.connects
    }),
];

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
        for m in &BACKEND_METRICS {
            let mut family = encoder.encode_descriptor(m.name, m.help, m.unit.as_ref(), m.kind)?;
            for b in &stats.backends {
                let labels = [("backend", b.addr.to_string())];
                encode_value(m.kind, (m.value)(b), family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

fn encode_value(
    kind: MetricType,
    value: u64,
    encoder: prometheus_client::encoding::MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(encoder),
        _ => ConstGauge::new(value).encode(encoder),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendState, FailureReason};

    fn sample() -> ProxyStats {
        ProxyStats {
            strategy: "round-robin".into(),
            mode: Mode::Http,
            requests: 10,
            no_backend: 1,
            retries: 2,
            bad_gateway: 3,
            gateway_timeout: 4,
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
                    health_checks_passed: 11,
                    health_checks_failed: 0,
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
                    last_failure: Some(FailureReason::Status(500)),
                    health_checks_passed: 2,
                    health_checks_failed: 3,
                },
            ],
        }
    }

    /// The documents the hand-written rendering produced before serde, byte for
    /// byte, with the health fields added since at the end of each backend.
    const STATS_JSON: &str = concat!(
        r#"{"strategy":"round-robin","mode":"http","requests":10,"no_backend":1,"retries":2,"#,
        r#""bad_gateway":3,"gateway_timeout":4,"backends":["#,
        r#"{"addr":"127.0.0.1:9002","weight":3,"state":"healthy","healthy":true,"draining":false,"#,
        r#""requests":6,"failures":0,"active":1,"idle":2,"bytes_sent":100,"bytes_received":2000,"#,
        r#""connects":3,"reused":4,"last_failure":null,"health_checks_passed":11,"health_checks_failed":0},"#,
        r#"{"addr":"[::1]:9003","weight":1,"state":"draining","healthy":false,"draining":true,"#,
        r#""requests":4,"failures":5,"active":0,"idle":0,"bytes_sent":7,"bytes_received":8,"#,
        r#""connects":9,"reused":0,"last_failure":"status 500","health_checks_passed":2,"health_checks_failed":3}]}"#,
        "\n"
    );

    const METRICS: &str = r#"# HELP rr_proxy_requests_total Requests (HTTP mode) or connections (TCP mode) received.
# TYPE rr_proxy_requests_total counter
rr_proxy_requests_total 10
# HELP rr_proxy_no_backend_total Requests answered 503 because no backend was available.
# TYPE rr_proxy_no_backend_total counter
rr_proxy_no_backend_total 1
# HELP rr_proxy_retries_total Extra attempts on another backend or connection.
# TYPE rr_proxy_retries_total counter
rr_proxy_retries_total 2
# HELP rr_proxy_bad_gateway_total Requests answered 502.
# TYPE rr_proxy_bad_gateway_total counter
rr_proxy_bad_gateway_total 3
# HELP rr_proxy_gateway_timeout_total Requests answered 504.
# TYPE rr_proxy_gateway_timeout_total counter
rr_proxy_gateway_timeout_total 4
# HELP rr_proxy_backend_requests_total Requests or connections sent to the backend.
# TYPE rr_proxy_backend_requests_total counter
rr_proxy_backend_requests_total{backend="127.0.0.1:9002"} 6
rr_proxy_backend_requests_total{backend="[::1]:9003"} 4
# HELP rr_proxy_backend_failures_total Failed exchanges with the backend.
# TYPE rr_proxy_backend_failures_total counter
rr_proxy_backend_failures_total{backend="127.0.0.1:9002"} 0
rr_proxy_backend_failures_total{backend="[::1]:9003"} 5
# HELP rr_proxy_backend_active Requests or tunnels in progress on the backend.
# TYPE rr_proxy_backend_active gauge
rr_proxy_backend_active{backend="127.0.0.1:9002"} 1
rr_proxy_backend_active{backend="[::1]:9003"} 0
# HELP rr_proxy_backend_idle_connections Idle pooled connections to the backend.
# TYPE rr_proxy_backend_idle_connections gauge
rr_proxy_backend_idle_connections{backend="127.0.0.1:9002"} 2
rr_proxy_backend_idle_connections{backend="[::1]:9003"} 0
# HELP rr_proxy_backend_up 1 when the backend passes health checks.
# TYPE rr_proxy_backend_up gauge
rr_proxy_backend_up{backend="127.0.0.1:9002"} 1
rr_proxy_backend_up{backend="[::1]:9003"} 0
# HELP rr_proxy_backend_draining 1 when the backend is drained.
# TYPE rr_proxy_backend_draining gauge
rr_proxy_backend_draining{backend="127.0.0.1:9002"} 0
rr_proxy_backend_draining{backend="[::1]:9003"} 1
# HELP rr_proxy_backend_sent_bytes_total Body bytes sent to the backend (TCP mode: all bytes).
# TYPE rr_proxy_backend_sent_bytes_total counter
rr_proxy_backend_sent_bytes_total{backend="127.0.0.1:9002"} 100
rr_proxy_backend_sent_bytes_total{backend="[::1]:9003"} 7
# HELP rr_proxy_backend_received_bytes_total Body bytes received from the backend (TCP mode: all bytes).
# TYPE rr_proxy_backend_received_bytes_total counter
rr_proxy_backend_received_bytes_total{backend="127.0.0.1:9002"} 2000
rr_proxy_backend_received_bytes_total{backend="[::1]:9003"} 8
# HELP rr_proxy_backend_connections_total Connections opened to the backend.
# TYPE rr_proxy_backend_connections_total counter
rr_proxy_backend_connections_total{backend="127.0.0.1:9002"} 3
rr_proxy_backend_connections_total{backend="[::1]:9003"} 9
"#;

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
    fn metrics_are_unchanged() {
        assert_eq!(prometheus_text(sample()).unwrap(), METRICS);
    }

    #[test]
    fn metrics_without_backends_keep_their_families() {
        let text = prometheus_text(ProxyStats {
            backends: Vec::new(),
            ..sample()
        })
        .unwrap();
        assert!(text.contains("# TYPE rr_proxy_backend_up gauge\n"), "{text}");
        assert!(!text.contains("backend=\""), "{text}");
    }

    /// What Python's `prometheus_client` parser (the reference implementation of
    /// the text format) reads from [`prometheus_text`]: one line per sample,
    /// `family type sample labels value`. Skips, saying so, without python3 or the
    /// module (`pip install prometheus-client`).
    #[test]
    fn metrics_parse_with_the_reference_parser() {
        const SCRIPT: &str = r#"
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        labels = ",".join(k + "=" + v for k, v in sorted(s.labels.items()))
        print(f.name, f.type, s.name, labels or "-", format(float(s.value), "g"))
"#;
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let text = prometheus_text(sample()).unwrap();
        let child = Command::new("python3")
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        // CI installs the parser (.ci/run): there a missing one is a failure.
        let in_ci = std::env::var_os("CI").is_some();
        let Ok(mut child) = child else {
            assert!(!in_ci, "python3 is missing under CI");
            eprintln!("skipped: no python3 to run prometheus_client's parser");
            return;
        };
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.code() == Some(3) {
            assert!(!in_ci, "prometheus_client is missing under CI");
            eprintln!("skipped: python3 lacks prometheus_client (pip install prometheus-client)");
            return;
        }
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let parsed = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = parsed.lines().collect();
        let b1 = "backend=127.0.0.1:9002";
        let b2 = "backend=[::1]:9003";
        for (want, why) in [
            (
                "rr_proxy_requests counter rr_proxy_requests_total - 10",
                "proxy counter",
            ),
            (
                "rr_proxy_gateway_timeout counter rr_proxy_gateway_timeout_total - 4",
                "proxy counter",
            ),
            (
                &format!("rr_proxy_backend_requests counter rr_proxy_backend_requests_total {b1} 6"),
                "labelled counter",
            ),
            (
                &format!("rr_proxy_backend_up gauge rr_proxy_backend_up {b2} 0"),
                "IPv6 label value",
            ),
            (
                &format!("rr_proxy_backend_draining gauge rr_proxy_backend_draining {b2} 1"),
                "gauge",
            ),
            (
                &format!(
                    "rr_proxy_backend_received_bytes counter rr_proxy_backend_received_bytes_total {b1} 2000"
                ),
                "counter with a unit",
            ),
        ] {
            assert!(lines.contains(&want), "{why}: {want:?} not in\n{parsed}");
        }
        // Every family is typed (none fell back to "unknown"), every sample read.
        assert!(lines.iter().all(|l| !l.contains(" unknown ")), "{parsed}");
        assert_eq!(lines.len(), 5 + 9 * 2, "{parsed}");
    }
}
