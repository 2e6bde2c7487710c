//! The one implementation of [`Store`] over SQL, shared by PostgreSQL and
//! SQLite through sqlx's `Any` driver. The schema is the same on both (times as
//! BIGINT milliseconds, JSON as text) and so are the queries, except for the
//! few fragments in [`Dialect`]. Writing the queue logic once is what keeps the
//! two backends from drifting apart; the shared test suite checks both.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};
use sweep_proto::{SweepId, TaskId, WorkerId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::signal::Signal;
use super::*;
use crate::error::{Error, Result};

/// What differs between the databases. Query templates name these fragments
/// as `{now}`, `{token}`, `{lock}` and `{skip_locked}`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dialect {
    /// Milliseconds since the Unix epoch by the database's clock, so that
    /// coordinators on different hosts agree on when a lease expires.
    pub now: &'static str,
    /// A fresh random lease token, different for each row of one statement.
    pub token: &'static str,
    /// Locks the rows a fenced read returns until the transaction ends.
    /// SQLite needs none: it has one writer at a time.
    pub lock: &'static str,
    /// Lets concurrent claimers and reapers pass over each other's rows.
    pub skip_locked: &'static str,
    /// Run inside a transaction that changed task states, to wake the long
    /// polls of other coordinators on the same database.
    pub notify: Option<&'static str>,
}

/// Rows per multi-row INSERT: well under both databases' parameter limits.
const INSERT_BATCH: usize = 500;

pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    signal: Signal,
    /// Background work tied to this store (the PostgreSQL listener).
    background: Option<JoinHandle<()>>,
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        if let Some(task) = &self.background {
            task.abort();
        }
    }
}

/// The columns of `tasks` that [`task_from_row`] reads.
const TASK_COLUMNS: &str = "id, sweep_id, kind, state, params, attempt, max_attempts, \
                            lease_owner, error, summary";

/// What a fenced call learns about the task whose lease it checked.
struct Fenced {
    sweep_id: SweepId,
    attempt: i64,
    handbacks: i64,
    max_attempts: i64,
    cancel_requested: bool,
}

impl Fenced {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            sweep_id: SweepId(row.try_get("sweep_id")?),
            attempt: row.try_get("attempt")?,
            handbacks: row.try_get("handbacks")?,
            max_attempts: row.try_get("max_attempts")?,
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        })
    }

    /// The state a task goes to when its attempt ends without success.
    fn after_failure(&self, retryable: bool) -> TaskState {
        if self.cancel_requested {
            TaskState::Cancelled
        } else if retryable && self.attempt - self.handbacks < self.max_attempts {
            TaskState::Queued
        } else {
            TaskState::Failed
        }
    }
}

/// How an attempt ends.
struct Ending<'a> {
    state: TaskState,
    error: Option<&'a str>,
    summary: Option<String>,
    /// 1 when the worker handed the task back (the attempt does not count).
    handback: i64,
}

impl SqlStore {
    pub(crate) fn new(pool: AnyPool, dialect: Dialect, signal: Signal) -> Self {
        Self {
            pool,
            dialect,
            signal,
            background: None,
        }
    }

    pub(crate) fn with_background(mut self, task: JoinHandle<()>) -> Self {
        self.background = Some(task);
        self
    }

    /// Fills the dialect's fragments into a query template. The result is
    /// built only from constant text, never from input, so it is safe SQL.
    fn sql(&self, template: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(
            template
                .replace("{now}", self.dialect.now)
                .replace("{token}", self.dialect.token)
                .replace("{skip_locked}", self.dialect.skip_locked)
                .replace("{lock}", self.dialect.lock),
        )
    }

