//! The gRPC services: [`CoordinatorService`] for workers and
//! [`SweepsService`] for clients (its read RPCs, what reports, figures and
//! exports read, in `reads`), and the token check in front of them. The
//! wire messages become `sweep_proto`'s types (and back) through that crate's
//! conversions; errors become `tonic::Status` in `crate::error`.

mod auth;
mod coordinator;
mod reads;
mod sweeps;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use sweep_proto::{Artifact, v1};
use tonic::Status;

pub use auth::{BearerAuth, same_token};
pub use coordinator::CoordinatorService;
pub use sweeps::SweepsService;

/// How often a waiting call looks at the store again even without a change
/// signal, in case a signal was missed (another coordinator's change while
/// the PostgreSQL listener was reconnecting).
const RECHECK: Duration = Duration::from_secs(2);

/// A server stream of messages made up front.
type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

type DownloadStream = Replies<v1::ArtifactDownload>;

/// An artifact as a download: its info, then its bytes in chunks.
fn download(artifact: &Artifact) -> DownloadStream {
    Box::pin(futures::stream::iter(
        artifact.to_wire().into_iter().map(Ok),
    ))
}
