//! Bearer-token authentication in front of the backends, with [`ProxyHooks`].
//!
//! - `request_filter` checks `Authorization: Bearer <token>` before any backend
//!   is chosen or any request body read: a request without a valid token is
//!   answered `401` with `WWW-Authenticate: Bearer realm="..."` (RFC 6750 §3),
//!   and an upload it refuses is never invited with `100 Continue`. Tokens are
//!   compared in constant time (the time taken does not depend on how much of
//!   a token was right).
//! - `upstream_request_filter` tells the backend who the user is in
//!   [`USER_HEADER`], after removing every copy of that header the client sent
//!   (also spellings with `_` for `-`, which some backends read as the same
//!   name), so it cannot be forged; and it removes `Authorization`, so the
//!   backend never holds the token.
//!
//! The answers, as RFC 6750 §3.1 asks:
//!
//! | request | answer |
//! |---|---|
//! | no `Authorization`, or another scheme | 401, `WWW-Authenticate: Bearer realm="..."` |
//! | a Bearer token that is malformed or not known | 401, the same with `error="invalid_token"` |
//! | more than one `Authorization` line | 400, the same with `error="invalid_request"` |
//!
//! The program starts a backend of its own that echoes who it was told the user
//! is, puts the proxy in front of it, sends a few requests with and without
//! tokens, prints the answers and shuts down:
//!
//! ```text
//! cargo run -p rr-proxy --example auth
//! ```

use std::net::SocketAddr;

