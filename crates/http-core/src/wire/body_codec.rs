//! Message bodies on the wire, for both roles: [`BodyDecoder`] takes the framing
//! off a body as it arrives (a request body for a server, a response body for a
//! client), [`BodyEncoder`] puts framing on a body being sent.
//!
//! There is one implementation of each in the workspace: the server's request
//! bodies, the proxy's upstream responses and its re-framed request bodies all go
//! through these, so there is one set of framing rules to audit for smuggling.

use bytes::{BufMut, BytesMut};

use crate::{BodyKind, ChunkedDecoder, ChunkedEncoder, Error, Limits, Progress};

/// Decodes a body of any framing from the bytes that follow its head.
///
/// Pure: it never reads; the caller feeds it what it has buffered and reads more
/// when nothing was consumed. Each call consumes framing bytes and hands out at
/// most one contiguous run of data, as a range of the input, so the caller can
/// split it off its buffer without copying (a server) or copy it straight into a
/// caller's buffer (a client).
///
/// ```
/// use http_core::{BodyDecoder, BodyKind, Limits};
/// let mut dec = BodyDecoder::new(BodyKind::Chunked, &Limits::default());
/// let wire = b"3\r\nabc\r\n0\r\n\r\nNEXT";
/// let mut body = Vec::new();
/// let mut pos = 0;
/// while !dec.is_done() {
///     let p = dec.decode(&wire[pos..]).unwrap();
///     body.extend_from_slice(&wire[pos..][p.data.clone()]);
///     pos += p.consumed;
/// }
/// assert_eq!(body, b"abc");
/// assert_eq!(&wire[pos..], b"NEXT");
///
/// // A close-delimited response body ends when the server closes.
/// let mut dec = BodyDecoder::new(BodyKind::UntilClose, &Limits::default());
/// assert_eq!(dec.decode(b"data").unwrap().data, 0..4);
/// assert!(dec.eof().is_ok() && dec.is_done());
/// // Any other framing cut short by the peer is an error.
/// let mut dec = BodyDecoder::new(BodyKind::Length(10), &Limits::default());
/// dec.decode(b"short").unwrap();
/// assert!(dec.eof().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: DecodeState,
}

#[derive(Debug, Clone)]
enum DecodeState {
    Length(u64),
    /// Boxed: chunked bodies are rare, and the decoder would otherwise enlarge
    /// every message's state.
    Chunked(Box<ChunkedDecoder>),
    UntilClose,
    Done,
}

impl BodyDecoder {
    /// A decoder for a body framed as `kind`, bounded by `limits` (chunk-line and
    /// trailer sizes, and the total length of a chunked body).
    pub fn new(kind: BodyKind, limits: &Limits) -> Self {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => DecodeState::Done,
            BodyKind::Length(n) => DecodeState::Length(n),
            BodyKind::Chunked => DecodeState::Chunked(Box::new(ChunkedDecoder::new(limits))),
            BodyKind::UntilClose => DecodeState::UntilClose,
        };
        BodyDecoder { state }
    }

    /// Decodes from the start of `input`. With nothing consumed and not done, more
    /// input is needed (or, at the end of the stream, [`eof`](Self::eof) decides).
    pub fn decode(&mut self, input: &[u8]) -> Result<Progress, Error> {
        match &mut self.state {
            DecodeState::Done => Ok(Progress {
                consumed: 0,
                data: 0..0,
                done: true,
            }),
            DecodeState::Length(remaining) => {
                let take = (*remaining).min(input.len() as u64) as usize;
                *remaining -= take as u64;
                let done = *remaining == 0;
                if done {
                    self.state = DecodeState::Done;
                }
                Ok(Progress {
                    consumed: take,
                    data: 0..take,
                    done,
                })
            }
            DecodeState::UntilClose => Ok(Progress {
                consumed: input.len(),
                data: 0..input.len(),
                done: false,
            }),
            DecodeState::Chunked(dec) => {
                let p = dec.decode(input)?;
                if p.done {
                    self.state = DecodeState::Done;
                }
                Ok(p)
            }
        }
    }

    /// The peer ended the stream: the end of a close-delimited body, an error
    /// ([`Error::UnexpectedEof`]) for any other body not yet complete.
    pub fn eof(&mut self) -> Result<(), Error> {
        match self.state {
            DecodeState::Done => Ok(()),
            DecodeState::UntilClose => {
                self.state = DecodeState::Done;
                Ok(())
            }
            _ => {
                self.state = DecodeState::Done;
                Err(Error::UnexpectedEof)
            }
        }
    }

    /// Stops decoding (the message was abandoned or failed).
    pub fn abandon(&mut self) {
        self.state = DecodeState::Done;
    }

    /// True once the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        matches!(self.state, DecodeState::Done)
    }

    /// The bytes still to come when the body has a declared length.
    pub fn remaining_len(&self) -> Option<u64> {
        match &self.state {
            DecodeState::Length(n) => Some(*n),
            DecodeState::Done => Some(0),
            DecodeState::Chunked(_) | DecodeState::UntilClose => None,
        }
    }

    /// True when the body is chunked on the wire (and not finished).
    pub fn is_chunked(&self) -> bool {
        matches!(self.state, DecodeState::Chunked(_))
    }

    /// True when the body ends only when the peer closes (and has not yet).
    pub fn is_until_close(&self) -> bool {
        matches!(self.state, DecodeState::UntilClose)
    }
}

