//! The chunked transfer coding (RFC 9112 §7.1): a strict incremental decoder and an encoder.
//!
//! The decoder is written here rather than taken from `httparse::parse_chunk_size`,
//! which reads an empty size line as 0 and accepts a bare LF inside an extension:
//! exactly the leniencies that let a request be framed two ways.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use crate::{Error, Limits};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size { size: u64, digits: bool },
    /// Whitespace after the size: only more whitespace or `;` may follow.
    SizeWs { size: u64 },
    /// Inside chunk extensions, up to CR.
    Ext { size: u64 },
    /// CR of the size line seen; LF must follow.
    SizeLf { size: u64 },
    /// Chunk data, this many bytes left.
    Data { remaining: u64 },
    /// Data done; CR must follow.
    DataCr,
    /// CR after data seen; LF must follow.
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// CR of a trailer line seen; LF must follow.
    TrailerLf,
    /// CR of the final empty line seen; LF must follow.
    FinalLf,
    /// The whole body, trailers included, has been read.
    Done,
}

/// What one call to [`ChunkedDecoder::decode`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input used (framing and data). Advance the buffer by this much.
    pub consumed: usize,
    /// Body data found, as a range of the input (inside `..consumed`); may be empty.
    pub data: Range<usize>,
    /// The body has ended; bytes after `consumed` belong to the next message.
    pub done: bool,
}

/// An incremental, strict decoder of a chunked body.
///
/// Feed it whatever bytes have arrived; it returns data spans without copying,
/// and gives the same bytes and the same error however the input is split.
///
/// ```
/// use http_core::{ChunkedDecoder, Limits};
/// let mut dec = ChunkedDecoder::new(&Limits::default());
/// let input = b"3\r\nabc\r\n0\r\n\r\nNEXT";
/// let mut body = Vec::new();
/// let mut pos = 0;
/// loop {
///     let p = dec.decode(&input[pos..]).unwrap();
///     body.extend_from_slice(&input[pos..][p.data.clone()]);
///     pos += p.consumed;
///     if p.done { break; }
/// }
/// assert_eq!(body, b"abc");
/// assert_eq!(&input[pos..], b"NEXT");
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    line_len: usize,
    trailer_len: usize,
    total: u64,
    max_line: usize,
    max_trailer: usize,
    max_body: u64,
}

impl ChunkedDecoder {
    /// A decoder bounded by `limits` (chunk-line length, trailer size, body size).
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size {
                size: 0,
                digits: false,
            },
            line_len: 0,
            trailer_len: 0,
            total: 0,
            max_line: limits.max_chunk_line_len,
            max_trailer: limits.max_trailer_len,
            max_body: limits.max_body_len,
        }
    }

    /// True once the terminating chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The sizes of the chunks begun so far, added up: the body length once
    /// decoding is done; during it, at least the body bytes decoded (a chunk counts
    /// whole as soon as its size line is read).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Decodes from the start of `input`: consumes framing bytes and at most one
    /// contiguous run of data. Call again with the rest of the input while
    /// `consumed > 0` and not `done`; with nothing consumed, more input is needed.
    pub fn decode(&mut self, input: &[u8]) -> Result<Progress, Error> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data { remaining } = self.state {
                let take = remaining.min((input.len() - i) as u64) as usize;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: left }
                };
                return Ok(Progress {
                    consumed: i + take,
                    data: i..i + take,
                    done: false,
                });
            }
            let b = input[i];
            i += 1;
            self.step(b)?;
            if self.state == State::Done {
                return Ok(Progress {
                    consumed: i,
                    data: i..i,
                    done: true,
                });
            }
        }
        Ok(Progress {
            consumed: i,
            data: i..i,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, b: u8) -> Result<(), Error> {
        self.state = match self.state {
            State::Size { size, digits } => {
                self.count_line()?;
                match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(d))
                            .ok_or(Error::BadChunk)?;
                        State::Size { size, digits: true }
                    }
                    _ if !digits => return Err(Error::BadChunk),
                    b'\r' => State::SizeLf { size },
                    b';' => State::Ext { size },
                    b' ' | b'\t' => State::SizeWs { size },
                    _ => return Err(Error::BadChunk),
                }
            }
            State::SizeWs { size } => {
                self.count_line()?;
                match b {
                    b' ' | b'\t' => State::SizeWs { size },
                    b';' => State::Ext { size },
                    _ => return Err(Error::BadChunk),
                }
            }
            State::Ext { size } => {
                self.count_line()?;
                match b {
                    b'\r' => State::SizeLf { size },
                    b'\t' | b' '..=b'~' | 0x80..=0xff => State::Ext { size },
                    _ => return Err(Error::BadChunk),
                }
            }
            State::SizeLf { size } => {
                if b != b'\n' {
                    return Err(Error::BadChunk);
                }
                self.line_len = 0;
                self.total = self.total.checked_add(size).ok_or(Error::BodyTooLarge)?;
                if self.total > self.max_body {
                    return Err(Error::BodyTooLarge);
                }
                if size == 0 {
                    State::TrailerStart
                } else {
                    State::Data { remaining: size }
                }
            }
            // `decode` hands data out itself and never steps through it.
            s @ State::Data { .. } => s,
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size {
                size: 0,
                digits: false,
            },
            State::DataCr | State::DataLf => return Err(Error::BadChunk),
            State::TrailerStart => {
                self.count_trailer()?;
                match b {
                    b'\r' => State::FinalLf,
                    b'\n' | 0 | b' ' | b'\t' => return Err(Error::BadChunk),
                    _ => State::Trailer,
                }
            }
            State::Trailer => {
                self.count_trailer()?;
                match b {
                    b'\r' => State::TrailerLf,
                    b'\n' | 0 => return Err(Error::BadChunk),
                    _ => State::Trailer,
                }
            }
            State::TrailerLf if b == b'\n' => {
                self.count_trailer()?;
                State::TrailerStart
            }
            State::FinalLf if b == b'\n' => State::Done,
            State::TrailerLf | State::FinalLf => return Err(Error::BadChunk),
            State::Done => State::Done,
        };
        Ok(())
    }

    fn count_line(&mut self) -> Result<(), Error> {
        self.line_len += 1;
        if self.line_len > self.max_line {
            return Err(Error::BadChunk);
        }
        Ok(())
    }

    fn count_trailer(&mut self) -> Result<(), Error> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer {
            return Err(Error::HeadTooLarge);
        }
        Ok(())
    }
}

