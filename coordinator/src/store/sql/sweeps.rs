//! [`SweepStore`] over SQL: storing a planned sweep with its tasks, finding
//! it again, cancelling and retrying it.

use async_trait::async_trait;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use sweep_proto::{CancelOutcome, Forget, Sweep, SweepId, TaskId, TaskState};
use sweep_spec::Submission;
use sweep_spec::planner::spec_key;

use super::{INSERT_BATCH, SWEEP_COLUMNS, SqlStore, params_json, placeholders};
use crate::error::{Error, Result};
use crate::store::SweepStore;

impl SqlStore {
    async fn insert_tasks(
        &self,
        tx: &mut Transaction<'static, Any>,
        sweep: SweepId,
        new: &Submission,
        now: i64,
    ) -> Result<Vec<TaskId>> {
        let plan = &new.plan;
        let mut ids = vec![TaskId(0); plan.tasks.len()];
        let ordinals: Vec<usize> = (0..plan.tasks.len()).collect();
        let mut dependents = vec![0_i64; plan.tasks.len()];
        for dep in plan.tasks.iter().flat_map(|task| &task.depends_on) {
            dependents[*dep] += 1;
        }
        for chunk in ordinals.chunks(INSERT_BATCH) {
            let sql = format!(
                "INSERT INTO tasks (sweep_id, ordinal, kind, params, setting, requires, priority, \
                 state, max_attempts, created_at, dependents, dependencies, task_key) VALUES {} \
                 RETURNING id, ordinal",
                placeholders(chunk.len(), 13)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for &ordinal in chunk {
                let task = &plan.tasks[ordinal];
                let state = if task.depends_on.is_empty() {
                    TaskState::Queued
                } else {
                    TaskState::Blocked
                };
                query = query
                    .bind(sweep.0)
                    .bind(ordinal as i64)
                    .bind(task.params.kind().as_str())
                    .bind(params_json(&task.params))
                    .bind(task.params.setting_key())
                    .bind(plan.requires.as_str())
                    .bind(plan.priority)
                    .bind(state.as_str())
                    .bind(plan.max_attempts)
                    .bind(now)
                    .bind(dependents[ordinal])
                    .bind(task.depends_on.len() as i64)
                    .bind(new.cache.then(|| task.params.task_key()));
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
             max_attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(plan.name.clone())
        .bind(plan.experiment.as_str())
        .bind(new.spec_toml.clone())
        .bind(new.spec_json.clone())
        .bind(new.spec_key.clone())
        .bind(plan.priority)
        .bind(plan.max_attempts)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let sweep = SweepId(id);
        self.insert_tasks(&mut tx, sweep, new, now).await?;
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

    async fn forget_results(&self, which: Forget) -> Result<u64> {
        self.forget(which).await
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
