//! What `sweep report`, `sweep plot` and the dashboard show, computed once,
//! so that a terminal, a file and a web page never disagree.
//!
//! - [`Results`]: where the results come from (a coordinator's read RPCs, a
//!   database opened read-only, the coordinator's own store); every reader
//!   implements it and everything here reads only through it.
//! - [`table`]: the report's rows, one per swept setting, from the
//!   aggregates the store computes in SQL, as a [`Listing`].
//! - [`columns`]: task parameters as columns and labels.
//! - [`figures`]: the report's figures as data ([`figures::Figure`]), and
//!   [`figures::render`] draws them as SVG or PNG.

pub mod columns;
pub mod figures;
mod listing;
pub mod table;

use async_trait::async_trait;
use sweep_proto::{Artifact, Metric, SweepId, Task, TaskId, TaskState};

pub use listing::{Listing, text};

/// Why a report or a figure could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source could not answer (its own message, whole).
    #[error("{0}")]
    Read(String),
    #[error("task {task}: snapshot of epoch {epoch} is not whole f32 values")]
    Snapshot { task: TaskId, epoch: u64 },
    #[error("cannot draw {what}: {message}")]
    Draw { what: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A source of stored results, read-only.
#[async_trait]
pub trait Results: Send + Sync {
    /// The sweep's tasks in grid order, only those in `states` unless empty.
    async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> Result<Vec<Task>>;

    /// The metric points of the task's latest attempt.
    async fn metrics(&self, task: TaskId) -> Result<Vec<Metric>>;

    /// The named artifact of the task's latest attempt.
    async fn artifact(&self, task: TaskId, name: &str) -> Result<Artifact>;
}
