//! The worker-facing `Coordinator` service.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use sweep_proto::v1::coordinator_server::Coordinator;
use sweep_proto::v1::{self, artifact_download, artifact_upload};
use sweep_proto::{TaskId, WireError, WorkerId};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use super::{RECHECK, device_from_wire, lease_ref, task_state};
use crate::config::Config;
use crate::error::Error;
use crate::store::{Capabilities, Lease, MetricPoint, NewArtifact, NewWorker, Store, Verdict};

/// Artifacts go back to workers in chunks of this size.
const CHUNK: usize = 256 << 10;
/// The most tasks one lease call hands out.
const MAX_SLOTS: u32 = 256;

pub struct CoordinatorService {
    store: Arc<dyn Store>,
    config: Config,
    /// Turns true when the server shuts down, to end long polls at once.
    stopping: watch::Receiver<bool>,
}

impl CoordinatorService {
    pub fn new(store: Arc<dyn Store>, config: Config, stopping: watch::Receiver<bool>) -> Self {
        Self {
            store,
            config,
            stopping,
        }
    }

    /// Claims tasks for the worker, waiting until some fit, the wait is over
    /// or the server stops.
    async fn lease_waiting(
        &self,
        worker: WorkerId,
        fit: Capabilities,
        slots: u32,
        wait: Duration,
    ) -> Result<Vec<Lease>, Error> {
        let deadline = Instant::now() + wait.min(self.config.max_lease_wait);
        let mut changes = self.store.changes();
        let mut stopping = self.stopping.clone();
        loop {
            changes.borrow_and_update();
            let leases = self
                .store
                .lease(worker, &fit, slots, self.config.lease_ttl)
                .await?;
            let now = Instant::now();
            if !leases.is_empty() || slots == 0 || now >= deadline || *stopping.borrow() {
                return Ok(leases);
            }
            let nap = (deadline - now).min(RECHECK);
            tokio::select! {
                _ = changes.changed() => {}
                _ = stopping.changed() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }
}

fn lease_to_wire(lease: Lease) -> v1::TaskLease {
    v1::TaskLease {
        task_id: lease.task_id.to_wire(),
        sweep_id: lease.sweep_id.to_wire(),
        lease_token: lease.token,
        attempt: lease.attempt,
        kind: lease.kind,
        params_json: lease.params,
        depends_on: lease.depends_on.iter().map(|t| t.to_wire()).collect(),
        lease_expires_at_ms: lease.expires_at,
    }
}

fn verdict_to_wire(verdict: Verdict) -> v1::LeaseVerdict {
    match verdict {
        Verdict::Keep => v1::LeaseVerdict::Keep,
        Verdict::Cancel => v1::LeaseVerdict::Cancel,
        Verdict::Lost => v1::LeaseVerdict::Lost,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<v1::ArtifactDownload, Status>> + Send>>;

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        let req = request.into_inner();
        if req.slots == 0 {
            return Err(WireError::invalid("a worker needs at least one slot").into());
        }
        let worker = NewWorker {
            name: req.name,
            host: req.host,
            backend: req.backend,
            devices: req.devices.into_iter().map(device_from_wire).collect(),
            slots: req.slots,
            version: req.version,
        };
        let (name, host) = (worker.name.clone(), worker.host.clone());
        let id = self.store.register_worker(worker).await?;
        tracing::info!(worker = %id, %name, %host, "worker registered");
        Ok(Response::new(v1::RegisterResponse {
            worker_id: id.to_wire(),
            lease_ttl_ms: millis(self.config.lease_ttl),
            heartbeat_interval_ms: millis(self.config.lease_ttl / 3),
        }))
    }

    async fn lease(
        &self,
        request: Request<v1::LeaseRequest>,
    ) -> Result<Response<v1::LeaseResponse>, Status> {
        let req = request.into_inner();
        let worker = WorkerId::from_wire(req.worker_id)?;
        let fit = Capabilities {
            cuda: req.device_kinds.iter().any(|kind| kind == "cuda"),
        };
        let slots = req.free_slots.min(MAX_SLOTS);
        let wait = Duration::from_millis(req.wait_ms);
        let leases = self.lease_waiting(worker, fit, slots, wait).await?;
        for lease in &leases {
            tracing::info!(worker = %worker, task = %lease.task_id, attempt = lease.attempt, "task leased");
        }
        Ok(Response::new(v1::LeaseResponse {
            leases: leases.into_iter().map(lease_to_wire).collect(),
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
            .map(|lease| lease_ref(Some(lease)))
            .collect::<Result<Vec<_>, _>>()?;
        let statuses = self
            .store
            .heartbeat(worker, &leases, self.config.lease_ttl)
            .await?;
        Ok(Response::new(v1::HeartbeatResponse {
            leases: statuses
                .into_iter()
                .map(|status| v1::LeaseStatus {
                    task_id: status.task_id.to_wire(),
                    verdict: verdict_to_wire(status.verdict) as i32,
                    lease_expires_at_ms: status.expires_at.unwrap_or_default(),
                })
                .collect(),
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
            let lease = lease_ref(batch.lease)?;
            let points: Vec<MetricPoint> = batch
                .points
                .into_iter()
                .map(|p| MetricPoint {
                    name: p.name,
                    step: p.step,
                    epoch: p.epoch,
                    value: p.value,
                })
                .collect();
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
        let lease = lease_ref(header.lease)?;
        if header.name.is_empty() {
            return Err(WireError::invalid("an artifact needs a name").into());
        }
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
        let artifact = NewArtifact {
            name: header.name,
            encoding: header.encoding,
            data,
        };
        self.store.put_artifact(&lease, artifact).await?;
        Ok(Response::new(v1::PutArtifactResponse { size }))
    }

    type GetArtifactStream = DownloadStream;

    async fn get_artifact(
        &self,
        request: Request<v1::GetArtifactRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let req = request.into_inner();
        let task = TaskId::from_wire(req.task_id)?;
        let artifact = self.store.artifact(task, &req.name).await?;
        let info = v1::ArtifactDownload {
            part: Some(artifact_download::Part::Info(v1::ArtifactInfo {
                task_id: artifact.task_id.to_wire(),
                attempt: artifact.attempt,
                name: artifact.name,
                encoding: artifact.encoding,
                size: artifact.data.len() as u64,
            })),
        };
        let chunks: Vec<Result<v1::ArtifactDownload, Status>> = std::iter::once(info)
            .chain(
                artifact
                    .data
                    .chunks(CHUNK)
                    .map(|chunk| v1::ArtifactDownload {
                        part: Some(artifact_download::Part::Data(chunk.to_vec())),
                    }),
            )
            .map(Ok)
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn complete(
        &self,
        request: Request<v1::CompleteRequest>,
    ) -> Result<Response<v1::CompleteResponse>, Status> {
        let req = request.into_inner();
        let lease = lease_ref(req.lease)?;
        let summary = match req.summary_json.trim() {
            "" => serde_json::json!({}),
            text => serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .filter(|value| value.is_object())
                .ok_or_else(|| {
                    WireError::invalid(format!("summary_json is not a JSON object: {text:.200}"))
                })?,
        };
        self.store.complete(&lease, &summary).await?;
        tracing::info!(task = %lease.task_id, "task succeeded");
        Ok(Response::new(v1::CompleteResponse {}))
    }

    async fn fail(
        &self,
        request: Request<v1::FailRequest>,
    ) -> Result<Response<v1::FailResponse>, Status> {
        let req = request.into_inner();
        let lease = lease_ref(req.lease)?;
        let state = self.store.fail(&lease, &req.error, req.retryable).await?;
        tracing::warn!(task = %lease.task_id, error = %req.error, %state, "task attempt failed");
        Ok(Response::new(v1::FailResponse {
            state: task_state(state) as i32,
        }))
    }

    async fn release(
        &self,
        request: Request<v1::ReleaseRequest>,
    ) -> Result<Response<v1::ReleaseResponse>, Status> {
        let req = request.into_inner();
        let lease = lease_ref(req.lease)?;
        let state = self.store.release(&lease).await?;
        tracing::info!(task = %lease.task_id, reason = %req.reason, %state, "task handed back");
        Ok(Response::new(v1::ReleaseResponse {
            state: task_state(state) as i32,
        }))
    }
}
