//! A listener a configuration reload can move to a new address without
//! dropping a request.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;

use http_core::{ShutdownSignal, ShutdownTrigger};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What stops one listener: the process's shutdown, or its own retirement.
pub type Until = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves a listener until the future it is given resolves (then drains).
pub type ServeFn = Box<dyn Fn(TcpListener, Until) -> JoinHandle<std::io::Result<()>> + Send + Sync>;

/// The main listener of a binary. [`serve`](Self::serve) on a new listener
/// (bound first, by the reload, so that a port in use fails the reload as a
/// whole) serves it, then retires the one served before: that one stops
/// accepting and its connections finish their requests and close (within the
/// shutdown timeout), as at shutdown.
pub struct MovingListener {
    serve: ServeFn,
    /// Fires at the process's shutdown.
    stop: ShutdownSignal,
    /// The listener served now: its address and what stops it alone.
    current: Mutex<Option<(SocketAddr, ShutdownTrigger)>>,
    /// Every listener's serving task, the retired ones included.
    tasks: Mutex<Vec<JoinHandle<std::io::Result<()>>>>,
}

impl MovingListener {
    /// Nothing served yet; `serve` starts serving a listener (on a task),
    /// `stop` is the process's shutdown.
    pub fn new(stop: ShutdownSignal, serve: ServeFn) -> MovingListener {
        MovingListener {
            serve,
            stop,
            current: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Serves `listener` (at `addr`), then retires the one served before.
    /// Call it inside the runtime.
    pub fn serve(&self, listener: TcpListener, addr: SocketAddr) {
        let (trigger, mut own) = ShutdownSignal::new();
        let mut stop = self.stop.clone();
        let until = Box::pin(async move {
            tokio::select! {
                () = stop.triggered() => {}
                () = own.triggered() => {}
            }
        });
        let task = (self.serve)(listener, until);
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(task);
        let old = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((addr, trigger));
        if let Some((old, trigger)) = old {
            tracing::info!("stopped listening on {old}: its requests in progress finish");
            trigger.trigger();
        }
    }

    /// After the shutdown signal: waits for every listener's connections to
    /// finish; the first error, if any.
    pub async fn finish(&self) -> std::io::Result<()> {
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let mut result = Ok(());
        for t in tasks {
            let r = t.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// Binds `addr` now (from synchronous code such as a reload), the error
/// naming the address as [`bind`](crate::bind)'s does.
pub fn bind_now(addr: SocketAddr) -> Result<TcpListener, String> {
    http_core::listen(addr).map_err(|e| crate::bind_error(addr, &e))
}