    /// Commits a transaction that changed task states and wakes the waiters.
    async fn commit_change(&self, mut tx: Transaction<'static, Any>) -> Result<()> {
        if let Some(notify) = self.dialect.notify {
            sqlx::query(notify).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.signal.bump();
        Ok(())
    }

    async fn now(&self, tx: &mut Transaction<'static, Any>) -> Result<i64> {
        Ok(sqlx::query_scalar(self.sql("SELECT {now}"))
            .fetch_one(&mut **tx)
            .await?)
    }

    async fn sweep_row(&self, tx: &mut Transaction<'static, Any>, id: SweepId) -> Result<AnyRow> {
        sqlx::query(
            "SELECT id, name, experiment, priority, created_at, cancelled_at, spec_toml \
             FROM sweeps WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| Error::not_found("sweep", id))
    }

    /// Task counts and the latest finish time of each sweep named.
    async fn sweep_counts(
        &self,
        tx: &mut Transaction<'static, Any>,
        ids: &[SweepId],
    ) -> Result<HashMap<SweepId, (TaskCounts, Option<i64>)>> {
        let mut counts: HashMap<SweepId, (TaskCounts, Option<i64>)> = HashMap::new();
        for id in ids {
            let rows = sqlx::query(
                "SELECT state, COUNT(*) AS n, MAX(finished_at) AS finished \
                 FROM tasks WHERE sweep_id = $1 GROUP BY state",
            )
            .bind(id.0)
            .fetch_all(&mut **tx)
            .await?;
            let entry = counts.entry(*id).or_default();
            for row in rows {
                let state = parse_state(&row.try_get::<String, _>("state")?)?;
                entry.0.add(state, row.try_get::<i64, _>("n")? as u64);
                let finished: Option<i64> = row.try_get("finished")?;
                entry.1 = entry.1.max(finished);
            }
        }
        Ok(counts)
    }

    async fn sweeps_from_rows(
        &self,
        tx: &mut Transaction<'static, Any>,
        rows: Vec<AnyRow>,
    ) -> Result<Vec<Sweep>> {
        let ids = rows
            .iter()
            .map(|row| row.try_get("id").map(SweepId))
            .collect::<Result<Vec<_>, _>>()?;
        let counts = self.sweep_counts(tx, &ids).await?;
        rows.iter()
            .map(|row| {
                let id = SweepId(row.try_get("id")?);
                let (counts, last_finish) = counts.get(&id).copied().unwrap_or_default();
                let cancelled_at: Option<i64> = row.try_get("cancelled_at")?;
                let state = match cancelled_at {
                    Some(_) => SweepState::Cancelled,
                    None => SweepState::of(&counts),
                };
                let finished_at = match state {
                    SweepState::Cancelled => cancelled_at,
                    state if state.is_final() => last_finish,
                    _ => None,
                };
                Ok(Sweep {
                    id,
                    name: row.try_get("name")?,
                    experiment: row.try_get("experiment")?,
                    state,
                    priority: row.try_get("priority")?,
                    created_at: row.try_get("created_at")?,
                    finished_at,
                    counts,
                    spec_toml: row.try_get("spec_toml")?,
                })
            })
            .collect()
    }

    /// The dependencies of the tasks named, in order.
    async fn dependencies(
        &self,
        tx: &mut Transaction<'static, Any>,
        tasks: &[TaskId],
    ) -> Result<HashMap<TaskId, Vec<TaskId>>> {
        let mut deps: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
        for task in tasks {
            let rows: Vec<i64> = sqlx::query_scalar(
                "SELECT depends_on FROM task_deps WHERE task_id = $1 ORDER BY position",
            )
            .bind(task.0)
            .fetch_all(&mut **tx)
            .await?;
            if !rows.is_empty() {
                deps.insert(*task, rows.into_iter().map(TaskId).collect());
            }
        }
        Ok(deps)
    }

    async fn tasks_from_rows(
        &self,
        tx: &mut Transaction<'static, Any>,
        rows: Vec<AnyRow>,
    ) -> Result<Vec<Task>> {
        let mut tasks = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
        let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
        let mut deps = self.dependencies(tx, &ids).await?;
        for task in &mut tasks {
            task.depends_on = deps.remove(&task.id).unwrap_or_default();
        }
        Ok(tasks)
    }

    /// Checks that `lease` is the task's current lease and locks the task's
    /// row until the transaction ends, so the lease cannot change under the
    /// caller. The error tells an unknown task from a stale lease.
    async fn fence(&self, tx: &mut Transaction<'static, Any>, lease: &LeaseRef) -> Result<Fenced> {
        let row = sqlx::query(self.sql(
            "SELECT sweep_id, attempt, handbacks, max_attempts, cancel_requested FROM tasks \
             WHERE id = $1 AND state = 'leased' AND lease_token = $2{lock}",
        ))
        .bind(lease.task_id.0)
        .bind(lease.token.clone())
        .fetch_optional(&mut **tx)
        .await?;
        match row {
            Some(row) => Fenced::from_row(&row),
            None => Err(self.not_leased(tx, lease.task_id).await),
        }
    }

    async fn not_leased(&self, tx: &mut Transaction<'static, Any>, task: TaskId) -> Error {
        let state = sqlx::query_scalar::<_, String>("SELECT state FROM tasks WHERE id = $1")
            .bind(task.0)
            .fetch_optional(&mut **tx)
            .await;
        match state {
            Ok(None) => Error::not_found("task", task),
            Ok(Some(state)) => match parse_state(&state) {
                Ok(state) => Error::StaleLease { task, state },
                Err(err) => err,
            },
            Err(err) => err.into(),
        }
    }

    /// Ends the current attempt of a task whose lease was fenced, then
    /// unblocks or fails its dependents as the new state requires.
    async fn end_attempt(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
        ending: Ending<'_>,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "UPDATE tasks SET state = $2, \
             error = CASE WHEN $2 = 'succeeded' THEN NULL ELSE COALESCE($3, error) END, \
             summary = COALESCE($4, summary), handbacks = handbacks + $5, \
             finished_at = CASE WHEN $6 = 1 THEN {now} ELSE NULL END, \
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
             WHERE id = $1",
        ))
        .bind(task.0)
        .bind(ending.state.as_str())
        .bind(ending.error.map(str::to_string))
        .bind(ending.summary)
        .bind(ending.handback)
        .bind(i64::from(ending.state.is_final()))
        .execute(&mut **tx)
        .await?;
        match ending.state {
            TaskState::Succeeded => self.unblock_dependents(tx, task).await,
            TaskState::Failed => self.fail_dependents(tx, task).await,
            _ => Ok(()),
        }
    }

