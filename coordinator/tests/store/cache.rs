//! The result cache: a claim completes a task's result key and trains it,
//! makes it wait for the task training the same key, or ends it pointing at
//! an earlier task's results; what goes into the key; results that lost
//! something are not used; `--no-cache` sweeps stay out of it.

use std::sync::Arc;

use crate::common::*;
use crate::helpers::*;
use sweep_coordinator::store::*;
use sweep_proto::{
    Backend, Claim, Device, DeviceKind, Forget, Lease, Registration, SweepId, TaskId, TaskState,
    WorkerId,
};
use sweep_spec::planner;

const DATA: &str = "d1";

async fn worker_of(store: &Arc<dyn Store>, backend: Backend, result_version: u32) -> WorkerId {
    worker_on(store, backend, DeviceKind::Cpu, result_version).await
}

async fn worker_on(
    store: &Arc<dyn Store>,
    backend: Backend,
    kind: DeviceKind,
    result_version: u32,
) -> WorkerId {
    store
        .register_worker(
            &Registration {
                name: "w".into(),
                host: "localhost".into(),
                backend,
                devices: vec![Device {
                    kind,
                    name: "test cpu".into(),
                    memory_bytes: 1 << 30,
                }],
                slots: 8,
                version: "test".into(),
                result_version,
            },
            TTL,
        )
        .await
        .unwrap()
}

/// Leases every queued task of the store for `worker`.
async fn lease_all(store: &Arc<dyn Store>, worker: WorkerId) -> Vec<Lease> {
    store.lease(worker.into(), &CPU, 64, TTL).await.unwrap()
}

/// Trains a leased task: its claim says train, then it stores a metric
/// point per seed-dependent value, an artifact and its summary.
async fn train(store: &Arc<dyn Store>, lease: &Lease, data: &str) {
    let claim = store.claim_result(&lease.to_ref(), data).await.unwrap();
    assert_eq!(claim, Claim::Train, "task {}", lease.task_id);
    finish(store, lease).await;
}

async fn finish(store: &Arc<dyn Store>, lease: &Lease) {
    let value = lease.params.seed as f64 + 0.25;
    let artifact = NewArtifact {
        name: "weights/final".into(),
        encoding: "f32-le".into(),
        data: value.to_le_bytes().to_vec(),
    };
    store.put_artifact(&lease.to_ref(), artifact).await.unwrap();
    let points = [point("loss", 1, value), point("loss", 2, value / 2.0)];
    store
        .record_metrics(&lease.to_ref(), &points)
        .await
        .unwrap();
    let done = summary(&[("test_acc", value), ("test_loss", 1.0 / value)]);
    store.complete(&lease.to_ref(), &done, &[]).await.unwrap();
}

async fn claim(store: &Arc<dyn Store>, lease: &Lease, data: &str) -> Claim {
    store.claim_result(&lease.to_ref(), data).await.unwrap()
}

/// A sweep of `seeds` seeds, every task trained by one worker.
async fn trained_sweep(store: &Arc<dyn Store>, name: &str, seeds: usize) -> (SweepId, Vec<Lease>) {
    let id = submit(store, &classify_spec(name, seeds, "")).await;
    let w = worker_of(store, Backend::Flex, 1).await;
    let leases = lease_all(store, w).await;
    assert_eq!(leases.len(), seeds);
    for lease in &leases {
        train(store, lease, DATA).await;
    }
    (id, leases)
}

