//! Sticky sessions by cookie: the proxy names the backend that answered in a
//! cookie of its own, and a client that sends it back goes to the same backend
//! while that backend is eligible.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;

use super::{Pick, PickRequest, RoundRobin, Strategy};
use crate::{Backend, StrategyError};

/// The name of the cookie [`StickyCookie`] sets: an RFC 6265 token of 1 to 64
/// bytes. Default `rr_backend`.
///
/// ```
/// use rr_proxy::CookieName;
///
/// assert_eq!(CookieName::default().as_str(), "rr_backend");
/// assert!("SERVERID".parse::<CookieName>().is_ok());
/// assert!("a b".parse::<CookieName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CookieName(Box<str>);

impl CookieName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CookieName {
    fn default() -> Self {
        CookieName("rr_backend".into())
    }
}

impl FromStr for CookieName {
    type Err = StrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(is_tchar) {
            return Err(StrategyError::BadCookieName(s.to_owned()));
        }
        Ok(CookieName(s.into()))
    }
}

impl fmt::Display for CookieName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sticky sessions: a client that sends back the proxy's cookie goes to the
/// backend it names, as long as that backend is eligible; every other request
/// goes to [`RoundRobin`]'s choice (weights honoured), and its response sets
/// the cookie.
///
/// - **The cookie.** `Set-Cookie: NAME=VALUE; Path=/; HttpOnly; SameSite=Lax`,
///   a session cookie (no `Max-Age`), added beside any cookie the backend sets.
///   VALUE is [`Backend::key`] as 16 lowercase hex digits: a hash of the
///   backend's `IP:PORT`, the same after a restart and in every proxy in front
///   of the same backends, so neither a restart nor a second proxy moves a
///   client. It does not show the address, but it is no secret either: whoever
///   can guess the backends' addresses can compute it. `Secure` is not added:
///   the proxy serves plain HTTP (with TLS in front, a cookie over plain HTTP
///   between that and the proxy is what is wanted).
/// - **When it is set.** On a response whose request carried no valid cookie,
///   or one naming another backend than the one that answered: a backend that
///   was drained, ejected, failed its health checks or was removed, or one
///   that failed this very request (a retry goes elsewhere as with any
///   strategy, and the cookie follows the backend that answered). A client
///   whose cookie named the backend that answered gets no `Set-Cookie`.
/// - **Reading it.** Every `Cookie` header line, each split at `;` into
///   `name=value` pairs (RFC 6265 §4.2.1; spaces around a pair are allowed);
///   the first pair with this name whose value is 16 hex digits (optionally in
///   double quotes) counts, anything else under the name is ignored (as if
///   absent). The `Cookie` header goes on to the backend unchanged.
///
/// A request pinned by a hook ([`Peer::Backend`](crate::Peer::Backend)) sets
/// no cookie; one picked with
/// [`Candidates::pick_where`](crate::Candidates::pick_where) does.
///
/// ```
/// use rr_proxy::{Proxy, StickyCookie};
///
/// let proxy = Proxy::builder()
///     .backend("127.0.0.1:9002".parse().unwrap(), 1)
///     .backend("127.0.0.1:9003".parse().unwrap(), 1)
///     .strategy(StickyCookie::new("SERVERID".parse().unwrap()))
///     .build()
///     .unwrap();
/// assert_eq!(proxy.handle().stats().strategy, "sticky-cookie");
/// ```
#[derive(Debug)]
pub struct StickyCookie {
    name: CookieName,
    fallback: RoundRobin,
}

impl Default for StickyCookie {
    fn default() -> Self {
        StickyCookie::new(CookieName::default())
    }
}

