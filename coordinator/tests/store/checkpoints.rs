//! Checkpoints: the newest per task, fenced, carried to the next attempt
//! with the points taken before it, deleted when the task succeeds.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use crate::helpers::*;
use sweep_coordinator::error::Error;
use sweep_coordinator::store::*;
use sweep_proto::{Lease, TaskId};

fn checkpoint(step: u64, watermarks: &[(&str, i64)], data: &[u8]) -> NewCheckpoint {
    NewCheckpoint {
        step,
        watermarks: (watermarks.iter())
            .map(|(name, last)| (name.to_string(), *last))
            .collect(),
        data: data.to_vec(),
    }
}

/// Leases the sweep's one task again once its lease has run out.
async fn expire_and_lease_again(store: &std::sync::Arc<dyn Store>) -> Lease {
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.reap_expired().await.unwrap();
    let w = worker(store, "next").await;
    lease_one(store, w, TTL).await
}

async fn a_checkpoint_is_the_newest_one_and_only_its_holder_reads_it(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("checkpoint", 1, "")).await;
    let w = worker(store, "w").await;
    let first = lease_one(store, w, Duration::ZERO).await;
    assert_not_found(store.checkpoint(&first.to_ref()).await);
    let put = |step, data: &'static [u8], lease: &Lease| {
        let lease = lease.to_ref();
        async move {
            store
                .put_checkpoint(&lease, checkpoint(step, &[], data))
                .await
        }
    };
    put(4, b"four", &first).await.unwrap();
    put(8, b"eight", &first).await.unwrap();
    let read = store.checkpoint(&first.to_ref()).await.unwrap();
    assert_eq!(
        (read.attempt, read.step, read.data),
        (1, 8, b"eight".to_vec())
    );

    let second = expire_and_lease_again(store).await;
    assert_stale(put(9, b"late", &first).await);
    assert_stale(store.checkpoint(&first.to_ref()).await);
    let read = store.checkpoint(&second.to_ref()).await.unwrap();
    assert_eq!(
        (read.attempt, read.step),
        (1, 8),
        "an earlier attempt's, whole"
    );
    put(12, b"twelve", &second).await.unwrap();
    let read = store.checkpoint(&second.to_ref()).await.unwrap();
    assert_eq!(
        (read.attempt, read.step, read.data),
        (2, 12, b"twelve".to_vec())
    );

    store
        .complete(&second.to_ref(), &summary(&[]), &[])
        .await
        .unwrap();
    let task = store.task(second.task_id).await.unwrap();
    assert_eq!(task.state, sweep_proto::TaskState::Succeeded);
    assert_eq!(
        checkpoints(db, second.task_id).await,
        0,
        "deleted on success"
    );
}

/// How many checkpoint rows the task has, read in SQL: the store offers no
/// way to read a succeeded task's checkpoint.
async fn checkpoints(db: &TestDb, task: TaskId) -> i64 {
    db.scalar(&format!(
        "SELECT COUNT(*) FROM checkpoints WHERE task_id = {}",
        task.0
    ))
    .await
}