async fn a_second_sweep_of_the_same_tasks_points_at_the_first_ones_results(db: &mut TestDb) {
    let store = &db.store;
    let (first, trained) = trained_sweep(store, "first", 3).await;
    let second = submit(store, &classify_spec("second", 3, "")).await;
    let w = worker_of(store, Backend::Flex, 1).await;
    let leases = lease_all(store, w).await;
    for (lease, source) in leases.iter().zip(&trained) {
        assert!(lease.cacheable);
        let source = source.task_id;
        assert_eq!(claim(store, lease, DATA).await, Claim::Cached { source });
        let task = store.task(lease.task_id).await.unwrap();
        assert_eq!(task.state, TaskState::Succeeded);
        assert_eq!(task.cached_from, Some(source));
        assert_eq!(task.summary, store.task(source).await.unwrap().summary);
        let points =
            |metrics: Vec<Metric>| -> Vec<_> { metrics.into_iter().map(|m| m.point).collect() };
        assert_eq!(
            points(store.metrics(lease.task_id).await.unwrap()),
            points(store.metrics(source).await.unwrap())
        );
        let read = store
            .artifact(lease.task_id, "weights/final")
            .await
            .unwrap();
        assert_eq!(
            read.data,
            store.artifact(source, "weights/final").await.unwrap().data
        );
        assert_eq!(store.artifacts(lease.task_id).await.unwrap().len(), 1);
    }
    // The lease is over: nothing more can be reported under it.
    assert_stale(
        store
            .complete(&leases[0].to_ref(), &summary(&[]), &[])
            .await,
    );
    let sweep = get_sweep(store, second).await.unwrap();
    assert_eq!(sweep.state, sweep_proto::SweepState::Succeeded);
    assert_eq!((sweep.counts.succeeded, sweep.counts.cached), (3, 3));
    assert_eq!(get_sweep(store, first).await.unwrap().counts.cached, 0);
    let stats = |s: Vec<SettingStats>| -> Vec<_> { s.into_iter().map(|s| s.summary).collect() };
    assert_eq!(
        stats(store.aggregate(second).await.unwrap()),
        stats(store.aggregate(first).await.unwrap()),
        "the same report"
    );
}

async fn a_changed_dataset_backend_device_or_result_version_trains_again(db: &mut TestDb) {
    let store = &db.store;
    trained_sweep(store, "source", 1).await;
    let (cpu, cuda) = (DeviceKind::Cpu, DeviceKind::Cuda);
    let cases = [
        ("other data", Backend::Flex, cpu, 1, "d2"),
        ("other backend", Backend::Tch, cpu, 1, DATA),
        ("other device", Backend::Tch, cuda, 1, DATA),
        ("other version", Backend::Flex, cpu, 2, DATA),
    ];
    for (name, backend, kind, version, data) in cases {
        submit(store, &classify_spec(name, 1, "")).await;
        let w = worker_on(store, backend, kind, version).await;
        let lease = lease_one(store, w, TTL).await;
        assert_eq!(claim(store, &lease, data).await, Claim::Train, "{name}");
        finish(store, &lease).await;
    }
    // Each trained a result of its own, which a task like it now uses.
    submit(store, &classify_spec("like the version", 1, "")).await;
    let w = worker_of(store, Backend::Flex, 2).await;
    let lease = lease_one(store, w, TTL).await;
    assert!(matches!(
        claim(store, &lease, DATA).await,
        Claim::Cached { .. }
    ));
}

async fn a_task_waits_while_its_key_trains_and_takes_over_when_that_fails(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("a", 1, "")).await;
    submit(store, &classify_spec("b", 1, "")).await;
    submit(store, &classify_spec("c", 1, "")).await;
    let w = worker_of(store, Backend::Flex, 1).await;
    let leases = lease_all(store, w).await;
    let (a, b, c) = (&leases[0], &leases[1], &leases[2]);
    assert_eq!(claim(store, a, DATA).await, Claim::Train);
    let waiting = Claim::Wait {
        training: a.task_id,
    };
    assert_eq!(claim(store, b, DATA).await, waiting);
    assert_eq!(claim(store, a, DATA).await, Claim::Train, "asking again");
    store
        .fail(&a.to_ref(), "out of memory", false)
        .await
        .unwrap();
    assert_eq!(claim(store, b, DATA).await, Claim::Train, "b takes over");
    assert_eq!(
        claim(store, c, DATA).await,
        Claim::Wait {
            training: b.task_id
        }
    );
    finish(store, b).await;
    assert_eq!(
        claim(store, c, DATA).await,
        Claim::Cached { source: b.task_id }
    );
}

