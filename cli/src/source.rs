//! [`Source`]: where `sweep report`, `plot` and `export` read results: a
//! coordinator's read RPCs (its address and client token), or a database
//! opened read-only. Both answer with the same values, so a verb renders
//! the same bytes from either.

use sweep_coordinator::store::{Reader, ResultStore};
use sweep_proto::client::SweepsClient;
use sweep_proto::{
    Artifact, Metric, SettingStats, Sweep, SweepId, SweepRef, Task, TaskId, TaskState,
};

use sweep_report::Results;

use crate::args::{Endpoint, ReadFrom};

pub enum Source {
    Coordinator(SweepsClient),
    Database(Reader),
}

impl Source {
    /// The coordinator when the flags (or `SWEEP_ENDPOINT`) name one, the
    /// database otherwise.
    pub async fn open(args: &ReadFrom) -> anyhow::Result<Self> {
        match &args.endpoint {
            Some(endpoint) => {
                let endpoint = Endpoint {
                    endpoint: endpoint.clone(),
                    token: args.token.clone(),
                    ca: args.ca.clone(),
                };
                Ok(Self::Coordinator(crate::cluster::connect(&endpoint).await?))
            }
            None => Ok(Self::Database(crate::open(&args.database_url).await?)),
        }
    }

    /// The sweep, by id or by name.
    pub async fn sweep(&self, which: &SweepRef) -> anyhow::Result<Sweep> {
        Ok(match self {
            Self::Coordinator(client) => client.sweep(which).await?,
            Self::Database(reader) => reader.sweep(which).await?,
        })
    }

    /// The sweep's tasks in grid order, only those in `states` unless empty.
    pub async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> anyhow::Result<Vec<Task>> {
        Ok(match self {
            Self::Coordinator(client) => client.tasks(sweep, states).await?,
            Self::Database(reader) => reader.tasks(sweep, states).await?,
        })
    }

    /// The metric points of the task's latest attempt.
    pub async fn metrics(&self, task: TaskId) -> anyhow::Result<Vec<Metric>> {
        Ok(match self {
            Self::Coordinator(client) => client.metrics(task).await?,
            Self::Database(reader) => reader.metrics(task).await?,
        })
    }

    /// The named artifact of the task's latest attempt.
    pub async fn artifact(&self, task: TaskId, name: &str) -> anyhow::Result<Artifact> {
        Ok(match self {
            Self::Coordinator(client) => client.artifact(task, name).await?,
            Self::Database(reader) => reader.artifact(task, name).await?,
        })
    }

    /// The sweep's settings with their aggregated numbers.
    pub async fn aggregate(&self, sweep: SweepId) -> anyhow::Result<Vec<SettingStats>> {
        Ok(match self {
            Self::Coordinator(client) => client.report(sweep).await?,
            Self::Database(reader) => reader.aggregate(sweep).await?,
        })
    }
}

/// The figures read through the same calls as every other verb.
#[async_trait::async_trait]
impl Results for Source {
    async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> sweep_report::Result<Vec<Task>> {
        Source::tasks(self, sweep, states).await.map_err(read)
    }

    async fn metrics(&self, task: TaskId) -> sweep_report::Result<Vec<Metric>> {
        Source::metrics(self, task).await.map_err(read)
    }

    async fn artifact(&self, task: TaskId, name: &str) -> sweep_report::Result<Artifact> {
        Source::artifact(self, task, name).await.map_err(read)
    }
}

fn read(err: anyhow::Error) -> sweep_report::Error {
    sweep_report::Error::Read(format!("{err:#}"))
}
