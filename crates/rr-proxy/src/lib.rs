//! An embeddable load balancer on [`http_core`]: round-robin (or
//! least-connections) over a set of weighted backends, in HTTP mode (per
//! request, pooled keep-alive upstream connections) or TCP mode (per connection).
//!
//! # What it guarantees
//! - **Strict rotation.** With equal weights, [`RoundRobin`] advances one shared
//!   atomic counter per request: N requests over k healthy backends give each
//!   ⌊N/k⌋ or ⌈N/k⌉, from any number of clients and worker threads.
//! - **Weights are honoured.** With different weights, [`RoundRobin`] gives each
//!   backend exactly its weight in every `sum(weights)` requests, interleaved as
//!   nginx's smooth weighted round-robin does (5, 1, 1: `a a b a c a a`);
//!   [`LeastConnections`] weighs the requests in progress by the weight, as
//!   HAProxy's `leastconn` does.
//! - **Affinity when asked for.** [`StickyCookie`] keeps a client on the backend
//!   its cookie names while that backend is eligible, and moves it (with a new
//!   cookie) when it is not; [`ConsistentHash`] sends each key (client address
//!   or a header) to one backend, moves only a leaving backend's keys, and
//!   bounds every backend's share of the load so that a hot key spills over.
//! - **No request lost or duplicated.** A request is sent again (to the next
//!   backend, at most [`ProxyBuilder::max_attempts`] backends) only when no byte of
//!   it reached a backend, or when it is idempotent (GET, HEAD, OPTIONS, PUT,
//!   DELETE), its whole body is still at hand, and no response byte arrived. A POST
//!   is never sent twice. A pooled connection the backend closed, or one holding
//!   bytes nobody asked for, is noticed before reuse and replaced.
//! - **No smuggling.** Clients are parsed by `http_core`'s strict rules; anything
//!   framed ambiguously is refused before a backend is chosen. The body is
//!   re-framed for the backend (`Content-Length` rewritten, chunked re-encoded),
//!   so the backend only ever sees well-formed framing.
//! - **Bounded memory.** Bodies stream both ways through fixed buffers.
//! - **Every wait has a timeout** ([`Timeouts`], [`http_core::Limits`], [`HealthCheck`]).
//!
//! # Failures and what the client gets
//! | situation | answer |
//! |---|---|
//! | no eligible backend | 503 with `Retry-After` |
//! | connect refused / timed out | next backend; after the last attempt 502 / 504 |
//! | no response head within [`Timeouts::response`] | 504 |
//! | malformed response head or body framing | 502 (or the client connection is cut mid-body) |
//! | backend closed before answering | idempotent with a replayable body: next backend; otherwise 502 |
//! | a 101 switching to a protocol the client did not offer | 502 |
//! | the headers the proxy adds would push the request over the header-count or head-size limit | 431 from the proxy, connection closed |
//!
//! # Headers
//! Hop-by-hop fields and every field the `Connection` header names are removed in
//! both directions; `X-Forwarded-For` gets the client address appended,
//! `X-Forwarded-Proto` (`https` when the client came over TLS,
//! [`ProxyBuilder::tls`]) and `X-Forwarded-Host` are set (a client's values are
//! replaced), `Via: 1.1 rr-proxy` is added, and `Host` is kept. An `Upgrade: h2c`
//! offer and its `HTTP2-Settings` are removed, as nginx does: the request goes on
//! as a plain one.
//!
//! # Embedding
//! ```
//! use std::time::Duration;
//! use rr_proxy::{HealthCheck, Proxy};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let proxy = Proxy::builder()
//!     .backend("127.0.0.1:9002".parse().unwrap(), 1)
//!     .backend("127.0.0.1:9003".parse().unwrap(), 1)
//!     .response_timeout(Duration::from_secs(10))
//!     .health_check(HealthCheck { path: "/health".into(), ..HealthCheck::default() })
//!     .build()
//!     .unwrap();
//! let handle = proxy.handle();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(proxy.serve(listener, async { let _ = stopped.await; }));
//!
//! // At run time: read counters, take a backend out of rotation, add one.
//! assert_eq!(handle.stats().backends.len(), 2);
//! handle.drain("127.0.0.1:9003".parse().unwrap()).unwrap();
//! handle.add_backend("127.0.0.1:9004".parse().unwrap(), 1).unwrap();
//!
//! let _ = stop.send(());
//! server.await.unwrap().unwrap();
//! # });
//! ```
//! # Backends from DNS (or any other source)
//! [`ProxyBuilder::discovery`] adds a [`Discovery`] source whose sets the proxy
//! follows while it serves, applying each as a diff (unchanged backends keep
//! their connections, health and counters; a failed or empty answer keeps the
//! last good set). [`DnsDiscovery`] follows `dns:NAME:PORT` (A and AAAA) and
//! `srv:NAME` entries ([`BackendSource`]) with TTL-driven re-resolution
//! bounded by [`ResolverConfig`]; an embedder's own source (a Kubernetes
//! watcher, a registry) implements the trait.
//!
//! # Backends over TLS
//! [`ProxyBuilder::https_backend`] (`--backend https://HOST:PORT`) speaks TLS
//! to a backend: its certificate verified for `HOST` against the system's
//! roots or a CA file ([`BackendTls`], [`ProxyBuilder::backend_tls`]), SNI
//! sent for a name, sessions resumed and connections pooled as plain ones
//! are; a failed handshake is [`FailureReason::Tls`] with a [`TlsFailure`].
//!
//! The admin endpoint ([`serve_admin`], [`serve_admin_with`]) exposes the same over
//! HTTP: `GET /stats` (JSON), `GET /metrics` (Prometheus), `POST
//! /backends/{addr}/drain` and `/enable`; see [`admin`] for every route. It answers
//! only requests for its own address (a DNS-rebound page is refused), takes
//! commands only from its own origin, and with an [`AdminToken`] only from
//! holders of the token, which it requires beyond loopback ([`AdminSecurity`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
mod backend;
mod backend_tls;
mod balancer;
mod config;
pub mod config_file;
mod discovery;
mod error;
mod forward;
mod hash;
mod health;
mod hooks;
mod proxy;
mod reason;
mod reload;
mod routing;
mod stats;
mod strategy;
mod tcp;
mod transport;