async fn concurrent_claims_of_one_key_train_once(db: &mut TestDb) {
    let store = &db.store;
    for i in 0..8 {
        submit(store, &classify_spec(&format!("s{i}"), 1, "")).await;
    }
    let w = worker_of(store, Backend::Flex, 1).await;
    let leases = lease_all(store, w).await;
    assert_eq!(leases.len(), 8);
    let claims = leases.iter().map(|lease| {
        let store = store.clone();
        let lease = lease.to_ref();
        tokio::spawn(async move { store.claim_result(&lease, DATA).await.unwrap() })
    });
    let claims: Vec<Claim> = futures::future::join_all(claims)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let trainers: Vec<usize> = (0..8).filter(|&i| claims[i] == Claim::Train).collect();
    assert_eq!(trainers.len(), 1, "{claims:?}");
    let training = leases[trainers[0]].task_id;
    for (i, claim) in claims.iter().enumerate() {
        if i != trainers[0] {
            assert_eq!(*claim, Claim::Wait { training });
        }
    }
}

async fn a_result_that_lost_an_artifact_or_its_metrics_is_not_used(db: &mut TestDb) {
    let store = &db.store;
    let (_, trained) = trained_sweep(store, "source", 2).await;
    let (lost_artifact, lost_metrics) = (trained[0].task_id, trained[1].task_id);
    db.execute(&format!(
        "DELETE FROM artifacts WHERE task_id = {lost_artifact}"
    ))
    .await;
    db.execute(&format!(
        "DELETE FROM metrics WHERE task_id = {lost_metrics}"
    ))
    .await;
    submit(store, &classify_spec("again", 2, "")).await;
    let w = worker_of(store, Backend::Flex, 1).await;
    for lease in lease_all(store, w).await {
        train(store, &lease, DATA).await;
    }
    // The new results replaced the broken ones.
    submit(store, &classify_spec("third", 2, "")).await;
    let w = worker_of(store, Backend::Flex, 1).await;
    for lease in lease_all(store, w).await {
        let Claim::Cached { source } = claim(store, &lease, DATA).await else {
            panic!("expected a cache hit");
        };
        assert!(source != lost_artifact && source != lost_metrics);
    }
}

async fn a_sweep_without_the_cache_neither_uses_nor_feeds_it(db: &mut TestDb) {
    let store = &db.store;
    trained_sweep(store, "source", 1).await;
    let mut uncached = planner::submission(&classify_spec("uncached", 1, "")).unwrap();
    uncached.cache = false;
    store.create_sweep(&uncached).await.unwrap();
    let w = worker_of(store, Backend::Flex, 1).await;
    let lease = lease_one(store, w, TTL).await;
    assert!(!lease.cacheable);
    train(store, &lease, "another digest").await;
    // Nothing was recorded for "another digest": a task with it trains.
    submit(store, &classify_spec("cached", 1, "")).await;
    let lease = lease_one(store, w, TTL).await;
    assert_eq!(claim(store, &lease, "another digest").await, Claim::Train);
    assert_eq!(store.task(lease.task_id).await.unwrap().cached_from, None);
}

