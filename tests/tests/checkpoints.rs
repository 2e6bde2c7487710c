//! Preemption with the real binaries: a worker killed after its task's
//! checkpoint, or told to stop, and the task finished by another worker
//! from that checkpoint, to the same summary and metric series as a run
//! that was never stopped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection};
use sweep_proto::{Results, SweepId, SweepState, Task};
use sweep_tests::{Coordinator, finished, submit, submit_uncached, terminate, wait_for, worker};

/// One task of several seconds (9,600 steps), with `train` settings added.
fn spec(name: &str, train: &str) -> String {
    format!(
        r#"
name = "{name}"
experiment = "classify"
dataset = "mnist-sample"
model = {{ kind = "mlp", hidden = [32] }}
train = {{ lr = 1e-3, epochs = 300, batch_size = 64, record_every = 50{train} }}
classify = {{ train_subset = 2000, test_subset = 500 }}
"#
    )
}

/// Leases of 3 s, looked at every second: a lost worker's task comes back
/// within seconds.
fn short_leases(config: &mut sweep_coordinator::Config) {
    config.lease_ttl = Duration::from_secs(3);
    config.reap_interval = Duration::from_secs(1);
}

/// The sweep's one task and its metric points by name and step.
async fn outcome(
    coordinator: &Coordinator,
    sweep: SweepId,
) -> (Task, BTreeMap<(String, i64), f64>) {
    let client = coordinator.client().await;
    let task = client.tasks(sweep, &[]).await.unwrap().remove(0);
    let store = sweep_coordinator::store::connect(&coordinator.database)
        .await
        .unwrap();
    let points = (store.metrics(task.id).await.unwrap().into_iter())
        .map(|m| ((m.point.name, m.point.step), m.point.value))
        .collect();
    (task, points)
}

/// The step of the checkpoint the database holds, once there is one.
async fn first_checkpoint(database: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(database).await.unwrap();
    let started = Instant::now();
    loop {
        let step: Option<i64> = sqlx::query_scalar("SELECT MAX(step) FROM checkpoints")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if let Some(step) = step {
            return step;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `spec("whole")` without a stop, then `spec("stopped", train)`
/// through `interrupt`, and checks that the second ends as the first did.
async fn resumes_as_if_never_stopped(
    train: &str,
    interrupt: impl AsyncFnOnce(&Coordinator, SweepId) -> i64,
) {
    let mut coordinator = Coordinator::start(short_leases).await;
    let client = coordinator.client().await;
    let whole = submit(&client, &spec("whole", "")).await;
    let mut trainer = worker(&coordinator.url, 1, &[]);
    assert_eq!(finished(&client, whole).await.state, SweepState::Succeeded);
    assert!(terminate(&mut trainer).success());

    // Uncached: the same task as "whole", trained again to compare.
    let stopped = submit_uncached(&client, &spec("stopped", train)).await;
    let step = interrupt(&coordinator, stopped).await;
    // Another thread count than the first worker's: the numbers do not
    // depend on how the work is split.
    let mut other = worker(&coordinator.url, 1, &["--threads", "1"]);
    let sweep = finished(&client, stopped).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    assert!(terminate(&mut other).success());

    let (expected, expected_points) = outcome(&coordinator, whole).await;
    let (task, points) = outcome(&coordinator, stopped).await;
    assert!(task.resumed_from > 0, "{task:?}");
    assert!(
        task.resumed_from as i64 >= step,
        "resumed from the newest checkpoint"
    );
    assert_eq!(task.summary, expected.summary, "the same summary");
    assert_eq!(
        points.len(),
        expected_points.len(),
        "no point lost or doubled"
    );
    for (key, value) in &expected_points {
        assert_eq!(
            points.get(key).map(|v| v.to_bits()),
            Some(value.to_bits()),
            "{key:?}"
        );
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_killed_after_a_checkpoint_goes_on_from_it_elsewhere() {
    resumes_as_if_never_stopped("", async |coordinator, sweep| {
        let mut lost = worker(&coordinator.url, 1, &["--checkpoint-every", "500ms"]);
        let client = coordinator.client().await;
        wait_for(&client, sweep, |s| s.counts.leased == 1).await;
        let step = first_checkpoint(&coordinator.database).await;
        lost.signal("KILL");
        lost.0.wait().unwrap();
        step
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_told_to_stop_checkpoints_and_hands_its_task_back() {
    // No checkpoint on a timer ("0s", the spec's field over the worker's
    // default): the one it resumes from is the one taken at the stop.
    let train = r#", checkpoint_every = "0s""#;
    resumes_as_if_never_stopped(train, async |coordinator, sweep| {
        let mut stopping = worker(&coordinator.url, 1, &[]);
        let client = coordinator.client().await;
        wait_for(&client, sweep, |s| s.counts.leased == 1).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let told = Instant::now();
        assert!(terminate(&mut stopping).success());
        assert!(
            told.elapsed() < Duration::from_secs(10),
            "it stops promptly"
        );
        let queued = client.sweep(&sweep.into()).await.unwrap();
        assert_eq!(queued.counts.queued, 1, "handed back at once: {queued:?}");
        first_checkpoint(&coordinator.database).await
    })
    .await;
}

/// Samples, until the sweep is final, whether the database ever held a
/// checkpoint.
async fn ever_checkpointed(coordinator: &Coordinator, sweep: SweepId) -> bool {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&coordinator.database).await.unwrap();
    let client = coordinator.client().await;
    let mut seen = false;
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkpoints")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        seen |= rows > 0;
        if client.sweep(&sweep.into()).await.unwrap().state.is_final() {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_checkpoints_off_a_task_takes_none_and_ends_as_with_them() {
    let three_epochs = |name, train| spec(name, train).replace("epochs = 300", "epochs = 3");
    let mut coordinator = Coordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    // The worker would take one at almost every step; the spec's "0s"
    // turns that off.
    let mut trainer = worker(&coordinator.url, 1, &["--checkpoint-every", "1ms"]);
    let off = submit(
        &client,
        &three_epochs("off", r#", checkpoint_every = "0s""#),
    )
    .await;
    assert!(!ever_checkpointed(&coordinator, off).await, "none taken");
    // Uncached: how often a task checkpoints is not part of its result key.
    let on = submit_uncached(&client, &three_epochs("on", "")).await;
    assert!(
        ever_checkpointed(&coordinator, on).await,
        "the sampling sees them"
    );
    assert!(terminate(&mut trainer).success());

    let (with, with_points) = outcome(&coordinator, on).await;
    let (without, points) = outcome(&coordinator, off).await;
    assert_eq!(without.state, sweep_proto::TaskState::Succeeded);
    assert_eq!((without.attempt, without.resumed_from), (1, 0));
    assert_eq!(without.summary, with.summary);
    let bits = |points: &BTreeMap<(String, i64), f64>| {
        points
            .iter()
            .map(|(k, v)| (k.clone(), v.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&points), bits(&with_points));
    coordinator.stop().await;
}
