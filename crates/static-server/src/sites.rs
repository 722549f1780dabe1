//! Sites by host name, and swapping them while serving ([`StaticFiles::reload`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use std::time::{SystemTime, UNIX_EPOCH};

use http_core::{Request, Response};

use crate::config::{ConfigError, SiteSet};
use crate::{Answer, Error, Inner, Role, StaticFiles};

/// Why a reload left the running configuration in place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file could not be read, parsed or checked, or a site not built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting only a restart can change (the metrics address, threads,
    /// timeouts, the connection limit, TLS files; the listening address
    /// beside a redirect listener) differs. A new listening address alone is
    /// not refused: moving the listener is the program's (the
    /// `static-server` binary binds the new address first, then retires the
    /// old listener).
    #[error("{0} changed: restart the server to change it (the running configuration is kept)")]
    RestartNeeded(&'static str),
    /// This server was not made with [`StaticFiles::from_sites`].
    #[error("this server does not serve a site set (made with StaticFiles::from_sites)")]
    NotReloadable,
}

/// The reloads so far (see [`StaticFiles::reload_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReloadCounts {
    /// Reloads that swapped the configuration in.
    pub succeeded: u64,
    /// Reloads that kept the old one.
    pub failed: u64,
    /// When the last reload ended, seconds since the Unix epoch (0: none yet).
    pub last_timestamp: u64,
    /// Whether the last reload succeeded (true before the first).
    pub last_succeeded: bool,
}

/// The current site set; read once per request (`ArcSwap::load`: an atomic
/// load and a per-thread slot, no shared reference count), replaced whole by
/// a reload.
#[derive(Debug)]
pub(crate) struct Switch {
    current: ArcSwap<SiteSet>,
    /// Held by a reload from its check to its swap: two at once cannot
    /// check against the same old set and both swap.
    reloading: Mutex<()>,
    succeeded: AtomicU64,
    failed: AtomicU64,
    last_timestamp: AtomicU64,
    last_succeeded: AtomicBool,
}

impl StaticFiles {
    /// A server for a site set ([`config::StaticConfig::build`](crate::config::StaticConfig::build)):
    /// each request goes to the site its `Host` names (lowercased, port
    /// stripped; an exact name first, then the first wildcard that matches),
    /// else to the default site; without one it is answered
    /// `421 Misdirected Request`. The listener settings (limits, connection
    /// cap, shutdown timeout) are the first site's. [`reload`](Self::reload)
    /// swaps the set while serving.
    ///
    /// ```no_run
    /// use static_server::{config::StaticConfig, StaticFiles};
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = StaticConfig::load("static-server.toml")?;
    /// let files = StaticFiles::from_sites(config.build()?)?;
    /// let handle = files.clone().spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    /// // later, the file edited:
    /// files.reload(StaticConfig::load("static-server.toml")?.build()?)?;
    /// # handle.shutdown().await; Ok(())
    /// # }
    /// ```
    pub fn from_sites(set: SiteSet) -> Result<StaticFiles, Error> {
        let first = set.first().ok_or(Error::NoSites)?;
        // The shell: the listener's settings and the counters; its own files
        // are never served.
        let mut shell = first.inner.cfg.clone().cache(0, 0).h2c(set.h2c);
        if let Some(tls) = &set.tls {
            shell = shell.tls(tls.clone());
        }
        let mut inner = shell.build_inner()?;
        inner.sites = Some(Switch {
            current: ArcSwap::from_pointee(set),
            reloading: Mutex::new(()),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_timestamp: AtomicU64::new(0),
            last_succeeded: AtomicBool::new(true),
        });
        Ok(StaticFiles {
            inner: Arc::new(inner),
            role: Role::Sites,
        })
    }

    /// Swaps in `set` atomically: requests that have started finish on the
    /// sites they started with, later ones get the new sites. Refused, the
    /// running set kept, when a setting only a restart can change differs
    /// ([`ReloadError::RestartNeeded`]). Counted in the metrics
    /// (`static_server_config_reloads_total{result}`).
    pub fn reload(&self, set: SiteSet) -> Result<(), ReloadError> {
        self.reload_with(|| Ok(set))
    }

