//! [`Reader`]: a database opened only to read results, for `sweep report`,
//! `plot` and `export` given a database URL. Opening it migrates nothing,
//! backfills nothing and listens for nothing; its connections are read-only
//! in the database itself (PostgreSQL `default_transaction_read_only`,
//! SQLite `mode=ro`), so a role with only `SELECT` grants can read, and a
//! reader pointed at the wrong database leaves it as it was.

use async_trait::async_trait;
use sweep_proto::{CacheStats, Sweep, SweepId, SweepRef, Task, TaskCounts, TaskId, TaskState};

use super::sql::SqlStore;
use super::{
    Artifact, ArtifactInfo, Attempt, Metric, ResultStore, Retrying, SettingStats, TaskOrder,
    TaskPage, Worker, postgres, sqlite, sqlite_file,
};
use crate::error::{Error, Result};

/// The read-only side of a sweep database: [`ResultStore`], and nothing
/// that writes.
pub struct Reader(Retrying<SqlStore>);

impl Reader {
    /// Opens the database `url` names to read, after checking that its
    /// schema is the one this binary reads ([`Error::SchemaVersion`] if
    /// not, [`Error::NoSchema`] if it holds no sweep database at all). A
    /// SQLite file that does not exist is [`Error::NotFound`].
    pub async fn open(url: &str) -> Result<Self> {
        let store = match sqlite_file(url)? {
            None => postgres::open_reader(url).await?,
            Some(path) if std::path::Path::new(path).exists() => sqlite::open_reader(path).await?,
            Some(path) => return Err(Error::not_found("database file", path)),
        };
        Ok(Self(Retrying(store)))
    }
}

#[async_trait]
impl ResultStore for Reader {
    async fn workers(&self) -> Result<Vec<Worker>> {
        self.0.workers().await
    }

    async fn sweeps(&self, limit: u32) -> Result<Vec<Sweep>> {
        self.0.sweeps(limit).await
    }

    async fn sweep(&self, which: &SweepRef) -> Result<Sweep> {
        self.0.sweep(which).await
    }

    async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> Result<Vec<Task>> {
        self.0.tasks(sweep, states).await
    }

    async fn task_page(
        &self,
        sweep: SweepId,
        states: &[TaskState],
        order: TaskOrder,
        from: u64,
        limit: u32,
    ) -> Result<TaskPage> {
        self.0.task_page(sweep, states, order, from, limit).await
    }

    async fn task(&self, id: TaskId) -> Result<Task> {
        self.0.task(id).await
    }

    async fn attempts(&self, task: TaskId) -> Result<Vec<Attempt>> {
        self.0.attempts(task).await
    }

    async fn metrics(&self, task: TaskId) -> Result<Vec<Metric>> {
        self.0.metrics(task).await
    }

    async fn artifact(&self, task: TaskId, name: &str) -> Result<Artifact> {
        self.0.artifact(task, name).await
    }

    async fn artifacts(&self, task: TaskId) -> Result<Vec<ArtifactInfo>> {
        self.0.artifacts(task).await
    }

    async fn cache_stats(&self) -> Result<CacheStats> {
        self.0.cache_stats().await
    }

    async fn task_counts(&self) -> Result<TaskCounts> {
        self.0.task_counts().await
    }

    async fn aggregate(&self, sweep: SweepId) -> Result<Vec<SettingStats>> {
        self.0.aggregate(sweep).await
    }
}
