//! Sweeps and workers: storing, finding, dependencies, cancel and retry.

use crate::common::*;
use crate::helpers::*;
use std::time::Duration;
use sweep_coordinator::error::Error;
use sweep_proto::{CancelOutcome, LeaseRef, SweepId, SweepRef};
use sweep_proto::{DeviceKind, SweepState};
use sweep_proto::{TaskCounts, TaskId, TaskState, Verdict, WorkerId, WorkerStatus};
use sweep_spec::planner::spec_key;
use sweep_spec::{ExperimentKind, Summary};

async fn sweep_is_stored_with_its_tasks_in_grid_order(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("stored", 3, "")).await;
    let sweep = get_sweep(store, id).await.unwrap();
    assert_eq!(sweep.name, "stored");
    assert_eq!(sweep.experiment, ExperimentKind::Classify);
    assert_eq!(sweep.state, SweepState::Pending);
    assert_eq!(sweep.counts.queued, 3);
    assert_eq!(sweep.counts.total(), 3);
    assert!(sweep.spec_toml.contains("name = \"stored\""));
    let tasks = store.tasks(id, &[]).await.unwrap();
    let seeds: Vec<u64> = tasks.iter().map(|t| t.params.seed).collect();
    assert_eq!(seeds, vec![0, 1, 2]);
    assert!(
        tasks
            .iter()
            .all(|t| t.state == TaskState::Queued && t.attempt == 0)
    );
    assert_eq!(store.sweeps(10).await.unwrap()[0].id, id);
    assert_eq!(store.task(tasks[1].id).await.unwrap(), tasks[1]);
}

async fn sweeps_are_found_by_name_and_by_spec_key(db: &mut TestDb) {
    let store = &db.store;
    let spec = classify_spec("named", 1, "");
    let first = submit(store, &spec).await;
    let second = submit(store, &spec).await;
    let other = submit(store, &classify_spec("other", 2, "")).await;
    let named = store.sweep(&SweepRef::Name("named".into())).await.unwrap();
    assert_eq!(
        named.id, second,
        "a name finds the newest sweep of that name"
    );
    assert!(first < second);
    let by_key = store.sweep_with_key(&spec_key(&spec)).await.unwrap();
    assert_eq!(by_key.map(|s| s.id), Some(second));
    let edited = format!("{spec}\n# edited\n");
    assert_eq!(
        store.sweep_with_key(&spec_key(&edited)).await.unwrap(),
        None
    );
    assert_eq!(get_sweep(store, other).await.unwrap().counts.total(), 2);
}

async fn dependents_unblock_only_when_all_dependencies_succeed(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &pair_spec("pair")).await;
    let tasks = store.tasks(id, &[]).await.unwrap();
    assert_eq!(tasks.len(), 3);
    let interpolation = &tasks[2];
    assert_eq!(interpolation.state, TaskState::Blocked);
    assert_eq!(interpolation.params.kind(), ExperimentKind::Interpolate);
    assert_eq!(interpolation.depends_on, vec![tasks[0].id, tasks[1].id]);

    let w = worker(store, "w").await;
    let leases = store.lease(w.into(), &CPU, 5, TTL).await.unwrap();
    assert_eq!(leases.len(), 2, "the blocked task is not leased");
    store
        .complete(&leases[0].to_ref(), &Summary::new(), &[])
        .await
        .unwrap();
    assert_eq!(
        store.task(interpolation.id).await.unwrap().state,
        TaskState::Blocked
    );
    store
        .complete(&leases[1].to_ref(), &Summary::new(), &[])
        .await
        .unwrap();
    assert_eq!(
        store.task(interpolation.id).await.unwrap().state,
        TaskState::Queued
    );
    let lease = lease_one(store, w, TTL).await;
    assert_eq!(lease.task_id, interpolation.id);
    assert_eq!(lease.depends_on, vec![tasks[0].id, tasks[1].id]);
}

