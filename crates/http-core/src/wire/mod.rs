//! The wire format, pure (no I/O): request and response heads, body framing by
//! RFC 9112 §6.3, the body decoder and encoder both roles share, the chunked
//! coding, header-list helpers, `Date`, the limits, and the one error type.
//!
//! Header names and values are spans into the read buffer: nothing is allocated
//! per header.

pub(crate) mod body_codec;
pub(crate) mod chunked;
pub(crate) mod date;
pub(crate) mod error;
pub(crate) mod framing;
pub(crate) mod headers;
pub(crate) mod limits;
pub(crate) mod request;
pub(crate) mod response;

pub use body_codec::{BodyDecoder, BodyEncoder};
pub use chunked::{ChunkedDecoder, ChunkedEncoder, Progress};
// The cached `Date` is the server's business; these are exported for the benchmarks.
#[doc(hidden)]
pub use date::{with_date, with_date_at, DATE_LEN};
pub use error::Error;
pub use framing::{parse_content_length, BodyKind};
pub use headers::{for_each_token, is_hop_by_hop, list_contains, HeaderIter, HOP_BY_HOP};
pub use limits::{Limits, MAX_HEADERS_CAP};
pub use request::{parse_request, Method, ParsedRequest, RequestHead, Version};
pub use response::{
    parse_response, reason_phrase, write_content_length, write_header, write_request_line, write_status_line,
    ParsedResponse, ResponseHead,
};
