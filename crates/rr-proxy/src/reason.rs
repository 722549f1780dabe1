//! Why a backend failed: a health check or an exchange, in words an operator reads.

use std::fmt;
use std::io::ErrorKind;

/// Why a backend last failed a health check or an exchange with a client's
/// request: what the log says when it goes down, and
/// [`BackendStats::last_failure`](crate::BackendStats::last_failure).
///
/// Its [`Display`](fmt::Display) (and its JSON form, a string) is a short
/// phrase: `connection refused`, `status 500`, `timed out`, `malformed
/// response`, `closed before a response`, ...
///
/// ```
/// use rr_proxy::FailureReason;
/// assert_eq!(FailureReason::Status(404).to_string(), "status 404");
/// assert_eq!(
///     FailureReason::Connect(std::io::ErrorKind::ConnectionRefused).to_string(),
///     "connection refused"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// Connecting failed, for the reason the system gave (`connection refused`,
    /// `host unreachable`, ...).
    Connect(ErrorKind),
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The backend stopped taking the request before all of it was sent.
    Write,
    /// The backend took no request bytes for the idle timeout.
    WriteTimeout,
    /// No answer in time: a health check's timeout, or the response timeout.
    TimedOut,
    /// The backend closed the connection before a complete response head.
    Closed,
    /// The response head was malformed, or switched to a protocol not offered.
    Malformed,
    /// A health check was answered with a status outside the expected range.
    Status(u16),
    /// A response body broke off before its end.
    BodyCut,
    /// The TLS handshake with an `https://` backend failed.
    Tls(crate::TlsFailure),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Connect(
                k @ (ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable),
            ) => write!(f, "{k}"),
            FailureReason::Connect(k) => write!(f, "cannot connect: {k}"),
            FailureReason::ConnectTimeout => f.write_str("connect timed out"),
            FailureReason::Write => f.write_str("stopped taking the request"),
            FailureReason::WriteTimeout => f.write_str("took no request bytes in time"),
            FailureReason::TimedOut => f.write_str("timed out"),
            FailureReason::Closed => f.write_str("closed before a response"),
            FailureReason::Malformed => f.write_str("malformed response"),
            FailureReason::Status(s) => write!(f, "status {s}"),
            FailureReason::BodyCut => f.write_str("response body cut off"),
            FailureReason::Tls(why) => write!(f, "TLS: {why}"),
        }
    }
}

/// As its [`Display`](fmt::Display) text.
impl serde::Serialize for FailureReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_phrases() {
        for (r, text) in [
            (
                FailureReason::Connect(ErrorKind::ConnectionRefused),
                "connection refused",
            ),
            (
                FailureReason::Connect(ErrorKind::PermissionDenied),
                "cannot connect: permission denied",
            ),
            (FailureReason::Status(500), "status 500"),
            (FailureReason::TimedOut, "timed out"),
            (FailureReason::Malformed, "malformed response"),
            (FailureReason::Closed, "closed before a response"),
            (
                FailureReason::Tls(crate::TlsFailure::NotValidForName),
                "TLS: certificate not valid for the backend's name",
            ),
            (
                FailureReason::Tls(crate::TlsFailure::UnknownIssuer),
                "TLS: certificate not issued by a trusted CA",
            ),
        ] {
            assert_eq!(r.to_string(), text);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{text}\""));
        }
    }
}
