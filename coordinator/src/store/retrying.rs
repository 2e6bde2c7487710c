//! [`Retrying`]: a store that tries a call again, with backoff, while it
//! fails for a reason that passes (a connection cut by a database restart,
//! the server starting up, a serialization failure or deadlock). Every call
//! is one transaction, so a call that failed changed nothing and may simply
//! be made again; only a commit whose answer was lost can leave its work
//! done once more (a sweep stored twice; a lease call asks again for the
//! leases it made).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sweep_proto::{
    CacheStats, CancelOutcome, Claim, Forget, Lease, LeaseRef, LeaseStatus, MetricPoint,
    Registration, SeedRound, Sweep, SweepId, SweepRef, Task, TaskCounts, TaskId, TaskState,
    WireError, WorkerId, WorkerInfo,
};
use sweep_spec::Submission;
use tokio::sync::watch;

use super::*;
use crate::error::{Error, Result};

/// How long a call keeps trying: a database restart takes seconds.
const PATIENCE: Duration = Duration::from_secs(15);

/// Any store, made patient with passing failures.
pub struct Retrying<S>(pub S);

/// An error that says whether the same call may succeed later.
trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for Error {
    fn is_transient(&self) -> bool {
        Error::is_transient(self)
    }
}

/// A read's error: the store's, as a client sees it.
impl Transient for WireError {
    fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

/// Runs `call` until it succeeds, fails for good, or [`PATIENCE`] is over.
async fn retry<T, E, F, Fut>(what: &str, mut call: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        match call().await {
            Err(err) if err.is_transient() && started.elapsed() + wait < PATIENCE => {
                tracing::warn!(call = what, error = %err, wait_ms = wait.as_millis() as u64, "database away; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

#[async_trait]
impl<S: SweepStore> SweepStore for Retrying<S> {
    async fn create_sweep(&self, sweep: &Submission) -> Result<SweepId> {
        retry("create_sweep", || self.0.create_sweep(sweep)).await
    }

    async fn sweep_with_key(&self, spec_key: &str) -> Result<Option<Sweep>> {
        retry("sweep_with_key", || self.0.sweep_with_key(spec_key)).await
    }

    async fn cancel_sweep(&self, id: SweepId) -> Result<CancelOutcome> {
        retry("cancel_sweep", || self.0.cancel_sweep(id)).await
    }

    async fn extend_sweep(&self, id: SweepId, new: &Submission) -> Result<u64> {
        retry("extend_sweep", || self.0.extend_sweep(id, new)).await
    }

    async fn retry_sweep(&self, id: SweepId) -> Result<u64> {
        retry("retry_sweep", || self.0.retry_sweep(id)).await
    }

    async fn deciding_sweeps(&self) -> Result<Vec<SweepId>> {
        retry("deciding_sweeps", || self.0.deciding_sweeps()).await
    }

    async fn decide_round(&self, id: SweepId, round: &SeedRound, new: &Submission) -> Result<bool> {
        // A try whose commit's answer was lost answers false the next time:
        // the round was recorded, once, either way.
        retry("decide_round", || self.0.decide_round(id, round, new)).await
    }

    async fn end_deciding(&self, id: SweepId) -> Result<()> {
        retry("end_deciding", || self.0.end_deciding(id)).await
    }
}

#[async_trait]
impl<S: WorkerStore> WorkerStore for Retrying<S> {
    async fn register_worker(
        &self,
        worker: &Registration,
        lease_ttl: Duration,
    ) -> Result<WorkerId> {
        retry("register_worker", || {
            self.0.register_worker(worker, lease_ttl)
        })
        .await
    }

    async fn leave(&self, worker: WorkerId) -> Result<()> {
        retry("leave", || self.0.leave(worker)).await
    }
}

#[async_trait]
impl<S: QueueStore> QueueStore for Retrying<S> {
    async fn complete_and_lease(
        &self,
        completions: &[Completion],
        call: LeaseCall,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<(Vec<Result<()>>, Vec<Lease>)> {
        // A try whose commit's answer was lost made leases: the next try
        // asks for them again rather than leaving them to expire.
        let mut tries = 0;
        retry("lease", || {
            let again = LeaseCall {
                again: call.again || tries > 0,
                ..call
            };
            tries += 1;
            self.0.complete_and_lease(completions, again, fit, max, ttl)
        })
        .await
    }

    async fn heartbeat(
        &self,
        worker: WorkerId,
        leases: &[LeaseRef],
        ttl: Duration,
    ) -> Result<Vec<LeaseStatus>> {
        retry("heartbeat", || self.0.heartbeat(worker, leases, ttl)).await
    }

    async fn record_metrics(&self, lease: &LeaseRef, points: &[MetricPoint]) -> Result<u64> {
        retry("record_metrics", || self.0.record_metrics(lease, points)).await
    }

    async fn put_artifact(&self, lease: &LeaseRef, artifact: NewArtifact) -> Result<()> {
        retry("put_artifact", || {
            self.0.put_artifact(lease, artifact.clone())
        })
        .await
    }

    async fn complete_many(&self, completions: &[Completion]) -> Result<Vec<Result<()>>> {
        retry("complete_many", || self.0.complete_many(completions)).await
    }

    async fn fail(&self, lease: &LeaseRef, error: &str, retryable: bool) -> Result<TaskState> {
        retry("fail", || self.0.fail(lease, error, retryable)).await
    }

    async fn release(&self, lease: &LeaseRef) -> Result<TaskState> {
        retry("release", || self.0.release(lease)).await
    }

    async fn reap_expired(&self) -> Result<ReapOutcome> {
        retry("reap_expired", || self.0.reap_expired()).await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.0.changes()
    }
}

#[async_trait]
impl<S: CheckpointStore> CheckpointStore for Retrying<S> {
    async fn put_checkpoint(&self, lease: &LeaseRef, checkpoint: NewCheckpoint) -> Result<()> {
        retry("put_checkpoint", || {
            self.0.put_checkpoint(lease, checkpoint.clone())
        })
        .await
    }

    async fn checkpoint(&self, lease: &LeaseRef) -> Result<StoredCheckpoint> {
        retry("checkpoint", || self.0.checkpoint(lease)).await
    }

    async fn resume(&self, lease: &LeaseRef, step: u64) -> Result<()> {
        retry("resume", || self.0.resume(lease, step)).await
    }

    async fn refuse_checkpoint(&self, lease: &LeaseRef, why: &str) -> Result<()> {
        retry("refuse_checkpoint", || self.0.refuse_checkpoint(lease, why)).await
    }
}

#[async_trait]
impl<S: CacheStore> CacheStore for Retrying<S> {
    async fn claim_result(&self, lease: &LeaseRef, data: &str) -> Result<Claim> {
        retry("claim_result", || self.0.claim_result(lease, data)).await
    }

    async fn forget_results(&self, which: Forget) -> Result<u64> {
        retry("forget_results", || self.0.forget_results(which)).await
    }
}

#[async_trait]
impl<S: Results> Results for Retrying<S> {
    async fn workers(&self) -> Result<Vec<WorkerInfo>, WireError> {
        retry("workers", || self.0.workers()).await
    }

    async fn sweeps(&self, limit: u32) -> Result<Vec<Sweep>, WireError> {
        retry("sweeps", || self.0.sweeps(limit)).await
    }

    async fn sweep(&self, which: &SweepRef) -> Result<Sweep, WireError> {
        retry("sweep", || self.0.sweep(which)).await
    }

    async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> Result<Vec<Task>, WireError> {
        retry("tasks", || self.0.tasks(sweep, states)).await
    }

    async fn task_page(
        &self,
        sweep: SweepId,
        states: &[TaskState],
        order: TaskOrder,
        from: u64,
        limit: u32,
    ) -> Result<TaskPage, WireError> {
        retry("task_page", || {
            self.0.task_page(sweep, states, order, from, limit)
        })
        .await
    }

    async fn task(&self, id: TaskId) -> Result<Task, WireError> {
        retry("task", || self.0.task(id)).await
    }

    async fn attempts(&self, task: TaskId) -> Result<Vec<Attempt>, WireError> {
        retry("attempts", || self.0.attempts(task)).await
    }

    async fn metrics(&self, task: TaskId) -> Result<Vec<Metric>, WireError> {
        retry("metrics", || self.0.metrics(task)).await
    }

    async fn artifact(&self, task: TaskId, name: &str) -> Result<Artifact, WireError> {
        retry("artifact", || self.0.artifact(task, name)).await
    }

    async fn artifacts(&self, task: TaskId) -> Result<Vec<ArtifactInfo>, WireError> {
        retry("artifacts", || self.0.artifacts(task)).await
    }

    async fn cache_stats(&self) -> Result<CacheStats, WireError> {
        retry("cache_stats", || self.0.cache_stats()).await
    }

    async fn task_counts(&self) -> Result<TaskCounts, WireError> {
        retry("task_counts", || self.0.task_counts()).await
    }

    async fn aggregate(&self, sweep: SweepId) -> Result<Vec<SettingStats>, WireError> {
        retry("aggregate", || self.0.aggregate(sweep)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn passing_failures_are_tried_again_and_others_are_not() {
        let calls = AtomicU32::new(0);
        let flaky = || async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err(Error::Database(sqlx::Error::PoolTimedOut)),
                n => Ok(n),
            }
        };
        assert_eq!(retry("flaky", flaky).await.unwrap(), 2);
        let calls = AtomicU32::new(0);
        let refused = || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(Error::not_found("sweep", 9))
        };
        assert!(retry("refused", refused).await.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
