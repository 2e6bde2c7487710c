//! What `sweep report`, `sweep plot` and the dashboard show, computed once,
//! so that a terminal, a file and a web page never disagree.
//!
//! Everything here reads through [`sweep_proto::Results`], whichever
//! source implements it (a coordinator's read RPCs, a database opened
//! read-only, the coordinator's own store).
//!
//! - [`table`]: the report's rows, one per swept setting, from the
//!   aggregates the store computes in SQL, as a [`Listing`].
//! - [`compare`]: which of two settings that differ on one axis is better,
//!   by Welch's t and Mann-Whitney's U, Holm-corrected, with a verdict.
//! - [`stats`]: what a setting's seeds say about its mean (standard error,
//!   Student's t interval) and the distributions that needs.
//! - [`columns`]: task parameters as columns and labels.
//! - [`figures`]: the report's figures as data ([`figures::Figure`]), and
//!   [`figures::render`] draws them as SVG or PNG.

pub mod columns;
pub mod compare;
pub mod figures;
mod listing;
pub mod stats;
pub mod table;

use sweep_proto::{TaskId, WireError};

pub use listing::{Listing, text};

/// Why a report or a figure could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source could not answer.
    #[error(transparent)]
    Read(#[from] WireError),
    #[error("task {task}: snapshot of epoch {epoch} is not whole f32 values")]
    Snapshot { task: TaskId, epoch: u64 },
    /// A question the results cannot answer, named by the flag that asked.
    #[error("{field}: {message}")]
    Input {
        field: &'static str,
        message: String,
    },
    #[error("cannot draw {what}: {message}")]
    Draw { what: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