use bytes::Bytes;
use http_core::{Request, RequestHead, Response, Server, Service, ShutdownSignal};
use rr_proxy::{Proxy, ProxyHooks, RequestEdits, RequestInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The header the backend reads the authenticated user from.
pub const USER_HEADER: &str = "X-Authenticated-User";

/// The hooks: a realm and the tokens it accepts, each naming a user.
#[derive(Debug)]
pub struct BearerAuth {
    /// The `WWW-Authenticate` values, made once.
    challenge: Bytes,
    invalid_token: Bytes,
    invalid_request: Bytes,
    tokens: Vec<(Bytes, Bytes)>,
}

/// Per request: the user its token names, once checked.
#[derive(Debug, Default)]
pub struct AuthCtx {
    user: Option<Bytes>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No Bearer credentials at all.
    Missing,
    /// A Bearer token that is malformed or not known.
    InvalidToken,
    /// Several `Authorization` lines: which one counts would be a guess.
    InvalidRequest,
}

impl BearerAuth {
    /// Authentication for `realm` with no token accepted yet.
    ///
    /// # Panics
    /// When `realm` holds a `"`, `\` or a control character (it is configuration,
    /// not input).
    pub fn new(realm: &str) -> Self {
        assert!(
            realm
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_control() && b != b'"' && b != b'\\'),
            "the realm must be printable ASCII without quotes or backslashes"
        );
        let challenge = format!("Bearer realm=\"{realm}\"");
        BearerAuth {
            invalid_token: format!("{challenge}, error=\"invalid_token\"").into(),
            invalid_request: format!("{challenge}, error=\"invalid_request\"").into(),
            challenge: challenge.into(),
            tokens: Vec::new(),
        }
    }

    /// Accepts `token` as the credentials of `user`.
    ///
    /// # Panics
    /// When `token` is not a token68 (RFC 9110 §11.2), or `user` is empty or holds
    /// anything but visible ASCII (it is sent as a header value).
    pub fn token(mut self, token: &str, user: &str) -> Self {
        assert!(is_token68(token.as_bytes()), "a bearer token must be a token68");
        assert!(
            !user.is_empty() && user.bytes().all(|b| b.is_ascii_graphic()),
            "a user name must be visible ASCII"
        );
        self.tokens.push((
            Bytes::copy_from_slice(token.as_bytes()),
            Bytes::copy_from_slice(user.as_bytes()),
        ));
        self
    }

    /// The user `head`'s credentials name, or why there is none.
    pub fn authenticate(&self, head: &RequestHead) -> Result<Bytes, Refusal> {
        let mut lines = head
            .headers()
            .raw()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"authorization"))
            .map(|(_, v)| v);
        let value = lines.next().ok_or(Refusal::Missing)?;
        if lines.next().is_some() {
            return Err(Refusal::InvalidRequest);
        }
        // `credentials = auth-scheme [ 1*SP token68 ]`; the scheme is case-insensitive.
        let value = value.trim_ascii();
        let split = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
        let (scheme, rest) = value.split_at(split);
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return Err(Refusal::Missing);
        }
        let token = rest.trim_ascii_start();
        if !is_token68(token) {
            return Err(Refusal::InvalidToken);
        }
        // Every known token is compared, each in constant time: neither how
        // much of a token matched nor which one did shows in the time taken.
        let mut user = None;
        for (known, name) in &self.tokens {
            if constant_time_eq(token, known) {
                user = Some(name.clone());
            }
        }
        user.ok_or(Refusal::InvalidToken)
    }

    /// The answer to a refused request.
    pub fn refusal(&self, why: Refusal) -> Response {
        let (status, challenge, text) = match why {
            Refusal::Missing => (401, &self.challenge, "authentication required\n"),
            Refusal::InvalidToken => (401, &self.invalid_token, "invalid token\n"),
            Refusal::InvalidRequest => (400, &self.invalid_request, "more than one Authorization header\n"),
        };
        Response::text(status, text)
            .header("WWW-Authenticate", challenge.clone())
            .header("Cache-Control", "no-store")
    }
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_token68(t: &[u8]) -> bool {
    let body = t.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body > 0
        && t[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// `a == b`, in a time that depends on the lengths only (a token's length is not
/// a secret worth keeping; its bytes are).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the compiler from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// True when `name` would be read as [`USER_HEADER`] by a backend that treats
/// `_` as `-` (CGI-style environments do).
fn names_user_header(name: &[u8]) -> bool {
    name.len() == USER_HEADER.len()
        && name
            .iter()
            .zip(USER_HEADER.as_bytes())
            .all(|(&a, &b)| a.eq_ignore_ascii_case(&b) || (a == b'_' && b == b'-'))
}

impl ProxyHooks for BearerAuth {
    type Ctx = AuthCtx;

    async fn request_filter(&self, req: RequestInfo<'_>, ctx: &mut AuthCtx) -> Option<Response> {
        match self.authenticate(req.head) {
            Ok(user) => {
                ctx.user = Some(user);
                None
            }
            Err(why) => Some(self.refusal(why)),
        }
    }

    fn upstream_request_filter(&self, req: RequestInfo<'_>, upstream: &mut RequestEdits, ctx: &mut AuthCtx) {
        // Removals first: a later removal of the same name would undo the set.
        for (name, _) in req.head.headers() {
            if names_user_header(name.as_bytes()) {
                upstream.remove_header(name);
            }
        }
        upstream.remove_header("Authorization");
        // Only authenticated requests get here (request_filter answered the
        // rest); the user name was checked to be a sendable value.
        if let Some(user) = ctx.user.take() {
            upstream.set_header(USER_HEADER, user);
        }
    }
}

/// The program's own backend: says whom it serves, and whether it saw a token.
struct Echo;

impl Service for Echo {
    async fn call(&self, req: Request<'_>) -> Response {
        let user = req.head.header(USER_HEADER).map(String::from_utf8_lossy);
        let token = if req.head.header("authorization").is_some() {
            "a token"
        } else {
            "no token"
        };
        Response::text(
            200,
            format!(
                "backend: {} for {}, saw {token}\n",
                req.head.target(),
                user.as_deref().unwrap_or("nobody")
            ),
        )
    }
}

/// One GET through the proxy on a fresh connection, with `extra` header lines:
/// the status line, any `WWW-Authenticate` and the body.
async fn fetch(addr: SocketAddr, path: &str, extra: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut line = head.lines().next().unwrap_or("").to_owned();
    for l in head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
    {
        line.push_str(" | ");
        line.push_str(l);
    }
    Ok(format!("{line} | {}", body.trim_end()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (trigger, signal) = ShutdownSignal::new();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend = listener.local_addr()?;
    let mut s = signal.clone();
    tokio::spawn(Server::new(Echo).serve(listener, async move { s.triggered().await }));

    let auth = BearerAuth::new("example")
        .token("alice-token-1f6b3c", "alice")
        .token("bob-token-82d0e4", "bob");
    let proxy = Proxy::builder().backend(backend, 1).hooks(auth).build()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = listener.local_addr()?;
    let mut s = signal.clone();
    let served = tokio::spawn(proxy.serve(listener, async move { s.triggered().await }));
    println!("proxy on http://{proxy_addr}");

    let requests = [
        "",
        "Authorization: Basic YWxpY2U6cHc=\r\n",
        "Authorization: Bearer wrong-token\r\n",
        "Authorization: Bearer alice-token-1f6b3c\r\n",
        "Authorization: Bearer bob-token-82d0e4\r\nX-Authenticated-User: admin\r\n",
    ];
    for extra in requests {
        let how = extra.trim_end().replace("\r\n", ", ");
        let how = if how.is_empty() {
            "(no credentials)".to_owned()
        } else {
            how
        };
        println!("{how}\n  -> {}", fetch(proxy_addr, "/account", extra).await?);
    }

    trigger.trigger();
    served.await??;
    Ok(())
}
