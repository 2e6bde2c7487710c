//! What a cluster throws at a running sweep, and what must come of it:
//! every task done, each counted once.

use std::time::Duration;

use sweep_proto::{Results, SweepState, TaskState};
use sweep_tests::{
    Coordinator, Postgres, Process, binary, client, finished, free_address, stderr, stdout, submit,
    sweep, terminate, wait_for, worker,
};

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
    let replicas = Replicas::start().await;
    let client = &replicas.client;
    let sweep_id = submit(client, SWEEP).await;
    // The worker knows both replicas and talks to the first.
    let mut process = worker(&replicas.both, 2, &[]);
    wait_for(client, sweep_id, |s| s.counts.succeeded >= 2).await;
    replicas.first.signal("KILL");
    let sweep = finished(client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let tasks = client.tasks(sweep_id, &[]).await.unwrap();
    assert!(
        tasks.iter().all(|t| t.attempt == 1),
        "no task was run twice: {tasks:?}"
    );
    assert!(terminate(&mut process).success());
}

/// One task of some seconds, long enough to be cut in the middle.
const LONG: &str = r#"
name = "long"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [64] }
train = { lr = 1e-3, epochs = 300, batch_size = 64, record_every = 50 }
classify = { train_subset = 2000, test_subset = 500 }
"#;

