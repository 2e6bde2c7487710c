//! [`SweepStore`] over SQL: storing a planned sweep with its tasks, finding
//! it again, growing it, cancelling and retrying it.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use sweep_proto::{CancelOutcome, SeedRound, Sweep, SweepId, TaskId, TaskState};
use sweep_spec::identity::KEY_LAYOUT;
use sweep_spec::planner::spec_key;
use sweep_spec::{Identity, Submission};

use super::{INSERT_BATCH, SWEEP_COLUMNS, SqlStore, params_from_row, params_json, placeholders};
use crate::error::{Error, Result};
use crate::store::SweepStore;

impl SqlStore {
    /// Inserts the planned tasks that `known` does not already name (by
    /// plan index), numbered from `first_ordinal` in plan order, with their
    /// dependency edges (to new and known tasks alike), and counts the new
    /// edges on the known tasks they point at. Answers every planned task's
    /// id. New tasks with dependencies start blocked.
    async fn insert_tasks(
        &self,
        tx: &mut Transaction<'static, Any>,
        sweep: SweepId,
        new: &Submission,
        now: i64,
        known: &[Option<TaskId>],
        first_ordinal: i64,
    ) -> Result<Vec<TaskId>> {
        let plan = &new.plan;
        let fresh: Vec<usize> = (0..plan.tasks.len())
            .filter(|&i| known.get(i).copied().flatten().is_none())
            .collect();
        let mut ids: Vec<TaskId> = (0..plan.tasks.len())
            .map(|i| known.get(i).copied().flatten().unwrap_or(TaskId(0)))
            .collect();
        let mut dependents = vec![0_i64; plan.tasks.len()];
        for &i in &fresh {
            for &dep in &plan.tasks[i].depends_on {
                dependents[dep] += 1;
            }
        }
        for chunk in fresh.chunks(INSERT_BATCH) {
            let sql = format!(
                "INSERT INTO tasks (sweep_id, ordinal, kind, params, setting, requires, priority, \
                 state, max_attempts, created_at, dependents, dependencies, task_key, key_layout) \
                 VALUES {} RETURNING id, ordinal",
                placeholders(chunk.len(), 14)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for &index in chunk {
                let task = &plan.tasks[index];
                let state = if task.depends_on.is_empty() {
                    TaskState::Queued
                } else {
                    TaskState::Blocked
                };
                let rank = fresh.partition_point(|&i| i < index) as i64;
                query = query
                    .bind(sweep.0)
                    .bind(first_ordinal + rank)
                    .bind(task.params.kind().as_str())
                    .bind(params_json(&task.params))
                    .bind(task.params.setting_key())
                    .bind(plan.requires.as_str())
                    .bind(plan.priority)
                    .bind(state.as_str())
                    .bind(plan.max_attempts)
                    .bind(now)
                    .bind(dependents[index])
                    .bind(task.depends_on.len() as i64)
                    .bind(new.cache.then(|| task.params.task_key()))
                    .bind(KEY_LAYOUT);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let ordinal: i64 = row.try_get("ordinal")?;
                ids[fresh[(ordinal - first_ordinal) as usize]] = TaskId(row.try_get("id")?);
            }
        }
        let edges: Vec<(TaskId, TaskId, i64)> = fresh
            .iter()
            .flat_map(|&i| {
                let ids = &ids;
                (plan.tasks[i].depends_on.iter().enumerate())
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
        for (index, id) in known.iter().enumerate() {
            if let Some(id) = id
                && dependents[index] > 0
            {
                sqlx::query("UPDATE tasks SET dependents = dependents + $1 WHERE id = $2")
                    .bind(dependents[index])
                    .bind(id.0)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(ids)
    }

    /// The sweep's tasks by their identity, and the next free ordinal.
    async fn tasks_by_identity(
        &self,
        tx: &mut Transaction<'static, Any>,
        sweep: SweepId,
    ) -> Result<(HashMap<Identity, TaskId>, i64)> {
        let rows = sqlx::query("SELECT id, ordinal, params FROM tasks WHERE sweep_id = $1")
            .bind(sweep.0)
            .fetch_all(&mut **tx)
            .await?;
        let mut next = 0;
        let mut tasks = HashMap::with_capacity(rows.len());
        for row in rows {
            next = next.max(row.try_get::<i64, _>("ordinal")? + 1);
            let task = TaskId(row.try_get("id")?);
            tasks.insert(params_from_row(&row, task)?.identity(), task);
        }
        Ok((tasks, next))
    }

    /// Adds the tasks of `new`'s plan that the sweep lacks (a task it has
    /// is one with the same identity) after its own; answers how many.
    pub(super) async fn add_missing_tasks(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: SweepId,
        new: &Submission,
    ) -> Result<u64> {
        let (existing, next) = self.tasks_by_identity(tx, id).await?;
        let known: Vec<Option<TaskId>> = (new.plan.tasks.iter())
            .map(|task| existing.get(&task.params.identity()).copied())
            .collect();
        let added = known.iter().filter(|id| id.is_none()).count() as u64;
        let now = self.now(tx).await?;
        self.insert_tasks(tx, id, new, now, &known, next).await?;
        self.settle_new_dependents(tx, id, next).await?;
        Ok(added)
    }

    /// Settles the new tasks (from ordinal `first` on) that wait on tasks
    /// which already ended: queued when all succeeded, failed when one
    /// failed or was cancelled (it would wait forever).
    async fn settle_new_dependents(
        &self,
        tx: &mut Transaction<'static, Any>,
        sweep: SweepId,
        first: i64,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "UPDATE tasks SET state = {failed}, finished_at = {now}, \
               error = 'a task it depends on had already failed or been cancelled' \
             WHERE sweep_id = $1 AND ordinal >= $2 AND state = {blocked} \
               AND EXISTS (SELECT 1 FROM task_deps d JOIN tasks t ON t.id = d.depends_on \
                           WHERE d.task_id = tasks.id AND t.state IN ({failed}, {cancelled}))",
        ))
        .bind(sweep.0)
        .bind(first)
        .execute(&mut **tx)
        .await?;
        sqlx::query(self.sql(
            "UPDATE tasks SET state = {queued} \
             WHERE sweep_id = $1 AND ordinal >= $2 AND state = {blocked} \
               AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks t ON t.id = d.depends_on \
                               WHERE d.task_id = tasks.id AND t.state <> {succeeded})",
        ))
        .bind(sweep.0)
        .bind(first)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Rewrites the keys of tasks stored under an older identity layout
    /// (their `setting`, and their `task_key` where the sweep caches), so
    /// that they meet the keys of tasks planned now. Runs when the store
    /// opens, a batch at a time; a row whose parameters cannot be read
    /// keeps its keys (it is reported, and nothing will match it).
    pub(crate) async fn backfill_keys(&self) -> Result<()> {
        loop {
            let rows = sqlx::query(
                "SELECT id, params, task_key FROM tasks WHERE key_layout < $1 ORDER BY id LIMIT 1000",
            )
            .bind(KEY_LAYOUT)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = self.pool.begin().await?;
            for row in &rows {
                let task = TaskId(row.try_get("id")?);
                let update = match params_from_row(row, task) {
                    Ok(params) => {
                        let cached = row.try_get::<Option<String>, _>("task_key")?.is_some();
                        sqlx::query(
                            "UPDATE tasks SET setting = $1, task_key = $2, key_layout = $3 \
                             WHERE id = $4",
                        )
                        .bind(params.setting_key())
                        .bind(cached.then(|| params.task_key()))
                    }
                    Err(err) => {
                        tracing::warn!(task = %task, error = %err, "task keys not rewritten");
                        sqlx::query("UPDATE tasks SET key_layout = $1 WHERE id = $2")
                    }
                };
                update
                    .bind(KEY_LAYOUT)
                    .bind(task.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }

    /// Gives sweeps stored before spec keys existed their key, so that
    /// `sweep run` resumes them too. Runs when the store opens.
    pub(crate) async fn backfill_spec_keys(&self) -> Result<()> {
        let rows = sqlx::query("SELECT id, spec_toml FROM sweeps WHERE spec_key = ''")
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let spec_toml: String = row.try_get("spec_toml")?;
            sqlx::query("UPDATE sweeps SET spec_key = $1 WHERE id = $2")
                .bind(spec_key(&spec_toml))
                .bind(row.try_get::<i64, _>("id")?)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SweepStore for SqlStore {
    async fn create_sweep(&self, new: &Submission) -> Result<SweepId> {
        let mut tx = self.pool.begin().await?;
        let now = self.now(&mut tx).await?;
        let plan = &new.plan;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sweeps (name, experiment, spec_toml, spec_json, spec_key, priority, \
             max_attempts, created_at, deciding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id",
        )
        .bind(plan.name.clone())
        .bind(plan.experiment.as_str())
        .bind(new.spec_toml.clone())
        .bind(new.spec_json.clone())
        .bind(new.spec_key.clone())
        .bind(plan.priority)
        .bind(plan.max_attempts)
        .bind(now)
        .bind(i64::from(plan.adaptive.is_some()))
        .fetch_one(&mut *tx)
        .await?;
        let sweep = SweepId(id);
        self.insert_tasks(&mut tx, sweep, new, now, &[], 0).await?;
        self.commit_change(tx).await?;
        self.queue_grew().await;
        Ok(sweep)
    }

    async fn sweep_with_key(&self, spec_key: &str) -> Result<Option<Sweep>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SWEEP_COLUMNS} FROM sweeps WHERE spec_key = $1 ORDER BY id DESC LIMIT 1"
        )))
        .bind(spec_key.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut sweeps = self.sweeps_from_rows(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(sweeps.pop())
    }

    async fn cancel_sweep(&self, id: SweepId) -> Result<CancelOutcome> {
        let mut tx = self.pool.begin().await?;
        let row = self.sweep_row(&mut tx, &id.into()).await?;
        let sweep = self.sweeps_from_rows(&mut tx, vec![row]).await?.remove(0);
        if sweep.state.is_final() {
            return Ok(CancelOutcome::default());
        }
        sqlx::query(self.sql("UPDATE sweeps SET cancelled_at = {now} WHERE id = $1"))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let cancelled = sqlx::query(self.sql(
            "UPDATE tasks SET state = {cancelled}, finished_at = {now} \
             WHERE sweep_id = $1 AND state IN ({queued}, {blocked})",
        ))
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let signalled =
            sqlx::query(self.sql(
                "UPDATE tasks SET cancel_requested = 1 WHERE sweep_id = $1 AND state = {leased}",
            ))
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

    async fn extend_sweep(&self, id: SweepId, new: &Submission) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let row = self.sweep_row(&mut tx, &id.into()).await?;
        if row.try_get::<Option<i64>, _>("cancelled_at")?.is_some() {
            return Err(Error::Precondition(format!(
                "sweep {id} was cancelled; submit the spec as a new sweep"
            )));
        }
        let experiment: String = row.try_get("experiment")?;
        if experiment != new.plan.experiment.as_str() {
            return Err(Error::InvalidRequest(format!(
                "experiment = {:?}: sweep {id} is a {experiment:?} sweep",
                new.plan.experiment.as_str()
            )));
        }
        let added = self.add_missing_tasks(&mut tx, id, new).await?;
        sqlx::query(
            "UPDATE sweeps SET spec_toml = $1, spec_json = $2, spec_key = $3 WHERE id = $4",
        )
        .bind(new.spec_toml.clone())
        .bind(new.spec_json.clone())
        .bind(new.spec_key.clone())
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        self.commit_change(tx).await?;
        if added > 0 {
            self.queue_grew().await;
        }
        Ok(added)
    }

    async fn deciding_sweeps(&self) -> Result<Vec<SweepId>> {
        self.deciding().await
    }

    async fn decide_round(&self, id: SweepId, round: &SeedRound, new: &Submission) -> Result<bool> {
        self.record_round(id, round, new).await
    }

    async fn end_deciding(&self, id: SweepId) -> Result<()> {
        self.stop_deciding(id).await
    }

    async fn retry_sweep(&self, id: SweepId) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let row = self.sweep_row(&mut tx, &id.into()).await?;
        if row.try_get::<Option<i64>, _>("cancelled_at")?.is_some() {
            return Err(Error::Precondition(format!(
                "sweep {id} was cancelled; submit it again to rerun it"
            )));
        }
        let requeued = sqlx::query(self.sql(
            "UPDATE tasks SET \
               state = CASE WHEN EXISTS (SELECT 1 FROM task_deps d JOIN tasks t ON t.id = d.depends_on \
                                         WHERE d.task_id = tasks.id AND t.state <> {succeeded}) \
                       THEN {blocked} ELSE {queued} END, \
               max_attempts = attempt - handbacks + (SELECT max_attempts FROM sweeps WHERE id = $1), \
               finished_at = NULL \
             WHERE sweep_id = $1 AND state = {failed}",
        ))
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit_change(tx).await?;
        if requeued > 0 {
            self.queue_grew().await;
        }
        Ok(requeued)
    }
}
