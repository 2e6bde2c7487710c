//! [`LongPoll`]: how a call waits for the store to change. The lease, the
//! result-key claim and the sweep watch stream all wait this one way.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How often a waiting call looks at the store again even without a change
/// signal, in case a signal was missed (another coordinator's change while
/// the PostgreSQL listener was reconnecting).
const RECHECK: Duration = Duration::from_secs(2);

/// A wait on the store's change counter, until a deadline or, without one,
/// until the server stops.
pub(super) struct LongPoll {
    changes: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    deadline: Option<Instant>,
}

impl LongPoll {
    pub fn new(
        changes: watch::Receiver<u64>,
        stopping: watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            changes,
            stopping,
            deadline,
        }
    }

    /// Marks the changes so far as seen. Called right before each look at
    /// the store, so that a change made during the look wakes the next
    /// [`LongPoll::nap`] at once.
    pub fn seen(&mut self) {
        self.changes.borrow_and_update();
    }

    /// Whether the wait is over: its deadline passed, or the server is
    /// stopping.
    pub fn over(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
            || *self.stopping.borrow()
    }

    /// Sleeps until the store changes, the server begins to stop, or
    /// [`RECHECK`] or the deadline passes, whichever comes first.
    pub async fn nap(&mut self) {
        let left = self.deadline.map_or(RECHECK, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            _ = self.changes.changed() => {}
            _ = self.stopping.changed() => {}
            _ = tokio::time::sleep(left.min(RECHECK)) => {}
        }
    }
}
