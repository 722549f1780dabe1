//! The head of a [`Response`] as an HTTP/2 header block: `:status`, `date`,
//! the service's fields (the connection-specific ones left out, RFC 9113
//! §8.2.2) and `content-length`, HPACK-encoded with the connection's
//! encoder, which makes the fields repeated from one answer to the next
//! one-byte references.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::hpack::{Encoder, FieldMemo};
use crate::server::encode::{is_bodiless, refuse_length_only};
use crate::server::service::{Body, Response};
use crate::wire::date::{with_date_at, DATE_LEN};
use crate::{is_hop_by_hop, HeaderBlock, Method};

/// Fields HTTP/2 does not carry (RFC 9113 §8.2.2): never sent.
fn is_connection_specific(name: &[u8]) -> bool {
    is_hop_by_hop(name) || name.eq_ignore_ascii_case(b"proxy-connection")
}

/// Feeds the lines of `block` (each `Name: value\r\n`, as a header block's
/// builder writes them) to `f`.
fn lines(block: &[u8], mut f: impl FnMut(&[u8], &[u8])) {
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
            let value = &line[colon + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            f(&line[..colon], value);
        }
        at = end + 1;
    }
}

/// Makes `resp` fit to be sent as the answer to a `method` request: a final
/// status, no length-only body where a body is due. Returns the
/// `content-length` to send (none for a bodiless status), and whether the
/// answer has no body to send (bodiless, HEAD, or empty).
pub(super) fn prepare(resp: &mut Response, method: Method) -> (Option<u64>, bool) {
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
    (content_length, head_only || resp.body.is_empty())
}

/// The fields of a header block (and the extra lines after it), split out
/// once, each with what the encoder learned when it sent it.
#[derive(Debug)]
struct BlockMemo {
    /// Held, so that the memory compared by address cannot be reused for
    /// other lines while the memo lives (`Bytes` never change).
    block: HeaderBlock,
    extra: Bytes,
    /// (name start, name end, value start, value end) in the block's bytes
    /// then the extra lines' (`in_extra`), with the encoder's memo.
    fields: Vec<(bool, [usize; 4], FieldMemo)>,
}

impl BlockMemo {
    fn new(block: &HeaderBlock, extra: &Bytes) -> BlockMemo {
        let mut fields = Vec::new();
        for (in_extra, bytes) in [(false, block.as_bytes()), (true, &extra[..])] {
            let base = bytes.as_ptr() as usize;
            lines(bytes, |name, value| {
                if !is_connection_specific(name) {
                    let n = name.as_ptr() as usize - base;
                    let v = value.as_ptr() as usize - base;
                    fields.push((
                        in_extra,
                        [n, n + name.len(), v, v + value.len()],
                        FieldMemo::Unknown,
                    ));
                }
            });
        }
        BlockMemo {
            block: block.clone(),
            extra: extra.clone(),
            fields,
        }
    }

