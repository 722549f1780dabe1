//! Writing a [`Response`] on an HTTP/2 stream: the head as a HEADERS frame
//! (the connection-specific fields left out), the body as DATA frames sent
//! no faster than the client's flow-control windows open. A body held in
//! memory goes out in slices of its own [`Bytes`], never copied; a streamed
//! body is read in pieces no larger than the capacity the stream was given,
//! so a client that does not read holds at most the send buffer per stream.

use std::cell::RefCell;
use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use ::h2::server::SendResponse;
use ::h2::{Reason, SendStream};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, DATE};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::server::encode::{is_bodiless, refuse_length_only};
use crate::server::service::{Body, Response};
use crate::wire::date::{with_date_at, DATE_LEN};
use crate::{is_hop_by_hop, Method};

/// Largest piece of a streamed body read at once.
const READ_CHUNK: usize = 32 * 1024;

/// Why a response could not be sent whole.
#[derive(Debug)]
pub(super) enum SendFail {
    /// The stream or the connection is gone (reset by the client, closed).
    Gone,
    /// The client gave no window to send in within the write timeout: the
    /// stream has been reset.
    TimedOut,
    /// The body's source failed or ended before its declared length: the
    /// stream has been reset.
    Source,
}

impl From<::h2::Error> for SendFail {
    fn from(_: ::h2::Error) -> Self {
        SendFail::Gone
    }
}

thread_local! {
    /// The `Date` value of the current second, shared by the responses of
    /// every connection on this thread (a clone is a reference count).
    static DATE_VALUE: RefCell<([u8; DATE_LEN], HeaderValue)> =
        const { RefCell::new(([0; DATE_LEN], HeaderValue::from_static(""))) };
}

thread_local! {
    /// The last `content-length` value made on this thread: a file asked for
    /// again and again gets its value by reference count.
    static LENGTH_VALUE: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((0, HeaderValue::from_static("0"))) };
}

fn length_value(n: u64) -> HeaderValue {
    LENGTH_VALUE.with(|cell| {
        let mut c = cell.borrow_mut();
        if c.0 != n {
            *c = (n, HeaderValue::from(n));
        }
        c.1.clone()
    })
}

fn date_value(at: Instant) -> HeaderValue {
    with_date_at(at, |d| {
        DATE_VALUE.with(|cell| {
            let mut c = cell.borrow_mut();
            if &c.0 != d {
                c.0 = *d;
                c.1 = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(d))
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
            }
            c.1.clone()
        })
    })
}

/// Fields HTTP/2 does not carry (RFC 9113 §8.2.2): never sent.
fn is_connection_specific(name: &[u8]) -> bool {
    is_hop_by_hop(name) || name.eq_ignore_ascii_case(b"proxy-connection")
}

fn add(map: &mut HeaderMap, name: &[u8], value: HeaderValue) {
    if is_connection_specific(name) {
        return;
    }
    if let Ok(name) = HeaderName::from_bytes(name) {
        map.append(name, value);
    }
}

/// Adds the lines of `block` (each `Name: value\r\n`, as a header block's
/// builder writes them), the values sliced out of it without copying.
fn add_lines(map: &mut HeaderMap, block: &Bytes) {
    let mut at = 0;
    while let Some(nl) = block[at..].iter().position(|&b| b == b'\n') {
        let end = at + nl;
        let line_end = if end > at && block[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        let line = &block[at..line_end];
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let start = at + colon + 1 + usize::from(line.get(colon + 1) == Some(&b' '));
            if let Ok(v) = HeaderValue::from_maybe_shared(block.slice(start..line_end)) {
                add(map, &line[..colon], v);
            }
        }
        at = end + 1;
    }
}

/// A header block (and the `extra` lines after it) as a header map, with a
/// `Date` field first whose value is to be set.
struct BlockMap {
    /// Held, so that the memory compared by address cannot be reused for
    /// other lines while the entry lives (`Bytes` never change).
    block: Bytes,
    extra: Bytes,
    map: HeaderMap,
}

impl BlockMap {
    fn is_for(&self, block: &Bytes, extra: &Bytes) -> bool {
        same(&self.block, block) && same(&self.extra, extra)
    }
}

