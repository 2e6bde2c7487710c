//! Metric points as JSON batches: one statement stores a whole batch,
//! whatever its size, on both databases (see `Dialect::json_table`).

use sqlx::{Any, Transaction};
use sweep_proto::{LeaseRef, MetricPoint};

use super::SqlStore;
use crate::error::{Error, Result};

impl SqlStore {
    /// Stores metric points under the lease's attempt in one statement,
    /// fenced by its own sub-select (which locks the task's row on
    /// PostgreSQL until the insert commits), with the whole batch as one
    /// JSON parameter: a batch costs one round trip. Points already stored
    /// are skipped; returns how many were new (0 for a stale lease too).
    pub(super) async fn insert_points(
        &self,
        lease: &LeaseRef,
        points: &[MetricPoint],
    ) -> Result<u64> {
        let rows: Vec<PointRow> = points.iter().map(PointRow::from).collect();
        let template = "INSERT INTO metrics (task_id, attempt, name, step, epoch, value) \
             SELECT t.id, t.attempt, p.name, p.step, p.epoch, p.value \
             FROM (SELECT id, attempt FROM tasks \
                   WHERE id = $1 AND state = {leased} AND lease_token = $2{lock}) AS t, {p} \
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

    /// Runs an insert that reads `rows` as the JSON table `{rows}` (alias
    /// `r`, with `columns`); nothing when there are none.
    pub(super) async fn insert_rows<T: serde::Serialize>(
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

/// Refuses a batch with a value no report could use.
pub(super) fn finite(points: &[MetricPoint]) -> Result<()> {
    match points.iter().find(|p| !p.value.is_finite()) {
        Some(bad) => Err(Error::InvalidRequest(format!(
            "metric {:?} at step {} is {}: metric values must be finite",
            bad.name, bad.step, bad.value
        ))),
        None => Ok(()),
    }
}

/// The columns of a metric point in the JSON that [`PointRow`] writes.
pub(super) const POINT_COLUMNS: [(&str, &str); 4] = [
    ("name", "text"),
    ("step", "bigint"),
    ("epoch", "bigint"),
    ("value", "double precision"),
];

/// A metric point as one object of a JSON batch (see `Dialect::json_table`).
#[derive(serde::Serialize)]
pub(super) struct PointRow<'a> {
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
pub(super) fn to_json<T: serde::Serialize>(rows: &[T]) -> Result<String> {
    serde_json::to_string(rows).map_err(|err| Error::Corrupt(format!("a JSON batch: {err}")))
}
