//! The sweep wire protocol, shared by the coordinator, the worker and the cli.
//!
//! - [`v1`]: the tonic/prost code generated from `sweep/v1/*.proto` (the
//!   worker-facing `Coordinator` and the client-facing `Sweeps` services).
//! - [`ids`]: typed ids for sweeps, tasks and workers, checked at the wire.
//! - [`params`]: the normalized task parameters the planner writes and a
//!   worker reads (the JSON in `TaskLease.params_json`), with parameter counts.
//! - [`error`]: the error kinds that cross the gRPC hop, to and from
//!   `tonic::Status`.
//! - [`bearer`]: the client side of bearer-token auth.
//! - [`process`]: logging and the ctrl-c / SIGTERM signal, the same in
//!   every binary.

pub mod bearer;
pub mod error;
pub mod ids;
pub mod params;
pub mod process;

/// Generated protocol code, package `sweep.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("sweep.v1");
}

/// The encoded file descriptor set of `sweep.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sweep_descriptor");

pub use error::{ErrorKind, WireError};
pub use ids::{SweepId, TaskId, WorkerId};