async fn a_resumed_attempt_keeps_the_points_taken_before_its_checkpoint(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("resumed", 1, "")).await;
    let w = worker(store, "w").await;
    let first = lease_one(store, w, Duration::ZERO).await;
    let loss = |steps: std::ops::RangeInclusive<i64>| {
        steps
            .map(|s| point("batch_loss", s, s as f64))
            .collect::<Vec<_>>()
    };
    store
        .record_metrics(&first.to_ref(), &loss(1..=7))
        .await
        .unwrap();
    store
        .record_metrics(&first.to_ref(), &[point("test_loss", 1, 0.5)])
        .await
        .unwrap();
    let saved = checkpoint(5, &[("batch_loss", 5), ("test_loss", 1)], b"state");
    store.put_checkpoint(&first.to_ref(), saved).await.unwrap();

    let second = expire_and_lease_again(store).await;
    assert_eq!(second.attempt, 2);
    match store.resume(&second.to_ref(), 4).await {
        Err(Error::Precondition(message)) => assert!(message.contains("step 5"), "{message}"),
        other => panic!("expected a precondition error, got {other:?}"),
    }
    store.resume(&second.to_ref(), 5).await.unwrap();
    store.resume(&second.to_ref(), 5).await.unwrap();
    assert_eq!(store.task(second.task_id).await.unwrap().resumed_from, 5);
    store
        .record_metrics(&second.to_ref(), &loss(6..=9))
        .await
        .unwrap();
    store
        .complete(
            &second.to_ref(),
            &summary(&[]),
            &[point("test_loss", 2, 0.25)],
        )
        .await
        .unwrap();

    let series: BTreeMap<(String, i64), (u32, f64)> = (store.metrics(second.task_id).await)
        .unwrap()
        .into_iter()
        .map(|m| ((m.point.name, m.point.step), (m.attempt, m.point.value)))
        .collect();
    let steps = |name: &str| {
        (series.keys())
            .filter(|(n, _)| n == name)
            .map(|(_, s)| *s)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        steps("batch_loss"),
        (1..=9).collect::<Vec<_>>(),
        "whole, none twice"
    );
    assert_eq!(steps("test_loss"), [1, 2]);
    assert_eq!(series[&("batch_loss".to_string(), 7)], (2, 7.0));
    let attempts = store.attempts(second.task_id).await.unwrap();
    let started: Vec<u64> = attempts.iter().map(|a| a.resumed_from).collect();
    assert_eq!(started, [0, 5]);
    assert_eq!(store.task(second.task_id).await.unwrap().resumed_from, 5);
}

/// A one-task sweep whose first attempt left a checkpoint and expired: that
/// attempt's lease and the second's.
async fn checkpointed_then_expired(
    store: &std::sync::Arc<dyn Store>,
    name: &str,
) -> (Lease, Lease) {
    submit(store, &classify_spec(name, 1, "")).await;
    let w = worker(store, "w").await;
    let first = lease_one(store, w, Duration::ZERO).await;
    (store.put_checkpoint(&first.to_ref(), checkpoint(5, &[], b"junk")))
        .await
        .unwrap();
    let second = expire_and_lease_again(store).await;
    (first, second)
}

async fn a_refused_checkpoint_is_the_attempts_error_even_when_it_succeeds(db: &mut TestDb) {
    let store = &db.store;
    let (first, second) = checkpointed_then_expired(store, "refused").await;
    let expired = store.task(second.task_id).await.unwrap();
    assert_eq!(expired.error, None, "a new attempt starts without an error");
    let why = "the checkpoint is unreadable: it is cut short\nsecond line";
    store
        .refuse_checkpoint(&second.to_ref(), why)
        .await
        .unwrap();
    assert_stale(store.refuse_checkpoint(&first.to_ref(), why).await);
    let error = store.task(second.task_id).await.unwrap().error;
    assert_eq!(
        error.as_deref(),
        Some(
            "checkpoint refused, trained from the start: the checkpoint is unreadable: it is cut short"
        )
    );
    store
        .complete(&second.to_ref(), &summary(&[]), &[])
        .await
        .unwrap();
    let task = store.task(second.task_id).await.unwrap();
    assert_eq!(task.state, sweep_proto::TaskState::Succeeded);
    assert_eq!(task.error, error, "kept: the succeeded attempt's own line");
    assert_eq!(task.resumed_from, 0);
}

async fn a_refusal_stays_with_its_attempt_when_it_is_handed_back(db: &mut TestDb) {
    let store = &db.store;
    let (_, second) = checkpointed_then_expired(store, "handed").await;
    store
        .refuse_checkpoint(&second.to_ref(), "other shape")
        .await
        .unwrap();
    store.release(&second.to_ref()).await.unwrap();
    let attempts = store.attempts(second.task_id).await.unwrap();
    let errors: Vec<Option<&str>> = attempts.iter().map(|a| a.error.as_deref()).collect();
    assert!(
        errors[1].is_some_and(|e| e.contains("other shape")),
        "{errors:?}"
    );
}

crate::store_suite!(
    a_checkpoint_is_the_newest_one_and_only_its_holder_reads_it,
    a_resumed_attempt_keeps_the_points_taken_before_its_checkpoint,
    a_refused_checkpoint_is_the_attempts_error_even_when_it_succeeds,
    a_refusal_stays_with_its_attempt_when_it_is_handed_back,
);
