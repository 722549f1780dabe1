//! The listing of a directory: HTML (sortable by name, size and modification
//! time, sizes for people) or JSON, names escaped for either, hidden names left
//! out, at most [`MAX_ROWS`] entries.

use std::cmp::Ordering;
use std::fmt::Write;
use std::path::Path;
use std::time::SystemTime;

use crate::path::SEGMENT;

/// Most entries a listing shows. A directory with more shows the first
/// `MAX_ROWS` in the order asked for and says how many were left out, so a
/// listing costs at most a few megabytes however large the directory.
pub(crate) const MAX_ROWS: usize = 10_000;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The column a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sort {
    Name,
    Size,
    Mtime,
}

impl Sort {
    fn token(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Size => "size",
            Sort::Mtime => "mtime",
        }
    }
}

/// How a listing was asked for: `?sort=name|size|mtime&order=asc|desc`, and
/// JSON on `?format=json` or an `Accept` that prefers `application/json`.
/// Unknown or repeated-and-unknown values fall back to the defaults (name,
/// ascending, HTML), so an old or mistyped link still gets a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    pub sort: Sort,
    pub desc: bool,
    pub json: bool,
}

impl View {
    pub fn of(query: Option<&str>, accept: Option<&[u8]>) -> View {
        let mut view = View {
            sort: Sort::Name,
            desc: false,
            json: accept.is_some_and(prefers_json),
        };
        for pair in query.unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let is = |v: &str| value.eq_ignore_ascii_case(v);
            match key {
                "sort" if is("name") => view.sort = Sort::Name,
                "sort" if is("size") => view.sort = Sort::Size,
                "sort" if is("mtime") => view.sort = Sort::Mtime,
                "order" if is("asc") => view.desc = false,
                "order" if is("desc") => view.desc = true,
                "format" if is("json") => view.json = true,
                "format" if is("html") => view.json = false,
                _ => {}
            }
        }
        view
    }
}

/// Whether `Accept` ranks `application/json` above `text/html`: its q is
/// higher, or equal while `text/html` is only reached through `text/*` or
/// `*/*`. A browser's `text/html,...,*/*;q=0.8` gets HTML, `curl -H 'Accept:
/// application/json'` JSON, `application/json, */*` JSON.
fn prefers_json(accept: &[u8]) -> bool {
    let mut json = 0u16;
    // (q, how specific: 3 text/html, 2 text/*, 1 */*)
    let mut html = (0u16, 0u8);
    crate::encoding::for_each_weighted(accept, |range, q| {
        if range.eq_ignore_ascii_case(b"application/json") {
            json = json.max(q);
            return;
        }
        let specific = if range.eq_ignore_ascii_case(b"text/html") {
            3
        } else if range.eq_ignore_ascii_case(b"text/*") {
            2
        } else if range == b"*/*" {
            1
        } else {
            0
        };
        if specific > html.1 {
            html = (q, specific);
        }
    });
    json > 0 && (json, 3) > html
}

/// One entry of a directory.
#[derive(Debug)]
struct Row {
    name: String,
    is_dir: bool,
    /// Files only.
    size: Option<u64>,
    mtime: Option<SystemTime>,
}

/// The entries shown and how many were left out.
#[derive(Debug)]
pub(crate) struct Listing {
    rows: Vec<Row>,
    pub omitted: usize,
}

/// Directories first, then by the column asked for (ties by name), reversed
/// within each group for `desc`.
fn order(view: &View, a: &Row, b: &Row) -> Ordering {
    b.is_dir.cmp(&a.is_dir).then_with(|| {
        let key = match view.sort {
            Sort::Name => Ordering::Equal,
            Sort::Size => a.size.cmp(&b.size),
            Sort::Mtime => a.mtime.cmp(&b.mtime),
        };
        let o = key.then_with(|| a.name.cmp(&b.name));
        if view.desc {
            o.reverse()
        } else {
            o
        }
    })
}

