//! The seeder: adds seeds to sweeps with adaptive seeds (a spec's `seeds`)
//! round by round, until each of their questions is settled, resolved or
//! at its max (`sweep_report::compare::adaptive` decides). Every replica may
//! run one: the store records each decision, with the seeds it adds, once
//! ([`SweepStore::decide_round`]), so two replicas deciding at once, or a
//! coordinator killed mid-decision and started again, add a round once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sweep_proto::{SeedRound, SweepId, WireError};
use sweep_report::compare::adaptive;
use sweep_spec::SweepSpec;
use sweep_spec::planner::{self, Adaptive, Limits, Submission};
use tokio::sync::watch;

use crate::error::Error;
use crate::store::Store;

/// Why a pass over one sweep failed: a write's error, or a read's (the
/// read trait's errors are the wire's).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Store(#[from] Error),
    #[error(transparent)]
    Read(#[from] WireError),
}

impl From<sweep_spec::SpecError> for Failure {
    fn from(err: sweep_spec::SpecError) -> Self {
        Self::Store(err.into())
    }
}

/// Decides every `interval` until `stopping` turns true. A database error
/// is logged and the next pass tries again.
pub async fn run(
    store: Arc<dyn Store>,
    limits: Limits,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        match store.deciding_sweeps().await {
            Ok(sweeps) => {
                for id in sweeps {
                    if let Err(err) = decide(&*store, id, &limits).await {
                        tracing::warn!(sweep = %id, error = %err, "deciding adaptive seeds failed");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "listing adaptive sweeps failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// Takes the decisions due in one sweep, and ends its deciding once every
/// question has a final one.
async fn decide(store: &dyn Store, id: SweepId, limits: &Limits) -> Result<(), Failure> {
    let sweep = store.sweep(&id.into()).await?;
    let spec = SweepSpec::from_toml(&sweep.spec_toml)?;
    let Some(adaptive) = planner::plan_within(&spec, limits)?.adaptive else {
        // Extended with a fixed seed list: nothing left to decide.
        return Ok(store.end_deciding(id).await?);
    };
    let tasks = store.tasks(id, &[]).await?;
    let mut rounds = sweep.seed_rounds;
    for round in adaptive::next_rounds(&tasks, &adaptive, &rounds) {
        let new = seeds_for(&spec, &sweep.spec_toml, &round, &adaptive, limits)?;
        if store.decide_round(id, &round, &new).await? {
            tracing::info!(
                sweep = %id,
                seeds = round.seeds,
                outcome = %round.outcome,
                detail = %round.detail,
                "seed round decided"
            );
        }
        rounds.push(round);
    }
    let questions: BTreeSet<String> = (tasks.iter())
        .map(|task| adaptive::question(&task.params, &adaptive.compare))
        .collect();
    let closed = |question: &String| {
        (rounds.iter()).any(|r| &r.question == question && r.outcome.is_final())
    };
    if questions.iter().all(closed) {
        store.end_deciding(id).await?;
        tracing::info!(sweep = %id, "adaptive seeds decided");
    }
    Ok(())
}

/// The tasks a round adds: the next `step` seeds of the question's
/// settings (up to `max`), or none when it is final.
fn seeds_for(
    spec: &SweepSpec,
    spec_toml: &str,
    round: &SeedRound,
    adaptive: &Adaptive,
    limits: &Limits,
) -> Result<Submission, Failure> {
    let next = match round.outcome.is_final() {
        true => 0,
        false => (round.seeds as usize + adaptive.step).min(adaptive.max),
    };
    let mut plan = planner::plan_with_seeds(spec, next.max(1), limits)?;
    plan.tasks.retain(|task| {
        next > 0 && adaptive::question(&task.params, &adaptive.compare) == round.question
    });
    Ok(Submission {
        plan,
        spec_toml: spec_toml.to_string(),
        spec_json: String::new(),
        spec_key: String::new(),
        // The store keeps the sweep's own choice.
        cache: true,
    })
}