/// Frames a body being sent: with `Content-Length` the bytes go out as they are
/// and their count must come out exact; chunked, each piece becomes a chunk and
/// the last chunk ends the body.
///
/// ```
/// use http_core::{BodyEncoder, BodyKind, Error};
/// let mut out = bytes::BytesMut::new();
/// let mut enc = BodyEncoder::new(BodyKind::Chunked);
/// enc.encode(b"hello", &mut out).unwrap();
/// enc.finish(&mut out).unwrap();
/// assert_eq!(&out[..], b"5\r\nhello\r\n0\r\n\r\n");
///
/// let mut enc = BodyEncoder::new(BodyKind::Length(3));
/// assert_eq!(enc.encode(b"four", &mut out), Err(Error::BadContentLength));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyEncoder {
    kind: BodyKind,
    sent: u64,
}

impl BodyEncoder {
    /// An encoder for a body announced as `kind` (`Empty`, `Length` or `Chunked`;
    /// a close-delimited body is sent as it is and ended by closing).
    pub fn new(kind: BodyKind) -> Self {
        BodyEncoder { kind, sent: 0 }
    }

    /// The framing header line the head must carry for this body (none for an
    /// empty or close-delimited one).
    pub fn write_framing_header(&self, out: &mut BytesMut) {
        match self.kind {
            BodyKind::Length(n) => crate::write_content_length(out, n),
            BodyKind::Chunked => crate::write_header(out, "Transfer-Encoding", b"chunked"),
            BodyKind::Empty | BodyKind::UntilClose => {}
        }
    }

    /// Appends `data`, framed, to `out`. A length-delimited body refuses bytes
    /// beyond its declared length ([`Error::BadContentLength`]).
    pub fn encode(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), Error> {
        self.count(data.len())?;
        if self.kind == BodyKind::Chunked {
            ChunkedEncoder::chunk(data, out);
        } else {
            out.put_slice(data);
        }
        Ok(())
    }

    /// Counts `len` bytes that the caller sends unframed itself (a large piece of
    /// a length-delimited body, written from its own buffer). Only valid when
    /// [`needs_framing`](Self::needs_framing) is false.
    pub fn count(&mut self, len: usize) -> Result<(), Error> {
        let sent = self.sent + len as u64;
        match self.kind {
            BodyKind::Length(n) if sent > n => return Err(Error::BadContentLength),
            BodyKind::Empty if len > 0 => return Err(Error::BadContentLength),
            _ => {}
        }
        self.sent = sent;
        Ok(())
    }

    /// True when data must go through [`encode`](Self::encode) (chunked); false
    /// when it is sent as it is.
    pub fn needs_framing(&self) -> bool {
        self.kind == BodyKind::Chunked
    }

    /// Ends the body: the last chunk of a chunked body; for a length-delimited
    /// one, [`Error::UnexpectedEof`] when fewer bytes than declared were sent.
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<(), Error> {
        match self.kind {
            BodyKind::Chunked => {
                ChunkedEncoder::finish(out);
                self.kind = BodyKind::Empty;
                self.sent = 0;
                Ok(())
            }
            BodyKind::Length(n) if self.sent != n => Err(Error::UnexpectedEof),
            _ => Ok(()),
        }
    }

