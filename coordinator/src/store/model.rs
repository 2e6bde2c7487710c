//! The values the [`super::Store`] takes and returns.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sweep_proto::{SweepId, TaskId, WorkerId};

use crate::planner::Plan;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The name stored in the database and shown to people.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where a task is in its life cycle.
    TaskState {
        Blocked = "blocked",
        Queued = "queued",
        Leased = "leased",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// A sweep's state, derived from its tasks' states (see [`SweepState::of`]).
    SweepState {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// What a task needs from a worker.
    Requirement {
        /// Any worker (CUDA workers run these too).
        Cpu = "cpu",
        /// Only a worker with a CUDA device.
        Cuda = "cuda",
    }
);

impl TaskState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl SweepState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The state of a sweep that is not cancelled, from its task counts.
    pub fn of(counts: &TaskCounts) -> Self {
        let unfinished = counts.blocked + counts.queued + counts.leased;
        if unfinished == 0 {
            if counts.failed > 0 {
                Self::Failed
            } else {
                Self::Succeeded
            }
        } else if counts.leased + counts.succeeded + counts.failed > 0 {
            Self::Running
        } else {
            Self::Pending
        }
    }
}

/// How many of a sweep's tasks are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub blocked: u64,
    pub queued: u64,
    pub leased: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl TaskCounts {
    pub fn add(&mut self, state: TaskState, n: u64) {
        let slot = match state {
            TaskState::Blocked => &mut self.blocked,
            TaskState::Queued => &mut self.queued,
            TaskState::Leased => &mut self.leased,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }

    pub fn total(&self) -> u64 {
        self.blocked + self.queued + self.leased + self.succeeded + self.failed + self.cancelled
    }
}

/// A sweep to store: the plan and the spec it came from.
#[derive(Clone, Debug)]
pub struct NewSweep {
    pub plan: Plan,
    /// The spec as submitted.
    pub spec_toml: String,
    /// The parsed spec, as JSON.
    pub spec_json: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub id: SweepId,
    pub name: String,
    pub experiment: String,
    pub state: SweepState,
    pub priority: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub counts: TaskCounts,
    pub spec_toml: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub sweep_id: SweepId,
    pub kind: String,
    pub state: TaskState,
    /// `sweep_proto::params::TaskParams` as JSON.
    pub params: String,
    pub depends_on: Vec<TaskId>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub lease_owner: Option<WorkerId>,
    pub error: Option<String>,
    pub summary: Option<String>,
}

/// One swept setting of a sweep (see [`sweep_proto::params::TaskParams::setting_key`]):
/// how its tasks (one per seed) fared, and the mean and spread of each number
/// in the summaries of those that succeeded.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingReport {
    /// The parameters of the setting's first task, as JSON; its other tasks
    /// differ only in their seeds.
    pub params: String,
    pub tasks: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// By figure name (`test_acc`, `minimal_ratio`, ...).
    pub figures: BTreeMap<String, FigureStats>,
}

/// A figure over a setting's succeeded tasks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FigureStats {
    /// Tasks that reported it.
    pub n: u64,
    pub mean: f64,
    /// The sample standard deviation (divisor n - 1); none for a single task.
    pub std: Option<f64>,
}

/// What a worker can run now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub cuda: bool,
}

/// A task handed to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub task_id: TaskId,
    pub sweep_id: SweepId,
    pub token: String,
    pub attempt: u32,
    pub kind: String,
    pub params: String,
    pub depends_on: Vec<TaskId>,
    pub expires_at: i64,
}

impl Lease {
    pub fn to_ref(&self) -> LeaseRef {
        LeaseRef {
            task_id: self.task_id,
            token: self.token.clone(),
        }
    }
}

/// Names one lease of one task; every report carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRef {
    pub task_id: TaskId,
    pub token: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The lease was extended.
    Keep,
    /// The sweep was cancelled: stop and release the task.
    Cancel,
    /// The lease is not this worker's any more: stop, report nothing.
    Lost,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus {
    pub task_id: TaskId,
    pub verdict: Verdict,
    /// The new expiry, for a kept or cancelled lease.
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// "cpu" or "cuda".
    pub kind: String,
    pub name: String,
    pub memory_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWorker {
    pub name: String,
    pub host: String,
    pub backend: String,
    pub devices: Vec<Device>,
    pub slots: u32,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    pub id: WorkerId,
    pub info: NewWorker,
    pub registered_at: i64,
    pub last_heartbeat_at: i64,
    /// How long since the last heartbeat, by the database's clock.
    pub silent_for: Duration,
    /// The tasks it holds a lease on.
    pub running: Vec<TaskId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    pub name: String,
    pub step: i64,
    pub epoch: Option<i64>,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub attempt: u32,
    pub point: MetricPoint,
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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CancelOutcome {
    /// Tasks cancelled at once.
    pub cancelled: u64,
    /// Leased tasks whose workers will be told.
    pub signalled: u64,
}

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
