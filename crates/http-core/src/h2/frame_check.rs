//! A cheap look at the frame headers a peer sends, before the h2 crate
//! parses them: the errors RFC 9113 gives their own code, which the h2 crate
//! reports as `PROTOCOL_ERROR` (a PING, RST_STREAM, WINDOW_UPDATE, PRIORITY,
//! GOAWAY or SETTINGS frame of the wrong length is a `FRAME_SIZE_ERROR`,
//! §4.2 and §6; an `SETTINGS_INITIAL_WINDOW_SIZE` over 2^31 − 1 a
//! `FLOW_CONTROL_ERROR`, §6.5.2; DATA, or HEADERS, on a stream the peer has
//! ended is a `STREAM_CLOSED`, §5.1). The scan only counts bytes and reads the
//! 9-byte headers (and SETTINGS entries); it copies nothing. What it knows of
//! streams is bounded: the streams the peer has open (at most
//! [`MAX_TRACKED`]; beyond, it stops judging streams and leaves them to the
//! h2 crate) and the last [`RECENT`] it ended and the server reset.
//!
//! [`Frames`] also follows the frames the server writes, for the streams it
//! resets. On an error, the h2 crate itself sends the GOAWAY with the code
//! found here (`abrupt_shutdown`), so that it goes out whole, between frames.

/// `FRAME_SIZE_ERROR`.
pub(super) const FRAME_SIZE_ERROR: u32 = 0x6;
/// `FLOW_CONTROL_ERROR`.
pub(super) const FLOW_CONTROL_ERROR: u32 = 0x3;
/// `STREAM_CLOSED`.
pub(super) const STREAM_CLOSED: u32 = 0x5;

/// Open streams followed per connection before stream states are left to
/// the h2 crate (which refuses streams beyond its concurrency limit anyway).
pub(super) const MAX_TRACKED: usize = 256;
/// Streams remembered as ended by the peer, and as reset by the server.
pub(super) const RECENT: usize = 64;

const PREFACE_LEN: usize = 24;
const HEAD_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// Where a byte stream of frames stands: which header bytes are in, how many
/// payload bytes are left.
#[derive(Debug, Default)]
pub(super) struct Frames {
    /// Bytes to pass over before the first frame (the client preface).
    skip: usize,
    head: [u8; HEAD_LEN],
    head_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// In a SETTINGS payload: the current entry's bytes.
    settings: Option<([u8; 6], usize)>,
    /// The highest odd stream id a HEADERS frame used.
    max_stream: u32,
    /// Streams the peer's HEADERS frames opened (new stream ids).
    opened: u64,
    /// What is known of the peer's streams (inbound only).
    streams: Streams,
    /// Streams the server reset, noted by the outbound side for the inbound.
    resets: Vec<u32>,
}

/// The peer's streams, as far as STREAM_CLOSED needs them.
#[derive(Debug, Default)]
struct Streams {
    /// Opened (HEADERS without END_STREAM) and not yet ended by the peer.
    open: Vec<u32>,
    /// The last streams the peer ended (END_STREAM or RST_STREAM).
    ended: std::collections::VecDeque<u32>,
    /// The last streams the server reset: frames the peer sent before it
    /// knew are ignored (RFC 9113 §5.1, "closed").
    reset: std::collections::VecDeque<u32>,
    /// More streams open than followed: stream states are the h2 crate's.
    given_up: bool,
}

fn remember(ring: &mut std::collections::VecDeque<u32>, id: u32) {
    if ring.len() == RECENT {
        ring.pop_front();
    }
    ring.push_back(id);
}

impl Streams {
    fn close(&mut self, id: u32) -> bool {
        match self.open.iter().position(|&s| s == id) {
            Some(i) => {
                self.open.swap_remove(i);
                remember(&mut self.ended, id);
                true
            }
            None => false,
        }
    }

    fn open(&mut self, id: u32) {
        if self.open.len() == MAX_TRACKED {
            self.given_up = true;
            self.open = Vec::new();
            self.ended = Default::default();
            self.reset = Default::default();
        } else if !self.given_up {
            self.open.push(id);
        }
    }

