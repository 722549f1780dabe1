//! The HTTP/2 connection: frames read and checked (RFC 9113), header blocks
//! decoded, streams' service calls run on the connection's task, answers
//! framed and sent as the flow-control windows allow, all on one task with
//! no lock but the one a stream's body shares with its service call.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, ReadBuf};

use super::body::{H2Body, Shared};
use super::frame::{self as f, Head, Reason};
use super::hpack::{Decoder, Encoder, HeaderList};
use super::request::{build_head, Refusal};
use super::response::{encode_head, prepare, HeadMemo};
use super::H2Limits;
use crate::net::io::Io;
use crate::server::access_log::{self, AccessRecord};
use crate::server::body::RequestBody;
use crate::server::service::{Body, Request, Response, Service};
use crate::server::shutdown::ShutdownSignal;
use crate::{buf_pool, BodyKind, Error, Limits, Method, RequestHead};

/// The status the access line gives a stream the client reset before its
/// answer was sent (nginx's "client closed request").
const CLIENT_CLOSED: u16 = 499;
/// The peer's bytes are not read while this many times
/// [`H2Limits::max_send_buffer`] waits to be written: a peer that sends PINGs
/// or SETTINGS and never reads the answers is stopped.
const READ_STOP_FACTOR: usize = 2;
/// Body slices up to this long are copied into the frame buffer; longer
/// ones are written from their own memory (a cached file's bytes), which
/// also keeps the frame buffer small: ten answers of a turn copied into it
/// grew it past its pooled size, and the growth was a copy of everything in
/// it each time.
const SMALL_COPY: usize = 512;
/// The same over a transport that writes one slice at a time: every frame
/// is copied, so a turn's answers still leave in one write.
const SMALL_COPY_UNVECTORED: usize = 16 * 1024;
/// A decoded header list this many times the limit ends the connection
/// (`ENHANCE_YOUR_CALM`): a small block referencing a big table entry over
/// and over (the HPACK bomb) costs its sender nothing.
const BOMB_FACTOR: usize = 4;
/// CONTINUATION frames allowed in one header block: a client splits a block
/// at the frame size, so even the largest header list allowed takes a few.
const MAX_CONTINUATIONS: usize = 32;
/// Streams the server reset, remembered so that the frames the peer sent
/// before it knew are ignored (RFC 9113 §5.1, "closed").
const RECENT_RESETS: usize = 64;
/// Ranges of stream identifiers the peer opened, remembered to tell a closed
/// stream (STREAM_CLOSED) from one never opened (PROTOCOL_ERROR).
const OPENED_RANGES: usize = 32;
/// After the connection is shut down, unread input is discarded for at most
/// this long and this much before it is closed (as the HTTP/1.1 driver does).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;
/// Largest piece of a streamed body read at once.
const READ_CHUNK: usize = 16 * 1024;
/// An idle connection keeps its stream list up to this many entries, and
/// its last header list up to this many bytes.
const IDLE_KEEP_ITEMS: usize = 4;
const IDLE_KEEP_BYTES: usize = 1024;
/// Turns of the loop before it yields to the runtime's other tasks.
const TURNS: usize = 32;

/// What one connection's streams share.
struct Ctx<S> {
    service: Arc<S>,
    limits: Arc<Limits>,
    peer: Option<SocketAddr>,
    /// The peer as the access log shows it, formatted once per connection.
    peer_text: Box<str>,
    /// The transport is TLS.
    tls: bool,
}

/// A connection error: GOAWAY with this code, then the end.
#[derive(Debug, Clone, Copy)]
struct ConnError(Reason);

/// A stream's service call, finished.
struct Done {
    id: u32,
    head: RequestHead,
    /// `None`: cancelled (the stream was reset or the connection ended).
    resp: Option<Response>,
    started: Instant,
}

/// Where a stream's answer stands.
enum Phase {
    /// The service call runs.
    Calling,
    /// The head is sent; body bytes remain.
    Sending(Box<Sending>),
}

/// An answer whose body is on its way.
struct Sending {
    body: Source,
    /// Body bytes framed so far.
    sent: u64,
    log: LogEntry,
}

