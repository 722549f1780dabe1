//! The admin endpoint: stats, metrics and run-time backend changes over HTTP.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the live status page (HTML) |
//! | `GET /help` | this list of routes, as text |
//! | `GET /stats` | proxy and backend counters as JSON |
//! | `GET /metrics` | the same in the Prometheus text format |
//! | `GET /backends/{addr}` | one backend as JSON |
//! | `POST /backends/{addr}/drain` | stop sending new requests to it |
//! | `POST /backends/{addr}/enable` | put a drained backend back into rotation |
//! | `POST /backends/{addr}?weight=N&pool=NAME` | add a backend (weight 1, the first pool when not given); `{addr}` `https://HOST:PORT` adds one spoken to over TLS |
//! | `DELETE /backends/{addr}` | remove a backend |
//! | `POST /reload` | reload the configuration ([`AdminService::with_reload`]): 200 with what changed, 400 with why not |
//!
//! Drain, enable and remove act on every pool that holds the backend.
//! `{addr}` is `IP:PORT` (IPv6 as `[::1]:8080`), percent-decoded first
//! (`%5B::1%5D:8080`), or `HOST:PORT` (looked up, the first address).
//! `https://HOST:PORT` (best percent-encoded: `https%3A%2F%2Fweb.internal%3A443`;
//! `https://[::1]:8443` for an IPv6 address) names a backend spoken to over
//! TLS: added with it, its certificate is verified for `HOST` (sent as SNI
//! when a name) against the pool's trust anchors (its `backend_ca`, else the
//! system's roots); a form that is not `https://HOST:PORT`, or a name that
//! does not resolve, is 400 with why. Elsewhere it names the backend at the
//! address `HOST` resolves to.
//! Changes answer 200 with the backend's JSON (201 when added), 404 for an unknown
//! backend, 409 for a duplicate, 400 for a bad address or weight.
//!
//! # Security
//! Before any route, every request passes the checks of [`AdminSecurity`]:
//!
//! | request | answer |
//! |---|---|
//! | `Host` not the listener's `IP:PORT`, `localhost:PORT` (loopback listener) or a configured name | 421 |
//! | a token is configured and `Authorization: Bearer TOKEN` is missing or wrong (all but `GET /`) | 401 with `WWW-Authenticate: Bearer` |
//! | not GET/HEAD, with an `Origin` other than the endpoint's own, or `Sec-Fetch-Site: cross-site` / `same-site` | 403 |
//! | not GET/HEAD, with a body that is not `application/json` (`text/plain`, forms, no type) | 415 |
//!
//! A listener on anything but a loopback address needs a token: [`AdminService::new`]
//! and [`serve_admin_with`] refuse to start without one
//! ([`AdminError::TokenRequired`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use http_core::{LogValue, Method, Request, Response, Server, Service};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::stats::{json_document, prometheus_text, PROMETHEUS_CONTENT_TYPE};
use crate::{AdminError, ProxyError, ProxyHandle};

mod security;

use security::Guard;
pub use security::{AdminSecurity, AdminToken, MIN_TOKEN_LEN};

/// The admin endpoint as an [`http_core::Service`]; serve it with
/// [`http_core::Server`] or [`serve_admin_with`].
#[derive(Clone)]
pub struct AdminService {
    handle: ProxyHandle,
    guard: Guard,
    reload: Option<ReloadFn>,
}

/// What `POST /reload` runs: the program's own reading of its configuration
/// (a file, usually) and [`ProxyHandle::reload`]; `Ok` says what changed,
/// `Err` why nothing did.
type ReloadFn = std::sync::Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService")
            .field("handle", &self.handle)
            .field("guard", &self.guard)
            .field("reload", &self.reload.is_some())
            .finish()
    }
}

impl AdminService {
    /// An admin endpoint for the proxy behind `handle`, served on a listener
    /// bound to `local` (its `Host` check accepts that address), with `security`.
    ///
    /// Fails when `security` is not valid for `local` (see
    /// [`AdminSecurity::validate`]): a bad host name, or no token on a listener
    /// beyond loopback.
    pub fn new(handle: ProxyHandle, local: SocketAddr, security: AdminSecurity) -> Result<Self, AdminError> {
        Ok(AdminService {
            handle,
            guard: Guard::new(local, security)?,
            reload: None,
        })
    }

