//! The one implementation of the store traits over SQL, shared by PostgreSQL
//! and SQLite through sqlx's `Any` driver. The schema is the same on both
//! (times as BIGINT milliseconds, JSON as text) and so are the queries, except
//! for the few fragments in [`Dialect`]. Writing the queue logic once is what
//! keeps the two backends from drifting apart; the shared test suite checks
//! both.
//!
//! One module per trait: [`sweeps`] (with [`rounds`]: adaptive seeds'
//! decisions), [`workers`], [`queue`] (with
//! [`attempt`]: fencing and how an attempt ends; [`complete`]: how a batch
//! of completions is stored; [`points`]: metric points as JSON batches;
//! [`checkpoints`]; [`cache`]: result keys and tasks that point at another's
//! results) and
//! [`results`]. This module holds the store itself and the reads they
//! share; rows become typed values here (task parameters and summaries are
//! parsed from their JSON).

mod attempt;
mod cache;
mod checkpoints;
mod complete;
mod points;
mod queue;
mod results;
mod rounds;
mod sweeps;
mod workers;

use std::collections::HashMap;
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};
use sweep_proto::WorkerId;
use sweep_proto::{Sweep, SweepId, SweepRef, SweepState, Task, TaskCounts, TaskId, TaskState};
use sweep_spec::{ExperimentKind, Summary, TaskParams};
use tokio::task::JoinHandle;

use super::signal::Signal;
use crate::error::{Error, Result};

/// What differs between the databases. Query templates name the text
/// fragments as `{now}`, `{token}`, `{lock}` and `{skip_locked}`.
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
    /// A table read from a JSON array of objects bound as one parameter:
    /// `json_table(param, alias, columns)` with `columns` as (name, SQL
    /// type) pairs. A batch of any size is then one parameter and one
    /// statement.
    pub json_table: fn(param: &str, alias: &str, columns: &[(&str, &str)]) -> String,
    /// Refreshes the planner's statistics of `tasks`, where the plan of a
    /// lease depends on them (see [`SqlStore::queue_grew`]).
    pub analyze_tasks: Option<&'static str>,
}

/// Rows per multi-row INSERT: well under both databases' parameter limits.
pub(super) const INSERT_BATCH: usize = 500;

pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    signal: Signal,
    /// Changes made here, for other coordinators on the same database to
    /// hear of (PostgreSQL only; see `postgres::announce`).
    announce: Option<Signal>,
    /// Background work tied to this store (PostgreSQL's listener and
    /// announcer).
    background: Vec<JoinHandle<()>>,
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

/// The columns of `tasks` that [`task_from_row`] reads.
const TASK_COLUMNS: &str = "id, sweep_id, state, params, attempt, max_attempts, \
                            lease_owner, attempt_started_at, finished_at, resumed_from, error, \
                            summary, cached_from";

/// The columns of `sweeps` that [`SqlStore::sweeps_from_rows`] reads.
const SWEEP_COLUMNS: &str =
    "id, name, experiment, priority, created_at, cancelled_at, spec_toml, deciding";

impl SqlStore {
    pub(crate) fn new(pool: AnyPool, dialect: Dialect, signal: Signal) -> Self {
        Self {
            pool,
            dialect,
            signal,
            announce: None,
            background: Vec::new(),
        }
    }

    /// Shares this store's changes with other coordinators: each commit
    /// that changes tasks bumps `announce`, which the `background` tasks
    /// pass on.
    pub(crate) fn with_peers(mut self, announce: Signal, background: Vec<JoinHandle<()>>) -> Self {
        self.announce = Some(announce);
        self.background = background;
        self
    }

