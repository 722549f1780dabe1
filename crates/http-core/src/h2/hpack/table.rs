//! The static table (RFC 7541 Appendix A) and the dynamic table (§2.3.2, §4).
//!
//! The dynamic table keeps its entries' bytes in one ring of exactly the
//! table's current maximum size (allocated at the first insertion, kept when
//! the size goes down, relaid once when it goes up): an entry is at most the
//! table size less 32, and the entries' bytes add up to less than the table
//! size, so a new entry always fits behind the live ones. Entries are
//! `(start, name length, value length)` in a `VecDeque`, at most one per 32
//! bytes of table size. Nothing a peer sends makes either grow past that.

use std::collections::VecDeque;

/// The static table of RFC 7541 Appendix A: index `i` is `STATIC[i - 1]`.
pub(super) const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),                   // 1
    (b":method", b"GET"),                   // 2
    (b":method", b"POST"),                  // 3
    (b":path", b"/"),                       // 4
    (b":path", b"/index.html"),             // 5
    (b":scheme", b"http"),                  // 6
    (b":scheme", b"https"),                 // 7
    (b":status", b"200"),                   // 8
    (b":status", b"204"),                   // 9
    (b":status", b"206"),                   // 10
    (b":status", b"304"),                   // 11
    (b":status", b"400"),                   // 12
    (b":status", b"404"),                   // 13
    (b":status", b"500"),                   // 14
    (b"accept-charset", b""),               // 15
    (b"accept-encoding", b"gzip, deflate"), // 16
    (b"accept-language", b""),              // 17
    (b"accept-ranges", b""),                // 18
    (b"accept", b""),                       // 19
    (b"access-control-allow-origin", b""),  // 20
    (b"age", b""),                          // 21
    (b"allow", b""),                        // 22
    (b"authorization", b""),                // 23
    (b"cache-control", b""),                // 24
    (b"content-disposition", b""),          // 25
    (b"content-encoding", b""),             // 26
    (b"content-language", b""),             // 27
    (b"content-length", b""),               // 28
    (b"content-location", b""),             // 29
    (b"content-range", b""),                // 30
    (b"content-type", b""),                 // 31
    (b"cookie", b""),                       // 32
    (b"date", b""),                         // 33
    (b"etag", b""),                         // 34
    (b"expect", b""),                       // 35
    (b"expires", b""),                      // 36
    (b"from", b""),                         // 37
    (b"host", b""),                         // 38
    (b"if-match", b""),                     // 39
    (b"if-modified-since", b""),            // 40
    (b"if-none-match", b""),                // 41
    (b"if-range", b""),                     // 42
    (b"if-unmodified-since", b""),          // 43
    (b"last-modified", b""),                // 44
    (b"link", b""),                         // 45
    (b"location", b""),                     // 46
    (b"max-forwards", b""),                 // 47
    (b"proxy-authenticate", b""),           // 48
    (b"proxy-authorization", b""),          // 49
    (b"range", b""),                        // 50
    (b"referer", b""),                      // 51
    (b"refresh", b""),                      // 52
    (b"retry-after", b""),                  // 53
    (b"server", b""),                       // 54
    (b"set-cookie", b""),                   // 55
    (b"strict-transport-security", b""),    // 56
    (b"transfer-encoding", b""),            // 57
    (b"user-agent", b""),                   // 58
    (b"vary", b""),                         // 59
    (b"via", b""),                          // 60
    (b"www-authenticate", b""),             // 61
];

