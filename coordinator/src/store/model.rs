//! The values the store traits take and return that only the store knows;
//! the ones that also cross the wire live in `sweep_proto`.

use std::collections::BTreeMap;
use std::time::Duration;

use sweep_proto::{Registration, Task, TaskId, WorkerId};
use sweep_spec::TaskParams;

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

/// What a worker can run now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub cuda: bool,
}

/// A stored metric point and the attempt that measured it.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub attempt: u32,
    pub point: sweep_proto::MetricPoint,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewArtifact {
    pub name: String,
    pub encoding: String,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub task_id: TaskId,
    pub attempt: u32,
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

/// One swept setting of a sweep (see [`TaskParams::setting_key`]): how its
/// tasks (one per seed) fared, and the mean and spread of each number in the
/// summaries of those that succeeded.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingStats {
    /// The parameters of the setting's first task; its other tasks differ
    /// only in their seeds.
    pub params: TaskParams,
    pub tasks: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// By summary name (`test_acc`, `minimal_ratio`, ...).
    pub summary: BTreeMap<String, Stats>,
}

/// One summary number over a setting's succeeded tasks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Tasks that reported it.
    pub n: u64,
    pub mean: f64,
    /// The sample standard deviation (divisor n - 1); none for a single task.
    pub std: Option<f64>,
}
