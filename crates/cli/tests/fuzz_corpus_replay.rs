//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) on stable: every
//! input runs through the same check the fuzz target runs (`fuzz/src/checks.rs`),
//! so an input that once crashed, or that reached a rare path, stays covered by
//! `cargo test`. Fuzzing itself needs nightly: see the README's "Fuzzing" section.

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for file in &files {
        let data = std::fs::read(file).expect("read a corpus input");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {} fails its check", file.display());
        }
    }
}

/// The site `checks::static_path` and `checks::driver` serve, made once per
/// process in the temporary directory (`site_root` in `fuzz/src/checks.rs`, which
/// names it so). It lives in a `static` that no drop cleans up: removed when this
/// test process exits.
fn remove_the_fuzz_site_at_exit() {
    test_support::remove_at_exit(
        std::env::temp_dir().join(format!("rr-http-fuzz-site-{}", std::process::id())),
    );
}

#[test]
fn request_head() {
    replay("request_head", checks::request_head);
}

#[test]
fn response_head() {
    replay("response_head", checks::response_head);
}

#[test]
fn chunked() {
    replay("chunked", checks::chunked);
}

#[test]
fn range_conditional() {
    replay("range_conditional", checks::range_conditional);
}

#[test]
fn static_path() {
    remove_the_fuzz_site_at_exit();
    replay("static_path", checks::static_path);
}

#[test]
fn driver() {
    remove_the_fuzz_site_at_exit();
    replay("driver", checks::driver);
}

#[test]
fn client_response() {
    replay("client_response", checks::client_response);
}

#[test]
fn h2() {
    replay("h2", checks::h2);
}

#[test]
fn tls() {
    replay("tls", checks::tls);
}
