//! [`SweepsClient`]: the client side of the `Sweeps` service, for the cli
//! and scripts.

use std::sync::Arc;

use async_trait::async_trait;
use tonic::Streaming;

use super::{Channel, Connection, Credentials, Target, chain};
use crate::MAX_MESSAGE_BYTES;
use crate::error::WireError;
use crate::ids::{SweepId, SweepRef, TaskId};
use crate::read::{Attempt, Results, TaskOrder, TaskPage};
use crate::results::{Artifact, ArtifactInfo, CacheStats, Forget, Metric, SettingStats};
use crate::state::{TaskCounts, TaskState};
use crate::sweep::{CancelOutcome, Sweep, Task};
use crate::v1;
use crate::v1::sweeps_client::SweepsClient as Generated;
use crate::worker::WorkerInfo;

/// A connection to a coordinator's `Sweeps` service.
#[derive(Clone)]
pub struct SweepsClient(Connection<Generated<Channel>>);

/// A sweep's progress as it changes; see [`SweepsClient::watch`].
pub struct Watch {
    stream: Streaming<v1::SweepInfo>,
    target: Arc<Target>,
}

impl Watch {
    /// The next change, or `None` once the sweep is final.
    pub async fn next(&mut self) -> Result<Option<Sweep>, WireError> {
        match self.stream.message().await {
            Ok(Some(info)) => Sweep::try_from(info).map(Some),
            Ok(None) => Ok(None),
            Err(status) => Err(self.target.explain(status)),
        }
    }
}

impl SweepsClient {
    /// Connects now, so that a wrong or unreachable address fails here.
    pub async fn connect(address: &str, credentials: &Credentials) -> Result<Self, WireError> {
        let (target, endpoint, bearer) =
            Target::new(address, credentials, "--token or SWEEP_TOKEN")?;
        let channel = endpoint.connect().await.map_err(|err| {
            WireError::new(
                crate::ErrorKind::Unavailable,
                format!(
                    "cannot reach the coordinator at {}: {}",
                    target.url,
                    chain(&err)
                ),
            )
        })?;
        let inner = Generated::with_interceptor(channel, bearer)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self(Connection { inner, target }))
    }

    /// The coordinator's address, as connected.
    pub fn url(&self) -> &str {
        &self.0.target.url
    }

    /// Plans and queues a spec; returns the new sweep and its task count.
    pub async fn submit(&self, spec_toml: &str) -> Result<(SweepId, u32), WireError> {
        self.submit_with(spec_toml, false).await
    }

    /// [`SweepsClient::submit`]; with `no_cache` every task trains and none
    /// of its results go to the result cache.
    pub async fn submit_with(
        &self,
        spec_toml: &str,
        no_cache: bool,
    ) -> Result<(SweepId, u32), WireError> {
        let request = v1::SubmitRequest {
            spec_toml: spec_toml.to_string(),
            no_cache,
        };
        let request = super::fits("the spec", request)?;
        let response = (self.0)
            .call(request, |mut c, r| async move { c.submit(r).await })
            .await?;
        Ok((SweepId::from_wire(response.sweep_id)?, response.task_count))
    }

    /// Grows the sweep with the tasks of `spec_toml`'s plan it does not
    /// have yet; answers how many were added.
    pub async fn extend(
        &self,
        which: &SweepRef,
        spec_toml: &str,
        no_cache: bool,
    ) -> Result<u32, WireError> {
        let (sweep_id, name) = match which {
            SweepRef::Id(id) => (id.to_wire(), String::new()),
            SweepRef::Name(name) => (0, name.clone()),
        };
        let request = v1::ExtendRequest {
            sweep_id,
            name,
            spec_toml: spec_toml.to_string(),
            no_cache,
        };
        let request = super::fits("the spec", request)?;
        let response = (self.0)
            .call(request, |mut c, r| async move { c.extend(r).await })
            .await?;
        Ok(response.task_count)
    }

    pub async fn cancel(&self, sweep: SweepId) -> Result<CancelOutcome, WireError> {
        let request = v1::CancelSweepRequest {
            sweep_id: sweep.to_wire(),
        };
        let response = (self.0)
            .call(request, |mut c, r| async move { c.cancel(r).await })
            .await?;
        Ok(CancelOutcome {
            cancelled: response.cancelled.into(),
            signalled: response.signalled.into(),
        })
    }

    /// Queues the sweep's failed tasks again; returns how many.
    pub async fn retry(&self, sweep: SweepId) -> Result<u64, WireError> {
        let request = v1::RetrySweepRequest {
            sweep_id: sweep.to_wire(),
        };
        let response = (self.0)
            .call(request, |mut c, r| async move { c.retry(r).await })
            .await?;
        Ok(response.requeued.into())
    }

    /// The sweep now, then each time it changes until it is final.
    pub async fn watch(&self, sweep: SweepId) -> Result<Watch, WireError> {
        let request = v1::WatchSweepRequest {
            sweep_id: sweep.to_wire(),
        };
        let stream = (self.0)
            .call(request, |mut c, r| async move { c.watch(r).await })
            .await?;
        Ok(Watch {
            stream,
            target: self.0.target.clone(),
        })
    }

    /// Forgets the results `which` names; answers how many.
    pub async fn forget_results(&self, which: Forget) -> Result<u64, WireError> {
        let request = v1::ForgetResultsRequest::from(which);
        let response = (self.0)
            .call(request, |mut c, r| async move { c.forget_results(r).await })
            .await?;
        Ok(response.forgotten)
    }

    /// The next message of a server stream, its failure explained.
    async fn page<M>(&self, stream: &mut Streaming<M>) -> Result<Option<M>, WireError> {
        stream
            .message()
            .await
            .map_err(|status| self.0.target.explain(status))
    }
}

