//! Who may use the admin endpoint, checked before any route runs:
//!
//! 1. **Host** (every request): the listener's own address, `localhost` when it
//!    listens on loopback, or a configured name; anything else is answered 421.
//!    A page on a name its author controls that rebinds to this machine sends
//!    its own name as `Host`, so DNS rebinding cannot read or drive the admin.
//! 2. **Bearer token** (when configured, every request but the page shell at
//!    `GET /`): `Authorization: Bearer TOKEN`, compared in constant time; 401
//!    with `WWW-Authenticate: Bearer` otherwise.
//! 3. **Origin** (every method but GET and HEAD): an `Origin` that is not this
//!    endpoint's own (`http://` or `https://` and the request's `Host`), or a
//!    `Sec-Fetch-Site` of `cross-site` or `same-site`, is answered 403. Browsers
//!    send both on every cross-origin write, simple requests included.
//! 4. **Command bodies** (same methods): a command has no body, or a JSON one.
//!    The body types a page may send across origins without a CORS preflight
//!    (`text/plain`, forms) and bodies without a type are answered 415.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use http_core::{BodyKind, Method, RequestHead, Response};

use crate::AdminError;

/// The shortest token accepted: 16 characters (`openssl rand -hex 32` gives 64).
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token for the admin endpoint. Its `Debug` output does not show it.
///
/// ```
/// use rr_proxy::{AdminError, AdminToken};
/// assert!(AdminToken::new("9f2c47e1b0a35d68c1e4").is_ok());
/// assert!(matches!(AdminToken::new(""), Err(AdminError::EmptyToken)));
/// assert!(matches!(AdminToken::new("short"), Err(AdminError::ShortToken)));
/// let t = AdminToken::new("9f2c47e1b0a35d68c1e4").unwrap();
/// assert!(!format!("{t:?}").contains("9f2c"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(Box<[u8]>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// A token: at least [`MIN_TOKEN_LEN`] visible ASCII characters (no spaces),
    /// so that it fits an `Authorization` header as it is.
    pub fn new(token: &str) -> Result<Self, AdminError> {
        if token.is_empty() {
            return Err(AdminError::EmptyToken);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminError::BadToken);
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(AdminError::ShortToken);
        }
        Ok(AdminToken(token.as_bytes().into()))
    }

    /// The token held in the file at `path`, without the line ending(s) after it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AdminError> {
        let path = path.as_ref();
        let failed = |reason: String| AdminError::TokenFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        AdminToken::new(text.trim_end_matches(['\n', '\r'])).map_err(|e| failed(e.to_string()))
    }

    /// Whether `presented` is this token. The time taken depends only on the
    /// length of `presented`, which its sender knows already.
    pub(crate) fn matches(&self, presented: &[u8]) -> bool {
        let expected = &self.0;
        let mut diff = 0u8;
        for (i, &b) in presented.iter().enumerate() {
            // `expected` is never empty (see `new`).
            diff |= b ^ expected[i % expected.len()];
        }
        let diff = std::hint::black_box(diff);
        (diff == 0) & (presented.len() == expected.len())
    }
}

/// How the admin endpoint tells its operator's requests from anyone else's. The
/// default (no token, no extra names) suits an endpoint on a loopback address;
/// one on any other address needs a [`token`](Self::token).
///
/// ```
/// use rr_proxy::{AdminSecurity, AdminToken};
/// let security = AdminSecurity {
///     token: Some(AdminToken::new("9f2c47e1b0a35d68c1e4")?),
///     hosts: vec!["admin.example.com".into()],
/// };
/// // Beyond loopback a token is required...
/// assert!(AdminSecurity::default().validate("0.0.0.0:9100".parse()?).is_err());
/// assert!(security.validate("0.0.0.0:9100".parse()?).is_ok());
/// // ...and on loopback it is not.
/// assert!(AdminSecurity::default().validate("127.0.0.1:9100".parse()?).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AdminSecurity {
    /// The bearer token every request must carry (`Authorization: Bearer TOKEN`),
    /// except `GET /`, the status page's HTML, which holds no data and asks for
    /// the token itself. Default: none, which is allowed on loopback only.
    pub token: Option<AdminToken>,
    /// Host names accepted in `Host` (with any port or none) besides the
    /// listener's own `IP:PORT` and, on loopback, `localhost:PORT`: the name an
    /// operator reaches the endpoint by through DNS, a reverse proxy or a port
    /// mapping. Names only, no port: `admin.example.com`, `127.0.0.1`, `[::1]`.
    pub hosts: Vec<String>,
}

