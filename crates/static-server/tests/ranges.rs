//! Range requests, for a small file answered from memory and for a file larger
//! than the cache's file limit, streamed from disk (`.cache(1024, 1 << 20)`).
//! Every 206, multipart and 416 answer is parsed back and compared with the file.

mod common;

use common::{boundary_of, parse_content_range, parse_multipart, pattern, Site, Srv, FIXED_DATE};
use test_support::{curl, Reply};

const SMALL: usize = 1000;
const LARGE: usize = 300_000;

fn range_server() -> (Srv, Vec<u8>, Vec<u8>) {
    let site = Site::new("ranges");
    let small = pattern(SMALL);
    let large: Vec<u8> = pattern(LARGE).into_iter().rev().collect();
    site.file("small.bin", &small);
    site.file("large.bin", &large);
    site.file("empty.txt", b"");
    site.file("page.html", "<p>page</p>\n");
    // Files over 1 KiB are not kept in memory: large.bin streams from disk.
    let srv = Srv::start(site, |b| b.cache(1024, 1 << 20));
    (srv, small, large)
}

fn files(srv_data: &(Srv, Vec<u8>, Vec<u8>)) -> [(&'static str, &[u8]); 2] {
    [("/small.bin", &srv_data.1[..]), ("/large.bin", &srv_data.2[..])]
}

fn get_range(srv: &Srv, path: &str, range: &str, extra: &str) -> Reply {
    srv.raw_get(path, &format!("Range: {range}\r\n{extra}"))
}

/// A single-part 206: exact status line fields, headers and bytes.
#[track_caller]
fn assert_single(r: &Reply, data: &[u8], start: usize, end: usize, ctx: &str) {
    assert_eq!(r.status, 206, "{ctx}: {}", r.text());
    r.expect("Content-Range", &format!("bytes {start}-{end}/{}", data.len()))
        .expect("Content-Length", &(end - start + 1).to_string())
        .expect("Content-Type", "application/octet-stream")
        .expect("Accept-Ranges", "bytes")
        .expect("Last-Modified", FIXED_DATE);
    assert!(r.header("ETag").is_some());
    assert!(r.body == data[start..=end], "{ctx}: wrong bytes");
}

#[test]
fn single_ranges_small_and_streamed() {
    let s = range_server();
    for (path, data) in files(&s) {
        let len = data.len();
        let cases: Vec<(String, usize, usize)> = vec![
            ("bytes=0-99".into(), 0, 99),
            ("bytes=0-0".into(), 0, 0),
            ("bytes=100-".into(), 100, len - 1),
            (format!("bytes={}-", len - 1), len - 1, len - 1),
            ("bytes=-50".into(), len - 50, len - 1),
            ("bytes=-1".into(), len - 1, len - 1),
            // Ends past EOF are clamped; a suffix longer than the file is the whole file.
            (format!("bytes=900-{}", len * 5), 900, len - 1),
            (format!("bytes=-{}", len * 2), 0, len - 1),
            (format!("bytes=0-{}", u64::MAX), 0, len - 1),
            ("BYTES=10-19".into(), 10, 19),
            ("bytes= 10-19 ".into(), 10, 19),
            // Overlapping and adjacent ranges coalesce into one.
            ("bytes=0-9,5-19".into(), 0, 19),
            ("bytes=10-19,0-9".into(), 0, 19),
            // Unsatisfiable parts are dropped when another part is satisfiable.
            (format!("bytes={len}-,0-1"), 0, 1),
        ];
        for (range, start, end) in cases {
            let r = get_range(&s.0, path, &range, "");
            assert_single(&r, data, start, end, &format!("{path} {range}"));
        }
    }
}

#[test]
fn head_with_range_has_the_206_headers_and_no_body() {
    let s = range_server();
    for (path, data) in files(&s) {
        let mut c = s.0.raw();
        c.send(
            format!(
                "HEAD {path} HTTP/1.1\r\nHost: t\r\nRange: bytes=10-29\r\n\r\n\
                 GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = c.response(true);
        assert_eq!(r.status, 206);
        r.expect("Content-Range", &format!("bytes 10-29/{}", data.len()))
            .expect("Content-Length", "20");
        assert_eq!(c.response(false).text(), "<p>page</p>\n");
    }
}

#[test]
fn head_with_several_ranges_has_the_multipart_headers_and_no_body() {
    let s = range_server();
    for (path, _) in files(&s) {
        let get = get_range(&s.0, path, "bytes=0-9,100-109", "");
        let mut c = s.0.raw();
        c.send(
            format!(
                "HEAD {path} HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,100-109\r\n\r\n\
                 GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            .as_bytes(),
        );
        let head = c.response(true);
        assert_eq!(head.status, 206);
        assert!(head
            .header("Content-Type")
            .unwrap()
            .starts_with("multipart/byteranges; boundary="));
        // The boundary differs per response, so the length is all that can match.
        assert_eq!(
            head.header("Content-Length"),
            get.header("Content-Length"),
            "{path}"
        );
        assert_eq!(c.response(false).text(), "<p>page</p>\n");
    }
}

#[test]
fn unsatisfiable_ranges_get_416_with_the_length() {
    let s = range_server();
    for (path, data) in files(&s) {
        let len = data.len();
        for range in [
            format!("bytes={len}-"),
            format!("bytes={}-{}", len + 10, len + 20),
            "bytes=-0".to_owned(),
            format!("bytes={len}-,{}-", len + 1),
        ] {
            let r = get_range(&s.0, path, &range, "");
            assert_eq!(r.status, 416, "{path} {range}");
            r.expect("Content-Range", &format!("bytes */{len}"))
                .expect("Content-Type", "text/plain; charset=utf-8");
            assert_eq!(r.text(), "range not satisfiable\n");
        }
    }
    let r = get_range(&s.0, "/empty.txt", "bytes=0-", "");
    assert_eq!(r.status, 416);
    r.expect("Content-Range", "bytes */0");
}

#[test]
fn invalid_range_headers_are_ignored() {
    let s = range_server();
    for (path, data) in files(&s) {
        for range in [
            "bytes=a-b",
            "bytes=5-2",
            "bytes=1",
            "items=0-1",
            "bytes=",
            "bytes=+1-2",
            "bytes=0-1;x",
        ] {
            let r = get_range(&s.0, path, range, "");
            assert_eq!(r.status, 200, "{path} {range}");
            r.expect_absent("Content-Range")
                .expect("Accept-Ranges", "bytes")
                .expect("Content-Length", &data.len().to_string());
            assert!(r.body == data);
        }
    }
}

#[test]
fn full_responses_advertise_accept_ranges() {
    let s = range_server();
    for (path, data) in files(&s) {
        let r = s.0.get(path, &[]);
        assert_eq!(r.status, 200);
        r.expect("Accept-Ranges", "bytes")
            .expect("Content-Length", &data.len().to_string());
        assert!(r.body == data, "{path}");
    }
}

#[test]
fn if_range_match_gives_206_mismatch_gives_200() {
    let s = range_server();
    for (path, data) in files(&s) {
        let etag = s.0.get(path, &[]).header("ETag").unwrap().to_owned();
        let weak = format!("W/{etag}");
        for (if_range, partial) in [
            (etag.as_str(), true),
            (FIXED_DATE, true),
            ("\"other\"", false),
            (weak.as_str(), false),
            ("Sat, 02 Jan 2021 00:00:00 GMT", false),
            ("garbage", false),
        ] {
            let r = get_range(&s.0, path, "bytes=5-14", &format!("If-Range: {if_range}\r\n"));
            if partial {
                assert_single(&r, data, 5, 14, &format!("{path} If-Range {if_range}"));
            } else {
                assert_eq!(r.status, 200, "{path} If-Range {if_range}");
                r.expect_absent("Content-Range");
                assert!(r.body == data);
            }
        }
    }
}

#[test]
fn several_ranges_give_multipart_byteranges() {
    let s = range_server();
    for (path, data) in files(&s) {
        let len = data.len();
        let cases: Vec<(String, Vec<(usize, usize)>)> = vec![
            (
                "bytes=0-9,50-59,-10".into(),
                vec![(0, 9), (50, 59), (len - 10, len - 1)],
            ),
            // Order as requested when nothing overlaps.
            ("bytes=500-509,0-0".into(), vec![(500, 509), (0, 0)]),
            (
                format!("bytes=0-0,{}-{}", len - 5, len * 3),
                vec![(0, 0), (len - 5, len - 1)],
            ),
            (
                "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30"
                    .into(),
                (0..16).map(|i| (2 * i, 2 * i)).collect(),
            ),
        ];
        for (range, want) in cases {
            let r = get_range(&s.0, path, &range, "");
            assert_eq!(r.status, 206, "{path} {range}");
            r.expect_absent("Content-Range")
                .expect("Accept-Ranges", "bytes")
                .expect("Content-Length", &r.body.len().to_string());
            assert!(r.header("ETag").is_some());
            let boundary = boundary_of(r.header("Content-Type").unwrap());
            let parts = parse_multipart(&r.body, &boundary);
            assert_eq!(parts.len(), want.len(), "{path} {range}");
            for (part, (start, end)) in parts.iter().zip(&want) {
                assert_eq!(part.content_type, "application/octet-stream");
                assert_eq!(part.content_range, format!("bytes {start}-{end}/{len}"));
                assert_eq!(parse_content_range(&part.content_range).1, len as u64);
                assert!(
                    part.data == data[*start..=*end],
                    "{path} {range} part {start}-{end}"
                );
            }
        }
    }
}

#[test]
fn multipart_over_a_kept_alive_connection_stays_in_sync() {
    let s = range_server();
    let mut c = s.0.raw();
    c.send(
        b"GET /large.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-99999,200000-299999\r\n\r\n\
          GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = c.response(false);
    let parts = parse_multipart(&r.body, &boundary_of(r.header("Content-Type").unwrap()));
    assert_eq!(parts.len(), 2);
    assert!(parts[0].data == s.2[..100_000]);
    assert!(parts[1].data == s.2[200_000..]);
    assert_eq!(c.response(false).text(), "<p>page</p>\n");
}

#[test]
fn more_than_sixteen_ranges_send_the_whole_file() {
    let s = range_server();
    let range = format!(
        "bytes={}",
        (0..17)
            .map(|i| format!("{0}-{0}", i * 3))
            .collect::<Vec<_>>()
            .join(",")
    );
    for (path, data) in files(&s) {
        let r = get_range(&s.0, path, &range, "");
        assert_eq!(r.status, 200, "{path}");
        r.expect_absent("Content-Range")
            .expect("Content-Type", "application/octet-stream")
            .expect("Content-Length", &data.len().to_string());
        assert!(r.body == data);
    }
}

#[test]
fn ranges_through_ureq_and_curl() {
    let s = range_server();
    let r = s.0.get("/large.bin", &[("Range", "bytes=1000-1999")]);
    assert_single(&r, &s.2, 1000, 1999, "ureq");
    let url = s.0.url("/large.bin");
    let Some(out) = curl(&["-r", "100-199", &url]) else {
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == s.2[100..200]);
}