    /// Answers `POST /reload` by running `reload` (on a blocking thread: it
    /// reads files): 200 and a JSON `{"reloaded": true, "message": ...}`
    /// saying what changed, or 400 and `{"reloaded": false, "error": ...}`
    /// saying why the running configuration was kept. Without it, `POST
    /// /reload` is 404. The route passes the same checks as every command
    /// (own origin only, the token when one is set).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let proxy = rr_proxy::Proxy::builder().backend("127.0.0.1:9002".parse()?, 1).build()?;
    /// let handle = proxy.handle();
    /// let admin = rr_proxy::AdminService::new(
    ///     proxy.handle(),
    ///     "127.0.0.1:9100".parse()?,
    ///     rr_proxy::AdminSecurity::default(),
    /// )?
    /// .with_reload(move || {
    ///     let config = rr_proxy::ProxyConfig::load("proxy.toml".as_ref()).map_err(|e| {
    ///         handle.reload_failed(&e.to_string());
    ///         e.to_string()
    ///     })?;
    ///     handle.reload(&config).map(|done| done.to_string()).map_err(|e| e.to_string())
    /// });
    /// # let _ = admin;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_reload(
        mut self,
        reload: impl Fn() -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        self.reload = Some(std::sync::Arc::new(reload));
        self
    }

    async fn reload_route(&self, method: Method) -> Response {
        if method != Method::Post {
            return Response::text(405, "method not allowed\n").header("Allow", "POST");
        }
        let Some(reload) = self.reload.clone() else {
            return Response::text(
                404,
                "no reload here: the proxy was started without a configuration file\n",
            );
        };
        match tokio::task::spawn_blocking(move || reload()).await {
            Ok(Ok(message)) => json(200, &serde_json::json!({ "reloaded": true, "message": message })),
            Ok(Err(error)) => json(400, &serde_json::json!({ "reloaded": false, "error": error })),
            Err(_) => Response::text(500, "the reload failed unexpectedly\n"),
        }
    }
}

/// Serves the admin endpoint on `listener` until `shutdown` resolves, with the
/// default [`AdminSecurity`]: no token, so `listener` must be on a loopback
/// address (an error of kind `InvalidInput` otherwise, holding
/// [`AdminError::TokenRequired`]). [`serve_admin_with`] takes a token and names.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let proxy = rr_proxy::Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 1)
///     .build()
///     .unwrap();
/// let admin = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
/// tokio::spawn(rr_proxy::serve_admin(proxy.handle(), admin, std::future::pending()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:44444").await?;
/// proxy.serve(listener, std::future::pending()).await
/// # }
/// ```
pub async fn serve_admin(
    handle: ProxyHandle,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_admin_with(handle, listener, AdminSecurity::default(), shutdown)
        .await
        .map_err(|e| match e {
            AdminError::Io(e) => e,
            e => io::Error::new(io::ErrorKind::InvalidInput, e),
        })
}

/// Serves the admin endpoint on `listener` with `security` until `shutdown`
/// resolves. Fails at once, before serving anything, when `security` does not
/// suit the listener's address (see [`AdminSecurity::validate`]).
///
/// ```no_run
/// use rr_proxy::{AdminSecurity, AdminToken};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let proxy = rr_proxy::Proxy::builder()
///     .backend("127.0.0.1:9002".parse()?, 1)
///     .build()?;
/// // Reachable from other machines: every request needs the token.
/// let security = AdminSecurity {
///     token: Some(AdminToken::from_file("/etc/rr-proxy/admin-token")?),
///     hosts: vec!["lb1.example.com".into()],
/// };
/// let admin = tokio::net::TcpListener::bind("0.0.0.0:9100").await?;
/// tokio::spawn(rr_proxy::serve_admin_with(proxy.handle(), admin, security, std::future::pending()));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:44444").await?;
/// proxy.serve(listener, std::future::pending()).await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve_admin_with(
    handle: ProxyHandle,
    listener: TcpListener,
    security: AdminSecurity,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AdminError> {
    serve_admin_https(handle, listener, security, None, shutdown).await
}

