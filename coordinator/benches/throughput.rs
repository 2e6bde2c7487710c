//! Queue throughput through the whole stack: a coordinator on 127.0.0.1:0,
//! simulated workers over real gRPC leasing up to SLOTS tasks a call, each
//! lease carrying the completions of the tasks the previous one handed out,
//! each with POINTS metric points (what a worker sends for tasks that end
//! together within its shipper's linger), against a SQLite file or a fresh
//! PostgreSQL database. TASKS, WORKERS and TASK_MS may be comma-separated
//! lists: one run for each combination, each on a fresh database (the
//! scaling curve). With RUN below TASKS the workers stop after RUN tasks,
//! so the cost per task can be compared between sweeps of very different
//! sizes. With TASK_MS above 0 each leased batch "trains" for 0.5 to 1.5
//! times that before its completions ride the next lease: workers that do
//! something between calls, as real ones do, so that the queue is measured
//! below saturation too (with none, 64 workers calling back to back keep 64
//! calls in flight, and the latency is whatever the throughput makes it).
//! Prints one Markdown table row per run: tasks/s, and the lease call's
//! latency (median, p99, completions included) as the workers saw it.
//!
//!   cargo bench -p sweep-coordinator --bench throughput -- \
//!     [sqlite|postgres] [TASKS[,...]] [WORKERS[,...]] [SLOTS] [POINTS] [RUN] [TASK_MS[,...]]
//!
//! Without `--bench` (as `cargo test` runs it) it does a tiny run on both
//! backends and checks that every task ran exactly once.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use sweep_coordinator::Config;
use sweep_proto::v1;
use sweep_proto::v1::coordinator_client::CoordinatorClient;
use sweep_proto::v1::sweeps_client::SweepsClient;
use tonic::transport::Channel;

struct Run {
    backend: String,
    tasks: usize,
    workers: usize,
    slots: u32,
    points: i64,
    run: usize,
    task_ms: u64,
}

/// What one simulated worker did: tasks completed and each lease call's time.
struct WorkerLog {
    done: usize,
    lease_times: Vec<Duration>,
}

async fn simulated_worker(
    (mut client, worker_id): (CoordinatorClient<Channel>, u64),
    slots: u32,
    points: i64,
    task_time: Duration,
    left: Arc<AtomicIsize>,
) -> WorkerLog {
    let mut log = WorkerLog {
        done: 0,
        lease_times: Vec::new(),
    };
    // Like a worker whose tasks all end together and within the shipper's
    // linger: their points travel with their completions, and those ride
    // on the lease for the slots they free.
    let mut finished: Vec<v1::Completion> = Vec::new();
    loop {
        let more = left.load(Ordering::Relaxed) > 0;
        if !more && finished.is_empty() {
            return log;
        }
        let request = v1::LeaseRequest {
            worker_id,
            free_slots: if more { slots } else { 0 },
            wait_ms: 0,
            device_kinds: vec![v1::DeviceKind::Cpu as i32],
            completions: std::mem::take(&mut finished),
            ..Default::default()
        };
        let sent = request.completions.len();
        let started = Instant::now();
        let answer = client.lease(request).await.unwrap().into_inner();
        log.lease_times.push(started.elapsed());
        let outcomes = &answer.outcomes;
        assert_eq!(outcomes.len(), sent, "one outcome per completion");
        assert!(outcomes.iter().all(|o| o.error.is_none()), "{outcomes:?}");
        log.done += sent;
        left.fetch_sub(sent as isize, Ordering::Relaxed);
        if answer.leases.is_empty() && sent == 0 {
            return log;
        }
        if let Some(first) = answer.leases.first() {
            tokio::time::sleep(task_time.mul_f64(spread(first.task_id))).await;
        }
        finished = answer
            .leases
            .into_iter()
            .map(|lease| completion(lease, points))
            .collect();
    }
}