impl AdminSecurity {
    /// Whether these settings may serve an admin endpoint listening on `local`:
    /// every name in [`hosts`](Self::hosts) is a host name or IP literal, and a
    /// listener on anything but a loopback address has a token.
    pub fn validate(&self, local: SocketAddr) -> Result<(), AdminError> {
        if let Some(bad) = self.hosts.iter().find(|h| !valid_host_name(h)) {
            return Err(AdminError::BadHost(bad.clone()));
        }
        if self.token.is_none() && !local.ip().to_canonical().is_loopback() {
            return Err(AdminError::TokenRequired(local));
        }
        Ok(())
    }
}

/// `reg-name` of letters, digits, `-` and `.`, or a bracketed IPv6 literal.
fn valid_host_name(name: &str) -> bool {
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// [`AdminSecurity`] applied to one listener.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    local: SocketAddr,
    token: Option<AdminToken>,
    hosts: Vec<String>,
}

const CHALLENGE: &str = "Bearer realm=\"rr-proxy admin\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"rr-proxy admin\", error=\"invalid_token\"";

impl Guard {
    pub(crate) fn new(local: SocketAddr, security: AdminSecurity) -> Result<Guard, AdminError> {
        security.validate(local)?;
        Ok(Guard {
            local,
            token: security.token,
            hosts: security.hosts,
        })
    }

    /// `None` when `head` may go on to the routes, else the refusal to send.
    pub(crate) fn check(&self, head: &RequestHead) -> Option<Response> {
        // An HTTP/1.0 request may come without a host (HTTP/1.1 must name one,
        // which http-core enforces); a browser always sends one.
        if let Some(host) = head.host() {
            if !self.host_allowed(host) {
                return Some(refuse(
                    421,
                    "misdirected request: Host is not this admin endpoint's address\n",
                    "host",
                ));
            }
        }
        let method = head.method();
        let read = matches!(method, Method::Get | Method::Head);
        if let Some(refused) = self.check_token(head, read) {
            return Some(refused);
        }
        if read {
            return None;
        }
        let mut cross_site = false;
        let mut foreign_origin = false;
        let mut content_type = None;
        let mut bad_type = false;
        for (name, value) in head.headers().raw() {
            if name.eq_ignore_ascii_case(b"sec-fetch-site") {
                cross_site |=
                    value.eq_ignore_ascii_case(b"cross-site") || value.eq_ignore_ascii_case(b"same-site");
            } else if name.eq_ignore_ascii_case(b"origin") {
                foreign_origin |= !same_origin(value, head.host());
            } else if name.eq_ignore_ascii_case(b"content-type") {
                content_type = Some(value);
                bad_type |= !is_json(value);
            }
        }
        if cross_site || foreign_origin {
            return Some(refuse(
                403,
                "cross-origin request refused: the admin takes commands from its own origin only\n",
                "cross-origin",
            ));
        }
        let has_body = match head.body() {
            BodyKind::Empty | BodyKind::Length(0) => false,
            BodyKind::Length(_) | BodyKind::Chunked | BodyKind::UntilClose => true,
        };
        if bad_type || (has_body && content_type.is_none()) {
            return Some(refuse(
                415,
                "a command has no body or an application/json one\n",
                "body type",
            ));
        }
        None
    }

    /// The 401 for a request without the right bearer token, when one is set.
    /// The status page's HTML (`GET /`) holds no data and is served without it.
    fn check_token(&self, head: &RequestHead, read: bool) -> Option<Response> {
        let token = self.token.as_ref()?;
        if read && head.path() == "/" {
            return None;
        }
        let (text, reason, challenge) = match head.header("authorization").and_then(bearer) {
            Some(t) if token.matches(t) => return None,
            Some(_) => (
                "the bearer token is not this admin endpoint's\n",
                "wrong token",
                CHALLENGE_INVALID,
            ),
            None => (
                "this admin endpoint needs Authorization: Bearer TOKEN\n",
                "no token",
                CHALLENGE,
            ),
        };
        Some(refuse(401, text, reason).header("WWW-Authenticate", challenge))
    }

    /// Whether `host` (`uri-host [":" port]`, checked by http-core) names this
    /// endpoint: a configured name with any port, or, with the listener's port
    /// (80 when none is given), the listener's IP (any IP when it listens on all
    /// addresses) or `localhost` when it listens on loopback.
    fn host_allowed(&self, host: &[u8]) -> bool {
        let Ok(host) = std::str::from_utf8(host) else {
            return false;
        };
        let (name, port) = split_host(host);
        if self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return true;
        }
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) => p,
                Err(_) => return false,
            },
        };
        if port != self.local.port() {
            return false;
        }
        let local = self.local.ip().to_canonical();
        if name.eq_ignore_ascii_case("localhost") {
            return local.is_loopback() || local.is_unspecified();
        }
        let ip = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            Some(v6) => v6.parse::<Ipv6Addr>().map(IpAddr::V6),
            None => name.parse::<Ipv4Addr>().map(IpAddr::V4),
        };
        match ip {
            Ok(ip) => local.is_unspecified() || ip.to_canonical() == local,
            Err(_) => false,
        }
    }
}