/// [`serve_admin_with`], over HTTPS when `tls` is given (the proxy's own
/// certificates, usually): an opt-in, as the admin endpoint is meant for
/// loopback or an internal network, where plain HTTP is the default.
pub async fn serve_admin_https(
    handle: ProxyHandle,
    listener: TcpListener,
    security: AdminSecurity,
    tls: Option<http_core::TlsConfig>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AdminError> {
    let service = AdminService::new(handle, listener.local_addr()?, security)?;
    let server = Server::new(service).shutdown_timeout(std::time::Duration::from_secs(2));
    match tls {
        Some(tls) => server.tls(tls),
        None => server,
    }
    .serve(listener, shutdown)
    .await?;
    Ok(())
}

/// The live status page served at `/`: per backend its state, counters and share
/// of requests, refreshed from `/stats`, with drain and enable buttons. Everything
/// is inline: the page loads nothing from anywhere else.
const STATUS_PAGE: &str = include_str!("status.html");
const STATUS_PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = "rr-proxy admin\n\
GET    /                           live status page (HTML)\n\
GET    /help                       this list\n\
GET    /stats                      counters as JSON\n\
GET    /metrics                    counters in the Prometheus text format\n\
GET    /backends/{addr}            one backend as JSON\n\
POST   /backends/{addr}/drain      stop sending new requests to a backend\n\
POST   /backends/{addr}/enable     put a drained backend back into rotation\n\
POST   /backends/{addr}?weight=N   add a backend (&pool=NAME: to that pool; https://HOST:PORT: over TLS)\n\
DELETE /backends/{addr}            remove a backend\n\
POST   /reload                     reload the configuration file\n";

impl Service for AdminService {
    async fn call(&self, req: Request<'_>) -> Response {
        // Marks the admin's lines in the access log: `admin=true`.
        self.route(req).await.log_field("admin", LogValue::Flag(true))
    }
}

impl AdminService {
    async fn route(&self, req: Request<'_>) -> Response {
        let head = req.head;
        if let Some(refused) = self.guard.check(head) {
            return refused;
        }
        let method = head.method();
        let path = head.path();
        let read = matches!(method, Method::Get | Method::Head);
        match path {
            "/" => only(read, "GET, HEAD", || {
                Response::new(200)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("Cache-Control", "no-cache")
                    .header("X-Content-Type-Options", "nosniff")
                    // No other page may frame it (and so trick clicks on its
                    // buttons), and it may load or send nothing beyond its origin.
                    .header("X-Frame-Options", "DENY")
                    .header("Content-Security-Policy", STATUS_PAGE_CSP)
                    .body(STATUS_PAGE)
            }),
            "/help" => only(read, "GET, HEAD", || Response::text(200, INDEX)),
            "/reload" => self.reload_route(method).await,
            "/stats" => only(read, "GET, HEAD", || json(200, &self.handle.stats())),
            "/metrics" => only(read, "GET, HEAD", || {
                match prometheus_text(self.handle.stats(), self.handle.tls()) {
                    Ok(text) => Response::new(200)
                        .header("Content-Type", PROMETHEUS_CONTENT_TYPE)
                        .body(text),
                    Err(_) => Response::text(500, "cannot render the metrics\n"),
                }
            }),
            _ => match path.strip_prefix("/backends/") {
                Some(rest) => self.backend_route(method, rest, head.query()).await,
                None => Response::text(404, "not found\n"),
            },
        }
    }
}

impl AdminService {
    async fn backend_route(&self, method: Method, rest: &str, query: Option<&str>) -> Response {
        let (addr, action, https): (SocketAddr, Option<String>, Option<String>) = match https_form(rest) {
            Some((text, action)) => match resolve_https(text).await {
                Ok((addr, host)) => (addr, action, Some(host)),
                Err(refused) => return refused,
            },
            None => {
                let (addr_text, action) = match rest.rsplit_once('/') {
                    Some((a, act)) => (a, Some(act)),
                    None => (rest, None),
                };
                let addr = match parse_addr(addr_text) {
                    Some(addr) => addr,
                    // HOST:PORT, looked up as the command line's --backend is (the
                    // first address), so the same names work in both places.
                    None => match lookup(addr_text).await {
                        Some(addr) => addr,
                        None => {
                            return Response::text(
                                400,
                                "bad backend address: expected IP:PORT, HOST:PORT that resolves, or https://HOST:PORT\n",
                            )
                        }
                    },
                };
                (addr, action.map(str::to_owned), None)
            }
        };
        let action = action.as_deref();
        let h = &self.handle;
        let result = match (method, action) {
            (Method::Get | Method::Head, None) => h.backend(addr).map(|b| (200, b)),
            (Method::Post, Some("drain")) => h.drain(addr).and_then(|()| h.backend(addr)).map(|b| (200, b)),
            (Method::Post, Some("enable")) => h.enable(addr).and_then(|()| h.backend(addr)).map(|b| (200, b)),
            (Method::Post | Method::Put, None) => {
                let weight = match query.and_then(weight_param) {
                    None => 1,
                    Some(Some(w)) => w,
                    Some(None) => return Response::text(400, "bad weight: expected weight=N with N >= 1\n"),
                };
                let pool = query.and_then(pool_param);
                let added = match (https, pool) {
                    (Some(host), pool) => {
                        // It may read the system's trust store: off the async threads.
                        let h = h.clone();
                        tokio::task::spawn_blocking(move || {
                            h.add_https_backend(pool.as_deref(), addr, weight, &host)
                        })
                        .await
                        .unwrap_or(Err(ProxyError::InvalidConfig("the backend could not be added")))
                    }
                    (None, Some(pool)) => h.add_backend_to(&pool, addr, weight),
                    (None, None) => h.add_backend(addr, weight),
                };
                added.and_then(|()| h.backend(addr)).map(|b| (201, b))
            }
            (Method::Delete, None) => match h.backend(addr) {
                Ok(b) => h.remove_backend(addr).map(|()| (200, b)),
                Err(e) => Err(e),
            },
            (_, Some("drain" | "enable")) => {
                return Response::text(405, "method not allowed\n").header("Allow", "POST")
            }
            (_, None) => {
                return Response::text(405, "method not allowed\n")
                    .header("Allow", "GET, HEAD, POST, PUT, DELETE")
            }
            (_, Some(_)) => return Response::text(404, "not found\n"),
        };
        match result {
            Ok((status, b)) => json(status, &b),
            Err(e @ (ProxyError::UnknownBackend(_) | ProxyError::UnknownPool(_))) => {
                Response::text(404, format!("{e}\n"))
            }
            Err(e @ ProxyError::DuplicateBackend(_)) => Response::text(409, format!("{e}\n")),
            Err(e) => Response::text(400, format!("{e}\n")),
        }
    }
}

fn only(allowed: bool, allow: &'static str, f: impl FnOnce() -> Response) -> Response {
    if allowed {
        f()
    } else {
        Response::text(405, "method not allowed\n").header("Allow", allow)
    }
}

fn json(status: u16, value: &impl Serialize) -> Response {
    match json_document(value) {
        Ok(body) => Response::new(status)
            .header("Content-Type", "application/json")
            .header("Cache-Control", "no-store")
            .body(body),
        Err(_) => Response::text(500, "cannot render the document\n"),
    }
}

/// `pool=NAME` (percent-decoded).
fn pool_param(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("pool="))
        .and_then(|p| percent_decode_str(p).decode_utf8().ok())
        .map(|p| p.into_owned())
}

