//! [`WorkerStore`] over SQL: registrations, liveness and leaving.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};
use sweep_proto::{Backend, Registration, TaskId, WorkerId, WorkerInfo, WorkerStatus};

use super::SqlStore;
use crate::error::{Error, Result};
use crate::store::WorkerStore;

impl SqlStore {
    /// Marks the worker as alive; [`Error::NotFound`] for an unknown one.
    pub(super) async fn touch_worker(
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
}

#[async_trait]
impl WorkerStore for SqlStore {
    async fn register_worker(
        &self,
        worker: &Registration,
        lease_ttl: Duration,
    ) -> Result<WorkerId> {
        let devices = serde_json::to_string(&worker.devices)
            .map_err(|err| Error::Corrupt(format!("devices: {err}")))?;
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO workers (name, host, backend, devices, slots, version, result_version, \
             lease_ttl_ms, registered_at, last_heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {now}, {now}) RETURNING id",
        ))
        .bind(worker.name.clone())
        .bind(worker.host.clone())
        .bind(worker.backend.as_str())
        .bind(devices)
        .bind(i64::from(worker.slots))
        .bind(worker.version.clone())
        .bind(i64::from(worker.result_version))
        .bind(i64::try_from(lease_ttl.as_millis()).unwrap_or(i64::MAX))
        .fetch_one(&self.pool)
        .await?;
        Ok(WorkerId(id))
    }

    async fn leave(&self, worker: WorkerId) -> Result<()> {
        let left = sqlx::query(self.sql("UPDATE workers SET stopped_at = {now} WHERE id = $1"))
            .bind(worker.0)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if left == 0 {
            return Err(Error::not_found("worker", worker));
        }
        Ok(())
    }
}

impl SqlStore {
    /// [`Results::workers`](crate::store::Results::workers): each stopped
    /// once it said so, else lost once silent for longer than its leases
    /// live, by the database's clock.
    pub(super) async fn list_workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(self.sql(
            "SELECT id, name, host, backend, devices, slots, version, result_version, \
             lease_ttl_ms, last_heartbeat_at, stopped_at, {now} AS now FROM workers \
             ORDER BY id DESC",
        ))
        .fetch_all(&mut *tx)
        .await?;
        let held = sqlx::query(
            self.sql("SELECT id, lease_owner FROM tasks WHERE state = {leased} ORDER BY id"),
        )
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
                let backend: String = row.try_get("backend")?;
                let last: i64 = row.try_get("last_heartbeat_at")?;
                let now: i64 = row.try_get("now")?;
                let stopped: Option<i64> = row.try_get("stopped_at")?;
                let ttl: i64 = row.try_get("lease_ttl_ms")?;
                let status = match stopped {
                    Some(_) => WorkerStatus::Stopped,
                    None if now - last <= ttl => WorkerStatus::Live,
                    None => WorkerStatus::Lost,
                };
                Ok(WorkerInfo {
                    id: WorkerId(id),
                    registration: Registration {
                        name: row.try_get("name")?,
                        host: row.try_get("host")?,
                        backend: Backend::parse(&backend).ok_or_else(|| {
                            Error::Corrupt(format!("worker {id} backend {backend:?}"))
                        })?,
                        devices: serde_json::from_str(&devices)
                            .map_err(|err| Error::Corrupt(format!("worker {id} devices: {err}")))?,
                        slots: row.try_get::<i64, _>("slots")? as u32,
                        version: row.try_get("version")?,
                        result_version: row.try_get::<i64, _>("result_version")? as u32,
                    },
                    last_heartbeat_at: last,
                    status,
                    running: running.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }
}
