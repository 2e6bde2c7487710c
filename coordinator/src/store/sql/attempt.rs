//! Attempts: what every fenced call shares (checking that a lease is the
//! task's current one), how an attempt ends ([`SqlStore::settle`], which
//! every ending goes through: succeeded, succeeded from the cache, failed,
//! expired, handed back, cancelled) and the history of a task's attempts.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use sweep_proto::{LeaseRef, SweepId, TaskId, TaskState, WorkerId};

use super::{SqlStore, parse_state};
use crate::error::{Error, Result};
use crate::store::{Attempt, Outcome};

/// What a fenced call learns about the task whose lease it checked.
pub(super) struct Fenced {
    pub(super) sweep_id: SweepId,
    pub(super) attempt: i64,
    pub(super) handbacks: i64,
    pub(super) max_attempts: i64,
    pub(super) cancel_requested: bool,
}

impl Fenced {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            sweep_id: SweepId(row.try_get("sweep_id")?),
            attempt: row.try_get("attempt")?,
            handbacks: row.try_get("handbacks")?,
            max_attempts: row.try_get("max_attempts")?,
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        })
    }

    /// The state a task goes to when its attempt ends without success.
    pub(super) fn after_failure(&self, retryable: bool) -> TaskState {
        if self.cancel_requested {
            TaskState::Cancelled
        } else if retryable && self.attempt - self.handbacks < self.max_attempts {
            TaskState::Queued
        } else {
            TaskState::Failed
        }
    }
}

/// How an attempt ends without success: failed, expired or handed back.
pub(super) struct AttemptEnd<'a> {
    pub(super) state: TaskState,
    pub(super) outcome: Outcome,
    pub(super) error: Option<&'a str>,
}

impl<'a> AttemptEnd<'a> {
    /// An attempt that ended as `how` says, moving its task to `state`; one
    /// whose task is cancelled by it ended cancelled, whatever stopped it.
    pub(super) fn new(state: TaskState, how: Outcome, error: Option<&'a str>) -> Self {
        let outcome = if state == TaskState::Cancelled {
            Outcome::Cancelled
        } else {
            how
        };
        Self {
            state,
            outcome,
            error,
        }
    }
}

/// A task whose attempt just ended, as its row's update left it.
pub(super) struct Ended {
    pub(super) task: TaskId,
    /// Its new state.
    pub(super) state: TaskState,
    /// Whether other tasks depend on it.
    pub(super) dependents: bool,
    /// Whether it has a checkpoint.
    pub(super) checkpoint: bool,
}

impl Ended {
    /// From a row that returned `dependents` and `checkpoint_step`.
    pub(super) fn from_row(task: TaskId, state: TaskState, row: &AnyRow) -> Result<Self> {
        Ok(Self {
            task,
            state,
            dependents: row.try_get::<i64, _>("dependents")? > 0,
            checkpoint: row.try_get::<Option<i64>, _>("checkpoint_step")?.is_some(),
        })
    }
}

impl SqlStore {
    /// The one way an attempt ends, once its task's row holds the new
    /// state, whatever ended it: a succeeded task's dependents whose
    /// dependencies have now all succeeded are queued and its checkpoint is
    /// dropped (no attempt will resume from it); a failed task's dependents
    /// fail with it. A task queued again or cancelled keeps its checkpoint
    /// and leaves its dependents blocked. Answers the new state.
    pub(super) async fn settle(
        &self,
        tx: &mut Transaction<'static, Any>,
        ended: Ended,
    ) -> Result<TaskState> {
        match ended.state {
            TaskState::Succeeded => {
                if ended.dependents {
                    self.unblock_dependents(tx, ended.task).await?;
                }
                if ended.checkpoint {
                    self.drop_checkpoint(tx, ended.task).await?;
                }
            }
            TaskState::Failed if ended.dependents => {
                self.fail_dependents(tx, ended.task).await?;
            }
            _ => {}
        }
        Ok(ended.state)
    }