/// `weight=N`: `None` when the query has none (`?pool=NAME` alone), `Some(None)`
/// when N is not a weight.
fn weight_param(query: &str) -> Option<Option<u32>> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("weight="))
        .map(|w| {
            w.parse::<u32>()
                .ok()
                .filter(|&w| (1..=crate::config::MAX_WEIGHT).contains(&w))
        })
}

/// `IP:PORT`, percent-decoded first (so `%5B::1%5D:80` is `[::1]:80`).
/// The first address `HOST:PORT` (percent-encoded) resolves to, within a few
/// seconds; `None` for anything else.
async fn lookup(text: &str) -> Option<SocketAddr> {
    let text = percent_decode_str(text).decode_utf8().ok()?;
    let (host, port) = text.rsplit_once(':')?;
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    if !valid_host {
        return None;
    }
    let found = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::lookup_host((host, port)),
    )
    .await
    .ok()?
    .ok()?;
    let mut found = found;
    found.next()
}

/// `https://HOST:PORT[/ACTION]` (percent-encoded or not: `https%3A%2F%2F...`):
/// the `HOST:PORT` part and the action. `None` when `rest` is no https form.
fn https_form(rest: &str) -> Option<(String, Option<String>)> {
    let text = percent_decode_str(rest).decode_utf8().ok()?;
    let after = text.strip_prefix("https://")?;
    Some(match after.split_once('/') {
        Some((a, act)) => (a.to_owned(), Some(act.to_owned())),
        None => (after.to_owned(), None),
    })
}