/// `host` split into its name (brackets kept) and its port, if any.
fn split_host(host: &str) -> (&str, Option<&str>) {
    let name_end = if host.starts_with('[') {
        host.find(']').map_or(host.len(), |i| i + 1)
    } else {
        host.find(':').unwrap_or(host.len())
    };
    let (name, rest) = host.split_at(name_end);
    (name, rest.strip_prefix(':'))
}

/// Whether an `Origin` value is the origin of a request for `host`: `http://` or
/// `https://` (TLS may end in front of the admin) followed by exactly `host`.
fn same_origin(origin: &[u8], host: Option<&[u8]>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let authority = if origin.len() > 8 && origin[..8].eq_ignore_ascii_case(b"https://") {
        &origin[8..]
    } else if origin.len() > 7 && origin[..7].eq_ignore_ascii_case(b"http://") {
        &origin[7..]
    } else {
        // `null` (sandboxed frames, file: pages, redirects) and anything else.
        return false;
    };
    authority.eq_ignore_ascii_case(host)
}

/// `application/json`, with or without parameters.
fn is_json(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    media.eq_ignore_ascii_case(b"application/json")
}

/// The token of an `Authorization: Bearer TOKEN` value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn refuse(status: u16, text: &'static str, reason: &'static str) -> Response {
    tracing::debug!(status, reason, "admin request refused");
    Response::text(status, text).header("Cache-Control", "no-store")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_core::Limits;

    fn head(text: &str) -> RequestHead {
        RequestHead::parse_complete(bytes::Bytes::from(text.replace('\n', "\r\n")), &Limits::default())
            .unwrap()
    }

    fn guard(local: &str, token: Option<&str>, hosts: &[&str]) -> Guard {
        Guard::new(
            local.parse().unwrap(),
            AdminSecurity {
                token: token.map(|t| AdminToken::new(t).unwrap()),
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
            },
        )
        .unwrap()
    }

    fn status(g: &Guard, text: &str) -> u16 {
        g.check(&head(text)).map_or(0, |r| r.status())
    }

    #[test]
    fn token_comparison() {
        let t = AdminToken::new("0123456789abcdef").unwrap();
        assert!(t.matches(b"0123456789abcdef"));
        assert!(!t.matches(b"0123456789abcdeF"));
        assert!(!t.matches(b"0123456789abcde"));
        assert!(!t.matches(b"0123456789abcdef0"));
        assert!(
            !t.matches(b"0123456789abcdef0123456789abcdef"),
            "a repeat is not the token"
        );
        assert!(!t.matches(b""));
        assert!(matches!(
            AdminToken::new("0123456789 abcdef"),
            Err(AdminError::BadToken)
        ));
        assert!(matches!(
            AdminToken::new("0123456789abcdé"),
            Err(AdminError::BadToken)
        ));
    }

    #[test]
    fn hosts() {
        let g = guard("127.0.0.1:9100", None, &["admin.example"]);
        for ok in [
            "127.0.0.1:9100",
            "localhost:9100",
            "LocalHost:9100",
            "admin.example",
            "admin.example:443",
            "ADMIN.example:9100",
        ] {
            assert_eq!(
                status(&g, &format!("GET /stats HTTP/1.1\nHost: {ok}\n\n")),
                0,
                "{ok}"
            );
        }
        for bad in [
            "evil.example",
            "evil.example:9100",
            "127.0.0.1",
            "127.0.0.1:9101",
            "127.0.0.2:9100",
            "[::1]:9100",
            "localhost",
            "admin.example.evil",
            "127.0.0.1:99999",
        ] {
            assert_eq!(
                status(&g, &format!("GET /stats HTTP/1.1\nHost: {bad}\n\n")),
                421,
                "{bad}"
            );
        }
        // The authority of an absolute-form target is the host.
        assert_eq!(
            status(
                &g,
                "GET http://evil.example/stats HTTP/1.1\nHost: 127.0.0.1:9100\n\n"
            ),
            421
        );
        assert_eq!(status(&g, "GET /stats HTTP/1.0\n\n"), 0);

        let v6 = guard("[::1]:80", None, &[]);
        for ok in ["[::1]", "[::1]:80", "localhost", "[0:0:0:0:0:0:0:1]"] {
            assert_eq!(status(&v6, &format!("GET / HTTP/1.1\nHost: {ok}\n\n")), 0, "{ok}");
        }
        assert_eq!(status(&v6, "GET / HTTP/1.1\nHost: 127.0.0.1\n\n"), 421);

        let any = guard("0.0.0.0:9100", Some("0123456789abcdef"), &[]);
        assert_eq!(status(&any, "GET / HTTP/1.1\nHost: 192.0.2.7:9100\n\n"), 0);
        assert_eq!(status(&any, "GET / HTTP/1.1\nHost: 192.0.2.7:80\n\n"), 421);
        assert_eq!(
            status(&any, "GET / HTTP/1.1\nHost: rebound.example:9100\n\n"),
            421
        );
    }

    #[test]
    fn validation() {
        let sec = |hosts: &[&str]| AdminSecurity {
            token: None,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        };
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(sec(&["a.example", "127.0.0.1", "[::1]"]).validate(lo).is_ok());
        for bad in ["", "a.example:80", "a b", "[nope]", "*.example"] {
            assert!(
                matches!(sec(&[bad]).validate(lo), Err(AdminError::BadHost(_))),
                "{bad}"
            );
        }
        for addr in ["0.0.0.0:1", "[::]:1", "192.0.2.1:1", "[::ffff:192.0.2.1]:1"] {
            assert!(
                matches!(
                    sec(&[]).validate(addr.parse().unwrap()),
                    Err(AdminError::TokenRequired(_))
                ),
                "{addr}"
            );
        }
        for addr in ["127.0.0.1:1", "127.1.2.3:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
            assert!(sec(&[]).validate(addr.parse().unwrap()).is_ok(), "{addr}");
        }
    }

    #[test]
    fn origins_and_body_types() {
        let g = guard("127.0.0.1:9100", None, &[]);
        let post = |extra: &str| {
            status(
                &g,
                &format!("POST /backends/127.0.0.1:1/drain HTTP/1.1\nHost: 127.0.0.1:9100\n{extra}\n"),
            )
        };
        assert_eq!(post(""), 0);
        assert_eq!(
            post("Origin: http://127.0.0.1:9100\nSec-Fetch-Site: same-origin\n"),
            0
        );
        assert_eq!(post("Sec-Fetch-Site: none\n"), 0);
        assert_eq!(post("Origin: https://127.0.0.1:9100\n"), 0);
        assert_eq!(post("Origin: http://evil.example\n"), 403);
        assert_eq!(post("Origin: http://127.0.0.1:9101\n"), 403);
        assert_eq!(post("Origin: http://127.0.0.1:9100.evil.example\n"), 403);
        assert_eq!(post("Origin: null\n"), 403);
        assert_eq!(
            post("Origin: http://127.0.0.1:9100\nOrigin: http://evil.example\n"),
            403
        );
        assert_eq!(post("Sec-Fetch-Site: cross-site\n"), 403);
        assert_eq!(post("Sec-Fetch-Site: same-site\n"), 403);
        assert_eq!(post("Content-Type: text/plain\n"), 415);
        assert_eq!(post("Content-Type: application/x-www-form-urlencoded\n"), 415);
        assert_eq!(post("Content-Type: multipart/form-data; boundary=x\n"), 415);
        assert_eq!(post("Content-Length: 2\n"), 415);
        assert_eq!(post("Transfer-Encoding: chunked\n"), 415);
        assert_eq!(post("Content-Length: 0\n"), 0);
        assert_eq!(
            post("Content-Type: Application/JSON; charset=utf-8\nContent-Length: 2\n"),
            0
        );
        // Reads are not commands.
        assert_eq!(
            status(
                &g,
                "GET /stats HTTP/1.1\nHost: 127.0.0.1:9100\nOrigin: http://evil.example\n\n"
            ),
            0
        );
    }

    #[test]
    fn bearer_tokens() {
        let g = guard("127.0.0.1:9100", Some("0123456789abcdef"), &[]);
        let get = |path: &str, extra: &str| {
            status(
                &g,
                &format!("GET {path} HTTP/1.1\nHost: 127.0.0.1:9100\n{extra}\n"),
            )
        };
        assert_eq!(get("/", ""), 0, "the page shell");
        assert_eq!(get("/stats", ""), 401);
        assert_eq!(get("/stats", "Authorization: Bearer 0123456789abcdeX\n"), 401);
        assert_eq!(get("/stats", "Authorization: Basic 0123456789abcdef\n"), 401);
        assert_eq!(get("/stats", "Authorization: Bearer\n"), 401);
        assert_eq!(get("/stats", "Authorization: Bearer 0123456789abcdef\n"), 0);
        assert_eq!(get("/stats", "Authorization: bearer   0123456789abcdef\n"), 0);
        let r = g
            .check(&head("GET /metrics HTTP/1.1\nHost: 127.0.0.1:9100\n\n"))
            .unwrap();
        assert!(r
            .headers()
            .any(|(n, v)| n.eq_ignore_ascii_case("www-authenticate") && v.starts_with(b"Bearer")));
        assert_eq!(
            status(&g, "POST / HTTP/1.1\nHost: 127.0.0.1:9100\n\n"),
            401,
            "only GET / is open"
        );
    }
}