/// Writes the chunked coding.
///
/// ```
/// use http_core::ChunkedEncoder;
/// let mut out = bytes::BytesMut::new();
/// ChunkedEncoder::chunk(b"hello", &mut out);
/// ChunkedEncoder::finish(&mut out);
/// assert_eq!(&out[..], b"5\r\nhello\r\n0\r\n\r\n");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkedEncoder;

impl ChunkedEncoder {
    /// Writes the size line of a chunk of `len` bytes (`len` must not be 0).
    pub fn chunk_header(len: usize, out: &mut BytesMut) {
        let mut hex = [0u8; 16];
        let mut n = len;
        let mut i = hex.len();
        loop {
            i -= 1;
            hex[i] = b"0123456789abcdef"[n & 15];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        out.reserve(hex.len() - i + 2);
        out.put_slice(&hex[i..]);
        out.put_slice(b"\r\n");
    }

    /// Writes one whole chunk (nothing when `data` is empty, which would end the body).
    pub fn chunk(data: &[u8], out: &mut BytesMut) {
        if data.is_empty() {
            return;
        }
        Self::chunk_header(data.len(), out);
        out.reserve(data.len() + 2);
        out.put_slice(data);
        out.put_slice(b"\r\n");
    }

    /// Writes the last chunk and an empty trailer section.
    pub fn finish(out: &mut BytesMut) {
        out.put_slice(b"0\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body and the bytes left over.
    fn decode_in_steps(input: &[u8], step: usize, limits: &Limits) -> Result<(Vec<u8>, usize), Error> {
        let mut dec = ChunkedDecoder::new(limits);
        let mut body = Vec::new();
        let mut pos = 0;
        let mut avail = step.min(input.len());
        loop {
            let p = dec.decode(&input[pos..avail])?;
            body.extend_from_slice(&input[pos..avail][p.data.clone()]);
            pos += p.consumed;
            if p.done {
                return Ok((body, input.len() - pos));
            }
            if p.consumed == 0 {
                if avail == input.len() {
                    return Err(Error::UnexpectedEof);
                }
                avail = (avail + step).min(input.len());
            }
        }
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), Error> {
        decode_in_steps(input, input.len().max(1), &Limits::default())
    }

    #[test]
    fn chunked_table() {
        let ok: &[(&[u8], &[u8], usize)] = &[
            (b"0\r\n\r\n", b"", 0),
            (b"3\r\nabc\r\n0\r\n\r\n", b"abc", 0),
            (b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET", b"abcde", 3),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 0),
            (b"a;name=value\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 0),
            (b"3 ;ext\r\nabc\r\n0\r\n\r\n", b"abc", 0),
            (b"3;a=\"q\";b\r\nabc\r\n0\r\n\r\n", b"abc", 0),
            (b"003\r\nabc\r\n0\r\n\r\n", b"abc", 0),
            (b"3\r\nabc\r\n0\r\nTrailer: x\r\nMore: y\r\n\r\n", b"abc", 0),
        ];
        for (input, body, left) in ok {
            assert_eq!(
                decode_all(input),
                Ok((body.to_vec(), *left)),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let bad: &[(&[u8], Error)] = &[
            // overflow, then a smuggled request that must never be reached
            (
                b"f0000000000000003\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
                Error::BadChunk,
            ),
            (b"10000000000000000\r\n", Error::BadChunk),
            (b"\r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"3\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"3\r\nabc\n0\r\n\r\n", Error::BadChunk),
            (b"3\r\nabcX\r\n0\r\n\r\n", Error::BadChunk),
            (b"3\r\nabc\r\n0\n\r\n", Error::BadChunk),
            (b"3\r\nabc\r\n0\r\n\n", Error::BadChunk),
            (b"3;a\nb\r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"3;a\0\r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"-3\r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"+3\r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"0x3\r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b" 3\r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"3 \r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"3 x\r\nabc\r\n0\r\n\r\n", Error::BadChunk),
            (b"g\r\n", Error::BadChunk),
            (b"3\r\nabc\r\n0\r\nTrailer: x\n\r\n", Error::BadChunk),
            (b"3\r\nabc\r\n0\r\n folded\r\n\r\n", Error::BadChunk),
        ];
        for (input, err) in bad {
            assert_eq!(
                decode_all(input),
                Err(*err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(decode_all(b"3\r\nab"), Err(Error::UnexpectedEof));
    }

    #[test]
    fn chunked_limits() {
        let limits = Limits {
            max_body_len: 4,
            max_chunk_line_len: 8,
            max_trailer_len: 10,
            ..Limits::default()
        };
        let run = |input: &[u8]| decode_in_steps(input, input.len(), &limits);
        assert_eq!(run(b"4\r\nabcd\r\n0\r\n\r\n"), Ok((b"abcd".to_vec(), 0)));
        assert_eq!(run(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), Err(Error::BodyTooLarge));
        assert_eq!(run(b"1;aaaaaaaaaa\r\na\r\n0\r\n\r\n"), Err(Error::BadChunk));
        assert_eq!(run(b"0\r\nX-Long-Trailer: 1\r\n\r\n"), Err(Error::HeadTooLarge));
    }

    #[test]
    fn encoder_writes_hex_sizes() {
        let mut out = BytesMut::new();
        ChunkedEncoder::chunk(&[7u8; 255], &mut out);
        assert!(out.starts_with(b"ff\r\n"));
        let mut out = BytesMut::new();
        ChunkedEncoder::chunk(b"", &mut out);
        assert!(out.is_empty());
        ChunkedEncoder::chunk_header(0x1000, &mut out);
        assert_eq!(&out[..], b"1000\r\n");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
            let mut out = BytesMut::new();
            for c in chunks {
                ChunkedEncoder::chunk(c, &mut out);
            }
            ChunkedEncoder::finish(&mut out);
            out.to_vec()
        }

        proptest! {
            #[test]
            fn encode_then_decode_round_trips(
                chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
                step in 1usize..64,
            ) {
                let wire = encode(&chunks);
                let (body, left) = decode_in_steps(&wire, step, &Limits::default()).unwrap();
                prop_assert_eq!(body, chunks.concat());
                prop_assert_eq!(left, 0);
            }

            #[test]
            fn same_outcome_for_any_split(
                input in proptest::collection::vec(
                    prop_oneof![
                        Just(b'0'), Just(b'3'), Just(b'a'), Just(b'f'), Just(b'\r'), Just(b'\n'),
                        Just(b';'), Just(b' '), Just(b'x'), Just(0u8),
                    ],
                    0..60,
                ),
                step in 1usize..16,
            ) {
                let whole = decode_in_steps(&input, input.len().max(1), &Limits::default());
                let split = decode_in_steps(&input, step, &Limits::default());
                prop_assert_eq!(whole, split);
            }

            #[test]
            fn valid_bodies_decode_the_same_for_any_split(
                chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..100), 0..6),
                ext in proptest::option::of("[a-z]{1,5}(=[a-z0-9]{1,5})?"),
                step in 1usize..32,
            ) {
                let mut wire = Vec::new();
                for c in &chunks {
                    wire.extend_from_slice(format!("{:X}", c.len()).as_bytes());
                    if let Some(e) = &ext {
                        wire.extend_from_slice(format!(";{e}").as_bytes());
                    }
                    wire.extend_from_slice(b"\r\n");
                    wire.extend_from_slice(c);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"0\r\nT: v\r\n\r\n");
                let whole = decode_in_steps(&wire, wire.len(), &Limits::default());
                let split = decode_in_steps(&wire, step, &Limits::default());
                prop_assert_eq!(&whole, &split);
                prop_assert_eq!(whole.unwrap().0, chunks.concat());
            }
        }
    }
}
