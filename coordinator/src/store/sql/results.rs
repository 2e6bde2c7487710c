//! [`Results`] over SQL: sweeps, tasks, metrics and artifacts as they
//! were stored, and per-setting statistics of the tasks' summaries.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use async_trait::async_trait;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use sweep_proto::{
    CacheStats, MetricPoint, Sweep, SweepId, SweepRef, Task, TaskCounts, TaskId, TaskState,
    WireError, WorkerInfo,
};

use super::{SWEEP_COLUMNS, SqlStore, TASK_COLUMNS, params_from_row, parse_state};
use crate::error::{Error, Result};
use crate::store::{
    Artifact, ArtifactInfo, Attempt, Metric, Results, SettingStats, Stats, TaskOrder, TaskPage,
};

/// A read's answer with its error as a client sees it (see `error.rs`: the
/// database's own words go to the log).
async fn read<T>(answer: impl Future<Output = Result<T>>) -> Result<T, WireError> {
    answer.await.map_err(WireError::from)
}

impl SqlStore {
    /// The sweep's tasks in `states` (all when empty) in `order`, at most
    /// `limit`, each with its grid position: in grid order from position
    /// `from` on, in any other order after skipping `from` tasks.
    async fn select_tasks(
        &self,
        sweep: SweepId,
        states: &[TaskState],
        order: TaskOrder,
        from: u64,
        limit: Option<u32>,
    ) -> Result<Vec<(u64, Task)>> {
        let mut tx = self.pool.begin().await?;
        self.sweep_row(&mut tx, &sweep.into()).await?;
        let in_states = match states.len() {
            0 => String::new(),
            n => {
                let cells: Vec<String> = (3..3 + n).map(|i| format!("${i}")).collect();
                format!(" AND state IN ({})", cells.join(", "))
            }
        };
        let limit_cell = 3 + states.len();
        let limited = if limit.is_some() {
            format!(" LIMIT ${limit_cell}")
        } else {
            String::new()
        };
        // Grid order pages by position, so a page far into a sweep reads
        // only its own rows; the others sort the sweep's rows and skip.
        let (start, sort, skip) = match order {
            TaskOrder::Grid => ("ordinal >= $2", "ordinal", ""),
            TaskOrder::State => ("$2 >= 0", STATE_ORDER, " OFFSET $2"),
            TaskOrder::Attempts => ("$2 >= 0", "attempt DESC, ordinal", " OFFSET $2"),
            TaskOrder::Duration => ("$2 >= 0", DURATION_ORDER, " OFFSET $2"),
        };
        let sql = format!(
            "SELECT {TASK_COLUMNS}, ordinal FROM tasks WHERE sweep_id = $1 AND {start}\
             {in_states} ORDER BY {sort}{limited}{skip}"
        );
        let mut query = sqlx::query(self.sql(&sql))
            .bind(sweep.0)
            .bind(i64::try_from(from).unwrap_or(i64::MAX));
        for state in states {
            query = query.bind(state.as_str());
        }
        if let Some(limit) = limit {
            query = query.bind(i64::from(limit));
        }
        let rows = query.fetch_all(&mut *tx).await?;
        let ordinals = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("ordinal").map(|o| o as u64))
            .collect::<Result<Vec<_>, _>>()?;
        let tasks = self.tasks_from_rows(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(ordinals.into_iter().zip(tasks).collect())
    }
}

/// [`TaskOrder::State`]: what needs a look first.
const STATE_ORDER: &str = "CASE state WHEN {failed} THEN 0 WHEN {leased} THEN 1 \
     WHEN {queued} THEN 2 WHEN {blocked} THEN 3 WHEN {cancelled} THEN 4 ELSE 5 END, ordinal";

/// [`TaskOrder::Duration`]: the latest attempt's time, a running one's
/// until now; tasks that never started last.
const DURATION_ORDER: &str = "COALESCE(COALESCE(finished_at, {now}) - attempt_started_at, -1) \
     DESC, ordinal";

/// Where the task's metrics and artifacts are: its latest attempt's, or,
/// for a task whose results came from the cache, its source's.
async fn results_of(tx: &mut Transaction<'static, Any>, task: TaskId) -> Result<(TaskId, i64)> {
    let row = sqlx::query(
        "SELECT COALESCE(s.id, t.id) AS id, COALESCE(s.attempt, t.attempt) AS attempt \
         FROM tasks t LEFT JOIN tasks s ON s.id = t.cached_from WHERE t.id = $1",
    )
    .bind(task.0)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| Error::not_found("task", task))?;
    Ok((TaskId(row.try_get("id")?), row.try_get("attempt")?))
}

