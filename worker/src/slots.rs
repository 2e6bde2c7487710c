//! The worker's slots: one rayon pool per slot, each with its share of the
//! CPU threads, so several tasks train side by side without fighting over
//! the cores.

use std::sync::{Arc, Mutex};

/// The pools of the slots that are free now.
#[derive(Clone)]
pub struct Slots(Arc<Mutex<Vec<Arc<rayon::ThreadPool>>>>);

impl Slots {
    /// `slots` pools sharing `threads` threads (at least one each).
    pub fn new(slots: usize, threads: usize) -> Result<Self, String> {
        let pools = (0..slots)
            .map(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads((threads / slots).max(1))
                    .build()
                    .map(Arc::new)
                    .map_err(|err| format!("cannot start compute threads: {err}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(Arc::new(Mutex::new(pools))))
    }

    /// Runs `work` on a free slot's threads, on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let pool = self.lock().pop().expect("never more tasks than slots");
        let slot = pool.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            slot.install(|| {
                crate::device::limit_threads(rayon::current_num_threads());
                work()
            })
        })
        .await;
        self.lock().push(pool);
        outcome
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<rayon::ThreadPool>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