/// The static entries named `name` (lowercase): `(first index, count)`.
#[inline]
pub(super) fn static_name(name: &[u8]) -> Option<(u8, u8)> {
    let r = match name.len() {
        3 => match name {
            b"age" => (21, 1),
            b"via" => (60, 1),
            _ => return None,
        },
        4 => match name {
            b"date" => (33, 1),
            b"etag" => (34, 1),
            b"from" => (37, 1),
            b"host" => (38, 1),
            b"link" => (45, 1),
            b"vary" => (59, 1),
            _ => return None,
        },
        5 => match name {
            b":path" => (4, 2),
            b"allow" => (22, 1),
            b"range" => (50, 1),
            _ => return None,
        },
        6 => match name {
            b"accept" => (19, 1),
            b"cookie" => (32, 1),
            b"expect" => (35, 1),
            b"server" => (54, 1),
            _ => return None,
        },
        7 => match name {
            b":method" => (2, 2),
            b":scheme" => (6, 2),
            b":status" => (8, 7),
            b"expires" => (36, 1),
            b"referer" => (51, 1),
            b"refresh" => (52, 1),
            _ => return None,
        },
        8 => match name {
            b"if-match" => (39, 1),
            b"if-range" => (42, 1),
            b"location" => (46, 1),
            _ => return None,
        },
        10 => match name {
            b":authority" => (1, 1),
            b"set-cookie" => (55, 1),
            b"user-agent" => (58, 1),
            _ => return None,
        },
        11 => match name {
            b"retry-after" => (53, 1),
            _ => return None,
        },
        12 => match name {
            b"content-type" => (31, 1),
            b"max-forwards" => (47, 1),
            _ => return None,
        },
        13 => match name {
            b"accept-ranges" => (18, 1),
            b"authorization" => (23, 1),
            b"cache-control" => (24, 1),
            b"content-range" => (30, 1),
            b"if-none-match" => (41, 1),
            b"last-modified" => (44, 1),
            _ => return None,
        },
        14 => match name {
            b"accept-charset" => (15, 1),
            b"content-length" => (28, 1),
            _ => return None,
        },
        15 => match name {
            b"accept-encoding" => (16, 1),
            b"accept-language" => (17, 1),
            _ => return None,
        },
        16 => match name {
            b"content-encoding" => (26, 1),
            b"content-language" => (27, 1),
            b"content-location" => (29, 1),
            b"www-authenticate" => (61, 1),
            _ => return None,
        },
        17 => match name {
            b"if-modified-since" => (40, 1),
            b"transfer-encoding" => (57, 1),
            _ => return None,
        },
        18 => match name {
            b"proxy-authenticate" => (48, 1),
            _ => return None,
        },
        19 => match name {
            b"content-disposition" => (25, 1),
            b"if-unmodified-since" => (43, 1),
            b"proxy-authorization" => (49, 1),
            _ => return None,
        },
        25 => match name {
            b"strict-transport-security" => (56, 1),
            _ => return None,
        },
        27 => match name {
            b"access-control-allow-origin" => (20, 1),
            _ => return None,
        },
        _ => return None,
    };
    Some(r)
}

/// The §4.1 size of an entry: name and value lengths plus 32.
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// One entry's bytes in the ring: a region that may wrap around its end, so
/// two pieces (the second empty unless it wraps).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pieces<'a>(pub(super) &'a [u8], pub(super) &'a [u8]);

impl Pieces<'_> {
    pub(super) fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }

    /// Whether the region holds exactly `s`.
    #[inline]
    pub(super) fn eq(&self, s: &[u8]) -> bool {
        self.len() == s.len() && s.starts_with(self.0) && s[self.0.len()..] == *self.1
    }

    /// Appends the region's bytes to `out`.
    #[inline]
    pub(super) fn copy_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0);
        if !self.1.is_empty() {
            out.extend_from_slice(self.1);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    start: u32,
    name_len: u32,
    value_len: u32,
}

/// The least ring allocated.
const MIN_RING: usize = 512;

/// The dynamic table of one direction of a connection.
#[derive(Debug)]
pub(super) struct DynTable {
    /// The ring of entry bytes: empty, or longer than the live entries.
    buf: Vec<u8>,
    /// Oldest entry first.
    slots: VecDeque<Slot>,
    /// Where the next entry's bytes go in `buf`.
    head: usize,
    /// §4.1 size of the entries.
    size: usize,
    /// The current maximum size (§4.2).
    limit: usize,
    /// Entries inserted since the table began: entry number `n` (counted
    /// from 1) is at position `inserted - n` while `n > inserted - len`.
    inserted: u64,
}

