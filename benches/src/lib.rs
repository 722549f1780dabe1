//! Criterion benchmarks of http-core live in `benches/`.
