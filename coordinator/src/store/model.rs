//! The values the store traits take and return that only the store knows;
//! the ones that also cross the wire live in `sweep_proto`.

use std::time::Duration;

pub use sweep_proto::{Artifact, ArtifactInfo, Metric, SettingStats, Stats};
use sweep_proto::{Registration, Task, TaskId, WorkerId, WorkerInfo};

/// A registered worker as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    pub id: WorkerId,
    pub registration: Registration,
    pub registered_at: i64,
    pub last_heartbeat_at: i64,
    /// How long since the last heartbeat, by the database's clock.
    pub silent_for: Duration,
    /// The tasks it holds a lease on.
    pub running: Vec<TaskId>,
}

impl Worker {
    /// The worker as listings show it: lost once it has been silent for
    /// longer than a lease lives.
    pub fn info(&self, lease_ttl: Duration) -> WorkerInfo {
        WorkerInfo {
            id: self.id,
            registration: self.registration.clone(),
            last_heartbeat_at: self.last_heartbeat_at,
            alive: self.silent_for <= lease_ttl,
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
