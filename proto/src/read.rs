//! [`Results`]: what sweeps produced, read-only. The one read interface:
//! the store implements it over a database, [`crate::client::SweepsClient`]
//! over a coordinator's read RPCs, and reports, figures, exports and the
//! dashboard read only through it, so they show the same values from
//! either. A new read is one method here, one query in the store, one RPC.
//!
//! Also the shapes only reads take or give: [`TaskOrder`] and
//! [`TaskPage`], [`Attempt`] and its [`Outcome`].

use async_trait::async_trait;
use sweep_spec::text_enum;

use crate::error::WireError;
use crate::ids::{SweepId, SweepRef, TaskId, WorkerId};
use crate::results::{Artifact, ArtifactInfo, CacheStats, Metric, SettingStats};
use crate::state::{TaskCounts, TaskState, from_wire};
use crate::sweep::{Sweep, Task};
use crate::v1;
use crate::worker::WorkerInfo;

pub type Result<T, E = WireError> = std::result::Result<T, E>;

/// A source of stored results, read-only. Errors are the wire's, so a
/// caller tells a missing task from an unavailable database the same way
/// whichever source it reads.
#[async_trait]
pub trait Results: Send + Sync + 'static {
    /// All registered workers with the tasks they hold, newest first.
    async fn workers(&self) -> Result<Vec<WorkerInfo>>;

    /// The newest sweeps first, at most `limit`.
    async fn sweeps(&self, limit: u32) -> Result<Vec<Sweep>>;

    /// The sweep with its task counts, by id or by name (the newest of that
    /// name); not found otherwise.
    async fn sweep(&self, which: &SweepRef) -> Result<Sweep>;

    /// The sweep's tasks in grid order, only those in `states` unless it is
    /// empty.
    async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> Result<Vec<Task>>;

    /// Like [`Results::tasks`], a page at a time and in `order`: at most
    /// `limit` tasks from `from` on (0 for the first page; the previous
    /// page's `next` after that). The filter and the order run in the
    /// database; in grid order a page costs the same wherever it is in the
    /// sweep, in the others it sorts the sweep's matching tasks.
    async fn task_page(
        &self,
        sweep: SweepId,
        states: &[TaskState],
        order: TaskOrder,
        from: u64,
        limit: u32,
    ) -> Result<TaskPage>;

    /// One task.
    async fn task(&self, id: TaskId) -> Result<Task>;

    /// The task's attempts, oldest first: every one that ended without
    /// success as it was when it ended, then the latest if it is running or
    /// succeeded. None for a task never leased.
    async fn attempts(&self, task: TaskId) -> Result<Vec<Attempt>>;

    /// The metric points of the task's latest attempt (of its source's, for
    /// a task whose results came from the cache), by name and step. Not
    /// found for an unknown task (never an empty list).
    async fn metrics(&self, task: TaskId) -> Result<Vec<Metric>>;

    /// The named artifact of the task's latest attempt (of its source's, for
    /// a task whose results came from the cache).
    async fn artifact(&self, task: TaskId, name: &str) -> Result<Artifact>;

    /// What artifacts the task's latest attempt (its source's, for a task
    /// whose results came from the cache) stored, by name, without their
    /// bytes.
    async fn artifacts(&self, task: TaskId) -> Result<Vec<ArtifactInfo>>;

    /// What the result cache holds.
    async fn cache_stats(&self) -> Result<CacheStats>;

    /// How many tasks of all sweeps are in each state.
    async fn task_counts(&self) -> Result<TaskCounts>;

    /// The sweep's swept settings in grid order, each with its task counts
    /// and the mean ± std over seeds of every number its succeeded tasks'
    /// summaries hold, from the numbers kept at completion (never the raw
    /// metrics).
    async fn aggregate(&self, sweep: SweepId) -> Result<Vec<SettingStats>>;
}

text_enum!(
    /// The order of a page of a sweep's tasks; ties keep grid order.
    #[derive(Default)]
    TaskOrder {
        /// As the sweep's grid lists them.
        #[default]
        Grid = "grid",
        /// Failed first, then running, queued, blocked, cancelled,
        /// succeeded: what needs a look first.
        State = "state",
        /// Most attempts first.
        Attempts = "attempts",
        /// The longest latest attempt first (a running one counts until
        /// now).
        Duration = "duration",
    }
);

