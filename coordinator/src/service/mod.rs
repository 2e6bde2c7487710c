//! The gRPC services: [`CoordinatorService`] for workers and
//! [`SweepsService`] for clients (its read RPCs, what reports, figures and
//! exports read, in `reads`), and the token check in front of them. The
//! wire messages become `sweep_proto`'s types (and back) through that crate's
//! conversions; errors become `tonic::Status` in `crate::error`. Calls that
//! wait for the store to change wait through `poll`.

mod auth;
mod coordinator;
mod poll;
mod reads;
mod sweeps;

use std::pin::Pin;

use futures::Stream;
use sweep_proto::{Artifact, v1};
use tonic::Status;

pub use auth::{BearerAuth, same_token};
pub use coordinator::CoordinatorService;
pub use sweeps::SweepsService;

/// A server stream of messages made up front.
type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

type DownloadStream = Replies<v1::ArtifactDownload>;

/// An artifact as a download: its info, then its bytes in chunks.
fn download(artifact: &Artifact) -> DownloadStream {
    Box::pin(futures::stream::iter(
        artifact.to_wire().into_iter().map(Ok),
    ))
}
