//! The threads tasks train on. A task's own code runs on a blocking thread
//! of its own; the parallel parts of its ops (flex's GEMM, the kernels'
//! chunks) go to rayon's global pool, which every task of the process
//! shares, so that a task that runs alone (the last of a sweep, say) gets
//! every core while tasks side by side share them; a fixed share per slot
//! would leave cores idle whenever slots are. A task's code never runs on a
//! pool thread, because a pool thread that waits for stolen work may pick
//! up whatever is queued, and a whole task picked up that way would stall
//! the one it interrupted until it ended.

/// Where a worker's tasks train.
#[derive(Clone, Copy, Debug)]
pub struct Threads {
    /// LibTorch's threads per task (see [`crate::device::limit_threads`]).
    per_task: usize,
}

impl Threads {
    /// Sizes the process's pool to `threads`, for `slots` tasks at a time.
    /// The pool is built once per process: workers that share one (the
    /// local workers of `sweep run`) share its first size.
    pub fn new(slots: usize, threads: usize) -> Self {
        let threads = threads.max(1);
        let built = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
        if built.is_err() && rayon::current_num_threads() != threads {
            tracing::warn!(
                threads,
                size = rayon::current_num_threads(),
                "the process's compute pool was built before, and keeps its size"
            );
        }
        Self {
            per_task: (threads / slots.max(1)).max(1),
        }
    }

    /// Runs `work` on a blocking thread of its own.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let per_task = self.per_task;
        tokio::task::spawn_blocking(move || {
            crate::device::limit_threads(per_task);
            work()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Duration;

    use rayon::prelude::*;

    use super::*;

    #[tokio::test]
    async fn a_task_that_runs_alone_gets_every_thread_of_the_pool() {
        let threads = Threads::new(2, 2);
        let pool = rayon::current_num_threads();
        let used = threads
            .run(|| {
                let used = Mutex::new(HashSet::new());
                (0..64).into_par_iter().for_each(|_| {
                    used.lock().unwrap().insert(rayon::current_thread_index());
                    std::thread::sleep(Duration::from_millis(2));
                });
                used.into_inner().unwrap()
            })
            .await
            .unwrap();
        assert_eq!(
            used.len(),
            pool,
            "threads used of the pool's {pool}: {used:?}"
        );
        assert!(
            used.iter().all(Option::is_some),
            "ran on pool threads: {used:?}"
        );
    }
}
