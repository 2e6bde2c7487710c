//! How a batch of completions becomes succeeded tasks, with their last
//! metric points and their summaries' numbers, inside the caller's
//! transaction ([`QueueStore::complete_many`] and
//! [`QueueStore::complete_and_lease`]).
//!
//! [`QueueStore::complete_many`]: crate::store::QueueStore::complete_many
//! [`QueueStore::complete_and_lease`]: crate::store::QueueStore::complete_and_lease

use std::collections::{HashMap, HashSet};

use sqlx::{Any, Row, Transaction};
use sweep_proto::{Completion, TaskId, TaskState};

use super::SqlStore;
use super::attempt::Ended;
use super::points::{POINT_COLUMNS, PointRow, finite, to_json};
use crate::error::{Error, Result};

impl SqlStore {
    /// Completes each of `completions` inside the caller's transaction, as
    /// [`QueueStore::complete_many`](crate::store::QueueStore::complete_many)
    /// says; the caller commits.
    pub(super) async fn succeed_all(
        &self,
        tx: &mut Transaction<'static, Any>,
        completions: &[Completion],
    ) -> Result<Vec<Result<()>>> {
        let mut outcomes: Vec<Result<()>> = completions.iter().map(|c| finite(&c.points)).collect();
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
            let batch: Vec<&Completion> = round.iter().map(|&i| &completions[i]).collect();
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
        batch: &[&Completion],
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
        // The artifacts are counted here, so that a result that loses one
        // later is known not to be whole (see `cache.rs`).
        let template = "UPDATE tasks SET state = {succeeded}, summary = c.summary, \
             finished_at = {now}, lease_token = NULL, lease_expires_at = NULL, \
             artifact_count = (SELECT COUNT(*) FROM artifacts a \
               WHERE a.task_id = tasks.id AND a.attempt = tasks.attempt) \
             FROM {c} WHERE tasks.id = c.task AND tasks.state = {leased} \
               AND tasks.lease_token = c.token \
             RETURNING tasks.id AS id, tasks.attempt AS attempt, tasks.dependents AS dependents, \
               tasks.checkpoint_step AS checkpoint_step"
            .replace("{c}", &self.json_table("$1", "c", &columns));
        let ended = sqlx::query(self.sql(&template))
            .bind(to_json(&rows)?)
            .fetch_all(&mut **tx)
            .await?;
        let mut attempts = HashMap::with_capacity(ended.len());
        for row in ended {
            let task = TaskId(row.try_get("id")?);
            attempts.insert(task, row.try_get::<i64, _>("attempt")?);
            let ended = Ended::from_row(task, TaskState::Succeeded, &row)?;
            self.settle(tx, ended).await?;
        }
        let succeeded: Vec<&Completion> = batch
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
        succeeded: &[&Completion],
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
        succeeded: &[&Completion],
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
}

/// A refused task's error, or the database's failure, which dooms the
/// whole call.
fn refusal(err: Error) -> Result<Error> {
    match err {
        Error::StaleLease { .. } | Error::NotFound { .. } => Ok(err),
        err => Err(err),
    }
}