    /// A DATA or HEADERS frame on stream `id` (odd, at most the highest
    /// opened), `end` with END_STREAM: `Err` when the peer had ended it.
    fn frame(&mut self, id: u32, headers: bool, end: bool) -> Result<(), u32> {
        if self.given_up || self.reset.contains(&id) {
            return Ok(());
        }
        if self.open.contains(&id) {
            if end {
                self.close(id);
            }
            return Ok(());
        }
        // DATA on any stream the peer has left (ended, reset, or skipped,
        // which a higher stream closed, §5.1.1); HEADERS only on one it
        // ended: on one it never opened it is the h2 crate's PROTOCOL_ERROR.
        if !headers || self.ended.contains(&id) {
            return Err(STREAM_CLOSED);
        }
        Ok(())
    }
}

impl Frames {
    /// The frames a client sends: the preface first.
    pub fn inbound() -> Frames {
        Frames {
            skip: PREFACE_LEN,
            ..Frames::default()
        }
    }

    /// The frames the server writes.
    pub fn outbound() -> Frames {
        Frames::default()
    }

    /// True between two frames (and after the preface).
    #[cfg(test)]
    pub fn at_boundary(&self) -> bool {
        self.skip == 0 && self.head_len == 0 && self.payload_left == 0
    }

    /// The highest stream a HEADERS frame opened so far.
    #[cfg(test)]
    pub fn max_stream(&self) -> u32 {
        self.max_stream
    }

    /// How many streams the peer's HEADERS frames opened so far (checked
    /// side only).
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Follows `bytes` without checking them (the server's own frames).
    pub fn follow(&mut self, bytes: &[u8]) {
        let _ = self.walk(bytes, false);
    }

    /// The streams the server reset in what [`follow`](Self::follow) saw
    /// since the last call.
    pub fn take_resets(&mut self) -> impl Iterator<Item = u32> + '_ {
        self.resets.drain(..)
    }

    /// The server reset stream `id`: what the peer sent on it before it
    /// knew is ignored, not an error.
    pub fn server_reset(&mut self, id: u32) {
        if !self.streams.given_up {
            self.streams.open.retain(|&s| s != id);
            remember(&mut self.streams.reset, id);
        }
    }

    /// Follows and checks the peer's `bytes`.
    pub fn check(&mut self, bytes: &[u8]) -> Result<(), u32> {
        self.walk(bytes, true)
    }

