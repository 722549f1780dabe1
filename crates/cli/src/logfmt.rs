//! The two formats of the binaries' log lines (`--log-format`):
//!
//! - `text`: `2026-11-26T03:24:43.644Z  INFO message key=value`. The formatter
//!   of tracing-subscriber escapes messages one character at a time and formats
//!   its timestamp from scratch for every event; with one access line per
//!   request that was a tenth of the server's user-space time. This one formats
//!   the date part once per second and checks text for control characters with
//!   a byte scan, escaping only what needs it (so log injection stays impossible).
//! - `json`: one JSON object per line. An access line is the object http-core
//!   wrote (see `http_core::server::AccessLogFormat`), with the spans it ran in
//!   added as `"span"`; any other event is
//!   `{"time":"…","level":"INFO","target":"…","span":"…","message":"…","key":value,…}`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Which format the binaries log in: `--log-format text|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `TIME LEVEL message`, and the access line as http-core writes it.
    #[default]
    Text,
    /// One JSON object per line, access lines and all other events alike.
    Json,
}

/// The `text` event format.
pub struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        write_timestamp(&mut w)?;
        let level = match *event.metadata().level() {
            Level::ERROR => " ERROR ",
            Level::WARN => "  WARN ",
            Level::INFO => "  INFO ",
            Level::DEBUG => " DEBUG ",
            Level::TRACE => " TRACE ",
        };
        w.write_str(level)?;
        // The spans the event happened in, outermost first: `backend{id=backend-9002}: `.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                w.write_str(span.name())?;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(w, "{{{fields}}}")?;
                    }
                }
                w.write_str(": ")?;
            }
        }
        let mut visitor = Fields {
            w: &mut w,
            result: Ok(()),
            first: true,
        };
        event.record(&mut visitor);
        visitor.result?;
        w.write_char('\n')
    }
}

struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
    first: bool,
}

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) -> fmt::Result {
        if field.name() == "message" {
            if !self.first {
                self.w.write_char(' ')?;
            }
        } else {
            self.w.write_char(' ')?;
            self.w.write_str(field.name())?;
            self.w.write_char('=')?;
        }
        self.first = false;
        Ok(())
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| Escaped(self.w).write_str(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self
                .name(field)
                .and_then(|()| write!(Escaped(self.w), "{value:?}"));
        }
    }
}

/// Passes text through, escaping control characters (a log line stays one line
/// and cannot carry terminal escape sequences).
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // A fold without early exit: it vectorises, where `any` went byte by byte.
        if !s.bytes().fold(false, |bad, b| bad | (b < 0x20) | (b == 0x7f)) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

thread_local! {
    /// The time stamp being written.
    static STAMP: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The time as http-core's JSON access lines write it: RFC 3339, UTC,
/// milliseconds (`2026-11-26T03:24:43.644Z`).
fn write_timestamp(w: &mut impl fmt::Write) -> fmt::Result {
    STAMP.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            s.clear();
            http_core::server::push_log_time(&mut s);
            w.write_str(&s)
        }
        Err(_) => {
            let mut s = String::new();
            http_core::server::push_log_time(&mut s);
            w.write_str(&s)
        }
    })
}

/// The `json` event format.
pub struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        // The spans the event happened in, outermost first: `proxy`,
        // `backend{id=backend-9002}`, joined by `:`.
        let mut span = String::new();
        if let Some(scope) = ctx.event_scope() {
            for s in scope.from_root() {
                if !span.is_empty() {
                    span.push(':');
                }
                span.push_str(s.name());
                let ext = s.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        let _ = write!(span, "{{{fields}}}");
                    }
                }
            }
        }
        if meta.target() == "access" {
            // http-core wrote the whole object: it is passed on as it is.
            let mut access = AccessObject {
                w: &mut w,
                span: &span,
                result: Ok(false),
            };
            event.record(&mut access);
            if access.result? {
                return w.write_char('\n');
            }
        }
        w.write_str("{\"time\":\"")?;
        write_timestamp(&mut w)?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_str("\",\"target\":")?;
        write_json_str(&mut w, meta.target())?;
        if !span.is_empty() {
            w.write_str(",\"span\":")?;
            write_json_str(&mut w, &span)?;
        }
        let mut visitor = JsonFields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut visitor);
        visitor.result?;
        w.write_str("}\n")
    }
}

/// Passes an access event's message on when it is a JSON object, adding the
/// spans; `result` says whether it did.
struct AccessObject<'a, 'w> {
    w: &'a mut Writer<'w>,
    span: &'a str,
    result: Result<bool, fmt::Error>,
}

impl Visit for AccessObject<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let Ok(false) = self.result else { return };
        if field.name() != "message" || !value.starts_with('{') || !value.ends_with('}') {
            return;
        }
        self.result = (|| {
            if self.span.is_empty() {
                self.w.write_str(value)?;
            } else {
                self.w.write_str(&value[..value.len() - 1])?;
                self.w.write_str(",\"span\":")?;
                write_json_str(self.w, self.span)?;
                self.w.write_char('}')?;
            }
            Ok(true)
        })();
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

/// An event's fields as `,"name":value` members.
struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.w.write_char(',')?;
                write_json_str(self.w, field.name())?;
                self.w.write_char(':')?;
                value(self.w)
            })();
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| write_json_str(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value}"));
        } else {
            self.member(field, |w| write_json_str(w, &value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(JsonEscaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string.
fn write_json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes text for the inside of a JSON string: `"`, `\`, control characters
/// (DEL too, so that no line carries terminal escapes).
struct JsonEscaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let special = |b: u8| (b < 0x20) | (b == 0x7f) | (b == b'"') | (b == b'\\');
        if !s.bytes().fold(false, |bad, b| bad | special(b)) {
            return self.0.write_str(s);
        }
        let mut rest = s;
        while let Some(i) = rest.bytes().position(special) {
            self.0.write_str(&rest[..i])?;
            match rest.as_bytes()[i] {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                b => write!(self.0, "\\u{b:04x}")?,
            }
            rest = &rest[i + 1..];
        }
        self.0.write_str(rest)
    }
}

/// One JSON line for what the binaries print themselves (`listening on`,
/// `error:`), in the shape of the other events.
pub(crate) fn json_line(level: &str, message: &str, extra: &[(&str, &str)]) -> String {
    let mut line = String::new();
    let _ = (|| -> fmt::Result {
        line.push_str("{\"time\":\"");
        write_timestamp(&mut line)?;
        line.push_str("\",\"level\":\"");
        line.push_str(level);
        line.push_str("\",\"target\":\"cli\",\"message\":");
        write_json_str(&mut line, message)?;
        for (k, v) in extra {
            line.push(',');
            write_json_str(&mut line, k)?;
            line.push(':');
            write_json_str(&mut line, v)?;
        }
        line.push('}');
        Ok(())
    })();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\nd\u{1b}[31m\u{7f}é").unwrap();
        assert_eq!(s, r#""a\"b\\c\nd\u001b[31m\u007fé""#);
        let line = json_line(
            "INFO",
            "x listening on http://127.0.0.1:1",
            &[("listening", "http://127.0.0.1:1")],
        );
        assert!(line.starts_with("{\"time\":\"") && line.ends_with(r#""level":"INFO","target":"cli","message":"x listening on http://127.0.0.1:1","listening":"http://127.0.0.1:1"}"#), "{line}");
    }
}
