//! The open-file limit: raising it at start-up and sizing the connection cap from it.
//!
//! A process inherits a soft `RLIMIT_NOFILE` that is often 1024 while the hard
//! limit allows far more. With a connection cap above the soft limit, `accept`
//! fails with EMFILE long before the cap is reached and new clients are locked out.

use std::io;

/// File descriptors kept out of the connection budget: the listeners, log and
/// cached files, the runtime's own, and room for a file opened per request.
const RESERVED_FDS: u64 = 64;
/// The connection cap when the open-file limit allows more.
pub(crate) const MAX_DEFAULT_CONNECTIONS: usize = 25_000;

/// The soft open-file limit before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now (the hard limit, if raising it succeeded).
    pub now: u64,
}

/// Raises the soft open-file limit to the hard limit (what nginx's
/// `worker_rlimit_nofile` and HAProxy do at start-up). On systems without
/// `RLIMIT_NOFILE` both figures are `u64::MAX`.
///
/// ```
/// let limit = http_core::raise_fd_limit().unwrap();
/// assert!(limit.now >= limit.before);
/// ```
pub fn raise_fd_limit() -> io::Result<FdLimit> {
    #[cfg(unix)]
    {
        let (before, hard) = rlimit::Resource::NOFILE.get()?;
        if before < hard {
            rlimit::Resource::NOFILE.set(hard, hard)?;
        }
        let (now, _) = rlimit::Resource::NOFILE.get()?;
        Ok(FdLimit { before, now })
    }
    #[cfg(not(unix))]
    Ok(FdLimit {
        before: u64::MAX,
        now: u64::MAX,
    })
}

/// How many connections fit in the open-file limit when each uses
/// `fds_per_connection` descriptors (1 for a server, 2 for a proxy, whose
/// clients each hold an upstream connection too), at most 25 000 and at least 1.
///
/// ```
/// let cap = http_core::connection_capacity(2);
/// assert!(cap >= 1 && cap <= 25_000);
/// ```
pub fn connection_capacity(fds_per_connection: usize) -> usize {
    #[cfg(unix)]
    let soft = rlimit::Resource::NOFILE.get().map_or(u64::MAX, |(soft, _)| soft);
    #[cfg(not(unix))]
    let soft = u64::MAX;
    let per = fds_per_connection.max(1) as u64;
    let fit = soft.saturating_sub(RESERVED_FDS) / per;
    usize::try_from(fit)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_DEFAULT_CONNECTIONS)
}
