//! Leases: never twice, expiry, attempts, hand-backs, heartbeats, device
//! fit, and the change signal that wakes long polls.

use crate::common::*;
use crate::helpers::*;
use std::collections::HashSet;
use std::time::Duration;
use sweep_coordinator::store::*;
use sweep_proto::SweepState;
use sweep_proto::{LeaseCall, LeaseRef};
use sweep_proto::{TaskId, TaskState, Verdict, WorkerId};
use sweep_spec::Summary;

async fn concurrent_leasers_never_get_the_same_task(db: &mut TestDb) {
    let store = &db.store;
    let spec = classify_spec("crowd", 1000, "");
    submit(store, &spec).await;
    let mut handles = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let me = worker(&store, &format!("w{i}")).await;
            let mut mine = Vec::new();
            loop {
                let leases = store.lease(me.into(), &CPU, 3, TTL).await.expect("lease");
                if leases.is_empty() {
                    return mine;
                }
                mine.extend(leases.into_iter().map(|l| l.task_id));
            }
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    let unique: HashSet<TaskId> = all.iter().copied().collect();
    assert_eq!(all.len(), 1000, "every task is leased exactly once");
    assert_eq!(unique.len(), 1000, "no task is leased twice");
}

async fn an_expired_lease_is_requeued_with_a_new_attempt_and_token(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("expiry", 1, "")).await;
    let w = worker(store, "w").await;
    let first = lease_one(store, w, Duration::ZERO).await;
    assert_eq!(first.attempt, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reaped = store.reap_expired().await.unwrap();
    assert_eq!(reaped.requeued, vec![first.task_id]);
    let task = store.task(first.task_id).await.unwrap();
    assert_eq!(task.state, TaskState::Queued);
    assert!(task.error.unwrap().contains("lease expired"));

    let second = lease_one(store, w, TTL).await;
    assert_eq!(second.task_id, first.task_id);
    assert_eq!(second.attempt, 2);
    assert_ne!(second.token, first.token);

    // The old lease can change nothing.
    let old = first.to_ref();
    assert_stale(store.record_metrics(&old, &[point("loss", 1, 0.5)]).await);
    assert_stale(
        store
            .complete(&old, &Summary::new(), &[point("loss", 2, 0.5)])
            .await,
    );
    assert_stale(store.fail(&old, "late", true).await);
    let artifact = NewArtifact {
        name: "weights/final".into(),
        encoding: "raw".into(),
        data: vec![1],
    };
    assert_stale(store.put_artifact(&old, artifact).await);
    let task = store.task(first.task_id).await.unwrap();
    assert_eq!(task.state, TaskState::Leased);
    assert_eq!(task.attempt, 2);
    assert!(store.metrics(first.task_id).await.unwrap().is_empty());
    // The new one still works.
    store
        .complete(&second.to_ref(), &summary(&[("acc", 0.9)]), &[])
        .await
        .unwrap();
    let task = store.task(first.task_id).await.unwrap();
    assert_eq!(task.state, TaskState::Succeeded);
    assert_eq!(task.error, None);
    assert_eq!(task.summary, Some(summary(&[("acc", 0.9)])));
}

async fn exhausting_max_attempts_fails_the_task_with_the_last_error(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(
        store,
        &format!("max_attempts = 2\n{}", classify_spec("flaky", 1, "")),
    )
    .await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, TTL).await;
    let state = store.fail(&lease.to_ref(), "boom 1", true).await.unwrap();
    assert_eq!(state, TaskState::Queued);
    let lease = lease_one(store, w, TTL).await;
    assert_eq!(lease.attempt, 2);
    let state = store.fail(&lease.to_ref(), "boom 2", true).await.unwrap();
    assert_eq!(state, TaskState::Failed);
    let task = store.task(lease.task_id).await.unwrap();
    assert_eq!(task.error.as_deref(), Some("boom 2"));
    let sweep = get_sweep(store, id).await.unwrap();
    assert_eq!(sweep.state, SweepState::Failed);
    assert!(sweep.finished_at.is_some());
    assert!(
        store
            .lease(w.into(), &CPU, 1, TTL)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn expiry_after_the_last_attempt_fails_the_task(db: &mut TestDb) {
    let store = &db.store;
    submit(
        store,
        &format!("max_attempts = 1\n{}", classify_spec("lost", 1, "")),
    )
    .await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reaped = store.reap_expired().await.unwrap();
    assert_eq!(reaped.failed, vec![lease.task_id]);
    let task = store.task(lease.task_id).await.unwrap();
    assert_eq!(task.state, TaskState::Failed);
    assert!(task.error.unwrap().contains("attempt 1 of 1"));
    assert!(store.reap_expired().await.unwrap().is_empty());
}

async fn a_non_retryable_error_fails_at_once(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("fatal", 1, "")).await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, TTL).await;
    let state = store
        .fail(&lease.to_ref(), "diverged at step 12", false)
        .await
        .unwrap();
    assert_eq!(state, TaskState::Failed);
    assert_eq!(store.task(lease.task_id).await.unwrap().attempt, 1);
}