fn same(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

thread_local! {
    /// The map of the last header block answered on this thread: a file
    /// asked for again and again (its cached block is the same `Bytes`) has
    /// its fields cloned, not parsed from the lines again.
    static BLOCK_MAP: RefCell<Option<BlockMap>> = const { RefCell::new(None) };
}

/// The fields of `block` then `extra`, after a `Date` field and before a
/// `Content-Length` field (both of no value yet; a block holds neither).
fn block_map(block: &Bytes, extra: &Bytes) -> HeaderMap {
    BLOCK_MAP.with(|cell| {
        let mut c = cell.borrow_mut();
        if let Some(hit) = c.as_ref().filter(|m| m.is_for(block, extra)) {
            return hit.map.clone();
        }
        let mut map = HeaderMap::with_capacity(12);
        map.insert(DATE, HeaderValue::from_static(""));
        add_lines(&mut map, block);
        if !extra.is_empty() {
            add_lines(&mut map, extra);
        }
        // Its slot is kept: a clone has no room to spare, and adding the
        // field to it would reallocate.
        map.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        *c = Some(BlockMap {
            block: block.clone(),
            extra: extra.clone(),
            map: map.clone(),
        });
        map
    })
}

/// The service's header block and headers, then `extra`, plus `Date` and
/// `Content-Length`.
fn headers(resp: &Response, dated: Instant, extra: &Bytes, content_length: Option<u64>) -> HeaderMap {
    let mut map = block_map(resp.block.shared(), extra);
    if let Some(date) = map.get_mut(DATE) {
        *date = date_value(dated);
    }
    if !resp.headers.is_empty() || content_length.is_none() {
        // The last field: removed without moving the others.
        map.remove(CONTENT_LENGTH);
    }
    for (name, value) in &resp.headers {
        if let Ok(v) = HeaderValue::from_maybe_shared(value.clone()) {
            add(&mut map, name.as_bytes(), v);
        }
    }
    if let Some(n) = content_length {
        map.insert(CONTENT_LENGTH, length_value(n));
    }
    map
}

/// Sends `resp` as the answer to a `method` request, dated `dated`, with the
/// header lines `extra`. Returns the body bytes sent. `write_timeout` bounds
/// each wait for window.
pub(super) async fn send_response(
    respond: &mut SendResponse<Bytes>,
    resp: &mut Response,
    method: Method,
    dated: Instant,
    extra: &Bytes,
    write_timeout: Duration,
) -> Result<u64, SendFail> {
    if resp.status < 200 {
        // HTTP/2 has no protocol switch, and an interim answer is no answer.
        tracing::warn!(
            status = resp.status,
            "no final status for an HTTP/2 request; sending 500"
        );
        let log = std::mem::take(&mut resp.log);
        *resp = Response::text(500, "internal error: no final response\n");
        resp.log = log;
    }
    if matches!(resp.body, Body::Length(_)) && method != Method::Head && !is_bodiless(resp.status) {
        refuse_length_only(resp, &mut false);
    }
    let bodiless = is_bodiless(resp.status);
    let head_only = bodiless || method == Method::Head;
    let content_length = if bodiless { None } else { resp.body.len() };
    let mut head = http::Response::new(());
    *head.status_mut() = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *head.headers_mut() = headers(resp, dated, extra, content_length);
    let body = std::mem::replace(&mut resp.body, Body::Empty);
    let end = head_only || body.is_empty();
    let mut stream = respond.send_response(head, end)?;
    if end {
        return Ok(0);
    }
    let r = match body {
        Body::Full(b) => {
            let n = b.len() as u64;
            send_bytes(&mut stream, b, write_timeout).await.map(|()| n)
        }
        Body::Stream { len, reader } => send_reader(&mut stream, reader, len, write_timeout).await,
        Body::Empty | Body::Length(_) => Ok(0),
    };
    match &r {
        Err(SendFail::TimedOut) => stream.send_reset(Reason::CANCEL),
        Err(SendFail::Source) => stream.send_reset(Reason::INTERNAL_ERROR),
        _ => {}
    }
    r
}

/// Waits for window to send up to `want` bytes; returns how many may go.
async fn capacity(stream: &mut SendStream<Bytes>, want: usize, timeout: Duration) -> Result<usize, SendFail> {
    stream.reserve_capacity(want);
    let have = stream.capacity();
    if have > 0 {
        return Ok(have);
    }
    let wait = poll_fn(|cx| loop {
        return match stream.poll_capacity(cx) {
            Poll::Ready(Some(Ok(0))) => continue,
            Poll::Ready(Some(Ok(n))) => Poll::Ready(Ok(n)),
            Poll::Ready(Some(Err(_)) | None) => Poll::Ready(Err(SendFail::Gone)),
            Poll::Pending => Poll::Pending,
        };
    });
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(SendFail::TimedOut),
    }
}