async fn a_failed_dependency_fails_its_dependents(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &pair_spec("broken-pair")).await;
    let w = worker(store, "w").await;
    let leases = store.lease(w.into(), &CPU, 5, TTL).await.unwrap();
    store
        .fail(&leases[0].to_ref(), "out of memory", false)
        .await
        .unwrap();
    let tasks = store.tasks(id, &[TaskState::Failed]).await.unwrap();
    assert_eq!(tasks.len(), 2);
    let dependent = &tasks[1];
    assert_eq!(dependent.params.kind(), ExperimentKind::Interpolate);
    let error = dependent.error.clone().unwrap();
    assert!(
        error.contains(&format!("dependency task {} failed", leases[0].task_id)),
        "{error}"
    );

    // Retry re-queues the failed training task and blocks the dependent again.
    store
        .complete(&leases[1].to_ref(), &Summary::new(), &[])
        .await
        .unwrap();
    assert_eq!(store.retry_sweep(id).await.unwrap(), 2);
    let dependent = store.task(dependent.id).await.unwrap();
    assert_eq!(dependent.state, TaskState::Blocked);
    let again = lease_one(store, w, TTL).await;
    assert_eq!(again.task_id, leases[0].task_id);
    assert_eq!(again.attempt, 2);
    store
        .complete(&again.to_ref(), &Summary::new(), &[])
        .await
        .unwrap();
    assert_eq!(
        store.task(dependent.id).await.unwrap().state,
        TaskState::Queued
    );
}

async fn cancel_stops_queued_tasks_and_tells_the_holders(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("cancel-me", 4, "")).await;
    let w = worker(store, "w").await;
    let held = lease_one(store, w, TTL).await;
    let outcome = store.cancel_sweep(id).await.unwrap();
    assert_eq!(
        outcome,
        CancelOutcome {
            cancelled: 3,
            signalled: 1
        }
    );
    assert!(
        store
            .lease(w.into(), &CPU, 4, TTL)
            .await
            .unwrap()
            .is_empty()
    );
    let statuses = store.heartbeat(w, &[held.to_ref()], TTL).await.unwrap();
    assert_eq!(statuses[0].verdict, Verdict::Cancel);
    assert_eq!(
        store.release(&held.to_ref()).await.unwrap(),
        TaskState::Cancelled
    );
    let sweep = get_sweep(store, id).await.unwrap();
    assert_eq!(sweep.state, SweepState::Cancelled);
    assert_eq!(sweep.counts.cancelled, 4);
    // Cancelling again changes nothing; a cancelled sweep is not retried.
    assert_eq!(
        store.cancel_sweep(id).await.unwrap(),
        CancelOutcome::default()
    );
    assert!(matches!(
        store.retry_sweep(id).await,
        Err(Error::Precondition(_))
    ));
}

async fn retry_requeues_only_failed_tasks(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(
        store,
        &format!("max_attempts = 1\n{}", classify_spec("retry", 3, "")),
    )
    .await;
    let w = worker(store, "w").await;
    let leases = store.lease(w.into(), &CPU, 3, TTL).await.unwrap();
    store
        .complete(&leases[0].to_ref(), &Summary::new(), &[])
        .await
        .unwrap();
    store.fail(&leases[1].to_ref(), "boom", true).await.unwrap();
    assert_eq!(store.retry_sweep(id).await.unwrap(), 1);
    let sweep = get_sweep(store, id).await.unwrap();
    assert_eq!(
        sweep.counts,
        TaskCounts {
            queued: 1,
            leased: 1,
            succeeded: 1,
            ..Default::default()
        }
    );
    assert_eq!(sweep.state, SweepState::Running);
    let again = lease_one(store, w, TTL).await;
    assert_eq!(again.task_id, leases[1].task_id);
    assert_eq!(
        again.attempt, 2,
        "the retried task gets a new attempt budget"
    );
    store
        .complete(&again.to_ref(), &Summary::new(), &[])
        .await
        .unwrap();
    store
        .complete(&leases[2].to_ref(), &Summary::new(), &[])
        .await
        .unwrap();
    let sweep = get_sweep(store, id).await.unwrap();
    assert_eq!(sweep.state, SweepState::Succeeded);
    assert!(sweep.finished_at.is_some());
}

