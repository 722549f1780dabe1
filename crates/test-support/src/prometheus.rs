//! The Prometheus text format read by Python's `prometheus_client` parser, the
//! reference implementation, so that tests check names, types and values as a
//! scraper would see them.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// One sample as the reference parser read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The family's name (a counter's without `_total`, a histogram's without
    /// `_bucket`, `_sum`, `_count`).
    pub family: String,
    /// The family's type: `counter`, `gauge`, `histogram`, `info`, `unknown`, ...
    pub kind: String,
    /// The sample's own name (`x_total`, `x_bucket`, ...).
    pub name: String,
    /// Its labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// `family type name labels value`: labels as `k=v` joined by `,` (or `-`
    /// when there are none), the value as Python's `%g` writes it.
    pub fn line(&self) -> String {
        let labels = if self.labels.is_empty() {
            "-".to_owned()
        } else {
            let parts: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.join(",")
        };
        format!(
            "{} {} {} {labels} {}",
            self.family,
            self.kind,
            self.name,
            g(self.value)
        )
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `%g` as Python writes it, for the whole numbers and short decimals tests use.
fn g(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.fract() == 0.0 && v.abs() < 1e6 {
        return format!("{}", v as i64);
    }
    format!("{v}")
}

/// Every sample of a document.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// In document order.
    pub samples: Vec<Sample>,
}

impl Parsed {
    /// The value of the sample `name` whose labels include all of `labels`
    /// (the first one when several match).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
    }

    /// [`value`](Self::value), or 0 when there is no such sample (a counter
    /// whose label value has not been seen yet).
    pub fn value_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// The type of family `family`.
    pub fn kind(&self, family: &str) -> Option<&str> {
        self.samples
            .iter()
            .find(|s| s.family == family)
            .map(|s| s.kind.as_str())
    }

    /// Every sample as [`Sample::line`] gives it.
    pub fn lines(&self) -> Vec<String> {
        self.samples.iter().map(Sample::line).collect()
    }
}

const SCRIPT: &str = r#"
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        labels = "\x1f".join(k + "=" + v for k, v in sorted(s.labels.items()))
        print("\t".join([f.name, f.type, s.name, labels, repr(float(s.value))]))
"#;

/// `text` as Python's `prometheus_client` parser reads it; a panic, with the
/// parser's message, when it refuses the text. `None`, saying so, when python3
/// or the module is missing (`pip install prometheus-client`), except under CI
/// (`CI` set), which installs both (`.ci/run`): there that is a failure.
#[track_caller]
pub fn parse_prometheus(text: &str) -> Option<Parsed> {
    let in_ci = std::env::var_os("CI").is_some();
    let child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        assert!(!in_ci, "python3 is missing under CI");
        eprintln!("SKIPPED: no python3 to run prometheus_client's parser");
        return None;
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(text.as_bytes()).expect("writing to python3");
    drop(stdin);
    let out = child.wait_with_output().expect("python3 ran");
    if out.status.code() == Some(3) {
        assert!(!in_ci, "prometheus_client is missing under CI");
        eprintln!("SKIPPED: python3 lacks prometheus_client (pip install prometheus-client)");
        return None;
    }
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 from python3");
    let samples = stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "{l:?}");
            let labels = f[3]
                .split('\x1f')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("k=v");
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            Sample {
                family: f[0].to_owned(),
                kind: f[1].to_owned(),
                name: f[2].to_owned(),
                labels,
                value: f[4].parse().expect("a float"),
            }
        })
        .collect();
    Some(Parsed { samples })
}
