//! What the workspace's integration tests share, written once: a ureq agent and
//! requests that take any status as an answer, raw TCP clients (blocking and
//! async) with a bounded wait on every read, the pieces of a response head,
//! temporary directories that remove themselves, bounded polling, commands run to
//! completion (curl among them), memory figures from `/proc`, and metrics as
//! Python's `prometheus_client` parses them.
//!
//! Only ever a dev-dependency, and it depends on no crate of this workspace: a
//! test of http-core, static-server, rr-proxy or cli would otherwise link a
//! second copy of the crate under test. Fixtures that need those crates (a
//! server or a proxy under test, recording backends) stay in each crate's
//! `tests/common`.
#![warn(missing_docs)]

use std::time::{Duration, Instant};

mod aio;
mod dnsmasq;
mod fs;
mod http;
mod memory;
mod process;
mod prometheus;
mod raw;
mod tls;
mod wire;

pub use aio::{bind, next_head, read_head, read_response, read_to_close, runtime};
pub use dnsmasq::Dnsmasq;
pub use fs::{remove_at_exit, TempDir};
pub use http::{agent, agent_builder, call, get, header_values, send, Reply};
pub use memory::{proc_status_kib, rss_bytes};
pub use process::{curl, curl_status, python_script, run_within, wait_timeout};
pub use prometheus::{parse_prometheus, Parsed, Sample};
pub use raw::{accepts_connections, exchange, read_until, RawConn};
pub use tls::{replace_file, CertFiles, TestCa};
pub use wire::{content_length, find, head_len, status_of};

/// Upper bound on any single wait: a connection, a response, a log line, an exit.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The shorter wait of the raw clients that read until the peer closes
/// ([`exchange`], [`read_to_close`]) and of [`read_head`]'s every byte.
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls `cond` every 20 ms until it holds; panics, naming `what`, once `within`
/// has passed without it.
#[track_caller]
pub fn wait_for(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