    /// [`reload`](Self::reload) with the set made by `load`; a failure there
    /// (a file that does not parse, a root that is gone) is counted as a
    /// failed reload too.
    pub fn reload_with(
        &self,
        load: impl FnOnce() -> Result<SiteSet, ConfigError>,
    ) -> Result<(), ReloadError> {
        let switch = self.inner.sites.as_ref().ok_or(ReloadError::NotReloadable)?;
        let result = load().map_err(ReloadError::from).and_then(|set| {
            let _one_at_a_time = switch.reloading.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(key) = restart_needed(&switch.current.load(), &set) {
                return Err(ReloadError::RestartNeeded(key));
            }
            switch.current.store(Arc::new(set));
            Ok(())
        });
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        switch.last_timestamp.store(now, Ordering::Relaxed);
        switch.last_succeeded.store(result.is_ok(), Ordering::Relaxed);
        match &result {
            Ok(()) => switch.succeeded.fetch_add(1, Ordering::Relaxed),
            Err(_) => switch.failed.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// The reloads so far; `None` unless made with [`from_sites`](Self::from_sites).
    pub fn reload_counts(&self) -> Option<ReloadCounts> {
        counts(&self.inner)
    }

    /// The site set served now; `None` unless made with [`from_sites`](Self::from_sites).
    pub fn current_sites(&self) -> Option<Arc<SiteSet>> {
        self.inner.sites.as_ref().map(|s| s.current.load_full())
    }

    /// A request in [`Role::Sites`]: the site its host names answers it.
    pub(crate) async fn call_site(&self, req: Request<'_>) -> Response {
        // The set is read once; what the answer needs later (an open file,
        // a cache entry, the site for a compression) it holds itself, so
        // a reload meanwhile does not change it.
        let (site, entry, coding) = {
            let Some(switch) = &self.inner.sites else {
                return Response::text(500, "no sites\n");
            };
            let set = switch.current.load();
            let Some(site) = set.site_for(req.head.host().unwrap_or(b"")) else {
                return Response::text(421, "no site for this host name\n");
            };
            match site.inner.handle(req.head, req.received) {
                Answer::Ready(r) => return r,
                Answer::Compress(entry, c) => (site.inner.clone(), entry, c),
            }
        };
        Box::pin(site.compress_and_respond(req.head, entry, coding)).await
    }
}

/// The reload counts of a server made by [`StaticFiles::from_sites`].
pub(crate) fn counts(inner: &Inner) -> Option<ReloadCounts> {
    inner.sites.as_ref().map(|s| ReloadCounts {
        succeeded: s.succeeded.load(Ordering::Relaxed),
        failed: s.failed.load(Ordering::Relaxed),
        last_timestamp: s.last_timestamp.load(Ordering::Relaxed),
        last_succeeded: s.last_succeeded.load(Ordering::Relaxed),
    })
}

/// The first setting that differs and that only a restart can change.
fn restart_needed(old: &SiteSet, new: &SiteSet) -> Option<&'static str> {
    let (a, b) = (old.server(), new.server());
    [
        // The listener is the program's to move (the binary binds the new
        // address first); not beside a redirect listener, which names its port.
        ("listen", a.listen != b.listen && a.redirect_http.is_some()),
        ("metrics", a.metrics != b.metrics),
        ("threads", a.threads != b.threads),
        ("log_format", a.log_format != b.log_format),
        ("header_timeout", a.header_timeout != b.header_timeout),
        ("keep_alive_timeout", a.keep_alive_timeout != b.keep_alive_timeout),
        ("shutdown_timeout", a.shutdown_timeout != b.shutdown_timeout),
        ("max_connections", a.max_connections != b.max_connections),
        ("tls", a.tls != b.tls),
        ("redirect_http", a.redirect_http != b.redirect_http),
        ("hsts", a.hsts != b.hsts),
        ("metrics_tls", a.metrics_tls != b.metrics_tls),
    ]
    .into_iter()
    .find(|(_, differs)| *differs)
    .map(|(k, _)| k)
}