impl StickyCookie {
    /// Sticky sessions with a cookie called `name`.
    pub fn new(name: CookieName) -> Self {
        StickyCookie {
            name,
            fallback: RoundRobin::new(),
        }
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &CookieName {
        &self.name
    }

    /// The cookie's value for `backend`: its [`Backend::key`] as 16 lowercase
    /// hex digits.
    pub fn cookie_value(backend: &Backend) -> String {
        format!("{:016x}", backend.key())
    }

    /// The backend key the client's cookie holds, if it holds a valid one.
    fn client_key(&self, req: &PickRequest<'_>) -> Option<u64> {
        find_key(req.header_values("cookie"), self.name.as_str().as_bytes())
    }
}

impl Strategy for StickyCookie {
    fn pick(&self, candidates: &[Arc<Backend>]) -> usize {
        self.fallback.pick(candidates)
    }

    fn pick_for(&self, candidates: &[Arc<Backend>], req: &PickRequest<'_>) -> Pick {
        let pinned = self
            .client_key(req)
            .and_then(|key| candidates.iter().position(|b| b.key() == key));
        Pick::new(pinned.unwrap_or_else(|| self.fallback.pick(candidates))).with_response_header()
    }

    fn response_header(&self, req: &PickRequest<'_>, backend: &Backend) -> Option<(&str, Bytes)> {
        if self.client_key(req) == Some(backend.key()) {
            return None;
        }
        let value = format!(
            "{}={:016x}; Path=/; HttpOnly; SameSite=Lax",
            self.name,
            backend.key()
        );
        Some(("Set-Cookie", Bytes::from(value)))
    }

    fn name(&self) -> &str {
        "sticky-cookie"
    }
}

/// A token character (RFC 9110 §5.6.2), as cookie names are.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The first valid backend key under cookie `name` in `lines` (the values of
/// every `Cookie` header line, in order).
pub(crate) fn find_key<'a>(lines: impl IntoIterator<Item = &'a [u8]>, name: &[u8]) -> Option<u64> {
    lines
        .into_iter()
        .flat_map(|line| line.split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = trim(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq] == *name).then(|| &pair[eq + 1..])
        })
        .find_map(parse_key)
}

