//! The durable state of the coordinator behind six traits, one per job, and
//! [`Store`], which is all six: [`SweepStore`] (the catalog of submitted
//! sweeps), [`WorkerStore`] (registered workers), [`QueueStore`] (leases and
//! everything a worker reports under one), [`CheckpointStore`] (the newest
//! checkpoint of each task), [`CacheStore`] (result keys claimed and
//! forgotten) and [`Results`] (what reports, plots, listings and the
//! dashboard read: the protocol's one read trait, which the coordinator's
//! client implements too). [`reader`] opens a database only to read it.
//! Two backends implement them with
//! the same SQL ([`sql`]): [`postgres`] for a cluster and [`sqlite`] (a file,
//! the embedded default) for one machine; they differ only where the
//! databases do (see [`sql::Dialect`]) and pass the same test suite.
//!
//! Everything a coordinator knows lives here, so a coordinator can restart, or
//! run as several replicas, without losing anything. Rows are typed at this
//! edge: task parameters and summaries are stored as JSON and parsed here.

mod migrations;
mod model;
pub mod postgres;
pub mod reader;
mod retrying;
mod signal;
mod sql;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use sweep_proto::Results;
use sweep_proto::{
    CancelOutcome, Claim, Completion, Forget, Lease, LeaseCall, LeaseRef, LeaseStatus, MetricPoint,
    Registration, SeedRound, Sweep, SweepId, TaskState, WorkerId,
};
use sweep_spec::Submission;
use tokio::sync::watch;

use crate::error::{Error, Result};
pub use model::*;
pub use retrying::Retrying;

/// The catalog of sweeps. Every method is atomic.
#[async_trait]
pub trait SweepStore: Send + Sync + 'static {
    /// Stores a sweep and all its tasks. Tasks without dependencies start
    /// queued, the others blocked.
    async fn create_sweep(&self, sweep: &Submission) -> Result<SweepId>;

    /// The newest sweep submitted with this spec key (see
    /// [`sweep_spec::planner::spec_key`]), if any.
    async fn sweep_with_key(&self, spec_key: &str) -> Result<Option<Sweep>>;

    /// Cancels the sweep: queued and blocked tasks become cancelled at once,
    /// leased ones are flagged so that the next heartbeat tells their worker.
    /// A sweep that is already final is left as it is.
    async fn cancel_sweep(&self, id: SweepId) -> Result<CancelOutcome>;

    /// Adds to the sweep the tasks of `new`'s plan it does not have yet (a
    /// task it has is one with the same parameters), after its own, and
    /// makes `new`'s spec the sweep's (its text, so that `sweep run` of it
    /// finds this sweep; the sweep keeps its name). New tasks that depend on
    /// ended ones are queued, or failed when one of those failed. Answers
    /// how many tasks were added. [`Error::Precondition`] for a cancelled
    /// sweep, [`Error::InvalidRequest`] for a spec of another experiment.
    async fn extend_sweep(&self, id: SweepId, new: &Submission) -> Result<u64>;

    /// Queues the sweep's failed tasks again with a fresh attempt budget (a
    /// task whose dependencies have not all succeeded goes back to blocked).
    /// Returns how many were re-queued. [`Error::Precondition`] for a cancelled
    /// sweep.
    async fn retry_sweep(&self, id: SweepId) -> Result<u64>;

    /// The sweeps with adaptive seeds that have a question still open, not
    /// cancelled, oldest first.
    async fn deciding_sweeps(&self) -> Result<Vec<SweepId>>;

    /// Records `round`, a decision on one question of an adaptive sweep,
    /// and adds the tasks of `new`'s plan that the sweep lacks (the round's
    /// seeds), in one transaction, once: when the question already has a
    /// decision at that many seeds (another replica's, or one taken before
    /// a restart) it changes nothing and answers false.
    /// [`Error::Precondition`] for a cancelled sweep.
    async fn decide_round(&self, id: SweepId, round: &SeedRound, new: &Submission) -> Result<bool>;

    /// Marks an adaptive sweep decided (every question settled, resolved or
    /// at its max): its state follows its tasks' again.
    async fn end_deciding(&self, id: SweepId) -> Result<()>;
}

/// The workers that registered.
#[async_trait]
pub trait WorkerStore: Send + Sync + 'static {
    /// Records a worker; a restarted worker registers again and gets a new
    /// id. Its leases live `lease_ttl`: silent for longer, it is lost.
    async fn register_worker(&self, worker: &Registration, lease_ttl: Duration)
    -> Result<WorkerId>;

    /// Records that the worker stopped cleanly (listings show it stopped,
    /// not lost). Leases it still holds are left to expire: a worker hands
    /// its tasks back before it leaves. [`Error::NotFound`] for an unknown
    /// worker.
    async fn leave(&self, worker: WorkerId) -> Result<()>;
}