async fn workers_are_listed_with_their_tasks(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("who", 2, "")).await;
    let idle = worker(store, "idle").await;
    let busy = worker(store, "busy").await;
    let lease = lease_one(store, busy, TTL).await;
    let workers = store.workers().await.unwrap();
    assert_eq!(workers.len(), 2);
    let find = |id| workers.iter().find(|w| w.id == id).unwrap();
    assert_eq!(find(busy).running, vec![lease.task_id]);
    assert!(find(idle).running.is_empty());
    assert_eq!(find(busy).registration.devices[0].kind, DeviceKind::Cpu);
    assert_eq!(find(idle).status, WorkerStatus::Live);

    // One that says it stops is stopped, however recently it was heard.
    store.leave(idle).await.unwrap();
    let workers = store.workers().await.unwrap();
    let idle = workers.iter().find(|w| w.id == idle).unwrap();
    assert_eq!(idle.status, WorkerStatus::Stopped);
    let busy = workers.iter().find(|w| w.id == busy).unwrap();
    assert_eq!(busy.status, WorkerStatus::Live);
    assert_not_found(store.leave(WorkerId(424_242)).await);
}

/// Liveness is judged by the lease TTL each worker registered with, so a
/// reader of the database needs no coordinator config to tell a lost
/// worker from a live one.
async fn a_worker_silent_past_its_own_lease_ttl_is_lost(db: &mut TestDb) {
    let store = &db.store;
    let brief = worker_with_ttl(store, "brief", Duration::from_millis(50)).await;
    let patient = worker(store, "patient").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let workers = store.workers().await.unwrap();
    let status = |id| workers.iter().find(|w| w.id == id).unwrap().status;
    assert_eq!(status(brief), WorkerStatus::Lost);
    assert_eq!(status(patient), WorkerStatus::Live);
    // A heartbeat makes it live again.
    store.heartbeat(brief, &[], TTL).await.unwrap();
    let workers = store.workers().await.unwrap();
    let status = |id| workers.iter().find(|w| w.id == id).unwrap().status;
    assert_eq!(status(brief), WorkerStatus::Live);
}

async fn unknown_ids_are_not_found(db: &mut TestDb) {
    let store = &db.store;
    assert_not_found(get_sweep(store, SweepId(424_242)).await);
    assert_not_found(store.sweep(&SweepRef::Name("nobody".into())).await);
    assert_not_found(store.tasks(SweepId(424_242), &[]).await);
    assert_not_found(store.task(TaskId(424_242)).await);
    assert_not_found(store.cancel_sweep(SweepId(424_242)).await);
    assert_not_found(store.retry_sweep(SweepId(424_242)).await);
    assert_not_found(store.metrics(TaskId(424_242)).await);
    assert_not_found(store.attempts(TaskId(424_242)).await);
    let lease = LeaseRef {
        task_id: TaskId(424_242),
        token: "x".into(),
    };
    assert_not_found(store.complete(&lease, &Summary::new(), &[]).await);
}

crate::store_suite!(
    sweep_is_stored_with_its_tasks_in_grid_order,
    sweeps_are_found_by_name_and_by_spec_key,
    dependents_unblock_only_when_all_dependencies_succeed,
    a_failed_dependency_fails_its_dependents,
    cancel_stops_queued_tasks_and_tells_the_holders,
    retry_requeues_only_failed_tasks,
    workers_are_listed_with_their_tasks,
    a_worker_silent_past_its_own_lease_ttl_is_lost,
    unknown_ids_are_not_found,
);
