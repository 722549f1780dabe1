//! `Range: bytes=...` requests (RFC 9110 §14).

/// Most ranges honoured in one request; beyond it the whole file is sent, so a
/// request for thousands of tiny ranges costs no more than one full response.
pub(crate) const MAX_RANGES: usize = 16;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// Send the whole representation (no header, unparseable, or too many ranges).
    Full,
    /// Send these inclusive byte ranges, in order (at least one).
    Ranges(Vec<(u64, u64)>),
    /// No range overlaps the representation: 416.
    Unsatisfiable,
}

/// Parses `value` for a representation of `len` bytes.
pub(crate) fn parse(value: &[u8], len: u64) -> RangeRequest {
    let Ok(value) = std::str::from_utf8(value) else {
        return RangeRequest::Full;
    };
    let value = value.trim();
    let Some(spec) = value
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("bytes="))
        .map(|_| &value[6..])
    else {
        return RangeRequest::Full;
    };
    let mut ranges = Vec::new();
    let mut count = 0;
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_RANGES {
            return RangeRequest::Full;
        }
        let Some((first, last)) = part.split_once('-') else {
            return RangeRequest::Full;
        };
        let (first, last) = (first.trim(), last.trim());
        let range = if first.is_empty() {
            // Suffix: the last N bytes.
            let Some(n) = digits(last) else {
                return RangeRequest::Full;
            };
            if n == 0 || len == 0 {
                None
            } else {
                Some((len.saturating_sub(n), len - 1))
            }
        } else {
            let Some(start) = digits(first) else {
                return RangeRequest::Full;
            };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match digits(last) {
                    Some(e) if e >= start => e,
                    _ => return RangeRequest::Full,
                }
            };
            (start < len).then(|| (start, end.min(len - 1)))
        };
        if let Some(r) = range {
            ranges.push(r);
        }
    }
    if count == 0 {
        return RangeRequest::Full;
    }
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Ranges(coalesce(ranges))
}

/// Merges overlapping or adjacent ranges (RFC 9110 §14.1.1 lets a server do so),
/// so overlapping requests cannot multiply the bytes sent.
fn coalesce(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    if ranges.len() < 2 {
        return ranges;
    }
    let overlapping = {
        let mut sorted = ranges.clone();
        sorted.sort_unstable();
        sorted.windows(2).any(|w| w[1].0 <= w[0].1.saturating_add(1))
    };
    if !overlapping {
        return ranges;
    }
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_table() {
        use RangeRequest::*;
        let len = 100;
        let cases: &[(&str, RangeRequest)] = &[
            ("bytes=0-9", Ranges(vec![(0, 9)])),
            ("bytes=90-", Ranges(vec![(90, 99)])),
            ("bytes=-10", Ranges(vec![(90, 99)])),
            ("bytes=-1000", Ranges(vec![(0, 99)])),
            ("bytes=50-1000", Ranges(vec![(50, 99)])),
            ("Bytes = 0-0", Full),
            ("BYTES=0-0", Ranges(vec![(0, 0)])),
            ("bytes=0-9,20-29", Ranges(vec![(0, 9), (20, 29)])),
            ("bytes=20-29, 0-9", Ranges(vec![(20, 29), (0, 9)])),
            ("bytes=0-9,5-19", Ranges(vec![(0, 19)])),
            ("bytes=0-9,10-19", Ranges(vec![(0, 19)])),
            ("bytes=100-", Unsatisfiable),
            ("bytes=100-200", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=100-,0-1", Ranges(vec![(0, 1)])),
            ("bytes=9-0", Full),
            ("bytes=a-b", Full),
            ("bytes=+1-2", Full),
            ("bytes=1", Full),
            ("items=0-1", Full),
            ("bytes=", Full),
            ("bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,32-32", Full),
        ];
        for (v, want) in cases {
            assert_eq!(&parse(v.as_bytes(), len), want, "{v}");
        }
        assert_eq!(parse(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse(b"bytes=-5", 0), Unsatisfiable);
    }
}
