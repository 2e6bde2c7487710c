//! The worker-facing `Coordinator` service.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sweep_proto::lease::outcome_to_wire;
use sweep_proto::v1::coordinator_server::Coordinator;
use sweep_proto::v1::{self, artifact_upload};
use sweep_proto::{
    Artifact, CHECKPOINT, Registration, TaskId, TaskState, WireError, WorkerId, text,
};
use sweep_proto::{
    Claim, Completion, DeviceKind, Lease, LeaseCall, LeaseRef, MetricPoint, Registered,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use super::DownloadStream;
use super::poll::LongPoll;
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::{Capabilities, NewArtifact, NewCheckpoint, Store};

/// The most tasks one lease call hands out.
const MAX_SLOTS: u32 = 256;

pub struct CoordinatorService {
    store: Arc<dyn Store>,
    config: Config,
    /// Turns true when the server shuts down, to end long polls at once.
    stopping: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

impl CoordinatorService {
    pub fn new(
        store: Arc<dyn Store>,
        config: Config,
        stopping: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            config,
            stopping,
            metrics,
        }
    }

    /// The answer to each completion of `batch`, in order, given what the
    /// store said of those that were well-formed; counts and logs those
    /// that succeeded.
    fn outcomes(
        &self,
        batch: Batch,
        stored: Vec<Result<(), Error>>,
        alone: bool,
    ) -> Vec<v1::CompletionOutcome> {
        let mut stored = stored.into_iter();
        batch
            .entries
            .into_iter()
            .map(|(task_id, malformed)| {
                let outcome = match malformed {
                    Some(err) => Err(err),
                    None => match stored.next() {
                        Some(Ok(())) => {
                            self.metrics.completed(alone);
                            tracing::info!(task = task_id, "task succeeded");
                            Ok(())
                        }
                        Some(Err(err)) => Err(err.into()),
                        None => {
                            Err(Error::Corrupt("a completion without an outcome".into()).into())
                        }
                    },
                };
                outcome_to_wire(task_id, &outcome)
            })
            .collect()
    }

    /// Claims tasks for the worker, waiting until some fit, the wait is over
    /// or the server stops.
    async fn lease_waiting(
        &self,
        mut call: LeaseCall,
        fit: Capabilities,
        slots: u32,
        wait: Duration,
    ) -> Result<Vec<Lease>, Error> {
        let mut poll = self.poll(wait);
        loop {
            poll.seen();
            let started = Instant::now();
            let leases = self
                .store
                .lease(call, &fit, slots, self.config.lease_ttl)
                .await?;
            // What a lost try left is back after the first look.
            call.again = false;
            self.metrics.observe_lease(started.elapsed());
            if !leases.is_empty() || slots == 0 || poll.over() {
                return Ok(leases);
            }
            poll.nap().await;
        }
    }

    /// Claims the lease's result key; while another task trains the same
    /// key, asks again each time tasks change, until the wait is over or
    /// the server stops.
    async fn claim_waiting(
        &self,
        lease: &LeaseRef,
        data: &str,
        wait: Duration,
    ) -> Result<Claim, Error> {
        let mut poll = self.poll(wait);
        loop {
            poll.seen();
            let claim = self.store.claim_result(lease, data).await?;
            if !matches!(claim, Claim::Wait { .. }) || poll.over() {
                return Ok(claim);
            }
            poll.nap().await;
        }
    }

    /// A wait of at most `wait` (and the server's most) for the store to
    /// change.
    fn poll(&self, wait: Duration) -> LongPoll {
        let deadline = Instant::now() + wait.min(self.config.max_lease_wait);
        LongPoll::new(self.store.changes(), self.stopping.clone(), Some(deadline))
    }
}

/// A data digest from a worker: hex, at most a SHA-512's length; empty for
/// data the parameters generate.
fn data_digest(digest: &str) -> Result<(), Error> {
    if digest.len() <= 128 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "data_digest {:?}: expected hex digits, at most 128",
            digest.chars().take(140).collect::<String>()
        )))
    }
}

