//! The access log: one line per request, and the values services add to it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, RequestHead};

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
    /// From the request's head (or, for a refused request, the refusal) to the
    /// end of writing the response.
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
    /// A text, such as a backend address.
    Text(Arc<str>),
    /// A duration, such as the upstream time.
    Duration(Duration),
}

impl fmt::Display for LogValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogValue::Text(t) => f.write_str(t),
            LogValue::Duration(d) => write!(f, "{}us", d.as_micros()),
        }
    }
}

/// The access-log line: one per request, at info level, target `access`:
/// `PEER "METHOD TARGET VERSION" STATUS BYTES DURATIONus [key=value ...]`
/// (BYTES is `-` when the response could not be written).
///
/// The line is assembled by hand in a reused buffer: through `format_args!` its
/// nine fields cost more than parsing the request did.
pub(super) fn log_request(peer: &str, head: &RequestHead, record: &AccessRecord<'_>) {
    let AccessRecord {
        status,
        bytes,
        elapsed,
        fields: extra,
        ..
    } = *record;
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    LINE.with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else {
            return;
        };
        let mut num = itoa::Buffer::new();
        line.clear();
        line.push_str(peer);
        line.push_str(" \"");
        line.push_str(head.method_str());
        line.push(' ');
        line.push_str(head.target());
        line.push(' ');
        line.push_str(head.version().as_str());
        line.push_str("\" ");
        line.push_str(num.format(status));
        line.push(' ');
        match bytes {
            Some(b) => line.push_str(num.format(b)),
            None => line.push('-'),
        }
        line.push(' ');
        line.push_str(num.format(elapsed.as_micros() as u64));
        line.push_str("us");
        LogFields(extra).push_to(&mut line);
        // As a `str` field the line reaches the subscriber's `record_str` as it
        // is; `"{}"` would send it through `fmt::Arguments` and a formatter.
        tracing::info!(target: "access", message = line.as_str());
    });
}

/// Extra access-log fields, printed as ` key=value` pairs.
struct LogFields<'a>(&'a [(&'static str, LogValue)]);

impl LogFields<'_> {
    /// Appends ` key=value` pairs to `line`, values as [`LogValue`]'s `Display`
    /// writes them, without the formatting machinery (it cost as much as the
    /// rest of the log line).
    fn push_to(&self, line: &mut String) {
        let mut num = itoa::Buffer::new();
        for (k, v) in self.0 {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            match v {
                LogValue::Text(t) => line.push_str(t),
                LogValue::Duration(d) => {
                    line.push_str(num.format(d.as_micros()));
                    line.push_str("us");
                }
            }
        }
    }
}