async fn send_bytes(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    timeout: Duration,
) -> Result<(), SendFail> {
    while !data.is_empty() {
        let n = capacity(stream, data.len(), timeout).await?.min(data.len());
        let piece = data.split_to(n);
        stream.send_data(piece, data.is_empty())?;
    }
    Ok(())
}

async fn send_reader(
    stream: &mut SendStream<Bytes>,
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    len: Option<u64>,
    timeout: Duration,
) -> Result<u64, SendFail> {
    let mut buf = BytesMut::new();
    let mut sent: u64 = 0;
    loop {
        let left = len.map(|n| n - sent);
        let want = left.map_or(READ_CHUNK, |l| l.min(READ_CHUNK as u64) as usize);
        let n = capacity(stream, want, timeout).await?.min(want);
        buf.reserve(n);
        let got = (&mut reader)
            .take(n as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|_| SendFail::Source)?;
        if got == 0 {
            if len.is_some() {
                // Ended before the length the head announced.
                return Err(SendFail::Source);
            }
            stream.send_data(Bytes::new(), true)?;
            return Ok(sent);
        }
        sent += got as u64;
        let end = len == Some(sent);
        stream.send_data(buf.split().freeze(), end)?;
        if end {
            return Ok(sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeaderBlock;

    fn block(lines: &[(&str, &str)]) -> HeaderBlock {
        let mut b = HeaderBlock::builder();
        for (n, v) in lines {
            assert!(b.push(n, v.as_bytes()));
        }
        b.build()
    }

    fn fields(map: &HeaderMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    }

    /// The map of a block is reused only for that same block and the same
    /// extra lines: answers alternating between two cached files, with and
    /// without HSTS, each get their own fields, `Date` first and the
    /// response's own headers and length after the block's (no length for a
    /// bodiless answer).
    #[test]
    fn cached_block_maps_never_mix() {
        let html = block(&[("Content-Type", "text/html"), ("ETag", "\"a\"")]);
        let css = block(&[("Content-Type", "text/css"), ("Proxy-Connection", "close")]);
        let hsts = Bytes::from_static(b"Strict-Transport-Security: max-age=60\r\n");
        let now = Instant::now();
        for _ in 0..3 {
            for (b, extra) in [(&html, Bytes::new()), (&css, hsts.clone()), (&html, hsts.clone())] {
                let bare = Response::new(200).header_block(b.clone());
                let plain = fields(&headers(&bare, now, &extra, Some(7)));
                assert_eq!(
                    plain.last().unwrap(),
                    &("content-length".to_owned(), "7".to_owned())
                );
                let no_length = fields(&headers(&bare, now, &extra, None));
                assert_eq!(plain[..plain.len() - 1], no_length[..]);
                let resp = Response::new(200)
                    .header_block(b.clone())
                    .header("Vary", "Accept-Encoding");
                let map = headers(&resp, now, &extra, Some(5));
                let got = fields(&map);
                assert_eq!(got[0].0, "date");
                assert_eq!(got[0].1.len(), DATE_LEN);
                let mut want: Vec<(String, String)> = if b.as_bytes() == html.as_bytes() {
                    vec![
                        ("content-type".into(), "text/html".into()),
                        ("etag".into(), "\"a\"".into()),
                    ]
                } else {
                    // `Proxy-Connection` is connection-specific: not sent over HTTP/2.
                    vec![("content-type".into(), "text/css".into())]
                };
                if !extra.is_empty() {
                    want.push(("strict-transport-security".into(), "max-age=60".into()));
                }
                assert_eq!(plain[1..plain.len() - 1], want[..]);
                want.push(("vary".into(), "Accept-Encoding".into()));
                want.push(("content-length".into(), "5".into()));
                assert_eq!(got[1..], want[..]);
            }
        }
    }
}
