//! Header rules: `GLOB[,GLOB]: Name: value`, extra headers for the files whose
//! path matches. They are applied when a file's entry is built, so they end up in
//! its pre-built header block and cost nothing on a cache hit.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Headers a rule may not set: framing and hop-by-hop headers (the connection
/// driver owns them) and the headers the server derives from the file itself.
const REFUSED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "date",
    "content-range",
    "content-type",
    "content-encoding",
    "etag",
    "last-modified",
    "accept-ranges",
    "vary",
    "x-content-type-options",
];

/// Why a header rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// Not of the form `GLOB[,GLOB]: Name: value`.
    #[error("header rule {0:?}: expected `GLOB[,GLOB]: Name: value`")]
    Form(String),
    /// A glob does not compile.
    #[error("header rule glob {glob:?}: {reason}")]
    Glob {
        /// The glob as given.
        glob: String,
        /// What the glob parser said.
        reason: String,
    },
    /// The header name is not an HTTP token.
    #[error("header rule: invalid header name {0:?}")]
    Name(String),
    /// The value holds CR, LF, NUL or another control character.
    #[error("header rule: invalid value for {0}")]
    Value(String),
    /// A framing, hop-by-hop or file-derived header.
    #[error("header rule: {0} is set by the server and cannot be set by a rule")]
    Refused(String),
}

/// One header rule: a header to add to the answers for the files one of the
/// globs matches. Parse it from `GLOB[,GLOB]: Name: value`:
///
/// - a glob without `/` matches the file name in any directory (`*.css`);
/// - a glob with `/` matches the file's path from the root, with or without the
///   leading `/` (`/assets/**`, `assets/*.js`); `*` and `?` stay within one
///   path segment, `**` crosses them, `{a,b}` and `[ab]` work as usual;
/// - commas outside braces and brackets separate alternatives
///   (`*.css,*.js`); matching is case-sensitive;
/// - the glob ends at the first `:`, so a glob cannot contain one;
/// - the name must be a valid header name and the value non-empty, without
///   control characters; framing and hop-by-hop headers (`Content-Length`,
///   `Transfer-Encoding`, `Connection`, `Content-Range`, ...) and those the
///   server derives from the file (`Content-Type`, `ETag`, `Last-Modified`,
///   `Vary`, ...) are refused.
///
/// ```
/// use static_server::HeaderRule;
/// let rule: HeaderRule = "*.css,*.js: Cache-Control: public, max-age=31536000, immutable"
///     .parse()
///     .unwrap();
/// assert_eq!(rule.name(), "Cache-Control");
/// assert!("*.css: Content-Length: 5".parse::<HeaderRule>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    globs: Vec<String>,
    name: String,
    value: String,
}

impl HeaderRule {
    /// A rule from its parts: `globs` as in the rule's text (`*.css,*.js`).
    pub fn new(globs: &str, name: &str, value: &str) -> Result<HeaderRule, RuleError> {
        let form = || RuleError::Form(format!("{globs}: {name}: {value}"));
        let patterns = split_globs(globs);
        if patterns.is_empty() {
            return Err(form());
        }
        for p in &patterns {
            compile(p)?;
        }
        let name = name.trim();
        let value = value.trim_matches([' ', '\t']);
        if name.is_empty() || value.is_empty() {
            return Err(form());
        }
        if !name.bytes().all(is_tchar) {
            return Err(RuleError::Name(name.to_owned()));
        }
        if REFUSED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(RuleError::Refused(name.to_owned()));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(RuleError::Value(name.to_owned()));
        }
        Ok(HeaderRule {
            globs: patterns,
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The globs, one per alternative.
    pub fn globs(&self) -> &[String] {
        &self.globs
    }

    /// The header name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl FromStr for HeaderRule {
    type Err = RuleError;

    /// Parses `GLOB[,GLOB]: Name: value`.
    fn from_str(s: &str) -> Result<HeaderRule, RuleError> {
        let form = || RuleError::Form(s.to_owned());
        let (globs, rest) = s.split_once(':').ok_or_else(form)?;
        let (name, value) = rest.split_once(':').ok_or_else(form)?;
        HeaderRule::new(globs.trim(), name, value)
    }
}

impl fmt::Display for HeaderRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.globs.join(","), self.name, self.value)
    }
}

/// Splits `a,{b,c},[,]` at the commas outside braces and brackets; empty
/// alternatives are dropped.
fn split_globs(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut braces, mut bracket) = (0usize, false);
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                continue;
            }
            '[' if !bracket => bracket = true,
            ']' if bracket => bracket = false,
            '{' if !bracket => braces += 1,
            '}' if !bracket => braces = braces.saturating_sub(1),
            ',' if braces == 0 && !bracket => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect()
}

