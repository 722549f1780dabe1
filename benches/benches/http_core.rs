//! http-core against raw httparse: request and response heads, a pipeline, writing a
//! response head, and decoding chunked bodies; and what counting a response for
//! the metrics costs, against `prometheus-client`'s own histogram.
//!
//! `cargo bench -p benches` runs all of it; `cargo bench -p benches -- parse` only the
//! parse groups. See `benches/README.md` for the figures.

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::time::Duration;

use benches::{
    access_fields, access_head, access_line_before, access_record, chunked_body, pipeline, ACCESS_PEER,
    PIPELINED_GET, PIPELINE_DEPTH, REQ, REQ_SHORT, RESP,
};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_core::metrics::{DurationHistogram, ResponseMetrics, DEFAULT_BUCKETS};
use http_core::server::format_access_line;
use http_core::{
    parse_request, parse_response, with_date, write_content_length, write_header, write_status_line,
    AccessLogFormat, AccessRecord, BodyKind, ChunkedDecoder, Limits, Method, MAX_HEADERS_CAP,
};

/// Raw httparse on a request, with a fresh `[EMPTY_HEADER; N]` table as a caller
/// would build per request. Returns the head length.
fn raw_request<const N: usize>(buf: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; N];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf);
    // Keep the header table observable so its stores cannot be dropped as dead.
    black_box(&req);
    match status {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("raw httparse: {other:?}"),
    }
}

/// Raw httparse exactly as http-core calls it: 256 uninitialized header slots.
fn raw_request_uninit(buf: &[u8]) -> usize {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut storage);
    black_box(&req);
    match status {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("raw httparse (uninit): {other:?}"),
    }
}

/// Raw httparse on a response head with `[EMPTY_HEADER; N]`.
fn raw_response<const N: usize>(buf: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; N];
    let mut res = httparse::Response::new(&mut headers);
    let status = res.parse(buf);
    black_box(&res);
    match status {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("raw httparse response: {other:?}"),
    }
}

/// Raw httparse on a response head with 256 uninitialized slots: what
/// `parse_response` would cost if it used them as `parse_request` does.
fn raw_response_uninit(buf: &[u8]) -> usize {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut res = httparse::Response::new(&mut []);
    let status =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut storage);
    black_box(&res);
    match status {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("raw httparse response (uninit): {other:?}"),
    }
}

/// One request-head group: raw httparse (16 / 32 initialized slots, 256 uninit
/// slots as http-core uses) beside `http_core::parse_request`.
fn bench_request(c: &mut Criterion, group_name: &str, input: &'static [u8]) {
    let limits = Limits::default();
    // Sanity: every contender sees a complete head of the whole input.
    assert_eq!(raw_request::<16>(input), input.len());
    assert_eq!(raw_request_uninit(input), input.len());
    let parsed = parse_request(input, &limits)
        .expect("valid request")
        .expect("complete head");
    assert_eq!(parsed.len(), input.len());
    assert_eq!(parsed.body(), BodyKind::Empty);

    let mut g = c.benchmark_group(group_name);
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("httparse_16", |b| b.iter(|| raw_request::<16>(black_box(input))));
    g.bench_function("httparse_32", |b| b.iter(|| raw_request::<32>(black_box(input))));
    g.bench_function("httparse_uninit256", |b| {
        b.iter(|| raw_request_uninit(black_box(input)))
    });
    g.bench_function("http_core", |b| {
        b.iter(|| parse_request(black_box(input), &limits))
    });
    g.finish();
}

fn parse_req(c: &mut Criterion) {
    assert_eq!(REQ.len(), 720, "httparse's REQ is 720 bytes");
    bench_request(c, "parse_req_720", REQ);
}

fn parse_req_short(c: &mut Criterion) {
    assert_eq!(REQ_SHORT.len(), 68, "httparse's REQ_SHORT is 68 bytes");
    bench_request(c, "parse_req_short_68", REQ_SHORT);
}

