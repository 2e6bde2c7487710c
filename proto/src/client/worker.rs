//! [`WorkerClient`]: the worker's side of the `Coordinator` service.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::{Response, Status};

use super::{Channel, Connection, Credentials, Target, fits};
use crate::MAX_MESSAGE_BYTES;
use crate::error::{ErrorKind, WireError};
use crate::ids::{TaskId, WorkerId};
use crate::lease::outcomes_from_wire;
use crate::lease::{
    Claim, Completion, LeaseCall, LeaseRef, LeaseStatus, Leased, MetricPoint, Outcomes,
};
use crate::results::{Artifact, CHECKPOINT, CHUNK};
use crate::v1::coordinator_client::CoordinatorClient;
use crate::v1::{self, artifact_upload};
use crate::worker::DeviceKind;
use crate::worker::{Registered, Registration};

type Client = CoordinatorClient<Channel>;

/// A worker's connection to its coordinator, or to the first of several
/// replicas that answers. It connects on first use and again after a
/// coordinator comes back, so making one never fails for a coordinator that
/// is down; a call that finds its replica away moves the client to the next
/// one, so the retry goes there (replicas share one database, so any of them
/// serves any lease). Cloning it is cheap and shares the connections.
#[derive(Clone)]
pub struct WorkerClient {
    replicas: Arc<[Connection<Client>]>,
    current: Arc<AtomicUsize>,
}

