//! The signal that asks connections to finish their current request and close.

use tokio::sync::watch;

/// Tells connections that the server is shutting down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(Option<watch::Receiver<bool>>);

/// Triggers a [`ShutdownSignal`] and all its clones.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

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
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), ShutdownSignal(Some(rx)))
    }

    /// A signal that never fires.
    pub fn never() -> ShutdownSignal {
        ShutdownSignal(None)
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves once triggered; never, if the trigger is dropped untriggered.
    pub async fn triggered(&mut self) {
        match &mut self.0 {
            Some(rx) => {
                if rx.wait_for(|v| *v).await.is_err() {
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
        self.0.send_replace(true);
    }
}
