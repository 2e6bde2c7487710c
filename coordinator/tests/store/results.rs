//! What reports read: per-setting aggregates and pages of tasks.

use crate::common::*;
use crate::helpers::*;
use std::time::Duration;
use sweep_coordinator::store::*;
use sweep_proto::TaskState;
use sweep_proto::{Lease, SweepId, TaskId};

const GRID: TaskOrder = TaskOrder::Grid;

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
    let leases = store.lease(w.into(), &CPU, 6, TTL).await.unwrap();
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
    let leased = store.lease(w.into(), &CPU, 2, TTL).await.unwrap();
    assert_eq!(
        leased.iter().map(|l| l.task_id).collect::<Vec<_>>(),
        [all[0].id, all[1].id]
    );
    let ids = |page: &TaskPage| page.tasks.iter().map(|t| t.id).collect::<Vec<_>>();
    let first = store.task_page(id, &[], GRID, 0, 2).await.unwrap();
    assert_eq!(ids(&first), [all[0].id, all[1].id]);
    let second = store
        .task_page(id, &[], GRID, first.next.unwrap(), 2)
        .await
        .unwrap();
    assert_eq!(ids(&second), [all[2].id, all[3].id]);
    let last = store
        .task_page(id, &[], GRID, second.next.unwrap(), 2)
        .await
        .unwrap();
    assert_eq!((ids(&last), last.next), (vec![all[4].id], None));

    let queued = [TaskState::Queued];
    let first = store.task_page(id, &queued, GRID, 0, 2).await.unwrap();
    assert_eq!(
        ids(&first),
        [all[2].id, all[3].id],
        "filtered before paging"
    );
    let rest = store
        .task_page(id, &queued, GRID, first.next.unwrap(), 2)
        .await
        .unwrap();
    assert_eq!((ids(&rest), rest.next), (vec![all[4].id], None));
    let none = store
        .task_page(id, &[TaskState::Failed], GRID, 0, 2)
        .await
        .unwrap();
    assert_eq!((none.tasks.len(), none.next), (0, None));
    let both = [TaskState::Leased, TaskState::Failed];
    assert_eq!(store.tasks(id, &both).await.unwrap().len(), 2);
    assert_eq!(store.tasks(id, &[]).await.unwrap().len(), 5);
    assert_not_found(store.task_page(SweepId(424_242), &[], GRID, 0, 2).await);
}

async fn tasks_are_paged_in_the_order_asked_for(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("orders", 5, "")).await;
    let t: Vec<TaskId> = (store.tasks(id, &[]).await.unwrap().iter())
        .map(|t| t.id)
        .collect();
    let w = worker(store, "w").await;
    let leased = store.lease(w.into(), &CPU, 3, TTL).await.unwrap();
    store
        .complete(&leased[0].to_ref(), &summary(&[]), &[])
        .await
        .unwrap();
    store
        .fail(&leased[1].to_ref(), "boom", false)
        .await
        .unwrap();
    // Handed back and leased again: the third task's second attempt.
    store.release(&leased[2].to_ref()).await.unwrap();
    assert_eq!(lease_one(store, w, TTL).await.attempt, 2);

    let read = |order, from| async move {
        let page = store.task_page(id, &[], order, from, 2).await.unwrap();
        let ids: Vec<TaskId> = page.tasks.iter().map(|t| t.id).collect();
        (ids, page.next)
    };
    let all = |order| async move {
        let (mut ids, mut next) = read(order, 0).await;
        while let Some(from) = next {
            let (more, after) = read(order, from).await;
            ids.extend(more);
            next = after;
        }
        ids
    };
    assert_eq!(all(TaskOrder::Grid).await, t);
    assert_eq!(
        all(TaskOrder::State).await,
        [t[1], t[2], t[3], t[4], t[0]],
        "failed, running, queued, succeeded"
    );
    assert_eq!(read(TaskOrder::State, 2).await, (vec![t[3], t[4]], Some(4)));
    assert_eq!(
        all(TaskOrder::Attempts).await,
        [t[2], t[0], t[1], t[3], t[4]]
    );
    let by_time = all(TaskOrder::Duration).await;
    assert_eq!(by_time[3..], [t[3], t[4]], "never started: last");
    let failed = store
        .task_page(id, &[TaskState::Failed], TaskOrder::State, 0, 2)
        .await
        .unwrap();
    assert_eq!((failed.tasks.len(), failed.next), (1, None));
}

async fn a_task_keeps_the_history_of_its_attempts(db: &mut TestDb) {
    let store = &db.store;
    let id = submit(store, &classify_spec("history", 1, "max_attempts = 3")).await;
    let task = store.tasks(id, &[]).await.unwrap()[0].id;
    assert!(
        store.attempts(task).await.unwrap().is_empty(),
        "not started"
    );
    let (a, b) = (worker(store, "a").await, worker(store, "b").await);
    let first = lease_one(store, a, TTL).await;
    store.fail(&first.to_ref(), "boom", true).await.unwrap();
    let second = lease_one(store, b, TTL).await;
    store.release(&second.to_ref()).await.unwrap();
    lease_one(store, a, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.reap_expired().await.unwrap().requeued, [task]);
    let fourth = lease_one(store, b, TTL).await;

    let attempts = store.attempts(task).await.unwrap();
    let seen: Vec<_> = (attempts.iter())
        .map(|a| (a.number, a.worker, a.outcome))
        .collect();
    assert_eq!(
        seen,
        [
            (1, Some(a), Outcome::Failed),
            (2, Some(b), Outcome::HandedBack),
            (3, Some(a), Outcome::Expired),
            (4, Some(b), Outcome::Running),
        ]
    );
    assert_eq!(attempts[0].error.as_deref(), Some("boom"));
    assert_eq!(attempts[1].error, None);
    assert!(
        attempts[2]
            .error
            .as_deref()
            .unwrap()
            .contains("lease expired")
    );
    assert_eq!(attempts[3].ended_at, None);
    for past in &attempts[..3] {
        assert!(
            past.started_at.unwrap() <= past.ended_at.unwrap(),
            "{past:?}"
        );
    }

    store
        .complete(&fourth.to_ref(), &summary(&[]), &[])
        .await
        .unwrap();
    let attempts = store.attempts(task).await.unwrap();
    assert_eq!(attempts.len(), 4);
    let last = &attempts[3];
    assert_eq!((last.outcome, last.worker), (Outcome::Succeeded, Some(b)));
    let done = store.task(task).await.unwrap();
    assert_eq!(done.worker, Some(b), "the latest attempt's worker stays");
    assert_eq!(
        (done.started_at, done.finished_at),
        (last.started_at, last.ended_at)
    );
    assert!(done.finished_at.is_some());
}

crate::store_suite!(
    reports_aggregate_each_setting_over_its_seeds,
    tasks_are_read_page_by_page_with_the_filter_in_the_database,
    tasks_are_paged_in_the_order_asked_for,
    a_task_keeps_the_history_of_its_attempts,
);
