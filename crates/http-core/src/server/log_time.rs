//! The time stamp of log lines: RFC 3339 in UTC with milliseconds,
//! `2026-11-26T03:24:43.644Z`, its date and second formatted once per second per
//! thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The second last formatted and its `YYYY-MM-DDTHH:MM:SS` text.
    static STAMP: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends the current time as log lines write it: RFC 3339 in UTC with
/// milliseconds, `2026-11-26T03:24:43.644Z` (24 bytes). JSON access lines carry
/// it in their `time` field; a subscriber can use it so that its own lines match.
///
/// ```
/// let mut s = String::new();
/// http_core::server::push_log_time(&mut s);
/// assert_eq!(s.len(), 24);
/// assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T');
/// ```
pub fn push_log_time(out: &mut String) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    push_time_at(out, now.as_secs(), now.subsec_millis());
}

fn push_time_at(out: &mut String, secs: u64, ms: u32) {
    STAMP.with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        if s.0 != secs {
            s.1.clear();
            let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
            let t = secs % 86_400;
            push_digits(&mut s.1, y.clamp(0, 9999) as u32, 4);
            s.1.push('-');
            push_digits(&mut s.1, mo, 2);
            s.1.push('-');
            push_digits(&mut s.1, d, 2);
            s.1.push('T');
            push_digits(&mut s.1, (t / 3600) as u32, 2);
            s.1.push(':');
            push_digits(&mut s.1, (t / 60 % 60) as u32, 2);
            s.1.push(':');
            push_digits(&mut s.1, (t % 60) as u32, 2);
            s.0 = secs;
        }
        out.push_str(&s.1);
    });
    out.push('.');
    push_digits(out, ms.min(999), 3);
    out.push('Z');
}

/// `n` in exactly `width` decimal digits (`n` must fit).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(i) % 10) as u8));
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn stamps() {
        let at = |secs, ms| {
            let mut s = String::new();
            push_time_at(&mut s, secs, ms);
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_764_127_483, 644), "2025-11-26T03:24:43.644Z");
        // The cached second is replaced when the second changes.
        assert_eq!(at(1_764_127_484, 7), "2025-11-26T03:24:44.007Z");
        assert_eq!(at(951_782_400 + 86_399, 999), "2000-02-29T23:59:59.999Z");
    }
}
