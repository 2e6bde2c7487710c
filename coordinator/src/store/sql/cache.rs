//! The result cache over SQL: completing a task's result key where it is
//! about to train, and deciding whether it trains, waits for the task
//! training the same key, or succeeds at once pointing at an earlier
//! task's results ([`CacheStore::claim_result`]).
//!
//! `results` holds one row per key, naming the task that trains or trained
//! it. Its primary key is what makes two claims of one key at once agree:
//! only one can insert the row, and a takeover from a holder that stopped
//! training is a compare-and-set on it.
//!
//! [`CacheStore::claim_result`]: crate::store::CacheStore::claim_result

use sqlx::{Any, Row, Transaction};
use sweep_proto::{CacheStats, Claim, Device, Forget, LeaseRef, TaskId, TaskState};
use sweep_spec::result_key::{KeyParts, result_key};

use super::attempt::Ended;
use super::{SqlStore, parse_state};
use crate::error::{Error, Result};
use crate::store::CacheStore;

/// A claim finds the key's row changed under it at most this often before
/// it gives up (each time, another claim of the key committed first).
const TRIES: usize = 8;

#[async_trait::async_trait]
impl CacheStore for SqlStore {
    async fn claim_result(&self, lease: &LeaseRef, data: &str) -> Result<Claim> {
        self.claim_key(lease, data).await
    }

    async fn forget_results(&self, which: Forget) -> Result<u64> {
        self.forget(which).await
    }
}

/// The task a key's row names, as it is now.
struct Holder {
    task: TaskId,
    state: TaskState,
    /// Whether its results are all still there (see [`SqlStore::holder`]).
    intact: bool,
}

/// What a worker trains on, from its registered devices: LibTorch on CPU
/// and on CUDA round differently too.
fn device_kind(devices: &str) -> &'static str {
    let devices: Vec<Device> = serde_json::from_str(devices).unwrap_or_default();
    devices
        .first()
        .map_or("none", |device| device.kind.as_str())
}

impl SqlStore {
    /// [`CacheStore::claim_result`](crate::store::CacheStore::claim_result).
    pub(super) async fn claim_key(&self, lease: &LeaseRef, data: &str) -> Result<Claim> {
        let mut tx = self.pool.begin().await?;
        self.fence(&mut tx, lease).await?;
        let task = lease.task_id;
        let Some(key) = self.complete_key(&mut tx, task, data).await? else {
            tx.commit().await?;
            return Ok(Claim::Train);
        };
        for _ in 0..TRIES {
            let claim = match self.holder(&mut tx, &key).await? {
                None if self.take_key(&mut tx, &key, task, None).await? => Claim::Train,
                None => continue,
                Some(holder) if holder.task == task => Claim::Train,
                Some(holder) if holder.state == TaskState::Succeeded && holder.intact => {
                    self.succeed_from(&mut tx, lease, holder.task, &key).await?;
                    self.commit_change(tx).await?;
                    return Ok(Claim::Cached {
                        source: holder.task,
                    });
                }
                Some(holder) if holder.state == TaskState::Leased => Claim::Wait {
                    training: holder.task,
                },
                Some(holder)
                    if self
                        .take_key(&mut tx, &key, task, Some(holder.task))
                        .await? =>
                {
                    Claim::Train
                }
                Some(_) => continue,
            };
            if claim == Claim::Train {
                sqlx::query("UPDATE tasks SET result_key = $1 WHERE id = $2")
                    .bind(key.clone())
                    .bind(task.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            return Ok(claim);
        }
        Err(Error::Precondition(format!(
            "task {task}: its result key kept changing hands; claim it again"
        )))
    }

    /// The task's result key from its task key, `data`, its worker's
    /// registration and its dependencies' keys; none when it is not
    /// cacheable (no task key, or a dependency without a result key).
    async fn complete_key(
        &self,
        tx: &mut Transaction<'static, Any>,
        task: TaskId,
        data: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT t.task_key, w.backend, w.devices, w.result_version FROM tasks t \
             JOIN workers w ON w.id = t.lease_owner WHERE t.id = $1",
        )
        .bind(task.0)
        .fetch_one(&mut **tx)
        .await?;
        let Some(task_key) = row.try_get::<Option<String>, _>("task_key")? else {
            return Ok(None);
        };
        let dependencies: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT t.result_key FROM task_deps d JOIN tasks t ON t.id = d.depends_on \
             WHERE d.task_id = $1 ORDER BY d.position",
        )
        .bind(task.0)
        .fetch_all(&mut **tx)
        .await?;
        let Some(dependencies) = dependencies.into_iter().collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let backend = format!(
            "{}/{}",
            row.try_get::<String, _>("backend")?,
            device_kind(&row.try_get::<String, _>("devices")?)
        );
        let version: i64 = row.try_get("result_version")?;
        Ok(Some(result_key(&KeyParts {
            task_key: &task_key,
            data,
            backend: &backend,
            result_version: u32::try_from(version).unwrap_or(u32::MAX),
            dependencies: &dependencies,
        })))
    }

