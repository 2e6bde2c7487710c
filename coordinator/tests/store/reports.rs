//! What a worker reports under a lease: metric points, completions (alone,
//! in batches, riding on a lease) and artifacts, each fenced.

use crate::common::*;
use crate::helpers::*;
use sweep_coordinator::error::Error;
use sweep_coordinator::store::*;
use sweep_proto::{Completion, Lease, LeaseRef, MetricPoint, SweepRef};
use sweep_proto::{TaskId, TaskState, WorkerId};

async fn metric_writes_are_idempotent_and_checked(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("metrics", 1, "")).await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, TTL).await;
    let batch: Vec<MetricPoint> = (0..1200)
        .map(|s| point("train_loss", s, 1.0 / (s + 1) as f64))
        .collect();
    assert_eq!(
        store.record_metrics(&lease.to_ref(), &batch).await.unwrap(),
        1200
    );
    assert_eq!(
        store.record_metrics(&lease.to_ref(), &batch).await.unwrap(),
        0
    );
    let stored = store.metrics(lease.task_id).await.unwrap();
    assert_eq!(stored.len(), 1200);
    assert_eq!(stored[0].attempt, 1);
    assert_eq!(stored[0].point, batch[0]);
    let bad = [point("train_loss", 5000, f64::NAN)];
    let err = store
        .record_metrics(&lease.to_ref(), &bad)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    assert_eq!(store.metrics(lease.task_id).await.unwrap().len(), 1200);

    // Names and values come back exactly as sent, however awkward.
    let awkward = vec![
        MetricPoint {
            name: "odd \"name\" \\ é\n".into(),
            step: -3,
            epoch: None,
            value: 0.1 + 0.2,
        },
        point("tiny", 1, 5e-324),
        point("huge", 1, -f64::MAX),
        point("third", 1, 1.0 / 3.0),
    ];
    assert_eq!(
        store
            .record_metrics(&lease.to_ref(), &awkward)
            .await
            .unwrap(),
        4
    );
    let stored = store.metrics(lease.task_id).await.unwrap();
    for sent in &awkward {
        let back = stored.iter().find(|m| m.point.name == sent.name).unwrap();
        assert_eq!(&back.point, sent);
        assert_eq!(back.point.value.to_bits(), sent.value.to_bits());
    }
}

async fn a_completion_stores_its_last_points_with_it(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("tail", 1, "")).await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, TTL).await;
    store
        .record_metrics(&lease.to_ref(), &[point("loss", 1, 0.5)])
        .await
        .unwrap();
    // A bad point refuses the whole completion: nothing is stored and the
    // task stays leased, so the worker can still end it properly.
    let bad = [point("loss", 2, 0.4), point("test_acc", 2, f64::INFINITY)];
    let err = store
        .complete(&lease.to_ref(), &summary(&[("test_acc", 0.9)]), &bad)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    let task = store.task(lease.task_id).await.unwrap();
    assert_eq!(task.state, TaskState::Leased);
    assert_eq!(store.metrics(lease.task_id).await.unwrap().len(), 1);

    // A point sent before is kept once; the new ones land with the success.
    let tail = [
        point("loss", 1, 0.5),
        point("loss", 2, 0.4),
        point("test_acc", 2, 0.9),
    ];
    store
        .complete(&lease.to_ref(), &summary(&[("test_acc", 0.9)]), &tail)
        .await
        .unwrap();
    let task = store.task(lease.task_id).await.unwrap();
    assert_eq!(task.state, TaskState::Succeeded);
    let stored: Vec<_> = store
        .metrics(lease.task_id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.attempt, m.point))
        .collect();
    let expected: Vec<_> = tail.iter().map(|p| (1, p.clone())).collect();
    assert_eq!(stored, expected);
}