/// Leases of 3 s, looked at every second: a lost worker's task comes back
/// within seconds.
fn short_leases(config: &mut sweep_coordinator::Config) {
    config.lease_ttl = Duration::from_secs(3);
    config.reap_interval = Duration::from_secs(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_task_is_finished_by_another() {
    let mut coordinator = Coordinator::start(short_leases).await;
    let client = coordinator.client().await;
    let sweep_id = submit(&client, LONG).await;
    let mut lost = worker(&coordinator.url, 1, &[]);
    wait_for(&client, sweep_id, |s| s.counts.leased == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    lost.signal("KILL");
    lost.0.wait().unwrap();
    let mut other = worker(&coordinator.url, 1, &[]);
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let task = &client.tasks(sweep_id, &[]).await.unwrap()[0];
    assert_eq!(
        task.attempt, 2,
        "the lost attempt, then the one that counts"
    );
    assert!(terminate(&mut other).success());
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_wakes_after_its_lease_changes_nothing() {
    let mut coordinator = Coordinator::start(short_leases).await;
    let client = coordinator.client().await;
    let sweep_id = submit(&client, LONG).await;
    let mut zombie = worker(&coordinator.url, 1, &[]);
    wait_for(&client, sweep_id, |s| s.counts.leased == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Frozen past its lease, as by a long GC pause or a partition.
    zombie.signal("STOP");
    let mut other = worker(&coordinator.url, 1, &[]);
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let done = client.tasks(sweep_id, &[]).await.unwrap().remove(0);
    assert_eq!(done.attempt, 2);
    // It wakes, still training the lease it lost: whatever it reports now
    // is refused, and what was stored stays as it was.
    zombie.signal("CONT");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = client.tasks(sweep_id, &[]).await.unwrap().remove(0);
    assert_eq!(after, done, "the late worker changed nothing");
    let store = sweep_coordinator::store::connect(&coordinator.database)
        .await
        .unwrap();
    let metrics = store.metrics(done.id).await.unwrap();
    assert!(metrics.iter().all(|m| m.attempt == 2));
    let mut keys: Vec<(&str, i64)> = metrics
        .iter()
        .map(|m| (m.point.name.as_str(), m.point.step))
        .collect();
    let stored = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), stored, "no metric point counted twice");
    assert!(
        terminate(&mut zombie).success(),
        "it still shuts down cleanly"
    );
    assert!(terminate(&mut other).success());
    coordinator.stop().await;
}

/// The `sweep-coordinator` binary on `address` and `database`.
fn coordinator_process(address: &str, database: &str) -> Process {
    let child = std::process::Command::new(binary("sweep-coordinator"))
        .args(["--listen", address, "--database-url", database])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start the coordinator binary");
    Process(child)
}

/// Two `sweep-coordinator` processes on one PostgreSQL database: `first`
/// to be killed, a client of the second, and `both` as a worker takes them.
struct Replicas {
    first: Process,
    _second: Process,
    client: sweep_proto::client::SweepsClient,
    both: String,
    // Last: the server outlives the coordinators using it.
    _postgres: Postgres,
}

impl Replicas {
    async fn start() -> Self {
        let postgres = Postgres::start();
        let (first, second) = (free_address(), free_address());
        Self {
            first: coordinator_process(&first, &postgres.url()),
            _second: coordinator_process(&second, &postgres.url()),
            client: client(&format!("http://{second}")).await,
            both: format!("http://{first},http://{second}"),
            _postgres: postgres,
        }
    }
}

/// Two learning rates a hair apart, whose comparison cannot settle: rounds
/// at two, three and four seeds, the last at the cap.
const ADAPTIVE: &str = r#"
name = "adaptive"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [16] }
train = { epochs = 1, batch_size = 32 }
classify = { train_subset = 500, test_subset = 200 }
seeds = { start = 2, step = 1, max = 4, until = { compare = "lr" } }
[grid]
lr = [1e-3, 1.00001e-3]
"#;

/// Two coordinator processes decide the same adaptive sweep on one
/// PostgreSQL database, and one is killed once rounds are being decided:
/// each round is taken once and adds its seeds once, and the sweep ends
/// when its question does, at the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_deciding_adaptive_seeds_add_each_round_once() {
    let replicas = Replicas::start().await;
    let client = &replicas.client;
    let sweep_id = submit(client, ADAPTIVE).await;
    let mut process = worker(&replicas.both, 2, &[]);
    wait_for(client, sweep_id, |s| !s.seed_rounds.is_empty()).await;
    replicas.first.signal("KILL");
    each_round_and_seed_once(client, sweep_id).await;
    assert!(terminate(&mut process).success());
}

/// ADAPTIVE's sweep ended with its three rounds, each taken once, and
/// every seed trained once.
async fn each_round_and_seed_once(
    client: &sweep_proto::client::SweepsClient,
    sweep_id: sweep_proto::SweepId,
) {
    let sweep = finished(client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let rounds: Vec<(u64, &str)> = (sweep.seed_rounds.iter())
        .map(|r| (r.seeds, r.outcome.as_str()))
        .collect();
    assert_eq!(rounds, [(2, "more"), (3, "more"), (4, "max reached")]);
    let mut trained: Vec<(String, u64)> = (client.tasks(sweep_id, &[]).await.unwrap())
        .iter()
        .map(|t| (t.params.lr.to_string(), t.params.seed))
        .collect();
    trained.sort();
    let expected: Vec<(String, u64)> = ["0.001", "0.00100001"]
        .into_iter()
        .flat_map(|lr| (0..4).map(move |s| (lr.to_string(), s)))
        .collect();
    assert_eq!(trained, expected, "each seed once");
}

/// The same while its PostgreSQL restarts once rounds are being decided:
/// a decision cut off is taken again, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_while_deciding_adaptive_seeds_adds_each_round_once() {
    let postgres = Postgres::start();
    let mut coordinator = Coordinator::start_on(Some(&postgres.url()), |_| {}).await;
    let client = coordinator.client().await;
    let sweep_id = submit(&client, ADAPTIVE).await;
    let mut process = worker(&coordinator.url, 2, &[]);
    wait_for(&client, sweep_id, |s| !s.seed_rounds.is_empty()).await;
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.restart(Duration::from_secs(3));
        postgres
    })
    .await
    .unwrap();
    each_round_and_seed_once(&client, sweep_id).await;
    assert!(terminate(&mut process).success());
    coordinator.stop().await;
    drop(postgres);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_coordinator_restarted_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("sweeps.db").display());
    let address = free_address();
    let url = format!("http://{address}");
    let mut coordinator = coordinator_process(&address, &database);
    let first = client(&url).await;
    let sweep_id = submit(&first, SWEEP).await;
    let mut process = worker(&url, 2, &[]);
    wait_for(&first, sweep_id, |s| s.counts.succeeded >= 2).await;
    coordinator.signal("KILL");
    coordinator.0.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _restarted = coordinator_process(&address, &database);
    let again = client(&url).await;
    let sweep = finished(&again, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    let tasks = again.tasks(sweep_id, &[]).await.unwrap();
    assert!(
        tasks.iter().all(|t| t.attempt == 1),
        "no task was run twice: {tasks:?}"
    );
    assert!(terminate(&mut process).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_task_sweep_runs_while_it_is_listed() {
    let mut coordinator = Coordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    let seeds: Vec<String> = (0..10_000).map(|s| s.to_string()).collect();
    let spec = format!(
        "name = \"many\"\nexperiment = \"fit\"\nmodel = {{ kind = \"mlp\", hidden = [2] }}\n\
         train = {{ lr = 1e-3, steps = 1 }}\nfit = {{ points = 8 }}\n[grid]\nseed = [{}]\n",
        seeds.join(", ")
    );
    let sweep_id = submit(&client, &spec).await;
    let mut workers = [
        worker(&coordinator.url, 4, &[]),
        worker(&coordinator.url, 4, &[]),
    ];
    // Listings answer while the workers take the sweep apart.
    let listed = |args: &[&str]| {
        let mut all = vec![
            args[0],
            "many",
            "--endpoint",
            &coordinator.url,
            "--format",
            "csv",
        ];
        all.extend(&args[1..]);
        sweep(&all)
    };
    wait_for(&client, sweep_id, |s| s.counts.succeeded >= 100).await;
    let status = listed(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let failed = listed(&["tasks", "--state", "failed"]);
    assert_eq!(
        stdout(&failed).lines().count(),
        1,
        "none failed: {}",
        stdout(&failed)
    );
    let all = listed(&["tasks"]);
    assert_eq!(stdout(&all).lines().count(), 10_001);
    let sweep = finished(&client, sweep_id).await;
    assert_eq!(sweep.state, SweepState::Succeeded, "{sweep:?}");
    assert_eq!(sweep.counts.succeeded, 10_000);
    for worker in &mut workers {
        assert!(terminate(worker).success());
    }
    coordinator.stop().await;
}
