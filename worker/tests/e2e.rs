//! A coordinator (SQLite file) and a real `sweep-worker` process train a small
//! sweep over gRPC; every task's metrics end up in the store.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sweep_coordinator::Config;
use sweep_coordinator::store::{self, TaskState};
use sweep_proto::SweepId;
use sweep_proto::v1::sweeps_client::SweepsClient;
use sweep_proto::v1::{self, SweepState};
use tokio::sync::oneshot;
use tonic::transport::Channel;

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

struct Coordinator {
    url: String,
    database: String,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<sweep_coordinator::error::Result<()>>,
    _dir: Option<tempfile::TempDir>,
}

async fn coordinator() -> Coordinator {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("sweeps.db").display());
    let mut coordinator = serve(&database, "127.0.0.1:0").await;
    coordinator._dir = Some(dir);
    coordinator
}

async fn serve(database: &str, address: &str) -> Coordinator {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = Config::new(database.to_string());
    config.lease_ttl = Duration::from_secs(6);
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(sweep_coordinator::run(config, listener, async move {
        let _ = stopped.await;
    }));
    Coordinator {
        url,
        database: database.to_string(),
        stop,
        served,
        _dir: None,
    }
}

fn worker(url: &str, slots: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sweep-worker"))
        .args(["--coordinator", url, "--slots", &slots.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the worker binary")
}

async fn sweeps(url: &str) -> SweepsClient<Channel> {
    for _ in 0..100 {
        if let Ok(client) = SweepsClient::connect(url.to_string()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no coordinator at {url}");
}

async fn wait_for(
    client: &mut SweepsClient<Channel>,
    sweep_id: u64,
    done: impl Fn(&v1::SweepInfo) -> bool,
) -> v1::SweepInfo {
    let started = Instant::now();
    loop {
        let sweep = client
            .get(v1::GetSweepRequest { sweep_id })
            .await
            .unwrap()
            .into_inner();
        if done(&sweep) {
            return sweep;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "sweep stuck: {sweep:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn submit(client: &mut SweepsClient<Channel>, spec: &str) -> u64 {
    let request = v1::SubmitRequest {
        spec_toml: spec.into(),
    };
    client.submit(request).await.unwrap().into_inner().sweep_id
}

/// Waits until the sweep is final.
async fn finished(client: &mut SweepsClient<Channel>, sweep_id: u64) -> v1::SweepInfo {
    wait_for(client, sweep_id, |s| {
        s.state != SweepState::Pending as i32 && s.state != SweepState::Running as i32
    })
    .await
}

async fn workers(client: &mut SweepsClient<Channel>) -> Vec<v1::WorkerInfo> {
    let request = v1::ListWorkersRequest {};
    client
        .list_workers(request)
        .await
        .unwrap()
        .into_inner()
        .workers
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    child.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_trains_a_sweep_over_grpc() {
    let coordinator = coordinator().await;
    let mut client = sweeps(&coordinator.url).await;
    let sweep_id = submit(&mut client, SWEEP).await;
    let mut process = worker(&coordinator.url, 2);
    let sweep = finished(&mut client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded as i32, "{sweep:?}");
    let workers = workers(&mut client).await;
    assert_eq!(workers.len(), 1);
    assert_eq!((workers[0].backend.as_str(), workers[0].slots), ("flex", 2));
    assert!(
        terminate(&mut process).success(),
        "the worker exits cleanly on SIGTERM"
    );

    let store = store::connect(&coordinator.database).await.unwrap();
    let tasks = store.tasks(SweepId(sweep_id as i64), &[]).await.unwrap();
    assert_eq!(tasks.len(), 6, "four trainings and two interpolations");
    for task in tasks {
        assert_eq!(task.state, TaskState::Succeeded);
        let metrics = store.metrics(task.id).await.unwrap();
        let names: BTreeSet<&str> = metrics.iter().map(|m| m.point.name.as_str()).collect();
        let summary: serde_json::Value =
            serde_json::from_str(task.summary.as_deref().unwrap()).unwrap();
        if task.kind == "interpolate" {
            assert_eq!(
                names,
                BTreeSet::from(["alpha", "test_acc", "test_loss", "train_acc", "train_loss"])
            );
            assert_eq!(
                metrics.iter().filter(|m| m.point.name == "alpha").count(),
                3
            );
            assert_eq!(summary["points"], 3);
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
            .find(|m| m.point.name == "test_acc")
            .unwrap()
            .point
            .value;
        assert_eq!(summary["test_acc"].as_f64().unwrap(), test_acc);
        let weights = store.artifact(task.id, "weights/final").await.unwrap();
        assert_eq!(weights.data.len(), 4 * (784 * 32 + 32 + 32 * 10 + 10));
    }
    let _ = coordinator.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_running_tasks_back() {
    let coordinator = coordinator().await;
    let mut client = sweeps(&coordinator.url).await;
    let long = r#"
name = "long"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [32] }
train = { lr = 1e-3, epochs = 500, batch_size = 64 }
"#;
    let sweep_id = submit(&mut client, long).await;
    let mut process = worker(&coordinator.url, 1);
    wait_for(&mut client, sweep_id, |s| {
        s.counts.as_ref().is_some_and(|c| c.leased == 1)
    })
    .await;
    let started = Instant::now();
    assert!(terminate(&mut process).success());
    // Handed back at once, not after the 6 s lease expires.
    let task = &client
        .list_tasks(v1::ListTasksRequest {
            sweep_id,
            states: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .tasks[0];
    assert_eq!(task.state, v1::TaskState::Queued as i32, "{task:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    let _ = coordinator.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_restart_loses_no_metric() {
    let first = coordinator().await;
    let mut client = sweeps(&first.url).await;
    let spec = r#"
name = "restart"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [128] }
train = { lr = 1e-3, epochs = 30, batch_size = 64, record_every = 8 }
classify = { train_subset = 2000, test_subset = 200 }
"#;
    let sweep_id = submit(&mut client, spec).await;
    let mut process = worker(&first.url, 1);
    wait_for(&mut client, sweep_id, |s| {
        s.counts.as_ref().is_some_and(|c| c.leased == 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The coordinator goes away while the task trains, and comes back on
    // the same address and database.
    let _ = first.stop.send(());
    first.served.await.unwrap().unwrap();
    let store = store::connect(&first.database).await.unwrap();
    let during = &store.tasks(SweepId(sweep_id as i64), &[]).await.unwrap()[0];
    assert_eq!(
        during.state,
        TaskState::Leased,
        "the restart happens mid-task"
    );
    drop(store);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let address = first.url.trim_start_matches("http://").to_string();
    let second = serve(&first.database, &address).await;
    let mut client = sweeps(&second.url).await;
    let sweep = wait_for(&mut client, sweep_id, |s| {
        s.state != SweepState::Running as i32
    })
    .await;
    assert_eq!(sweep.state, SweepState::Succeeded as i32, "{sweep:?}");
    assert!(terminate(&mut process).success());

    let store = store::connect(&first.database).await.unwrap();
    let task = &store.tasks(SweepId(sweep_id as i64), &[]).await.unwrap()[0];
    assert_eq!(
        task.attempt, 1,
        "the same attempt finished: nothing was re-run"
    );
    let metrics = store.metrics(task.id).await.unwrap();
    let steps: Vec<i64> = metrics
        .iter()
        .filter(|m| m.point.name == "batch_loss")
        .map(|m| m.point.step)
        .collect();
    // 2000 examples in batches of 64 are 32 steps an epoch: 960 steps, every
    // eighth recorded, none missing.
    assert_eq!(steps, (1..=120).map(|i| i * 8).collect::<Vec<i64>>());
    assert_eq!(
        metrics
            .iter()
            .filter(|m| m.point.name == "test_acc")
            .count(),
        30
    );
    let _ = second.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_registers_again_with_a_coordinator_that_forgot_it() {
    let first = coordinator().await;
    let mut client = sweeps(&first.url).await;
    let mut process = worker(&first.url, 1);
    let started = Instant::now();
    while workers(&mut client).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = first.stop.send(());
    first.served.await.unwrap().unwrap();

    // A new coordinator on the same address with an empty database: the
    // worker's id means nothing there.
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let address = first.url.trim_start_matches("http://").to_string();
    let second = serve(&database, &address).await;
    let mut client = sweeps(&second.url).await;
    let spec = r#"
name = "fresh"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 1, batch_size = 64 }
classify = { train_subset = 500, test_subset = 100 }
"#;
    let sweep_id = submit(&mut client, spec).await;
    let sweep = finished(&mut client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded as i32, "{sweep:?}");
    let workers = workers(&mut client).await;
    assert_eq!(workers.len(), 1, "registered once with the new coordinator");
    assert!(terminate(&mut process).success());
    let _ = second.stop.send(());
}