    /// Checks that `lease` is the task's current lease and locks the task's
    /// row until the transaction ends, so the lease cannot change under the
    /// caller. The error tells an unknown task from a stale lease.
    pub(super) async fn fence(
        &self,
        tx: &mut Transaction<'static, Any>,
        lease: &LeaseRef,
    ) -> Result<Fenced> {
        let row = sqlx::query(self.sql(
            "SELECT sweep_id, attempt, handbacks, max_attempts, cancel_requested FROM tasks \
             WHERE id = $1 AND state = {leased} AND lease_token = $2{lock}",
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

    pub(super) async fn not_leased(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
    ) -> Error {
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

    /// Ends the attempt that `lease` names without success, fenced like
    /// [`SqlStore::fence`] (each statement checks the lease, so a caller
    /// that only ends an attempt needs no separate fence): records it among
    /// the task's past attempts, moves the task on and [settles](Self::settle)
    /// it. Successes end in `complete.rs`, a batch at a time, and
    /// `cache.rs`.
    pub(super) async fn end_attempt(
        &self,
        tx: &mut Transaction<'static, Any>,
        lease: &LeaseRef,
        end: AttemptEnd<'_>,
    ) -> Result<TaskState> {
        let recorded = sqlx::query(self.sql(
            "INSERT INTO attempts (task_id, attempt, worker_id, started_at, ended_at, outcome, error, \
               resumed_from) \
             SELECT id, attempt, lease_owner, attempt_started_at, {now}, $3, COALESCE($4, error), \
               resumed_from \
             FROM tasks \
             WHERE id = $1 AND state = {leased} AND lease_token = $2",
        ))
        .bind(lease.task_id.0)
        .bind(lease.token.clone())
        .bind(end.outcome.as_str())
        .bind(end.error.map(str::to_string))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if recorded == 0 {
            return Err(self.not_leased(tx, lease.task_id).await);
        }
        let row = sqlx::query(self.sql(
            "UPDATE tasks SET state = $3, error = COALESCE($4, error), handbacks = handbacks + $5, \
             finished_at = CASE WHEN $6 = 1 THEN {now} ELSE NULL END, \
             lease_token = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND state = {leased} AND lease_token = $2 \
             RETURNING dependents, checkpoint_step",
        ))
        .bind(lease.task_id.0)
        .bind(lease.token.clone())
        .bind(end.state.as_str())
        .bind(end.error.map(str::to_string))
        .bind(i64::from(end.outcome == Outcome::HandedBack))
        .bind(i64::from(end.state.is_final()))
        .fetch_one(&mut **tx)
        .await?;
        let ended = Ended::from_row(lease.task_id, end.state, &row)?;
        self.settle(tx, ended).await
    }

    /// [`Results::attempts`](crate::store::Results::attempts): the
    /// past attempts as recorded, then the latest from the task's row.
    pub(super) async fn attempt_history(&self, task: TaskId) -> Result<Vec<Attempt>> {
        let mut tx = self.pool.begin().await?;
        let latest = sqlx::query(
            "SELECT state, attempt, lease_owner, attempt_started_at, finished_at, error, \
             resumed_from FROM tasks WHERE id = $1",
        )
        .bind(task.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("task", task))?;
        let past = sqlx::query(
            "SELECT attempt, worker_id, started_at, ended_at, outcome, error, resumed_from \
             FROM attempts WHERE task_id = $1 ORDER BY attempt",
        )
        .bind(task.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut attempts = past
            .iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                Ok(Attempt {
                    number: row.try_get::<i64, _>("attempt")? as u32,
                    worker: row.try_get::<Option<i64>, _>("worker_id")?.map(WorkerId),
                    started_at: row.try_get("started_at")?,
                    ended_at: row.try_get("ended_at")?,
                    outcome: Outcome::parse(&outcome).ok_or_else(|| {
                        Error::Corrupt(format!("task {task}: unknown attempt outcome {outcome:?}"))
                    })?,
                    error: row.try_get("error")?,
                    resumed_from: row.try_get::<i64, _>("resumed_from")? as u64,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let number = latest.try_get::<i64, _>("attempt")? as u32;
        let recorded = attempts.last().map_or(0, |a| a.number);
        let outcome = match parse_state(&latest.try_get::<String, _>("state")?)? {
            TaskState::Leased => Some(Outcome::Running),
            TaskState::Succeeded => Some(Outcome::Succeeded),
            // Ended before attempts were recorded.
            TaskState::Failed => Some(Outcome::Failed),
            TaskState::Cancelled => Some(Outcome::Cancelled),
            TaskState::Queued | TaskState::Blocked => None,
        };
        if let Some(outcome) = outcome.filter(|_| number > recorded) {
            attempts.push(Attempt {
                number,
                worker: latest
                    .try_get::<Option<i64>, _>("lease_owner")?
                    .map(WorkerId),
                started_at: latest.try_get("attempt_started_at")?,
                ended_at: latest.try_get("finished_at")?,
                outcome,
                error: latest.try_get("error")?,
                resumed_from: latest.try_get::<i64, _>("resumed_from")? as u64,
            });
        }
        Ok(attempts)
    }

    /// Queues the dependents of `task` whose dependencies have all succeeded.
    pub(super) async fn unblock_dependents(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
    ) -> Result<()> {
        // Lock the dependents first: two dependencies finishing at once then
        // take turns, and the second sees the first's success.
        sqlx::query(self.sql(
            "SELECT id FROM tasks WHERE state = {blocked} \
             AND id IN (SELECT task_id FROM task_deps WHERE depends_on = $1){lock}",
        ))
        .bind(task.0)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query(self.sql(
            "UPDATE tasks SET state = {queued} WHERE state = {blocked} \
             AND id IN (SELECT task_id FROM task_deps WHERE depends_on = $1) \
             AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks t ON t.id = d.depends_on \
                             WHERE d.task_id = tasks.id AND t.state <> {succeeded})",
        ))
        .bind(task.0)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Fails every task that waits, directly or not, on `task`.
    pub(super) async fn fail_dependents(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "WITH RECURSIVE doomed(id) AS ( \
                 SELECT task_id FROM task_deps WHERE depends_on = $1 \
                 UNION SELECT d.task_id FROM task_deps d JOIN doomed ON d.depends_on = doomed.id) \
             UPDATE tasks SET state = {failed}, error = $2, finished_at = {now} \
             WHERE state = {blocked} AND id IN (SELECT id FROM doomed)",
        ))
        .bind(task.0)
        .bind(format!("dependency task {task} failed"))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
