//! The signal that asks connections to finish their current request and close,
//! and, under fd or connection pressure, asks idle keep-alive connections to close.

use std::time::Instant;

use tokio::sync::watch;

/// What the accept loop tells its connections.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    shutdown: bool,
    /// Keep-alive connections idle since before this instant should close, to
    /// make room for new clients (set when the connection limit or the fd table
    /// is reached).
    reap_idle_before: Option<Instant>,
}

/// Tells connections that the server is shutting down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(Option<watch::Receiver<State>>);

/// Triggers a [`ShutdownSignal`] and all its clones.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<State>);

impl ShutdownSignal {
    /// A trigger and the signal it fires.
    ///
    /// ```
    /// let (trigger, signal) = http_core::ShutdownSignal::new();
    /// assert!(!signal.is_triggered());
    /// trigger.trigger();
    /// assert!(signal.is_triggered());
    /// ```
    pub fn new() -> (ShutdownTrigger, ShutdownSignal) {
        let (tx, rx) = watch::channel(State::default());
        (ShutdownTrigger(tx), ShutdownSignal(Some(rx)))
    }

    /// A signal that never fires.
    pub fn never() -> ShutdownSignal {
        ShutdownSignal(None)
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| rx.borrow().shutdown)
    }

    /// Resolves once triggered; never, if the trigger is dropped untriggered.
    pub async fn triggered(&mut self) {
        match &mut self.0 {
            Some(rx) => {
                if rx.wait_for(|s| s.shutdown).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }

    /// The instant before which idle keep-alive connections were last asked to close.
    pub(crate) fn reap_idle_before(&self) -> Option<Instant> {
        self.0.as_ref().and_then(|rx| rx.borrow().reap_idle_before)
    }

    /// Resolves on the next change after its first poll: shutdown, or a request
    /// to close idle connections. Takes its own clone so that an idle connection
    /// can re-arm it without borrowing the signal.
    pub(crate) async fn next_change(self) {
        match self.0 {
            Some(mut rx) => {
                rx.mark_unchanged();
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

impl ShutdownTrigger {
    /// Fires the signal.
    pub fn trigger(&self) {
        self.0.send_modify(|s| s.shutdown = true);
    }

    /// Asks keep-alive connections idle since before `before` to close.
    pub(crate) fn reap_idle(&self, before: Instant) {
        self.0.send_modify(|s| s.reap_idle_before = Some(before));
    }
}