/// Ten pipelined GETs in one buffer, each parsed and skipped by its length.
fn parse_pipeline(c: &mut Criterion) {
    let limits = Limits::default();
    let buf = pipeline();
    assert_eq!(buf.len(), PIPELINED_GET.len() * PIPELINE_DEPTH);

    let http_core_all = |buf: &[u8]| {
        let (mut pos, mut n) = (0, 0);
        while pos < buf.len() {
            let parsed = parse_request(&buf[pos..], &limits)
                .expect("valid request")
                .expect("complete head");
            pos += black_box(&parsed).len();
            n += 1;
        }
        n
    };
    let raw_all = |buf: &[u8]| {
        let (mut pos, mut n) = (0, 0);
        while pos < buf.len() {
            pos += raw_request::<16>(&buf[pos..]);
            n += 1;
        }
        n
    };
    assert_eq!(http_core_all(&buf), PIPELINE_DEPTH);
    assert_eq!(raw_all(&buf), PIPELINE_DEPTH);

    let mut g = c.benchmark_group("parse_pipeline_10");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("httparse_16", |b| b.iter(|| raw_all(black_box(&buf))));
    g.bench_function("http_core", |b| b.iter(|| http_core_all(black_box(&buf))));
    g.finish();
}

/// An nginx-like 200 response head, as a proxy reads it from a backend.
fn parse_resp(c: &mut Criterion) {
    let limits = Limits::default();
    assert_eq!(raw_response::<16>(RESP), RESP.len());
    assert_eq!(raw_response_uninit(RESP), RESP.len());
    let parsed = parse_response(RESP, Method::Get, &limits)
        .expect("valid response")
        .expect("complete head");
    assert_eq!(parsed.len(), RESP.len());
    assert_eq!(parsed.body(), BodyKind::Length(6154));

    let mut g = c.benchmark_group("parse_resp_nginx");
    g.throughput(Throughput::Bytes(RESP.len() as u64));
    g.bench_function("httparse_16", |b| b.iter(|| raw_response::<16>(black_box(RESP))));
    g.bench_function("httparse_32", |b| b.iter(|| raw_response::<32>(black_box(RESP))));
    g.bench_function("httparse_256", |b| {
        b.iter(|| raw_response::<MAX_HEADERS_CAP>(black_box(RESP)))
    });
    g.bench_function("httparse_uninit256", |b| {
        b.iter(|| raw_response_uninit(black_box(RESP)))
    });
    g.bench_function("http_core", |b| {
        b.iter(|| parse_response(black_box(RESP), Method::Get, &limits))
    });
    g.finish();
}

/// Status line, Date, four headers and Content-Length into one reused buffer.
fn write_resp_head(c: &mut Criterion) {
    fn write(out: &mut BytesMut, status: u16, len: u64) {
        out.clear();
        write_status_line(out, status);
        with_date(|d| write_header(out, "Date", d));
        write_header(out, "Server", b"rr-http");
        write_header(out, "Content-Type", b"text/html; charset=utf-8");
        write_header(out, "Last-Modified", b"Tue, 20 Oct 2015 11:04:12 GMT");
        write_header(out, "ETag", b"\"56262a5c-180a\"");
        write_content_length(out, len);
        out.extend_from_slice(b"\r\n");
    }
    let mut out = BytesMut::with_capacity(1024);
    write(&mut out, 200, 6154);
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nDate: "));
    assert!(out.ends_with(b"Content-Length: 6154\r\n\r\n"));
    let head_len = out.len();

    let mut g = c.benchmark_group("write_resp_head");
    g.throughput(Throughput::Bytes(head_len as u64));
    g.bench_function("http_core", |b| {
        b.iter(|| {
            write(&mut out, black_box(200), black_box(6154));
            black_box(&out[..]);
        })
    });
    g.finish();
}