/// The task queue. Every method is atomic: it either happens whole or not at
/// all. Methods that take a [`LeaseRef`] are fenced: unless the token names
/// the task's current lease they change nothing and return
/// [`Error::StaleLease`] ([`Error::NotFound`] for an unknown task).
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Claims up to `max` queued tasks that fit the worker, highest priority
    /// first, then oldest. Each claimed task gets `attempt + 1`, a fresh lease
    /// token and a lease that expires after `ttl`. Never hands one task to two
    /// callers, however many call at once. Returns at once; waiting for work is
    /// the caller's (see [`QueueStore::changes`]). [`Error::NotFound`] for an
    /// unknown worker.
    ///
    /// Each lease records the call's number. A call made `again` first gets
    /// back, with their expiry extended, the leases of the worker's call of
    /// that number that are still held, all of them even beyond `max` (the
    /// worker asks again with the slots it asked for before), and only then
    /// fills the slots left with new claims.
    async fn lease(
        &self,
        call: LeaseCall,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<Vec<Lease>> {
        let (_, leases) = self.complete_and_lease(&[], call, fit, max, ttl).await?;
        Ok(leases)
    }

    /// [`QueueStore::complete_many`] and then [`QueueStore::lease`], in one
    /// transaction: a worker ends what it finished and takes the freed slots'
    /// next tasks with one commit, and the lease already sees the dependents
    /// those completions queued. Answers the completions' outcomes, in
    /// order, and the leases. An unknown worker ([`Error::NotFound`]) or a
    /// database failure changes nothing, completions included.
    async fn complete_and_lease(
        &self,
        completions: &[Completion],
        call: LeaseCall,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<(Vec<Result<()>>, Vec<Lease>)>;

    /// Extends each lease named, by `ttl` from now, and says per task whether
    /// to keep going, cancel, or stop because the lease is lost. Marks the
    /// worker as alive. [`Error::NotFound`] for an unknown worker.
    async fn heartbeat(
        &self,
        worker: WorkerId,
        leases: &[LeaseRef],
        ttl: Duration,
    ) -> Result<Vec<LeaseStatus>>;

    /// Stores metric points under the lease's attempt. Idempotent: a point
    /// already stored for `(task, attempt, name, step)` is kept and not counted.
    /// Returns how many points were new. Fenced.
    async fn record_metrics(&self, lease: &LeaseRef, points: &[MetricPoint]) -> Result<u64>;

    /// Stores an artifact under the lease's attempt, replacing one of the same
    /// name from the same attempt. Fenced.
    async fn put_artifact(&self, lease: &LeaseRef, artifact: NewArtifact) -> Result<()>;

    /// Ends each attempt named in success with its summary, storing its last
    /// metric points first as [`QueueStore::record_metrics`] would, and
    /// deletes its checkpoint, all in one transaction; dependents whose dependencies have now all succeeded
    /// become queued. Each completion is fenced and checked on its own: the
    /// answer holds one outcome per completion, in order, and a refused one
    /// (a stale lease, a non-finite point) changes nothing of its task. The
    /// call itself fails only when the database does, and then changes
    /// nothing at all.
    async fn complete_many(&self, completions: &[Completion]) -> Result<Vec<Result<()>>>;

    /// Ends the attempt with an error. A retryable error queues the task again
    /// while attempts remain; otherwise the task fails with this error and so
    /// do the tasks that depend on it. A task whose sweep was cancelled becomes
    /// cancelled. Returns the task's new state. Fenced.
    async fn fail(&self, lease: &LeaseRef, error: &str, retryable: bool) -> Result<TaskState>;

    /// Hands the task back unfinished (a worker shutting down): it is queued
    /// again at once and the attempt does not count against `max_attempts`.
    /// Returns the task's new state (cancelled if its sweep was). Fenced.
    async fn release(&self, lease: &LeaseRef) -> Result<TaskState>;

    /// Ends every lease that has expired: the task is queued again while
    /// attempts remain, fails once they are used up (and so do its dependents),
    /// or is cancelled if its sweep was. Safe to run from several coordinators
    /// at once: each expired lease is handled by exactly one call.
    async fn reap_expired(&self) -> Result<ReapOutcome>;

    /// A counter that moves whenever tasks may have changed state (in this
    /// process, and for PostgreSQL in any coordinator on the same database).
    /// Long polls wait on it instead of sleeping.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// Checkpoints: the newest of each task, kept for a later attempt to resume
/// from. Every method is atomic and fenced, as in [`QueueStore`].
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// Makes `checkpoint` the task's checkpoint, replacing the one before
    /// (of this attempt or an earlier one) in one transaction, so a
    /// checkpoint is whole or absent, never half written. Fenced.
    async fn put_checkpoint(&self, lease: &LeaseRef, checkpoint: NewCheckpoint) -> Result<()>;

    /// The task's checkpoint, for the attempt holding its lease to resume
    /// from; [`Error::NotFound`] when it has none. Fenced.
    async fn checkpoint(&self, lease: &LeaseRef) -> Result<StoredCheckpoint>;

    /// Records that the lease's attempt resumed from the task's checkpoint,
    /// taken at `step`: the points its attempt had sent by then (its
    /// watermarks) become this attempt's too, so the attempt that succeeds
    /// has the whole series, and the task shows where the attempt started.
    /// [`Error::Precondition`] when the task's checkpoint is not at `step`
    /// (a newer one replaced it). Fenced.
    async fn resume(&self, lease: &LeaseRef, step: u64) -> Result<()>;

    /// Records that the lease's attempt could not use the task's checkpoint
    /// and trains from the start: `why` (one line) becomes the attempt's
    /// error, which it keeps even if it succeeds. The checkpoint stays until
    /// a newer one replaces it or the task succeeds. Fenced.
    async fn refuse_checkpoint(&self, lease: &LeaseRef, why: &str) -> Result<()>;
}

/// The result cache: a task's result key claimed before it trains, and
/// results forgotten on request (see [`sweep_spec::result_key`]). What the
/// cache holds is a read: [`Results::cache_stats`].
#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// Completes the result key of the cacheable task `lease` names (see
    /// [`sweep_spec::result_key`]) from its task key, `data` (the digest of
    /// the data the worker would read), the leasing worker's backend and
    /// result version, and its dependencies' result keys, then decides:
    ///
    /// - [`Claim::Cached`]: a succeeded task with that key still has its
    ///   results (its metrics and every artifact it stored): this task
    ///   succeeds at once pointing at them (its summary is the source's; its
    ///   metrics and artifacts are read from the source), its dependents
    ///   unblock, and its lease ends.
    /// - [`Claim::Wait`]: another task with that key is training.
    /// - [`Claim::Train`]: otherwise; this task becomes the one training the
    ///   key, and once it succeeds, the result others point at. Also for a
    ///   task that is not cacheable (submitted with `--no-cache`, or a
    ///   dependency whose result has no key): it trains and records nothing.
    ///
    /// Of two claims of one key at once, exactly one trains. Fenced.
    async fn claim_result(&self, lease: &LeaseRef, data: &str) -> Result<Claim>;

    /// Forgets the results `which` names (see [`sweep_spec::result_key`]):
    /// later tasks with their keys train again. Deletes no metric and no
    /// artifact, so tasks that already point at a result keep it. Answers
    /// how many results were forgotten; [`Error::NotFound`] for an unknown
    /// sweep.
    async fn forget_results(&self, which: Forget) -> Result<u64>;
}

