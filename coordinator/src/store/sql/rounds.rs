//! Adaptive seeds over SQL: each round's decision recorded once, with the
//! seeds it adds, and the sweeps still deciding.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};
use sweep_proto::{RoundOutcome, SeedRound, SweepId};
use sweep_spec::Submission;

use super::SqlStore;
use crate::error::{Error, Result};

impl SqlStore {
    /// Each named sweep's rounds, in the order they were decided.
    pub(super) async fn seed_rounds(
        &self,
        tx: &mut Transaction<'static, Any>,
        ids: &[SweepId],
    ) -> Result<HashMap<SweepId, Vec<SeedRound>>> {
        let mut rounds: HashMap<SweepId, Vec<SeedRound>> = HashMap::new();
        for id in ids {
            let rows = sqlx::query(
                "SELECT question, seeds, outcome, detail FROM seed_rounds \
                 WHERE sweep_id = $1 ORDER BY decided_at, question, seeds",
            )
            .bind(id.0)
            .fetch_all(&mut **tx)
            .await?;
            for row in rows {
                let outcome: String = row.try_get("outcome")?;
                rounds.entry(*id).or_default().push(SeedRound {
                    question: row.try_get("question")?,
                    seeds: row.try_get::<i64, _>("seeds")? as u64,
                    outcome: RoundOutcome::parse(&outcome).ok_or_else(|| {
                        Error::Corrupt(format!("sweep {id}: seed round outcome {outcome:?}"))
                    })?,
                    detail: row.try_get("detail")?,
                });
            }
        }
        Ok(rounds)
    }

    pub(super) async fn deciding(&self) -> Result<Vec<SweepId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM sweeps WHERE deciding <> 0 AND cancelled_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(SweepId).collect())
    }

    pub(super) async fn record_round(
        &self,
        id: SweepId,
        round: &SeedRound,
        new: &Submission,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // Locked, so that a cancel waits for this round or this round sees it.
        let cancelled: Option<Option<i64>> =
            sqlx::query_scalar(self.sql("SELECT cancelled_at FROM sweeps WHERE id = $1{lock}"))
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        match cancelled {
            None => return Err(Error::not_found("sweep", id)),
            Some(Some(_)) => {
                return Err(Error::Precondition(format!("sweep {id} was cancelled")));
            }
            Some(None) => {}
        }
        let now = self.now(&mut tx).await?;
        let recorded = sqlx::query(
            "INSERT INTO seed_rounds (sweep_id, question, seeds, outcome, detail, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sweep_id, question, seeds) DO NOTHING",
        )
        .bind(id.0)
        .bind(round.question.clone())
        .bind(round.seeds as i64)
        .bind(round.outcome.as_str())
        .bind(round.detail.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if recorded == 0 {
            return Ok(false);
        }
        // A round's seeds use the result cache as the sweep's first ones do.
        let keyed: i64 =
            sqlx::query_scalar("SELECT COUNT(task_key) FROM tasks WHERE sweep_id = $1")
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await?;
        let new = Submission {
            cache: keyed > 0,
            ..new.clone()
        };
        let added = self.add_missing_tasks(&mut tx, id, &new).await?;
        self.commit_change(tx).await?;
        if added > 0 {
            self.queue_grew().await;
        }
        Ok(true)
    }

    pub(super) async fn stop_deciding(&self, id: SweepId) -> Result<()> {
        sqlx::query("UPDATE sweeps SET deciding = 0 WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
