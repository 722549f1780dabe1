//! Message body framing (RFC 9112 §6): how long a body is and how it is delimited.

use crate::Error;

/// How the body of a message is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// A chunked body follows the head.
    Chunked,
    /// The body runs until the sender closes the connection (responses only).
    UntilClose,
}

/// Parses one `Content-Length` field value: `1*DIGIT`, or a comma list of equal
/// values (RFC 9110 §8.6), which count as one.
///
/// Unlike `u64::from_str` this refuses a sign, whitespace inside a number, an
/// empty value and overflow.
///
/// ```
/// use http_core::parse_content_length;
/// assert_eq!(parse_content_length(b"5, 5"), Ok(5));
/// assert!(parse_content_length(b"+5").is_err());
/// ```
pub fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    let mut result: Option<u64> = None;
    for element in value.split(|&b| b == b',') {
        let n = parse_digits(trim_ows(element))?;
        match result {
            Some(prev) if prev != n => return Err(Error::BadContentLength),
            _ => result = Some(n),
        }
    }
    result.ok_or(Error::BadContentLength)
}

/// Adds another `Content-Length` line to what earlier lines said.
pub(crate) fn merge_content_length(prev: Option<u64>, value: &[u8]) -> Result<Option<u64>, Error> {
    let n = parse_content_length(value)?;
    match prev {
        Some(p) if p != n => Err(Error::BadContentLength),
        _ => Ok(Some(n)),
    }
}

fn parse_digits(digits: &[u8]) -> Result<u64, Error> {
    if digits.is_empty() {
        return Err(Error::BadContentLength);
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(Error::BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(Error::BadContentLength)?;
    }
    Ok(n)
}

/// Optional whitespace (SP / HTAB) trimmed from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// What the `Transfer-Encoding` lines of a message say, accumulated line by line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferCoding {
    /// At least one `Transfer-Encoding` line was seen.
    pub present: bool,
    /// `chunked` was seen.
    pub chunked: bool,
    /// The last coding seen is `chunked`.
    pub chunked_last: bool,
    /// A coding other than `chunked` was seen.
    pub other: bool,
    /// `chunked` appeared twice, an element was empty, or a coding was not a token.
    pub malformed: bool,
}

impl TransferCoding {
    /// Adds one `Transfer-Encoding` field line.
    pub fn add(&mut self, value: &[u8]) {
        self.present = true;
        for element in value.split(|&b| b == b',') {
            let coding = trim_ows(element);
            // Parameters (`;q=` etc.) are not valid for the codings we know; any
            // coding we do not know is refused anyway, so the name is what matters.
            if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
                self.malformed = true;
                self.chunked_last = false;
            } else if coding.eq_ignore_ascii_case(b"chunked") {
                if self.chunked {
                    self.malformed = true;
                }
                self.chunked = true;
                self.chunked_last = true;
            } else {
                self.other = true;
                self.chunked_last = false;
            }
        }
    }

    /// The framing of a request carrying these codings (RFC 9112 §6.1, §6.3).
    ///
    /// Requests are held to the strictest reading: only exactly `chunked` is
    /// accepted, because a proxy must never frame a request differently from
    /// the server behind it. When `chunked` is not the final coding the body
    /// length cannot be determined, which RFC 9112 §6.3 rule 4 answers with a
    /// MUST-level 400; only a well-framed list with a coding we cannot decode
    /// (`gzip, chunked`) is 501 (RFC 9112 §6.1).
    pub fn request_framing(&self) -> Result<BodyKind, Error> {
        if self.malformed || !self.chunked_last {
            Err(Error::BadTransferEncoding)
        } else if self.other {
            Err(Error::UnsupportedTransferCoding)
        } else {
            Ok(BodyKind::Chunked)
        }
    }

    /// The framing of a response carrying these codings (RFC 9112 §6.3 rule 4).
    ///
    /// Only plain `chunked` is accepted: a response with another transfer coding
    /// cannot be re-framed faithfully for the next hop, so it is refused as malformed.
    pub fn response_framing(&self) -> Result<BodyKind, Error> {
        if self.malformed || self.other {
            Err(Error::BadResponse)
        } else {
            Ok(BodyKind::Chunked)
        }
    }
}

