//! A coordinator (SQLite file) and real `sweep-worker` processes train
//! sweeps over gRPC; every task's metrics end up in the store, whatever
//! happens to the worker or the coordinator on the way.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sweep_coordinator::store::{self, Store};
use sweep_proto::client::SweepsClient;
use sweep_proto::{Results, SweepState, TaskState, WorkerInfo};
use sweep_spec::{ExperimentKind, metric, summary, weights};
use sweep_tests::{Coordinator, finished, submit, terminate, wait_for, worker};

const SWEEP: &str = r#"
name = "e2e"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [32] }
train = { lr = 1e-3, epochs = 1, record_every = 5 }
classify = { train_subset = 1000, test_subset = 300 }
[interpolate]
between = "batch_size"
alpha = { from = 0.0, to = 1.0, step = 0.5 }
[grid]
batch_size = [32, 128]
seed = [0, 1]
"#;

/// Leases of 6 s: a lost task comes back within the test's patience.
async fn coordinator() -> Coordinator {
    Coordinator::start(|config| config.lease_ttl = Duration::from_secs(6)).await
}

async fn workers(client: &SweepsClient) -> Vec<WorkerInfo> {
    client.workers().await.unwrap()
}

async fn open(database: &str) -> std::sync::Arc<dyn Store> {
    store::connect(database).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_trains_a_sweep_over_grpc() {
    let mut coordinator = coordinator().await;
    let client = coordinator.client().await;
    let sweep_id = submit(&client, SWEEP).await;
    let mut process = worker(&coordinator.url, 2, &[]);
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    // Its first completion at least freed a slot while no lease was on its
    // way (both were busy), so it rode on the lease for that slot.
    let metrics = coordinator.metrics().await;
    assert!(
        metrics.contains("sweep_completions_total{carried=\"with_lease\"}"),
        "{metrics}"
    );
    let workers = workers(&client).await;
    assert_eq!(workers.len(), 1);
    let registration = &workers[0].registration;
    assert_eq!(
        (registration.backend.as_str(), registration.slots),
        ("flex", 2)
    );
    assert!(
        terminate(&mut process).success(),
        "the worker exits cleanly on SIGTERM"
    );

    let store = open(&coordinator.database).await;
    let tasks = store.tasks(sweep_id, &[]).await.unwrap();
    assert_eq!(tasks.len(), 6, "four trainings and two interpolations");
    for task in tasks {
        assert_eq!(task.state, TaskState::Succeeded);
        let metrics = store.metrics(task.id).await.unwrap();
        let names: BTreeSet<&str> = metrics.iter().map(|m| m.point.name.as_str()).collect();
        let summary = task.summary.expect("a succeeded task has a summary");
        if task.params.kind() == ExperimentKind::Interpolate {
            assert_eq!(
                names,
                BTreeSet::from(["alpha", "test_acc", "test_loss", "train_acc", "train_loss"])
            );
            let alphas = metrics.iter().filter(|m| m.point.name == metric::ALPHA);
            assert_eq!(alphas.count(), 3);
            assert_eq!(summary.get(summary::POINTS), Some(3.0));
            continue;
        }
        assert_eq!(
            names,
            BTreeSet::from([
                "batch_acc",
                "batch_loss",
                "test_acc",
                "test_loss",
                "train_acc",
                "train_loss"
            ])
        );
        let test_acc = metrics
            .iter()
            .find(|m| m.point.name == metric::TEST_ACC)
            .unwrap()
            .point
            .value;
        assert_eq!(summary.get(summary::TEST_ACC), Some(test_acc));
        let weights = store.artifact(task.id, weights::FINAL).await.unwrap();
        assert_eq!(weights.data.len(), 4 * (784 * 32 + 32 + 32 * 10 + 10));
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_running_tasks_back() {
    let mut coordinator = coordinator().await;
    let client = coordinator.client().await;
    let long = r#"
name = "long"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [32] }
train = { lr = 1e-3, epochs = 500, batch_size = 64 }
"#;
    let sweep_id = submit(&client, long).await;
    let mut process = worker(&coordinator.url, 1, &[]);
    wait_for(&client, sweep_id, |s| s.counts.leased == 1).await;
    let started = Instant::now();
    assert!(terminate(&mut process).success());
    // Handed back at once, not after the 6 s lease expires.
    let task = &client.tasks(sweep_id, &[]).await.unwrap()[0];
    assert_eq!(task.state, TaskState::Queued, "{task:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_stops_without_waiting_out_its_long_poll() {
    let mut coordinator = coordinator().await;
    let client = coordinator.client().await;
    let mut process = worker(&coordinator.url, 1, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while workers(&client).await.is_empty() {
        assert!(Instant::now() < deadline, "the worker never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its first long poll, 10 s, goes out right after it registers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    assert!(terminate(&mut process).success());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_restart_loses_no_metric() {
    let mut coordinator = coordinator().await;
    let client = coordinator.client().await;
    let spec = r#"
name = "restart"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [128] }
train = { lr = 1e-3, epochs = 30, batch_size = 64, record_every = 8 }
classify = { train_subset = 2000, test_subset = 200 }
"#;
    let sweep_id = submit(&client, spec).await;
    let mut process = worker(&coordinator.url, 1, &[]);
    wait_for(&client, sweep_id, |s| s.counts.leased == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The coordinator goes away while the task trains, and comes back on
    // the same address and database.
    coordinator.stop().await;
    let store = open(&coordinator.database).await;
    let during = &store.tasks(sweep_id, &[]).await.unwrap()[0];
    assert_eq!(
        during.state,
        TaskState::Leased,
        "the restart happens mid-task"
    );
    drop(store);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    coordinator.restart(None).await;
    let client = coordinator.client().await;
    let sweep = wait_for(&client, sweep_id, |s| s.state != SweepState::Running).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    assert!(terminate(&mut process).success());

    let store = open(&coordinator.database).await;
    let task = &store.tasks(sweep_id, &[]).await.unwrap()[0];
    assert_eq!(
        task.attempt, 1,
        "the same attempt finished: nothing was re-run"
    );
    let metrics = store.metrics(task.id).await.unwrap();
    let steps: Vec<i64> = metrics
        .iter()
        .filter(|m| m.point.name == metric::BATCH_LOSS)
        .map(|m| m.point.step)
        .collect();
    // 2000 examples in batches of 64 are 32 steps an epoch: 960 steps, every
    // eighth recorded, none missing.
    assert_eq!(steps, (1..=120).map(|i| i * 8).collect::<Vec<i64>>());
    let epochs = metrics.iter().filter(|m| m.point.name == metric::TEST_ACC);
    assert_eq!(epochs.count(), 30);
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_registers_again_with_a_coordinator_that_forgot_it() {
    let mut coordinator = coordinator().await;
    let client = coordinator.client().await;
    let mut process = worker(&coordinator.url, 1, &[]);
    let started = Instant::now();
    while workers(&client).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A new coordinator on the same address with an empty database: the
    // worker's id means nothing there.
    coordinator.restart(Some("fresh.db")).await;
    let client = coordinator.client().await;
    let spec = r#"
name = "fresh"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 1, batch_size = 64 }
classify = { train_subset = 500, test_subset = 100 }
"#;
    let sweep_id = submit(&client, spec).await;
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let workers = workers(&client).await;
    assert_eq!(workers.len(), 1, "registered once with the new coordinator");
    assert!(terminate(&mut process).success());
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_too_large_for_its_worker_fails_and_the_worker_lives() {
    let mut coordinator = coordinator().await;
    let client = coordinator.client().await;
    // 784-40000-20000-10: 0.83·10^9 parameters, under the coordinator's
    // limit, but some 17 GB to train; the worker may use half a GiB.
    let spec = r#"
name = "too-large"
experiment = "classify"
dataset = "mnist-sample"
train = { lr = 1e-3, epochs = 1, batch_size = 64 }
classify = { train_subset = 500, test_subset = 100 }
[[models]]
name = "huge"
kind = "mlp"
hidden = [40000, 20000]
[[models]]
name = "small"
kind = "mlp"
hidden = [16]
"#;
    let sweep_id = submit(&client, spec).await;
    let mut process = worker(&coordinator.url, 1, &["--max-memory-gib", "0.5"]);
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Failed, "{sweep:?}");
    assert_eq!((sweep.counts.succeeded, sweep.counts.failed), (1, 1));
    let failed = client.tasks(sweep_id, &[TaskState::Failed]).await.unwrap();
    let error = failed[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("more than this worker allows its tasks together (0.5 GiB)"),
        "{error}"
    );
    assert_eq!(
        failed[0].attempt, 1,
        "not retried: it fails the same everywhere"
    );
    assert!(
        process.0.try_wait().unwrap().is_none(),
        "the worker process is still running"
    );
    assert!(terminate(&mut process).success());
    coordinator.stop().await;
}
