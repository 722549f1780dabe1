//! Canary routing with [`ProxyHooks`]: requests that opt in go to a second set
//! of backends (the canaries), every other request to the stable set.
//!
//! A request opts in with the cookie `canary=always` (in any `Cookie` line, among
//! other cookies) or the header `X-Canary: 1`. What an operator expects when a
//! group has no backend to offer:
//!
//! - a canary request falls back to the stable set when no canary is eligible
//!   (all down, ejected or drained), and also when the canaries it was sent to
//!   failed in a way the proxy may retry: trying the new release must never cost
//!   a user an error the stable release would have served;
//! - a stable request never goes to a canary: when no stable backend is left it
//!   gets the proxy's own answer (503 with `Retry-After`, or the 502/504 of the
//!   failed attempt), since untested code must not take traffic nobody sent it.
//!
//! Every response from a backend carries `X-Served-By-Group: stable` or `canary`
//! (the group that actually answered, so a fallback is visible to the client),
//! and the logging phase counts requests per group in [`GroupCounts`].
//!
//! The program starts three small backends of its own (two stable, one canary),
//! puts the proxy in front of them, sends a few requests, drains the canary to
//! show the fallback, prints the counts and shuts down:
//!
//! ```text
//! cargo run -p rr-proxy --example canary
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http_core::{Request, RequestHead, Response, Server, Service, ShutdownSignal};
use rr_proxy::{
    Backend, Candidates, Peer, Proxy, ProxyHooks, RequestInfo, ResponseEdits, RoundRobin, Summary,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The response header naming the group that served a request.
pub const GROUP_HEADER: &str = "X-Served-By-Group";

/// A group of backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The release everyone gets.
    Stable,
    /// The release under trial, for requests that opt in.
    Canary,
}

impl Group {
    /// The group's name, as sent in [`GROUP_HEADER`].
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Stable => "stable",
            Group::Canary => "canary",
        }
    }
}

/// Requests counted by the logging phase, readable at any time.
#[derive(Debug, Default)]
pub struct GroupCounts {
    /// Answered by a stable backend (fallbacks included).
    pub stable: AtomicU64,
    /// Answered by a canary backend.
    pub canary: AtomicU64,
    /// Canary requests answered by a stable backend.
    pub fallback: AtomicU64,
    /// Answered by the proxy itself: no backend of the group could take them.
    pub unserved: AtomicU64,
}

impl GroupCounts {
    /// `(stable, canary, fallback, unserved)` as they are now.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.stable.load(Ordering::Relaxed),
            self.canary.load(Ordering::Relaxed),
            self.fallback.load(Ordering::Relaxed),
            self.unserved.load(Ordering::Relaxed),
        )
    }
}

/// The hooks: the canary set is given by address; every other backend is stable
/// (also one added at run time).
#[derive(Debug)]
pub struct CanaryRouting {
    canary: HashSet<SocketAddr>,
    counts: Arc<GroupCounts>,
    /// A rotation per group: with the proxy's one rotation shared by both
    /// groups, strictly alternating stable and canary requests would send
    /// every stable one to the same backend.
    stable_turn: RoundRobin,
    canary_turn: RoundRobin,
}

/// Per request: the group it asked for, decided when its head arrives.
#[derive(Debug, Default)]
pub struct CanaryCtx {
    wants: Option<Group>,
}

impl CanaryRouting {
    /// Routing with `canary` as the canary set.
    pub fn new(canary: impl IntoIterator<Item = SocketAddr>) -> Self {
        CanaryRouting {
            canary: canary.into_iter().collect(),
            counts: Arc::default(),
            stable_turn: RoundRobin::new(),
            canary_turn: RoundRobin::new(),
        }
    }

    /// The counters, shared: keep this before handing the hooks to the builder.
    pub fn counts(&self) -> Arc<GroupCounts> {
        self.counts.clone()
    }

    /// The group of the backend at `addr`.
    pub fn group_of(&self, addr: SocketAddr) -> Group {
        if self.canary.contains(&addr) {
            Group::Canary
        } else {
            Group::Stable
        }
    }

    fn in_group(&self, b: &Backend, group: Group) -> bool {
        self.group_of(b.addr()) == group
    }
}

/// The group a request asks for: canary with the cookie `canary=always` or the
/// header `X-Canary: 1`, stable otherwise.
pub fn requested_group(head: &RequestHead) -> Group {
    let header = head
        .headers()
        .raw()
        .any(|(n, v)| n.eq_ignore_ascii_case(b"x-canary") && v.trim_ascii() == b"1");
    if header || has_cookie(head, b"canary", b"always") {
        Group::Canary
    } else {
        Group::Stable
    }
}

