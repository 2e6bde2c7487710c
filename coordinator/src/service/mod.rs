//! The gRPC services: [`CoordinatorService`] for workers and
//! [`SweepsService`] for clients, and the token check in front of them. The
//! wire messages become `sweep_proto`'s types (and back) through that crate's
//! conversions; errors become `tonic::Status` in `crate::error`.

mod auth;
mod coordinator;
mod sweeps;

use std::time::Duration;

pub use auth::BearerAuth;
pub use coordinator::CoordinatorService;
pub use sweeps::SweepsService;

/// How often a waiting call looks at the store again even without a change
/// signal, in case a signal was missed (another coordinator's change while
/// the PostgreSQL listener was reconnecting).
const RECHECK: Duration = Duration::from_secs(2);
