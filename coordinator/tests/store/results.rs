//! What reports read: per-setting aggregates and pages of tasks.

use crate::common::*;
use crate::helpers::*;
use sweep_coordinator::store::*;
use sweep_proto::TaskState;
use sweep_proto::{Lease, SweepId};

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

crate::store_suite!(
    reports_aggregate_each_setting_over_its_seeds,
    tasks_are_read_page_by_page_with_the_filter_in_the_database,
);
