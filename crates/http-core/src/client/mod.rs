//! The client role: one HTTP/1.1 exchange at a time on a connection to a server,
//! on the same wire format as the server role (the same head writer, the same
//! [`BodyDecoder`](crate::BodyDecoder) and [`BodyEncoder`](crate::BodyEncoder),
//! the same buffer pool).
//!
//! A proxy's upstream connections and its health checks use it; it holds no
//! policy: which headers to send, when to retry, and where connections are pooled
//! are the caller's.

mod conn;

pub use conn::{ClientConn, ReadHeadError, ResponseBody, SendError};
