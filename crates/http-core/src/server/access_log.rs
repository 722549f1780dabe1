//! The access log: one line per request, and the values services add to it.
//!
//! Every line is one `tracing` event at info level, target `access`, whose
//! message is the whole line, in the format the process chose once with
//! [`set_access_log_format`]:
//!
//! - [`AccessLogFormat::Text`] (the default):
//!   `PEER "METHOD TARGET VERSION" STATUS BYTES DURATIONus [key=value ...]`,
//!   `127.0.0.1:60024 "GET /page.html HTTP/1.1" 200 1754 572us backend=127.0.0.1:9003 upstream=451us retries=0`.
//!   BYTES is `-` when the response could not be written whole.
//! - [`AccessLogFormat::Json`]: one JSON object, `{"time":"2026-11-26T03:24:43.644Z",
//!   "client":"127.0.0.1:60024","method":"GET","target":"/page.html","version":"HTTP/1.1",
//!   "status":200,"bytes":1754,"duration_us":572,"host":"localhost:44444","user_agent":"curl/8.5.0",
//!   "referer":null,"backend":"127.0.0.1:9003","upstream_us":451,"retries":0}`.
//!
//! **Escaping.** A field taken from the request (method, target, and in JSON the
//! `Host`, `User-Agent` and `Referer` values) and a text a service adds with
//! [`Response::log_field`](crate::Response::log_field) has each `"`, `\`, control
//! byte (0x00–0x1F, 0x7F) and non-ASCII byte written as `\xHH`, as nginx's
//! `escape=default` does; in the text format a space in a `key=value` value is
//! `\x20` too. So a request cannot end a field early or start a line, and each
//! value is printable ASCII, the same in both formats (inside a JSON string the
//! backslash is escaped once more: `\\x22`).
//!
//! **Refused requests** (those the driver answers itself: 400, 408, 413, 414,
//! 431, 501, 505) get a line too, `PEER "-" 400 24 15us refused=bad_request_line`
//! (the request part is the head when one was read, as for a body that was too
//! large), at most [`REFUSED_LINES_PER_SECOND`] a second in the whole process;
//! the number of lines left out is added to the next refused line that is
//! written, as `suppressed=N`.
//!
//! **Other lines**: [`log_connection`] writes the same shape for a connection
//! relayed without reading HTTP (rr-proxy's TCP mode):
//! `PEER "TCP" 200 BYTES DURATIONus backend=ADDR received=N`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::log_time::push_log_time;
use crate::{Error, Method, RequestHead};

/// What the driver knows of a request once its response is written. Services
/// receive it in [`Service::on_response`](crate::Service::on_response) (to
/// count, time and classify responses) and the access line is written from it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// The client's address, when the transport has one.
    pub peer: Option<SocketAddr>,
    /// The request head; `None` for a request the driver refused before a head
    /// could be parsed (see [`refused`](Self::refused)).
    pub head: Option<&'a RequestHead>,
    /// The status sent.
    pub status: u16,
    /// Body bytes sent; `None` when the response could not be written whole.
    pub bytes: Option<u64>,
    /// From the request's head to the end of writing the response; for a
    /// refused request, from when its head began arriving (the refusal itself
    /// when the head came in one read) to the end of writing the answer, so a
    /// 408's is the header timeout.
    pub elapsed: Duration,
    /// The fields the service added with [`Response::log_field`](crate::Response::log_field).
    pub fields: &'a [(&'static str, LogValue)],
    /// Why the driver refused the request itself (malformed, too large, too
    /// slow: 400, 408, 413, 414, 431, 501, 505), without calling the service.
    pub refused: Option<Error>,
}

/// A value added to the driver's access-log line for a request.
#[derive(Debug, Clone)]
pub enum LogValue {
    /// A text, such as a backend address: escaped as the module docs say; a
    /// JSON string.
    Text(Arc<str>),
    /// A duration, such as the upstream time: `KEY=451us` in text, `"KEY_us":451`
    /// in JSON (whole microseconds).
    Duration(Duration),
    /// A count, such as the proxy's retries: a number in both formats.
    Count(u64),
    /// A flag, such as `admin`: `true` or `false` in both formats.
    Flag(bool),
}

impl fmt::Display for LogValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogValue::Text(t) => f.write_str(t),
            LogValue::Duration(d) => write!(f, "{}us", d.as_micros()),
            LogValue::Count(n) => write!(f, "{n}"),
            LogValue::Flag(b) => write!(f, "{b}"),
        }
    }
}