async fn completions_in_one_call_are_fenced_and_checked_each_on_its_own(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("many", 4, "")).await;
    let w = worker(store, "w").await;
    let leases = store.lease(w.into(), &CPU, 4, TTL).await.unwrap();
    assert_eq!(leases.len(), 4);
    let refs: Vec<LeaseRef> = leases.iter().map(Lease::to_ref).collect();
    let stale = LeaseRef {
        task_id: refs[1].task_id,
        token: "not-the-token".into(),
    };
    let done = summary(&[("test_acc", 0.9)]);
    let good = [point("test_acc", 1, 0.9)];
    let bad = [point("test_acc", 1, f64::NAN)];
    let completion = |lease: &LeaseRef, points: &[MetricPoint]| Completion {
        lease: lease.clone(),
        summary: done.clone(),
        points: points.to_vec(),
    };
    let outcomes = store
        .complete_many(&[
            completion(&refs[0], &good),
            completion(&stale, &good),
            completion(&refs[2], &bad),
            completion(&refs[3], &good),
        ])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(
        matches!(outcomes[1], Err(Error::StaleLease { .. })),
        "{:?}",
        outcomes[1]
    );
    assert!(
        matches!(outcomes[2], Err(Error::InvalidRequest(_))),
        "{:?}",
        outcomes[2]
    );
    assert!(outcomes[3].is_ok(), "{:?}", outcomes[3]);
    let mut states = Vec::new();
    for lease in &refs {
        states.push(store.task(lease.task_id).await.unwrap().state);
    }
    use TaskState::{Leased, Succeeded};
    assert_eq!(states, [Succeeded, Leased, Leased, Succeeded]);
    for (lease, stored) in refs.iter().zip([1, 0, 0, 1]) {
        let metrics = store.metrics(lease.task_id).await.unwrap();
        assert_eq!(metrics.len(), stored, "task {}", lease.task_id);
    }
    // The refused ones can still be completed with their real leases.
    let outcomes = store
        .complete_many(&[completion(&refs[1], &good), completion(&refs[2], &good)])
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let counts = store
        .sweep(&SweepRef::Name("many".into()))
        .await
        .unwrap()
        .counts;
    assert_eq!(counts.succeeded, 4);
}

async fn a_lease_carries_completions_in_its_transaction(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &pair_spec("riding")).await;
    let tasks = store.tasks(id, &[]).await.unwrap();
    let w = worker(store, "w").await;
    let leases = store.lease(w.into(), &CPU, 5, TTL).await.unwrap();
    let refs: Vec<LeaseRef> = leases.iter().map(Lease::to_ref).collect();
    assert_eq!(refs.len(), 2, "the interpolation is blocked");
    let done = summary(&[("test_acc", 0.9)]);
    let points = [point("test_acc", 1, 0.9)];
    let completion = |lease: &LeaseRef| Completion {
        lease: lease.clone(),
        summary: done.clone(),
        points: points.to_vec(),
    };

    // An unknown worker changes nothing, its completions included.
    let unknown = WorkerId(w.0 + 1000);
    let refused = store
        .complete_and_lease(&[completion(&refs[0])], unknown.into(), &CPU, 1, TTL)
        .await;
    assert_not_found(refused);
    assert_eq!(
        store.task(refs[0].task_id).await.unwrap().state,
        TaskState::Leased
    );
    assert!(store.metrics(refs[0].task_id).await.unwrap().is_empty());

    let stale = LeaseRef {
        task_id: refs[1].task_id,
        token: "not-the-token".into(),
    };
    let carried = [
        completion(&refs[0]),
        completion(&stale),
        completion(&refs[1]),
    ];
    let (outcomes, leased) = store
        .complete_and_lease(&carried, w.into(), &CPU, 5, TTL)
        .await
        .unwrap();
    let [first, refused, second]: [_; 3] = outcomes.try_into().expect("one outcome each");
    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    assert_stale(refused);
    // The interpolation, queued by the two completions, goes out in the same
    // call.
    let leased: Vec<(TaskId, Vec<TaskId>)> = leased
        .into_iter()
        .map(|lease| (lease.task_id, lease.depends_on))
        .collect();
    assert_eq!(leased, [(tasks[2].id, vec![tasks[0].id, tasks[1].id])]);
    for lease in &refs {
        assert_eq!(store.metrics(lease.task_id).await.unwrap().len(), 1);
    }
}

