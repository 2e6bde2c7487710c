//! Growing a sweep: an edited spec adds only the tasks the sweep lacks,
//! after its own; new tasks that wait on ended ones are settled at once;
//! a cancelled sweep or another experiment is refused.

use crate::common::*;
use crate::helpers::*;
use sweep_coordinator::error::Error;
use sweep_coordinator::store::*;
use sweep_proto::{SweepId, SweepState, TaskState};
use sweep_spec::planner;

async fn extend(store: &std::sync::Arc<dyn Store>, id: SweepId, spec: &str) -> Result<u64, Error> {
    store
        .extend_sweep(id, &planner::submission(spec).unwrap())
        .await
}

async fn more_seeds_add_only_the_new_tasks_after_the_old_ones(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("grow", 2, "")).await;
    let w = worker(store, "w").await;
    for _ in 0..2 {
        let lease = lease_one(store, w, TTL).await;
        store
            .complete(&lease.to_ref(), &summary(&[]), &[])
            .await
            .unwrap();
    }
    assert_eq!(
        get_sweep(store, id).await.unwrap().state,
        SweepState::Succeeded
    );
    let grown = classify_spec("grow", 4, "");
    assert_eq!(extend(store, id, &grown).await.unwrap(), 2);
    let sweep = get_sweep(store, id).await.unwrap();
    assert_eq!(
        sweep.state,
        SweepState::Running,
        "new work: not final any more"
    );
    assert_eq!(sweep.spec_toml, grown, "the sweep's spec is the grown one");
    let tasks = store.tasks(id, &[]).await.unwrap();
    let seeds: Vec<(u64, TaskState)> = tasks.iter().map(|t| (t.params.seed, t.state)).collect();
    assert_eq!(
        seeds,
        [
            (0, TaskState::Succeeded),
            (1, TaskState::Succeeded),
            (2, TaskState::Queued),
            (3, TaskState::Queued)
        ],
        "in grid order, the old ones first"
    );
    assert_eq!(extend(store, id, &grown).await.unwrap(), 0, "nothing twice");
    let found = store.sweep_with_key(&planner::spec_key(&grown)).await;
    assert_eq!(
        found.unwrap().map(|s| s.id),
        Some(id),
        "`sweep run` finds it"
    );
}

async fn a_new_task_waiting_on_ended_ones_is_settled_at_once(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &pair_spec("pair")).await;
    let w = worker(store, "w").await;
    for _ in 0..2 {
        let lease = lease_one(store, w, TTL).await;
        store
            .complete(&lease.to_ref(), &summary(&[]), &[])
            .await
            .unwrap();
    }
    let interpolation = lease_one(store, w, TTL).await;
    store
        .complete(&interpolation.to_ref(), &summary(&[]), &[])
        .await
        .unwrap();
    // A finer path between the same two trained models: only the
    // interpolation is new, and both its endpoints have succeeded.
    let finer = pair_spec("pair").replace("step = 0.5", "step = 0.25");
    assert_eq!(extend(store, id, &finer).await.unwrap(), 1);
    let added = lease_one(store, w, TTL).await;
    assert_eq!(
        added.depends_on, interpolation.depends_on,
        "the same endpoints"
    );
    let counts = get_sweep(store, id).await.unwrap().counts;
    assert_eq!(counts.leased, 1);
}

/// Tasks were matched by their stored parameter JSON, so a spec that only
/// changed how often tasks checkpoint added every task again.
async fn tasks_are_matched_by_what_they_train_not_how_they_run(db: &mut TestDb) {
    let store = &db.store;
    let spec = |seeds: &str, every: &str| {
        format!(
            "name = \"runs\"\nexperiment = \"classify\"\ndataset = \"mnist\"\n\
             model = {{ kind = \"mlp\", hidden = [16] }}\n\
             train = {{ lr = 1e-3, epochs = 1, batch_size = 64, checkpoint_every = \"{every}\" }}\n\
             [grid]\nseed = [{seeds}]\n"
        )
    };
    let id = submit(store, &spec("0, 1", "10m")).await;
    assert_eq!(extend(store, id, &spec("0, 1, 2", "30s")).await.unwrap(), 1);
    let tasks = store.tasks(id, &[]).await.unwrap();
    let runs: Vec<(u64, Option<u64>)> = (tasks.iter())
        .map(|t| (t.params.seed, t.params.checkpoint_every_ms))
        .collect();
    assert_eq!(
        runs,
        [(0, Some(600_000)), (1, Some(600_000)), (2, Some(30_000))],
        "the old tasks are kept as they were"
    );
}

/// Settings stored under the first key layout (serde's field order) met
/// no setting planned after the upgrade: a sweep extended with more seeds
/// reported its old and new seeds as two settings.
async fn keys_of_an_older_layout_are_rewritten_when_the_store_opens(db: &mut TestDb) {
    let id = submit(&db.store, &classify_spec("layout", 2, "")).await;
    db.execute("UPDATE tasks SET setting = '{\"seed\":0}', task_key = 'layout-1', key_layout = 1")
        .await;
    db.reopen().await;
    let rewritten = "SELECT COUNT(*) FROM tasks WHERE key_layout = 2 AND task_key <> 'layout-1'";
    assert_eq!(db.scalar(rewritten).await, 2);
    assert_eq!(
        extend(&db.store, id, &classify_spec("layout", 3, ""))
            .await
            .unwrap(),
        1
    );
    let report = db.store.aggregate(id).await.unwrap();
    let tasks: Vec<u64> = report.iter().map(|setting| setting.tasks).collect();
    assert_eq!(tasks, [3], "one setting, its three seeds");
}

async fn a_cancelled_sweep_or_another_experiment_is_refused(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("c", 1, "")).await;
    let fit = "name = \"f\"\nexperiment = \"fit\"\nmodel = { kind = \"mlp\", hidden = [4] }\n\
               train = { lr = 1e-3, steps = 5 }\n";
    match extend(store, id, fit).await {
        Err(Error::InvalidRequest(message)) => {
            assert!(message.contains("experiment = \"fit\""), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    store.cancel_sweep(id).await.unwrap();
    match extend(store, id, &classify_spec("c", 2, "")).await {
        Err(Error::Precondition(message)) => assert!(message.contains("cancelled"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        store.tasks(id, &[]).await.unwrap().len(),
        1,
        "nothing added"
    );
}

crate::store_suite!(
    more_seeds_add_only_the_new_tasks_after_the_old_ones,
    a_new_task_waiting_on_ended_ones_is_settled_at_once,
    tasks_are_matched_by_what_they_train_not_how_they_run,
    keys_of_an_older_layout_are_rewritten_when_the_store_opens,
    a_cancelled_sweep_or_another_experiment_is_refused,
);
