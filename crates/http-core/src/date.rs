//! The `Date` header value, formatted at most once per second per thread.

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

struct Cached {
    second: u64,
    text: [u8; DATE_LEN],
    /// A monotonic instant and the wall-clock time it corresponds to: the wall
    /// clock is derived from the caller's `Instant` instead of read again.
    base: Option<(Instant, SystemTime)>,
}

/// How long a calibration of the wall clock against the monotonic clock is used
/// before it is taken again (so a stepped system clock shows within a minute).
const RECALIBRATE: Duration = Duration::from_secs(60);

thread_local! {
    static CACHE: RefCell<Cached> = const {
        RefCell::new(Cached { second: u64::MAX, text: [b' '; DATE_LEN], base: None })
    };
}

/// Calls `f` with the current time as an IMF-fixdate (RFC 9110 §5.6.7).
///
/// Formatting happens once per second per thread; other calls copy the cached text.
///
/// ```
/// http_core::with_date(|d| assert!(d.ends_with(b" GMT")));
/// ```
pub fn with_date<R>(f: impl FnOnce(&[u8; DATE_LEN]) -> R) -> R {
    with_date_at(Instant::now(), f)
}

/// [`with_date`] for the moment `now`, which the caller has already read: the
/// wall-clock time is derived from it, so no clock is read at all on most calls.
pub fn with_date_at<R>(now: Instant, f: impl FnOnce(&[u8; DATE_LEN]) -> R) -> R {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let (base_instant, base_wall) = match c.base {
            Some((i, w)) if now >= i && now - i < RECALIBRATE => (i, w),
            _ => {
                let calibrated = (Instant::now(), SystemTime::now());
                c.base = Some(calibrated);
                calibrated
            }
        };
        let wall = base_wall + now.saturating_duration_since(base_instant);
        let second = wall.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if c.second != second {
            let text = httpdate::fmt_http_date(wall);
            if text.len() == DATE_LEN {
                c.text.copy_from_slice(text.as_bytes());
            }
            c.second = second;
        }
        f(&c.text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_date_matches_the_wall_clock() {
        let now = Instant::now();
        let wall = httpdate::fmt_http_date(SystemTime::now());
        let derived = with_date_at(now, |d| String::from_utf8_lossy(d).into_owned());
        // Same second, or the next one if the second turned in between.
        let next = httpdate::fmt_http_date(SystemTime::now());
        assert!(derived == wall || derived == next, "{derived} vs {wall}");
        let later = with_date_at(now + Duration::from_secs(3600), |d| {
            String::from_utf8_lossy(d).into_owned()
        });
        let base = httpdate::parse_http_date(&derived).unwrap() + Duration::from_secs(3600);
        let (expect, or_next) = (
            httpdate::fmt_http_date(base),
            httpdate::fmt_http_date(base + Duration::from_secs(1)),
        );
        assert!(later == expect || later == or_next, "{later} vs {expect}");
    }
}
