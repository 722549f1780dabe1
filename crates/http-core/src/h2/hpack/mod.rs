//! HPACK (RFC 7541): the header compression of HTTP/2, both directions of one
//! connection.
//!
//! [`Decoder`] turns a whole request header block into a [`HeaderList`]
//! (names and values as sent, in one reused buffer; no validation here: the
//! connection checks names, values and pseudo-headers). Its dynamic table is
//! bounded by the `SETTINGS_HEADER_TABLE_SIZE` we announce, the decoded list
//! by the caller's `max_list_size` (fields past it are decoded to keep the
//! table in step, then dropped), and a string's length is checked against the
//! block before anything is allocated for it.
//!
//! [`Encoder`] writes response header blocks: a (name, value) pair already in
//! the static or dynamic table is one indexed byte, so a connection answering
//! the same file again sends each field of the second answer as one byte. New
//! pairs are literals with incremental indexing (strings Huffman coded when
//! that is shorter: paid once per connection), the
//! credentials (`authorization`, `cookie`, `set-cookie`,
//! `proxy-authorization`) never indexed, values over half the table not
//! indexed (both sent raw, as they are sent again each time).

mod decoder;
mod encoder;
mod huffman;
mod table;
#[cfg(test)]
mod tests;

// Used by the HTTP/2 connection (conn.rs, request.rs, response.rs).
pub(crate) use decoder::{Decoder, HeaderList};
pub(crate) use encoder::{Encoder, FieldMemo};

/// Why a header block could not be decoded: always a connection error of type
/// COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The block ends inside an integer (§5.1).
    #[error("HPACK: the block ends inside an integer")]
    IntegerTruncated,
    /// An integer over 2^32 - 1, or with more than 5 continuation octets.
    #[error("HPACK: an integer overflows 32 bits")]
    IntegerOverflow,
    /// An indexed field or name with index 0 (§6.1).
    #[error("HPACK: index 0")]
    IndexZero,
    /// An index past the static and dynamic tables (§2.3.3).
    #[error("HPACK: an index past the static and dynamic tables")]
    IndexOutOfRange,
    /// The block ends where a name or value string should start.
    #[error("HPACK: the block ends where a string literal starts")]
    StringTruncated,
    /// A string literal's length goes past the end of the block.
    #[error("HPACK: a string literal's length goes past the end of the block")]
    StringPastEnd,
    /// A Huffman string containing the EOS symbol (§5.2).
    #[error("HPACK: a Huffman string contains EOS")]
    HuffmanEos,
    /// Huffman padding longer than 7 bits (§5.2).
    #[error("HPACK: Huffman padding longer than 7 bits")]
    HuffmanPaddingTooLong,
    /// Huffman padding that is not the most significant bits of EOS (§5.2).
    #[error("HPACK: Huffman padding not all ones")]
    HuffmanPaddingNotOnes,
    /// A dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE (§6.3).
    #[error("HPACK: a dynamic table size update above the announced table size")]
    SizeUpdateTooLarge,
    /// A dynamic table size update after a field of the block (§4.2).
    #[error("HPACK: a dynamic table size update after a field")]
    SizeUpdateAfterField,
}
