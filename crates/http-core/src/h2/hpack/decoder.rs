//! The decoding side (RFC 7541 §3, §5, §6).

use super::huffman;
use super::table::{DynTable, Pieces, ENTRY_OVERHEAD, STATIC};
use super::DecodeError;

/// One decoded header block: fields in order, bytes in one reused buffer.
#[derive(Debug, Default)]
pub(crate) struct HeaderList {
    /// Names and values, each field's name then its value.
    buf: Vec<u8>,
    /// (start in `buf`, name length, value length).
    fields: Vec<(usize, usize, usize)>,
    /// RFC 9113 §6.5.2 size of all the decoded fields.
    size: usize,
    too_large: bool,
}

impl HeaderList {
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.fields.clear();
        self.size = 0;
        self.too_large = false;
    }

    /// The fields stored.
    #[cfg(test)]
    #[allow(clippy::len_without_is_empty)]
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// `(name, value)` of the fields stored, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|&(s, n, v)| (&self.buf[s..s + n], &self.buf[s + n..s + n + v]))
    }

    /// The RFC 9113 §6.5.2 size of the list: sum of name + value + 32 per
    /// field, of ALL decoded fields (including those not stored because the
    /// list was too large).
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The block decoded past `max_list_size`: fields beyond it were decoded
    /// (the table kept in step) but not stored.
    pub(crate) fn too_large(&self) -> bool {
        self.too_large
    }

    /// Counts a field of `len` name and value bytes; whether to store it.
    #[inline]
    fn admit(&mut self, len: usize, max: usize) -> bool {
        self.size = self.size.saturating_add(len + ENTRY_OVERHEAD);
        if self.size > max {
            self.too_large = true;
        }
        !self.too_large
    }

    #[cfg(test)]
    pub(super) fn buf_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The heap memory the list holds.
    pub(crate) fn heap_size(&self) -> usize {
        self.buf.capacity() + self.fields.capacity() * std::mem::size_of::<(usize, usize, usize)>()
    }
}

/// The decoder of one connection: the peer's dynamic table.
#[derive(Debug)]
pub(crate) struct Decoder {
    table: DynTable,
    max_table_size: usize,
}

