//! The schema: what a reopened store keeps, what a store from an older
//! version gains on open, and what the database refuses.

use crate::common::*;
use crate::helpers::*;
use sweep_proto::{TaskCounts, TaskState};
use sweep_spec::Summary;
use sweep_spec::planner::spec_key;

async fn a_reopened_store_has_lost_nothing(db: &mut TestDb) {
    let id = submit(&db.store, &classify_spec("durable", 2, "")).await;
    let w = worker(&db.store, "w").await;
    let lease = lease_one(&db.store, w, TTL).await;
    db.store
        .record_metrics(&lease.to_ref(), &[point("loss", 1, 0.25)])
        .await
        .unwrap();
    db.reopen().await;
    let store = &db.store;
    let sweep = get_sweep(store, id).await.unwrap();
    assert_eq!(
        sweep.counts,
        TaskCounts {
            queued: 1,
            leased: 1,
            ..Default::default()
        }
    );
    assert_eq!(store.metrics(lease.task_id).await.unwrap().len(), 1);
    // The lease survived: the worker can finish its task.
    store
        .complete(&lease.to_ref(), &Summary::new(), &[])
        .await
        .unwrap();
}

async fn sweeps_stored_before_spec_keys_get_theirs_on_open(db: &mut TestDb) {
    let spec = classify_spec("old", 1, "");
    let id = submit(&db.store, &spec).await;
    db.execute("UPDATE sweeps SET spec_key = ''").await;
    assert_eq!(
        db.store.sweep_with_key(&spec_key(&spec)).await.unwrap(),
        None
    );
    db.reopen().await;
    let found = db.store.sweep_with_key(&spec_key(&spec)).await.unwrap();
    assert_eq!(found.map(|s| s.id), Some(id));
}

async fn a_store_from_before_dependency_counts_counts_them_on_open(db: &mut TestDb) {
    let id = submit(&db.store, &pair_spec("counted")).await;
    // As the schema was before migration 4.
    db.execute("ALTER TABLE tasks DROP COLUMN dependents").await;
    db.execute("ALTER TABLE tasks DROP COLUMN dependencies")
        .await;
    db.execute("DELETE FROM _sqlx_migrations WHERE version = 4")
        .await;
    db.reopen().await;
    let store = &db.store;
    let w = worker(store, "w").await;
    let leases = store.lease(w.into(), &CPU, 5, TTL).await.unwrap();
    for lease in &leases {
        store
            .complete(&lease.to_ref(), &Summary::new(), &[])
            .await
            .unwrap();
    }
    let interpolation = lease_one(store, w, TTL).await;
    assert_eq!(
        interpolation.depends_on,
        vec![leases[0].task_id, leases[1].task_id]
    );
    assert_eq!(store.tasks(id, &[]).await.unwrap().len(), 3);
}

/// The schema knows the states the code writes, every one, and no other.
async fn the_database_refuses_a_task_state_the_code_does_not_know(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("states", 1, "")).await;
    let task = store.tasks(id, &[]).await.unwrap()[0].id;
    for state in TaskState::ALL {
        let sql = format!("UPDATE tasks SET state = '{state}' WHERE id = {task}");
        db.try_execute(&sql)
            .await
            .unwrap_or_else(|err| panic!("{state}: {err}"));
    }
    let sql = format!("UPDATE tasks SET state = 'paused' WHERE id = {task}");
    let err = db.try_execute(&sql).await.unwrap_err();
    assert!(err.to_string().contains("tasks_state_known"), "{err}");
}

crate::store_suite!(
    the_database_refuses_a_task_state_the_code_does_not_know,
    a_reopened_store_has_lost_nothing,
    sweeps_stored_before_spec_keys_get_theirs_on_open,
    a_store_from_before_dependency_counts_counts_them_on_open,
);