    /// The task the key's row names, locking the row; none when no task
    /// has claimed the key. A holder is intact when it still has metric
    /// points and as many artifacts as its succeeded attempt stored.
    async fn holder(
        &self,
        tx: &mut Transaction<'static, Any>,
        key: &str,
    ) -> Result<Option<Holder>> {
        let row = sqlx::query(self.sql("SELECT task_id FROM results WHERE key = $1{lock}"))
            .bind(key.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let task = TaskId(row.try_get("task_id")?);
        let now = sqlx::query(
            "SELECT t.state, t.artifact_count, \
               (SELECT COUNT(*) FROM artifacts a WHERE a.task_id = t.id AND a.attempt = t.attempt) \
                 AS artifacts, \
               CAST(CASE WHEN EXISTS (SELECT 1 FROM metrics m \
                 WHERE m.task_id = t.id AND m.attempt = t.attempt) THEN 1 ELSE 0 END AS BIGINT) \
                 AS metrics \
             FROM tasks t WHERE t.id = $1",
        )
        .bind(task.0)
        .fetch_one(&mut **tx)
        .await?;
        Ok(Some(Holder {
            task,
            state: parse_state(&now.try_get::<String, _>("state")?)?,
            intact: now.try_get::<Option<i64>, _>("artifact_count")?
                == Some(now.try_get::<i64, _>("artifacts")?)
                && now.try_get::<i64, _>("metrics")? == 1,
        }))
    }

    /// Makes `task` the key's holder: a new row when `from` is none, else
    /// only if `from` still holds it. False when another claim got there
    /// first.
    async fn take_key(
        &self,
        tx: &mut Transaction<'static, Any>,
        key: &str,
        task: TaskId,
        from: Option<TaskId>,
    ) -> Result<bool> {
        let sql = match from {
            None => {
                "INSERT INTO results (key, task_id, created_at) VALUES ($1, $2, {now}) \
                 ON CONFLICT (key) DO NOTHING"
            }
            Some(_) => {
                "UPDATE results SET task_id = $2, created_at = {now} WHERE key = $1 AND task_id = $3"
            }
        };
        let mut query = sqlx::query(self.sql(sql))
            .bind(key.to_string())
            .bind(task.0);
        if let Some(from) = from {
            query = query.bind(from.0);
        }
        let taken = query.execute(&mut **tx).await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Ends the lease's attempt in success with `source`'s results: its
    /// summary (and the summary's numbers, which reports aggregate) copied,
    /// its metrics and artifacts read through `cached_from`.
    async fn succeed_from(
        &self,
        tx: &mut Transaction<'static, Any>,
        lease: &LeaseRef,
        source: TaskId,
        key: &str,
    ) -> Result<()> {
        let row = sqlx::query(self.sql(
            "UPDATE tasks SET state = {succeeded}, cached_from = $3, result_key = $4, \
               summary = (SELECT s.summary FROM tasks s WHERE s.id = $3), \
               finished_at = {now}, lease_token = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_token = $2 \
             RETURNING dependents, checkpoint_step",
        ))
        .bind(lease.task_id.0)
        .bind(lease.token.clone())
        .bind(source.0)
        .bind(key.to_string())
        .fetch_one(&mut **tx)
        .await?;
        let ended = Ended::from_row(lease.task_id, TaskState::Succeeded, &row)?;
        sqlx::query(
            "INSERT INTO summary_values (task_id, name, value) \
             SELECT $1, name, value FROM summary_values WHERE task_id = $2 \
             ON CONFLICT (task_id, name) DO UPDATE SET value = excluded.value",
        )
        .bind(lease.task_id.0)
        .bind(source.0)
        .execute(&mut **tx)
        .await?;
        self.settle(tx, ended).await?;
        Ok(())
    }

    /// [`Results::cache_stats`](crate::store::Results::cache_stats).
    pub(super) async fn stats(&self) -> Result<CacheStats> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(self.sql(
            "SELECT \
               SUM(CASE WHEN t.state = {succeeded} THEN 1 ELSE 0 END) AS results, \
               SUM(CASE WHEN t.state = {leased} THEN 1 ELSE 0 END) AS training, \
               MIN(CASE WHEN t.state = {succeeded} THEN t.finished_at END) AS oldest, \
               MAX(CASE WHEN t.state = {succeeded} THEN t.finished_at END) AS newest \
             FROM results r JOIN tasks t ON t.id = r.task_id",
        ))
        .fetch_one(&mut *tx)
        .await?;
        let cached: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE cached_from IS NOT NULL")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        let count = |name: &str| -> Result<u64> {
            Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0) as u64)
        };
        Ok(CacheStats {
            results: count("results")?,
            training: count("training")?,
            cached_tasks: cached as u64,
            oldest: row.try_get("oldest")?,
            newest: row.try_get("newest")?,
        })
    }

    /// [`CacheStore::forget_results`](crate::store::CacheStore::forget_results).
    pub(super) async fn forget(&self, which: Forget) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let (filter, value) = match which {
            Forget::Before(ms) => ("finished_at < $1", ms),
            Forget::Sweep(sweep) => {
                self.sweep_row(&mut tx, &sweep.into()).await?;
                ("sweep_id = $1", sweep.0)
            }
        };
        let forgotten = sqlx::query(self.sql(&format!(
            "DELETE FROM results WHERE task_id IN \
               (SELECT id FROM tasks WHERE state = {{succeeded}} AND {filter})"
        )))
        .bind(value)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(forgotten)
    }
}