async fn an_interpolation_over_cached_endpoints_is_cached_too(db: &mut TestDb) {
    let store = &db.store;
    let run = |name: &'static str| async move {
        submit(store, &pair_spec(name)).await;
        let w = worker_of(store, Backend::Flex, 1).await;
        let endpoints = lease_all(store, w).await;
        assert_eq!(endpoints.len(), 2, "the interpolation waits for both");
        let mut claims = Vec::new();
        for lease in &endpoints {
            let claimed = claim(store, lease, DATA).await;
            if claimed == Claim::Train {
                finish(store, lease).await;
            }
            claims.push(claimed);
        }
        let interpolation = lease_one(store, w, TTL).await;
        assert_eq!(interpolation.depends_on.len(), 2);
        for dep in &interpolation.depends_on {
            store.artifact(*dep, "weights/final").await.unwrap();
        }
        let claimed = claim(store, &interpolation, DATA).await;
        if claimed == Claim::Train {
            finish(store, &interpolation).await;
        }
        claims.push(claimed);
        (claims, interpolation.task_id)
    };
    let (first, source) = run("first").await;
    assert!(first.iter().all(|c| *c == Claim::Train), "{first:?}");
    let (second, _) = run("second").await;
    assert_eq!(second[2], Claim::Cached { source });
    assert!(second.iter().all(|c| matches!(c, Claim::Cached { .. })));
}

async fn forgotten_results_train_again_and_tasks_pointing_at_them_keep_them(db: &mut TestDb) {
    let store = &db.store;
    let (first, _) = trained_sweep(store, "first", 2).await;
    submit(store, &classify_spec("second", 2, "")).await;
    let w = worker_of(store, Backend::Flex, 1).await;
    let copies = lease_all(store, w).await;
    for lease in &copies {
        assert!(matches!(
            claim(store, lease, DATA).await,
            Claim::Cached { .. }
        ));
    }
    let stats = store.cache_stats().await.unwrap();
    assert_eq!(
        (stats.results, stats.training, stats.cached_tasks),
        (2, 0, 2)
    );
    assert!(stats.oldest.is_some() && stats.oldest <= stats.newest);

    assert_not_found(store.forget_results(Forget::Sweep(SweepId(999))).await);
    assert_eq!(store.forget_results(Forget::Before(0)).await.unwrap(), 0);
    assert_eq!(store.forget_results(Forget::Sweep(first)).await.unwrap(), 2);
    let stats = store.cache_stats().await.unwrap();
    assert_eq!((stats.results, stats.cached_tasks), (0, 2));
    for lease in &copies {
        let metrics = store.metrics(lease.task_id).await.unwrap();
        assert_eq!(metrics.len(), 2, "a copy keeps what it points at");
    }

    submit(store, &classify_spec("third", 2, "")).await;
    for lease in lease_all(store, w).await {
        train(store, &lease, DATA).await;
    }
    assert_eq!(store.cache_stats().await.unwrap().results, 2);
    let all = store.forget_results(Forget::Before(i64::MAX)).await;
    assert_eq!(all.unwrap(), 2);
}

async fn claims_are_fenced(db: &mut TestDb) {
    let store = &db.store;
    submit(store, &classify_spec("fenced", 1, "")).await;
    let w = worker_of(store, Backend::Flex, 1).await;
    let lease = lease_one(store, w, TTL).await;
    let stale = sweep_proto::LeaseRef {
        task_id: lease.task_id,
        token: "not-the-token".into(),
    };
    assert_stale(store.claim_result(&stale, DATA).await);
    let unknown = sweep_proto::LeaseRef {
        task_id: TaskId(9_999_999),
        token: lease.token.clone(),
    };
    assert_not_found(store.claim_result(&unknown, DATA).await);
}

crate::store_suite!(
    a_second_sweep_of_the_same_tasks_points_at_the_first_ones_results,
    a_changed_dataset_backend_device_or_result_version_trains_again,
    a_task_waits_while_its_key_trains_and_takes_over_when_that_fails,
    concurrent_claims_of_one_key_train_once,
    a_result_that_lost_an_artifact_or_its_metrics_is_not_used,
    a_sweep_without_the_cache_neither_uses_nor_feeds_it,
    an_interpolation_over_cached_endpoints_is_cached_too,
    forgotten_results_train_again_and_tasks_pointing_at_them_keep_them,
    claims_are_fenced,
);