impl DynTable {
    pub(super) fn new(limit: usize) -> Self {
        DynTable {
            buf: Vec::new(),
            slots: VecDeque::new(),
            head: 0,
            size: 0,
            limit: limit.min(u32::MAX as usize),
            inserted: 0,
        }
    }

    /// The number of the newest entry (0 before the first): what
    /// [`position`](Self::position) takes.
    pub(super) fn newest(&self) -> u64 {
        self.inserted
    }

    /// Where entry number `n` is now (0 the newest), if it is still there.
    #[inline]
    pub(super) fn position(&self, n: u64) -> Option<usize> {
        let back = self.inserted.checked_sub(n)?;
        if n == 0 || back >= self.slots.len() as u64 {
            return None;
        }
        Some(back as usize)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The §4.1 size of the table.
    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// A new maximum size: evicts the oldest entries until the table fits (§4.3).
    pub(super) fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(u32::MAX as usize);
        while self.size > self.limit {
            self.evict();
        }
        if self.slots.is_empty() {
            self.head = 0;
            if self.buf.len() > self.limit {
                self.buf = Vec::new();
            }
        }
    }

    fn evict(&mut self) {
        if let Some(s) = self.slots.pop_front() {
            self.size -= ENTRY_OVERHEAD + s.name_len as usize + s.value_len as usize;
        }
    }

    /// Adds an entry (§4.4): evicts the oldest ones until it fits; one larger
    /// than the table empties it and is not added.
    pub(super) fn insert(&mut self, name: &[u8], value: &[u8]) {
        let n = name.len() + value.len();
        let entry = ENTRY_OVERHEAD.saturating_add(n);
        if entry > self.limit {
            self.slots.clear();
            self.size = 0;
            self.head = 0;
            return;
        }
        while self.size + entry > self.limit {
            self.evict();
        }
        if self.slots.is_empty() {
            self.head = 0;
        }
        if self.buf.len() < (self.size + entry).min(self.limit) {
            // The ring grows with what it holds, up to the limit: a
            // connection that sent a few fields holds a few hundred bytes
            // of table, not the whole 4 KiB.
            let want = (self.size + entry).saturating_mul(2).max(MIN_RING);
            self.relayout(want.min(self.limit));
        }
        // The live bytes plus this entry are under `limit` <= the ring's length.
        let start = self.head;
        self.write(name);
        self.write(value);
        self.size += entry;
        self.inserted += 1;
        self.slots.push_back(Slot {
            start: start as u32,
            name_len: name.len() as u32,
            value_len: value.len() as u32,
        });
    }

    fn write(&mut self, data: &[u8]) {
        let cap = self.buf.len();
        let first = data.len().min(cap - self.head);
        self.buf[self.head..self.head + first].copy_from_slice(&data[..first]);
        let rest = data.len() - first;
        self.buf[..rest].copy_from_slice(&data[first..]);
        // `cap` >= the limit >= 32: an entry was found to fit.
        self.head = (self.head + data.len()) % cap;
    }

