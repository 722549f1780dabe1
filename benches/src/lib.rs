//! Criterion benchmarks of http-core live in `benches/`; this library holds their
//! fixtures so a profiling harness can reuse them: request and response bytes,
//! and the access-log record with the line as it was built before escaping.

use std::time::Duration;

use http_core::{AccessRecord, Limits, LogValue, RequestHead};

/// httparse's own short request (`benches/parse.rs` of httparse 1.10.1): 68 bytes.
pub const REQ_SHORT: &[u8] = b"\
GET / HTTP/1.0\r\n\
Host: example.com\r\n\
Cookie: session=60; user_id=1\r\n\r\n";

/// httparse's own long request (`benches/parse.rs` of httparse 1.10.1, where the
/// cookie ends in `|padding=under256`): 720 bytes, 9 headers.
pub const REQ: &[u8] = b"\
GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n\
Host: www.kittyhell.com\r\n\
User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n\
Accept-Encoding: gzip,deflate\r\n\
Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n\
Keep-Alive: 115\r\n\
Connection: keep-alive\r\n\
Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; __utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; __utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|utmcmd=referral|padding=under256\r\n\r\n";

/// A realistic browser-ish API GET, about 200 bytes; [`pipeline`] repeats it.
pub const PIPELINED_GET: &[u8] = b"\
GET /api/v1/products?page=2 HTTP/1.1\r\n\
Host: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0\r\n\
Accept: application/json\r\n\
Accept-Encoding: gzip, br\r\n\
Connection: keep-alive\r\n\r\n";

/// Number of requests in [`pipeline`].
pub const PIPELINE_DEPTH: usize = 10;

/// [`PIPELINE_DEPTH`] copies of [`PIPELINED_GET`] back to back in one buffer.
pub fn pipeline() -> Vec<u8> {
    PIPELINED_GET.repeat(PIPELINE_DEPTH)
}

/// A typical nginx 200 response head for a static file: 255 bytes, 8 headers.
pub const RESP: &[u8] = b"\
HTTP/1.1 200 OK\r\n\
Server: nginx/1.24.0\r\n\
Date: Wed, 21 Oct 2015 07:28:00 GMT\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Length: 6154\r\n\
Last-Modified: Tue, 20 Oct 2015 11:04:12 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"56262a5c-180a\"\r\n\
Accept-Ranges: bytes\r\n\r\n";

/// A chunked body of `chunks` chunks of `chunk_len` bytes each, then the last
/// chunk and an empty trailer section. Sizes are lowercase hex, no extensions.
pub fn chunked_body(chunks: usize, chunk_len: usize) -> Vec<u8> {
    assert!(chunk_len > 0, "a zero-size chunk ends the body");
    let size_line = format!("{chunk_len:x}\r\n");
    let mut wire = Vec::with_capacity(chunks * (size_line.len() + chunk_len + 2) + 5);
    for i in 0..chunks {
        wire.extend_from_slice(size_line.as_bytes());
        wire.extend((0..chunk_len).map(|j| b'a' + ((i + j) % 26) as u8));
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

/// The client of the access-line fixture, as the driver formats it.
pub const ACCESS_PEER: &str = "127.0.0.1:60024";

/// The request of the access-line fixture: a browser's GET with a query.
pub fn access_head() -> RequestHead {
    RequestHead::parse_complete(
        bytes::Bytes::from_static(
            b"GET /page.html?id=1042&view=full HTTP/1.1\r\nHost: localhost:44444\r\n\
              User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
              Referer: http://localhost:44444/page.html\r\nAccept: */*\r\n\r\n",
        ),
        &Limits::default(),
    )
    .expect("a valid head")
}

/// The fields rr-proxy adds to a proxied request's line.
pub fn access_fields() -> [(&'static str, LogValue); 3] {
    [
        ("backend", LogValue::Text("127.0.0.1:9003".into())),
        ("upstream", LogValue::Duration(Duration::from_micros(451))),
        ("retries", LogValue::Count(0)),
    ]
}

/// A proxied request's record: 200, 1754 bytes in 572 µs.
pub fn access_record<'a>(head: &'a RequestHead, fields: &'a [(&'static str, LogValue)]) -> AccessRecord<'a> {
    AccessRecord {
        peer: None,
        head: Some(head),
        status: 200,
        bytes: Some(1754),
        elapsed: Duration::from_micros(572),
        fields,
        refused: None,
    }
}

/// The access line before escaping and JSON: the text line as http-core built
/// it until then (no escaping at all), kept here as the baseline.
pub fn access_line_before(line: &mut String, peer: &str, head: &RequestHead, record: &AccessRecord<'_>) {
    let mut num = itoa::Buffer::new();
    line.push_str(peer);
    line.push_str(" \"");
    line.push_str(head.method_str());
    line.push(' ');
    line.push_str(head.target());
    line.push(' ');
    line.push_str(head.version().as_str());
    line.push_str("\" ");
    line.push_str(num.format(record.status));
    line.push(' ');
    match record.bytes {
        Some(b) => line.push_str(num.format(b)),
        None => line.push('-'),
    }
    line.push(' ');
    line.push_str(num.format(record.elapsed.as_micros() as u64));
    line.push_str("us");
    for (k, v) in record.fields {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        match v {
            LogValue::Text(t) => line.push_str(t),
            LogValue::Duration(d) => {
                line.push_str(num.format(d.as_micros()));
                line.push_str("us");
            }
            // Counts came with the JSON format; written as the new code does.
            LogValue::Count(n) => line.push_str(num.format(*n)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_sizes() {
        assert_eq!(REQ.len(), 720);
        assert_eq!(REQ_SHORT.len(), 68);
        assert!(
            (180..=220).contains(&PIPELINED_GET.len()),
            "{}",
            PIPELINED_GET.len()
        );
        assert!((230..=280).contains(&RESP.len()), "{}", RESP.len());
        assert_eq!(chunked_body(2, 3), b"3\r\nabc\r\n3\r\nbcd\r\n0\r\n\r\n");
    }
}
