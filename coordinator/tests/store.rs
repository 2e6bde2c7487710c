//! One suite for the `Store` contract, run against a real SQLite file and a
//! real PostgreSQL database.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, worker};
use sweep_coordinator::error::Error;
use sweep_coordinator::store::*;
use sweep_proto::{CancelOutcome, Lease, LeaseRef, MetricPoint, SweepId, SweepRef, SweepState};
use sweep_proto::{TaskCounts, TaskId, TaskState, Verdict, WorkerId};
use sweep_spec::planner::{self, spec_key};
use sweep_spec::{ExperimentKind, Summary};

const TTL: Duration = Duration::from_secs(60);
const CPU: Capabilities = Capabilities { cuda: false };

fn classify_spec(name: &str, seeds: usize, extra: &str) -> String {
    let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
    format!(
        r#"
name = "{name}"
experiment = "classify"
dataset = "mnist"
model = {{ kind = "mlp", hidden = [16] }}
train = {{ lr = 1e-3, epochs = 1, batch_size = 64 }}
{extra}
[grid]
seed = [{}]
"#,
        seeds.join(", ")
    )
}

async fn submit(store: &Arc<dyn Store>, spec: &str) -> SweepId {
    let sweep = planner::submission(spec).expect("valid spec");
    store.create_sweep(&sweep).await.expect("create sweep")
}

async fn get_sweep(store: &Arc<dyn Store>, id: SweepId) -> Result<sweep_proto::Sweep, Error> {
    store.sweep(&id.into()).await
}

fn summary(values: &[(&str, f64)]) -> Summary {
    values.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

async fn lease_one(store: &Arc<dyn Store>, worker: WorkerId, ttl: Duration) -> Lease {
    let mut leases = store.lease(worker, &CPU, 1, ttl).await.expect("lease");
    assert_eq!(leases.len(), 1, "expected one task to lease");
    leases.remove(0)
}

fn point(name: &str, step: i64, value: f64) -> MetricPoint {
    MetricPoint {
        name: name.into(),
        step,
        epoch: Some(0),
        value,
    }
}

fn assert_stale(result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(Error::StaleLease { .. }) => {}
        other => panic!("expected a stale-lease error, got {other:?}"),
    }
}

