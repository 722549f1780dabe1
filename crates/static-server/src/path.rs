//! From a request path to a relative file path that cannot leave the root.
//!
//! The path is percent-decoded exactly once, then split, then every component is
//! checked. Decoding before splitting means `%2F` cannot smuggle a separator past
//! the checks, and decoding only once means `%252e` stays the literal name `%2e`.

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// Malformed: bad escape, invalid UTF-8, NUL or control byte, backslash,
    /// `..`, a drive prefix. Answered with 400.
    BadRequest,
    /// A hidden (dot) file or directory. Answered with 404, as if absent.
    Hidden,
}

/// A checked request path: decoded components, none of them empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SafePath {
    pub segments: Vec<String>,
    /// The request path ended with `/` (a directory was asked for).
    pub trailing_slash: bool,
}

impl SafePath {
    /// The path re-encoded for a `Location` header: always one leading `/`, so it
    /// can never become a protocol-relative `//host` redirect.
    pub fn to_url_path(&self, trailing_slash: bool) -> String {
        let mut out = String::with_capacity(64);
        for s in &self.segments {
            out.push('/');
            out.extend(percent_encoding::utf8_percent_encode(s, SEGMENT));
        }
        if trailing_slash || self.segments.is_empty() {
            out.push('/');
        }
        out
    }
}

/// Characters escaped in a path segment we write (RFC 3986 pchar complement, plus `%`).
pub(crate) const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Decodes and checks `raw` (the path of the target, without query).
pub(crate) fn sanitize(raw: &str, allow_dotfiles: bool) -> Result<SafePath, PathError> {
    let decoded = percent_decode_strict(raw.as_bytes())?;
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::BadRequest)?;
    if !decoded.starts_with('/') {
        return Err(PathError::BadRequest);
    }
    let mut segments = Vec::new();
    let mut hidden = false;
    for seg in decoded.split('/') {
        if seg.is_empty() || seg == "." {
            continue;
        }
        if is_bad_segment(seg) {
            return Err(PathError::BadRequest);
        }
        if is_hidden(segments.len(), seg.as_bytes()) {
            hidden = true;
        }
        segments.push(seg.to_owned());
    }
    if hidden && !allow_dotfiles {
        return Err(PathError::Hidden);
    }
    Ok(SafePath {
        segments,
        trailing_slash: decoded.ends_with('/'),
    })
}

/// A file named in the configuration (a fallback or an error page) as a path
/// under the root, `index.html` or `/errors/404.html`: not percent-decoded,
/// checked as a request path is, and refused when it is or passes through a
/// dot name (whatever the dotfile setting: such pages are never dotfiles).
pub(crate) fn check_configured(rel: &str) -> Result<Vec<String>, PathError> {
    let mut segments = Vec::new();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." {
            continue;
        }
        if is_bad_segment(seg) {
            return Err(PathError::BadRequest);
        }
        if is_hidden(segments.len(), seg.as_bytes()) {
            return Err(PathError::Hidden);
        }
        segments.push(seg.to_owned());
    }
    if segments.is_empty() || rel.ends_with('/') {
        return Err(PathError::BadRequest);
    }
    Ok(segments)
}

/// `..`, a backslash, a control byte, a drive prefix: never a valid component.
fn is_bad_segment(seg: &str) -> bool {
    seg == ".." || seg.contains('\\') || seg.bytes().any(|b| b < 0x20 || b == 0x7f) || is_drive(seg)
}

/// Whether the component at `index` (0: directly under the root) of a path is
/// hidden: a dot name, except `.well-known` directly under the root. The one rule
/// for request paths and for where their links lead.
pub(crate) fn is_hidden(index: usize, seg: &[u8]) -> bool {
    seg.starts_with(b".") && !(index == 0 && seg == b".well-known")
}

