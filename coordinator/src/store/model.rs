//! The values the store traits take and return that only the store knows;
//! the ones that also cross the wire live in `sweep_proto`.

use std::collections::BTreeMap;
use std::time::Duration;

pub use sweep_proto::{Artifact, ArtifactInfo, Metric, SettingStats, Stats};
use sweep_proto::{Registration, Task, TaskId, WorkerId, WorkerInfo, WorkerStatus};
use sweep_spec::text_enum;

/// A registered worker as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    pub id: WorkerId,
    pub registration: Registration,
    pub registered_at: i64,
    pub last_heartbeat_at: i64,
    /// When it said it was stopping.
    pub stopped_at: Option<i64>,
    /// How long since the last heartbeat, by the database's clock.
    pub silent_for: Duration,
    /// The tasks it holds a lease on.
    pub running: Vec<TaskId>,
}

impl Worker {
    /// Stopped once it said so; otherwise lost once it has been silent for
    /// longer than a lease lives.
    pub fn status(&self, lease_ttl: Duration) -> WorkerStatus {
        if self.stopped_at.is_some() {
            WorkerStatus::Stopped
        } else if self.silent_for <= lease_ttl {
            WorkerStatus::Live
        } else {
            WorkerStatus::Lost
        }
    }

    /// The worker as listings show it.
    pub fn info(&self, lease_ttl: Duration) -> WorkerInfo {
        WorkerInfo {
            id: self.id,
            registration: self.registration.clone(),
            last_heartbeat_at: self.last_heartbeat_at,
            status: self.status(lease_ttl),
            running: self.running.clone(),
        }
    }
}

/// What a worker can run now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub cuda: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewArtifact {
    pub name: String,
    pub encoding: String,
    pub data: Vec<u8>,
}

/// A checkpoint as a worker stores it (see
/// [`super::CheckpointStore::put_checkpoint`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NewCheckpoint {
    /// The optimizer steps taken when it was taken.
    pub step: u64,
    /// For each metric, the last step its attempt had sent by then: the
    /// points that an attempt resuming from it keeps.
    pub watermarks: BTreeMap<String, i64>,
    pub data: Vec<u8>,
}

/// A task's checkpoint as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCheckpoint {
    /// The attempt that took it.
    pub attempt: u32,
    pub step: u64,
    pub data: Vec<u8>,
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

/// One page of a sweep's tasks (see [`super::ResultStore::task_page`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// Where the next page starts, when more tasks may follow.
    pub next: Option<u64>,
}

/// What one round of the reaper did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReapOutcome {
    pub requeued: Vec<TaskId>,
    pub failed: Vec<TaskId>,
    pub cancelled: Vec<TaskId>,
}

impl ReapOutcome {
    pub fn is_empty(&self) -> bool {
        self.requeued.is_empty() && self.failed.is_empty() && self.cancelled.is_empty()
    }
}
