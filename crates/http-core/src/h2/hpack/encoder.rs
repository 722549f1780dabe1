//! The encoding side: response header blocks (RFC 7541 §6), with the policy
//! that makes a repeated answer cheap (see the module documentation).

use bytes::{BufMut, BytesMut};

use super::huffman;
use super::table::{static_name, DynTable, ENTRY_OVERHEAD, STATIC};

/// The largest dynamic table we use, whatever the peer allows (the RFC's
/// initial value).
const MAX_TABLE: usize = 4096;

/// Names longer than this are lowercased into a reused `Vec`, shorter ones on
/// the stack.
const STACK_NAME: usize = 64;

/// The static indices of `authorization`, `cookie`, `proxy-authorization` and
/// `set-cookie`: never indexed (§7.1.3).
fn sensitive(static_first: u8) -> bool {
    matches!(static_first, 23 | 32 | 49 | 55)
}

/// What the encoder knows of a field it sent before, for sending it again
/// without looking it up: its static index, or the number of its dynamic
/// table entry (valid while the entry is in the table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum FieldMemo {
    /// Not known, or sent as a literal that did not enter the table.
    #[default]
    Unknown,
    Static(u8),
    Dynamic(u64),
}

/// The encoder of one connection: our side of the peer's dynamic table.
#[derive(Debug)]
pub(crate) struct Encoder {
    table: DynTable,
    /// The size the table is to have at the next block.
    target: usize,
    /// The smallest size set since the last block (§4.2).
    lowest: usize,
    /// Lowercased long names.
    long_name: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes `v` with an `n`-bit prefix after the flag bits `flags` (§5.1).
#[inline]
fn integer(out: &mut BytesMut, flags: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.put_u8(flags | v as u8);
        return;
    }
    out.put_u8(flags | max as u8);
    let mut v = v - max;
    while v >= 0x80 {
        out.put_u8((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Writes a raw (H = 0) string literal (§5.2).
#[inline]
fn string(out: &mut BytesMut, s: &[u8]) {
    integer(out, 0, 7, s.len());
    out.put_slice(s);
}

/// Writes a string literal Huffman coded when that is shorter (§5.2): only
/// for the literals that enter the table, which a connection sends once.
#[inline]
fn string_once(out: &mut BytesMut, s: &[u8]) {
    let len = huffman::encoded_len(s);
    if len < s.len() {
        integer(out, 0x80, 7, len);
        huffman::encode(s, out);
    } else {
        string(out, s);
    }
}

impl Encoder {
    /// Table size 4096 (the RFC's initial value for the peer's decoder).
    pub(crate) fn new() -> Self {
        Encoder {
            table: DynTable::new(MAX_TABLE),
            target: MAX_TABLE,
            lowest: MAX_TABLE,
            long_name: Vec::new(),
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: we use min(n, 4096); a
    /// Dynamic Table Size Update is emitted at the start of the next block
    /// when our size changes (RFC 7541 §4.2: if it went down and then up
    /// before a block, the minimum then the final).
    pub(crate) fn set_max_table_size(&mut self, n: u32) {
        let n = (n as usize).min(MAX_TABLE);
        self.target = n;
        self.lowest = self.lowest.min(n);
    }

    /// Starts a header block in `out` (appending; emits pending size updates).
    pub(crate) fn begin(&mut self, out: &mut BytesMut) {
        if self.lowest < self.table.limit() {
            integer(out, 0x20, 5, self.lowest);
            self.table.set_limit(self.lowest);
        }
        if self.target != self.table.limit() {
            integer(out, 0x20, 5, self.target);
            self.table.set_limit(self.target);
        }
        self.lowest = self.target;
    }

    /// `:status` (any 100..=999; the static entries for 200, 204, 206, 304,
    /// 400, 404, 500 are indexed, others are literal with name index 8 and
    /// incremental indexing, then indexed from the dynamic table).
    pub(crate) fn status(&mut self, status: u16, out: &mut BytesMut) {
        let idx = match status {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => {
                let mut digits = itoa::Buffer::new();
                let value = digits.format(status).as_bytes();
                let _ = self.dynamic_or_literal(b":status", Some(8), value, out);
                return;
            }
        };
        out.put_u8(0x80 | idx);
    }

    /// One field. `name` is given as the service wrote it (any ASCII case): it
    /// is sent lowercased (RFC 9113 §8.2.1). Caller guarantees it is a valid
    /// token and the value has no CR/LF/NUL.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8], out: &mut BytesMut) {
        self.field_learned(name, value, out);
    }

    /// [`field`](Self::field) for a field sent before with `memo` learned
    /// then: while that still holds (the entry was not evicted), one indexed
    /// byte without a lookup; else as `field`, and `memo` learns anew.
    /// `memo` must only ever be used with this encoder and the same
    /// name and value.
    #[inline]
    pub(crate) fn field_memo(&mut self, memo: &mut FieldMemo, name: &[u8], value: &[u8], out: &mut BytesMut) {
        match *memo {
            FieldMemo::Static(i) => return out.put_u8(0x80 | i),
            FieldMemo::Dynamic(n) => {
                if let Some(i) = self.table.position(n) {
                    return integer(out, 0x80, 7, 62 + i);
                }
            }
            FieldMemo::Unknown => {}
        }
        *memo = self.field_learned(name, value, out);
    }

    fn field_learned(&mut self, name: &[u8], value: &[u8], out: &mut BytesMut) -> FieldMemo {
        if name.len() <= STACK_NAME {
            let mut buf = [0u8; STACK_NAME];
            let lower = &mut buf[..name.len()];
            for (d, s) in lower.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            self.lower_field(lower, value, out)
        } else {
            let mut lower = std::mem::take(&mut self.long_name);
            lower.clear();
            lower.extend(name.iter().map(u8::to_ascii_lowercase));
            let memo = self.lower_field(&lower, value, out);
            self.long_name = lower;
            memo
        }
    }

    /// [`field`](Self::field) with the name lowercased.
    #[inline]
    fn lower_field(&mut self, name: &[u8], value: &[u8], out: &mut BytesMut) -> FieldMemo {
        let static_idx = match static_name(name) {
            Some((first, count)) => {
                for i in first..first + count {
                    if STATIC[i as usize - 1].1 == value {
                        out.put_u8(0x80 | i);
                        return FieldMemo::Static(i);
                    }
                }
                if sensitive(first) {
                    // §6.2.3 Literal Header Field Never Indexed, indexed name.
                    integer(out, 0x10, 4, first as usize);
                    string(out, value);
                    return FieldMemo::Unknown;
                }
                Some(first)
            }
            None => None,
        };
        self.dynamic_or_literal(name, static_idx, value, out)
    }

    /// A field not in the static table: indexed from the dynamic table, else a
    /// literal (with incremental indexing when the entry is at most half the
    /// table).
    #[inline]
    fn dynamic_or_literal(
        &mut self,
        name: &[u8],
        static_idx: Option<u8>,
        value: &[u8],
        out: &mut BytesMut,
    ) -> FieldMemo {
        let (full, by_name) = self.table.find(name, value);
        if let Some(i) = full {
            integer(out, 0x80, 7, 62 + i);
            return FieldMemo::Dynamic(self.table.newest() - i as u64);
        }
        let name_idx = match static_idx {
            Some(i) => i as usize,
            None => by_name.map_or(0, |i| 62 + i),
        };
        let index = ENTRY_OVERHEAD + name.len() + value.len() <= self.table.limit() / 2;
        if index {
            // §6.2.1 Literal Header Field with Incremental Indexing.
            integer(out, 0x40, 6, name_idx);
        } else {
            // §6.2.2 Literal Header Field without Indexing.
            integer(out, 0x00, 4, name_idx);
        }
        if index {
            if name_idx == 0 {
                string_once(out, name);
            }
            string_once(out, value);
            let before = self.table.newest();
            self.table.insert(name, value);
            if self.table.newest() > before {
                return FieldMemo::Dynamic(self.table.newest());
            }
        } else {
            if name_idx == 0 {
                string(out, name);
            }
            string(out, value);
        }
        FieldMemo::Unknown
    }

    /// The §4.1 size of the dynamic table (tests).
    #[cfg(test)]
    pub(super) fn table_size(&self) -> usize {
        self.table.size()
    }

    /// The dynamic table's entries, newest first (tests).
    #[cfg(test)]
    pub(super) fn table_entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.table.entries()
    }
}
