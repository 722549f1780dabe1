//! Pools and the routes to them: the table every request is matched against,
//! which a reload replaces whole.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_core::{RequestHead, ShutdownSignal};
use tokio::task::JoinHandle;

use crate::balancer::Balancer;
use crate::config_file::{path_matches, HostMatch};
use crate::discovery::Discovery;

/// One pool as it runs: its balancer, its discovery sources, and the tasks
/// (health checker, one per source) that keep it current.
pub(crate) struct Pool {
    pub balancer: Arc<Balancer>,
    pub discovery: Vec<Arc<dyn Discovery>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    pub fn new(balancer: Arc<Balancer>, discovery: Vec<Arc<dyn Discovery>>) -> Pool {
        Pool {
            balancer,
            discovery,
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the health checker and the discovery tasks (once), which run
    /// until `signal` fires or the pool is stopped.
    pub fn start(&self, signal: &ShutdownSignal) {
        let mut tasks = self.tasks();
        if !tasks.is_empty() {
            return;
        }
        let b = &self.balancer;
        tasks.push(tokio::spawn(crate::health::run(b.clone(), signal.clone())));
        for (index, (source, status)) in self.discovery.iter().zip(&b.sources).enumerate() {
            let task =
                crate::discovery::run(b.clone(), index, source.clone(), status.clone(), signal.clone());
            tasks.push(tokio::spawn(task));
        }
    }

    /// Stops the pool's tasks (a reload replaced or removed it).
    pub fn stop(&self) {
        for t in self.tasks().drain(..) {
            t.abort();
        }
    }

    /// Waits for the tasks to end (after the shutdown signal fired).
    pub async fn join(&self) {
        let tasks: Vec<JoinHandle<()>> = self.tasks().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A route: which requests go to which pool (index into [`Table::pools`]).
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub host: Option<HostMatch>,
    pub path: Option<String>,
    pub pool: usize,
}

/// The pools and routes in force.
pub(crate) struct Table {
    pub pools: Vec<Arc<Pool>>,
    pub rules: Vec<Rule>,
}

impl Table {
    /// The pool of a request: the first route that matches (host, then path
    /// prefix); without routes, the first pool. `None`: no route matches.
    pub fn route(&self, head: &RequestHead) -> Option<&Arc<Pool>> {
        if self.rules.is_empty() {
            return self.pools.first();
        }
        let host = head.host().and_then(host_name);
        let path = route_path(head.path());
        self.rules
            .iter()
            .find(|r| {
                r.host
                    .as_ref()
                    .is_none_or(|m| host.as_deref().is_some_and(|h| m.matches(h)))
                    && r.path.as_deref().is_none_or(|p| path_matches(p, &path))
            })
            .and_then(|r| self.pools.get(r.pool))
    }

    /// The pool for what carries no host or path (TCP mode's connections):
    /// the route with neither, else the first pool.
    pub fn default_pool(&self) -> Option<&Arc<Pool>> {
        match self.rules.iter().find(|r| r.host.is_none() && r.path.is_none()) {
            Some(r) => self.pools.get(r.pool),
            None => self.pools.first(),
        }
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| &*p.balancer.name == name)
    }

    /// Every pool holding a backend at `addr`.
    pub fn holding(&self, addr: SocketAddr) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools
            .iter()
            .filter(move |p| p.balancer.all().iter().any(|b| b.addr() == addr))
    }
}

/// A `Host` value as routes compare it: without the port and a trailing
/// dot, lowercase. `None` when it is not text.
fn host_name(raw: &[u8]) -> Option<Cow<'_, str>> {
    let text = std::str::from_utf8(raw).ok()?;
    let end = if text.starts_with('[') {
        text.find(']').map_or(text.len(), |i| i + 1)
    } else {
        text.find(':').unwrap_or(text.len())
    };
    let name = &text[..end];
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// The path routes are matched on: as sent when it is plain, else with
/// percent-escapes decoded, `.` and `..` segments resolved and repeated
/// slashes merged (as nginx matches its locations), so that `/%61pi/x`,
/// `/x/../api/` and `//api` take the `/api` route as `/api/x` does. The
/// request goes to the backend as the client sent it.
pub(crate) fn route_path(path: &str) -> Cow<'_, str> {
    let plain = !path.contains('%') && !path.contains("//") && !path.contains("/.");
    if plain {
        return Cow::Borrowed(path);
    }
    let decoded: Vec<u8> = percent_decode(path.as_bytes());
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut parts = decoded.split(|&b| b == b'/').peekable();
    let mut trailing = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            b"" => {
                trailing = last;
                continue;
            }
            b"." => trailing = last,
            b".." => {
                segments.pop();
                trailing = last;
            }
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing || segments.is_empty() {
        out.push(b'/');
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `%XX` decoded; a `%` not followed by two hex digits is kept as it is.
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_are_normalized_only_when_needed() {
        for (raw, want) in [
            ("/api/x", "/api/x"),
            ("/", "/"),
            ("/%61pi/x", "/api/x"),
            ("/x/../api/", "/api/"),
            ("//api", "/api"),
            ("/api/./", "/api/"),
            ("/api/.", "/api/"),
            ("/api/..", "/"),
            ("/../../api", "/api"),
            ("/a%2Fb", "/a/b"),
            ("/a%zzb", "/a%zzb"),
            ("/a%4", "/a%4"),
            ("/.well-known/x", "/.well-known/x"),
        ] {
            assert_eq!(route_path(raw), want, "{raw}");
        }
        assert!(matches!(route_path("/api/x"), Cow::Borrowed(_)));
    }

    #[test]
    fn host_names_lose_port_dot_and_case() {
        for (raw, want) in [
            ("Example.COM", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.", "example.com"),
            ("[::1]:80", "[::1]"),
        ] {
            assert_eq!(host_name(raw.as_bytes()).as_deref(), Some(want), "{raw}");
        }
        assert_eq!(host_name(b"\xff"), None);
    }
}
