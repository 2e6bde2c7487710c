//! [`QueueStore`] over SQL: leases, heartbeats and the fenced reports a
//! worker makes under a lease.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use sweep_proto::TaskState;
use sweep_proto::{
    Completion, Lease, LeaseCall, LeaseRef, LeaseStatus, MetricPoint, SweepId, TaskId,
};
use sweep_proto::{Verdict, WorkerId};
use tokio::sync::watch;

use super::attempt::{AttemptEnd, Fenced};
use super::points::finite;
use super::{SqlStore, millis, params_from_row};
use crate::error::Result;
use crate::store::{Capabilities, NewArtifact, Outcome, QueueStore, ReapOutcome};

#[async_trait]
impl QueueStore for SqlStore {
    async fn complete_and_lease(
        &self,
        completions: &[Completion],
        call: LeaseCall,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<(Vec<Result<()>>, Vec<Lease>)> {
        let mut tx = self.pool.begin().await?;
        self.touch_worker(&mut tx, call.worker).await?;
        let outcomes = self.succeed_all(&mut tx, completions).await?;
        let leases = self.claim(&mut tx, call, fit, max, ttl).await?;
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
                 WHERE id = $1 AND state = {leased} AND lease_token = $2 \
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

    async fn complete_many(&self, completions: &[Completion]) -> Result<Vec<Result<()>>> {
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
        let end = AttemptEnd::new(state, Outcome::Failed, Some(error));
        let state = self.end_attempt(&mut tx, lease, end).await?;
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
        let end = AttemptEnd::new(state, Outcome::HandedBack, None);
        let state = self.end_attempt(&mut tx, lease, end).await?;
        self.commit_change(tx).await?;
        Ok(state)
    }

    async fn reap_expired(&self) -> Result<ReapOutcome> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(self.sql(
            "SELECT id, sweep_id, attempt, handbacks, max_attempts, cancel_requested, lease_owner, \
             lease_token FROM tasks WHERE state = {leased} AND lease_expires_at < {now} \
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
            let end = AttemptEnd::new(state, Outcome::Expired, Some(&error));
            let state = self.end_attempt(&mut tx, &lease, end).await?;
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
    /// Claims up to `max` queued tasks for the worker, as
    /// [`QueueStore::lease`] says, inside the caller's transaction; a call
    /// made again first gets back the leases it still holds.
    async fn claim(
        &self,
        tx: &mut Transaction<'static, Any>,
        call: LeaseCall,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<Vec<Lease>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut rows = if call.again && call.number != 0 {
            sqlx::query(self.sql(
                "UPDATE tasks SET lease_expires_at = {now} + $3 \
                 WHERE state = {leased} AND lease_owner = $1 AND lease_call = $2 \
                 RETURNING id, sweep_id, lease_token, attempt, params, lease_expires_at, dependencies, \
               checkpoint_step, task_key",
            ))
            .bind(call.worker.0)
            .bind(call.number as i64)
            .bind(millis(ttl))
            .fetch_all(&mut **tx)
            .await?
        } else {
            Vec::new()
        };
        let more = max.saturating_sub(rows.len() as u32);
        if more > 0 {
            rows.extend(self.claim_queued(tx, call, fit, more, ttl).await?);
        }
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
                    checkpoint_step: (row.try_get::<Option<i64>, _>("checkpoint_step")?)
                        .map(|step| step as u64),
                    cacheable: row.try_get::<Option<String>, _>("task_key")?.is_some(),
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

    /// Moves up to `max` queued tasks that fit to leased under `call`.
    async fn claim_queued(
        &self,
        tx: &mut Transaction<'static, Any>,
        call: LeaseCall,
        fit: &Capabilities,
        max: u32,
        ttl: Duration,
    ) -> Result<Vec<AnyRow>> {
        let rows = sqlx::query(self.sql(
            // MATERIALIZED: PostgreSQL may otherwise run the LIMIT sub-select
            // more than once and claim more than `max` rows.
            "WITH picked AS MATERIALIZED ( \
               SELECT id FROM tasks WHERE state = {queued} AND (requires = 'cpu' OR $3 = 1) \
               ORDER BY priority DESC, id LIMIT $4{skip_locked}) \
             UPDATE tasks SET state = {leased}, attempt = attempt + 1, lease_owner = $1, \
               lease_call = $5, lease_token = {token}, lease_expires_at = {now} + $2, \
               cancel_requested = 0, started_at = COALESCE(started_at, {now}), \
               attempt_started_at = {now}, resumed_from = 0, error = NULL \
             WHERE state = {queued} AND id IN (SELECT id FROM picked) \
             RETURNING id, sweep_id, lease_token, attempt, params, lease_expires_at, dependencies, \
               checkpoint_step, task_key",
        ))
        .bind(call.worker.0)
        .bind(millis(ttl))
        .bind(i64::from(fit.cuda))
        .bind(i64::from(max))
        .bind(call.number as i64)
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows)
    }
}