/// `tchar` from RFC 9110 §5.6.2, as a table: one load per byte where the
/// range-and-match test took about ten instructions (header names of every
/// response a proxy passes on are checked with it).
const TCHAR: [bool; 256] = byte_table!(|c| c.is_ascii_alphanumeric()
    || matches!(
        c,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ));

/// `tchar` from RFC 9110 §5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_table() {
        let cases: &[(&[u8], Result<u64, Error>)] = &[
            (b"0", Ok(0)),
            (b"5", Ok(5)),
            (b"005", Ok(5)),
            (b" 5 ", Ok(5)),
            (b"5, 5", Ok(5)),
            (b"5,5,5", Ok(5)),
            (b"18446744073709551615", Ok(u64::MAX)),
            (b"18446744073709551616", Err(Error::BadContentLength)),
            (b"+5", Err(Error::BadContentLength)),
            (b"-1", Err(Error::BadContentLength)),
            (b"1 2", Err(Error::BadContentLength)),
            (b"", Err(Error::BadContentLength)),
            (b"   ", Err(Error::BadContentLength)),
            (b"5, 6", Err(Error::BadContentLength)),
            (b"5,", Err(Error::BadContentLength)),
            (b",5", Err(Error::BadContentLength)),
            (b"0x10", Err(Error::BadContentLength)),
            (b"5a", Err(Error::BadContentLength)),
            (b"\xd9\xa5", Err(Error::BadContentLength)),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_content_length(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn content_length_lines_merge() {
        assert_eq!(merge_content_length(Some(5), b"5"), Ok(Some(5)));
        assert_eq!(merge_content_length(Some(5), b"6"), Err(Error::BadContentLength));
        assert_eq!(merge_content_length(None, b"7"), Ok(Some(7)));
    }

    fn request_te(lines: &[&[u8]]) -> Result<BodyKind, Error> {
        let mut te = TransferCoding::default();
        for l in lines {
            te.add(l);
        }
        te.request_framing()
    }

    /// The `Transfer-Encoding` lines of a message, and the framing they give.
    type TeCase<'a> = (&'a [&'a [u8]], Result<BodyKind, Error>);

    #[test]
    fn request_transfer_encoding_table() {
        let cases: &[TeCase] = &[
            (&[b"chunked"], Ok(BodyKind::Chunked)),
            (&[b"Chunked"], Ok(BodyKind::Chunked)),
            (&[b" chunked "], Ok(BodyKind::Chunked)),
            (&[b"chunked, gzip"], Err(Error::BadTransferEncoding)),
            (&[b"gzip, chunked"], Err(Error::UnsupportedTransferCoding)),
            (&[b"gzip"], Err(Error::BadTransferEncoding)),
            (&[b"identity"], Err(Error::BadTransferEncoding)),
            (&[b",chunked"], Err(Error::BadTransferEncoding)),
            (&[b"chunked,"], Err(Error::BadTransferEncoding)),
            (&[b"chunked, chunked"], Err(Error::BadTransferEncoding)),
            (&[b"chunked", b"chunked"], Err(Error::BadTransferEncoding)),
            (&[b""], Err(Error::BadTransferEncoding)),
            (&[b"chun ked"], Err(Error::BadTransferEncoding)),
            (&[b"\"chunked\""], Err(Error::BadTransferEncoding)),
            (&[b"chunked;q=1"], Err(Error::BadTransferEncoding)),
            (&[b"xchunked"], Err(Error::BadTransferEncoding)),
        ];
        for (lines, want) in cases {
            assert_eq!(request_te(lines), *want, "{lines:?}");
        }
    }

    #[test]
    fn response_transfer_encoding() {
        let framing = |v: &[u8]| {
            let mut te = TransferCoding::default();
            te.add(v);
            te.response_framing()
        };
        assert_eq!(framing(b"chunked"), Ok(BodyKind::Chunked));
        assert_eq!(framing(b"gzip, chunked"), Err(Error::BadResponse));
        assert_eq!(framing(b"chunked, gzip"), Err(Error::BadResponse));
        assert_eq!(framing(b"gzip"), Err(Error::BadResponse));
        assert_eq!(framing(b"chunked, chunked"), Err(Error::BadResponse));
    }
}
