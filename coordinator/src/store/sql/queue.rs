//! [`QueueStore`] over SQL: leases, heartbeats and the fenced reports a
//! worker makes under a lease.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};
use sweep_proto::{Lease, LeaseRef, LeaseStatus, MetricPoint, SweepId, TaskId, TaskState};
use sweep_proto::{Verdict, WorkerId};
use tokio::sync::watch;

use super::attempt::{Ending, Fenced};
use super::{SqlStore, millis, params_from_row};
use crate::error::{Error, Result};
use crate::store::{Capabilities, Completion, NewArtifact, QueueStore, ReapOutcome};

#[async_trait]
impl QueueStore for SqlStore {
    async fn complete_and_lease(
        &self,
        completions: &[Completion<'_>],
        worker: WorkerId,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<(Vec<Result<()>>, Vec<Lease>)> {
        let mut tx = self.pool.begin().await?;
        self.touch_worker(&mut tx, worker).await?;
        let outcomes = self.succeed_all(&mut tx, completions).await?;
        let leases = self.claim(&mut tx, worker, fit, max, ttl).await?;
        if outcomes.iter().any(Result::is_ok) {
            self.commit_change(tx).await?;
        } else {
            tx.commit().await?;
        }
        Ok((outcomes, leases))
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
        finite(points)?;
        let stored = self.insert_points(lease, points).await?;
        if stored == 0 {
            // Every point was a duplicate, or the lease is not current: only
            // the second is an error.
            let mut tx = self.pool.begin().await?;
            self.fence(&mut tx, lease).await?;
            tx.commit().await?;
        }
        Ok(stored)
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

    async fn complete_many(&self, completions: &[Completion<'_>]) -> Result<Vec<Result<()>>> {
        let mut tx = self.pool.begin().await?;
        let outcomes = self.succeed_all(&mut tx, completions).await?;
        if outcomes.iter().any(Result::is_ok) {
            self.commit_change(tx).await?;
        }
        Ok(outcomes)
    }

    async fn fail(&self, lease: &LeaseRef, error: &str, retryable: bool) -> Result<TaskState> {
        let mut tx = self.pool.begin().await?;
        let fenced = self.fence(&mut tx, lease).await?;
        let state = fenced.after_failure(retryable);
        let ending = Ending {
            state,
            error: Some(error),
            handback: 0,
        };
        self.end_attempt(&mut tx, lease, ending).await?;
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
            handback: 1,
        };
        self.end_attempt(&mut tx, lease, ending).await?;
        self.commit_change(tx).await?;
        Ok(state)
    }

    async fn reap_expired(&self) -> Result<ReapOutcome> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(self.sql(
            "SELECT id, sweep_id, attempt, handbacks, max_attempts, cancel_requested, lease_owner, \
             lease_token FROM tasks WHERE state = 'leased' AND lease_expires_at < {now} \
             ORDER BY id{skip_locked}",
        ))
        .fetch_all(&mut *tx)
        .await?;
        let mut outcome = ReapOutcome::default();
        for row in rows {
            let task = TaskId(row.try_get("id")?);
            let lease = LeaseRef {
                task_id: task,
                token: row.try_get("lease_token")?,
            };
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
                handback: 0,
            };
            self.end_attempt(&mut tx, &lease, ending).await?;
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

impl SqlStore {
    /// Stores metric points under the lease's attempt in one statement,
    /// fenced by its own sub-select (which locks the task's row on
    /// PostgreSQL until the insert commits), with the whole batch as one
    /// JSON parameter: a batch costs one round trip. Points already stored
    /// are skipped; returns how many were new (0 for a stale lease too).
    async fn insert_points(&self, lease: &LeaseRef, points: &[MetricPoint]) -> Result<u64> {
        let rows: Vec<PointRow> = points.iter().map(PointRow::from).collect();
        let template = "INSERT INTO metrics (task_id, attempt, name, step, epoch, value) \
             SELECT t.id, t.attempt, p.name, p.step, p.epoch, p.value \
             FROM (SELECT id, attempt FROM tasks \
                   WHERE id = $1 AND state = 'leased' AND lease_token = $2{lock}) AS t, {p} \
             WHERE true ON CONFLICT (task_id, attempt, name, step) DO NOTHING"
            .replace("{p}", &self.json_table("$3", "p", &POINT_COLUMNS));
        let result = sqlx::query(self.sql(&template))
            .bind(lease.task_id.0)
            .bind(lease.token.clone())
            .bind(to_json(&rows)?)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    /// Claims up to `max` queued tasks for the worker, as
    /// [`QueueStore::lease`] says, inside the caller's transaction.
    async fn claim(
        &self,
        tx: &mut Transaction<'static, Any>,
        worker: WorkerId,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<Vec<Lease>> {
        if max == 0 {
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
             RETURNING id, sweep_id, lease_token, attempt, params, lease_expires_at, dependencies",
        ))
        .bind(worker.0)
        .bind(millis(ttl))
        .bind(i64::from(fit.cuda))
        .bind(i64::from(max))
        .fetch_all(&mut **tx)
        .await?;
        let mut with_deps = Vec::new();
        let mut leases = rows
            .iter()
            .map(|row| {
                let task_id = TaskId(row.try_get("id")?);
                if row.try_get::<i64, _>("dependencies")? > 0 {
                    with_deps.push(task_id);
                }
                Ok(Lease {
                    task_id,
                    sweep_id: SweepId(row.try_get("sweep_id")?),
                    token: row.try_get("lease_token")?,
                    attempt: row.try_get::<i64, _>("attempt")? as u32,
                    params: params_from_row(row, task_id)?,
                    depends_on: Vec::new(),
                    expires_at: row.try_get("lease_expires_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut deps = self.dependencies(tx, &with_deps).await?;
        leases.sort_by_key(|lease| lease.task_id);
        for lease in &mut leases {
            lease.depends_on = deps.remove(&lease.task_id).unwrap_or_default();
        }
        Ok(leases)
    }

    /// Completes each of `completions` inside the caller's transaction, as
    /// [`QueueStore::complete_many`] says; the caller commits.
    async fn succeed_all(
        &self,
        tx: &mut Transaction<'static, Any>,
        completions: &[Completion<'_>],
    ) -> Result<Vec<Result<()>>> {
        let mut outcomes: Vec<Result<()>> = completions.iter().map(|c| finite(c.points)).collect();
        let mut pending: Vec<usize> = (0..completions.len())
            .filter(|&i| outcomes[i].is_ok())
            .collect();
        while !pending.is_empty() {
            // A task named twice in one call is completed in call order, as
            // by separate calls: its later entries wait for a later round.
            let mut named = HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) = pending
                .into_iter()
                .partition(|&i| named.insert(completions[i].lease.task_id));
            let batch: Vec<&Completion<'_>> = round.iter().map(|&i| &completions[i]).collect();
            let succeeded = self.succeed(tx, &batch).await?;
            for i in round {
                let task = completions[i].lease.task_id;
                if !succeeded.contains(&task) {
                    outcomes[i] = Err(refusal(self.not_leased(tx, task).await)?);
                }
            }
            pending = later;
        }
        Ok(outcomes)
    }

    /// Marks a batch of tasks (each named once) succeeded, each fenced by
    /// its own lease, and stores their last metric points and their
    /// summaries' numbers: one statement for each, whatever the batch's
    /// size. Returns the tasks it completed; of the others, whose leases
    /// were not current, nothing changed.
    async fn succeed(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &[&Completion<'_>],
    ) -> Result<HashSet<TaskId>> {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            task: i64,
            token: &'a str,
            summary: String,
        }
        let rows: Vec<Row> = batch
            .iter()
            .map(|c| Row {
                task: c.lease.task_id.0,
                token: &c.lease.token,
                summary: c.summary.to_json(),
            })
            .collect();
        let columns = [("task", "bigint"), ("token", "text"), ("summary", "text")];
        let template = "UPDATE tasks SET state = 'succeeded', error = NULL, summary = c.summary, \
             finished_at = {now}, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
             FROM {c} WHERE tasks.id = c.task AND tasks.state = 'leased' \
               AND tasks.lease_token = c.token \
             RETURNING tasks.id AS id, tasks.attempt AS attempt, tasks.dependents AS dependents"
            .replace("{c}", &self.json_table("$1", "c", &columns));
        let ended = sqlx::query(self.sql(&template))
            .bind(to_json(&rows)?)
            .fetch_all(&mut **tx)
            .await?;
        let mut attempts = HashMap::with_capacity(ended.len());
        for row in ended {
            let task = TaskId(row.try_get("id")?);
            attempts.insert(task, row.try_get::<i64, _>("attempt")?);
            if row.try_get::<i64, _>("dependents")? > 0 {
                self.unblock_dependents(tx, task).await?;
            }
        }
        let succeeded: Vec<&Completion<'_>> = batch
            .iter()
            .filter(|c| attempts.contains_key(&c.lease.task_id))
            .copied()
            .collect();
        self.insert_last_points(tx, &succeeded, &attempts).await?;
        self.insert_summaries(tx, &succeeded).await?;
        Ok(attempts.into_keys().collect())
    }

    /// Stores the points that came with the completions, under the attempts
    /// that `succeed` ended. Points already stored are skipped.
    async fn insert_last_points(
        &self,
        tx: &mut Transaction<'static, Any>,
        succeeded: &[&Completion<'_>],
        attempts: &HashMap<TaskId, i64>,
    ) -> Result<()> {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            task: i64,
            attempt: i64,
            #[serde(flatten)]
            point: PointRow<'a>,
        }
        let rows: Vec<Row> = succeeded
            .iter()
            .flat_map(|c| {
                let (task, attempt) = (c.lease.task_id, attempts[&c.lease.task_id]);
                c.points.iter().map(move |p| Row {
                    task: task.0,
                    attempt,
                    point: PointRow::from(p),
                })
            })
            .collect();
        let mut columns = vec![("task", "bigint"), ("attempt", "bigint")];
        columns.extend(POINT_COLUMNS);
        let template = "INSERT INTO metrics (task_id, attempt, name, step, epoch, value) \
             SELECT r.task, r.attempt, r.name, r.step, r.epoch, r.value FROM {rows} \
             WHERE true ON CONFLICT (task_id, attempt, name, step) DO NOTHING";
        self.insert_rows(tx, template, &columns, &rows).await
    }

    /// Keeps the finite numbers of the completed tasks' summaries for
    /// reports. A task succeeds at most once (nothing queues a succeeded
    /// task again), so its numbers are written once; the upsert only makes
    /// a repeat harmless.
    async fn insert_summaries(
        &self,
        tx: &mut Transaction<'static, Any>,
        succeeded: &[&Completion<'_>],
    ) -> Result<()> {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            task: i64,
            name: &'a str,
            value: f64,
        }
        let rows: Vec<Row> = succeeded
            .iter()
            .flat_map(|c| {
                let task = c.lease.task_id.0;
                c.summary
                    .finite()
                    .map(move |(name, value)| Row { task, name, value })
            })
            .collect();
        let columns = [
            ("task", "bigint"),
            ("name", "text"),
            ("value", "double precision"),
        ];
        let template = "INSERT INTO summary_values (task_id, name, value) \
             SELECT r.task, r.name, r.value FROM {rows} \
             WHERE true ON CONFLICT (task_id, name) DO UPDATE SET value = excluded.value";
        self.insert_rows(tx, template, &columns, &rows).await
    }

    /// Runs an insert that reads `rows` as the JSON table `{rows}` (alias
    /// `r`, with `columns`); nothing when there are none.
    async fn insert_rows<T: serde::Serialize>(
        &self,
        tx: &mut Transaction<'static, Any>,
        template: &str,
        columns: &[(&str, &str)],
        rows: &[T],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let template = template.replace("{rows}", &self.json_table("$1", "r", columns));
        sqlx::query(self.sql(&template))
            .bind(to_json(rows)?)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// A refused task's error, or the database's failure, which dooms the
/// whole call.
fn refusal(err: Error) -> Result<Error> {
    match err {
        Error::StaleLease { .. } | Error::NotFound { .. } => Ok(err),
        err => Err(err),
    }
}

/// Refuses a batch with a value no report could use.
fn finite(points: &[MetricPoint]) -> Result<()> {
    match points.iter().find(|p| !p.value.is_finite()) {
        Some(bad) => Err(Error::InvalidRequest(format!(
            "metric {:?} at step {} is {}: metric values must be finite",
            bad.name, bad.step, bad.value
        ))),
        None => Ok(()),
    }
}

/// The columns of a metric point in the JSON that [`PointRow`] writes.
const POINT_COLUMNS: [(&str, &str); 4] = [
    ("name", "text"),
    ("step", "bigint"),
    ("epoch", "bigint"),
    ("value", "double precision"),
];

/// A metric point as one object of a JSON batch (see `Dialect::json_table`).
#[derive(serde::Serialize)]
struct PointRow<'a> {
    name: &'a str,
    step: i64,
    epoch: Option<i64>,
    value: f64,
}

impl<'a> From<&'a MetricPoint> for PointRow<'a> {
    fn from(p: &'a MetricPoint) -> Self {
        Self {
            name: &p.name,
            step: p.step,
            epoch: p.epoch,
            value: p.value,
        }
    }
}

/// A batch of rows as the one JSON parameter a `json_table` reads.
fn to_json<T: serde::Serialize>(rows: &[T]) -> Result<String> {
    serde_json::to_string(rows).map_err(|err| Error::Corrupt(format!("a JSON batch: {err}")))
}