impl TaskOrder {
    /// The order a wire value names; an unknown value is a bad request.
    pub fn from_wire(raw: i32) -> Result<Self> {
        from_wire(
            Self::ALL,
            raw,
            |o| v1::TaskOrder::from(o) as i32,
            "task order",
        )
    }
}

impl From<TaskOrder> for v1::TaskOrder {
    fn from(order: TaskOrder) -> Self {
        match order {
            TaskOrder::Grid => Self::Grid,
            TaskOrder::State => Self::State,
            TaskOrder::Attempts => Self::Attempts,
            TaskOrder::Duration => Self::Duration,
        }
    }
}

/// One page of a sweep's tasks (see [`Results::task_page`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// Where the next page starts, when more tasks may follow.
    pub next: Option<u64>,
}

/// One attempt at a task: the worker that made it, when, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Counts every lease of the task, hand-backs included, from 1.
    pub number: u32,
    pub worker: Option<WorkerId>,
    pub started_at: Option<i64>,
    /// None while it runs.
    pub ended_at: Option<i64>,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// The checkpoint step it started from; 0 for a fresh start.
    pub resumed_from: u64,
}

text_enum!(
    /// How an attempt ended, or that it has not.
    Outcome {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Its worker stopped heartbeating and the lease ran out.
        Expired = "expired",
        /// Its worker gave it back unfinished (shutting down).
        HandedBack = "handed back",
        Cancelled = "cancelled",
    }
);

impl From<Outcome> for v1::AttemptOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Running => Self::Running,
            Outcome::Succeeded => Self::Succeeded,
            Outcome::Failed => Self::Failed,
            Outcome::Expired => Self::Expired,
            Outcome::HandedBack => Self::HandedBack,
            Outcome::Cancelled => Self::Cancelled,
        }
    }
}

impl From<&Attempt> for v1::AttemptInfo {
    fn from(attempt: &Attempt) -> Self {
        Self {
            number: attempt.number,
            worker_id: attempt.worker.map(|w| w.to_wire()),
            started_at: attempt.started_at,
            ended_at: attempt.ended_at,
            outcome: v1::AttemptOutcome::from(attempt.outcome) as i32,
            error: attempt.error.clone(),
            resumed_from: attempt.resumed_from,
        }
    }
}

impl TryFrom<v1::AttemptInfo> for Attempt {
    type Error = WireError;

    fn try_from(wire: v1::AttemptInfo) -> Result<Self> {
        let outcome = from_wire(
            Outcome::ALL,
            wire.outcome,
            |o| v1::AttemptOutcome::from(o) as i32,
            "attempt outcome",
        )?;
        Ok(Self {
            number: wire.number,
            worker: wire.worker_id.map(WorkerId::from_wire).transpose()?,
            started_at: wire.started_at,
            ended_at: wire.ended_at,
            outcome,
            error: wire.error,
            resumed_from: wire.resumed_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_attempts_cross_the_wire_unchanged() {
        for order in TaskOrder::ALL {
            let wire = v1::TaskOrder::from(*order) as i32;
            assert_eq!(TaskOrder::from_wire(wire).unwrap(), *order);
        }
        assert!(TaskOrder::from_wire(99).is_err());
        for outcome in Outcome::ALL {
            let attempt = Attempt {
                number: 3,
                worker: Some(WorkerId(7)),
                started_at: Some(1_000),
                ended_at: (*outcome != Outcome::Running).then_some(2_000),
                outcome: *outcome,
                error: Some("lease expired".into()),
                resumed_from: 40,
            };
            let back = Attempt::try_from(v1::AttemptInfo::from(&attempt)).unwrap();
            assert_eq!(back, attempt);
        }
        let unknown = v1::AttemptInfo {
            outcome: 0,
            ..v1::AttemptInfo::default()
        };
        assert!(Attempt::try_from(unknown).is_err());
    }
}