#[async_trait]
impl Results for SweepsClient {
    async fn workers(&self) -> Result<Vec<WorkerInfo>, WireError> {
        let response = (self.0)
            .call(v1::ListWorkersRequest {}, |mut c, r| async move {
                c.list_workers(r).await
            })
            .await?;
        response
            .workers
            .into_iter()
            .map(WorkerInfo::try_from)
            .collect()
    }

    /// `limit` 0 is the coordinator's default.
    async fn sweeps(&self, limit: u32) -> Result<Vec<Sweep>, WireError> {
        let response = (self.0)
            .call(v1::ListSweepsRequest { limit }, |mut c, r| async move {
                c.list(r).await
            })
            .await?;
        response.sweeps.into_iter().map(Sweep::try_from).collect()
    }

    /// With its spec.
    async fn sweep(&self, which: &SweepRef) -> Result<Sweep, WireError> {
        let response = (self.0)
            .call(
                sweep_request(which),
                |mut c, r| async move { c.get(r).await },
            )
            .await?;
        Sweep::try_from(response)
    }

    /// Read page by page however many there are.
    async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> Result<Vec<Task>, WireError> {
        let mut tasks = Vec::new();
        let mut from = 0;
        loop {
            // Limit 0: the coordinator's page size.
            let page = self
                .task_page(sweep, states, TaskOrder::Grid, from, 0)
                .await?;
            tasks.extend(page.tasks);
            match page.next {
                Some(next) => from = next,
                None => return Ok(tasks),
            }
        }
    }