    /// Fills the dialect's fragments and the task states into a query
    /// template. A state is written `{queued}` and becomes `'queued'`,
    /// spelled by [`TaskState::as_str`], so a state's name in SQL cannot
    /// drift from the one the code reads back. The result is built only from
    /// constant text, never from input, so it is safe SQL.
    pub(super) fn sql(&self, template: &str) -> AssertSqlSafe<String> {
        let mut sql = String::with_capacity(template.len() + 64);
        let mut rest = template;
        // One pass over the template: a lease builds several queries, and
        // one `replace` per placeholder would copy each of them a dozen times.
        while let Some(open) = rest.find('{') {
            sql.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) if self.fill(&after[..close], &mut sql) => rest = &after[close + 1..],
                _ => {
                    sql.push('{');
                    rest = after;
                }
            }
        }
        sql.push_str(rest);
        AssertSqlSafe(sql)
    }

    /// Writes the text of placeholder `name`; false (and nothing written)
    /// when it is not one, so other braces in SQL stay as they are.
    fn fill(&self, name: &str, sql: &mut String) -> bool {
        let fragment = match name {
            "now" => self.dialect.now,
            "token" => self.dialect.token,
            "skip_locked" => self.dialect.skip_locked,
            "lock" => self.dialect.lock,
            _ => match TaskState::parse(name) {
                Some(state) => {
                    sql.extend(["'", state.as_str(), "'"]);
                    return true;
                }
                None => return false,
            },
        };
        sql.push_str(fragment);
        true
    }

    /// Tells the planner that many tasks were just queued. PostgreSQL plans
    /// a lease from its statistics: while they say few tasks are queued, it
    /// reads and sorts every queued task on each lease instead of taking the
    /// first few in index order (10,000 queued: half the throughput), and
    /// autovacuum refreshes them only a minute or so later. Analyzing costs
    /// about 130 ms at 10^6 tasks. A failure is only logged: the change it
    /// follows has committed, and the statistics catch up by themselves.
    pub(super) async fn queue_grew(&self) {
        let Some(analyze) = self.dialect.analyze_tasks else {
            return;
        };
        if let Err(err) = sqlx::query(analyze).execute(&self.pool).await {
            tracing::warn!(error = %err, "could not refresh the statistics of the task queue");
        }
    }

    /// [`Dialect::json_table`], for splicing into a template.
    pub(super) fn json_table(&self, param: &str, alias: &str, columns: &[(&str, &str)]) -> String {
        (self.dialect.json_table)(param, alias, columns)
    }

    /// Commits a transaction that changed task states and wakes the waiters,
    /// here and (through `announce`) in other coordinators.
    pub(super) async fn commit_change(&self, tx: Transaction<'static, Any>) -> Result<()> {
        tx.commit().await?;
        self.signal.bump();
        if let Some(announce) = &self.announce {
            announce.bump();
        }
        Ok(())
    }

    pub(super) async fn now(&self, tx: &mut Transaction<'static, Any>) -> Result<i64> {
        Ok(sqlx::query_scalar(self.sql("SELECT {now}"))
            .fetch_one(&mut **tx)
            .await?)
    }

    /// The sweep's row, by id or by name (the newest of that name).
    pub(super) async fn sweep_row(
        &self,
        tx: &mut Transaction<'static, Any>,
        which: &SweepRef,
    ) -> Result<AnyRow> {
        let query = match which {
            SweepRef::Id(id) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = $1"
            )))
            .bind(id.0),
            SweepRef::Name(name) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {SWEEP_COLUMNS} FROM sweeps WHERE name = $1 ORDER BY id DESC LIMIT 1"
            )))
            .bind(name.clone()),
        };
        query
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| match which {
                SweepRef::Id(id) => Error::not_found("sweep", id),
                SweepRef::Name(name) => Error::not_found("sweep", format!("{name:?}")),
            })
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
                "SELECT state, COUNT(*) AS n, MAX(finished_at) AS finished, \
                   SUM(CASE WHEN cached_from IS NULL THEN 0 ELSE 1 END) AS cached \
                 FROM tasks WHERE sweep_id = $1 GROUP BY state",
            )
            .bind(id.0)
            .fetch_all(&mut **tx)
            .await?;
            let entry = counts.entry(*id).or_default();
            for row in rows {
                let state = parse_state(&row.try_get::<String, _>("state")?)?;
                entry.0.add(state, row.try_get::<i64, _>("n")? as u64);
                entry.0.cached += row.try_get::<i64, _>("cached")? as u64;
                let finished: Option<i64> = row.try_get("finished")?;
                entry.1 = entry.1.max(finished);
            }
        }
        Ok(counts)
    }

    pub(super) async fn sweeps_from_rows(
        &self,
        tx: &mut Transaction<'static, Any>,
        rows: Vec<AnyRow>,
    ) -> Result<Vec<Sweep>> {
        let ids = rows
            .iter()
            .map(|row| row.try_get("id").map(SweepId))
            .collect::<Result<Vec<_>, _>>()?;
        let counts = self.sweep_counts(tx, &ids).await?;
        let mut rounds = self.seed_rounds(tx, &ids).await?;
        rows.iter()
            .map(|row| {
                let id = SweepId(row.try_get("id")?);
                let (counts, last_finish) = counts.get(&id).copied().unwrap_or_default();
                let cancelled_at: Option<i64> = row.try_get("cancelled_at")?;
                let deciding = row.try_get::<i64, _>("deciding")? != 0;
                let state = match (cancelled_at, SweepState::of(&counts)) {
                    (Some(_), _) => SweepState::Cancelled,
                    // Its last round is being decided: more seeds may come.
                    (None, state) if deciding && state.is_final() => SweepState::Running,
                    (None, state) => state,
                };
                let finished_at = match state {
                    SweepState::Cancelled => cancelled_at,
                    state if state.is_final() => last_finish,
                    _ => None,
                };
                let experiment: String = row.try_get("experiment")?;
                Ok(Sweep {
                    id,
                    name: row.try_get("name")?,
                    experiment: ExperimentKind::parse(&experiment).ok_or_else(|| {
                        Error::Corrupt(format!("sweep {id}: unknown experiment {experiment:?}"))
                    })?,
                    state,
                    priority: row.try_get("priority")?,
                    created_at: row.try_get("created_at")?,
                    finished_at,
                    counts,
                    spec_toml: row.try_get("spec_toml")?,
                    seed_rounds: rounds.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The dependencies of the tasks named, in order.
    pub(super) async fn dependencies(
        &self,
        tx: &mut Transaction<'static, Any>,
        tasks: &[TaskId],
    ) -> Result<HashMap<TaskId, Vec<TaskId>>> {
        let mut deps: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
        for chunk in tasks.chunks(INSERT_BATCH) {
            let cells: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT task_id, depends_on FROM task_deps WHERE task_id IN ({}) \
                 ORDER BY task_id, position",
                cells.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for task in chunk {
                query = query.bind(task.0);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let task = TaskId(row.try_get("task_id")?);
                deps.entry(task)
                    .or_default()
                    .push(TaskId(row.try_get("depends_on")?));
            }
        }
        Ok(deps)
    }

    pub(super) async fn tasks_from_rows(
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
}

/// `($1, $2, $3), ($4, $5, $6), ...` for a multi-row INSERT.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
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

pub(super) fn parse_state(text: &str) -> Result<TaskState> {
    TaskState::parse(text).ok_or_else(|| Error::Corrupt(format!("unknown task state {text:?}")))
}

pub(super) fn task_from_row(row: &AnyRow) -> Result<Task> {
    let id = TaskId(row.try_get("id")?);
    let summary: Option<String> = row.try_get("summary")?;
    Ok(Task {
        id,
        sweep_id: SweepId(row.try_get("sweep_id")?),
        state: parse_state(&row.try_get::<String, _>("state")?)?,
        params: params_from_row(row, id)?,
        depends_on: Vec::new(),
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        worker: row.try_get::<Option<i64>, _>("lease_owner")?.map(WorkerId),
        started_at: row.try_get("attempt_started_at")?,
        finished_at: row.try_get("finished_at")?,
        resumed_from: row.try_get::<i64, _>("resumed_from")? as u64,
        cached_from: row.try_get::<Option<i64>, _>("cached_from")?.map(TaskId),
        error: row.try_get("error")?,
        summary: summary
            .map(|text| Summary::from_json(&text))
            .transpose()
            .map_err(|err| Error::Corrupt(format!("task {id}: {err}")))?,
    })
}

/// The task parameters a row keeps as JSON.
pub(super) fn params_from_row(row: &AnyRow, task: TaskId) -> Result<TaskParams> {
    let json: String = row.try_get("params")?;
    serde_json::from_str(&json)
        .map_err(|err| Error::Corrupt(format!("task {task}: unreadable parameters: {err}")))
}

/// Parameters as a row keeps them.
pub(super) fn params_json(params: &TaskParams) -> String {
    sweep_proto::sweep::params_json(params)
}

pub(super) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_cell() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
