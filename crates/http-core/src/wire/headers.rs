//! Zero-copy views of header fields: names and values are spans into the head's buffer.

/// A byte range inside a head buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part`, a sub-slice of `base`.
    pub(crate) fn of(base: &[u8], part: &[u8]) -> Span {
        // Both are slices of the same buffer handed out by httparse, so the
        // difference of their addresses is the offset. Heads are bounded by
        // `Limits::max_head_len`, far below `u32::MAX`.
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// One header line: the spans of its name and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// Iterator over the header lines of a head, in order, as `(name, value)`.
///
/// Names keep the case the peer sent; compare them with `eq_ignore_ascii_case`.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    buf: &'a [u8],
    spans: std::slice::Iter<'a, HeaderSpan>,
}

impl<'a> HeaderIter<'a> {
    pub(crate) fn new(buf: &'a [u8], spans: &'a [HeaderSpan]) -> Self {
        HeaderIter {
            buf,
            spans: spans.iter(),
        }
    }
}

impl<'a> HeaderIter<'a> {
    /// The same lines with names as bytes: for a caller that only compares them,
    /// this skips turning every name into a `&str`.
    pub fn raw(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let buf = self.buf;
        self.spans.map(move |h| (h.name.get(buf), h.value.get(buf)))
    }

    /// The value of the first header named `name` (ASCII case-insensitive),
    /// compared as bytes: no name is turned into a `&str` on the way.
    pub(crate) fn find_value(self, name: &str) -> Option<&'a [u8]> {
        self.raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let h = self.spans.next()?;
        // Names were checked to be tokens (ASCII) by the parser.
        let name = std::str::from_utf8(h.name.get(self.buf)).unwrap_or_default();
        Some((name, h.value.get(self.buf)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

/// Calls `f` with each token of a comma-separated list (RFC 9110 §5.6.1),
/// trimmed of whitespace, skipping empty elements.
pub fn for_each_token(value: &[u8], mut f: impl FnMut(&[u8])) {
    for element in value.split(|&b| b == b',') {
        let t = super::framing::trim_ows(element);
        if !t.is_empty() {
            f(t);
        }
    }
}

/// True when the comma-separated list `value` contains `token` (ASCII case-insensitive).
///
/// ```
/// assert!(http_core::list_contains(b"keep-alive, Upgrade", b"upgrade"));
/// assert!(!http_core::list_contains(b"keep-alive", b"close"));
/// ```
pub fn list_contains(value: &[u8], token: &[u8]) -> bool {
    let mut found = false;
    for_each_token(value, |t| found |= t.eq_ignore_ascii_case(token));
    found
}

/// The hop-by-hop header fields of RFC 9110 §7.6.1 that a proxy never forwards
/// (besides every field the `Connection` header names).
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// True when `name` is one of [`HOP_BY_HOP`] (ASCII case-insensitive).
///
/// ```
/// assert!(http_core::is_hop_by_hop("Keep-Alive"));
/// assert!(!http_core::is_hop_by_hop("Content-Type"));
/// ```
pub fn is_hop_by_hop(name: impl AsRef<[u8]>) -> bool {
    let name = name.as_ref();
    HOP_BY_HOP.iter().any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let mut seen = Vec::new();
        for_each_token(b" close ,, Keep-Alive,\tfoo ", |t| seen.push(t.to_vec()));
        assert_eq!(
            seen,
            vec![b"close".to_vec(), b"Keep-Alive".to_vec(), b"foo".to_vec()]
        );
        assert!(list_contains(b"a, CLOSE", b"close"));
        assert!(!list_contains(b"closed", b"close"));
    }
}