/// Reads `dir`: names that are not UTF-8 (they cannot be linked faithfully)
/// and, unless `dotfiles`, dot names are left out. Memory stays within about
/// twice `max` entries however many the directory holds; sorted by name, only
/// the entries shown are looked up for their size and time.
pub(crate) fn read(dir: &Path, dotfiles: bool, view: &View, max: usize) -> std::io::Result<Listing> {
    let by_name = view.sort == Sort::Name;
    let mut rows: Vec<Row> = Vec::new();
    let mut omitted = 0;
    let mut trim = |rows: &mut Vec<Row>, to: usize| {
        if rows.len() > to {
            rows.sort_by(|a, b| order(view, a, b));
            omitted += rows.len() - to;
            rows.truncate(to);
        }
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') && !dotfiles {
            continue;
        }
        let (is_dir, size, mtime) = if by_name {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            (is_dir, None, None)
        } else {
            stat(&entry)
        };
        rows.push(Row {
            name,
            is_dir,
            size,
            mtime,
        });
        if rows.len() >= max.saturating_mul(2).max(1) {
            trim(&mut rows, max);
        }
    }
    trim(&mut rows, max);
    rows.sort_by(|a, b| order(view, a, b));
    if by_name {
        for row in &mut rows {
            if let Ok(meta) = std::fs::symlink_metadata(dir.join(&row.name)) {
                (row.is_dir, row.size, row.mtime) = from_meta(&meta);
            }
        }
    }
    Ok(Listing { rows, omitted })
}

fn stat(entry: &std::fs::DirEntry) -> (bool, Option<u64>, Option<SystemTime>) {
    match entry.metadata() {
        Ok(meta) => from_meta(&meta),
        Err(_) => (false, None, None),
    }
}

fn from_meta(meta: &std::fs::Metadata) -> (bool, Option<u64>, Option<SystemTime>) {
    let is_dir = meta.is_dir();
    let size = (!is_dir).then_some(meta.len());
    (is_dir, size, meta.modified().ok())
}

/// A size for people: bytes below 1 KiB, else one decimal in the largest binary
/// unit that keeps the number below 1024 (`1918` → `1.9 KiB`).
pub(crate) fn human_size(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    // 1023.96 would print as 1024.0: move up a unit instead.
    while v >= 1023.95 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// The HTML page for `listing` of the directory shown as `url_path`.
pub(crate) fn html(listing: &Listing, url_path: &str, view: &View) -> String {
    let mut html = String::with_capacity(1024 + listing.rows.len() * 200);
    let mut title = String::new();
    html_escape(url_path, &mut title);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n<tr>"
    );
    for (sort, label) in [
        (Sort::Name, "Name"),
        (Sort::Size, "Size"),
        (Sort::Mtime, "Modified"),
    ] {
        // The current column's link turns the order round; the others sort ascending.
        let (next, aria) = match (view.sort == sort, view.desc) {
            (true, false) => ("desc", " aria-sort=\"ascending\""),
            (true, true) => ("asc", " aria-sort=\"descending\""),
            (false, _) => ("asc", ""),
        };
        let _ = write!(
            html,
            "<th{aria}><a href=\"?sort={}&amp;order={next}\">{label}</a></th>",
            sort.token()
        );
    }
    html.push_str("</tr>\n");
    if url_path != "/" {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for row in &listing.rows {
        let encoded: String = percent_encoding::utf8_percent_encode(&row.name, SEGMENT).collect();
        // Bug fix (listing_href_is_html_escaped): SEGMENT leaves `&` and `'` as
        // they are, so a file named `x&amp;y.txt` was linked as `./x&amp;y.txt`,
        // which a browser decodes to `./x&y.txt`, another file. The attribute
        // value must be HTML-escaped after percent-encoding.
        let mut href = String::with_capacity(encoded.len());
        html_escape(&encoded, &mut href);
        let mut shown = String::new();
        html_escape(&row.name, &mut shown);
        let slash = if row.is_dir { "/" } else { "" };
        let _ = write!(
            html,
            "<tr><td><a href=\"./{href}{slash}\">{shown}{slash}</a></td>"
        );
        match row.size {
            Some(n) => {
                let _ = write!(html, "<td title=\"{n} bytes\">{}</td>", human_size(n));
            }
            None => html.push_str("<td>-</td>"),
        }
        let modified = row.mtime.map(httpdate::fmt_http_date).unwrap_or_default();
        let _ = writeln!(html, "<td>{modified}</td></tr>");
    }
    html.push_str("</table>\n");
    if listing.omitted > 0 {
        let _ = writeln!(
            html,
            "<p>{} more entries not shown (a listing shows at most {MAX_ROWS}).</p>",
            listing.omitted
        );
    }
    html.push_str("</body></html>\n");
    html
}

#[derive(serde::Serialize)]
struct JsonRow<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    size: Option<u64>,
    mtime: Option<i64>,
}