    /// Body bytes sent so far (without framing).
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` in pieces of `step` bytes; returns the body, what is left
    /// over, and whether the body ended.
    fn decode_in_steps(kind: BodyKind, input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), Error> {
        let mut dec = BodyDecoder::new(kind, &Limits::default());
        let mut body = Vec::new();
        let mut pos = 0;
        let mut avail = step.min(input.len());
        loop {
            let p = dec.decode(&input[pos..avail])?;
            body.extend_from_slice(&input[pos..avail][p.data.clone()]);
            pos += p.consumed;
            if p.done {
                return Ok((body, input.len() - pos, true));
            }
            if p.consumed == 0 || pos == avail {
                if avail == input.len() {
                    dec.eof()?;
                    return Ok((body, input.len() - pos, dec.is_done()));
                }
                avail = (avail + step).min(input.len());
            }
        }
    }

    /// A framing, the bytes that follow the head, and the body and leftover
    /// bytes (or the error) they decode to.
    type Case<'a> = (BodyKind, &'a [u8], Result<(&'a [u8], usize), Error>);

    #[test]
    fn every_framing_decodes_the_same_for_any_split() {
        let cases: &[Case] = &[
            (BodyKind::Empty, b"GET", Ok((b"", 3))),
            (BodyKind::Length(0), b"x", Ok((b"", 1))),
            (BodyKind::Length(5), b"helloGET", Ok((b"hello", 3))),
            (BodyKind::Length(6), b"hello", Err(Error::UnexpectedEof)),
            (BodyKind::Chunked, b"3\r\nabc\r\n0\r\n\r\nX", Ok((b"abc", 1))),
            (BodyKind::Chunked, b"3\r\nabc\r\n", Err(Error::UnexpectedEof)),
            (BodyKind::Chunked, b"3\r\nabcX\r\n0\r\n\r\n", Err(Error::BadChunk)),
            (BodyKind::UntilClose, b"all of it", Ok((b"all of it", 0))),
        ];
        for (kind, input, want) in cases {
            for step in [1, 2, 3, input.len().max(1)] {
                let got = decode_in_steps(*kind, input, step).map(|(b, left, _)| (b, left));
                let want = (*want).map(|(b, left)| (b.to_vec(), left));
                assert_eq!(
                    got,
                    want,
                    "{kind:?} {:?} step {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn a_decoder_past_its_end_consumes_nothing() {
        let mut dec = BodyDecoder::new(BodyKind::Length(2), &Limits::default());
        assert_eq!(dec.decode(b"abcd").unwrap().consumed, 2);
        assert!(dec.is_done());
        let p = dec.decode(b"cd").unwrap();
        assert_eq!((p.consumed, p.done), (0, true));
        assert_eq!(dec.remaining_len(), Some(0));
    }

    #[test]
    fn encoder_frames_and_checks_lengths() {
        let mut out = BytesMut::new();
        let mut enc = BodyEncoder::new(BodyKind::Length(5));
        enc.write_framing_header(&mut out);
        assert_eq!(&out[..], b"Content-Length: 5\r\n");
        out.clear();
        enc.encode(b"he", &mut out).unwrap();
        assert_eq!(enc.finish(&mut out), Err(Error::UnexpectedEof));
        enc.count(3).unwrap();
        assert_eq!(enc.finish(&mut out), Ok(()));
        assert_eq!(enc.count(1), Err(Error::BadContentLength));
        assert_eq!(&out[..], b"he");

        let mut out = BytesMut::new();
        let mut enc = BodyEncoder::new(BodyKind::Chunked);
        enc.write_framing_header(&mut out);
        enc.encode(b"", &mut out).unwrap();
        enc.encode(b"abc", &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        assert_eq!(&out[..], b"Transfer-Encoding: chunked\r\n3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(
            BodyEncoder::new(BodyKind::Empty).encode(b"x", &mut out),
            Err(Error::BadContentLength)
        );
    }

    #[test]
    fn encoded_bodies_decode_back() {
        for kind in [BodyKind::Length(11), BodyKind::Chunked] {
            let mut wire = BytesMut::new();
            let mut enc = BodyEncoder::new(kind);
            enc.encode(b"hello", &mut wire).unwrap();
            enc.encode(b" world", &mut wire).unwrap();
            enc.finish(&mut wire).unwrap();
            let (body, left, done) = decode_in_steps(kind, &wire, 4).unwrap();
            assert_eq!((&body[..], left, done), (&b"hello world"[..], 0, true));
        }
    }
}