/// Spaces and tabs removed from both ends.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// 16 hex digits (either case), optionally in double quotes, as a key.
fn parse_key(value: &[u8]) -> Option<u64> {
    let value = match value {
        [b'"', inner @ .., b'"'] => inner,
        v => v,
    };
    if value.len() != 16 {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some(acc << 4 | u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "00c0ffee12345678";
    const KEY: u64 = 0x00c0_ffee_1234_5678;

    fn key_of(lines: &[&str]) -> Option<u64> {
        find_key(lines.iter().map(|l| l.as_bytes()), b"rr_backend")
    }

    #[test]
    fn cookie_header_table() {
        let table: &[(&[&str], Option<u64>, &str)] = &[
            (&["rr_backend=00c0ffee12345678"], Some(KEY), "alone"),
            (
                &["a=1; rr_backend=00c0ffee12345678; b=2"],
                Some(KEY),
                "among others",
            ),
            (
                &["a=1;rr_backend=00c0ffee12345678"],
                Some(KEY),
                "no space after ;",
            ),
            (
                &["a=1 ;  rr_backend=00c0ffee12345678 "],
                Some(KEY),
                "extra spaces",
            ),
            (&["rr_backend=\"00c0ffee12345678\""], Some(KEY), "quoted"),
            (&["rr_backend=00C0FFEE12345678"], Some(KEY), "upper case"),
            (
                &["a=1", "rr_backend=00c0ffee12345678"],
                Some(KEY),
                "second header line",
            ),
            (
                &["rr_backend=zz", "rr_backend=00c0ffee12345678"],
                Some(KEY),
                "garbage first, valid later",
            ),
            (
                &["rr_backend=00c0ffee12345678; rr_backend=0000000000000001"],
                Some(KEY),
                "first valid wins",
            ),
            (&[], None, "no Cookie header"),
            (&[""], None, "empty header"),
            (&["a=1; b=2"], None, "other cookies only"),
            (&["rr_backend="], None, "empty value"),
            (&["rr_backend=00c0ffee1234567"], None, "15 digits"),
            (&["rr_backend=00c0ffee123456789"], None, "17 digits"),
            (&["rr_backend=00c0ffee1234567g"], None, "not hex"),
            (&["rr_backend=+0c0ffee12345678"], None, "a sign"),
            (&["rr_backend=\"00c0ffee12345678"], None, "unbalanced quote"),
            (&["rr_backend 00c0ffee12345678"], None, "no ="),
            (&["RR_BACKEND=00c0ffee12345678"], None, "names are case-sensitive"),
            (&["xrr_backend=00c0ffee12345678"], None, "longer name"),
            (&["rr_backend =00c0ffee12345678"], None, "space before ="),
            (&["rr_backend=00c0ffee 12345678"], None, "space inside"),
            (&["; ; ;"], None, "only separators"),
        ];
        for (lines, want, why) in table {
            assert_eq!(key_of(lines), *want, "{why}: {lines:?}");
        }
        assert_eq!(parse_key(K.as_bytes()), Some(KEY));
    }

    fn backends(n: usize) -> Vec<Arc<Backend>> {
        (0..n)
            .map(|i| {
                Arc::new(Backend::new(
                    i as u64,
                    format!("10.0.0.{}:80", i + 1).parse().unwrap(),
                    1,
                ))
            })
            .collect()
    }

    fn head(cookie: Option<&str>) -> http_core::RequestHead {
        let mut raw = "GET / HTTP/1.1\r\nHost: a\r\n".to_owned();
        if let Some(c) = cookie {
            raw.push_str(&format!("Cookie: {c}\r\n"));
        }
        raw.push_str("\r\n");
        http_core::RequestHead::parse_complete(bytes::Bytes::from(raw), &Default::default()).unwrap()
    }

    #[test]
    fn the_cookie_pins_while_the_backend_is_a_candidate() {
        let bs = backends(3);
        let s = StickyCookie::default();
        let cookie = format!("x=1; rr_backend={}", StickyCookie::cookie_value(&bs[2]));
        let pinned = head(Some(&cookie));
        let req = PickRequest::new(&pinned, None);
        for _ in 0..10 {
            assert_eq!(s.pick_for(&bs, &req), Pick::new(2).with_response_header());
        }
        // Named backend answered: no new cookie; another answered: its cookie.
        assert_eq!(s.response_header(&req, &bs[2]), None);
        let (name, value) = s.response_header(&req, &bs[0]).unwrap();
        assert_eq!(name, "Set-Cookie");
        assert_eq!(
            value,
            format!("rr_backend={:016x}; Path=/; HttpOnly; SameSite=Lax", bs[0].key()).as_bytes()
        );
        // The named backend is gone (drained, down, removed): round-robin among the rest.
        let rest = &bs[..2];
        let picks: Vec<usize> = (0..4).map(|_| s.pick_for(rest, &req).index).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        // No cookie, or garbage: round-robin, and a cookie for whoever answers.
        for h in [head(None), head(Some("rr_backend=nonsense"))] {
            let req = PickRequest::new(&h, None);
            assert!(s.pick_for(&bs, &req).response_header);
            assert!(s.response_header(&req, &bs[1]).is_some());
        }
    }

    #[test]
    fn cookie_values_are_stable_and_distinct() {
        let a = backends(4);
        let b = backends(4);
        for (x, y) in a.iter().zip(&b) {
            // Another proxy (or a restart) with the same backends: the same values.
            assert_eq!(StickyCookie::cookie_value(x), StickyCookie::cookie_value(y));
            assert_eq!(StickyCookie::cookie_value(x).len(), 16);
        }
        let mut values: Vec<String> = a.iter().map(|b| StickyCookie::cookie_value(b)).collect();
        values.dedup();
        assert_eq!(values.len(), 4);
        assert!(!values[0].contains("10.0.0"));
    }

    #[test]
    fn cookie_names_are_tokens() {
        for good in ["rr_backend", "SERVERID", "a", "x-y.z~1"] {
            assert_eq!(good.parse::<CookieName>().unwrap().as_str(), good);
        }
        for bad in ["", "a b", "a=b", "a;b", "a\"b", "ä", &"x".repeat(65)] {
            assert!(bad.parse::<CookieName>().is_err(), "{bad:?}");
        }
    }
}