/// What the access line of a stream needs once its answer is sent.
struct LogEntry {
    head: Option<RequestHead>,
    status: u16,
    fields: Vec<(&'static str, crate::LogValue)>,
    started: Instant,
    refused: Option<Error>,
}

enum Source {
    Full(Bytes),
    Reader {
        reader: Box<dyn AsyncRead + Send + Unpin>,
        len: Option<u64>,
    },
}

struct Stream {
    id: u32,
    /// The peer ended its side (END_STREAM).
    remote_done: bool,
    /// Shared with the service call.
    inbox: Shared,
    /// The request body's declared length, held against the DATA frames.
    declared: Option<u64>,
    received: u64,
    /// What the peer may still send on this stream.
    recv_window: i64,
    /// Taken by the service and not yet given back to the peer.
    release: usize,
    /// What the server may still send on this stream.
    send_window: i64,
    phase: Phase,
    /// Since when body bytes wait for window.
    blocked_since: Option<Instant>,
}

/// Bytes waiting to be written: frames in `buf`, large body slices in
/// `queue` (in order, after what was sealed of `buf` before them).
#[derive(Default)]
struct Out {
    buf: BytesMut,
    queue: VecDeque<Bytes>,
    queued: usize,
    /// Body slices up to this long are copied into `buf`.
    small_copy: usize,
}

impl Out {
    fn len(&self) -> usize {
        self.queued + self.buf.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn seal(&mut self) {
        if !self.buf.is_empty() {
            let b = self.buf.split().freeze();
            self.queued += b.len();
            self.queue.push_back(b);
        }
    }

    fn push(&mut self, b: Bytes) {
        if b.len() <= self.small_copy {
            self.buf.extend_from_slice(&b);
        } else {
            self.seal();
            self.queued += b.len();
            self.queue.push_back(b);
        }
    }

    /// Writes until all is written (`Ready(Ok)`) or the transport waits.
    fn poll_write<T: Io>(&mut self, io: &mut T, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.queue.is_empty() {
                if self.buf.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let n = std::task::ready!(Pin::new(&mut *io).poll_write(cx, &self.buf))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.buf.advance(n);
                if self.buf.is_empty() {
                    // The whole allocation is free again.
                    self.buf.clear();
                }
                continue;
            }
            self.seal();
            let mut slices = [io::IoSlice::new(&[]); 32];
            let mut k = 0;
            for b in self.queue.iter().take(slices.len()) {
                slices[k] = io::IoSlice::new(b);
                k += 1;
            }
            let mut n = std::task::ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..k]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.queued -= n;
            while n > 0 {
                let Some(front) = self.queue.front_mut() else {
                    break;
                };
                if front.len() <= n {
                    n -= front.len();
                    self.queue.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            }
        }
    }
}

/// A header block arriving in HEADERS and CONTINUATION frames.
struct Partial {
    stream: u32,
    end_stream: bool,
    /// The stream is to be reset once the block is decoded (PRIORITY on itself).
    reset: Option<Reason>,
    /// CONTINUATION frames so far.
    fragments: usize,
}

/// The connection's state, apart from its transport and its tasks.
struct Conn {
    limits: Arc<Limits>,
    h2: H2Limits,
    extra: Bytes,
    rbuf: BytesMut,
    out: Out,
    dec: Decoder,
    enc: Encoder,
    memo: HeadMemo,
    fields: HeaderList,
    scratch: BytesMut,
    /// Header block fragments of the block in progress.
    block: Vec<u8>,
    partial: Option<Partial>,
    streams: Vec<Stream>,
    /// Streams with `inbox` data the service may take (for window updates).
    receiving: usize,
    preface_left: usize,
    settings_seen: bool,
    peer_initial_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    recv_window: i64,
    /// Connection window to give back.
    conn_release: usize,
    max_client_stream: u32,
    opened: VecDeque<(u32, u32)>,
    /// Ranges were dropped from `opened`: below it, streams may have been opened.
    opened_forgotten: bool,
    recent_resets: VecDeque<u32>,
    /// GOAWAY sent, with the last stream taken up.
    goaway: Option<Reason>,
    /// The peer sent GOAWAY: no new streams come.
    peer_goaway: bool,
    /// Client resets of streams still being answered, less the streams
    /// answered since (the rapid-reset budget).
    early_resets: usize,
    /// Streams reset for the peer's errors on this connection.
    error_resets: usize,
    /// The connection is to end once the output is written.
    fatal: bool,
    write_blocked_since: Option<Instant>,
    /// No more reading: the peer ended its side, or the read failed.
    read_closed: bool,
}

/// What reading frames asks of the loop.
enum Event {
    Request {
        id: u32,
        head: RequestHead,
        inbox: Shared,
        end_stream: bool,
    },
}

impl Conn {
    fn new(limits: Arc<Limits>, h2: H2Limits, extra: Bytes, read: Bytes, vectored: bool) -> Conn {
        let mut rbuf = buf_pool::take();
        rbuf.extend_from_slice(&read);
        let mut out = Out {
            buf: buf_pool::take(),
            small_copy: if vectored {
                SMALL_COPY
            } else {
                SMALL_COPY_UNVECTORED
            },
            ..Out::default()
        };
        let max_list = u32::try_from(limits.max_head_len).unwrap_or(u32::MAX);
        f::put_settings(
            &mut out.buf,
            &[
                (f::SETTINGS_MAX_CONCURRENT_STREAMS, h2.max_concurrent_streams),
                (f::SETTINGS_INITIAL_WINDOW_SIZE, h2.initial_stream_window),
                (f::SETTINGS_MAX_FRAME_SIZE, h2.max_frame_size),
                (f::SETTINGS_MAX_HEADER_LIST_SIZE, max_list),
                (f::SETTINGS_ENABLE_PUSH, 0),
            ],
        );
        let conn_window = h2.initial_connection_window.max(f::DEFAULT_WINDOW);
        if conn_window > f::DEFAULT_WINDOW {
            f::put_window_update(&mut out.buf, 0, conn_window - f::DEFAULT_WINDOW);
        }
        Conn {
            limits,
            h2,
            extra,
            rbuf,
            out,
            dec: Decoder::new(4096),
            enc: Encoder::new(),
            memo: HeadMemo::default(),
            fields: HeaderList::default(),
            scratch: BytesMut::new(),
            block: Vec::new(),
            partial: None,
            streams: Vec::new(),
            receiving: 0,
            preface_left: super::PREFACE.len(),
            settings_seen: false,
            peer_initial_window: i64::from(f::DEFAULT_WINDOW),
            peer_max_frame: f::DEFAULT_MAX_FRAME as usize,
            send_window: i64::from(f::DEFAULT_WINDOW),
            recv_window: i64::from(conn_window),
            conn_release: 0,
            max_client_stream: 0,
            opened: VecDeque::new(),
            opened_forgotten: false,
            recent_resets: VecDeque::new(),
            goaway: None,
            peer_goaway: false,
            early_resets: 0,
            error_resets: 0,
            fatal: false,
            write_blocked_since: None,
            read_closed: false,
        }
    }