fn state_to_wire(state: TaskState) -> i32 {
    v1::TaskState::from(state) as i32
}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        let worker = Registration::try_from(request.into_inner())?;
        let id = (self.store)
            .register_worker(&worker, self.config.lease_ttl)
            .await?;
        tracing::info!(worker = %id, name = %worker.name, host = %worker.host, "worker registered");
        let registered = Registered {
            worker_id: id,
            lease_ttl: self.config.lease_ttl,
            heartbeat_interval: self.config.lease_ttl / 3,
        };
        Ok(Response::new(registered.into()))
    }

    async fn lease(
        &self,
        request: Request<v1::LeaseRequest>,
    ) -> Result<Response<v1::LeaseResponse>, Status> {
        let req = request.into_inner();
        let worker = WorkerId::from_wire(req.worker_id)?;
        let call = LeaseCall {
            worker,
            number: req.call,
            again: req.again,
        };
        let kinds: Vec<DeviceKind> = (req.device_kinds.iter())
            .map(|&raw| DeviceKind::from_wire(raw))
            .collect::<Result<_, _>>()?;
        let fit = Capabilities {
            cuda: kinds.contains(&DeviceKind::Cuda),
        };
        let slots = req.free_slots.min(MAX_SLOTS);
        let (outcomes, leases) = if req.completions.is_empty() {
            let wait = Duration::from_millis(req.wait_ms);
            let leases = self.lease_waiting(call, fit, slots, wait).await?;
            (Vec::new(), leases)
        } else {
            // Answered at once, without the long poll: the worker waits for
            // its completions' outcomes.
            let batch = Batch::from_wire(req.completions);
            let started = Instant::now();
            let (stored, leases) = self
                .store
                .complete_and_lease(&batch.well_formed, call, &fit, slots, self.config.lease_ttl)
                .await?;
            self.metrics.observe_lease(started.elapsed());
            (self.outcomes(batch, stored, slots == 0), leases)
        };
        for lease in &leases {
            tracing::info!(worker = %worker, task = %lease.task_id, attempt = lease.attempt, "task leased");
        }
        Ok(Response::new(v1::LeaseResponse {
            leases: leases.iter().map(Into::into).collect(),
            outcomes,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let req = request.into_inner();
        let worker = WorkerId::from_wire(req.worker_id)?;
        let leases = req
            .leases
            .into_iter()
            .map(|lease| LeaseRef::from_wire(Some(lease)))
            .collect::<Result<Vec<_>, _>>()?;
        let statuses = self
            .store
            .heartbeat(worker, &leases, self.config.lease_ttl)
            .await?;
        Ok(Response::new(v1::HeartbeatResponse {
            leases: statuses.iter().map(Into::into).collect(),
        }))
    }

    async fn report_metrics(
        &self,
        request: Request<Streaming<v1::MetricBatch>>,
    ) -> Result<Response<v1::ReportMetricsResponse>, Status> {
        let mut batches = request.into_inner();
        let (mut stored, mut received) = (0, 0);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let lease = LeaseRef::from_wire(batch.lease)?;
            let points = metric_points(batch.points)?;
            received += points.len() as u64;
            stored += self.store.record_metrics(&lease, &points).await?;
        }
        Ok(Response::new(v1::ReportMetricsResponse {
            stored,
            received,
        }))
    }

    async fn put_artifact(
        &self,
        request: Request<Streaming<v1::ArtifactUpload>>,
    ) -> Result<Response<v1::PutArtifactResponse>, Status> {
        let mut parts = request.into_inner();
        let header = match parts.next().await.transpose()?.and_then(|m| m.part) {
            Some(artifact_upload::Part::Header(header)) => header,
            _ => {
                return Err(WireError::invalid("an artifact upload starts with its header").into());
            }
        };
        let lease = LeaseRef::from_wire(header.lease)?;
        if header.name.is_empty() {
            return Err(WireError::invalid("an artifact needs a name").into());
        }
        text::name("artifact", &header.name)?;
        text::name("encoding", &header.encoding)?;
        let cap = self.config.max_artifact_bytes;
        let mut data = Vec::new();
        while let Some(part) = parts.next().await {
            match part?.part {
                Some(artifact_upload::Part::Data(chunk)) => {
                    if (data.len() + chunk.len()) as u64 > cap {
                        return Err(Error::ArtifactTooLarge {
                            name: header.name,
                            cap,
                        }
                        .into());
                    }
                    data.extend_from_slice(&chunk);
                }
                _ => return Err(WireError::invalid("an artifact has one header").into()),
            }
        }
        let size = data.len() as u64;
        match header.checkpoint {
            Some(checkpoint) => {
                if checkpoint.size != size {
                    return Err(WireError::invalid(format!(
                        "the checkpoint upload ended after {size} of its {} bytes",
                        checkpoint.size
                    ))
                    .into());
                }
                let checkpoint = NewCheckpoint {
                    step: checkpoint.step,
                    watermarks: checkpoint.watermarks.into_iter().collect(),
                    data,
                };
                let step = checkpoint.step;
                self.store.put_checkpoint(&lease, checkpoint).await?;
                tracing::info!(task = %lease.task_id, step, size, "checkpoint stored");
            }
            None => {
                let artifact = NewArtifact {
                    name: header.name,
                    encoding: header.encoding,
                    data,
                };
                self.store.put_artifact(&lease, artifact).await?;
            }
        }
        Ok(Response::new(v1::PutArtifactResponse { size }))
    }

    type GetCheckpointStream = DownloadStream;

    async fn get_checkpoint(
        &self,
        request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let lease = LeaseRef::from_wire(request.into_inner().lease)?;
        let checkpoint = self.store.checkpoint(&lease).await?;
        let artifact = Artifact {
            task_id: lease.task_id,
            attempt: checkpoint.attempt,
            name: CHECKPOINT.to_string(),
            encoding: CHECKPOINT.to_string(),
            data: checkpoint.data,
        };
        Ok(Response::new(super::download(&artifact)))
    }

    async fn resume(
        &self,
        request: Request<v1::ResumeRequest>,
    ) -> Result<Response<v1::ResumeResponse>, Status> {
        use v1::resume_request::Outcome;
        let req = request.into_inner();
        let lease = LeaseRef::from_wire(req.lease)?;
        match req.outcome {
            Some(Outcome::Step(step)) => {
                self.store.resume(&lease, step).await?;
                tracing::info!(task = %lease.task_id, step, "attempt resumed from a checkpoint");
            }
            Some(Outcome::Refused(why)) => {
                self.store.refuse_checkpoint(&lease, &why).await?;
                tracing::warn!(task = %lease.task_id, reason = %why, "attempt refused its task's checkpoint");
            }
            None => {
                let line = "the resume names neither the checkpoint's step nor a refusal";
                return Err(WireError::invalid(line).into());
            }
        }
        Ok(Response::new(v1::ResumeResponse {}))
    }

    async fn claim(
        &self,
        request: Request<v1::ClaimRequest>,
    ) -> Result<Response<v1::ClaimResponse>, Status> {
        let req = request.into_inner();
        let lease = LeaseRef::from_wire(req.lease)?;
        data_digest(&req.data_digest)?;
        let wait = Duration::from_millis(req.wait_ms);
        let claim = self.claim_waiting(&lease, &req.data_digest, wait).await?;
        if matches!(claim, Claim::Cached { .. }) {
            // The attempt ended here, succeeded, with no completion to come.
            self.metrics.ended(TaskState::Succeeded);
        }
        tracing::info!(task = %lease.task_id, ?claim, "result key claimed");
        Ok(Response::new(claim.into()))
    }

    type GetArtifactStream = DownloadStream;

    async fn get_artifact(
        &self,
        request: Request<v1::GetArtifactRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let req = request.into_inner();
        let task = TaskId::from_wire(req.task_id)?;
        Ok(Response::new(
            super::reads::artifact(&self.store, task, &req.name).await?,
        ))
    }

    async fn fail(
        &self,
        request: Request<v1::FailRequest>,
    ) -> Result<Response<v1::FailResponse>, Status> {
        let req = request.into_inner();
        let lease = LeaseRef::from_wire(req.lease)?;
        let error = text::cleaned(&req.error);
        let state = self.store.fail(&lease, &error, req.retryable).await?;
        self.metrics.ended(state);
        tracing::warn!(task = %lease.task_id, %error, %state, "task attempt failed");
        Ok(Response::new(v1::FailResponse {
            state: state_to_wire(state),
        }))
    }

    async fn release(
        &self,
        request: Request<v1::ReleaseRequest>,
    ) -> Result<Response<v1::ReleaseResponse>, Status> {
        let req = request.into_inner();
        let lease = LeaseRef::from_wire(req.lease)?;
        let state = self.store.release(&lease).await?;
        self.metrics.ended(state);
        let reason = text::cleaned(&req.reason);
        tracing::info!(task = %lease.task_id, %reason, %state, "task handed back");
        Ok(Response::new(v1::ReleaseResponse {
            state: state_to_wire(state),
        }))
    }

    async fn leave(
        &self,
        request: Request<v1::LeaveRequest>,
    ) -> Result<Response<v1::LeaveResponse>, Status> {
        let worker = WorkerId::from_wire(request.into_inner().worker_id)?;
        self.store.leave(worker).await?;
        tracing::info!(worker = %worker, "worker stopped");
        Ok(Response::new(v1::LeaveResponse {}))
    }
}

/// The completions of one call, each checked on its own.
struct Batch {
    /// Per completion, in order: the task it names (0 when it names none)
    /// and, for one that is malformed, why.
    entries: Vec<(u64, Option<WireError>)>,
    /// The well-formed ones, for the store, in order.
    well_formed: Vec<Completion>,
}

impl Batch {
    fn from_wire(completions: Vec<v1::Completion>) -> Self {
        let mut batch = Self {
            entries: Vec::with_capacity(completions.len()),
            well_formed: Vec::with_capacity(completions.len()),
        };
        for wire in completions {
            let task_id = wire.lease.as_ref().map_or(0, |lease| lease.task_id);
            match Completion::try_from(wire) {
                Ok(completion) => {
                    batch.well_formed.push(completion);
                    batch.entries.push((task_id, None));
                }
                Err(err) => batch.entries.push((task_id, Some(err))),
            }
        }
        batch
    }
}

/// Points from the wire, each checked (see [`MetricPoint::try_from`]).
fn metric_points(points: Vec<v1::MetricPoint>) -> Result<Vec<MetricPoint>, WireError> {
    points.into_iter().map(MetricPoint::try_from).collect()
}
