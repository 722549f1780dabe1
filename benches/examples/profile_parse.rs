//! A small harness for profilers (callgrind, perf): runs one parse variant in a
//! tight loop on httparse's 720-byte request (or the short one).
//!
//! ```text
//! CARGO_PROFILE_RELEASE_DEBUG=true cargo build --release -p benches --example profile_parse
//! valgrind --tool=callgrind target/release/examples/profile_parse http_core 100000
//! ```
//!
//! Variants: `http_core`, `httparse_16`, `httparse_uninit256`, `http_core_short`,
//! `httparse_16_short`, `http_core_resp`, `httparse_16_resp`.

use std::hint::black_box;
use std::mem::MaybeUninit;

use benches::{REQ, REQ_SHORT, RESP};
use http_core::{parse_request, parse_response, Limits, Method, MAX_HEADERS_CAP};

#[inline(never)]
fn httparse_16(buf: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf);
    black_box(&req);
    status.expect("valid").unwrap()
}

#[inline(never)]
fn httparse_uninit256(buf: &[u8]) -> usize {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut storage);
    black_box(&req);
    status.expect("valid").unwrap()
}

#[inline(never)]
fn httparse_16_resp(buf: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut res = httparse::Response::new(&mut headers);
    let status = res.parse(buf);
    black_box(&res);
    status.expect("valid").unwrap()
}

#[inline(never)]
fn http_core(buf: &[u8], limits: &Limits) -> usize {
    let parsed = parse_request(buf, limits).expect("valid").expect("complete");
    black_box(&parsed).len()
}

#[inline(never)]
fn http_core_resp(buf: &[u8], limits: &Limits) -> usize {
    let parsed = parse_response(buf, Method::Get, limits)
        .expect("valid")
        .expect("complete");
    black_box(&parsed).len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_else(|| "http_core".into());
    let iters: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("iteration count"));
    let limits = Limits::default();
    let start = std::time::Instant::now();
    let mut total = 0usize;
    for _ in 0..iters {
        total += match variant.as_str() {
            "http_core" => http_core(black_box(REQ), &limits),
            "httparse_16" => httparse_16(black_box(REQ)),
            "httparse_uninit256" => httparse_uninit256(black_box(REQ)),
            "http_core_short" => http_core(black_box(REQ_SHORT), &limits),
            "httparse_16_short" => httparse_16(black_box(REQ_SHORT)),
            "http_core_resp" => http_core_resp(black_box(RESP), &limits),
            "httparse_16_resp" => httparse_16_resp(black_box(RESP)),
            other => panic!("unknown variant {other}"),
        };
    }
    let per = start.elapsed().as_nanos() as f64 / iters as f64;
    println!("{variant}: {iters} iterations, {per:.1} ns each, {total} bytes");
}