    async fn task_page(
        &self,
        sweep: SweepId,
        states: &[TaskState],
        order: TaskOrder,
        from: u64,
        limit: u32,
    ) -> Result<TaskPage, WireError> {
        let request = v1::ListTasksRequest {
            sweep_id: sweep.to_wire(),
            states: states
                .iter()
                .map(|s| v1::TaskState::from(*s) as i32)
                .collect(),
            limit,
            page_token: if from == 0 {
                String::new()
            } else {
                from.to_string()
            },
            order: v1::TaskOrder::from(order) as i32,
        };
        let page = (self.0)
            .call(request, |mut c, r| async move { c.list_tasks(r).await })
            .await?;
        let next = match page.next_page_token.as_str() {
            "" => None,
            token => Some(token.parse().map_err(|_| {
                WireError::invalid(format!("the coordinator sent page token {token:?}"))
            })?),
        };
        Ok(TaskPage {
            tasks: page
                .tasks
                .into_iter()
                .map(Task::try_from)
                .collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn task(&self, id: TaskId) -> Result<Task, WireError> {
        let response = (self.0)
            .call(
                task_request(id),
                |mut c, r| async move { c.get_task(r).await },
            )
            .await?;
        Task::try_from(response)
    }

    async fn attempts(&self, task: TaskId) -> Result<Vec<Attempt>, WireError> {
        let response = (self.0)
            .call(task_request(task), |mut c, r| async move {
                c.list_attempts(r).await
            })
            .await?;
        response
            .attempts
            .into_iter()
            .map(Attempt::try_from)
            .collect()
    }

    async fn metrics(&self, task: TaskId) -> Result<Vec<Metric>, WireError> {
        let mut pages = (self.0)
            .call(task_request(task), |mut c, r| async move {
                c.task_metrics(r).await
            })
            .await?;
        let mut metrics = Vec::new();
        while let Some(page) = self.page(&mut pages).await? {
            for metric in page.metrics {
                metrics.push(Metric::try_from(metric)?);
            }
        }
        Ok(metrics)
    }

    /// Whole, however many chunks its bytes came in.
    async fn artifact(&self, task: TaskId, name: &str) -> Result<Artifact, WireError> {
        let request = v1::GetArtifactRequest {
            task_id: task.to_wire(),
            name: name.to_string(),
        };
        let mut parts = (self.0)
            .call(request, |mut c, r| async move { c.get_artifact(r).await })
            .await?;
        Artifact::from_wire(&mut parts)
            .await
            .map_err(|status| self.0.target.explain(status))
    }

    async fn artifacts(&self, task: TaskId) -> Result<Vec<ArtifactInfo>, WireError> {
        let response = (self.0)
            .call(task_request(task), |mut c, r| async move {
                c.list_artifacts(r).await
            })
            .await?;
        response
            .artifacts
            .into_iter()
            .map(ArtifactInfo::try_from)
            .collect()
    }

    async fn cache_stats(&self) -> Result<CacheStats, WireError> {
        let response = (self.0)
            .call(v1::CacheStatsRequest {}, |mut c, r| async move {
                c.cache_stats(r).await
            })
            .await?;
        Ok(response.into())
    }

    async fn task_counts(&self) -> Result<TaskCounts, WireError> {
        let response = (self.0)
            .call(v1::CountTasksRequest {}, |mut c, r| async move {
                c.count_tasks(r).await
            })
            .await?;
        Ok(response.into())
    }

    /// Read in pages, as the coordinator's database aggregates it.
    async fn aggregate(&self, sweep: SweepId) -> Result<Vec<SettingStats>, WireError> {
        let request = sweep_request(&SweepRef::Id(sweep));
        let mut pages = (self.0)
            .call(request, |mut c, r| async move { c.report(r).await })
            .await?;
        let mut settings = Vec::new();
        while let Some(page) = self.page(&mut pages).await? {
            for setting in page.settings {
                settings.push(SettingStats::try_from(setting)?);
            }
        }
        Ok(settings)
    }
}

/// A request naming the sweep by id or by name.
fn sweep_request(which: &SweepRef) -> v1::GetSweepRequest {
    match which {
        SweepRef::Id(id) => v1::GetSweepRequest {
            sweep_id: id.to_wire(),
            name: String::new(),
        },
        SweepRef::Name(name) => v1::GetSweepRequest {
            sweep_id: 0,
            name: name.clone(),
        },
    }
}

fn task_request(task: TaskId) -> v1::TaskRequest {
    v1::TaskRequest {
        task_id: task.to_wire(),
    }
}