/// Reads an integer with an `n`-bit prefix at `*pos` (§5.1).
#[inline]
fn integer(block: &[u8], pos: &mut usize, n: u32) -> Result<usize, DecodeError> {
    let Some(&first) = block.get(*pos) else {
        return Err(DecodeError::IntegerTruncated);
    };
    *pos += 1;
    let max = (1u32 << n) - 1;
    let v = u32::from(first) & max;
    if v < max {
        return Ok(v as usize);
    }
    let mut v = u64::from(v);
    let mut shift = 0;
    loop {
        let Some(&b) = block.get(*pos) else {
            return Err(DecodeError::IntegerTruncated);
        };
        *pos += 1;
        v += u64::from(b & 0x7f) << shift;
        if v > u64::from(u32::MAX) {
            return Err(DecodeError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(v as usize);
        }
        shift += 7;
        if shift > 28 {
            return Err(DecodeError::IntegerOverflow);
        }
    }
}

/// Makes room for `n` more bytes in `buf`, growing it by doubling but never
/// past `max` (the list size limit) unless the `n` bytes need it: the buffer
/// holds at most the stored fields (at most `max`) and the field being decoded.
#[inline]
fn reserve(buf: &mut Vec<u8>, n: usize, max: usize) {
    let need = buf.len().saturating_add(n);
    if need > buf.capacity() {
        let target = buf.capacity().saturating_mul(2).min(max).max(need);
        buf.reserve_exact(target - buf.len());
    }
}

/// Reads a string literal at `*pos` (§5.2), appending it decoded to `out`.
#[inline]
fn string(block: &[u8], pos: &mut usize, out: &mut Vec<u8>, max: usize) -> Result<(), DecodeError> {
    let Some(&first) = block.get(*pos) else {
        return Err(DecodeError::StringTruncated);
    };
    let len = integer(block, pos, 7)?;
    if len > block.len() - *pos {
        return Err(DecodeError::StringPastEnd);
    }
    let s = &block[*pos..*pos + len];
    *pos += len;
    if first & 0x80 != 0 {
        reserve(out, huffman::max_decoded_len(len), max);
        huffman::decode(s, out)
    } else {
        reserve(out, len, max);
        out.extend_from_slice(s);
        Ok(())
    }
}

impl Decoder {
    /// `max_table_size`: our SETTINGS_HEADER_TABLE_SIZE (the default 4096 is
    /// what we announce).
    pub(crate) fn new(max_table_size: usize) -> Self {
        Decoder {
            table: DynTable::new(max_table_size),
            max_table_size,
        }
    }

    /// The §4.1 size of the dynamic table.
    #[cfg(test)]
    pub(super) fn table_size(&self) -> usize {
        self.table.size()
    }

    /// The dynamic table's entries, newest first.
    #[cfg(test)]
    pub(super) fn table_entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.table.entries()
    }

    #[cfg(test)]
    pub(super) fn table_ring_len(&self) -> usize {
        self.table.ring_len()
    }

    /// Name and value of HPACK index `idx` (>= 1).
    #[inline]
    fn entry(&self, idx: usize) -> Result<(Pieces<'_>, Pieces<'_>), DecodeError> {
        match idx {
            0 => Err(DecodeError::IndexZero),
            1..=61 => {
                let (n, v) = STATIC[idx - 1];
                Ok((Pieces(n, &[]), Pieces(v, &[])))
            }
            _ => self.table.get(idx - 62).ok_or(DecodeError::IndexOutOfRange),
        }
    }

    /// Decodes one whole header block (all HEADERS+CONTINUATION fragments
    /// already joined by the caller) into `out` (cleared first).
    ///
    /// Fields past `max_list_size` (by the §6.5.2 size) are still decoded, so
    /// the dynamic table stays in step, but not stored; `out.too_large()`
    /// tells. Names and values are stored as decoded (Huffman decoded); NO
    /// validation of field names/values here (the caller checks case,
    /// CR/LF/NUL, pseudo-headers).
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        out: &mut HeaderList,
    ) -> Result<(), DecodeError> {
        out.clear();
        let mut pos = 0;
        let mut at_start = true;
        while let Some(&b) = block.get(pos) {
            if b & 0x80 != 0 {
                // §6.1 Indexed Header Field.
                let idx = integer(block, &mut pos, 7)?;
                at_start = false;
                let (n, v) = self.entry(idx)?;
                if out.admit(n.len() + v.len(), max_list_size) {
                    let start = out.buf.len();
                    reserve(&mut out.buf, n.len() + v.len(), max_list_size);
                    n.copy_to(&mut out.buf);
                    v.copy_to(&mut out.buf);
                    out.fields.push((start, n.len(), v.len()));
                }
            } else if b & 0x20 != 0 && b & 0x40 == 0 {
                // §6.3 Dynamic Table Size Update.
                if !at_start {
                    return Err(DecodeError::SizeUpdateAfterField);
                }
                let size = integer(block, &mut pos, 5)?;
                if size > self.max_table_size {
                    return Err(DecodeError::SizeUpdateTooLarge);
                }
                self.table.set_limit(size);
            } else {
                // §6.2.1 with incremental indexing (01), §6.2.2 without (0000),
                // §6.2.3 never indexed (0001).
                let index = b & 0x40 != 0;
                let idx = integer(block, &mut pos, if index { 6 } else { 4 })?;
                at_start = false;
                let start = out.buf.len();
                if idx == 0 {
                    string(block, &mut pos, &mut out.buf, max_list_size)?;
                } else {
                    let name = self.entry(idx)?.0;
                    reserve(&mut out.buf, name.len(), max_list_size);
                    name.copy_to(&mut out.buf);
                }
                let name_len = out.buf.len() - start;
                string(block, &mut pos, &mut out.buf, max_list_size)?;
                let value_len = out.buf.len() - start - name_len;
                if index {
                    let (name, value) = out.buf[start..].split_at(name_len);
                    self.table.insert(name, value);
                }
                if out.admit(name_len + value_len, max_list_size) {
                    out.fields.push((start, name_len, value_len));
                } else {
                    out.buf.truncate(start);
                }
            }
        }
        Ok(())
    }
}