/// `c:` and the like: meaningless on Unix, an escape on Windows.
fn is_drive(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Percent-decoding that refuses `%` not followed by two hex digits.
fn percent_decode_strict(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = raw.get(i + 1).and_then(|&c| (c as char).to_digit(16));
            let lo = raw.get(i + 2).and_then(|&c| (c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(PathError::BadRequest),
            }
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(raw: &str) -> Result<Vec<String>, PathError> {
        sanitize(raw, false).map(|p| p.segments)
    }

    #[test]
    fn path_table() {
        let ok: &[(&str, &[&str])] = &[
            ("/", &[]),
            ("/page.html", &["page.html"]),
            ("/a/b/", &["a", "b"]),
            ("//a//b", &["a", "b"]),
            ("/./a", &["a"]),
            ("/a%20b", &["a b"]),
            ("/%252e%252e", &["%2e%2e"]),
            ("/caf%C3%A9", &["café"]),
            ("/.well-known/x", &[".well-known", "x"]),
            ("/a..b", &["a..b"]),
        ];
        for (raw, want) in ok {
            assert_eq!(
                segs(raw),
                Ok(want.iter().map(|s| s.to_string()).collect()),
                "{raw}"
            );
        }
        let bad: &[(&str, PathError)] = &[
            ("/..", PathError::BadRequest),
            ("/../etc/passwd", PathError::BadRequest),
            ("/%2e%2e/x", PathError::BadRequest),
            ("/.%2e/x", PathError::BadRequest),
            ("/a%2f..%2fb", PathError::BadRequest),
            ("/a%5c..%5cb", PathError::BadRequest),
            ("/a\\b", PathError::BadRequest),
            ("/%00", PathError::BadRequest),
            ("/a%0a", PathError::BadRequest),
            ("/%", PathError::BadRequest),
            ("/%zz", PathError::BadRequest),
            ("/%c0%ae%c0%ae", PathError::BadRequest),
            ("/x/c:/windows/win.ini", PathError::BadRequest),
            ("/C:", PathError::BadRequest),
            ("/.git/config", PathError::Hidden),
            ("/a/.env", PathError::Hidden),
            // `...` is not `..`, but it starts with a dot: hidden like any dotfile
            // (this row used to expect it served, contradicting the dotfile rule).
            ("/...", PathError::Hidden),
            ("/.well-known/.x", PathError::Hidden),
            ("/a/.well-known/x", PathError::Hidden),
            ("relative", PathError::BadRequest),
        ];
        for (raw, want) in bad {
            assert_eq!(segs(raw), Err(*want), "{raw}");
        }
        assert!(sanitize("/.env", true).is_ok());
        assert_eq!(
            sanitize("/...", true).map(|p| p.segments),
            Ok(vec!["...".to_owned()])
        );
    }

    #[test]
    fn configured_paths() {
        let v = |s: &[&str]| Ok(s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(check_configured("index.html"), v(&["index.html"]));
        assert_eq!(check_configured("/errors//404.html"), v(&["errors", "404.html"]));
        assert_eq!(check_configured("./a%20b.html"), v(&["a%20b.html"]));
        assert_eq!(check_configured(".well-known/x"), v(&[".well-known", "x"]));
        for bad in ["", "/", "..", "../x", "a/../../x", "a\\b", "a\0b", "c:/x", "dir/"] {
            assert_eq!(check_configured(bad), Err(PathError::BadRequest), "{bad:?}");
        }
        for hidden in [".env", ".git/config", "a/.well-known/x", "a/.x/y"] {
            assert_eq!(check_configured(hidden), Err(PathError::Hidden), "{hidden:?}");
        }
    }

    #[test]
    fn location_is_never_protocol_relative() {
        let p = sanitize("//evil.com", false).unwrap();
        assert_eq!(p.to_url_path(true), "/evil.com/");
        let p = sanitize("/a%20b/c%3Fd", false).unwrap();
        assert_eq!(p.to_url_path(false), "/a%20b/c%3Fd");
        assert_eq!(sanitize("/", false).unwrap().to_url_path(false), "/");
    }
}
