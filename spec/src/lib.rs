//! Sweep specs and what they plan into: the bottom of the workspace, shared
//! by the coordinator, the worker and the cli, with no networking and no
//! database.
//!
//! - [`spec`]: the sweep spec (TOML) as written, parsed strictly.
//! - [`planner`]: checks a spec and expands it into tasks ([`planner::plan`],
//!   [`planner::submission`]).
//! - [`params`]: the typed parameters of one task ([`TaskParams`]), the
//!   experiment kinds and what a task requires of a worker.
//! - [`shape`]: model architectures, their exact parameter counts and the
//!   order of their flat weights; [`weights`]: how those weights travel as
//!   artifacts.
//! - [`summary`]: a task's final numbers ([`Summary`]) and their names;
//!   [`metric`]: the names of what a task records while it trains.
//! - [`identity`]: what a task trains, in one canonical text ([`Identity`]),
//!   which every "same task" key derives from.
//! - [`result_key`]: what decides a task's result, as one key, so that a
//!   task another already trained need not train again.
//! - [`duration`]: durations as people write them (`"10m"`).
//! - [`error`]: [`SpecError`], which names the field and the value;
//!   [`text`]: what names and other text from outside may contain.
//! - [`text_enum!`]: enums with one name each in the database, on the wire
//!   and on screen.
//! - [`rng`]: the seeded generator behind a worker's weights, data order
//!   and shuffles, and a report's bootstrap, the same on every machine.

pub mod duration;
pub mod error;
pub mod identity;
pub mod metric;
pub mod params;
pub mod planner;
pub mod result_key;
pub mod rng;
pub mod shape;
pub mod spec;
pub mod summary;
pub mod text;
mod text_enum;
pub mod weights;

pub use error::SpecError;
pub use identity::Identity;
pub use params::{Experiment, ExperimentKind, Requirement, TaskParams};
pub use planner::{Plan, PlannedTask, Submission};
pub use shape::ModelShape;
pub use spec::SweepSpec;
pub use summary::Summary;