    fn is_for(&self, block: &HeaderBlock, extra: &Bytes) -> bool {
        same(self.block.as_bytes(), block.as_bytes()) && same(&self.extra, extra)
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// Header blocks remembered per connection.
const BLOCK_MEMOS: usize = 4;

/// What a connection's encoder learned of the fields it sends again and
/// again: a file answered over and over has the same header block (the
/// cached one, the same bytes), so its fields are split out once and sent
/// as one indexed byte each without a lookup; `date` and `content-length`
/// are remembered by value.
#[derive(Debug, Default)]
pub(super) struct HeadMemo {
    blocks: VecDeque<BlockMemo>,
    date: Option<([u8; DATE_LEN], FieldMemo)>,
    length: Option<(u64, FieldMemo)>,
}

/// Encodes the head of `resp`, dated `dated`, with the header lines `extra`
/// and `content_length`, as one header block appended to `out`.
pub(super) fn encode_head(
    enc: &mut Encoder,
    memo: &mut HeadMemo,
    resp: &Response,
    dated: Instant,
    extra: &Bytes,
    content_length: Option<u64>,
    out: &mut BytesMut,
) {
    enc.begin(out);
    enc.status(resp.status, out);
    with_date_at(dated, |d| {
        let m = match &mut memo.date {
            Some((known, m)) if known == d => m,
            slot => &mut slot.insert((*d, FieldMemo::Unknown)).1,
        };
        enc.field_memo(m, b"date", d, out);
    });
    if !resp.block.as_bytes().is_empty() || !extra.is_empty() {
        let at = match memo.blocks.iter().position(|b| b.is_for(&resp.block, extra)) {
            Some(at) => at,
            None => {
                if memo.blocks.len() == BLOCK_MEMOS {
                    memo.blocks.pop_back();
                }
                memo.blocks.push_front(BlockMemo::new(&resp.block, extra));
                0
            }
        };
        let b = &mut memo.blocks[at];
        let (block, extra) = (b.block.as_bytes(), &b.extra[..]);
        for (in_extra, [n0, n1, v0, v1], m) in &mut b.fields {
            let bytes = if *in_extra { extra } else { block };
            enc.field_memo(m, &bytes[*n0..*n1], &bytes[*v0..*v1], out);
        }
    }
    for (name, value) in &resp.headers {
        if !is_connection_specific(name.as_bytes()) {
            enc.field(name.as_bytes(), value, out);
        }
    }
    if let Some(n) = content_length {
        if let Some((known, m)) = &mut memo.length {
            if *known == n {
                let mut digits = itoa::Buffer::new();
                enc.field_memo(m, b"content-length", digits.format(n).as_bytes(), out);
                return;
            }
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut m = FieldMemo::Unknown;
        enc.field_memo(&mut m, b"content-length", &digits[at..], out);
        memo.length = Some((n, m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::hpack::{Decoder, HeaderList};
    use crate::HeaderBlock;

    fn block(lines: &[(&str, &str)]) -> HeaderBlock {
        let mut b = HeaderBlock::builder();
        for (n, v) in lines {
            assert!(b.push(n, v.as_bytes()));
        }
        b.build()
    }

    fn fields(l: &HeaderList) -> Vec<(String, String)> {
        l.iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    /// Answers alternating between two header blocks, with and without
    /// HSTS, through one encoder and one decoder (as a client's): each gets
    /// its own fields in order, `:status` and `date` first, the block's
    /// fields lowercased, the connection-specific ones left out, the
    /// response's own headers and the length last (none when not given);
    /// once the fields are known, an answer's block is one byte a field.
    #[test]
    fn heads_decode_to_their_fields_and_repeat_in_one_byte_each() {
        let html = block(&[("Content-Type", "text/html"), ("ETag", "\"a\"")]);
        let css = block(&[("Content-Type", "text/css"), ("Proxy-Connection", "close")]);
        let hsts = Bytes::from_static(b"Strict-Transport-Security: max-age=60\r\n");
        let now = Instant::now();
        let mut enc = Encoder::new();
        let mut memo = HeadMemo::default();
        let mut dec = Decoder::new(4096);
        let mut got = HeaderList::default();
        for round in 0..3 {
            for (b, extra) in [(&html, Bytes::new()), (&css, hsts.clone()), (&html, hsts.clone())] {
                let resp = Response::new(200)
                    .header_block(b.clone())
                    .header("Vary", "Accept-Encoding")
                    .header("Connection", "close");
                for length in [Some(5), None] {
                    let mut out = BytesMut::new();
                    encode_head(&mut enc, &mut memo, &resp, now, &extra, length, &mut out);
                    dec.decode(&out, 1 << 16, &mut got).unwrap();
                    let f = fields(&got);
                    assert_eq!(f[0], (":status".to_owned(), "200".to_owned()));
                    assert_eq!(f[1].0, "date");
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
                    want.push(("vary".into(), "Accept-Encoding".into()));
                    if let Some(n) = length {
                        want.push(("content-length".into(), n.to_string()));
                    }
                    assert_eq!(f[2..], want[..]);
                    if round > 0 {
                        assert_eq!(out.len(), f.len(), "{f:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn heads_without_a_final_status_or_with_a_length_only_body() {
        let mut r = Response::new(101);
        assert_eq!(prepare(&mut r, Method::Get), (Some(34), false));
        assert_eq!(r.status, 500);
        let mut r = Response::new(200).body(Body::Length(10));
        assert_eq!(prepare(&mut r, Method::Head), (Some(10), true));
        let mut r = Response::new(204);
        assert_eq!(prepare(&mut r, Method::Get), (None, true));
        let mut r = Response::new(200).body("abc");
        assert_eq!(prepare(&mut r, Method::Get), (Some(3), false));
    }
}
