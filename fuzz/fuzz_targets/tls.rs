#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rr_http_fuzz::tls(data));