pub use admin::{serve_admin, serve_admin_https, serve_admin_with, AdminSecurity, AdminService, AdminToken};
pub use backend::{Backend, BackendState, BackendStats};
pub use backend_tls::{BackendTls, BackendTlsError, BackendTlsStats, TlsFailure};
pub use config::{
    parse_duration, parse_duration_or_zero, parse_listen, parse_resolver, parse_status_range, BackendSource,
    BackendSpec, HealthCheck, Mode, PassiveHealth, PoolConfig, Timeouts, MAX_DURATION, MAX_WEIGHT,
};
pub use config_file::{ConfigError, ProxyConfig};
pub use discovery::{
    DiscoverFuture, DiscoveredSet, Discovery, DiscoveryError, DiscoveryResult, DiscoveryStats, DnsDiscovery,
    ResolverConfig,
};
pub use error::{AdminError, ProxyError, SpecError, StrategyError};
pub use hooks::{
    Candidates, FailureKind, NoHooks, OnFailure, Peer, ProxyHooks, RequestEdits, RequestInfo, ResponseEdits,
    Summary, UpstreamFailure,
};
pub use proxy::{Proxy, ProxyBuilder, ProxyHandle};
pub use reason::FailureReason;
pub use reload::{ReloadStats, Reloaded};
pub use stats::{PoolStats, ProxyStats, STATS_SCHEMA_VERSION};
pub use strategy::{
    ConsistentHash, CookieName, HashBalance, HashKey, LeastConnections, Pick, PickRequest, RoundRobin,
    Smooth, StickyCookie, Strategy, StrategyKind, StrategyOptions, Weighted,
};
