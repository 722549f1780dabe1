//! The server role: one connection loop ([`serve_connection`]) that reads
//! requests and hands them to a [`Service`], and one accept loop ([`Server`],
//! [`accept_loop`]) with a connection cap and graceful shutdown. The static
//! server, the proxy and the admin endpoint all run on it.

pub(crate) mod access_log;
pub(crate) mod body;
pub(crate) mod conn;
pub(crate) mod encode;
pub(crate) mod log_time;
pub(crate) mod redirect;
#[allow(clippy::module_inception)]
pub(crate) mod server;
pub(crate) mod service;
pub(crate) mod shutdown;

#[doc(hidden)]
pub use access_log::format_access_line;
pub use access_log::{
    access_log_format, log_connection, set_access_log_format, AccessLogFormat, AccessRecord, LogValue,
    REFUSED_LINES_PER_SECOND,
};
pub use body::{BodyError, RequestBody};
pub use conn::serve_connection;
pub use log_time::push_log_time;
pub use redirect::{https_redirect, RedirectToHttps};
pub use server::{accept_loop, Server, ServerHandle};
pub use service::{Body, HeaderBlock, HeaderBlockBuilder, Request, Response, Service, Upgraded};
pub use shutdown::{ShutdownSignal, ShutdownTrigger};
