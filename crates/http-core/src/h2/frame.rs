//! HTTP/2 frames (RFC 9113 §4 and §6): the 9-byte frame header, the checks
//! every frame type's layout needs before its payload is believed, and the
//! writers of the frames the server sends. Pure: no I/O and no state beyond
//! one frame.

use bytes::{BufMut, BytesMut};

/// The length of a frame header.
pub(super) const HEAD_LEN: usize = 9;

pub(super) const DATA: u8 = 0x0;
pub(super) const HEADERS: u8 = 0x1;
pub(super) const PRIORITY: u8 = 0x2;
pub(super) const RST_STREAM: u8 = 0x3;
pub(super) const SETTINGS: u8 = 0x4;
pub(super) const PUSH_PROMISE: u8 = 0x5;
pub(super) const PING: u8 = 0x6;
pub(super) const GOAWAY: u8 = 0x7;
pub(super) const WINDOW_UPDATE: u8 = 0x8;
pub(super) const CONTINUATION: u8 = 0x9;

pub(super) const END_STREAM: u8 = 0x1;
pub(super) const ACK: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY_FLAG: u8 = 0x20;

pub(super) const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub(super) const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub(super) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(super) const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub(super) const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub(super) const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The largest flow-control window (RFC 9113 §6.9.1).
pub(super) const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The window every stream and the connection start with (RFC 9113 §6.9.2).
pub(super) const DEFAULT_WINDOW: u32 = 65_535;
/// The least (and default) `SETTINGS_MAX_FRAME_SIZE`.
pub(super) const DEFAULT_MAX_FRAME: u32 = 16_384;
/// The largest `SETTINGS_MAX_FRAME_SIZE` allowed.
pub(super) const MAX_MAX_FRAME: u32 = (1 << 24) - 1;

/// The error codes of RFC 9113 §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Reason {
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
    EnhanceYourCalm = 0xb,
}

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) len: usize,
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
}

impl Head {
    /// Reads the header at the start of `b` (which holds at least
    /// [`HEAD_LEN`] bytes); the stream identifier's reserved bit is ignored
    /// (§4.1).
    pub(super) fn parse(b: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    pub(super) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Strips the padding of a DATA or HEADERS payload (§6.1, §6.2): the bytes
/// between the pad length and the padding, or `None` when the padding is as
/// long as the payload or longer (a `PROTOCOL_ERROR`).
pub(super) fn unpad(head: &Head, payload: &[u8]) -> Option<(usize, usize)> {
    if !head.has(PADDED) {
        return Some((0, payload.len()));
    }
    let (&pad, _) = payload.split_first()?;
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return None;
    }
    Some((1, payload.len() - pad))
}

/// A 31-bit value of four bytes (a stream dependency, a window increment).
pub(super) fn u31(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]) & 0x7fff_ffff,
        _ => 0,
    }
}

/// Writes a frame header.
pub(super) fn put_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = len as u32;
    out.put_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.put_u32(stream & 0x7fff_ffff);
}

/// The server's SETTINGS frame.
pub(super) fn put_settings(out: &mut BytesMut, settings: &[(u16, u32)]) {
    put_head(out, settings.len() * 6, SETTINGS, 0, 0);
    for &(id, value) in settings {
        out.put_u16(id);
        out.put_u32(value);
    }
}

pub(super) fn put_settings_ack(out: &mut BytesMut) {
    put_head(out, 0, SETTINGS, ACK, 0);
}

pub(super) fn put_ping_ack(out: &mut BytesMut, data: &[u8]) {
    put_head(out, 8, PING, ACK, 0);
    out.put_slice(data);
}

pub(super) fn put_goaway(out: &mut BytesMut, last_stream: u32, reason: Reason) {
    put_head(out, 8, GOAWAY, 0, 0);
    out.put_u32(last_stream & 0x7fff_ffff);
    out.put_u32(reason as u32);
}

pub(super) fn put_rst(out: &mut BytesMut, stream: u32, reason: Reason) {
    put_head(out, 4, RST_STREAM, 0, stream);
    out.put_u32(reason as u32);
}

pub(super) fn put_window_update(out: &mut BytesMut, stream: u32, increment: u32) {
    put_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.put_u32(increment & 0x7fff_ffff);
}

/// Writes the header block `block` as a HEADERS frame and as many
/// CONTINUATION frames as `max_frame` makes it need.
pub(super) fn put_headers(out: &mut BytesMut, stream: u32, block: &[u8], end_stream: bool, max_frame: usize) {
    let mut rest = block;
    let mut first = true;
    loop {
        let n = rest.len().min(max_frame);
        let (piece, after) = rest.split_at(n);
        let mut flags = 0;
        if after.is_empty() {
            flags |= END_HEADERS;
        }
        let kind = if first { HEADERS } else { CONTINUATION };
        if first && end_stream {
            flags |= END_STREAM;
        }
        put_head(out, n, kind, flags, stream);
        out.put_slice(piece);
        rest = after;
        first = false;
        if rest.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_ignore_the_reserved_bit() {
        let mut out = BytesMut::new();
        put_head(&mut out, 0x01_02_03, HEADERS, END_HEADERS | END_STREAM, 7);
        let mut b = [0u8; HEAD_LEN];
        b.copy_from_slice(&out);
        assert_eq!(
            Head::parse(&b),
            Head {
                len: 0x01_02_03,
                kind: HEADERS,
                flags: END_HEADERS | END_STREAM,
                stream: 7
            }
        );
        b[5] |= 0x80;
        assert_eq!(Head::parse(&b).stream, 7);
    }

    #[test]
    fn padding() {
        let h = |flags| Head {
            len: 0,
            kind: DATA,
            flags,
            stream: 1,
        };
        assert_eq!(unpad(&h(0), b"abc"), Some((0, 3)));
        assert_eq!(unpad(&h(PADDED), b"\x01ab"), Some((1, 2)));
        assert_eq!(unpad(&h(PADDED), b"\x00ab"), Some((1, 3)));
        assert_eq!(unpad(&h(PADDED), b"\x02ab"), Some((1, 1)));
        assert_eq!(unpad(&h(PADDED), b"\x03ab"), None);
        assert_eq!(unpad(&h(PADDED), b""), None);
    }

    #[test]
    fn a_long_block_is_continued() {
        let mut out = BytesMut::new();
        let block = vec![7u8; 40];
        put_headers(&mut out, 3, &block, true, 16);
        // HEADERS(16, END_STREAM) CONTINUATION(16) CONTINUATION(8, END_HEADERS)
        assert_eq!(out.len(), 3 * HEAD_LEN + 40);
        assert_eq!(&out[3..5], &[HEADERS, END_STREAM]);
        assert_eq!(&out[25 + 3..25 + 5], &[CONTINUATION, 0]);
        assert_eq!(&out[50 + 3..50 + 5], &[CONTINUATION, END_HEADERS]);
        assert_eq!(out[50 + 2], 8);
    }
}
