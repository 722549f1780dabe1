//! The `Date` header value, formatted at most once per second per thread.

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

struct Cached {
    text: [u8; DATE_LEN],
    /// The monotonic interval `[from, until)` in which `text` is the date: a call
    /// inside it compares two instants and does no arithmetic on time at all.
    valid: Option<(Instant, Instant)>,
    /// A monotonic instant and the wall-clock time it corresponds to: the wall
    /// clock is derived from the caller's `Instant` instead of read again.
    base: Option<(Instant, SystemTime)>,
}

/// How long a calibration of the wall clock against the monotonic clock is used
/// before it is taken again (so a stepped system clock shows within a minute).
const RECALIBRATE: Duration = Duration::from_secs(60);

thread_local! {
    static CACHE: RefCell<Cached> = const {
        RefCell::new(Cached { text: [b' '; DATE_LEN], valid: None, base: None })
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
        match c.valid {
            Some((from, until)) if now >= from && now < until => {}
            _ => c.refresh(now),
        }
        f(&c.text)
    })
}

impl Cached {
    /// Formats the date at `now` and the interval of instants it holds for.
    fn refresh(&mut self, now: Instant) {
        let near = |i: Instant| {
            now.saturating_duration_since(i) < RECALIBRATE && i.saturating_duration_since(now) < RECALIBRATE
        };
        let (base_instant, base_wall) = match self.base {
            Some((i, w)) if near(i) => (i, w),
            _ => {
                let calibrated = (Instant::now(), SystemTime::now());
                self.base = Some(calibrated);
                calibrated
            }
        };
        // `now` may precede the calibration (a caller's instant read earlier).
        let wall = match now.checked_duration_since(base_instant) {
            Some(ahead) => base_wall + ahead,
            None => base_wall
                .checked_sub(base_instant.duration_since(now))
                .unwrap_or(base_wall),
        };
        let text = httpdate::fmt_http_date(wall);
        if text.len() == DATE_LEN {
            self.text.copy_from_slice(text.as_bytes());
        }
        // The text holds from the start of this wall-clock second to its end, or
        // to the next calibration if that comes first.
        let into_second = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let from = now
            .checked_sub(Duration::from_nanos(u64::from(into_second)))
            .unwrap_or(now);
        let until = (from + Duration::from_secs(1)).min(base_instant + RECALIBRATE);
        self.valid = Some((from, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: Instant) -> SystemTime {
        with_date_at(t, |d| {
            httpdate::parse_http_date(std::str::from_utf8(d).unwrap()).unwrap()
        })
    }

    /// The cached text holds for one wall-clock second: instants on either side
    /// of a window, earlier ones included, get their own second.
    #[test]
    fn each_instant_gets_its_own_second() {
        let now = Instant::now();
        let t0 = at(now);
        for (offset, back) in [
            (1500, false),
            (999, false),
            (2000, true),
            (250, false),
            (3000, false),
        ] {
            let ms = Duration::from_millis(offset);
            let (t, expect) = if back {
                (now.checked_sub(ms).unwrap(), t0 - ms)
            } else {
                (now + ms, t0 + ms)
            };
            let got = at(t);
            // The formatted second is the expected one, give or take the second
            // boundary `t0` was truncated at.
            let diff = got
                .duration_since(expect)
                .or_else(|e| Ok::<_, ()>(e.duration()))
                .unwrap();
            assert!(
                diff <= Duration::from_secs(1),
                "{offset} ms: {got:?} vs {expect:?}"
            );
        }
        assert_eq!(at(now), t0);
        assert_eq!(
            at(now + Duration::from_secs(10)),
            at(now + Duration::from_secs(10))
        );
        assert_eq!(
            at(now + Duration::from_secs(10)).duration_since(t0).unwrap(),
            Duration::from_secs(10)
        );
    }

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