/// How access lines are written: text (the default) or one JSON object a line
/// (both described in the workspace README's "Access log" section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// `PEER "METHOD TARGET VERSION" STATUS BYTES DURATIONus [key=value ...]`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

static FORMAT: AtomicU8 = AtomicU8::new(0);

/// Sets the format of every access line the process writes from now on
/// (default [`AccessLogFormat::Text`]). A binary calls it once at start-up,
/// from its `--log-format` flag; checking it costs one relaxed atomic load.
///
/// ```
/// use http_core::server::{access_log_format, set_access_log_format, AccessLogFormat};
/// set_access_log_format(AccessLogFormat::Json);
/// assert_eq!(access_log_format(), AccessLogFormat::Json);
/// # set_access_log_format(AccessLogFormat::Text);
/// ```
pub fn set_access_log_format(format: AccessLogFormat) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

/// The format set with [`set_access_log_format`].
pub fn access_log_format() -> AccessLogFormat {
    match FORMAT.load(Ordering::Relaxed) {
        1 => AccessLogFormat::Json,
        _ => AccessLogFormat::Text,
    }
}

/// Most access lines for refused requests written in one second, in the whole
/// process: a flood of malformed requests must not become a flood of log lines.
/// The lines left out are counted and reported on the next one written
/// (`suppressed=N`).
pub const REFUSED_LINES_PER_SECOND: u32 = 10;

/// A budget of lines per wall-clock second, shared by all threads.
struct LineBudget {
    /// The second (low 32 bits of the Unix time) in the high half, lines
    /// written in it in the low half: one compare-and-swap takes a line.
    window: AtomicU64,
    /// Lines left out since the last one written.
    suppressed: AtomicU64,
}

impl LineBudget {
    const fn new() -> Self {
        LineBudget {
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Takes a line in second `now`: `Some(lines left out before it)`, or
    /// `None` (counted) when the second's lines are used up.
    fn take(&self, now: u64, per_second: u32) -> Option<u64> {
        let second = now & 0xFFFF_FFFF;
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let next = if current >> 32 == second {
                if current & 0xFFFF_FFFF >= u64::from(per_second) {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                current + 1
            } else {
                second << 32 | 1
            };
            match self
                .window
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(seen) => current = seen,
            }
        }
    }
}

static REFUSED_BUDGET: LineBudget = LineBudget::new();

/// What stands in a line's request part.
#[derive(Clone, Copy)]
enum RequestPart<'a> {
    /// `"METHOD TARGET VERSION"`.
    Head(&'a RequestHead),
    /// `"-"`: refused before a head was read.
    Unread,
    /// `"TCP"`: a connection relayed as bytes.
    Tcp,
}

/// Who the peer is: the text the connection formatted once, or an address.
#[derive(Clone, Copy)]
enum PeerPart<'a> {
    Text(&'a str),
    Addr(Option<SocketAddr>),
}

/// Everything one line says.
struct Line<'a> {
    peer: PeerPart<'a>,
    request: RequestPart<'a>,
    status: u16,
    bytes: Option<u64>,
    elapsed: Duration,
    fields: &'a [(&'static str, LogValue)],
    refused: Option<Error>,
    suppressed: u64,
}

/// Writes the access line of a request the driver answered or refused. `peer`
/// is the client's address as the connection formatted it (`-` when unknown).
///
/// The line is assembled by hand in a reused buffer: through `format_args!` its
/// nine fields cost more than parsing the request did.
pub(crate) fn log_request(peer: &str, record: &AccessRecord<'_>) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    let mut suppressed = 0;
    if record.refused.is_some() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        match REFUSED_BUDGET.take(now.as_secs(), REFUSED_LINES_PER_SECOND) {
            Some(n) => suppressed = n,
            None => return,
        }
    }
    emit(&Line {
        peer: PeerPart::Text(peer),
        request: record.head.map_or(RequestPart::Unread, RequestPart::Head),
        status: record.status,
        bytes: record.bytes,
        elapsed: record.elapsed,
        fields: record.fields,
        refused: record.refused,
        suppressed,
    });
}