/// True when one of the request's `Cookie` lines holds the cookie `name=value`.
///
/// A line holds `name=value` pairs separated by `;` (`; ` by RFC 6265 §4.2.1;
/// other whitespace around the parts is tolerated); a client or an intermediary
/// may send several lines. Names are case-sensitive; a value may be quoted.
pub fn has_cookie(head: &RequestHead, name: &[u8], value: &[u8]) -> bool {
    head.headers()
        .raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .flat_map(|(_, line)| line.split(|&b| b == b';'))
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
        })
        .any(|(n, v)| n == name && unquote(v) == value)
}

/// A cookie value without the double quotes RFC 6265 allows around it.
fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

impl ProxyHooks for CanaryRouting {
    type Ctx = CanaryCtx;

    fn new_ctx(&self, req: RequestInfo<'_>) -> CanaryCtx {
        CanaryCtx {
            wants: Some(requested_group(req.head)),
        }
    }

    fn upstream_peer(&self, _req: RequestInfo<'_>, candidates: &Candidates<'_>, ctx: &mut CanaryCtx) -> Peer {
        // Called before each attempt; the candidates no longer hold the
        // backends already tried for this request.
        let stable = || candidates.pick_with(&self.stable_turn, |b| self.in_group(b, Group::Stable));
        let chosen = match ctx.wants.unwrap_or(Group::Stable) {
            Group::Canary => candidates
                .pick_with(&self.canary_turn, |b| self.in_group(b, Group::Canary))
                .or_else(stable),
            Group::Stable => stable(),
        };
        chosen.map_or(Peer::Unavailable, Peer::Backend)
    }

    fn response_filter(&self, _req: RequestInfo<'_>, resp: &mut ResponseEdits<'_>, _ctx: &mut CanaryCtx) {
        resp.set_header(GROUP_HEADER, self.group_of(resp.backend()).as_str());
    }

    fn logging(&self, summary: &Summary, ctx: &mut CanaryCtx) {
        let c = &self.counts;
        match summary.backend {
            Some(addr) if summary.failure.is_none() => match self.group_of(addr) {
                Group::Canary => c.canary.fetch_add(1, Ordering::Relaxed),
                Group::Stable => {
                    if ctx.wants == Some(Group::Canary) {
                        c.fallback.fetch_add(1, Ordering::Relaxed);
                    }
                    c.stable.fetch_add(1, Ordering::Relaxed)
                }
            },
            _ => c.unserved.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The program's own backend: says who it is.
struct Named(&'static str);

impl Service for Named {
    async fn call(&self, req: Request<'_>) -> Response {
        Response::text(200, format!("{} answered {}\n", self.0, req.head.target()))
    }
}

/// One GET through the proxy on a fresh connection, with `extra` header lines:
/// the status line, the group header and the body.
async fn fetch(addr: SocketAddr, path: &str, extra: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.lines().next().unwrap_or("");
    let group = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(GROUP_HEADER).then(|| v.trim())
        })
        .unwrap_or("-");
    Ok(format!("{status} [group {group}] {}", body.trim_end()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (trigger, signal) = ShutdownSignal::new();

    let mut addrs = Vec::new();
    for name in ["stable-1", "stable-2", "canary-1"] {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        let mut s = signal.clone();
        tokio::spawn(Server::new(Named(name)).serve(listener, async move { s.triggered().await }));
    }
    let canary = addrs[2];

    let hooks = CanaryRouting::new([canary]);
    let counts = hooks.counts();
    let proxy = Proxy::builder()
        .backends(addrs.iter().map(|&a| (a, 1)))
        .hooks(hooks)
        .build()?;
    let handle = proxy.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = listener.local_addr()?;
    let mut s = signal.clone();
    let served = tokio::spawn(proxy.serve(listener, async move { s.triggered().await }));
    println!("proxy on http://{proxy_addr}; canary backend {canary}");

    let requests = [
        ("/a", ""),
        ("/b", ""),
        ("/c", "Cookie: theme=dark; canary=always; lang=en\r\n"),
        ("/d", "X-Canary: 1\r\n"),
        ("/e", "Cookie: canary=never\r\n"),
    ];
    for (path, extra) in requests {
        let how = extra.trim_end();
        let how = if how.is_empty() { "(plain)" } else { how };
        println!("{path} {how:<48} -> {}", fetch(proxy_addr, path, extra).await?);
    }

    handle.drain(canary)?;
    println!("drained the canary {canary}");
    println!(
        "/f {:<48} -> {}",
        "X-Canary: 1",
        fetch(proxy_addr, "/f", "X-Canary: 1\r\n").await?
    );

    let (stable, canary, fallback, unserved) = counts.snapshot();
    println!("served by stable {stable} (of which canary fallbacks {fallback}), by canary {canary}, unserved {unserved}");

    trigger.trigger();
    served.await??;
    Ok(())
}