/// How long the name of an https backend may take to resolve.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `HOST:PORT` of an https backend: its address (a name looked up, the first
/// address) and `HOST` as its certificate is verified for; 400 with why not.
async fn resolve_https(text: String) -> Result<(SocketAddr, String), Response> {
    if text.contains('=') {
        return Err(Response::text(
            400,
            "bad https backend: give the weight as ?weight=N, not in the address\n",
        ));
    }
    let entry = format!("https://{text}");
    let parse = tokio::task::spawn_blocking(move || crate::BackendSource::parse_resolving(&entry));
    match tokio::time::timeout(LOOKUP_TIMEOUT, parse).await {
        Ok(Ok(Ok(crate::BackendSource::Https { spec, host }))) => Ok((spec.addr, host)),
        Ok(Ok(Err(e))) => Err(Response::text(400, format!("{e}\n"))),
        Err(_) => Err(Response::text(
            400,
            format!("cannot resolve backend address {text:?}: no answer within {LOOKUP_TIMEOUT:?}\n"),
        )),
        _ => Err(Response::text(
            400,
            "bad https backend: expected https://HOST:PORT\n",
        )),
    }
}

fn parse_addr(text: &str) -> Option<SocketAddr> {
    percent_decode_str(text).decode_utf8().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_weights() {
        assert_eq!(parse_addr("127.0.0.1:80"), Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(parse_addr("%5B::1%5D:80"), Some("[::1]:80".parse().unwrap()));
        assert_eq!(parse_addr("%5b::1%5d%3a80"), Some("[::1]:80".parse().unwrap()));
        assert_eq!(
            parse_addr("127.0.0.1%3A80"),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(parse_addr("nope"), None);
        assert_eq!(parse_addr("127.0.0.1%3A"), None);
        assert_eq!(parse_addr("%FF127.0.0.1:80"), None);
        assert_eq!(parse_addr("127.0.0.1:80%2Fdrain"), None);
        let https = |s: &str| https_form(s);
        assert_eq!(
            https("https%3A%2F%2Fweb.internal%3A443"),
            Some(("web.internal:443".to_owned(), None))
        );
        assert_eq!(
            https("https://web.internal:443/drain"),
            Some(("web.internal:443".to_owned(), Some("drain".to_owned())))
        );
        assert_eq!(
            https("https%3A%2F%2F%5B::1%5D%3A8443"),
            Some(("[::1]:8443".to_owned(), None))
        );
        assert_eq!(https("127.0.0.1:80"), None);
        assert_eq!(https("http%3A%2F%2F127.0.0.1:80"), None);
        assert_eq!(https("%FFhttps://x:1"), None);
        assert_eq!(weight_param("weight=3"), Some(Some(3)));
        assert_eq!(weight_param("a=1&weight=0"), Some(None));
        assert_eq!(weight_param("weight="), Some(None));
        assert_eq!(weight_param("pool=api"), None, "no weight: the default");
    }
}
