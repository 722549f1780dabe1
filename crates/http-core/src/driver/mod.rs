//! The async side: one connection loop and one accept loop, shared by every server.

mod access_log;
mod body;
mod conn;
mod encode;
mod fd_limit;
mod io;
mod lazy;
mod listener;
pub(crate) mod pool;
mod server;
mod service;
mod shutdown;

pub use access_log::LogValue;
pub use body::{BodyError, RequestBody};
pub use conn::serve_connection;
pub use fd_limit::{connection_capacity, raise_fd_limit, FdLimit};
pub use io::{AnyIo, Finish, Io};
pub use lazy::LazyTcpStream;
pub use listener::listen;
pub use server::{accept_loop, Server, ServerHandle};
pub use service::{Body, HeaderBlock, HeaderBlockBuilder, Request, Response, Service, Upgraded};
pub use shutdown::{ShutdownSignal, ShutdownTrigger};