#[async_trait]
impl Results for SqlStore {
    async fn workers(&self) -> Result<Vec<WorkerInfo>, WireError> {
        read(self.list_workers()).await
    }

    async fn sweeps(&self, limit: u32) -> Result<Vec<Sweep>, WireError> {
        read(async {
            let mut tx = self.pool.begin().await?;
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY id DESC LIMIT $1"
            )))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            let sweeps = self.sweeps_from_rows(&mut tx, rows).await?;
            tx.commit().await?;
            Ok(sweeps)
        })
        .await
    }

    async fn sweep(&self, which: &SweepRef) -> Result<Sweep, WireError> {
        read(async {
            let mut tx = self.pool.begin().await?;
            let row = self.sweep_row(&mut tx, which).await?;
            let mut sweeps = self.sweeps_from_rows(&mut tx, vec![row]).await?;
            tx.commit().await?;
            sweeps
                .pop()
                .ok_or_else(|| Error::not_found("sweep", which.to_string()))
        })
        .await
    }

    async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> Result<Vec<Task>, WireError> {
        read(async {
            let rows = (self.select_tasks(sweep, states, TaskOrder::Grid, 0, None)).await?;
            Ok(rows.into_iter().map(|(_, task)| task).collect())
        })
        .await
    }

    async fn task_page(
        &self,
        sweep: SweepId,
        states: &[TaskState],
        order: TaskOrder,
        from: u64,
        limit: u32,
    ) -> Result<TaskPage, WireError> {
        read(async {
            let limit = limit.max(1);
            // One more than asked for says whether another page follows.
            let mut rows = self
                .select_tasks(sweep, states, order, from, Some(limit + 1))
                .await?;
            let more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            let next = match order {
                TaskOrder::Grid => rows.last().map(|(ordinal, _)| ordinal + 1),
                _ => Some(from + rows.len() as u64),
            }
            .filter(|_| more);
            Ok(TaskPage {
                tasks: rows.into_iter().map(|(_, task)| task).collect(),
                next,
            })
        })
        .await
    }

    async fn attempts(&self, task: TaskId) -> Result<Vec<Attempt>, WireError> {
        read(self.attempt_history(task)).await
    }

    async fn task(&self, id: TaskId) -> Result<Task, WireError> {
        read(async {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"
            )))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("task", id))?;
            let mut tasks = self.tasks_from_rows(&mut tx, vec![row]).await?;
            tx.commit().await?;
            tasks.pop().ok_or_else(|| Error::not_found("task", id))
        })
        .await
    }

    async fn metrics(&self, task: TaskId) -> Result<Vec<Metric>, WireError> {
        read(async {
            let mut tx = self.pool.begin().await?;
            let (source, attempt) = results_of(&mut tx, task).await?;
            let rows = sqlx::query(
                "SELECT name, step, epoch, value FROM metrics \
                 WHERE task_id = $1 AND attempt = $2 ORDER BY name, step",
            )
            .bind(source.0)
            .bind(attempt)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows.iter()
                .map(|row| {
                    Ok(Metric {
                        attempt: attempt as u32,
                        point: MetricPoint {
                            name: row.try_get("name")?,
                            step: row.try_get("step")?,
                            epoch: row.try_get("epoch")?,
                            value: row.try_get("value")?,
                        },
                    })
                })
                .collect()
        })
        .await
    }

    async fn artifact(&self, task: TaskId, name: &str) -> Result<Artifact, WireError> {
        read(async {
            let mut tx = self.pool.begin().await?;
            let (source, attempt) = results_of(&mut tx, task).await?;
            let row = sqlx::query(
                "SELECT encoding, data FROM artifacts WHERE task_id = $1 AND attempt = $2 AND name = $3",
            )
            .bind(source.0)
            .bind(attempt)
            .bind(name.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("artifact", format!("{name:?} of task {task}")))?;
            tx.commit().await?;
            Ok(Artifact {
                task_id: task,
                attempt: attempt as u32,
                name: name.to_string(),
                encoding: row.try_get("encoding")?,
                data: row.try_get("data")?,
            })
        })
        .await
    }

    async fn artifacts(&self, task: TaskId) -> Result<Vec<ArtifactInfo>, WireError> {
        read(async {
            let mut tx = self.pool.begin().await?;
            let (source, attempt) = results_of(&mut tx, task).await?;
            let rows = sqlx::query(
                "SELECT name, encoding, CAST(length(data) AS BIGINT) AS size FROM artifacts \
                 WHERE task_id = $1 AND attempt = $2 ORDER BY name",
            )
            .bind(source.0)
            .bind(attempt)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows.iter()
                .map(|row| {
                    Ok(ArtifactInfo {
                        task_id: task,
                        attempt: attempt as u32,
                        name: row.try_get("name")?,
                        encoding: row.try_get("encoding")?,
                        size: row.try_get::<i64, _>("size")? as u64,
                    })
                })
                .collect()
        })
        .await
    }

    async fn cache_stats(&self) -> Result<CacheStats, WireError> {
        read(self.stats()).await
    }

    async fn task_counts(&self) -> Result<TaskCounts, WireError> {
        read(async {
            let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM tasks GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
            let mut counts = TaskCounts::default();
            for row in rows {
                let state = parse_state(&row.try_get::<String, _>("state")?)?;
                counts.add(state, row.try_get::<i64, _>("n")? as u64);
            }
            Ok(counts)
        })
        .await
    }

    async fn aggregate(&self, sweep: SweepId) -> Result<Vec<SettingStats>, WireError> {
        read(async {
            let mut tx = self.pool.begin().await?;
            self.sweep_row(&mut tx, &sweep.into()).await?;
            let settings = sqlx::query(self.sql(
                "SELECT g.setting, g.tasks, g.succeeded, g.failed, p.id, p.params FROM \
                   (SELECT setting, MIN(ordinal) AS first, COUNT(*) AS tasks, \
                      SUM(CASE WHEN state = {succeeded} THEN 1 ELSE 0 END) AS succeeded, \
                      SUM(CASE WHEN state = {failed} THEN 1 ELSE 0 END) AS failed \
                    FROM tasks WHERE sweep_id = $1 GROUP BY setting) g \
                 JOIN tasks p ON p.sweep_id = $2 AND p.ordinal = g.first \
                 ORDER BY g.first",
            ))
            .bind(sweep.0)
            .bind(sweep.0)
            .fetch_all(&mut *tx)
            .await?;
            // Two passes (mean, then squared deviations from it) keep the
            // standard deviation exact where a sum of squares would cancel.
            let values = sqlx::query(self.sql(
                "WITH v AS (SELECT t.setting, f.name, f.value FROM summary_values f \
                   JOIN tasks t ON t.id = f.task_id \
                   WHERE t.sweep_id = $1 AND t.state = {succeeded}), \
                 m AS (SELECT setting, name, COUNT(*) AS n, AVG(value) AS mean FROM v \
                   GROUP BY setting, name) \
                 SELECT m.setting, m.name, m.n, m.mean, \
                   SUM((v.value - m.mean) * (v.value - m.mean)) AS squares \
                 FROM m JOIN v ON v.setting = m.setting AND v.name = m.name \
                 GROUP BY m.setting, m.name, m.n, m.mean",
            ))
            .bind(sweep.0)
            .fetch_all(&mut *tx)
            .await?;
            let mut by_setting: HashMap<String, BTreeMap<String, Stats>> = HashMap::new();
            for row in values {
                let n: i64 = row.try_get("n")?;
                let squares: f64 = row.try_get("squares")?;
                let stats = Stats {
                    n: n as u64,
                    mean: row.try_get("mean")?,
                    std: (n > 1).then(|| (squares / (n - 1) as f64).sqrt()),
                };
                by_setting
                    .entry(row.try_get("setting")?)
                    .or_default()
                    .insert(row.try_get("name")?, stats);
            }
            let reports = settings
                .iter()
                .map(|row| {
                    let setting: String = row.try_get("setting")?;
                    Ok(SettingStats {
                        params: params_from_row(row, TaskId(row.try_get("id")?))?,
                        tasks: row.try_get::<i64, _>("tasks")? as u64,
                        succeeded: row.try_get::<i64, _>("succeeded")? as u64,
                        failed: row.try_get::<i64, _>("failed")? as u64,
                        summary: by_setting.remove(&setting).unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            tx.commit().await?;
            Ok(reports)
        })
        .await
    }
}