async fn a_task_named_twice_in_one_call_is_completed_once_in_call_order(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("twice", 2, "")).await;
    let w = worker(store, "w").await;
    let leases = store.lease(w.into(), &CPU, 2, TTL).await.unwrap();
    let refs: Vec<LeaseRef> = leases.iter().map(Lease::to_ref).collect();
    let stale = LeaseRef {
        task_id: refs[0].task_id,
        token: "not-the-token".into(),
    };
    let (wrong, first, second, other) = (
        summary(&[("test_acc", 0.1)]),
        summary(&[("test_acc", 0.5)]),
        summary(&[("test_acc", 0.9)]),
        summary(&[("test_acc", 0.7)]),
    );
    let (early, late) = ([point("loss", 1, 2.0)], [point("loss", 2, 1.0)]);
    let outcomes = store
        .complete_many(&[
            Completion {
                lease: stale.clone(),
                summary: wrong.clone(),
                points: early.to_vec(),
            },
            Completion {
                lease: refs[0].clone(),
                summary: first.clone(),
                points: early.to_vec(),
            },
            Completion {
                lease: refs[0].clone(),
                summary: second.clone(),
                points: late.to_vec(),
            },
            Completion {
                lease: refs[1].clone(),
                summary: other.clone(),
                points: late.to_vec(),
            },
        ])
        .await
        .unwrap();
    let refused = |outcome: &Result<(), Error>| matches!(outcome, Err(Error::StaleLease { state, .. }) if *state == TaskState::Succeeded);
    assert!(
        matches!(outcomes[0], Err(Error::StaleLease { .. })),
        "{:?}",
        outcomes[0]
    );
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    assert!(refused(&outcomes[2]), "{:?}", outcomes[2]);
    assert!(outcomes[3].is_ok(), "{:?}", outcomes[3]);
    // The first current lease's completion is the one that counts: its
    // summary and its points, none of the other entries'.
    let task = store.task(refs[0].task_id).await.unwrap();
    assert_eq!(task.summary, Some(first.clone()));
    let steps: Vec<i64> = store
        .metrics(refs[0].task_id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.point.step)
        .collect();
    assert_eq!(steps, [1]);
    let settings = store.aggregate(id).await.unwrap();
    let acc = settings[0].summary["test_acc"];
    assert_eq!(acc.n, 2);
    assert!((acc.mean - 0.6).abs() < 1e-12, "{acc:?}");
}

async fn artifacts_are_stored_per_attempt(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("artifacts", 1, "")).await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, TTL).await;
    let data: Vec<u8> = (0..=255).cycle().take(100_000).collect();
    for bytes in [vec![9u8; 10], data.clone()] {
        let artifact = NewArtifact {
            name: "weights/final".into(),
            encoding: "raw".into(),
            data: bytes,
        };
        store.put_artifact(&lease.to_ref(), artifact).await.unwrap();
    }
    let got = store
        .artifact(lease.task_id, "weights/final")
        .await
        .unwrap();
    assert_eq!(got.data, data, "the later upload replaces the earlier one");
    assert_eq!(got.attempt, 1);
    assert_not_found(store.artifact(lease.task_id, "weights/epoch-001").await);
    assert_not_found(store.artifact(TaskId(999_999), "weights/final").await);
}

crate::store_suite!(
    metric_writes_are_idempotent_and_checked,
    a_completion_stores_its_last_points_with_it,
    completions_in_one_call_are_fenced_and_checked_each_on_its_own,
    a_lease_carries_completions_in_its_transaction,
    a_task_named_twice_in_one_call_is_completed_once_in_call_order,
    artifacts_are_stored_per_attempt,
);