async fn a_handed_back_task_does_not_use_up_an_attempt(db: &mut TestDb) {
    let store = &db.store;
    submit(
        store,
        &format!("max_attempts = 1\n{}", classify_spec("handback", 1, "")),
    )
    .await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, TTL).await;
    assert_eq!(
        store.release(&lease.to_ref()).await.unwrap(),
        TaskState::Queued
    );
    assert_stale(store.release(&lease.to_ref()).await);
    let lease = lease_one(store, w, TTL).await;
    assert_eq!(lease.attempt, 2);
    assert_eq!(
        store.fail(&lease.to_ref(), "boom", true).await.unwrap(),
        TaskState::Failed
    );
}

async fn heartbeats_extend_leases_and_report_lost_ones(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("heartbeat", 1, "")).await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, Duration::from_millis(1)).await;
    let statuses = store.heartbeat(w, &[lease.to_ref()], TTL).await.unwrap();
    assert_eq!(statuses[0].verdict, Verdict::Keep);
    assert!(statuses[0].expires_at.unwrap() >= lease.expires_at + 59_000);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        store.reap_expired().await.unwrap().is_empty(),
        "the heartbeat kept it"
    );
    let stale = LeaseRef {
        task_id: lease.task_id,
        token: "not-the-token".into(),
    };
    let statuses = store.heartbeat(w, &[stale], TTL).await.unwrap();
    assert_eq!(statuses[0].verdict, Verdict::Lost);
    assert_not_found(store.heartbeat(WorkerId(999_999), &[], TTL).await);
    assert_not_found(store.lease(WorkerId(999_999).into(), &CPU, 1, TTL).await);
}

async fn cuda_tasks_go_only_to_cuda_workers(db: &mut TestDb) {
    let store = &db.store;
    submit(
        store,
        &format!("requires = \"cuda\"\n{}", classify_spec("gpu", 1, "")),
    )
    .await;
    let w = worker(store, "w").await;
    assert!(
        store
            .lease(w.into(), &CPU, 1, TTL)
            .await
            .unwrap()
            .is_empty()
    );
    let gpu = Capabilities { cuda: true };
    assert_eq!(store.lease(w.into(), &gpu, 1, TTL).await.unwrap().len(), 1);
}

async fn a_lease_call_made_again_gets_back_the_leases_it_made(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("again", 6, "")).await;
    let w = worker(store, "w").await;
    let call = |number, again| LeaseCall {
        worker: w,
        number,
        again,
    };
    let first = store.lease(call(7, false), &CPU, 2, TTL).await.unwrap();
    assert_eq!(first.len(), 2);
    // Its answer was lost: the same call made again gets the same leases
    // (same attempt, same token, a later expiry) and fills the third slot.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = store.lease(call(7, true), &CPU, 3, TTL).await.unwrap();
    assert_eq!(again.len(), 3);
    for lease in &first {
        let back = again.iter().find(|l| l.task_id == lease.task_id).unwrap();
        assert_eq!((back.attempt, &back.token), (lease.attempt, &lease.token));
        assert!(back.expires_at > lease.expires_at);
    }
    let third = (again.iter())
        .find(|l| first.iter().all(|f| f.task_id != l.task_id))
        .unwrap();
    // Another call, made again, gets none of call 7's.
    let other = store.lease(call(8, true), &CPU, 1, TTL).await.unwrap();
    assert_eq!(other.len(), 1);
    assert!(again.iter().all(|l| l.task_id != other[0].task_id));
    // An ended lease is not handed out again, nor is anything to an
    // unnumbered call or another worker.
    store.fail(&third.to_ref(), "boom", false).await.unwrap();
    let others = worker(store, "other").await;
    let elsewhere = LeaseCall {
        worker: others,
        number: 7,
        again: true,
    };
    let stranger = store.lease(elsewhere, &CPU, 6, TTL).await.unwrap();
    assert_eq!(stranger.len(), 2, "only the 2 tasks still queued");
    assert!(stranger.iter().all(|l| l.attempt == 1));
    let unnumbered = store.lease(call(0, true), &CPU, 6, TTL).await.unwrap();
    assert!(unnumbered.is_empty());
    let last = store.lease(call(7, true), &CPU, 6, TTL).await.unwrap();
    let mut ids: Vec<TaskId> = last.iter().map(|l| l.task_id).collect();
    let mut held: Vec<TaskId> = first.iter().map(|l| l.task_id).collect();
    ids.sort();
    held.sort();
    assert_eq!(ids, held, "call 7 still holds exactly its first two");
}

