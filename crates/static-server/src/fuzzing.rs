//! Entry points for the fuzz targets in `fuzz/` and the corpus replay test; not a
//! stable API. Each function runs one private parser on arbitrary input and panics
//! if a result breaks an invariant the rest of the server relies on.

use std::path::Path;
use std::time::SystemTime;

use http_core::RequestHead;

use crate::conditional::{self, Precondition};
use crate::path::{self, PathError};
use crate::range::{self, RangeRequest, MAX_RANGES};
use crate::resolve::{self, Found, SymlinkPolicy};

/// `Range: value` on a representation of `len` bytes: every range answered lies in
/// the representation, is ordered, and the ranges neither overlap nor touch.
pub fn check_range(value: &[u8], len: u64) {
    match range::parse(value, len) {
        RangeRequest::Full => {}
        RangeRequest::Unsatisfiable => assert!(!value.is_empty()),
        RangeRequest::Ranges(ranges) => {
            assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES, "{ranges:?}");
            for &(s, e) in &ranges {
                assert!(s <= e && e < len, "range {s}-{e} of {len}");
            }
            let mut sorted = ranges.clone();
            sorted.sort_unstable();
            for w in sorted.windows(2) {
                assert!(w[1].0 > w[0].1.saturating_add(1), "not coalesced: {ranges:?}");
            }
        }
    }
}

/// The `If-*` headers of `head` against a representation with `etag` and `modified`.
pub fn check_conditional(head: &RequestHead, etag: &[u8], modified: SystemTime) {
    let fields = conditional::Fields::of(head);
    let pre = conditional::evaluate(&fields, etag, modified);
    let none = [
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
    ]
    .iter()
    .all(|h| head.header(h).is_none());
    if none {
        assert_eq!(pre, Precondition::Proceed);
    }
    let allows = conditional::if_range_allows(&fields, etag, modified);
    if head.header("if-range").is_none() {
        assert!(allows);
    }
}

/// Decodes and checks a request path, then resolves it under `root` (canonical):
/// no component can climb out, the redirect location stays on this host and
/// decodes back to the same path, and whatever is found lies under `root`.
pub fn check_path(raw: &str, allow_dotfiles: bool, root: &Path) {
    let safe = match path::sanitize(raw, allow_dotfiles) {
        Ok(p) => p,
        Err(PathError::BadRequest | PathError::Hidden) => return,
    };
    for seg in &safe.segments {
        assert!(
            !seg.is_empty() && seg != "." && seg != "..",
            "{seg:?} from {raw:?}"
        );
        assert!(
            !seg.contains('/') && !seg.contains('\\') && !seg.contains('\0'),
            "{seg:?}"
        );
        assert!(
            allow_dotfiles || !seg.starts_with('.') || seg == ".well-known",
            "{seg:?}"
        );
    }
    let location = safe.to_url_path(safe.trailing_slash);
    assert!(
        location.starts_with('/') && !location.starts_with("//"),
        "{location:?}"
    );
    let again = path::sanitize(&location, allow_dotfiles).expect("a location we write is a valid path");
    assert_eq!(again.segments, safe.segments);
    let segs = resolve::segments(&safe);
    for policy in [SymlinkPolicy::WithinRoot, SymlinkPolicy::Never] {
        if let Ok(Found::File { path, .. } | Found::Dir { path }) =
            resolve::find(root, &segs, policy, allow_dotfiles)
        {
            assert!(path.starts_with(root), "{raw:?} resolved to {}", path.display());
        }
    }
}