    /// Queues the dependents of `task` whose dependencies have all succeeded.
    async fn unblock_dependents(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
    ) -> Result<()> {
        // Lock the dependents first: two dependencies finishing at once then
        // take turns, and the second sees the first's success.
        sqlx::query(self.sql(
            "SELECT id FROM tasks WHERE state = 'blocked' \
             AND id IN (SELECT task_id FROM task_deps WHERE depends_on = $1){lock}",
        ))
        .bind(task.0)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE tasks SET state = 'queued' WHERE state = 'blocked' \
             AND id IN (SELECT task_id FROM task_deps WHERE depends_on = $1) \
             AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks t ON t.id = d.depends_on \
                             WHERE d.task_id = tasks.id AND t.state <> 'succeeded')",
        )
        .bind(task.0)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Fails every task that waits, directly or not, on `task`.
    async fn fail_dependents(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "WITH RECURSIVE doomed(id) AS ( \
                 SELECT task_id FROM task_deps WHERE depends_on = $1 \
                 UNION SELECT d.task_id FROM task_deps d JOIN doomed ON d.depends_on = doomed.id) \
             UPDATE tasks SET state = 'failed', error = $2, finished_at = {now} \
             WHERE state = 'blocked' AND id IN (SELECT id FROM doomed)",
        ))
        .bind(task.0)
        .bind(format!("dependency task {task} failed"))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Keeps the finite numbers of a completed task's summary for reports.
    async fn insert_figures(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
        summary: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query("DELETE FROM task_figures WHERE task_id = $1")
            .bind(task.0)
            .execute(&mut **tx)
            .await?;
        let figures: Vec<(&String, f64)> = summary
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name, value.as_f64().filter(|v| v.is_finite())?)))
            .collect();
        for chunk in figures.chunks(INSERT_BATCH) {
            let sql = format!(
                "INSERT INTO task_figures (task_id, name, value) VALUES {}",
                placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (name, value) in chunk {
                query = query.bind(task.0).bind(name.as_str()).bind(*value);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn touch_worker(
        &self,
        tx: &mut Transaction<'static, Any>,
        worker: WorkerId,
    ) -> Result<()> {
        let touched =
            sqlx::query(self.sql("UPDATE workers SET last_heartbeat_at = {now} WHERE id = $1"))
                .bind(worker.0)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        if touched == 0 {
            return Err(Error::not_found("worker", worker));
        }
        Ok(())
    }

    async fn insert_tasks(
        &self,
        tx: &mut Transaction<'static, Any>,
        sweep: SweepId,
        new: &NewSweep,
        now: i64,
    ) -> Result<Vec<TaskId>> {
        let plan = &new.plan;
        let mut ids = vec![TaskId(0); plan.tasks.len()];
        let ordinals: Vec<usize> = (0..plan.tasks.len()).collect();
        for chunk in ordinals.chunks(INSERT_BATCH) {
            let sql = format!(
                "INSERT INTO tasks (sweep_id, ordinal, kind, params, setting, requires, priority, \
                 state, max_attempts, created_at) VALUES {} RETURNING id, ordinal",
                placeholders(chunk.len(), 10)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for &ordinal in chunk {
                let task = &plan.tasks[ordinal];
                let state = if task.depends_on.is_empty() {
                    TaskState::Queued
                } else {
                    TaskState::Blocked
                };
                let params = serde_json::to_string(&task.params)
                    .map_err(|err| Error::Corrupt(format!("task parameters: {err}")))?;
                query = query
                    .bind(sweep.0)
                    .bind(ordinal as i64)
                    .bind(task.params.experiment.as_str())
                    .bind(params)
                    .bind(task.params.setting_key())
                    .bind(plan.requires.as_str())
                    .bind(plan.priority)
                    .bind(state.as_str())
                    .bind(plan.max_attempts)
                    .bind(now);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let ordinal: i64 = row.try_get("ordinal")?;
                ids[ordinal as usize] = TaskId(row.try_get("id")?);
            }
        }
        let edges: Vec<(TaskId, TaskId, i64)> = plan
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(i, task)| {
                let ids = &ids;
                task.depends_on
                    .iter()
                    .enumerate()
                    .map(move |(position, dep)| (ids[i], ids[*dep], position as i64))
            })
            .collect();
        for chunk in edges.chunks(INSERT_BATCH) {
            let sql = format!(
                "INSERT INTO task_deps (task_id, depends_on, position) VALUES {}",
                placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (task, dep, position) in chunk {
                query = query.bind(task.0).bind(dep.0).bind(*position);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(ids)
    }
}

/// `($1, $2, $3), ($4, $5, $6), ...` for a multi-row INSERT.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let cells: Vec<String> = (1..=columns)
                .map(|col| format!("${}", row * columns + col))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_state(text: &str) -> Result<TaskState> {
    TaskState::parse(text).ok_or_else(|| Error::Corrupt(format!("unknown task state {text:?}")))
}

fn task_from_row(row: &AnyRow) -> Result<Task> {
    Ok(Task {
        id: TaskId(row.try_get("id")?),
        sweep_id: SweepId(row.try_get("sweep_id")?),
        kind: row.try_get("kind")?,
        state: parse_state(&row.try_get::<String, _>("state")?)?,
        params: row.try_get("params")?,
        depends_on: Vec::new(),
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        lease_owner: row.try_get::<Option<i64>, _>("lease_owner")?.map(WorkerId),
        error: row.try_get("error")?,
        summary: row.try_get("summary")?,
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqlStore {
    async fn create_sweep(&self, new: NewSweep) -> Result<SweepId> {
        let mut tx = self.pool.begin().await?;
        let now = self.now(&mut tx).await?;
        let plan = &new.plan;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sweeps (name, experiment, spec_toml, spec_json, priority, max_attempts, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(plan.name.clone())
        .bind(plan.experiment.as_str())
        .bind(new.spec_toml.clone())
        .bind(new.spec_json.clone())
        .bind(plan.priority)
        .bind(plan.max_attempts)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let sweep = SweepId(id);
        self.insert_tasks(&mut tx, sweep, &new, now).await?;
        self.commit_change(tx).await?;
        Ok(sweep)
    }

    async fn sweep(&self, id: SweepId) -> Result<Sweep> {
        let mut tx = self.pool.begin().await?;
        let row = self.sweep_row(&mut tx, id).await?;
        let mut sweeps = self.sweeps_from_rows(&mut tx, vec![row]).await?;
        tx.commit().await?;
        sweeps.pop().ok_or_else(|| Error::not_found("sweep", id))
    }

    async fn sweeps(&self, limit: u32) -> Result<Vec<Sweep>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, name, experiment, priority, created_at, cancelled_at, spec_toml \
             FROM sweeps ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let sweeps = self.sweeps_from_rows(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(sweeps)
    }

    async fn tasks(&self, sweep: SweepId, states: &[TaskState]) -> Result<Vec<Task>> {
        let mut tx = self.pool.begin().await?;
        self.sweep_row(&mut tx, sweep).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE sweep_id = $1 ORDER BY ordinal"
        )))
        .bind(sweep.0)
        .fetch_all(&mut *tx)
        .await?;
        let mut tasks = self.tasks_from_rows(&mut tx, rows).await?;
        tx.commit().await?;
        if !states.is_empty() {
            tasks.retain(|task| states.contains(&task.state));
        }
        Ok(tasks)
    }

    async fn task(&self, id: TaskId) -> Result<Task> {
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
    }

    async fn cancel_sweep(&self, id: SweepId) -> Result<CancelOutcome> {
        let mut tx = self.pool.begin().await?;
        let row = self.sweep_row(&mut tx, id).await?;
        let sweep = self.sweeps_from_rows(&mut tx, vec![row]).await?.remove(0);
        if sweep.state.is_final() {
            return Ok(CancelOutcome::default());
        }
        sqlx::query(self.sql("UPDATE sweeps SET cancelled_at = {now} WHERE id = $1"))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let cancelled = sqlx::query(self.sql(
            "UPDATE tasks SET state = 'cancelled', finished_at = {now} \
             WHERE sweep_id = $1 AND state IN ('queued', 'blocked')",
        ))
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let signalled = sqlx::query(
            "UPDATE tasks SET cancel_requested = 1 WHERE sweep_id = $1 AND state = 'leased'",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit_change(tx).await?;
        Ok(CancelOutcome {
            cancelled,
            signalled,
        })
    }

    async fn retry_sweep(&self, id: SweepId) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let row = self.sweep_row(&mut tx, id).await?;
        if row.try_get::<Option<i64>, _>("cancelled_at")?.is_some() {
            return Err(Error::Precondition(format!(
                "sweep {id} was cancelled; submit it again to rerun it"
            )));
        }
        let requeued = sqlx::query(
            "UPDATE tasks SET \
               state = CASE WHEN EXISTS (SELECT 1 FROM task_deps d JOIN tasks t ON t.id = d.depends_on \
                                         WHERE d.task_id = tasks.id AND t.state <> 'succeeded') \
                       THEN 'blocked' ELSE 'queued' END, \
               max_attempts = attempt - handbacks + (SELECT max_attempts FROM sweeps WHERE id = $1), \
               finished_at = NULL \
             WHERE sweep_id = $1 AND state = 'failed'",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit_change(tx).await?;
        Ok(requeued)
    }

    async fn register_worker(&self, worker: NewWorker) -> Result<WorkerId> {
        let devices = serde_json::to_string(&worker.devices)
            .map_err(|err| Error::Corrupt(format!("devices: {err}")))?;
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO workers (name, host, backend, devices, slots, version, registered_at, \
             last_heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, {now}, {now}) RETURNING id",
        ))
        .bind(worker.name)
        .bind(worker.host)
        .bind(worker.backend)
        .bind(devices)
        .bind(i64::from(worker.slots))
        .bind(worker.version)
        .fetch_one(&self.pool)
        .await?;
        Ok(WorkerId(id))
    }

    async fn workers(&self) -> Result<Vec<Worker>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(self.sql(
            "SELECT id, name, host, backend, devices, slots, version, registered_at, \
             last_heartbeat_at, {now} AS now FROM workers ORDER BY id DESC",
        ))
        .fetch_all(&mut *tx)
        .await?;
        let held =
            sqlx::query("SELECT id, lease_owner FROM tasks WHERE state = 'leased' ORDER BY id")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let mut running: BTreeMap<i64, Vec<TaskId>> = BTreeMap::new();
        for row in held {
            let owner: Option<i64> = row.try_get("lease_owner")?;
            if let Some(owner) = owner {
                running
                    .entry(owner)
                    .or_default()
                    .push(TaskId(row.try_get("id")?));
            }
        }
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let devices: String = row.try_get("devices")?;
                let last: i64 = row.try_get("last_heartbeat_at")?;
                let now: i64 = row.try_get("now")?;
                Ok(Worker {
                    id: WorkerId(id),
                    info: NewWorker {
                        name: row.try_get("name")?,
                        host: row.try_get("host")?,
                        backend: row.try_get("backend")?,
                        devices: serde_json::from_str(&devices)
                            .map_err(|err| Error::Corrupt(format!("worker {id} devices: {err}")))?,
                        slots: row.try_get::<i64, _>("slots")? as u32,
                        version: row.try_get("version")?,
                    },
                    registered_at: row.try_get("registered_at")?,
                    last_heartbeat_at: last,
                    silent_for: Duration::from_millis((now - last).max(0) as u64),
                    running: running.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn lease(
        &self,
        worker: WorkerId,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<Vec<Lease>> {
        let mut tx = self.pool.begin().await?;
        self.touch_worker(&mut tx, worker).await?;
        if max == 0 {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rows = sqlx::query(self.sql(
            // MATERIALIZED: PostgreSQL may otherwise run the LIMIT sub-select
            // more than once and claim more than `max` rows.
            "WITH picked AS MATERIALIZED ( \
               SELECT id FROM tasks WHERE state = 'queued' AND (requires = 'cpu' OR $3 = 1) \
               ORDER BY priority DESC, id LIMIT $4{skip_locked}) \
             UPDATE tasks SET state = 'leased', attempt = attempt + 1, lease_owner = $1, \
               lease_token = {token}, lease_expires_at = {now} + $2, cancel_requested = 0, \
               started_at = COALESCE(started_at, {now}) \
             WHERE state = 'queued' AND id IN (SELECT id FROM picked) \
             RETURNING id, sweep_id, lease_token, attempt, kind, params, lease_expires_at",
        ))
        .bind(worker.0)
        .bind(millis(ttl))
        .bind(i64::from(fit.cuda))
        .bind(i64::from(max))
        .fetch_all(&mut *tx)
        .await?;
        let mut leases = rows
            .iter()
            .map(|row| {
                Ok(Lease {
                    task_id: TaskId(row.try_get("id")?),
                    sweep_id: SweepId(row.try_get("sweep_id")?),
                    token: row.try_get("lease_token")?,
                    attempt: row.try_get::<i64, _>("attempt")? as u32,
                    kind: row.try_get("kind")?,
                    params: row.try_get("params")?,
                    depends_on: Vec::new(),
                    expires_at: row.try_get("lease_expires_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<TaskId> = leases.iter().map(|l| l.task_id).collect();
        let mut deps = self.dependencies(&mut tx, &ids).await?;
        tx.commit().await?;
        leases.sort_by_key(|lease| lease.task_id);
        for lease in &mut leases {
            lease.depends_on = deps.remove(&lease.task_id).unwrap_or_default();
        }
        Ok(leases)
    }

    async fn heartbeat(
        &self,
        worker: WorkerId,
        leases: &[LeaseRef],
        ttl: Duration,
    ) -> Result<Vec<LeaseStatus>> {
        let mut tx = self.pool.begin().await?;
        self.touch_worker(&mut tx, worker).await?;
        let mut statuses = Vec::with_capacity(leases.len());
        for lease in leases {
            let row = sqlx::query(self.sql(
                "UPDATE tasks SET lease_expires_at = {now} + $3 \
                 WHERE id = $1 AND state = 'leased' AND lease_token = $2 \
                 RETURNING cancel_requested, lease_expires_at",
            ))
            .bind(lease.task_id.0)
            .bind(lease.token.clone())
            .bind(millis(ttl))
            .fetch_optional(&mut *tx)
            .await?;
            let status = match row {
                Some(row) => LeaseStatus {
                    task_id: lease.task_id,
                    verdict: if row.try_get::<i64, _>("cancel_requested")? != 0 {
                        Verdict::Cancel
                    } else {
                        Verdict::Keep
                    },
                    expires_at: Some(row.try_get("lease_expires_at")?),
                },
                None => LeaseStatus {
                    task_id: lease.task_id,
                    verdict: Verdict::Lost,
                    expires_at: None,
                },
            };
            statuses.push(status);
        }
        tx.commit().await?;
        Ok(statuses)
    }

    async fn record_metrics(&self, lease: &LeaseRef, points: &[MetricPoint]) -> Result<u64> {
        if let Some(bad) = points.iter().find(|p| !p.value.is_finite()) {
            return Err(Error::InvalidRequest(format!(
                "metric {:?} at step {} is {}: metric values must be finite",
                bad.name, bad.step, bad.value
            )));
        }
        let mut tx = self.pool.begin().await?;
        let fenced = self.fence(&mut tx, lease).await?;
        let mut stored = 0;
        for chunk in points.chunks(INSERT_BATCH) {
            let sql = format!(
                "INSERT INTO metrics (task_id, attempt, name, step, epoch, value) VALUES {} \
                 ON CONFLICT (task_id, attempt, name, step) DO NOTHING",
                placeholders(chunk.len(), 6)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for point in chunk {
                query = query
                    .bind(lease.task_id.0)
                    .bind(fenced.attempt)
                    .bind(point.name.clone())
                    .bind(point.step)
                    .bind(point.epoch)
                    .bind(point.value);
            }
            stored += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn report(&self, sweep: SweepId) -> Result<Vec<SettingReport>> {
        let mut tx = self.pool.begin().await?;
        self.sweep_row(&mut tx, sweep).await?;
        let settings = sqlx::query(
            "SELECT g.setting, g.tasks, g.succeeded, g.failed, p.params FROM \
               (SELECT setting, MIN(ordinal) AS first, COUNT(*) AS tasks, \
                  SUM(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END) AS succeeded, \
                  SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed \
                FROM tasks WHERE sweep_id = $1 GROUP BY setting) g \
             JOIN tasks p ON p.sweep_id = $2 AND p.ordinal = g.first \
             ORDER BY g.first",
        )
        .bind(sweep.0)
        .bind(sweep.0)
        .fetch_all(&mut *tx)
        .await?;
        // Two passes (mean, then squared deviations from it) keep the
        // standard deviation exact where a sum of squares would cancel.
        let figures = sqlx::query(
            "WITH v AS (SELECT t.setting, f.name, f.value FROM task_figures f \
               JOIN tasks t ON t.id = f.task_id \
               WHERE t.sweep_id = $1 AND t.state = 'succeeded'), \
             m AS (SELECT setting, name, COUNT(*) AS n, AVG(value) AS mean FROM v \
               GROUP BY setting, name) \
             SELECT m.setting, m.name, m.n, m.mean, \
               SUM((v.value - m.mean) * (v.value - m.mean)) AS squares \
             FROM m JOIN v ON v.setting = m.setting AND v.name = m.name \
             GROUP BY m.setting, m.name, m.n, m.mean",
        )
        .bind(sweep.0)
        .fetch_all(&mut *tx)
        .await?;
        let mut by_setting: HashMap<String, BTreeMap<String, FigureStats>> = HashMap::new();
        for row in figures {
            let n: i64 = row.try_get("n")?;
            let squares: f64 = row.try_get("squares")?;
            let stats = FigureStats {
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
                Ok(SettingReport {
                    params: row.try_get("params")?,
                    tasks: row.try_get::<i64, _>("tasks")? as u64,
                    succeeded: row.try_get::<i64, _>("succeeded")? as u64,
                    failed: row.try_get::<i64, _>("failed")? as u64,
                    figures: by_setting.remove(&setting).unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(reports)
    }

    async fn metrics(&self, task: TaskId) -> Result<Vec<Metric>> {
        let mut tx = self.pool.begin().await?;
        let attempt: i64 = sqlx::query_scalar("SELECT attempt FROM tasks WHERE id = $1")
            .bind(task.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("task", task))?;
        let rows = sqlx::query(
            "SELECT name, step, epoch, value FROM metrics \
             WHERE task_id = $1 AND attempt = $2 ORDER BY name, step",
        )
        .bind(task.0)
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
    }

    async fn put_artifact(&self, lease: &LeaseRef, artifact: NewArtifact) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let fenced = self.fence(&mut tx, lease).await?;
        let size = artifact.data.len() as i64;
        sqlx::query(self.sql(
            "INSERT INTO artifacts (task_id, attempt, name, encoding, size, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, {now}) \
             ON CONFLICT (task_id, attempt, name) DO UPDATE SET encoding = excluded.encoding, \
               size = excluded.size, data = excluded.data, created_at = excluded.created_at",
        ))
        .bind(lease.task_id.0)
        .bind(fenced.attempt)
        .bind(artifact.name)
        .bind(artifact.encoding)
        .bind(size)
        .bind(artifact.data)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn artifact(&self, task: TaskId, name: &str) -> Result<Artifact> {
        let mut tx = self.pool.begin().await?;
        let attempt: i64 = sqlx::query_scalar("SELECT attempt FROM tasks WHERE id = $1")
            .bind(task.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("task", task))?;
        let row = sqlx::query(
            "SELECT encoding, data FROM artifacts WHERE task_id = $1 AND attempt = $2 AND name = $3",
        )
        .bind(task.0)
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
    }

    async fn complete(&self, lease: &LeaseRef, summary: &serde_json::Value) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.fence(&mut tx, lease).await?;
        let ending = Ending {
            state: TaskState::Succeeded,
            error: None,
            summary: Some(summary.to_string()),
            handback: 0,
        };
        self.end_attempt(&mut tx, lease.task_id, ending).await?;
        self.insert_figures(&mut tx, lease.task_id, summary).await?;
        self.commit_change(tx).await
    }

    async fn fail(&self, lease: &LeaseRef, error: &str, retryable: bool) -> Result<TaskState> {
        let mut tx = self.pool.begin().await?;
        let fenced = self.fence(&mut tx, lease).await?;
        let state = fenced.after_failure(retryable);
        let ending = Ending {
            state,
            error: Some(error),
            summary: None,
            handback: 0,
        };
        self.end_attempt(&mut tx, lease.task_id, ending).await?;
        self.commit_change(tx).await?;
        Ok(state)
    }

    async fn release(&self, lease: &LeaseRef) -> Result<TaskState> {
        let mut tx = self.pool.begin().await?;
        let fenced = self.fence(&mut tx, lease).await?;
        let state = if fenced.cancel_requested {
            TaskState::Cancelled
        } else {
            TaskState::Queued
        };
        let ending = Ending {
            state,
            error: None,
            summary: None,
            handback: 1,
        };
        self.end_attempt(&mut tx, lease.task_id, ending).await?;
        self.commit_change(tx).await?;
        Ok(state)
    }

    async fn reap_expired(&self) -> Result<ReapOutcome> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(self.sql(
            "SELECT id, sweep_id, attempt, handbacks, max_attempts, cancel_requested, lease_owner \
             FROM tasks WHERE state = 'leased' AND lease_expires_at < {now} \
             ORDER BY id{skip_locked}",
        ))
        .fetch_all(&mut *tx)
        .await?;
        let mut outcome = ReapOutcome::default();
        for row in rows {
            let task = TaskId(row.try_get("id")?);
            let fenced = Fenced::from_row(&row)?;
            let owner: Option<i64> = row.try_get("lease_owner")?;
            let error = format!(
                "lease expired: worker {} stopped heartbeating during attempt {} of {}",
                owner.unwrap_or_default(),
                fenced.attempt - fenced.handbacks,
                fenced.max_attempts
            );
            let state = fenced.after_failure(true);
            let ending = Ending {
                state,
                error: Some(&error),
                summary: None,
                handback: 0,
            };
            self.end_attempt(&mut tx, task, ending).await?;
            tracing::info!(task = %task, sweep = %fenced.sweep_id, %state, "reaped an expired lease");
            match state {
                TaskState::Queued => outcome.requeued.push(task),
                TaskState::Cancelled => outcome.cancelled.push(task),
                _ => outcome.failed.push(task),
            }
        }
        if outcome.is_empty() {
            tx.commit().await?;
        } else {
            self.commit_change(tx).await?;
        }
        Ok(outcome)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.signal.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_cell() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    fn fenced(attempt: i64, handbacks: i64, cancel_requested: bool) -> Fenced {
        Fenced {
            sweep_id: SweepId(1),
            attempt,
            handbacks,
            max_attempts: 3,
            cancel_requested,
        }
    }

    #[test]
    fn a_failed_attempt_is_retried_while_attempts_remain() {
        assert_eq!(fenced(2, 0, false).after_failure(true), TaskState::Queued);
        assert_eq!(fenced(3, 0, false).after_failure(true), TaskState::Failed);
        // Hand-backs do not use up attempts.
        assert_eq!(fenced(4, 2, false).after_failure(true), TaskState::Queued);
        assert_eq!(fenced(1, 0, false).after_failure(false), TaskState::Failed);
        assert_eq!(fenced(1, 0, true).after_failure(true), TaskState::Cancelled);
    }
}
