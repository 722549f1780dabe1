//! The HTML listing of a directory.

use std::fmt::Write;
use std::path::Path;

use crate::path::SEGMENT;

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

/// Renders `dir` (shown as `url_path`): names sorted, escaped and linked, with
/// size and modification time. Dot entries are left out unless `dotfiles`.
pub(crate) fn render(dir: &Path, url_path: &str, dotfiles: bool) -> std::io::Result<String> {
    let mut rows: Vec<(String, bool, u64, Option<std::time::SystemTime>)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not UTF-8: cannot be linked faithfully
        };
        if name.starts_with('.') && !dotfiles {
            continue;
        }
        let meta = entry.metadata().ok();
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        let size = meta.as_ref().map_or(0, |m| m.len());
        let modified = meta.and_then(|m| m.modified().ok());
        rows.push((name, is_dir, size, modified));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut html = String::with_capacity(512 + rows.len() * 160);
    let mut title = String::new();
    html_escape(url_path, &mut title);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if url_path != "/" {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for (name, is_dir, size, modified) in rows {
        let encoded: String = percent_encoding::utf8_percent_encode(&name, SEGMENT).collect();
        // Bug fix (listing_href_is_html_escaped): SEGMENT leaves `&` and `'` as
        // they are, so a file named `x&amp;y.txt` was linked as `./x&amp;y.txt`,
        // which a browser decodes to `./x&y.txt`, another file. The attribute
        // value must be HTML-escaped after percent-encoding.
        let mut href = String::with_capacity(encoded.len());
        html_escape(&encoded, &mut href);
        let mut shown = String::new();
        html_escape(&name, &mut shown);
        let slash = if is_dir { "/" } else { "" };
        let size = if is_dir { "-".to_owned() } else { size.to_string() };
        let modified = modified.map(httpdate::fmt_http_date).unwrap_or_default();
        let _ = writeln!(
            html,
            "<tr><td><a href=\"./{href}{slash}\">{shown}{slash}</a></td><td>{size}</td><td>{modified}</td></tr>"
        );
    }
    html.push_str("</table>\n</body></html>\n");
    Ok(html)
}