/// How long a task runs, as a multiple of TASK_MS from 0.5 to 1.5 that
/// depends on the task: workers whose tasks all took the same time would
/// call in lockstep, which real ones do not.
fn spread(task: u64) -> f64 {
    0.5 + (task.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0
}

/// A leased task's completion with POINTS metric points.
fn completion(lease: v1::TaskLease, points: i64) -> v1::Completion {
    v1::Completion {
        lease: Some(v1::LeaseRef {
            task_id: lease.task_id,
            lease_token: lease.lease_token,
        }),
        summary_json: "{\"test_acc\": 0.5}".into(),
        points: (0..points)
            .map(|step| v1::MetricPoint {
                name: "loss".into(),
                step,
                epoch: None,
                value: 1.0,
            })
            .collect(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(config: &Run) {
    let db = common::TestDb::of(config.backend.as_str()).await;
    let server = common::Server::start(Config::new(db.url.clone())).await;
    let channel = server.channel().await;
    SweepsClient::new(channel.clone())
        .submit(v1::SubmitRequest {
            spec_toml: common::bench_spec(config.tasks),
            no_cache: false,
        })
        .await
        .unwrap();

    let registered =
        (0..config.workers).map(|_| common::register_simulated(channel.clone(), config.slots));
    let registered = futures::future::join_all(registered).await;
    let started = Instant::now();
    let left = Arc::new(AtomicIsize::new(config.run as isize));
    let handles: Vec<_> = registered
        .into_iter()
        .map(|worker| {
            tokio::spawn(simulated_worker(
                worker,
                config.slots,
                config.points,
                Duration::from_millis(config.task_ms),
                left.clone(),
            ))
        })
        .collect();
    let (mut done, mut lease_times) = (0, Vec::new());
    for handle in handles {
        let log = handle.await.unwrap();
        done += log.done;
        lease_times.extend(log.lease_times);
    }
    let elapsed = started.elapsed();
    if config.run >= config.tasks {
        assert_eq!(done, config.tasks, "every task ran exactly once");
    }
    lease_times.sort();
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.1} |",
        config.backend,
        config.tasks,
        done,
        config.workers,
        config.slots,
        config.points,
        config.task_ms,
        done as f64 / elapsed.as_secs_f64(),
        percentile(&lease_times, 0.5).as_secs_f64() * 1e3,
        percentile(&lease_times, 0.99).as_secs_f64() * 1e3,
    );
    server.stop().await;
    db.cleanup().await;
}

fn runs_from_args() -> Vec<Run> {
    if !std::env::args().any(|a| a == "--bench") {
        return ["sqlite", "postgres"]
            .into_iter()
            .map(|backend| Run {
                backend: backend.into(),
                tasks: 40,
                workers: 4,
                slots: 2,
                points: 3,
                run: 40,
                task_ms: 1,
            })
            .collect();
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.into());
    let list = |i: usize, default: &str, what: &str| -> Vec<usize> {
        let text = arg(i, default);
        text.split(',').map(|n| n.parse().expect(what)).collect()
    };
    let slots = arg(3, "1").parse().expect("SLOTS");
    let points = arg(4, "10").parse().expect("POINTS");
    let run = args.get(5).map_or(usize::MAX, |n| n.parse().expect("RUN"));
    let mut runs = Vec::new();
    for tasks in list(1, "2000", "TASKS") {
        for workers in list(2, "8", "WORKERS") {
            for task_ms in list(6, "0", "TASK_MS") {
                runs.push(Run {
                    backend: arg(0, "sqlite"),
                    tasks,
                    workers,
                    slots,
                    points,
                    run: run.min(tasks),
                    task_ms: task_ms as u64,
                });
            }
        }
    }
    runs
}

#[tokio::main]
async fn main() {
    println!(
        "| backend | tasks in sweep | tasks run | workers | slots | points | task ms | tasks/s | lease p50 ms | lease p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for config in runs_from_args() {
        run(&config).await;
    }
}
