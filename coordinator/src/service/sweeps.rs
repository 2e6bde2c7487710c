//! The client-facing `Sweeps` service.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use sweep_proto::v1::sweeps_server::Sweeps;
use sweep_proto::v1::{self};
use sweep_proto::{
    Forget, Sweep, SweepId, SweepRef, TaskId, TaskOrder, TaskState, WireError, text,
};
use sweep_spec::planner::{self, Limits};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::poll::LongPoll;
use super::{DownloadStream, reads};
use crate::config::Config;
use crate::error::Error;
use crate::store::Store;

const DEFAULT_LIST: u32 = 50;
const MAX_LIST: u32 = 1000;
/// Tasks per `ListTasks` page: about 0.5 MB, well under the 4 MiB a message
/// may have.
const TASK_PAGE: u32 = 1000;

pub struct SweepsService {
    store: Arc<dyn Store>,
    config: Config,
    /// Turns true when the server shuts down, to end watch streams.
    stopping: watch::Receiver<bool>,
}

impl SweepsService {
    /// What this coordinator agrees to plan.
    fn limits(&self) -> Limits {
        Limits {
            max_params: self.config.max_params,
        }
    }

    pub fn new(store: Arc<dyn Store>, config: Config, stopping: watch::Receiver<bool>) -> Self {
        Self {
            store,
            config,
            stopping,
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::SweepInfo, Status>> + Send>>;

/// The sweep a request names: by name when it has one, else by id.
fn sweep_ref(req: v1::GetSweepRequest) -> Result<SweepRef, WireError> {
    Ok(if req.name.is_empty() {
        SweepRef::Id(SweepId::from_wire(req.sweep_id)?)
    } else {
        SweepRef::Name(text::name("sweep name", &req.name)?.to_string())
    })
}

/// Sends the sweep's progress each time it changes until it is final, the
/// client goes away or the server stops.
async fn follow(
    store: Arc<dyn Store>,
    id: SweepId,
    first: Sweep,
    out: mpsc::Sender<Result<v1::SweepInfo, Status>>,
    stopping: watch::Receiver<bool>,
) {
    let mut poll = LongPoll::new(store.changes(), stopping, None);
    let mut last = first;
    loop {
        if last.state.is_final() || poll.over() {
            return;
        }
        poll.nap().await;
        poll.seen();
        let sweep = match store.sweep(&id.into()).await {
            Ok(sweep) => sweep,
            Err(err) => {
                let _ = out.send(Err(err.into())).await;
                return;
            }
        };
        if sweep != last {
            if out.send(Ok(sweep.to_wire(false))).await.is_err() {
                return;
            }
            last = sweep;
        }
    }
}

#[tonic::async_trait]
impl Sweeps for SweepsService {
    async fn submit(
        &self,
        request: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let request = request.into_inner();
        let mut sweep =
            planner::submission_within(&request.spec_toml, &self.limits()).map_err(Error::from)?;
        sweep.cache = !request.no_cache;
        let task_count = sweep.plan.tasks.len() as u32;
        let name = sweep.plan.name.clone();
        let id = self.store.create_sweep(&sweep).await?;
        tracing::info!(sweep = %id, %name, tasks = task_count, "sweep submitted");
        Ok(Response::new(v1::SubmitResponse {
            sweep_id: id.to_wire(),
            task_count,
        }))
    }

    async fn extend(
        &self,
        request: Request<v1::ExtendRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let request = request.into_inner();
        let which = sweep_ref(v1::GetSweepRequest {
            sweep_id: request.sweep_id,
            name: request.name,
        })?;
        let mut spec =
            planner::submission_within(&request.spec_toml, &self.limits()).map_err(Error::from)?;
        spec.cache = !request.no_cache;
        let id = self.store.sweep(&which).await?.id;
        let added = self.store.extend_sweep(id, &spec).await?;
        tracing::info!(sweep = %id, added, "sweep extended");
        Ok(Response::new(v1::SubmitResponse {
            sweep_id: id.to_wire(),
            task_count: u32::try_from(added).unwrap_or(u32::MAX),
        }))
    }

    async fn get(
        &self,
        request: Request<v1::GetSweepRequest>,
    ) -> Result<Response<v1::SweepInfo>, Status> {
        let which = sweep_ref(request.into_inner())?;
        let sweep = self.store.sweep(&which).await?;
        Ok(Response::new(sweep.to_wire(true)))
    }

    async fn list(
        &self,
        request: Request<v1::ListSweepsRequest>,
    ) -> Result<Response<v1::ListSweepsResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => DEFAULT_LIST,
            n => n.min(MAX_LIST),
        };
        let sweeps = self.store.sweeps(limit).await?;
        Ok(Response::new(v1::ListSweepsResponse {
            sweeps: sweeps.iter().map(|s| s.to_wire(false)).collect(),
        }))
    }

    async fn cancel(
        &self,
        request: Request<v1::CancelSweepRequest>,
    ) -> Result<Response<v1::CancelSweepResponse>, Status> {
        let id = SweepId::from_wire(request.into_inner().sweep_id)?;
        let outcome = self.store.cancel_sweep(id).await?;
        tracing::info!(sweep = %id, cancelled = outcome.cancelled, signalled = outcome.signalled, "sweep cancelled");
        Ok(Response::new(v1::CancelSweepResponse {
            cancelled: outcome.cancelled as u32,
            signalled: outcome.signalled as u32,
        }))
    }

    async fn retry(
        &self,
        request: Request<v1::RetrySweepRequest>,
    ) -> Result<Response<v1::RetrySweepResponse>, Status> {
        let id = SweepId::from_wire(request.into_inner().sweep_id)?;
        let requeued = self.store.retry_sweep(id).await?;
        tracing::info!(sweep = %id, requeued, "failed tasks re-queued");
        Ok(Response::new(v1::RetrySweepResponse {
            requeued: requeued as u32,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<v1::WatchSweepRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let id = SweepId::from_wire(request.into_inner().sweep_id)?;
        let first = self.store.sweep(&id.into()).await?;
        let (out, stream) = mpsc::channel(16);
        out.send(Ok(first.to_wire(false)))
            .await
            .map_err(|_| Status::cancelled("the watcher went away"))?;
        tokio::spawn(follow(
            self.store.clone(),
            id,
            first,
            out,
            self.stopping.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    async fn list_tasks(
        &self,
        request: Request<v1::ListTasksRequest>,
    ) -> Result<Response<v1::ListTasksResponse>, Status> {
        let req = request.into_inner();
        let id = SweepId::from_wire(req.sweep_id)?;
        let states = req
            .states
            .into_iter()
            .map(TaskState::from_wire)
            .collect::<Result<Vec<_>, _>>()?;
        let from = match req.page_token.as_str() {
            "" => 0,
            token => token.parse().map_err(|_| {
                WireError::invalid(format!(
                    "page token {token:?} is not one this coordinator gave"
                ))
            })?,
        };
        let limit = match req.limit {
            0 => TASK_PAGE,
            n => n.min(TASK_PAGE),
        };
        let order = TaskOrder::from_wire(req.order)?;
        let page = self
            .store
            .task_page(id, &states, order, from, limit)
            .await?;
        Ok(Response::new(v1::ListTasksResponse {
            tasks: page.tasks.iter().map(Into::into).collect(),
            next_page_token: page.next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    type ReportStream = reads::ReportStream;

    async fn report(
        &self,
        request: Request<v1::GetSweepRequest>,
    ) -> Result<Response<reads::ReportStream>, Status> {
        let which = sweep_ref(request.into_inner())?;
        Ok(Response::new(reads::report(&self.store, &which).await?))
    }

    type TaskMetricsStream = reads::MetricStream;

    async fn task_metrics(
        &self,
        request: Request<v1::TaskRequest>,
    ) -> Result<Response<reads::MetricStream>, Status> {
        let task = TaskId::from_wire(request.into_inner().task_id)?;
        Ok(Response::new(reads::metrics(&self.store, task).await?))
    }

    async fn list_artifacts(
        &self,
        request: Request<v1::TaskRequest>,
    ) -> Result<Response<v1::ListArtifactsResponse>, Status> {
        let task = TaskId::from_wire(request.into_inner().task_id)?;
        let artifacts = self.store.artifacts(task).await?;
        Ok(Response::new(v1::ListArtifactsResponse {
            artifacts: artifacts.into_iter().map(Into::into).collect(),
        }))
    }

    type GetArtifactStream = DownloadStream;

    async fn get_artifact(
        &self,
        request: Request<v1::GetArtifactRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let req = request.into_inner();
        let task = TaskId::from_wire(req.task_id)?;
        Ok(Response::new(
            reads::artifact(&self.store, task, &req.name).await?,
        ))
    }

    async fn cache_stats(
        &self,
        _request: Request<v1::CacheStatsRequest>,
    ) -> Result<Response<v1::CacheStatsResponse>, Status> {
        Ok(Response::new(self.store.cache_stats().await?.into()))
    }

    async fn forget_results(
        &self,
        request: Request<v1::ForgetResultsRequest>,
    ) -> Result<Response<v1::ForgetResultsResponse>, Status> {
        let which = Forget::try_from(request.into_inner())?;
        let forgotten = self.store.forget_results(which).await?;
        tracing::info!(?which, forgotten, "results forgotten");
        Ok(Response::new(v1::ForgetResultsResponse { forgotten }))
    }

    async fn list_workers(
        &self,
        _request: Request<v1::ListWorkersRequest>,
    ) -> Result<Response<v1::ListWorkersResponse>, Status> {
        let workers = self.store.workers().await?;
        Ok(Response::new(v1::ListWorkersResponse {
            workers: workers.iter().map(v1::WorkerInfo::from).collect(),
        }))
    }

    async fn get_task(
        &self,
        request: Request<v1::TaskRequest>,
    ) -> Result<Response<v1::TaskInfo>, Status> {
        let task = TaskId::from_wire(request.into_inner().task_id)?;
        Ok(Response::new((&self.store.task(task).await?).into()))
    }

    async fn list_attempts(
        &self,
        request: Request<v1::TaskRequest>,
    ) -> Result<Response<v1::ListAttemptsResponse>, Status> {
        let task = TaskId::from_wire(request.into_inner().task_id)?;
        let attempts = self.store.attempts(task).await?;
        Ok(Response::new(v1::ListAttemptsResponse {
            attempts: attempts.iter().map(Into::into).collect(),
        }))
    }

    async fn count_tasks(
        &self,
        _request: Request<v1::CountTasksRequest>,
    ) -> Result<Response<v1::TaskCounts>, Status> {
        Ok(Response::new((&self.store.task_counts().await?).into()))
    }
}
