//! The change counter behind [`super::Store::changes`]: a `watch` channel, so
//! a waiter that looked at the queue before a change still sees the change
//! (unlike a bare notification, which is lost when nobody is waiting yet).

use tokio::sync::watch;

#[derive(Clone)]
pub(crate) struct Signal(watch::Sender<u64>);

impl Signal {
    pub(crate) fn new() -> Self {
        Self(watch::Sender::new(0))
    }

    pub(crate) fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