fn assert_not_found(result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

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
                let leases = store.lease(me, &CPU, 3, TTL).await.expect("lease");
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
    assert!(store.lease(w, &CPU, 1, TTL).await.unwrap().is_empty());
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

const INTERPOLATE: &str = r#"
[interpolate]
between = "batch_size"
alpha = { from = 0.0, to = 1.0, step = 0.5 }
"#;

fn pair_spec(name: &str) -> String {
    format!(
        r#"
name = "{name}"
experiment = "classify"
dataset = "mnist"
model = {{ kind = "mlp", hidden = [16] }}
train = {{ lr = 1e-3, epochs = 1 }}
{INTERPOLATE}
[grid]
batch_size = [64, 1024]
"#
    )
}

async fn dependents_unblock_only_when_all_dependencies_succeed(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &pair_spec("pair")).await;
    let tasks = store.tasks(id, &[]).await.unwrap();
    assert_eq!(tasks.len(), 3);
    let interpolation = &tasks[2];
    assert_eq!(interpolation.state, TaskState::Blocked);
    assert_eq!(interpolation.params.experiment, ExperimentKind::Interpolate);
    assert_eq!(interpolation.depends_on, vec![tasks[0].id, tasks[1].id]);

    let w = worker(store, "w").await;
    let leases = store.lease(w, &CPU, 5, TTL).await.unwrap();
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
    let leases = store.lease(w, &CPU, 5, TTL).await.unwrap();
    store
        .fail(&leases[0].to_ref(), "out of memory", false)
        .await
        .unwrap();
    let tasks = store.tasks(id, &[TaskState::Failed]).await.unwrap();
    assert_eq!(tasks.len(), 2);
    let dependent = &tasks[1];
    assert_eq!(dependent.params.experiment, ExperimentKind::Interpolate);
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
    assert!(store.lease(w, &CPU, 4, TTL).await.unwrap().is_empty());
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
    let leases = store.lease(w, &CPU, 4, TTL).await.unwrap();
    assert_eq!(leases.len(), 4);
    let refs: Vec<LeaseRef> = leases.iter().map(Lease::to_ref).collect();
    let stale = LeaseRef {
        task_id: refs[1].task_id,
        token: "not-the-token".into(),
    };
    let done = summary(&[("test_acc", 0.9)]);
    let good = [point("test_acc", 1, 0.9)];
    let bad = [point("test_acc", 1, f64::NAN)];
    let completion = |lease, points| Completion {
        lease,
        summary: &done,
        points,
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
    let leases = store.lease(w, &CPU, 5, TTL).await.unwrap();
    let refs: Vec<LeaseRef> = leases.iter().map(Lease::to_ref).collect();
    assert_eq!(refs.len(), 2, "the interpolation is blocked");
    let done = summary(&[("test_acc", 0.9)]);
    let points = [point("test_acc", 1, 0.9)];
    let completion = |lease| Completion {
        lease,
        summary: &done,
        points: &points,
    };

    // An unknown worker changes nothing, its completions included.
    let unknown = WorkerId(w.0 + 1000);
    let refused = store
        .complete_and_lease(&[completion(&refs[0])], unknown, &CPU, 1, TTL)
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
        .complete_and_lease(&carried, w, &CPU, 5, TTL)
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
    let leases = store.lease(w, &CPU, 2, TTL).await.unwrap();
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
                lease: &stale,
                summary: &wrong,
                points: &early,
            },
            Completion {
                lease: &refs[0],
                summary: &first,
                points: &early,
            },
            Completion {
                lease: &refs[0],
                summary: &second,
                points: &late,
            },
            Completion {
                lease: &refs[1],
                summary: &other,
                points: &late,
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

async fn retry_requeues_only_failed_tasks(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(
        store,
        &format!("max_attempts = 1\n{}", classify_spec("retry", 3, "")),
    )
    .await;
    let w = worker(store, "w").await;
    let leases = store.lease(w, &CPU, 3, TTL).await.unwrap();
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
    assert_not_found(store.lease(WorkerId(999_999), &CPU, 1, TTL).await);
}

async fn cuda_tasks_go_only_to_cuda_workers(db: &mut TestDb) {
    let store = &db.store;
    submit(
        store,
        &format!("requires = \"cuda\"\n{}", classify_spec("gpu", 1, "")),
    )
    .await;
    let w = worker(store, "w").await;
    assert!(store.lease(w, &CPU, 1, TTL).await.unwrap().is_empty());
    let gpu = Capabilities { cuda: true };
    assert_eq!(store.lease(w, &gpu, 1, TTL).await.unwrap().len(), 1);
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
    assert_eq!(find(busy).registration.devices[0].kind, "cpu");
    assert!(find(busy).silent_for < Duration::from_secs(30));
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
    let lease = LeaseRef {
        task_id: TaskId(424_242),
        token: "x".into(),
    };
    assert_not_found(store.complete(&lease, &Summary::new(), &[]).await);
}

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

async fn reports_aggregate_each_setting_over_its_seeds(db: &mut TestDb) {
    let store = &db.store;
    let spec = r#"
name = "report"
experiment = "classify"
dataset = "mnist"
max_attempts = 1
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 1 }
[grid]
batch_size = [32, 64]
seed = [0, 1, 2]
"#;
    let id = submit(store, spec).await;
    let w = worker(store, "w").await;
    let leases = store.lease(w, &CPU, 6, TTL).await.unwrap();
    let (small, large): (Vec<&Lease>, Vec<&Lease>) =
        leases.iter().partition(|l| l.params.batch_size == Some(32));
    for (lease, (acc, loss)) in small.iter().zip([(0.80, 1.5), (0.84, 1.25), (0.90, 0.5)]) {
        let values = [
            ("test_acc", acc),
            ("test_loss", loss),
            ("lambda_min", f64::NAN),
        ];
        store
            .complete(&lease.to_ref(), &summary(&values), &[])
            .await
            .unwrap();
    }
    for (lease, acc) in large.iter().zip([0.5, 0.7]) {
        let mut values = summary(&[("test_acc", acc)]);
        if acc > 0.6 {
            values.set("sensitivity", 3.0);
        }
        store.complete(&lease.to_ref(), &values, &[]).await.unwrap();
    }
    store
        .fail(&large[2].to_ref(), "diverged", false)
        .await
        .unwrap();

    let settings = store.aggregate(id).await.unwrap();
    assert_eq!(settings.len(), 2, "one row per batch size");
    let (first, second) = (&settings[0], &settings[1]);
    assert_eq!(first.params.batch_size, Some(32), "{:?}", first.params);
    assert_eq!((first.tasks, first.succeeded, first.failed), (3, 3, 0));
    assert_eq!((second.tasks, second.succeeded, second.failed), (3, 2, 1));
    // Hand-computed: mean and sample standard deviation (n - 1).
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    let acc = first.summary["test_acc"];
    assert_eq!(acc.n, 3);
    assert!(close(acc.mean, 0.846_666_666_666_666_7), "{acc:?}");
    assert!(close(acc.std.unwrap(), 0.050_332_229_568_471_66), "{acc:?}");
    let loss = first.summary["test_loss"];
    assert!(close(loss.mean, 1.083_333_333_333_333_3), "{loss:?}");
    assert!(
        close(loss.std.unwrap(), 0.520_416_499_866_533_2),
        "{loss:?}"
    );
    assert!(
        !first.summary.contains_key("lambda_min"),
        "numbers that are not finite are not aggregated"
    );
    let acc = second.summary["test_acc"];
    assert_eq!(acc.n, 2, "the failed task has no summary");
    assert!(close(acc.mean, 0.6) && close(acc.std.unwrap(), 0.141_421_356_237_309_48));
    let sensitivity = second.summary["sensitivity"];
    assert_eq!(
        (sensitivity.n, sensitivity.mean, sensitivity.std),
        (1, 3.0, None)
    );
    assert_not_found(store.aggregate(SweepId(424_242)).await);
}

async fn tasks_are_read_page_by_page_with_the_filter_in_the_database(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("pages", 5, "")).await;
    let all = store.tasks(id, &[]).await.unwrap();
    let w = worker(store, "w").await;
    let leased = store.lease(w, &CPU, 2, TTL).await.unwrap();
    assert_eq!(
        leased.iter().map(|l| l.task_id).collect::<Vec<_>>(),
        [all[0].id, all[1].id]
    );
    let ids = |page: &TaskPage| page.tasks.iter().map(|t| t.id).collect::<Vec<_>>();
    let first = store.task_page(id, &[], 0, 2).await.unwrap();
    assert_eq!(ids(&first), [all[0].id, all[1].id]);
    let second = store
        .task_page(id, &[], first.next.unwrap(), 2)
        .await
        .unwrap();
    assert_eq!(ids(&second), [all[2].id, all[3].id]);
    let last = store
        .task_page(id, &[], second.next.unwrap(), 2)
        .await
        .unwrap();
    assert_eq!((ids(&last), last.next), (vec![all[4].id], None));

    let queued = [TaskState::Queued];
    let first = store.task_page(id, &queued, 0, 2).await.unwrap();
    assert_eq!(
        ids(&first),
        [all[2].id, all[3].id],
        "filtered before paging"
    );
    let rest = store
        .task_page(id, &queued, first.next.unwrap(), 2)
        .await
        .unwrap();
    assert_eq!((ids(&rest), rest.next), (vec![all[4].id], None));
    let none = store
        .task_page(id, &[TaskState::Failed], 0, 2)
        .await
        .unwrap();
    assert_eq!((none.tasks.len(), none.next), (0, None));
    let both = [TaskState::Leased, TaskState::Failed];
    assert_eq!(store.tasks(id, &both).await.unwrap().len(), 2);
    assert_eq!(store.tasks(id, &[]).await.unwrap().len(), 5);
    assert_not_found(store.task_page(SweepId(424_242), &[], 0, 2).await);
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
    let leases = store.lease(w, &CPU, 5, TTL).await.unwrap();
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

store_suite!(
    a_store_from_before_dependency_counts_counts_them_on_open,
    tasks_are_read_page_by_page_with_the_filter_in_the_database,
    sweeps_are_found_by_name_and_by_spec_key,
    sweeps_stored_before_spec_keys_get_theirs_on_open,
    reports_aggregate_each_setting_over_its_seeds,
    sweep_is_stored_with_its_tasks_in_grid_order,
    concurrent_leasers_never_get_the_same_task,
    an_expired_lease_is_requeued_with_a_new_attempt_and_token,
    exhausting_max_attempts_fails_the_task_with_the_last_error,
    expiry_after_the_last_attempt_fails_the_task,
    a_non_retryable_error_fails_at_once,
    dependents_unblock_only_when_all_dependencies_succeed,
    a_failed_dependency_fails_its_dependents,
    cancel_stops_queued_tasks_and_tells_the_holders,
    metric_writes_are_idempotent_and_checked,
    a_completion_stores_its_last_points_with_it,
    completions_in_one_call_are_fenced_and_checked_each_on_its_own,
    a_task_named_twice_in_one_call_is_completed_once_in_call_order,
    a_lease_carries_completions_in_its_transaction,
    artifacts_are_stored_per_attempt,
    a_handed_back_task_does_not_use_up_an_attempt,
    retry_requeues_only_failed_tasks,
    heartbeats_extend_leases_and_report_lost_ones,
    cuda_tasks_go_only_to_cuda_workers,
    workers_are_listed_with_their_tasks,
    unknown_ids_are_not_found,
    a_reopened_store_has_lost_nothing,
);

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
    for lease in db.store.lease(w, &CPU, 40, TTL).await.unwrap() {
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