/// A glob as matched: against the file name when it has no `/`, else against
/// the path from the root without its leading `/`.
fn compile(pattern: &str) -> Result<Glob, RuleError> {
    let p = pattern.strip_prefix('/').unwrap_or(pattern);
    GlobBuilder::new(p)
        .literal_separator(true)
        .build()
        .map_err(|e| RuleError::Glob {
            glob: pattern.to_owned(),
            reason: e.kind().to_string(),
        })
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The rules of a server, compiled: one set of the globs matched against file
/// names, one of those matched against paths, each glob knowing its rule.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    rules: Vec<HeaderRule>,
    by_name: GlobSet,
    name_rule: Vec<usize>,
    by_path: GlobSet,
    path_rule: Vec<usize>,
}

impl Rules {
    pub fn new(rules: &[HeaderRule]) -> Result<Rules, RuleError> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let (mut name_rule, mut path_rule) = (Vec::new(), Vec::new());
        for (i, r) in rules.iter().enumerate() {
            for g in &r.globs {
                if g.contains('/') {
                    paths.add(compile(g)?);
                    path_rule.push(i);
                } else {
                    names.add(compile(g)?);
                    name_rule.push(i);
                }
            }
        }
        let set = |b: GlobSetBuilder| {
            b.build().map_err(|e| RuleError::Glob {
                glob: String::new(),
                reason: e.to_string(),
            })
        };
        Ok(Rules {
            rules: rules.to_vec(),
            by_name: set(names)?,
            name_rule,
            by_path: set(paths)?,
            path_rule,
        })
    }

    /// `common` with the rules matching the file at `segs` (its path under the
    /// root) applied in order, each replacing any earlier header of its name.
    pub fn apply<'a>(&self, segs: &[&str], common: &'a [(String, String)]) -> Cow<'a, [(String, String)]> {
        if self.rules.is_empty() {
            return Cow::Borrowed(common);
        }
        let Some(file) = segs.last() else {
            return Cow::Borrowed(common);
        };
        let mut hit: Vec<usize> = self
            .by_name
            .matches(file)
            .into_iter()
            .map(|g| self.name_rule[g])
            .collect();
        if !self.by_path.is_empty() {
            let path = segs.join("/");
            hit.extend(self.by_path.matches(&path).into_iter().map(|g| self.path_rule[g]));
        }
        if hit.is_empty() {
            return Cow::Borrowed(common);
        }
        hit.sort_unstable();
        hit.dedup();
        let mut out = common.to_vec();
        for i in hit {
            let r = &self.rules[i];
            out.retain(|(n, _)| !n.eq_ignore_ascii_case(&r.name));
            out.push((r.name.clone(), r.value.clone()));
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(texts: &[&str]) -> Rules {
        let parsed: Vec<HeaderRule> = texts.iter().map(|t| t.parse().unwrap()).collect();
        Rules::new(&parsed).unwrap()
    }

    fn headers(r: &Rules, path: &str) -> Vec<(String, String)> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        r.apply(&segs, &[("X-Served-By".to_owned(), "b".to_owned())])
            .into_owned()
    }

    #[test]
    fn parse_table() {
        let ok: &[(&str, &[&str], &str, &str)] = &[
            (
                "*.css: Cache-Control: no-cache",
                &["*.css"],
                "Cache-Control",
                "no-cache",
            ),
            (
                "*.css,*.js: Cache-Control: public, max-age=31536000, immutable",
                &["*.css", "*.js"],
                "Cache-Control",
                "public, max-age=31536000, immutable",
            ),
            ("*.{css,js}:X-A:1", &["*.{css,js}"], "X-A", "1"),
            (
                " /assets/** , a[,]b : X-B :  v  ",
                &["/assets/**", "a[,]b"],
                "X-B",
                "v",
            ),
            ("*: Link: <a:b>; rel=x", &["*"], "Link", "<a:b>; rel=x"),
            ("*.html: X-T: a\tb", &["*.html"], "X-T", "a\tb"),
        ];
        for (text, globs, name, value) in ok {
            let r: HeaderRule = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.globs(), *globs, "{text}");
            assert_eq!((r.name(), r.value()), (*name, *value), "{text}");
            // What Display gives parses back to the same rule.
            assert_eq!(r.to_string().parse::<HeaderRule>().unwrap(), r, "{text}");
        }
        type Check = fn(&RuleError) -> bool;
        let bad: &[(&str, Check)] = &[
            ("", |e| matches!(e, RuleError::Form(_))),
            ("*.css", |e| matches!(e, RuleError::Form(_))),
            ("*.css: Cache-Control", |e| matches!(e, RuleError::Form(_))),
            ("*.css: Cache-Control:", |e| matches!(e, RuleError::Form(_))),
            (": X-A: 1", |e| matches!(e, RuleError::Form(_))),
            (",,: X-A: 1", |e| matches!(e, RuleError::Form(_))),
            ("*.css: : 1", |e| matches!(e, RuleError::Form(_))),
            ("a[: X-A: 1", |e| matches!(e, RuleError::Glob { .. })),
            ("{a: X-A: 1", |e| matches!(e, RuleError::Glob { .. })),
            ("*: Bad Name: 1", |e| matches!(e, RuleError::Name(_))),
            ("*: X(y): 1", |e| matches!(e, RuleError::Name(_))),
            ("*: X-A: a\rb", |e| matches!(e, RuleError::Value(_))),
            ("*: X-A: a\nInjected: 1", |e| matches!(e, RuleError::Value(_))),
            ("*: X-A: a\0b", |e| matches!(e, RuleError::Value(_))),
            ("*: Content-Length: 5", |e| matches!(e, RuleError::Refused(_))),
            ("*: transfer-encoding: chunked", |e| {
                matches!(e, RuleError::Refused(_))
            }),
            ("*: Connection: close", |e| matches!(e, RuleError::Refused(_))),
            ("*: Content-Range: bytes 0-1/2", |e| {
                matches!(e, RuleError::Refused(_))
            }),
            ("*: Content-Type: text/plain", |e| {
                matches!(e, RuleError::Refused(_))
            }),
            ("*: ETag: \"x\"", |e| matches!(e, RuleError::Refused(_))),
            ("*: Keep-Alive: 5", |e| matches!(e, RuleError::Refused(_))),
            ("*: Upgrade: h2c", |e| matches!(e, RuleError::Refused(_))),
            ("*: Vary: Cookie", |e| matches!(e, RuleError::Refused(_))),
        ];
        for (text, want) in bad {
            let e = text.parse::<HeaderRule>().unwrap_err();
            assert!(want(&e), "{text:?}: {e:?}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn matching_table() {
        let r = rules(&[
            "*.css,*.js: Cache-Control: public, max-age=31536000, immutable",
            "*.html: Cache-Control: no-cache",
            "/assets/**: X-Asset: yes",
            "docs/*.txt: X-Doc: yes",
            "vendor/*.js: Cache-Control: no-store",
            "*.html: X-Served-By: rule",
        ]);
        let cc = |p: &str| {
            headers(&r, p)
                .into_iter()
                .filter(|(n, _)| n == "Cache-Control")
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        let long = "public, max-age=31536000, immutable";
        assert_eq!(cc("/app.css"), [long]);
        assert_eq!(cc("/deep/er/app.js"), [long]);
        assert_eq!(cc("/index.html"), ["no-cache"]);
        assert_eq!(cc("/a.txt"), Vec::<String>::new());
        assert_eq!(cc("/app.CSS"), Vec::<String>::new(), "case-sensitive");
        // Later rules win, never two of one name.
        assert_eq!(cc("/vendor/lib.js"), ["no-store"]);
        // `*` stays within a segment, `**` crosses them; a leading `/` is optional.
        let has = |p: &str, name: &str| headers(&r, p).iter().any(|(n, _)| n == name);
        assert!(has("/assets/x/y/z.png", "X-Asset"));
        assert!(!has("/x/assets/z.png", "X-Asset"));
        assert!(has("/docs/a.txt", "X-Doc"));
        assert!(!has("/docs/sub/a.txt", "X-Doc"));
        assert!(!has("/x/docs/a.txt", "X-Doc"));
        // A rule replaces a common header of its name, in the rule's place.
        let h = headers(&r, "/index.html");
        assert_eq!(
            h,
            [
                ("Cache-Control".to_owned(), "no-cache".to_owned()),
                ("X-Served-By".to_owned(), "rule".to_owned())
            ]
        );
        assert_eq!(
            headers(&r, "/a.txt"),
            [("X-Served-By".to_owned(), "b".to_owned())]
        );
        // No rules: the common list itself, nothing copied.
        let none = Rules::new(&[]).unwrap();
        assert!(matches!(none.apply(&["a.css"], &[]), Cow::Borrowed(_)));
    }
}