    /// A new ring of `len` bytes with the entries at its start, in order.
    fn relayout(&mut self, len: usize) {
        let mut buf = vec![0u8; len];
        let mut pos = 0;
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            let n = (s.name_len + s.value_len) as usize;
            let p = self.region(s.start as usize, n);
            buf[pos..pos + p.0.len()].copy_from_slice(p.0);
            buf[pos + p.0.len()..pos + n].copy_from_slice(p.1);
            self.slots[i].start = pos as u32;
            pos += n;
        }
        self.buf = buf;
        self.head = if pos == len { 0 } else { pos };
    }

    #[inline]
    fn region(&self, start: usize, len: usize) -> Pieces<'_> {
        let cap = self.buf.len();
        if start + len <= cap {
            Pieces(&self.buf[start..start + len], &[])
        } else {
            Pieces(&self.buf[start..], &self.buf[..start + len - cap])
        }
    }

    /// Entry `i` (0 is the newest, HPACK index 62): its name and value.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<(Pieces<'_>, Pieces<'_>)> {
        let k = self.slots.len().checked_sub(i + 1)?;
        let s = self.slots[k];
        let cap = self.buf.len();
        let name = self.region(s.start as usize, s.name_len as usize);
        let mut vstart = s.start as usize + s.name_len as usize;
        if vstart >= cap {
            vstart -= cap;
        }
        Some((name, self.region(vstart, s.value_len as usize)))
    }

    /// The newest entry holding `name` and `value` (`.0`), else the newest
    /// holding `name` (`.1`): positions for [`get`](Self::get).
    #[inline]
    pub(super) fn find(&self, name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
        let mut by_name = None;
        for (i, s) in self.slots.iter().rev().enumerate() {
            if s.name_len as usize != name.len() {
                continue;
            }
            let Some((n, v)) = self.get(i) else { break };
            if !n.eq(name) {
                continue;
            }
            if s.value_len as usize == value.len() && v.eq(value) {
                return (Some(i), by_name.or(Some(i)));
            }
            if by_name.is_none() {
                by_name = Some(i);
            }
        }
        (None, by_name)
    }

    /// The entries, newest first (tests).
    #[cfg(test)]
    pub(super) fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..self.len())
            .filter_map(|i| self.get(i))
            .map(|(n, v)| {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                n.copy_to(&mut a);
                v.copy_to(&mut b);
                (a, b)
            })
            .collect()
    }

    /// Bytes held by the ring (tests).
    #[cfg(test)]
    pub(super) fn ring_len(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table against a plain model (a list of entries, newest first),
    /// through wrapping, eviction, growing and shrinking.
    #[test]
    fn hpack_dyn_table_ring_matches_a_model() {
        let mut t = DynTable::new(100);
        let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut limit = 100;
        let check = |t: &DynTable, model: &Vec<(Vec<u8>, Vec<u8>)>, limit: usize| {
            assert_eq!(t.entries(), *model);
            let size: usize = model.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
            assert_eq!(t.size(), size);
            assert!(size <= limit);
            assert!(t.ring_len() <= 300);
            for (i, (n, v)) in model.iter().enumerate() {
                assert_eq!(t.find(n, v).0.map(|j| &model[j]), Some(&model[i]));
            }
        };
        let limits = [100, 100, 300, 300, 50, 0, 120, 300, 64];
        for round in 0..90u32 {
            if round % 10 == 9 {
                limit = limits[(round / 10) as usize];
                t.set_limit(limit);
                let mut size = 0;
                model.retain(|(n, v)| {
                    size += n.len() + v.len() + 32;
                    size <= limit
                });
            }
            let name = format!("n{}", round % 7).into_bytes();
            let value = vec![b'a' + (round % 26) as u8; (round as usize * 7) % 23];
            t.insert(&name, &value);
            let entry = name.len() + value.len() + 32;
            if entry > limit {
                model.clear();
            } else {
                model.insert(0, (name, value));
                let mut size = 0;
                model.retain(|(n, v)| {
                    size += n.len() + v.len() + 32;
                    size <= limit
                });
            }
            check(&t, &model, limit);
        }
        // Down to 0: empty, and the ring freed.
        t.set_limit(0);
        assert_eq!(t.len(), 0);
        assert_eq!(t.ring_len(), 0);
        assert_eq!(t.get(0).map(|_| ()), None);
    }

    #[test]
    fn hpack_static_name_lookup() {
        assert_eq!(static_name(b":status"), Some((8, 7)));
        assert_eq!(static_name(b"www-authenticate"), Some((61, 1)));
        assert_eq!(static_name(b":authority"), Some((1, 1)));
        assert_eq!(static_name(b"Content-Type"), None);
        assert_eq!(static_name(b"x-none"), None);
        for (i, (n, _)) in STATIC.iter().enumerate() {
            let (first, count) = static_name(n).unwrap();
            assert!((first as usize..(first + count) as usize).contains(&(i + 1)));
            assert!(STATIC[first as usize - 1..(first + count) as usize - 1]
                .iter()
                .all(|(m, _)| m == n));
        }
    }
}
