//! Validators and conditional requests (RFC 9110 §8.8, §13).

use std::time::SystemTime;

use http_core::RequestHead;

/// What the preconditions of a request decide (RFC 9110 §13.2.2, in that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Serve the representation (possibly a range of it).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The request headers a file answer depends on, found in one pass over the
/// head (the first of each name counts, as `RequestHead::header` would find).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fields<'a> {
    pub if_match: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    pub accept_encoding: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// One walk over the headers instead of a search per name: names are told
    /// apart by length first, so most headers cost one comparison.
    pub fn of(head: &'a RequestHead) -> Fields<'a> {
        let mut f = Fields::default();
        for (name, value) in head.headers().raw() {
            let slot = match name.len() {
                5 if name.eq_ignore_ascii_case(b"range") => &mut f.range,
                8 if name.eq_ignore_ascii_case(b"if-match") => &mut f.if_match,
                8 if name.eq_ignore_ascii_case(b"if-range") => &mut f.if_range,
                13 if name.eq_ignore_ascii_case(b"if-none-match") => &mut f.if_none_match,
                15 if name.eq_ignore_ascii_case(b"accept-encoding") => &mut f.accept_encoding,
                17 if name.eq_ignore_ascii_case(b"if-modified-since") => &mut f.if_modified_since,
                19 if name.eq_ignore_ascii_case(b"if-unmodified-since") => &mut f.if_unmodified_since,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        f
    }
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`
/// against the representation's strong `etag` and modification time.
pub(crate) fn evaluate(head: &Fields<'_>, etag: &[u8], modified: SystemTime) -> Precondition {
    if head.if_match.is_none()
        && head.if_none_match.is_none()
        && head.if_modified_since.is_none()
        && head.if_unmodified_since.is_none()
    {
        return Precondition::Proceed;
    }
    let modified_secs = unix_secs(modified);
    if let Some(v) = head.if_match {
        if !list_matches(v, etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(since) = head.if_unmodified_since.and_then(parse_date) {
        if modified_secs > since {
            return Precondition::Failed;
        }
    }
    if let Some(v) = head.if_none_match {
        if list_matches(v, etag, false) {
            // Only GET and HEAD reach here (the server refuses other methods).
            return Precondition::NotModified;
        }
    } else if let Some(since) = head.if_modified_since.and_then(parse_date) {
        if modified_secs <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// `If-Range`: the range applies only if the validator still matches (a strong
/// entity-tag, or the exact Last-Modified date).
pub(crate) fn if_range_allows(head: &Fields<'_>, etag: &[u8], modified: SystemTime) -> bool {
    let Some(v) = head.if_range else {
        return true;
    };
    let v = v.trim_ascii();
    if v.starts_with(b"\"") {
        v == etag
    } else if v.starts_with(b"W/") {
        false
    } else {
        parse_date(v).is_some_and(|d| d == unix_secs(modified))
    }
}

/// Does a comma-separated list of entity-tags (or `*`) match `etag`?
/// Strong comparison requires both to be strong; weak ignores the `W/` prefix.
fn list_matches(list: &[u8], etag: &[u8], strong: bool) -> bool {
    let list = list.trim_ascii();
    if list == b"*" {
        return true;
    }
    let mut matched = false;
    for_each_etag(list, |tag| {
        let (weak, opaque) = match tag.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        if opaque == etag && !(strong && weak) {
            matched = true;
        }
    });
    matched
}

/// Splits an entity-tag list; commas inside the quotes of a tag do not split.
fn for_each_etag(list: &[u8], mut f: impl FnMut(&[u8])) {
    let mut i = 0;
    while i < list.len() {
        while i < list.len() && matches!(list[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        let start = i;
        if list[i..].starts_with(b"W/") {
            i += 2;
        }
        if i < list.len() && list[i] == b'"' {
            i += 1;
            while i < list.len() && list[i] != b'"' {
                i += 1;
            }
            i = (i + 1).min(list.len());
        } else {
            while i < list.len() && list[i] != b',' {
                i += 1;
            }
        }
        let tag = list[start..i].trim_ascii();
        if !tag.is_empty() {
            f(tag);
        }
    }
}

fn parse_date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v.trim_ascii()).ok()?;
    httpdate::parse_http_date(s).ok().map(unix_secs)
}

/// Whole seconds since the epoch: HTTP dates have no finer resolution.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_core::Limits;
    use std::time::Duration;

    fn parsed(extra: &str) -> RequestHead {
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        RequestHead::parse_complete(Bytes::from(raw), &Limits::default()).unwrap()
    }

    /// Leaked so the fields can borrow it: a handful of tiny heads per test.
    fn head(extra: &str) -> Fields<'static> {
        Fields::of(Box::leak(Box::new(parsed(extra))))
    }

    #[test]
    fn fields_found_in_one_pass_first_wins() {
        let h = parsed(
            "range: bytes=1-2\r\nIF-MATCH: \"a\"\r\nIf-Range: \"r\"\r\nIf-None-Match: \"n\"\r\n\
             Accept-Encoding: br\r\nAccept-Encoding: gzip\r\nIf-Modified-Since: m\r\n\
             If-Unmodified-Since: u\r\nX-Range: no\r\n",
        );
        let f = Fields::of(&h);
        assert_eq!(f.range, Some(&b"bytes=1-2"[..]));
        assert_eq!(f.if_match, Some(&b"\"a\""[..]));
        assert_eq!(f.if_range, Some(&b"\"r\""[..]));
        assert_eq!(f.if_none_match, Some(&b"\"n\""[..]));
        assert_eq!(f.accept_encoding, Some(&b"br"[..]));
        assert_eq!(f.if_modified_since, Some(&b"m"[..]));
        assert_eq!(f.if_unmodified_since, Some(&b"u"[..]));
        let none = parsed("X-A: 1\r\n");
        let f = Fields::of(&none);
        assert!(f.range.is_none() && f.accept_encoding.is_none() && f.if_match.is_none());
    }

    const ETAG: &[u8] = b"\"abc\"";

    #[test]
    fn preconditions_table() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let at = httpdate::fmt_http_date(t);
        let before = httpdate::fmt_http_date(t - Duration::from_secs(1));
        let cases: Vec<(String, Precondition)> = vec![
            (String::new(), Precondition::Proceed),
            ("If-None-Match: \"abc\"\r\n".into(), Precondition::NotModified),
            ("If-None-Match: W/\"abc\"\r\n".into(), Precondition::NotModified),
            (
                "If-None-Match: \"x\", \"abc\"\r\n".into(),
                Precondition::NotModified,
            ),
            ("If-None-Match: \"x\"\r\n".into(), Precondition::Proceed),
            ("If-None-Match: *\r\n".into(), Precondition::NotModified),
            (format!("If-Modified-Since: {at}\r\n"), Precondition::NotModified),
            (format!("If-Modified-Since: {before}\r\n"), Precondition::Proceed),
            (
                format!("If-None-Match: \"x\"\r\nIf-Modified-Since: {at}\r\n"),
                Precondition::Proceed,
            ),
            ("If-Modified-Since: garbage\r\n".into(), Precondition::Proceed),
            ("If-Match: \"abc\"\r\n".into(), Precondition::Proceed),
            ("If-Match: W/\"abc\"\r\n".into(), Precondition::Failed),
            ("If-Match: \"x\"\r\n".into(), Precondition::Failed),
            ("If-Match: *\r\n".into(), Precondition::Proceed),
            (format!("If-Unmodified-Since: {before}\r\n"), Precondition::Failed),
            (format!("If-Unmodified-Since: {at}\r\n"), Precondition::Proceed),
        ];
        for (h, want) in cases {
            assert_eq!(evaluate(&head(&h), ETAG, t), want, "{h}");
        }
    }

    #[test]
    fn if_range_table() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let at = httpdate::fmt_http_date(t);
        assert!(if_range_allows(&head(""), ETAG, t));
        assert!(if_range_allows(&head("If-Range: \"abc\"\r\n"), ETAG, t));
        assert!(!if_range_allows(&head("If-Range: W/\"abc\"\r\n"), ETAG, t));
        assert!(!if_range_allows(&head("If-Range: \"x\"\r\n"), ETAG, t));
        assert!(if_range_allows(&head(&format!("If-Range: {at}\r\n")), ETAG, t));
        assert!(!if_range_allows(
            &head("If-Range: Sat, 01 Jan 2000 00:00:00 GMT\r\n"),
            ETAG,
            t
        ));
    }
}
