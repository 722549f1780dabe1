//! A small harness for profilers (callgrind, perf): builds one proxied request's
//! access line (three fields) in a reused buffer, in a tight loop.
//!
//! ```text
//! CARGO_PROFILE_RELEASE_DEBUG=true cargo build --release -p benches --example profile_access_line
//! valgrind --tool=callgrind target/release/examples/profile_access_line text 100000
//! ```
//!
//! Variants: `before` (the line as it was built before escaping: no escaping at
//! all), `text`, `json`, `none` (the loop alone).

use std::hint::black_box;

use benches::{access_fields, access_head, access_line_before, access_record, ACCESS_PEER};
use http_core::server::format_access_line;
use http_core::AccessLogFormat;

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_else(|| "text".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let head = access_head();
    let fields = access_fields();
    let record = access_record(&head, &fields);
    let mut line = String::with_capacity(512);
    let mut total = 0;
    for _ in 0..n {
        line.clear();
        match variant.as_str() {
            "before" => access_line_before(
                &mut line,
                black_box(ACCESS_PEER),
                black_box(&head),
                black_box(&record),
            ),
            "text" => format_access_line(
                &mut line,
                AccessLogFormat::Text,
                black_box(ACCESS_PEER),
                black_box(&record),
            ),
            "json" => format_access_line(
                &mut line,
                AccessLogFormat::Json,
                black_box(ACCESS_PEER),
                black_box(&record),
            ),
            "none" => {}
            other => panic!("unknown variant {other}"),
        }
        total += black_box(line.len());
    }
    println!("{variant}: {n} lines, {total} bytes; last: {line}");
}