/// Writes the access line of a connection relayed as bytes rather than read as
/// HTTP (rr-proxy's TCP mode), in the process's [format](set_access_log_format)
/// and with the same shape as a request's line: `PEER "TCP" STATUS BYTES
/// DURATIONus [key=value ...]` in text, and in JSON an object with `time`,
/// `client`, `"protocol":"tcp"`, `status`, `bytes`, `duration_us` and the fields.
/// `bytes` counts what was sent to the client; `status` says how it went (by
/// convention 200 relayed, 502 no backend could be reached, 503 none was
/// available).
///
/// ```
/// use http_core::server::log_connection;
/// use http_core::LogValue;
/// use std::time::Duration;
/// let peer = "127.0.0.1:50000".parse().ok();
/// log_connection(peer, 200, 1754, Duration::from_micros(1203), &[
///     ("backend", LogValue::Text("127.0.0.1:9003".into())),
///     ("received", LogValue::Count(78)),
/// ]);
/// // 127.0.0.1:50000 "TCP" 200 1754 1203us backend=127.0.0.1:9003 received=78
/// ```
pub fn log_connection(
    peer: Option<SocketAddr>,
    status: u16,
    bytes: u64,
    elapsed: Duration,
    fields: &[(&'static str, LogValue)],
) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    emit(&Line {
        peer: PeerPart::Addr(peer),
        request: RequestPart::Tcp,
        status,
        bytes: Some(bytes),
        elapsed,
        fields,
        refused: None,
        suppressed: 0,
    });
}

/// The line [`log_request`] writes for `record` (a refused one without the
/// rate limit), in `format`, appended to `out`: the benchmarks' measuring point.
#[doc(hidden)]
pub fn format_access_line(out: &mut String, format: AccessLogFormat, peer: &str, record: &AccessRecord<'_>) {
    let line = Line {
        peer: PeerPart::Text(peer),
        request: record.head.map_or(RequestPart::Unread, RequestPart::Head),
        status: record.status,
        bytes: record.bytes,
        elapsed: record.elapsed,
        fields: record.fields,
        refused: record.refused,
        suppressed: 0,
    };
    match format {
        AccessLogFormat::Text => write_text(out, &line),
        AccessLogFormat::Json => write_json(out, &line),
    }
}

/// Formats `line` in the process's format into a thread's reused buffer and
/// logs it.
fn emit(line: &Line<'_>) {
    thread_local! {
        static BUF: RefCell<String> = const { RefCell::new(String::new()) };
    }
    BUF.with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else {
            return;
        };
        buf.clear();
        match access_log_format() {
            AccessLogFormat::Text => write_text(&mut buf, line),
            AccessLogFormat::Json => write_json(&mut buf, line),
        }
        // As a `str` field the line reaches the subscriber's `record_str` as it
        // is; `"{}"` would send it through `fmt::Arguments` and a formatter.
        tracing::info!(target: "access", message = buf.as_str());
    });
}

fn push_peer(out: &mut String, peer: PeerPart<'_>) -> bool {
    match peer {
        PeerPart::Text("-") | PeerPart::Addr(None) => false,
        PeerPart::Text(t) => {
            out.push_str(t);
            true
        }
        PeerPart::Addr(Some(a)) => {
            let _ = write!(out, "{a}");
            true
        }
    }
}

