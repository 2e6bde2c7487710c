//! The values the store traits take and return that only the store knows;
//! the ones that also cross the wire live in `sweep_proto`.

use std::collections::BTreeMap;

use sweep_proto::TaskId;
pub use sweep_proto::{
    Artifact, ArtifactInfo, Attempt, Metric, Outcome, SettingStats, Stats, TaskOrder, TaskPage,
};

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
