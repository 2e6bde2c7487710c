//! The sweep wire protocol, shared by the coordinator, the worker and the cli.
//!
//! - [`v1`]: the tonic/prost code generated from `sweep/v1/*.proto` (the
//!   worker-facing `Coordinator` and the client-facing `Sweeps` services).
//! - Hand-written types over the generated ones, each with its one
//!   conversion to and from the wire: [`state`] (task and sweep states,
//!   task counts), [`sweep`] (a sweep and its tasks), [`lease`] (a lease and
//!   what a worker reports under it), [`worker`] (registration and listing),
//!   [`results`] (what reports, figures and exports read).
//! - [`read`]: [`Results`], the one read interface, which the store and
//!   the coordinator's client both implement.
//! - [`ids`]: typed ids for sweeps, tasks and workers, checked at the wire;
//!   [`SweepRef`] names a sweep by id or by name.
//! - [`error`]: the error kinds that cross the gRPC hop, to and from
//!   `tonic::Status`; [`text`]: checks of the text that arrives.
//! - [`client`]: typed clients for workers and for the cli, with retries
//!   decided by the error's kind.
//! - [`codec`]: prost's codec, with INVALID_ARGUMENT for a message that
//!   does not decode.
//! - [`bearer`]: the client side of bearer-token auth.
//! - [`clock`]: times as the protocol carries them (ms since the epoch,
//!   UTC): now, and dates both ways.

pub mod bearer;
pub mod client;
pub mod clock;
pub mod codec;
pub mod error;
pub mod ids;
pub mod lease;
pub mod read;
pub mod results;
pub mod state;
pub mod sweep;
pub mod text;
pub mod worker;

/// Generated protocol code, package `sweep.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("sweep.v1");
}

/// The largest message either side sends or accepts, set on every server
/// and client alike: far above any the protocol makes (an artifact chunk is
/// 1 MiB, a page of tasks about 0.5 MB), far below what would hurt.
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// The encoded file descriptor set of `sweep.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sweep_descriptor");

pub use error::{ErrorKind, WireError};
pub use ids::{SweepId, SweepRef, TaskId, WorkerId};
pub use lease::{
    Claim, Completion, Lease, LeaseCall, LeaseRef, LeaseStatus, Leased, MetricPoint, Outcomes,
    Verdict,
};
pub use read::{Attempt, Outcome, Results, TaskOrder, TaskPage};
pub use results::{
    Artifact, ArtifactInfo, CHECKPOINT, CacheStats, Forget, Metric, SettingStats, Stats,
};
pub use state::{SweepState, TaskCounts, TaskState};
pub use sweep::{CancelOutcome, RoundOutcome, SeedRound, Sweep, Task};
pub use worker::{Backend, Device, DeviceKind, Registered, Registration, WorkerInfo, WorkerStatus};