    fn walk(&mut self, mut bytes: &[u8], checking: bool) -> Result<(), u32> {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                if let Some((entry, filled)) = self.settings.as_mut() {
                    for &b in &bytes[..n] {
                        entry[*filled] = b;
                        *filled += 1;
                        if *filled == 6 {
                            *filled = 0;
                            let id = u16::from_be_bytes([entry[0], entry[1]]);
                            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                            if checking && id == SETTINGS_INITIAL_WINDOW_SIZE && value > 0x7fff_ffff {
                                return Err(FLOW_CONTROL_ERROR);
                            }
                        }
                    }
                }
                self.payload_left -= n;
                if self.payload_left == 0 {
                    self.settings = None;
                }
                bytes = &bytes[n..];
            } else if self.head_len == 0 && bytes.len() >= HEAD_LEN {
                // A whole frame header at hand (the usual case): a copy of a
                // known length.
                self.head.copy_from_slice(&bytes[..HEAD_LEN]);
                bytes = &bytes[HEAD_LEN..];
                self.start_frame(checking)?;
            } else {
                let n = (HEAD_LEN - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                bytes = &bytes[n..];
                if self.head_len == HEAD_LEN {
                    self.head_len = 0;
                    self.start_frame(checking)?;
                }
            }
        }
        Ok(())
    }

    /// A whole frame header is in `head`.
    fn start_frame(&mut self, checking: bool) -> Result<(), u32> {
        let h = &self.head;
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if checking {
            let size_ok = match kind {
                PRIORITY => len == 5,
                RST_STREAM | WINDOW_UPDATE => len == 4,
                PING => len == 8,
                GOAWAY => len >= 8,
                SETTINGS if flags & ACK != 0 => len == 0,
                SETTINGS => len % 6 == 0,
                _ => true,
            };
            if !size_ok {
                return Err(FRAME_SIZE_ERROR);
            }
        }
        if !checking {
            if kind == RST_STREAM && self.resets.len() < RECENT {
                self.resets.push(stream);
            }
        } else if stream % 2 == 1 {
            let end = flags & END_STREAM != 0;
            match kind {
                HEADERS if stream > self.max_stream => {
                    self.max_stream = stream;
                    self.opened += 1;
                    if end && !self.streams.given_up {
                        remember(&mut self.streams.ended, stream);
                    } else if !end {
                        self.streams.open(stream);
                    }
                }
                HEADERS | DATA if stream <= self.max_stream => {
                    self.streams.frame(stream, kind == HEADERS, end)?;
                }
                RST_STREAM => {
                    self.streams.close(stream);
                }
                _ => {}
            }
        }
        self.settings =
            (kind == SETTINGS && flags & ACK == 0 && stream == 0 && len > 0).then_some(([0; 6], 0));
        self.payload_left = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// Checks `frames` after the preface, fed one byte at a time and whole:
    /// the same answer both ways.
    fn check(frames: &[Vec<u8>]) -> Result<(), u32> {
        let all: Vec<u8> = PREFACE.iter().copied().chain(frames.concat()).collect();
        let mut whole = Frames::inbound();
        let at_once = whole.check(&all);
        let mut bytewise = Frames::inbound();
        let one_by_one = all
            .iter()
            .try_for_each(|b| bytewise.check(std::slice::from_ref(b)));
        assert_eq!(at_once, one_by_one);
        at_once
    }

    #[test]
    fn good_frames_pass_and_the_boundary_is_followed() {
        let frames = [
            frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff, 0, 5, 0, 0, 0x40, 0]),
            frame(SETTINGS, ACK, 0, &[]),
            frame(PING, 0, 0, b"12345678"),
            frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]),
            frame(HEADERS, 0x4, 3, b"\x82\x86\x84"),
            frame(0x0, 0x1, 3, &[7; 300]),
            frame(PRIORITY, 0, 5, &[0, 0, 0, 3, 15]),
            frame(RST_STREAM, 0, 3, &[0, 0, 0, 8]),
            frame(0xfa, 0xff, 0, b"unknown"),
            frame(GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0, b'd', b'b', b'g']),
        ];
        assert_eq!(check(&frames), Ok(()));
        let mut f = Frames::inbound();
        f.check(PREFACE).unwrap();
        assert!(f.at_boundary());
        f.check(&frames[4][..5]).unwrap();
        assert!(!f.at_boundary());
        f.check(&frames[4][5..]).unwrap();
        assert!(f.at_boundary());
        assert_eq!(f.max_stream(), 3);
        // One stream opened; HEADERS on it again (trailers) opens none.
        assert_eq!(f.opened(), 1);
        f.check(&frame(HEADERS, 0x5, 3, b"\x82")).unwrap();
        f.check(&frame(HEADERS, 0x5, 5, b"\x82")).unwrap();
        assert_eq!(f.opened(), 2);
    }

    #[test]
    fn wrong_lengths_are_frame_size_errors() {
        for bad in [
            frame(PING, 0, 0, b"1234567"),
            frame(PING, ACK, 0, b"123456789"),
            frame(RST_STREAM, 0, 1, &[0, 0, 8]),
            frame(WINDOW_UPDATE, 0, 1, &[0, 0, 0, 1, 0]),
            frame(PRIORITY, 0, 1, &[0, 0, 0, 0]),
            frame(GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0]),
            frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 1]),
            frame(SETTINGS, ACK, 0, &[0, 4, 0, 0, 0, 1]),
        ] {
            assert_eq!(
                check(&[frame(PING, 0, 0, b"12345678"), bad.clone()]),
                Err(FRAME_SIZE_ERROR),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_initial_window_over_the_maximum_is_a_flow_control_error() {
        let over = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100, 0, 4, 0x80, 0, 0, 0]);
        assert_eq!(check(&[over]), Err(FLOW_CONTROL_ERROR));
        let max = frame(SETTINGS, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(check(&[max]), Ok(()));
        // Not on a SETTINGS frame's payload that is another frame's.
        let data = frame(0x0, 0, 1, &[0, 4, 0x80, 0, 0, 0]);
        assert_eq!(check(&[data]), Ok(()));
    }

    const GET: &[u8] = b"\x82\x86\x84";

    #[test]
    fn frames_on_a_stream_the_peer_ended_are_stream_closed() {
        let open = frame(HEADERS, 0x4, 1, GET);
        let body_end = frame(DATA, END_STREAM, 1, b"x");
        // DATA after END_STREAM (on DATA or on HEADERS), HEADERS after it, DATA after RST_STREAM.
        for (frames, want) in [
            (
                vec![open.clone(), body_end.clone(), frame(DATA, 0, 1, b"y")],
                Err(STREAM_CLOSED),
            ),
            (
                vec![frame(HEADERS, 0x5, 1, GET), frame(DATA, 0, 1, b"y")],
                Err(STREAM_CLOSED),
            ),
            (
                vec![frame(HEADERS, 0x5, 1, GET), frame(HEADERS, 0x5, 1, GET)],
                Err(STREAM_CLOSED),
            ),
            (
                vec![
                    open.clone(),
                    frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]),
                    frame(DATA, 0, 1, b"y"),
                ],
                Err(STREAM_CLOSED),
            ),
            // A stream a higher one closed (§5.1.1): DATA is STREAM_CLOSED;
            // HEADERS on it is the h2 crate's PROTOCOL_ERROR.
            (
                vec![frame(HEADERS, 0x5, 5, GET), frame(DATA, 0, 3, b"y")],
                Err(STREAM_CLOSED),
            ),
            (
                vec![frame(HEADERS, 0x5, 5, GET), frame(HEADERS, 0x5, 3, GET)],
                Ok(()),
            ),
            // What stays legal: a body, trailers, WINDOW_UPDATE and PRIORITY
            // after the end, DATA on an idle stream (the h2 crate's error).
            (
                vec![
                    open.clone(),
                    frame(DATA, 0, 1, b"x"),
                    frame(HEADERS, 0x5, 1, b"\x40\x01a\x01b"),
                    frame(WINDOW_UPDATE, 0, 1, &[0, 0, 1, 0]),
                    frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 1]),
                    frame(DATA, 0, 7, b"idle"),
                ],
                Ok(()),
            ),
        ] {
            assert_eq!(check(&frames), want, "{frames:?}");
        }
    }

    #[test]
    fn frames_on_a_stream_the_server_reset_are_ignored_for_a_while() {
        let mut f = Frames::inbound();
        f.check(PREFACE).unwrap();
        f.check(&frame(HEADERS, 0x4, 1, GET)).unwrap();
        let mut out = Frames::outbound();
        out.follow(&frame(RST_STREAM, 0, 1, &[0, 0, 0, 7]));
        let resets: Vec<u32> = out.take_resets().collect();
        assert_eq!(resets, [1]);
        f.server_reset(1);
        f.check(&frame(DATA, 0, 1, b"in flight")).unwrap();
        f.check(&frame(DATA, END_STREAM, 1, b"still")).unwrap();
    }

    #[test]
    fn past_the_tracked_streams_states_are_left_to_h2() {
        let mut f = Frames::inbound();
        f.check(PREFACE).unwrap();
        for id in (1..).step_by(2).take(MAX_TRACKED + 1) {
            f.check(&frame(HEADERS, 0x4, id, GET)).unwrap();
        }
        assert!(f.streams.open.is_empty());
        f.check(&frame(HEADERS, 0x5, 1001, GET)).unwrap();
        // Not judged any more: no error, no memory.
        f.check(&frame(DATA, 0, 1001, b"x")).unwrap();
        assert!(f.streams.ended.is_empty());
    }

    proptest::proptest! {
        /// Whatever the peer sends, cut wherever the reads cut it: no panic,
        /// and the same verdict as all at once.
        #[test]
        fn any_bytes_any_cuts_same_verdict(
            frames in proptest::collection::vec(
                (0u8..12, 0u8..=255, 0u32..16, proptest::collection::vec(0u8..=255, 0..40)),
                0..24,
            ),
            cuts in proptest::collection::vec(1usize..50, 0..30),
        ) {
            let mut all = PREFACE.to_vec();
            for (kind, flags, stream, payload) in &frames {
                all.extend(frame(*kind, *flags, *stream, payload));
            }
            let mut whole = Frames::inbound();
            let want = whole.check(&all);
            let mut pieces = Frames::inbound();
            let mut rest = &all[..];
            let mut got = Ok(());
            for cut in cuts.iter().chain(std::iter::repeat(&7)) {
                if rest.is_empty() || got.is_err() {
                    break;
                }
                let n = (*cut).min(rest.len());
                got = pieces.check(&rest[..n]);
                rest = &rest[n..];
            }
            proptest::prop_assert_eq!(want, got);
            proptest::prop_assert!(pieces.streams.open.len() <= MAX_TRACKED);
        }
    }
}
