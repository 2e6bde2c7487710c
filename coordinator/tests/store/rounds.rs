//! Adaptive seeds in the store: a sweep still deciding is not finished
//! when its tasks are; each round's decision is recorded, with the seeds it
//! adds, once, however many replicas take it at once and across a restart;
//! a cancelled sweep takes no round.

use std::sync::Arc;

use crate::common::*;
use crate::helpers::*;
use sweep_coordinator::error::Error;
use sweep_coordinator::store::*;
use sweep_proto::{RoundOutcome, SeedRound, SweepId, SweepState};
use sweep_spec::SweepSpec;
use sweep_spec::planner::{self, Submission};

const ADAPTIVE: &str = r#"
name = "adaptive"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 1 }
seeds = { start = 2, step = 2, max = 6, until = { compare = "batch_size" } }

[grid]
batch_size = [16, 32]
"#;

/// The round's seeds as the seeder plans them: both batch sizes' seeds
/// 0 .. `seeds`.
fn round_seeds(seeds: usize) -> Submission {
    let spec = SweepSpec::from_toml(ADAPTIVE).unwrap();
    Submission {
        plan: planner::plan_with_seeds(&spec, seeds, &Default::default()).unwrap(),
        ..planner::submission(ADAPTIVE).unwrap()
    }
}

fn round(seeds: u64, outcome: RoundOutcome) -> SeedRound {
    SeedRound {
        question: "{}".into(),
        seeds,
        outcome,
        detail: "16 vs 32: not settled on test_acc".into(),
    }
}

async fn finish_all(store: &Arc<dyn Store>) {
    let w = worker(store, "w").await;
    while let Ok(mut leases) = store.lease(w.into(), &CPU, 1, TTL).await {
        let Some(lease) = leases.pop() else { break };
        store
            .complete(&lease.to_ref(), &summary(&[("test_acc", 0.9)]), &[])
            .await
            .unwrap();
    }
}

async fn state(store: &Arc<dyn Store>, id: SweepId) -> SweepState {
    get_sweep(store, id).await.unwrap().state
}

async fn a_sweep_deciding_is_running_until_its_questions_end(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, ADAPTIVE).await;
    assert_eq!(store.tasks(id, &[]).await.unwrap().len(), 4, "2 seeds x 2");
    finish_all(store).await;
    assert_eq!(state(store, id).await, SweepState::Running, "deciding");
    assert_eq!(store.deciding_sweeps().await.unwrap(), vec![id]);
    let settled = round(2, RoundOutcome::Settled);
    assert!(
        store
            .decide_round(id, &settled, &round_seeds(2))
            .await
            .unwrap()
    );
    store.end_deciding(id).await.unwrap();
    assert_eq!(state(store, id).await, SweepState::Succeeded);
    assert!(store.deciding_sweeps().await.unwrap().is_empty());
    assert_eq!(
        get_sweep(store, id).await.unwrap().seed_rounds,
        vec![settled]
    );
    let fixed = submit(store, &classify_spec("fixed", 2, "")).await;
    finish_all(store).await;
    assert_eq!(
        state(store, fixed).await,
        SweepState::Succeeded,
        "not adaptive"
    );
}

async fn a_round_adds_its_seeds_once_whatever_replicas_decide_it(db: &mut TestDb) {
    let id = submit(&db.store, ADAPTIVE).await;
    finish_all(&db.store).await;
    // Four replicas, each with its own connections, decide the same round
    // at once. (Replicas share a PostgreSQL database; a SQLite file has one
    // coordinator, whose calls are what run at once.)
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(match db.url.starts_with("postgres") {
            true => sweep_coordinator::store::connect(&db.url).await.unwrap(),
            false => db.store.clone(),
        });
    }
    let more = round(2, RoundOutcome::More);
    let new = round_seeds(4);
    let decided = futures::future::join_all(
        (replicas.iter()).map(|replica| replica.decide_round(id, &more, &new)),
    )
    .await;
    let taken = decided.into_iter().map(Result::unwrap).filter(|d| *d);
    assert_eq!(taken.count(), 1, "one replica's decision takes");
    let seeds = |tasks: Vec<sweep_proto::Task>| -> Vec<(Option<u64>, u64)> {
        let mut seeds: Vec<_> = (tasks.iter())
            .map(|t| (t.params.batch_size, t.params.seed))
            .collect();
        seeds.sort();
        seeds
    };
    let expected: Vec<(Option<u64>, u64)> = [16, 32]
        .into_iter()
        .flat_map(|b| (0..4).map(move |s| (Some(b), s)))
        .collect();
    assert_eq!(seeds(db.store.tasks(id, &[]).await.unwrap()), expected);
    // A coordinator started again decides the same round again: nothing.
    db.reopen().await;
    assert!(!db.store.decide_round(id, &more, &new).await.unwrap());
    assert_eq!(db.store.tasks(id, &[]).await.unwrap().len(), 8);
    assert_eq!(
        get_sweep(&db.store, id).await.unwrap().seed_rounds,
        vec![more]
    );
}

async fn a_cancelled_sweep_takes_no_round(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, ADAPTIVE).await;
    store.cancel_sweep(id).await.unwrap();
    assert!(store.deciding_sweeps().await.unwrap().is_empty());
    let refused = store
        .decide_round(id, &round(2, RoundOutcome::More), &round_seeds(4))
        .await;
    assert!(
        matches!(refused, Err(Error::Precondition(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.tasks(id, &[]).await.unwrap().len(),
        4,
        "nothing added"
    );
}

crate::store_suite!(
    a_sweep_deciding_is_running_until_its_questions_end,
    a_round_adds_its_seeds_once_whatever_replicas_decide_it,
    a_cancelled_sweep_takes_no_round,
);