/// The fraction of `tasks` rows in `state` by PostgreSQL's planner
/// statistics (0 when the statistics do not list it).
async fn planned_share(url: &str, state: &str) -> f32 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT most_common_vals::text, most_common_freqs::text FROM pg_stats \
         WHERE tablename = 'tasks' AND attname = 'state'",
    )
    .fetch_optional(&mut conn)
    .await
    .unwrap();
    let Some((values, freqs)) = row else {
        return 0.0;
    };
    let values = values.trim_matches(['{', '}']).split(',');
    let freqs = freqs.trim_matches(['{', '}']).split(',');
    values
        .zip(freqs)
        .find(|(value, _)| *value == state)
        .map_or(0.0, |(_, freq)| freq.parse().unwrap())
}

/// PostgreSQL plans the lease from its statistics: if they say few tasks are
/// queued while thousands are, every lease reads and sorts all of them
/// instead of the first few in index order (10,000 queued tasks: 1,850
/// tasks/s instead of 4,000, lease p99 125 ms instead of 40). Autovacuum
/// refreshes them only within a minute or so, so the store does it itself
/// whenever many tasks become queued at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planner_learns_of_tasks_queued_by_a_submission_or_a_retry() {
    let db = TestDb::postgres().await;
    let id = submit(&db.store, &classify_spec("stats", 40, "max_attempts = 1")).await;
    assert!(
        planned_share(&db.url, "queued").await > 0.9,
        "statistics after the submission"
    );
    let w = worker(&db.store, "w").await;
    for lease in db.store.lease(w.into(), &CPU, 40, TTL).await.unwrap() {
        db.store.fail(&lease.to_ref(), "boom", false).await.unwrap();
    }
    // As autovacuum would while the sweep stood failed.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("ANALYZE tasks")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(planned_share(&db.url, "queued").await, 0.0);
    assert_eq!(db.store.retry_sweep(id).await.unwrap(), 40);
    assert!(
        planned_share(&db.url, "queued").await > 0.9,
        "statistics after the retry"
    );
    db.cleanup().await;
}

/// Coordinators sharing a PostgreSQL database wake each other's long polls:
/// a change made through one store moves the other's change counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_coordinator_wakes_the_others() {
    let db = TestDb::postgres().await;
    let other = connect(&db.url).await.unwrap();
    let mut changes = other.changes();
    changes.borrow_and_update();
    // The other store's listener starts in the background: keep changing
    // until it hears one (a notification sent before it listens is lost).
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        let mut n = 0;
        loop {
            submit(&db.store, &classify_spec(&format!("wake-{n}"), 1, "")).await;
            n += 1;
            if tokio::time::timeout(Duration::from_millis(500), changes.changed())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(
        heard.is_ok(),
        "the other coordinator never heard of a change"
    );
    drop(other);
    db.cleanup().await;
}

crate::store_suite!(
    concurrent_leasers_never_get_the_same_task,
    an_expired_lease_is_requeued_with_a_new_attempt_and_token,
    exhausting_max_attempts_fails_the_task_with_the_last_error,
    expiry_after_the_last_attempt_fails_the_task,
    a_non_retryable_error_fails_at_once,
    a_handed_back_task_does_not_use_up_an_attempt,
    heartbeats_extend_leases_and_report_lost_ones,
    cuda_tasks_go_only_to_cuda_workers,
    a_lease_call_made_again_gets_back_the_leases_it_made,
);
