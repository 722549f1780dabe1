//! Fuzz targets for the HTTP workspace. The checks live in `checks.rs`, which the
//! corpus replay test (`crates/cli/tests/fuzz_corpus_replay.rs`) includes as well.

mod checks;
pub use checks::*;
