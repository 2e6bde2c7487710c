//! The result cache from the worker's side: before training a cacheable
//! task, hash the data it would read and claim its result key. The
//! coordinator completes the key and says whether to train, whether the
//! task already succeeded from another task's results, or whether to wait
//! while another task trains the same key (see `sweep_spec::result_key`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sweep_proto::client::{WorkerClient, retry};
use sweep_proto::{Claim, ErrorKind, Lease};

use crate::data;
use crate::experiments::TaskError;

/// How long one claim waits for the task training the same key before the
/// worker asks again (and looks whether it was told to stop).
const WAIT: Duration = Duration::from_secs(5);

/// Whether the task still needs training once its key is claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    Train,
    /// It succeeded from the cache, or its lease is lost: nothing to do.
    Over,
}

/// Claims the lease's result key, with the digest of the data the task
/// would read in `data_dir`, waiting while another task trains it. A
/// coordinator that cannot be asked leaves the task to train (its result
/// then goes unrecorded in the cache, which costs time, never correctness).
pub async fn claim(
    client: &WorkerClient,
    data_dir: Option<&Path>,
    lease: &Lease,
    stop: &AtomicBool,
) -> Result<Claimed, TaskError> {
    let digest = data_digest(data_dir, lease).await?;
    let (reference, task) = (lease.to_ref(), lease.task_id);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(TaskError::Stopped);
        }
        match retry(|| client.claim(&reference, &digest, WAIT)).await {
            Ok(Claim::Train) => return Ok(Claimed::Train),
            Ok(Claim::Cached { source }) => {
                tracing::info!(%task, %source, "task succeeded from the result cache");
                return Ok(Claimed::Over);
            }
            Ok(Claim::Wait { training }) => {
                tracing::debug!(%task, %training, "waiting for the task training the same result");
            }
            Err(err)
                if matches!(
                    err.kind,
                    ErrorKind::FailedPrecondition | ErrorKind::NotFound
                ) =>
            {
                tracing::warn!(%task, error = %err, "lease lost while claiming the task's result");
                return Ok(Claimed::Over);
            }
            Err(err) => {
                tracing::warn!(%task, error = %err, "cannot claim the task's result; training it");
                return Ok(Claimed::Train);
            }
        }
    }
}

/// The digest of the task's dataset; empty for kinds whose data the
/// parameters generate.
async fn data_digest(data_dir: Option<&Path>, lease: &Lease) -> Result<String, TaskError> {
    let Some(name) = lease.params.experiment.dataset().map(str::to_string) else {
        return Ok(String::new());
    };
    let data_dir = data_dir.map(PathBuf::from);
    tokio::task::spawn_blocking(move || data::digest(&name, data_dir.as_deref()))
        .await
        .map_err(|join| TaskError::Panicked(join.to_string()))?
        .map_err(TaskError::from)
}
