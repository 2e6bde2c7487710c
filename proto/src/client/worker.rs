//! [`WorkerClient`]: the worker's side of the `Coordinator` service.

use std::time::Duration;

use sweep_spec::Summary;

use super::{Channel, Connection, Target};
use crate::error::WireError;
use crate::ids::{TaskId, WorkerId};
use crate::lease::{Ending, LeaseRef, LeaseStatus, Leased, MetricPoint};
use crate::v1::coordinator_client::CoordinatorClient;
use crate::v1::{self, artifact_download, artifact_upload};
use crate::worker::{Registered, Registration};

/// Bytes per artifact chunk, well under gRPC's 4 MiB message limit.
const CHUNK: usize = 1 << 20;

/// A worker's connection to its coordinator. It connects on first use and
/// again after the coordinator comes back, so making one never fails for a
/// coordinator that is down. Cloning it is cheap and shares the connection.
#[derive(Clone)]
pub struct WorkerClient(Connection<CoordinatorClient<Channel>>);

impl WorkerClient {
    /// A client for the coordinator at `address`, presenting `token`.
    pub fn new(address: &str, token: Option<&str>) -> Result<Self, WireError> {
        let (target, endpoint, bearer) =
            Target::new(address, token, "--token or SWEEP_WORKER_TOKEN")?;
        let inner = CoordinatorClient::with_interceptor(endpoint.connect_lazy(), bearer)
            .max_decoding_message_size(64 << 20);
        Ok(Self(Connection { inner, target }))
    }

    pub async fn register(&self, worker: &Registration) -> Result<Registered, WireError> {
        let request = v1::RegisterRequest::from(worker);
        let response = (self.0)
            .call(request, |mut c, r| async move { c.register(r).await })
            .await?;
        Registered::try_from(response)
    }

    /// Long-polls for up to `free_slots` tasks that fit `device_kinds`.
    pub async fn lease(
        &self,
        worker: WorkerId,
        free_slots: u32,
        wait: Duration,
        device_kinds: &[&str],
    ) -> Result<Vec<Leased>, WireError> {
        let request = v1::LeaseRequest {
            worker_id: worker.to_wire(),
            free_slots,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            device_kinds: device_kinds.iter().map(|k| k.to_string()).collect(),
        };
        let response = (self.0)
            .call(request, |mut c, r| async move { c.lease(r).await })
            .await?;
        response.leases.into_iter().map(Leased::from_wire).collect()
    }

    /// Extends the leases named; the answer says per task whether to go on.
    pub async fn heartbeat(
        &self,
        worker: WorkerId,
        leases: &[LeaseRef],
    ) -> Result<Vec<LeaseStatus>, WireError> {
        let request = v1::HeartbeatRequest {
            worker_id: worker.to_wire(),
            leases: leases.iter().map(Into::into).collect(),
        };
        let response = (self.0)
            .call(request, |mut c, r| async move { c.heartbeat(r).await })
            .await?;
        response
            .leases
            .into_iter()
            .map(LeaseStatus::try_from)
            .collect()
    }

    /// Sends one batch of points; returns how many were new to the store.
    pub async fn send_metrics(
        &self,
        lease: &LeaseRef,
        points: &[MetricPoint],
    ) -> Result<u64, WireError> {
        let batch = v1::MetricBatch {
            lease: Some(lease.into()),
            points: points.iter().cloned().map(Into::into).collect(),
        };
        let stream = futures::stream::iter([batch]);
        let response = (self.0)
            .call(stream, |mut c, r| async move { c.report_metrics(r).await })
            .await?;
        Ok(response.stored)
    }

    /// Uploads an artifact in chunks, replacing one of the same name.
    pub async fn put_artifact(
        &self,
        lease: &LeaseRef,
        name: &str,
        encoding: &str,
        data: &[u8],
    ) -> Result<(), WireError> {
        let header = v1::ArtifactUpload {
            part: Some(artifact_upload::Part::Header(v1::ArtifactHeader {
                lease: Some(lease.into()),
                name: name.to_string(),
                encoding: encoding.to_string(),
            })),
        };
        let parts: Vec<v1::ArtifactUpload> = std::iter::once(header)
            .chain(data.chunks(CHUNK).map(|chunk| v1::ArtifactUpload {
                part: Some(artifact_upload::Part::Data(chunk.to_vec())),
            }))
            .collect();
        let stream = futures::stream::iter(parts);
        (self.0)
            .call(stream, |mut c, r| async move { c.put_artifact(r).await })
            .await?;
        Ok(())
    }

    /// The named artifact of a task's latest attempt, whole.
    pub async fn artifact(&self, task: TaskId, name: &str) -> Result<Vec<u8>, WireError> {
        let request = v1::GetArtifactRequest {
            task_id: task.to_wire(),
            name: name.to_string(),
        };
        let mut parts = (self.0)
            .call(request, |mut c, r| async move { c.get_artifact(r).await })
            .await?;
        let mut data = Vec::new();
        while let Some(part) = parts
            .message()
            .await
            .map_err(|s| self.0.target.explain(s))?
        {
            if let Some(artifact_download::Part::Data(chunk)) = part.part {
                data.extend(chunk);
            }
        }
        Ok(data)
    }

    /// Ends the attempt the way `ending` says, in one call.
    pub async fn end(&self, lease: &LeaseRef, ending: &Ending) -> Result<(), WireError> {
        let lease = Some(v1::LeaseRef::from(lease));
        match ending {
            Ending::Complete(summary) => {
                let request = v1::CompleteRequest {
                    lease,
                    summary_json: Summary::to_json(summary),
                };
                (self.0)
                    .call(request, |mut c, r| async move { c.complete(r).await })
                    .await?;
            }
            Ending::Fail { error, retryable } => {
                let request = v1::FailRequest {
                    lease,
                    error: error.clone(),
                    retryable: *retryable,
                };
                (self.0)
                    .call(request, |mut c, r| async move { c.fail(r).await })
                    .await?;
            }
            Ending::Release { reason } => {
                let request = v1::ReleaseRequest {
                    lease,
                    reason: reason.clone(),
                };
                (self.0)
                    .call(request, |mut c, r| async move { c.release(r).await })
                    .await?;
            }
        }
        Ok(())
    }
}
