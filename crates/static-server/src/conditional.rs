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

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`
/// against the representation's strong `etag` and modification time.
pub(crate) fn evaluate(head: &RequestHead, etag: &[u8], modified: SystemTime) -> Precondition {
    let modified_secs = unix_secs(modified);
    if let Some(v) = head.header("if-match") {
        if !list_matches(v, etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(since) = head.header("if-unmodified-since").and_then(parse_date) {
        if modified_secs > since {
            return Precondition::Failed;
        }
    }
    if let Some(v) = head.header("if-none-match") {
        if list_matches(v, etag, false) {
            // Only GET and HEAD reach here (the server refuses other methods).
            return Precondition::NotModified;
        }
    } else if let Some(since) = head.header("if-modified-since").and_then(parse_date) {
        if modified_secs <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// `If-Range`: the range applies only if the validator still matches (a strong
/// entity-tag, or the exact Last-Modified date).
pub(crate) fn if_range_allows(head: &RequestHead, etag: &[u8], modified: SystemTime) -> bool {
    let Some(v) = head.header("if-range") else {
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

    fn head(extra: &str) -> RequestHead {
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        RequestHead::parse_complete(Bytes::from(raw), &Limits::default()).unwrap()
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
