//! What a cluster throws at a running sweep, and what must come of it:
//! every task done, each counted once.

use std::time::Duration;

use sweep_proto::{SweepState, TaskState};
use sweep_tests::{Coordinator, Postgres, finished, submit, terminate, wait_for, worker};

/// Twelve tasks of about a second each, reporting metrics at every step.
const SWEEP: &str = r#"
name = "faults"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [32] }
train = { lr = 1e-3, epochs = 2, batch_size = 64, record_every = 1 }
classify = { train_subset = 2000, test_subset = 500 }
[grid]
seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_sweep_fails_no_task() {
    let postgres = Postgres::start();
    let mut coordinator = Coordinator::start_on(Some(&postgres.url()), |config| {
        config.lease_ttl = Duration::from_secs(30);
    })
    .await;
    let client = coordinator.client().await;
    let sweep_id = submit(&client, SWEEP).await;
    let mut process = worker(&coordinator.url, 2, &[]);
    wait_for(&client, sweep_id, |s| s.counts.succeeded >= 2).await;
    // Every connection is cut and the server is away for three seconds,
    // while tasks train, report metrics and complete.
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.restart(Duration::from_secs(3));
        postgres
    })
    .await
    .unwrap();
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let tasks = client.tasks(sweep_id, &[]).await.unwrap();
    assert!(tasks.iter().all(|t| t.state == TaskState::Succeeded));
    assert!(
        tasks.iter().all(|t| t.attempt == 1),
        "no task was run twice: {tasks:?}"
    );
    assert!(terminate(&mut process).success());
    coordinator.stop().await;
    drop(postgres);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_moves_to_the_replica_that_is_left() {
    let postgres = Postgres::start();
    let database = postgres.url();
    let mut first = Coordinator::start_on(Some(&database), |_| {}).await;
    let mut second = Coordinator::start_on(Some(&database), |_| {}).await;
    let client = second.client().await;
    let sweep_id = submit(&client, SWEEP).await;
    // The worker knows both replicas and talks to the first.
    let replicas = format!("{},{}", first.url, second.url);
    let mut process = worker(&replicas, 2, &[]);
    wait_for(&client, sweep_id, |s| s.counts.succeeded >= 2).await;
    first.stop().await;
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let tasks = client.tasks(sweep_id, &[]).await.unwrap();
    assert!(
        tasks.iter().all(|t| t.attempt == 1),
        "no task was run twice: {tasks:?}"
    );
    assert!(terminate(&mut process).success());
    second.stop().await;
    drop(postgres);
}