/// The JSON form: an array of `{"name", "type": "file"|"dir", "size"` (bytes,
/// `null` for a directory), `"mtime"` (Unix seconds, `null` when unknown)`}`,
/// in the order asked for.
pub(crate) fn json(listing: &Listing) -> String {
    let rows: Vec<JsonRow<'_>> = listing
        .rows
        .iter()
        .map(|r| JsonRow {
            name: &r.name,
            kind: if r.is_dir { "dir" } else { "file" },
            size: r.size,
            mtime: r.mtime.map(unix_seconds),
        })
        .collect();
    let mut out = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_owned());
    out.push('\n');
    out
}

/// Whole seconds since the Unix epoch, rounded down (negative before it).
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -whole - 1
            } else {
                -whole
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn human_sizes() {
        for (n, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1918, "1.9 KiB"),
            (1024 * 1024 - 1, "1.0 MiB"),
            (5 * 1024 * 1024 + 512 * 1024, "5.5 MiB"),
            (3 << 30, "3.0 GiB"),
            (u64::MAX, "16.0 EiB"),
        ] {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn view_table() {
        let v = |q: Option<&str>, a: Option<&str>| {
            let v = View::of(q, a.map(str::as_bytes));
            (v.sort, v.desc, v.json)
        };
        use Sort::*;
        assert_eq!(v(None, None), (Name, false, false));
        assert_eq!(v(Some("sort=size&order=desc"), None), (Size, true, false));
        assert_eq!(v(Some("order=desc&sort=mtime"), None), (Mtime, true, false));
        assert_eq!(v(Some("sort=SIZE"), None), (Size, false, false));
        // Unknown values and keys: the defaults.
        assert_eq!(
            v(Some("sort=bogus&order=sideways&x=1"), None),
            (Name, false, false)
        );
        assert_eq!(v(Some("sort"), None), (Name, false, false));
        assert_eq!(v(Some("format=json"), None), (Name, false, true));
        assert_eq!(
            v(Some("format=html"), Some("application/json")),
            (Name, false, false)
        );
        let accept: &[(&str, bool)] = &[
            ("application/json", true),
            ("application/json, */*;q=0.1", true),
            ("application/json, */*", true),
            ("application/json, text/*", true),
            ("text/html, application/json", false),
            ("application/json;q=0.9, text/html", false),
            ("application/json, text/html;q=0.5", true),
            (
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                false,
            ),
            ("*/*", false),
            ("application/*", false),
            ("application/json;q=0", false),
            ("application/json;q=bogus", false),
            ("APPLICATION/JSON", true),
            ("", false),
        ];
        for (a, json) in accept {
            assert_eq!(v(None, Some(a)).2, *json, "{a:?}");
        }
    }

    #[test]
    fn unix_seconds_round_down() {
        let e = SystemTime::UNIX_EPOCH;
        assert_eq!(unix_seconds(e + Duration::new(5, 900)), 5);
        assert_eq!(unix_seconds(e), 0);
        assert_eq!(unix_seconds(e - Duration::from_millis(1)), -1);
        assert_eq!(unix_seconds(e - Duration::from_secs(2)), -2);
    }
}