    fn stream(&mut self, id: u32) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    fn stream_index(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// Sends GOAWAY: `NoError` lets the streams taken up finish; an error
    /// ends the connection once the output is written.
    fn go_away(&mut self, reason: Reason) {
        if reason != Reason::NoError {
            self.fatal = true;
        }
        if self.goaway.is_some() && reason == Reason::NoError {
            return;
        }
        if self.goaway == Some(reason) {
            return;
        }
        self.goaway = Some(reason);
        f::put_goaway(&mut self.out.buf, self.max_client_stream, reason);
    }

    fn remember_reset(&mut self, id: u32) {
        if self.recent_resets.len() == RECENT_RESETS {
            self.recent_resets.pop_front();
        }
        self.recent_resets.push_back(id);
    }

    /// Resets stream `id` for `reason`; an error of the peer's counts
    /// against its budget.
    fn reset(&mut self, id: u32, reason: Reason) {
        f::put_rst(&mut self.out.buf, id, reason);
        self.remember_reset(id);
        if let Some(i) = self.stream_index(id) {
            let s = self.streams.swap_remove(i);
            self.drop_stream(s);
        }
        if !matches!(reason, Reason::NoError | Reason::RefusedStream | Reason::Cancel) {
            self.error_resets += 1;
            if self.error_resets > self.h2.max_local_error_reset_streams {
                self.go_away(Reason::EnhanceYourCalm);
            }
        }
    }

    /// Forgets a stream: its service call (if running) is cancelled, the
    /// connection window its unread data held is given back.
    fn drop_stream(&mut self, mut s: Stream) {
        let phase = std::mem::replace(&mut s.phase, Phase::Calling);
        let inbox = s.inbox.clone();
        self.forget(s);
        inbox.cancel();
        if let Phase::Sending(sending) = phase {
            // The answer was cut short: logged without a byte count.
            PENDING_LOGS.with(|l| l.borrow_mut().push((sending.log, None)));
        }
    }

    /// Processes the whole frames in the read buffer.
    fn on_input(&mut self, events: &mut Vec<Event>) -> Result<(), ConnError> {
        if self.preface_left > 0 {
            let have = self.rbuf.len().min(self.preface_left);
            let at = super::PREFACE.len() - self.preface_left;
            if self.rbuf[..have] != super::PREFACE[at..at + have] {
                return Err(ConnError(Reason::ProtocolError));
            }
            self.rbuf.advance(have);
            self.preface_left -= have;
            if self.preface_left > 0 {
                return Ok(());
            }
        }
        while self.rbuf.len() >= f::HEAD_LEN && !self.fatal {
            let mut hb = [0u8; f::HEAD_LEN];
            hb.copy_from_slice(&self.rbuf[..f::HEAD_LEN]);
            let head = Head::parse(&hb);
            if head.len > self.h2.max_frame_size as usize {
                return Err(ConnError(Reason::FrameSizeError));
            }
            if self.rbuf.len() < f::HEAD_LEN + head.len {
                self.rbuf.reserve(f::HEAD_LEN + head.len - self.rbuf.len());
                return Ok(());
            }
            let mut frame = std::mem::take(&mut self.rbuf);
            let r = self.on_frame(head, &frame[f::HEAD_LEN..f::HEAD_LEN + head.len], events);
            frame.advance(f::HEAD_LEN + head.len);
            self.rbuf = frame;
            r?;
        }
        Ok(())
    }

    fn on_frame(&mut self, head: Head, payload: &[u8], events: &mut Vec<Event>) -> Result<(), ConnError> {
        let proto = Err(ConnError(Reason::ProtocolError));
        let size = Err(ConnError(Reason::FrameSizeError));
        if !self.settings_seen {
            // RFC 9113 §3.4: the preface ends with a SETTINGS frame.
            if head.kind != f::SETTINGS || head.has(f::ACK) {
                return proto;
            }
        }
        if let Some(p) = &self.partial {
            if head.kind != f::CONTINUATION || head.stream != p.stream {
                return proto;
            }
        }
        match head.kind {
            f::DATA => self.on_data(head, payload),
            f::HEADERS => self.on_headers(head, payload, events),
            f::CONTINUATION => {
                let Some(p) = &mut self.partial else {
                    return proto;
                };
                p.fragments += 1;
                if p.fragments > MAX_CONTINUATIONS {
                    // The CONTINUATION flood (CVE-2024-27316) in small frames.
                    return Err(ConnError(Reason::EnhanceYourCalm));
                }
                self.add_fragment(payload)?;
                if head.has(f::END_HEADERS) {
                    self.end_block(events)?;
                }
                Ok(())
            }
            f::PRIORITY => {
                if head.stream == 0 {
                    return proto;
                }
                if payload.len() != 5 {
                    self.reset(head.stream, Reason::FrameSizeError);
                    return Ok(());
                }
                if f::u31(payload) == head.stream {
                    self.reset(head.stream, Reason::ProtocolError);
                }
                Ok(())
            }
            f::RST_STREAM => {
                if head.stream == 0 {
                    return proto;
                }
                if payload.len() != 4 {
                    return size;
                }
                if head.stream > self.max_client_stream {
                    return proto;
                }
                if let Some(i) = self.stream_index(head.stream) {
                    let s = self.streams.swap_remove(i);
                    if matches!(s.phase, Phase::Calling) {
                        self.early_resets += 1;
                        if self.early_resets > self.h2.max_pending_accept_reset_streams {
                            self.go_away(Reason::EnhanceYourCalm);
                        }
                    }
                    self.drop_stream(s);
                }
                Ok(())
            }
            f::SETTINGS => self.on_settings(head, payload),
            f::PUSH_PROMISE => proto,
            f::PING => {
                if head.stream != 0 {
                    return proto;
                }
                if payload.len() != 8 {
                    return size;
                }
                if !head.has(f::ACK) {
                    f::put_ping_ack(&mut self.out.buf, payload);
                }
                Ok(())
            }
            f::GOAWAY => {
                if head.stream != 0 {
                    return proto;
                }
                if payload.len() < 8 {
                    return size;
                }
                self.peer_goaway = true;
                Ok(())
            }
            f::WINDOW_UPDATE => self.on_window_update(head, payload),
            // Unknown frame types are ignored (§4.1, §5.5).
            _ => Ok(()),
        }
    }

    fn on_settings(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(ConnError(Reason::ProtocolError));
        }
        if head.has(f::ACK) {
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(ConnError(Reason::FrameSizeError))
            };
        }
        if payload.len() % 6 != 0 {
            return Err(ConnError(Reason::FrameSizeError));
        }
        self.settings_seen = true;
        for e in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([e[0], e[1]]);
            let v = u32::from_be_bytes([e[2], e[3], e[4], e[5]]);
            match id {
                f::SETTINGS_HEADER_TABLE_SIZE => self.enc.set_max_table_size(v),
                f::SETTINGS_ENABLE_PUSH if v > 1 => return Err(ConnError(Reason::ProtocolError)),
                f::SETTINGS_INITIAL_WINDOW_SIZE => {
                    let v = i64::from(v);
                    if v > f::MAX_WINDOW {
                        return Err(ConnError(Reason::FlowControlError));
                    }
                    let delta = v - self.peer_initial_window;
                    self.peer_initial_window = v;
                    for s in &mut self.streams {
                        s.send_window += delta;
                        if s.send_window > f::MAX_WINDOW {
                            return Err(ConnError(Reason::FlowControlError));
                        }
                    }
                }
                f::SETTINGS_MAX_FRAME_SIZE => {
                    if !(f::DEFAULT_MAX_FRAME..=f::MAX_MAX_FRAME).contains(&v) {
                        return Err(ConnError(Reason::ProtocolError));
                    }
                    self.peer_max_frame = v as usize;
                }
                _ => {}
            }
        }
        f::put_settings_ack(&mut self.out.buf);
        Ok(())
    }

    fn on_window_update(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if payload.len() != 4 {
            return Err(ConnError(Reason::FrameSizeError));
        }
        let inc = i64::from(f::u31(payload));
        if head.stream == 0 {
            if inc == 0 {
                return Err(ConnError(Reason::ProtocolError));
            }
            self.send_window += inc;
            if self.send_window > f::MAX_WINDOW {
                return Err(ConnError(Reason::FlowControlError));
            }
            return Ok(());
        }
        if head.stream > self.max_client_stream {
            return Err(ConnError(Reason::ProtocolError));
        }
        let Some(s) = self.stream(head.stream) else {
            return Ok(());
        };
        if inc == 0 {
            self.reset(head.stream, Reason::ProtocolError);
            return Ok(());
        }
        s.send_window += inc;
        if s.send_window > f::MAX_WINDOW {
            self.reset(head.stream, Reason::FlowControlError);
        }
        Ok(())
    }

    /// Whether the peer opened stream `id` once (or it is too old to tell).
    fn was_opened(&self, id: u32) -> bool {
        match self.opened.front() {
            Some(&(first, _)) if id < first => self.opened_forgotten,
            _ => self.opened.iter().any(|&(a, b)| (a..=b).contains(&id)),
        }
    }

    fn on_data(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(ConnError(Reason::ProtocolError));
        }
        let Some((start, end)) = f::unpad(&head, payload) else {
            return Err(ConnError(Reason::ProtocolError));
        };
        let len = payload.len();
        if len as i64 > self.recv_window {
            return Err(ConnError(Reason::FlowControlError));
        }
        self.recv_window -= len as i64;
        let Some(i) = self.stream_index(head.stream) else {
            self.conn_release += len;
            if head.stream > self.max_client_stream {
                return Err(ConnError(Reason::ProtocolError));
            }
            if self.recent_resets.contains(&head.stream) {
                return Ok(());
            }
            return Err(ConnError(Reason::StreamClosed));
        };
        let s = &mut self.streams[i];
        if s.remote_done {
            self.conn_release += len;
            self.reset(head.stream, Reason::StreamClosed);
            return Ok(());
        }
        if len as i64 > s.recv_window {
            self.conn_release += len;
            self.reset(head.stream, Reason::FlowControlError);
            return Ok(());
        }
        s.recv_window -= len as i64;
        let data = &payload[start..end];
        // Padding is given back at once.
        self.conn_release += len - data.len();
        s.release += len - data.len();
        s.received += data.len() as u64;
        let end_stream = head.has(f::END_STREAM);
        let bad_length = match s.declared {
            Some(n) => s.received > n || (end_stream && s.received != n),
            None => false,
        };
        if bad_length {
            // RFC 9113 §8.1.1: content-length and the DATA disagree.
            s.inbox.lock().refused = Some(Error::BadContentLength);
            self.conn_release += data.len();
            self.reset(head.stream, Reason::ProtocolError);
            return Ok(());
        }
        {
            let mut inbox = s.inbox.lock();
            if inbox.gone {
                self.conn_release += data.len();
            } else if !data.is_empty() {
                inbox.data.push_back(Bytes::copy_from_slice(data));
            }
            if end_stream {
                inbox.end = true;
            }
            if !data.is_empty() || end_stream {
                if let Some(w) = inbox.body_waker.take() {
                    w.wake();
                }
            }
        }
        if end_stream {
            s.remote_done = true;
            self.receiving = self.receiving.saturating_sub(1);
        }
        Ok(())
    }

    fn add_fragment(&mut self, fragment: &[u8]) -> Result<(), ConnError> {
        // The CONTINUATION flood (CVE-2024-27316): a block longer than any
        // header list allowed ends the connection.
        if self.block.len() + fragment.len() > self.limits.max_head_len.saturating_mul(2).max(64 * 1024) {
            return Err(ConnError(Reason::EnhanceYourCalm));
        }
        self.block.extend_from_slice(fragment);
        Ok(())
    }

    fn on_headers(&mut self, head: Head, payload: &[u8], events: &mut Vec<Event>) -> Result<(), ConnError> {
        if head.stream == 0 || head.stream % 2 == 0 {
            return Err(ConnError(Reason::ProtocolError));
        }
        let Some((mut start, end)) = f::unpad(&head, payload) else {
            return Err(ConnError(Reason::ProtocolError));
        };
        let mut reset = None;
        if head.has(f::PRIORITY_FLAG) {
            if end < start + 5 {
                return Err(ConnError(Reason::ProtocolError));
            }
            if f::u31(&payload[start..]) == head.stream {
                reset = Some(Reason::ProtocolError);
            }
            start += 5;
        }
        self.partial = Some(Partial {
            stream: head.stream,
            end_stream: head.has(f::END_STREAM),
            reset,
            fragments: 0,
        });
        self.block.clear();
        if head.has(f::END_HEADERS) {
            // The usual case: the block is decoded where it lies.
            let block = std::mem::take(&mut self.block);
            let r = self.decode_block(&payload[start..end], events);
            self.block = block;
            return r;
        }
        self.add_fragment(&payload[start..end])
    }

    fn end_block(&mut self, events: &mut Vec<Event>) -> Result<(), ConnError> {
        let block = std::mem::take(&mut self.block);
        let r = self.decode_block(&block, events);
        self.block = block;
        self.block.clear();
        if self.block.capacity() > 64 * 1024 {
            self.block = Vec::new();
        }
        r
    }

    fn decode_block(&mut self, block: &[u8], events: &mut Vec<Event>) -> Result<(), ConnError> {
        let Some(p) = self.partial.take() else {
            return Err(ConnError(Reason::ProtocolError));
        };
        let max_list = self.limits.max_head_len;
        if self.dec.decode(block, max_list, &mut self.fields).is_err() {
            return Err(ConnError(Reason::CompressionError));
        }
        if self.fields.size() > max_list.saturating_mul(BOMB_FACTOR) {
            return Err(ConnError(Reason::EnhanceYourCalm));
        }
        let id = p.stream;
        if id <= self.max_client_stream {
            // Trailers, or a stream that is no longer open.
            let Some(i) = self.stream_index(id) else {
                if self.recent_resets.contains(&id) {
                    return Ok(());
                }
                if self.was_opened(id) {
                    return Err(ConnError(Reason::StreamClosed));
                }
                return Err(ConnError(Reason::ProtocolError));
            };
            if self.streams[i].remote_done {
                self.reset(id, Reason::StreamClosed);
                return Ok(());
            }
            let trailers_ok = p.end_stream && self.fields.iter().all(|(n, _)| n.first() != Some(&b':'));
            let s = &mut self.streams[i];
            if !trailers_ok || s.declared.is_some_and(|n| n != s.received) {
                s.inbox.lock().refused = Some(if trailers_ok {
                    Error::BadContentLength
                } else {
                    Error::BadHeader
                });
                self.reset(id, Reason::ProtocolError);
                return Ok(());
            }
            s.remote_done = true;
            self.receiving = self.receiving.saturating_sub(1);
            {
                let mut inbox = s.inbox.lock();
                inbox.end = true;
                if let Some(w) = inbox.body_waker.take() {
                    w.wake();
                }
            }
            return Ok(());
        }
        self.max_client_stream = id;
        match self.opened.back_mut() {
            Some((_, last)) if *last + 2 == id => *last = id,
            _ => {
                if self.opened.len() == OPENED_RANGES {
                    self.opened.pop_front();
                    self.opened_forgotten = true;
                }
                self.opened.push_back((id, id));
            }
        }
        if self.goaway.is_some() {
            // After GOAWAY no new stream is taken up (RFC 9113 §6.8).
            return Ok(());
        }
        if let Some(reason) = p.reset {
            self.reset(id, reason);
            return Ok(());
        }
        if self.streams.len() >= self.h2.max_concurrent_streams as usize {
            self.reset(id, Reason::RefusedStream);
            return Ok(());
        }
        let started = Instant::now();
        let end_stream = p.end_stream;
        match build_head(&self.fields, end_stream, &self.limits, &mut self.scratch) {
            Err(Refusal::Malformed(why)) => {
                tracing::debug!(why, "malformed HTTP/2 request: stream reset");
                self.reset(id, Reason::ProtocolError);
                PENDING_LOGS.with(|l| {
                    l.borrow_mut().push((
                        LogEntry {
                            head: None,
                            status: 400,
                            fields: Vec::new(),
                            started,
                            refused: Some(Error::BadHeader),
                        },
                        None,
                    ))
                });
            }
            Err(Refusal::Status(e)) => {
                tracing::debug!(error = %e, "refusing HTTP/2 request");
                self.open_stream(id, None, end_stream);
                let resp = Response::text(e.status(), Bytes::from(format!("{e}\n")));
                self.respond(id, None, resp, Method::Get, started, Some(e));
            }
            Ok(head) => {
                let declared = match head.body() {
                    BodyKind::Length(n) => Some(n),
                    // `content-length: 0`: no DATA may carry bytes.
                    _ if head.header("content-length").is_some() => Some(0),
                    _ => None,
                };
                if end_stream && declared.is_some_and(|n| n > 0) {
                    // RFC 9113 §8.1.1: a length the (absent) DATA cannot match.
                    self.reset(id, Reason::ProtocolError);
                    return Ok(());
                }
                let inbox = self.open_stream(id, declared, end_stream);
                if head.expects_continue() && !end_stream {
                    // The window, not the interim answer, bounds what the
                    // client sends; the 100 tells it to go on at once.
                    let at = self.out.buf.len();
                    self.out.buf.put_bytes(0, f::HEAD_LEN);
                    self.enc.begin(&mut self.out.buf);
                    self.enc.status(100, &mut self.out.buf);
                    self.frame_block(at, id, false);
                }
                events.push(Event::Request {
                    id,
                    head,
                    inbox,
                    end_stream,
                });
            }
        }
        Ok(())
    }

    fn open_stream(&mut self, id: u32, declared: Option<u64>, end_stream: bool) -> Shared {
        let inbox = Shared::default();
        if end_stream {
            inbox.lock().end = true;
        } else {
            self.receiving += 1;
        }
        self.streams.push(Stream {
            id,
            remote_done: end_stream,
            inbox: inbox.clone(),
            declared,
            received: 0,
            recv_window: i64::from(self.h2.initial_stream_window),
            release: 0,
            send_window: self.peer_initial_window,
            phase: Phase::Calling,
            blocked_since: None,
        });
        inbox
    }

    /// Frames the header block written after `at` (where `HEAD_LEN` bytes
    /// were left for the frame header) as HEADERS, continued if too long.
    fn frame_block(&mut self, at: usize, id: u32, end_stream: bool) {
        let len = self.out.buf.len() - at - f::HEAD_LEN;
        if len <= self.peer_max_frame {
            let mut h = BytesMut::with_capacity(f::HEAD_LEN);
            let flags = f::END_HEADERS | if end_stream { f::END_STREAM } else { 0 };
            f::put_head(&mut h, len, f::HEADERS, flags, id);
            self.out.buf[at..at + f::HEAD_LEN].copy_from_slice(&h);
            return;
        }
        let block = self.out.buf.split_off(at + f::HEAD_LEN);
        self.out.buf.truncate(at);
        f::put_headers(&mut self.out.buf, id, &block, end_stream, self.peer_max_frame);
    }

    /// Sends the head of `resp` on stream `id` and sets its body going.
    fn respond(
        &mut self,
        id: u32,
        head: Option<RequestHead>,
        mut resp: Response,
        method: Method,
        started: Instant,
        refused: Option<Error>,
    ) {
        let Some(i) = self.stream_index(id) else {
            return;
        };
        // The service is done with the request body: what it left unread
        // is dropped and its window given back.
        let inbox = self.streams[i].inbox.clone();
        self.close_inbox(&inbox);
        let (content_length, no_body) = prepare(&mut resp, method);
        let at = self.out.buf.len();
        self.out.buf.put_bytes(0, f::HEAD_LEN);
        encode_head(
            &mut self.enc,
            &mut self.memo,
            &resp,
            Instant::now(),
            &self.extra,
            content_length,
            &mut self.out.buf,
        );
        self.frame_block(at, id, no_body);
        let log = LogEntry {
            head,
            status: resp.status,
            fields: std::mem::take(&mut resp.log),
            started,
            refused,
        };
        let body = match std::mem::replace(&mut resp.body, Body::Empty) {
            _ if no_body => None,
            Body::Full(b) => Some(Source::Full(b)),
            Body::Stream { len, reader } => Some(Source::Reader { reader, len }),
            Body::Empty | Body::Length(_) => None,
        };
        match body {
            None => {
                PENDING_LOGS.with(|l| l.borrow_mut().push((log, Some(0))));
                self.early_resets = self.early_resets.saturating_sub(1);
                self.end_local(i);
            }
            Some(body) => {
                self.streams[i].phase = Phase::Sending(Box::new(Sending { body, sent: 0, log }));
            }
        }
    }

    /// The server's side of stream `i` ended (its answer is all framed).
    fn end_local(&mut self, i: usize) {
        let s = &mut self.streams[i];
        if s.remote_done {
            let s = self.streams.swap_remove(i);
            self.forget(s);
        } else {
            // RFC 9113 §8.1: the answer is complete; the rest of the
            // request is not wanted.
            let id = s.id;
            f::put_rst(&mut self.out.buf, id, Reason::NoError);
            self.remember_reset(id);
            let s = self.streams.swap_remove(i);
            self.forget(s);
        }
    }

    /// Drops a finished stream (its answer logged already).
    fn forget(&mut self, s: Stream) {
        self.close_inbox(&s.inbox);
        if !s.remote_done {
            self.receiving = self.receiving.saturating_sub(1);
        }
    }

    /// Marks a stream's body gone: the data the service did not take is
    /// dropped, and its connection window (with what was taken and not yet
    /// given back) is given back.
    fn close_inbox(&mut self, inbox: &Shared) {
        let mut i = inbox.lock();
        let unread: usize = i.data.iter().map(Bytes::len).sum();
        self.conn_release += unread + std::mem::take(&mut i.taken);
        i.data.clear();
        i.gone = true;
    }

    /// Frames body data for the streams with window, a frame per stream
    /// and pass, while the output is short. True when a stream began to
    /// wait for window.
    fn pump(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut newly_blocked = false;
        // At least a frame's worth, whatever the setting.
        let high = self.h2.max_send_buffer.max(f::DEFAULT_MAX_FRAME as usize);
        loop {
            let before = self.out.len();
            newly_blocked |= self.pump_pass(cx, now, high);
            if self.out.len() == before || self.out.len() >= high {
                return newly_blocked;
            }
        }
    }

    /// One pass of [`pump`](Self::pump) over the streams.
    fn pump_pass(&mut self, cx: &mut Context<'_>, now: Instant, high: usize) -> bool {
        let mut newly_blocked = false;
        let mut i = 0;
        while i < self.streams.len() && self.out.len() < high {
            let s = &mut self.streams[i];
            let Phase::Sending(sending) = &mut s.phase else {
                i += 1;
                continue;
            };
            let window = s.send_window.min(self.send_window).max(0) as usize;
            let max = window.min(self.peer_max_frame);
            if max == 0 {
                if s.blocked_since.is_none() {
                    s.blocked_since = Some(now);
                    newly_blocked = true;
                }
                i += 1;
                continue;
            }
            s.blocked_since = None;
            let id = s.id;
            let step = match &mut sending.body {
                Source::Full(b) => {
                    let n = b.len().min(max);
                    let piece = b.split_to(n);
                    let end = b.is_empty();
                    Some((piece, end))
                }
                Source::Reader { reader, len } => {
                    let left = len.map(|n| n - sending.sent);
                    let want = left
                        .map_or(READ_CHUNK, |l| l.min(READ_CHUNK as u64) as usize)
                        .min(max);
                    let mut buf = BytesMut::with_capacity(want);
                    let mut take = tokio::io::AsyncReadExt::take(&mut **reader, want as u64);
                    match tokio_util::io::poll_read_buf(Pin::new(&mut take), cx, &mut buf) {
                        Poll::Pending => None,
                        Poll::Ready(Err(_)) => {
                            self.fail_stream(i);
                            continue;
                        }
                        Poll::Ready(Ok(got)) => {
                            let filled = buf.freeze();
                            if got == 0 {
                                if left.is_some_and(|l| l > 0) {
                                    // Ended before the length the head announced.
                                    self.fail_stream(i);
                                    continue;
                                }
                                Some((Bytes::new(), true))
                            } else {
                                let end = left == Some(got as u64);
                                Some((filled, end))
                            }
                        }
                    }
                }
            };
            let Some((piece, end)) = step else {
                i += 1;
                continue;
            };
            let n = piece.len();
            let s = &mut self.streams[i];
            s.send_window -= n as i64;
            self.send_window -= n as i64;
            if let Phase::Sending(sending) = &mut s.phase {
                sending.sent += n as u64;
            }
            f::put_head(
                &mut self.out.buf,
                n,
                f::DATA,
                if end { f::END_STREAM } else { 0 },
                id,
            );
            self.out.push(piece);
            if end {
                let s = &mut self.streams[i];
                if let Phase::Sending(sending) = std::mem::replace(&mut s.phase, Phase::Calling) {
                    let sent = sending.sent;
                    PENDING_LOGS.with(|l| l.borrow_mut().push((sending.log, Some(sent))));
                }
                self.early_resets = self.early_resets.saturating_sub(1);
                self.end_local(i);
                // `i` now holds another stream (swap_remove).
                continue;
            }
            i += 1;
        }
        newly_blocked
    }

    /// The body's source failed, or ended short: the stream is reset.
    fn fail_stream(&mut self, i: usize) {
        let s = &mut self.streams[i];
        let id = s.id;
        if let Phase::Sending(sending) = std::mem::replace(&mut s.phase, Phase::Calling) {
            PENDING_LOGS.with(|l| l.borrow_mut().push((sending.log, None)));
        }
        f::put_rst(&mut self.out.buf, id, Reason::InternalError);
        self.remember_reset(id);
        let s = self.streams.swap_remove(i);
        self.forget(s);
    }

    /// Gives back the window the services' reads (and discarded data) freed.
    fn release_windows(&mut self) {
        if self.receiving > 0 {
            let quarter = (self.h2.initial_stream_window / 4).max(1) as usize;
            for s in &mut self.streams {
                if s.remote_done {
                    continue;
                }
                let taken = std::mem::take(&mut s.inbox.lock().taken);
                s.release += taken;
                self.conn_release += taken;
                if s.release >= quarter {
                    f::put_window_update(&mut self.out.buf, s.id, s.release as u32);
                    s.recv_window += s.release as i64;
                    s.release = 0;
                }
            }
        }
        let quarter = (self.h2.initial_connection_window / 4).max(1) as usize;
        // Given back once a quarter is free, or at once when the window is
        // nearly shut (one WINDOW_UPDATE for many DATA frames).
        if self.conn_release > 0 && (self.conn_release >= quarter || self.recv_window < quarter as i64) {
            f::put_window_update(&mut self.out.buf, 0, self.conn_release as u32);
            self.recv_window += self.conn_release as i64;
            self.conn_release = 0;
        }
    }

    /// Resets the streams that found no window for `timeout`.
    fn reset_stalled(&mut self, now: Instant, timeout: Duration) {
        let stalled: Vec<u32> = self
            .streams
            .iter()
            .filter(|s| {
                s.blocked_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= timeout)
            })
            .map(|s| s.id)
            .collect();
        for id in stalled {
            tracing::debug!("HTTP/2 stream: no window within the write timeout; reset");
            self.reset(id, Reason::Cancel);
        }
    }

    fn earliest_stall(&self) -> Option<Instant> {
        let s = self.streams.iter().filter_map(|s| s.blocked_since).min();
        match (s, self.write_blocked_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

thread_local! {
    /// Access lines due, gathered while the connection's state is borrowed
    /// and written by the loop after each turn.
    static PENDING_LOGS: std::cell::RefCell<Vec<(LogEntry, Option<u64>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Serves HTTP/2 on one connection whose peer is known to speak it (ALPN
/// said `h2`, or the client sent the preface on a plain connection), until
/// the client closes it, it idles (no open stream) past
/// [`Limits::keep_alive_timeout`], a protocol error ends it, or `shutdown`
/// fires: then it sends `GOAWAY`, lets the streams in flight finish and closes.
///
/// Each request reaches `service` as a [`Request`] whose head is what the
/// strict HTTP/1.1 parser makes of the request's HTTP/1.1 form (`:authority`
/// as `Host`, cookies joined, `content-length` checked), with
/// [`Version::Http2`](crate::Version::Http2); a body without
/// `content-length` is [`BodyKind::Chunked`](crate::BodyKind::Chunked). A
/// request RFC 9113 calls malformed is reset with `PROTOCOL_ERROR` and never
/// reaches the service; one the HTTP/1.1 rules refuse gets their status (400,
/// 413, 414, 431), as over HTTP/1.1. Each stream's answer is logged and
/// passed to [`Service::on_response`] as over HTTP/1.1, with the protocol
/// `HTTP/2.0`; a stream the client resets cancels its service call and is
/// logged as 499.
///
/// The streams' service calls run on the connection's task (at most
/// [`H2Limits::max_concurrent_streams`] at once). `Expect: 100-continue` is
/// answered with `100` at once: over HTTP/2 the flow-control window, not the
/// interim answer, bounds what the client sends before the service reads.
///
/// ```
/// use std::sync::Arc;
/// use http_core::{serve_h2_connection, H2Limits, Limits, Request, Response, Service, ShutdownSignal};
///
/// struct Hello;
/// impl Service for Hello {
///     async fn call(&self, req: Request<'_>) -> Response {
///         Response::text(200, format!("hello over {}\n", req.head.version().as_str()))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let (client, server) = tokio::io::duplex(64 * 1024);
/// tokio::spawn(serve_h2_connection(
///     server,
///     None,
///     Arc::new(Hello),
///     Arc::new(Limits::default()),
///     H2Limits::default(),
///     ShutdownSignal::never(),
/// ));
/// // Any HTTP/2 client works; here the h2 crate's own.
/// let (mut send, conn) = h2::client::handshake(client).await.unwrap();
/// tokio::spawn(conn);
/// let req = http::Request::get("http://example.test/").body(()).unwrap();
/// let (resp, _) = send.send_request(req, true).unwrap();
/// let resp = resp.await.unwrap();
/// assert_eq!(resp.status(), 200);
/// let mut body = resp.into_body();
/// let data = body.data().await.unwrap().unwrap();
/// assert_eq!(&data[..], b"hello over HTTP/2.0\n");
/// # });
/// ```
pub async fn serve_h2_connection<T: Io, S: Service>(
    io: T,
    peer: Option<SocketAddr>,
    service: Arc<S>,
    limits: Arc<Limits>,
    h2: H2Limits,
    shutdown: ShutdownSignal,
) {
    serve(
        io,
        Bytes::new(),
        peer,
        service,
        limits,
        h2,
        Bytes::new(),
        shutdown,
    )
    .await
}

/// [`serve_h2_connection`] on a connection of which `read` (the preface, or
/// part of it) has been read already, adding `extra` header lines to every
/// response.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<T: Io, S: Service>(
    mut io: T,
    read: Bytes,
    peer: Option<SocketAddr>,
    service: Arc<S>,
    limits: Arc<Limits>,
    h2: H2Limits,
    extra: Bytes,
    shutdown: ShutdownSignal,
) {
    let tls = io.is_tls();
    let peer_text = match peer {
        Some(p) if tracing::enabled!(target: "access", tracing::Level::INFO) => p.to_string().into(),
        _ => "-".into(),
    };
    let ctx = Ctx {
        service,
        limits: limits.clone(),
        peer,
        peer_text,
        tls,
    };
    let mut conn = Conn::new(limits.clone(), h2, extra, read, io.is_write_vectored());
    let keep_alive = limits.keep_alive_timeout;
    let write_timeout = limits.write_timeout;
    let read_stop = h2.max_send_buffer.max(1024).saturating_mul(READ_STOP_FACTOR);
    let opened_at = Instant::now();
    let mut last_active = opened_at;
    let mut closing: Option<Instant> = None;
    let timer = tokio::time::sleep(limits.header_timeout.min(keep_alive));
    tokio::pin!(timer);
    let signalled = shutdown.clone().next_change();
    tokio::pin!(signalled);
    if shutdown.is_triggered() {
        conn.go_away(Reason::NoError);
        closing = Some(Instant::now());
    }
    let mut tasks = FuturesUnordered::new();
    let mut spare = None;
    let mut events = Vec::new();
    let mut write_failed = false;
    poll_fn(|cx| {
        for _ in 0..TURNS {
            let mut progress = false;
            if conn.out.buf.capacity() == 0 {
                // Frames about to be written go to a pooled buffer, not one
                // grown from nothing.
                conn.out.buf = buf_pool::take();
            }
            // The peer's frames.
            if !conn.read_closed && !conn.fatal && conn.out.len() < read_stop {
                if conn.rbuf.capacity() == 0 {
                    conn.rbuf = buf_pool::take();
                } else if conn.rbuf.capacity() - conn.rbuf.len() < 1024 {
                    conn.rbuf.reserve(buf_pool::BUF_CAPACITY);
                }
                match tokio_util::io::poll_read_buf(Pin::new(&mut io), cx, &mut conn.rbuf) {
                    Poll::Ready(Ok(n)) => {
                        if n == 0 {
                            conn.read_closed = true;
                        } else {
                            progress = true;
                            if let Err(ConnError(reason)) = conn.on_input(&mut events) {
                                tracing::debug!(peer = ?ctx.peer, ?reason, "HTTP/2 connection error");
                                conn.go_away(reason);
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(peer = ?ctx.peer, error = %e, "HTTP/2 read failed");
                        conn.read_closed = true;
                        write_failed = true;
                    }
                    Poll::Pending => {}
                }
            }
            // New requests: each service call is polled once at once; an
            // answer it has ready (a cached file) is sent without a task.
            for Event::Request {
                id,
                head,
                inbox,
                end_stream,
            } in events.drain(..)
            {
                last_active = Instant::now();
                let gone = {
                    let i = inbox.lock();
                    i.gone.then_some(i.refused)
                };
                if let Some(refused) = gone {
                    // Reset before its service was called (frames read with
                    // its HEADERS made it malformed, or the client reset
                    // it): the service never sees it.
                    let status = if refused.is_some() { 400 } else { CLIENT_CLOSED };
                    PENDING_LOGS.with(|l| {
                        l.borrow_mut().push((
                            LogEntry {
                                head: Some(head),
                                status,
                                fields: Vec::new(),
                                started: last_active,
                                refused,
                            },
                            None,
                        ))
                    });
                    progress = true;
                    continue;
                }
                let fut = stream_call(&ctx, id, head, inbox, end_stream, last_active);
                let mut slot = match spare.take() {
                    Some(mut slot) => {
                        Pin::set(&mut slot, Some(fut));
                        slot
                    }
                    None => Box::pin(Some(fut)),
                };
                match poll_slot(&mut slot, cx) {
                    Poll::Ready(done) => {
                        spare = Some(slot);
                        on_done(&mut conn, done);
                    }
                    Poll::Pending => tasks.push(Slot(slot)),
                }
                progress = true;
            }
            // Service calls that were waiting.
            while let Poll::Ready(Some(done)) = tasks.poll_next_unpin(cx) {
                on_done(&mut conn, done);
                last_active = Instant::now();
                progress = true;
            }
            conn.release_windows();
            if !conn.fatal && conn.pump(cx, last_active) {
                let at = Instant::now() + write_timeout;
                if timer.deadline() > at.into() {
                    timer.as_mut().reset(at.into());
                }
            }
            flush_logs(&ctx);
            // The output.
            if !conn.out.is_empty() && !write_failed {
                let before = conn.out.len();
                match conn.out.poll_write(&mut io, cx) {
                    Poll::Ready(Ok(())) => {
                        conn.write_blocked_since = None;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(peer = ?ctx.peer, error = %e, "HTTP/2 write failed");
                        write_failed = true;
                    }
                    Poll::Pending => {
                        if conn.out.len() < before {
                            conn.write_blocked_since = None;
                            progress = true;
                        }
                        if conn.write_blocked_since.is_none() {
                            conn.write_blocked_since = Some(Instant::now());
                            let at = Instant::now() + write_timeout;
                            if timer.deadline() > at.into() {
                                timer.as_mut().reset(at.into());
                            }
                        }
                    }
                }
            }
            if conn.out.is_empty() && !write_failed {
                // Bytes a transport holds (TLS records) go out now.
                if let Poll::Ready(Err(_)) = Pin::new(&mut io).poll_flush(cx) {
                    write_failed = true;
                }
            }
            // The end.
            let idle = conn.streams.is_empty() && tasks.is_empty();
            if write_failed || (conn.fatal && conn.out.is_empty()) {
                return Poll::Ready(());
            }
            if conn.read_closed && idle && conn.out.is_empty() {
                return Poll::Ready(());
            }
            if (conn.goaway.is_some() || conn.peer_goaway) && idle && conn.out.is_empty() {
                return Poll::Ready(());
            }
            if conn.read_closed && !idle && conn.out.is_empty() {
                // The peer is gone: nothing it asked for can reach it.
                return Poll::Ready(());
            }
            // Timers and signals.
            if timer.as_mut().poll(cx).is_ready() {
                let now = Instant::now();
                if !conn.settings_seen && now >= opened_at + limits.header_timeout {
                    tracing::debug!(peer = ?ctx.peer, "HTTP/2 handshake timed out");
                    return Poll::Ready(());
                }
                if conn.write_blocked_since.is_some_and(|t| now >= t + write_timeout) {
                    tracing::debug!(peer = ?ctx.peer, "HTTP/2 peer stopped reading; closing");
                    return Poll::Ready(());
                }
                conn.reset_stalled(now, write_timeout);
                if closing.is_some_and(|t| now >= t + write_timeout) {
                    tracing::debug!(peer = ?ctx.peer, "HTTP/2 client did not finish after GOAWAY");
                    return Poll::Ready(());
                }
                if idle && closing.is_none() && now >= last_active + keep_alive {
                    conn.go_away(Reason::NoError);
                    closing = Some(now);
                }
                let mut next = if idle && closing.is_none() {
                    last_active + keep_alive
                } else {
                    now + write_timeout.min(keep_alive)
                };
                if !conn.settings_seen {
                    next = next.min(opened_at + limits.header_timeout);
                }
                if let Some(t) = conn.earliest_stall() {
                    next = next.min(t + write_timeout);
                }
                if let Some(t) = closing {
                    next = next.min(t + write_timeout);
                }
                timer
                    .as_mut()
                    .reset(next.max(now + Duration::from_millis(10)).into());
                progress = true;
            }
            if closing.is_none() && signalled.as_mut().poll(cx).is_ready() {
                let reaped = shutdown
                    .reap_idle_before()
                    .is_some_and(|before| idle && last_active <= before);
                if shutdown.is_triggered() || reaped {
                    conn.go_away(Reason::NoError);
                    let now = Instant::now();
                    closing = Some(now);
                    let at = (now + write_timeout).into();
                    if timer.deadline() > at {
                        timer.as_mut().reset(at);
                    }
                } else {
                    signalled.set(shutdown.clone().next_change());
                }
                progress = true;
            }
            if conn.streams.is_empty() && tasks.is_empty() && conn.out.is_empty() {
                if conn.rbuf.is_empty() && conn.rbuf.capacity() > 0 {
                    // Idle: the read buffer goes back to the pool.
                    buf_pool::give(std::mem::take(&mut conn.rbuf));
                }
                if conn.out.buf.capacity() > 0 {
                    buf_pool::give(std::mem::take(&mut conn.out.buf));
                }
                if conn.scratch.capacity() > 0 {
                    // The heads split off it are gone with their streams.
                    conn.scratch = BytesMut::new();
                }
                // What one request at a time needs is kept (a client that
                // sends one request after another would otherwise grow these
                // again for each); what a burst or a big header list grew
                // them to is not.
                if conn.streams.capacity() > IDLE_KEEP_ITEMS {
                    conn.streams = Vec::new();
                }
                if events.capacity() > 0 {
                    // Its entries hold a whole request head each.
                    events = Vec::new();
                }
                if conn.fields.heap_size() > IDLE_KEEP_BYTES {
                    conn.fields = HeaderList::default();
                }
                if conn.block.capacity() > 0 {
                    conn.block = Vec::new();
                }
                spare = None;
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    // The connection is over: answers still being sent are logged as cut
    // short, service calls still running are cancelled and logged as 499.
    for s in std::mem::take(&mut conn.streams) {
        conn.drop_stream(s);
    }
    while let Some(done) = tasks.next().await {
        on_done(&mut conn, done);
    }
    flush_logs(&ctx);
    if !write_failed {
        linger(&mut io, &mut conn.out).await;
    }
    if conn.rbuf.capacity() > 0 {
        buf_pool::give(std::mem::take(&mut conn.rbuf));
    }
}

/// Ends the connection: the last bytes and the end of the stream go out,
/// then what the peer still sends is read and dropped for a moment, so that
/// it reads the GOAWAY instead of a reset.
async fn linger<T: Io>(io: &mut T, out: &mut Out) {
    out.seal();
    let mut last = BytesMut::new();
    for b in out.queue.drain(..) {
        last.extend_from_slice(&b);
    }
    let write = async {
        let mut rest: &[u8] = &last;
        poll_fn(|cx| Pin::new(&mut *io).poll_finish(cx, &mut rest)).await
    };
    if tokio::time::timeout(LINGER_TIME, write).await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        loop {
            let mut rb = ReadBuf::new(&mut buf);
            match poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut rb)).await {
                Ok(()) if !rb.filled().is_empty() => {
                    total += rb.filled().len();
                    if total > LINGER_BYTES {
                        return;
                    }
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// A stream's future in a box that outlives it: emptied once it is done.
type BoxedSlot<F> = Pin<Box<Option<F>>>;

/// Polls the future in `slot`; once done, the slot is emptied (so its box
/// can hold the next one).
fn poll_slot<F: Future<Output = Done>>(slot: &mut BoxedSlot<F>, cx: &mut Context<'_>) -> Poll<Done> {
    let Some(fut) = slot.as_mut().as_pin_mut() else {
        return Poll::Pending;
    };
    let done = std::task::ready!(fut.poll(cx));
    slot.set(None);
    Poll::Ready(done)
}

/// A stream that could not be answered at once, among the others.
struct Slot<F>(BoxedSlot<F>);

impl<F: Future<Output = Done>> Future for Slot<F> {
    type Output = Done;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done> {
        poll_slot(&mut self.get_mut().0, cx)
    }
}

/// A service call finished: its answer goes out, or a cancelled one is logged.
fn on_done(conn: &mut Conn, done: Done) {
    let Done {
        id,
        head,
        resp,
        started,
    } = done;
    match resp {
        Some(resp) if conn.stream_index(id).is_some() => {
            let method = head.method();
            conn.respond(id, Some(head), resp, method, started, None);
        }
        resp => {
            // Reset by the client (or gone with the connection).
            let fields = resp.map(|mut r| std::mem::take(&mut r.log)).unwrap_or_default();
            PENDING_LOGS.with(|l| {
                l.borrow_mut().push((
                    LogEntry {
                        head: Some(head),
                        status: CLIENT_CLOSED,
                        fields,
                        started,
                        refused: None,
                    },
                    None,
                ))
            });
        }
    }
}

fn flush_logs<S: Service>(ctx: &Ctx<S>) {
    let logs = PENDING_LOGS.with(|l| {
        let mut l = l.borrow_mut();
        if l.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut *l))
        }
    });
    let Some(mut logs) = logs else {
        return;
    };
    for (entry, bytes) in logs.drain(..) {
        let record = AccessRecord {
            peer: ctx.peer,
            head: entry.head.as_ref(),
            status: entry.status,
            bytes,
            elapsed: entry.started.elapsed(),
            fields: &entry.fields,
            refused: entry.refused,
        };
        access_log::log_request(&ctx.peer_text, &record);
        ctx.service.on_response(&record);
    }
    PENDING_LOGS.with(|l| {
        let mut l = l.borrow_mut();
        if l.is_empty() {
            *l = logs;
        }
    });
}

/// One stream's service call, cancelled if the stream goes away.
async fn stream_call<S: Service>(
    ctx: &Ctx<S>,
    id: u32,
    head: RequestHead,
    inbox: Shared,
    end_stream: bool,
    started: Instant,
) -> Done {
    let mut body = H2Body::new(inbox.clone(), head.body(), end_stream, &ctx.limits);
    let called = {
        let req = Request {
            head: &head,
            body: RequestBody::h2(&mut body),
            peer: ctx.peer,
            tls: ctx.tls,
            received: started,
        };
        let call = ctx.service.call(req);
        let gone = poll_fn(|cx| {
            let mut i = inbox.lock();
            if i.gone {
                return Poll::Ready(());
            }
            if !i.task_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                i.task_waker = Some(cx.waker().clone());
            }
            Poll::Pending
        });
        tokio::select! {
            biased;
            r = call => Some(r),
            () = gone => None,
        }
    };
    let resp = called.map(|mut resp| {
        if let Some(e) = body.error {
            // The body broke a limit: whatever the service made of it is void.
            let log_fields = std::mem::take(&mut resp.log);
            resp = Response::text(e.status(), Bytes::from(format!("{e}\n")));
            resp.log = log_fields;
        }
        resp
    });
    drop(body);
    Done {
        id,
        head,
        resp,
        started,
    }
}