fn write_text(out: &mut String, line: &Line<'_>) {
    let mut num = itoa::Buffer::new();
    if !push_peer(out, line.peer) {
        out.push('-');
    }
    out.push_str(" \"");
    match line.request {
        RequestPart::Head(head) => {
            push_method(out, head, TEXT_ESCAPE);
            out.push(' ');
            push_escaped::<false>(out, head.target(), TEXT_ESCAPE);
            out.push(' ');
            out.push_str(head.version().as_str());
        }
        RequestPart::Unread => out.push('-'),
        RequestPart::Tcp => out.push_str("TCP"),
    }
    out.push_str("\" ");
    out.push_str(num.format(line.status));
    out.push(' ');
    match line.bytes {
        Some(b) => out.push_str(num.format(b)),
        None => out.push('-'),
    }
    out.push(' ');
    out.push_str(num.format(line.elapsed.as_micros() as u64));
    out.push_str("us");
    for (k, v) in line.fields {
        out.push(' ');
        out.push_str(k);
        out.push('=');
        match v {
            LogValue::Text(t) => push_escaped::<true>(out, t, TEXT_ESCAPE),
            LogValue::Duration(d) => {
                out.push_str(num.format(d.as_micros() as u64));
                out.push_str("us");
            }
            LogValue::Count(n) => out.push_str(num.format(*n)),
            LogValue::Flag(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
    if let Some(e) = line.refused {
        out.push_str(" refused=");
        out.push_str(e.code());
    }
    if line.suppressed > 0 {
        out.push_str(" suppressed=");
        out.push_str(num.format(line.suppressed));
    }
}

fn write_json(out: &mut String, line: &Line<'_>) {
    let mut num = itoa::Buffer::new();
    out.push_str("{\"time\":\"");
    push_log_time(out);
    out.push_str("\",\"client\":");
    let at = out.len();
    out.push('"');
    if push_peer(out, line.peer) {
        out.push('"');
    } else {
        out.truncate(at);
        out.push_str("null");
    }
    match line.request {
        RequestPart::Head(head) => {
            json_key(out, "method");
            out.push('"');
            push_method(out, head, JSON_ESCAPE);
            out.push('"');
            json_key(out, "target");
            json_str(out, head.target().as_bytes());
            json_key(out, "version");
            out.push('"');
            out.push_str(head.version().as_str());
            out.push('"');
        }
        RequestPart::Unread => out.push_str(",\"method\":null,\"target\":null,\"version\":null"),
        RequestPart::Tcp => out.push_str(",\"protocol\":\"tcp\""),
    }
    json_key(out, "status");
    out.push_str(num.format(line.status));
    json_key(out, "bytes");
    match line.bytes {
        Some(b) => out.push_str(num.format(b)),
        None => out.push_str("null"),
    }
    json_key(out, "duration_us");
    out.push_str(num.format(line.elapsed.as_micros() as u64));
    match line.request {
        RequestPart::Head(head) => {
            for (key, value) in [
                ("host", head.host()),
                ("user_agent", head.header("user-agent")),
                ("referer", head.header("referer")),
            ] {
                json_key(out, key);
                match value {
                    Some(v) => json_str(out, v),
                    None => out.push_str("null"),
                }
            }
        }
        RequestPart::Unread => out.push_str(",\"host\":null,\"user_agent\":null,\"referer\":null"),
        RequestPart::Tcp => {}
    }
    for (k, v) in line.fields {
        out.push_str(",\"");
        push_escaped::<false>(out, k, JSON_ESCAPE);
        match v {
            LogValue::Duration(_) => out.push_str("_us\":"),
            _ => out.push_str("\":"),
        }
        match v {
            LogValue::Text(t) => json_str(out, t.as_bytes()),
            LogValue::Duration(d) => out.push_str(num.format(d.as_micros() as u64)),
            LogValue::Count(n) => out.push_str(num.format(*n)),
            LogValue::Flag(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
    if let Some(e) = line.refused {
        json_key(out, "refused");
        out.push('"');
        out.push_str(e.code());
        out.push('"');
    }
    if line.suppressed > 0 {
        json_key(out, "suppressed");
        out.push_str(num.format(line.suppressed));
    }
    out.push('}');
}

/// The method: a token, escaped all the same when it is not one of the
/// known ones (whose text is this crate's own).
fn push_method(out: &mut String, head: &RequestHead, esc: &str) {
    match head.method() {
        Method::Other => push_escaped::<false>(out, head.method_str(), esc),
        _ => out.push_str(head.method_str()),
    }
}

/// `,"key":` (keys are this module's own names).
fn json_key(out: &mut String, key: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
}

/// `value` as a JSON string, escaped first as the text format escapes it.
fn json_str(out: &mut String, value: &[u8]) {
    out.push('"');
    push_escaped_bytes(out, value, JSON_ESCAPE);
    out.push('"');
}

/// What precedes the two hex digits of an escaped byte: in text, `\x`; inside
/// a JSON string the backslash must itself be escaped.
const TEXT_ESCAPE: &str = "\\x";
const JSON_ESCAPE: &str = "\\\\x";

/// Whether `b` must be escaped: `"`, `\`, a control byte, a non-ASCII byte, and
/// with `SPACE` a space.
#[inline(always)]
fn must_escape<const SPACE: bool>(b: u8) -> bool {
    // Outside 0x20..0x7F: one unsigned comparison.
    (b.wrapping_sub(0x20) >= 0x5f) | (b == b'"') | (b == b'\\') | (SPACE & (b == b' '))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of some byte set when a byte of `x` is zero (and only then,
/// taken over the whole word).
#[inline(always)]
fn zero_byte(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Nonzero when one of the eight bytes of `x` [`must_escape`]: the usual
/// bit tricks on a word, eight bytes a step. A byte with its high bit set is
/// flagged by itself; for words without one, no carry or borrow crosses a
/// byte before the lowest flagged byte, so each test is exact.
#[inline(always)]
fn escape_flags<const SPACE: bool>(x: u64) -> u64 {
    let non_ascii = x & HIGH;
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let del = x.wrapping_add(ONES) & HIGH;
    let quote = zero_byte(x ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(x ^ (ONES * u64::from(b'\\')));
    let space = if SPACE {
        zero_byte(x ^ (ONES * u64::from(b' ')))
    } else {
        0
    };
    non_ascii | control | del | quote | backslash | space
}

/// Whether no byte of `value` [`must_escape`]. Access-line fields are short
/// (a target of a few dozen bytes): a word at a time beats a vectorised fold,
/// which leaves them to its scalar tail.
#[inline]
fn is_clean<const SPACE: bool>(value: &[u8]) -> bool {
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or([b'a'; 8]));
    if value.len() < 8 {
        return !value.iter().fold(false, |bad, &b| bad | must_escape::<SPACE>(b));
    }
    let mut words = value.chunks_exact(8);
    let mut flags = 0;
    for w in &mut words {
        flags |= escape_flags::<SPACE>(word(w));
    }
    if !words.remainder().is_empty() {
        // The last eight bytes, overlapping the last whole word.
        flags |= escape_flags::<SPACE>(word(&value[value.len() - 8..]));
    }
    flags == 0
}

/// Appends `value` with each byte [`must_escape`] says as `ESC` and two
/// uppercase hex digits (`\x22`), as nginx's `escape=default` does.
#[inline]
fn push_escaped<const SPACE: bool>(out: &mut String, value: &str, esc: &str) {
    if is_clean::<SPACE>(value.as_bytes()) {
        out.push_str(value);
    } else {
        push_escaped_slow::<SPACE>(out, value.as_bytes(), esc);
    }
}

/// [`push_escaped`] for bytes that may not be UTF-8 (header values).
fn push_escaped_bytes(out: &mut String, value: &[u8], esc: &str) {
    match std::str::from_utf8(value) {
        Ok(s) => push_escaped::<false>(out, s, esc),
        Err(_) => push_escaped_slow::<false>(out, value, esc),
    }
}

#[cold]
#[inline(never)]
fn push_escaped_slow<const SPACE: bool>(out: &mut String, value: &[u8], esc: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if must_escape::<SPACE>(b) {
            out.push_str(esc);
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(b));
        }
    }
}

/// An optional address as logs show it: the address, or `-`.
pub(crate) struct ShowPeer(pub(crate) Option<SocketAddr>);

impl fmt::Display for ShowPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => a.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn head(raw: &[u8]) -> RequestHead {
        RequestHead::parse_complete(bytes::Bytes::copy_from_slice(raw), &Limits::default()).unwrap()
    }

    fn text(line: &Line<'_>) -> String {
        let mut s = String::new();
        write_text(&mut s, line);
        s
    }

    fn json(line: &Line<'_>) -> String {
        let mut s = String::new();
        write_json(&mut s, line);
        s
    }

    fn line<'a>(h: Option<&'a RequestHead>, fields: &'a [(&'static str, LogValue)]) -> Line<'a> {
        Line {
            peer: PeerPart::Text("127.0.0.1:5000"),
            request: h.map_or(RequestPart::Unread, RequestPart::Head),
            status: 200,
            bytes: Some(13),
            elapsed: Duration::from_micros(572),
            fields,
            refused: None,
            suppressed: 0,
        }
    }

    #[test]
    fn the_word_scan_agrees_with_the_byte_rule() {
        let byte_rule = |v: &[u8], space: bool| {
            !v.iter().any(|&b| {
                if space {
                    must_escape::<true>(b)
                } else {
                    must_escape::<false>(b)
                }
            })
        };
        // Each byte value at each position of inputs of 1 to 17 bytes, among
        // clean bytes and after a byte that borrows.
        for len in 1..=17 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    for filler in [b'a', b'!', 0x7e] {
                        let mut v = vec![filler; len];
                        v[pos] = b;
                        assert_eq!(is_clean::<false>(&v), byte_rule(&v, false), "{v:?}");
                        assert_eq!(is_clean::<true>(&v), byte_rule(&v, true), "{v:?}");
                    }
                }
            }
        }
        let mut v = *b"/page.html?x=1&y=2";
        for i in 0..v.len() {
            let keep = v[i];
            for b in [0u8, 0x1f, 0x20, 0x21, 0x22, 0x5c, 0x7e, 0x7f, 0x80, 0xff] {
                v[i] = b;
                assert_eq!(is_clean::<false>(&v), byte_rule(&v, false), "{v:?}");
                assert_eq!(is_clean::<true>(&v), byte_rule(&v, true), "{v:?}");
            }
            v[i] = keep;
        }
        assert!(is_clean::<true>(b""));
    }

    #[test]
    fn escapes_as_nginx_does() {
        let mut s = String::new();
        push_escaped_bytes(&mut s, b"/a?x=\"q\" \\ \x01\x7f\x80\xff\t", TEXT_ESCAPE);
        assert_eq!(s, r#"/a?x=\x22q\x22 \x5C \x01\x7F\x80\xFF\x09"#);
        s.clear();
        push_escaped::<true>(&mut s, "a b", TEXT_ESCAPE);
        assert_eq!(s, r"a\x20b");
        s.clear();
        push_escaped_bytes(&mut s, "café".as_bytes(), JSON_ESCAPE);
        assert_eq!(s, r"caf\\xC3\\xA9");
        s.clear();
        push_escaped::<false>(&mut s, "/page.html?x=1", TEXT_ESCAPE);
        assert_eq!(s, "/page.html?x=1");
    }

    #[test]
    fn a_quote_in_the_target_cannot_forge_a_field() {
        let h = head(b"GET /page.html?x=1&y=\"q\" HTTP/1.1\r\nHost: a\r\n\r\n");
        let fields = [
            ("backend", LogValue::Text("b 1\"".into())),
            ("upstream", LogValue::Duration(Duration::from_micros(451))),
            ("retries", LogValue::Count(0)),
            ("admin", LogValue::Flag(true)),
        ];
        assert_eq!(
            text(&line(Some(&h), &fields)),
            r#"127.0.0.1:5000 "GET /page.html?x=1&y=\x22q\x22 HTTP/1.1" 200 13 572us backend=b\x201\x22 upstream=451us retries=0 admin=true"#
        );
    }

    #[test]
    fn json_lines() {
        let h = head(
            b"GET /p?\"x\" HTTP/1.1\r\nHost: example.com\r\nUser-Agent: ua \xe9\t\"1\"\r\nReferer: http://r/\r\n\r\n",
        );
        let fields = [
            ("backend", LogValue::Text("127.0.0.1:9003".into())),
            ("upstream", LogValue::Duration(Duration::from_micros(451))),
            ("retries", LogValue::Count(1)),
        ];
        let s = json(&line(Some(&h), &fields));
        let (time, rest) = s.split_at(s.find(",\"client\"").unwrap());
        assert!(
            time.starts_with("{\"time\":\"") && time.ends_with("Z\"") && time.len() == 34,
            "{time}"
        );
        assert_eq!(
            rest,
            r#","client":"127.0.0.1:5000","method":"GET","target":"/p?\\x22x\\x22","version":"HTTP/1.1","status":200,"bytes":13,"duration_us":572,"host":"example.com","user_agent":"ua \\xE9\\x09\\x221\\x22","referer":"http://r/","backend":"127.0.0.1:9003","upstream_us":451,"retries":1}"#
        );
    }

    #[test]
    fn refused_and_tcp_lines() {
        let mut l = line(None, &[]);
        l.status = 400;
        l.bytes = None;
        l.refused = Some(Error::BadRequestLine);
        l.suppressed = 7;
        assert_eq!(
            text(&l),
            r#"127.0.0.1:5000 "-" 400 - 572us refused=bad_request_line suppressed=7"#
        );
        let j = json(&l);
        assert!(
            j.ends_with(r#","client":"127.0.0.1:5000","method":null,"target":null,"version":null,"status":400,"bytes":null,"duration_us":572,"host":null,"user_agent":null,"referer":null,"refused":"bad_request_line","suppressed":7}"#),
            "{j}"
        );
        let fields = [("received", LogValue::Count(78))];
        let mut l = line(None, &fields);
        l.peer = PeerPart::Addr(None);
        l.request = RequestPart::Tcp;
        assert_eq!(text(&l), r#"- "TCP" 200 13 572us received=78"#);
        assert!(json(&l).ends_with(
            r#","client":null,"protocol":"tcp","status":200,"bytes":13,"duration_us":572,"received":78}"#
        ));
    }

    #[test]
    fn the_budget_allows_so_many_lines_a_second_and_counts_the_rest() {
        let budget = LineBudget::new();
        for _ in 0..3 {
            assert_eq!(budget.take(100, 3), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(budget.take(100, 3), None);
        }
        // The next second's first line reports the five left out.
        assert_eq!(budget.take(101, 3), Some(5));
        assert_eq!(budget.take(101, 3), Some(0));
    }
}