/// 64 KiB of body in chunked coding, decoded in one buffer.
fn chunked_decode(c: &mut Criterion) {
    const BODY: usize = 64 * 1024;
    let limits = Limits::default();
    let decode_all = |wire: &[u8]| {
        let mut dec = ChunkedDecoder::new(&limits);
        let (mut pos, mut data) = (0, 0);
        loop {
            let p = dec.decode(&wire[pos..]).expect("valid chunked body");
            data += p.data.len();
            pos += p.consumed;
            if p.done {
                break;
            }
            assert!(p.consumed > 0, "decoder stalled on a complete body");
        }
        (pos, data)
    };

    let mut g = c.benchmark_group("chunked_decode_64k");
    // Throughput counts body bytes (the payload), not the framing around them.
    g.throughput(Throughput::Bytes(BODY as u64));
    for (chunks, chunk_len) in [(16, 4096), (1024, 64)] {
        let wire = chunked_body(chunks, chunk_len);
        assert_eq!(decode_all(&wire), (wire.len(), BODY));
        g.bench_function(format!("{chunks}x{chunk_len}B"), |b| {
            b.iter(|| decode_all(black_box(&wire)))
        });
    }
    g.finish();
}

/// Building one proxied request's access line (three fields) in a reused
/// buffer: the line as it was before escaping, the text line now, the JSON line.
fn access_line(c: &mut Criterion) {
    let head = access_head();
    let fields = access_fields();
    let record = access_record(&head, &fields);
    let peer = ACCESS_PEER;
    let mut line = String::with_capacity(512);
    let mut g = c.benchmark_group("access_line");
    g.bench_function("before", |b| {
        b.iter(|| {
            line.clear();
            access_line_before(&mut line, black_box(peer), black_box(&head), black_box(&record));
            black_box(line.len())
        })
    });
    for (name, format) in [("text", AccessLogFormat::Text), ("json", AccessLogFormat::Json)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                line.clear();
                format_access_line(&mut line, format, black_box(peer), black_box(&record));
                black_box(line.len())
            })
        });
    }
    g.finish();
}

/// Counting one response for the metrics: `ResponseMetrics::record` (histogram
/// bucket and sum, status, body bytes) and `DurationHistogram::observe` alone,
/// for a fast response (first bucket) and a 30 ms one (seventh), against
/// `prometheus_client`'s `Histogram::observe` (a mutex around the buckets);
/// then the histograms from two threads at once.
fn metrics_record(c: &mut Criterion) {
    use prometheus_client::metrics::histogram::Histogram;
    let record = |elapsed| AccessRecord {
        peer: None,
        head: None,
        status: 200,
        bytes: Some(1918),
        elapsed,
        fields: &[],
        refused: None,
    };
    let ours = ResponseMetrics::new(&DEFAULT_BUCKETS);
    let hist = DurationHistogram::new(&DEFAULT_BUCKETS);
    let bounds: Vec<f64> = DEFAULT_BUCKETS.iter().map(Duration::as_secs_f64).collect();
    let theirs = Histogram::new(bounds.iter().copied());
    let mut g = c.benchmark_group("metrics_record");
    for (name, elapsed) in [
        ("40us", Duration::from_micros(40)),
        ("30ms", Duration::from_millis(30)),
    ] {
        g.bench_function(format!("response_metrics_{name}"), |b| {
            b.iter(|| ours.record(&record(black_box(elapsed))))
        });
        g.bench_function(format!("duration_histogram_{name}"), |b| {
            b.iter(|| hist.observe(black_box(elapsed)))
        });
        g.bench_function(format!("prometheus_client_histogram_{name}"), |b| {
            b.iter(|| theirs.observe(black_box(elapsed).as_secs_f64()))
        });
    }
    // Two threads counting into the same metrics: the cost per count when
    // both cores contend for the same cache lines.
    fn two_threads(iters: u64, f: &(dyn Fn() + Sync)) -> Duration {
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| (0..iters).for_each(|_| f()));
            }
        });
        start.elapsed() / 2
    }
    let fast = Duration::from_micros(40);
    g.bench_function("duration_histogram_40us_2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &|| hist.observe(black_box(fast))))
    });
    g.bench_function("prometheus_client_histogram_40us_2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &|| theirs.observe(black_box(fast).as_secs_f64())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = parse_req, parse_req_short, parse_pipeline, parse_resp, write_resp_head, chunked_decode,
        access_line, metrics_record
}
criterion_main!(benches);
