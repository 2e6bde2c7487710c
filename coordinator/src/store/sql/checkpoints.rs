//! Checkpoints over SQL: the newest of each task, written whole under a
//! lease, and the resume that carries the points an earlier attempt sent
//! before its checkpoint over to the attempt that resumes from it.

use std::collections::BTreeMap;

use sqlx::{Any, Row, Transaction};
use sweep_proto::{LeaseRef, TaskId};

use super::SqlStore;
use crate::error::{Error, Result};
use crate::store::{CheckpointStore, NewCheckpoint, StoredCheckpoint};

#[async_trait::async_trait]
impl CheckpointStore for SqlStore {
    async fn put_checkpoint(&self, lease: &LeaseRef, checkpoint: NewCheckpoint) -> Result<()> {
        self.store_checkpoint(lease, checkpoint).await
    }

    async fn checkpoint(&self, lease: &LeaseRef) -> Result<StoredCheckpoint> {
        self.read_checkpoint(lease).await
    }

    async fn resume(&self, lease: &LeaseRef, step: u64) -> Result<()> {
        self.resume_from(lease, step).await
    }

    async fn refuse_checkpoint(&self, lease: &LeaseRef, why: &str) -> Result<()> {
        self.note_refusal(lease, why).await
    }
}

impl SqlStore {
    /// [`CheckpointStore::put_checkpoint`](crate::store::CheckpointStore::put_checkpoint).
    pub(super) async fn store_checkpoint(
        &self,
        lease: &LeaseRef,
        checkpoint: NewCheckpoint,
    ) -> Result<()> {
        let watermarks = serde_json::to_string(&checkpoint.watermarks)
            .map_err(|err| Error::Corrupt(format!("watermarks: {err}")))?;
        let step = i64::try_from(checkpoint.step)
            .map_err(|_| Error::InvalidRequest(format!("checkpoint step {}", checkpoint.step)))?;
        let mut tx = self.pool.begin().await?;
        let fenced = self.fence(&mut tx, lease).await?;
        sqlx::query(self.sql(
            "INSERT INTO checkpoints (task_id, attempt, step, watermarks, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, {now}) \
             ON CONFLICT (task_id) DO UPDATE SET attempt = excluded.attempt, \
               step = excluded.step, watermarks = excluded.watermarks, data = excluded.data, \
               created_at = excluded.created_at",
        ))
        .bind(lease.task_id.0)
        .bind(fenced.attempt)
        .bind(step)
        .bind(watermarks)
        .bind(checkpoint.data)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tasks SET checkpoint_step = $2 WHERE id = $1")
            .bind(lease.task_id.0)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the checkpoint of a task that succeeded.
    pub(super) async fn drop_checkpoint(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
    ) -> Result<()> {
        sqlx::query("DELETE FROM checkpoints WHERE task_id = $1")
            .bind(task.0)
            .execute(&mut **tx)
            .await?;
        sqlx::query("UPDATE tasks SET checkpoint_step = NULL WHERE id = $1")
            .bind(task.0)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// [`CheckpointStore::checkpoint`](crate::store::CheckpointStore::checkpoint).
    pub(super) async fn read_checkpoint(&self, lease: &LeaseRef) -> Result<StoredCheckpoint> {
        let mut tx = self.pool.begin().await?;
        self.fence(&mut tx, lease).await?;
        let row = sqlx::query("SELECT attempt, step, data FROM checkpoints WHERE task_id = $1")
            .bind(lease.task_id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("checkpoint", format!("of task {}", lease.task_id)))?;
        tx.commit().await?;
        Ok(StoredCheckpoint {
            attempt: row.try_get::<i64, _>("attempt")? as u32,
            step: row.try_get::<i64, _>("step")? as u64,
            data: row.try_get("data")?,
        })
    }

    /// [`CheckpointStore::refuse_checkpoint`](crate::store::CheckpointStore::refuse_checkpoint).
    pub(super) async fn note_refusal(&self, lease: &LeaseRef, why: &str) -> Result<()> {
        let line = why.lines().next().unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        self.fence(&mut tx, lease).await?;
        sqlx::query("UPDATE tasks SET error = $2 WHERE id = $1")
            .bind(lease.task_id.0)
            .bind(format!(
                "checkpoint refused, trained from the start: {line}"
            ))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`CheckpointStore::resume`](crate::store::CheckpointStore::resume).
    pub(super) async fn resume_from(&self, lease: &LeaseRef, step: u64) -> Result<()> {
        let task = lease.task_id;
        let mut tx = self.pool.begin().await?;
        let fenced = self.fence(&mut tx, lease).await?;
        let row =
            sqlx::query("SELECT attempt, step, watermarks FROM checkpoints WHERE task_id = $1")
                .bind(task.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::not_found("checkpoint", format!("of task {task}")))?;
        let stored = row.try_get::<i64, _>("step")? as u64;
        if stored != step {
            return Err(Error::Precondition(format!(
                "task {task}'s checkpoint is at step {stored}, not {step}"
            )));
        }
        let from: i64 = row.try_get("attempt")?;
        let watermarks: BTreeMap<String, i64> =
            serde_json::from_str(&row.try_get::<String, _>("watermarks")?)
                .map_err(|err| Error::Corrupt(format!("task {task}'s checkpoint: {err}")))?;
        // The checkpoint's own attempt already holds its points.
        if from != fenced.attempt {
            for (name, last) in watermarks {
                sqlx::query(
                    "INSERT INTO metrics (task_id, attempt, name, step, epoch, value) \
                     SELECT task_id, $2, name, step, epoch, value FROM metrics \
                     WHERE task_id = $1 AND attempt = $3 AND name = $4 AND step <= $5 \
                     ON CONFLICT (task_id, attempt, name, step) DO NOTHING",
                )
                .bind(task.0)
                .bind(fenced.attempt)
                .bind(from)
                .bind(name)
                .bind(last)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("UPDATE tasks SET resumed_from = $2 WHERE id = $1")
            .bind(task.0)
            .bind(step as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