impl WorkerClient {
    /// A client for the coordinator at `addresses` (one, or each replica's),
    /// presenting `credentials`.
    pub fn new(addresses: &[String], credentials: &Credentials) -> Result<Self, WireError> {
        if addresses.is_empty() {
            return Err(WireError::invalid("name at least one coordinator address"));
        }
        let replicas = addresses
            .iter()
            .map(|address| {
                let (target, endpoint, bearer) =
                    Target::new(address, credentials, "--token or SWEEP_WORKER_TOKEN")?;
                let inner = CoordinatorClient::with_interceptor(endpoint.connect_lazy(), bearer)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES);
                Ok(Connection { inner, target })
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        Ok(Self {
            replicas: replicas.into(),
            current: Arc::default(),
        })
    }

    /// Makes one call on the current replica; when it is away, the next call
    /// goes to the next replica.
    async fn call<Req, Res, Fut>(
        &self,
        request: Req,
        method: impl FnOnce(Client, Req) -> Fut,
    ) -> Result<Res, WireError>
    where
        Fut: Future<Output = Result<Response<Res>, Status>>,
    {
        let index = self.current.load(Ordering::Relaxed);
        let result = self.replicas[index].call(request, method).await;
        if matches!(&result, Err(err) if err.kind == ErrorKind::Unavailable) {
            let next = (index + 1) % self.replicas.len();
            // Only the first of several calls that failed together moves it.
            let _ =
                self.current
                    .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
        }
        result
    }

    pub async fn register(&self, worker: &Registration) -> Result<Registered, WireError> {
        let request = v1::RegisterRequest::from(worker);
        let response = self
            .call(request, |mut c, r| async move { c.register(r).await })
            .await?;
        Registered::try_from(response)
    }

    /// Completes `completions` (each fenced and answered on its own, in
    /// order) and then leases up to `free_slots` tasks that fit
    /// `device_kinds`, in one call and one transaction. Without
    /// completions the lease is a long poll of up to `wait`; with them it
    /// answers at once. `free_slots` 0 only completes. A `call` made
    /// `again` gets the leases its lost try made first.
    pub async fn lease(
        &self,
        call: LeaseCall,
        completions: &[Completion],
        free_slots: u32,
        wait: Duration,
        device_kinds: &[DeviceKind],
    ) -> Result<(Outcomes, Vec<Leased>), WireError> {
        let request = v1::LeaseRequest {
            worker_id: call.worker.to_wire(),
            free_slots,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            device_kinds: device_kinds
                .iter()
                .map(|&kind| v1::DeviceKind::from(kind) as i32)
                .collect(),
            completions: completions.iter().map(Into::into).collect(),
            call: call.number,
            again: call.again,
        };
        let request = fits("a lease call with its completions", request)?;
        let response = self
            .call(request, |mut c, r| async move { c.lease(r).await })
            .await?;
        let outcomes = outcomes_from_wire(response.outcomes, completions.len())?;
        let leases = response.leases.into_iter().map(Leased::from_wire);
        Ok((outcomes, leases.collect::<Result<_, _>>()?))
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
        let response = self
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
        let response = self
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
        let header = v1::ArtifactHeader {
            lease: Some(lease.into()),
            name: name.to_string(),
            encoding: encoding.to_string(),
            checkpoint: None,
        };
        self.upload(header, data).await
    }

    /// Stores `data` as the task's checkpoint, taken after `step` steps
    /// when the attempt had sent each metric up to its `watermarks` step.
    pub async fn put_checkpoint(
        &self,
        lease: &LeaseRef,
        step: u64,
        watermarks: &BTreeMap<String, i64>,
        data: &[u8],
    ) -> Result<(), WireError> {
        let header = v1::ArtifactHeader {
            lease: Some(lease.into()),
            name: CHECKPOINT.to_string(),
            encoding: CHECKPOINT.to_string(),
            checkpoint: Some(v1::CheckpointHeader {
                step,
                watermarks: watermarks.clone().into_iter().collect(),
                size: data.len() as u64,
            }),
        };
        self.upload(header, data).await
    }

    /// The task's checkpoint, for the attempt holding `lease`.
    pub async fn checkpoint(&self, lease: &LeaseRef) -> Result<Vec<u8>, WireError> {
        let request = v1::GetCheckpointRequest {
            lease: Some(lease.into()),
        };
        let index = self.current.load(Ordering::Relaxed);
        let mut parts = self
            .call(request, |mut c, r| async move { c.get_checkpoint(r).await })
            .await?;
        let explain = |status| self.replicas[index].target.explain(status);
        let artifact = Artifact::from_wire(&mut parts).await.map_err(explain)?;
        Ok(artifact.data)
    }

    /// Says the attempt holding `lease` resumed from the task's checkpoint
    /// taken at `step`.
    pub async fn resume(&self, lease: &LeaseRef, step: u64) -> Result<(), WireError> {
        let request = v1::ResumeRequest {
            lease: Some(lease.into()),
            outcome: Some(v1::resume_request::Outcome::Step(step)),
        };
        self.call(request, |mut c, r| async move { c.resume(r).await })
            .await?;
        Ok(())
    }

    /// Says the attempt holding `lease` could not use the task's checkpoint
    /// (`why`, one line) and trains from the start.
    pub async fn refuse_checkpoint(&self, lease: &LeaseRef, why: &str) -> Result<(), WireError> {
        let request = v1::ResumeRequest {
            lease: Some(lease.into()),
            outcome: Some(v1::resume_request::Outcome::Refused(why.to_string())),
        };
        self.call(request, |mut c, r| async move { c.resume(r).await })
            .await?;
        Ok(())
    }

    /// Claims the result key of the task `lease` names, completed with
    /// `data_digest` (the digest of the data it would read; empty when the
    /// parameters generate it). A claim that would answer wait waits up to
    /// `wait` for the task training the same key to end.
    pub async fn claim(
        &self,
        lease: &LeaseRef,
        data_digest: &str,
        wait: Duration,
    ) -> Result<Claim, WireError> {
        let request = v1::ClaimRequest {
            lease: Some(lease.into()),
            data_digest: data_digest.to_string(),
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let answer = self
            .call(request, |mut c, r| async move { c.claim(r).await })
            .await?;
        Claim::try_from(answer)
    }

    /// Uploads an artifact (or a checkpoint) in chunks after its header.
    async fn upload(&self, header: v1::ArtifactHeader, data: &[u8]) -> Result<(), WireError> {
        let header = v1::ArtifactUpload {
            part: Some(artifact_upload::Part::Header(header)),
        };
        let parts: Vec<v1::ArtifactUpload> = std::iter::once(header)
            .chain(data.chunks(CHUNK).map(|chunk| v1::ArtifactUpload {
                part: Some(artifact_upload::Part::Data(chunk.to_vec())),
            }))
            .collect();
        let stream = futures::stream::iter(parts);
        self.call(stream, |mut c, r| async move { c.put_artifact(r).await })
            .await?;
        Ok(())
    }

    /// The named artifact of a task's latest attempt, whole.
    pub async fn artifact(&self, task: TaskId, name: &str) -> Result<Vec<u8>, WireError> {
        let request = v1::GetArtifactRequest {
            task_id: task.to_wire(),
            name: name.to_string(),
        };
        let index = self.current.load(Ordering::Relaxed);
        let mut parts = self
            .call(request, |mut c, r| async move { c.get_artifact(r).await })
            .await?;
        let explain = |status| self.replicas[index].target.explain(status);
        let artifact = Artifact::from_wire(&mut parts).await.map_err(explain)?;
        Ok(artifact.data)
    }

    /// Ends the attempt in failure, storing `points` (its last metric
    /// points) first. A retryable error queues the task again while
    /// attempts remain.
    pub async fn fail(
        &self,
        lease: &LeaseRef,
        error: &str,
        retryable: bool,
        points: &[MetricPoint],
    ) -> Result<(), WireError> {
        if !points.is_empty() {
            self.send_metrics(lease, points).await?;
        }
        let request = v1::FailRequest {
            lease: Some(lease.into()),
            error: error.to_string(),
            retryable,
        };
        self.call(request, |mut c, r| async move { c.fail(r).await })
            .await?;
        Ok(())
    }

    /// Hands the task back unfinished (shutdown, cancel): the attempt does
    /// not count.
    pub async fn release(&self, lease: &LeaseRef, reason: &str) -> Result<(), WireError> {
        let request = v1::ReleaseRequest {
            lease: Some(lease.into()),
            reason: reason.to_string(),
        };
        self.call(request, |mut c, r| async move { c.release(r).await })
            .await?;
        Ok(())
    }

    /// Says the worker is stopping, after it handed back its tasks.
    pub async fn leave(&self, worker: WorkerId) -> Result<(), WireError> {
        let request = v1::LeaveRequest {
            worker_id: worker.to_wire(),
        };
        self.call(request, |mut c, r| async move { c.leave(r).await })
            .await?;
        Ok(())
    }
}