/// Everything the coordinator keeps.
pub trait Store:
    SweepStore + WorkerStore + QueueStore + CheckpointStore + CacheStore + Results
{
}

impl<T> Store for T where
    T: SweepStore + WorkerStore + QueueStore + CheckpointStore + CacheStore + Results
{
}

/// Opens the store a URL names (`postgres://...` or `sqlite://...`, or a plain
/// file path for SQLite), creating the SQLite file if needed, and applies the
/// migrations. Calls that fail because the database is away or restarting
/// are tried again for a while (see [`retrying`]).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    match sqlite_file(url)? {
        None => Ok(Arc::new(Retrying(postgres::connect(url).await?))),
        Some(_) => Ok(Arc::new(Retrying(sqlite::open(url).await?))),
    }
}

/// Brings the database `url` names to this binary's schema, as a
/// coordinator does when it starts (for operators who migrate before a
/// rolling upgrade); returns the schema version it is at.
pub async fn migrate(url: &str) -> Result<i64> {
    let latest = match sqlite_file(url)? {
        None => migrations::latest(migrations::POSTGRES),
        Some(_) => migrations::latest(migrations::SQLITE),
    };
    connect(url).await?;
    Ok(latest)
}

/// The file a SQLite URL names; none for PostgreSQL.
fn sqlite_file(url: &str) -> Result<Option<&str>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(None)
    } else if url.contains("://") && !url.starts_with("sqlite:") {
        Err(Error::InvalidRequest(format!(
            "database url {url:?}: expected postgres://... or sqlite://PATH"
        )))
    } else {
        Ok(Some(sqlite::path(url)?))
    }
}

/// The database URL without its password, for logs and errors.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redacted("postgres://sweep:hunter2@db:5432/sweep"),
            "postgres://sweep:***@db:5432/sweep"
        );
        assert_eq!(
            redacted("postgres://sweep@db/sweep"),
            "postgres://sweep@db/sweep"
        );
        assert_eq!(redacted("sqlite://sweeps.db"), "sqlite://sweeps.db");
    }
}
