//! The result cache at size: submitting a sweep whose tasks all have
//! results against submitting it with `no_cache`, and how fast workers
//! clear such a sweep (a lease, a claim answered "cached", per task). A
//! coordinator on 127.0.0.1:0, simulated workers over real gRPC, a SQLite
//! file or a fresh PostgreSQL database.
//!
//! 1. submit the sweep (TASKS tasks) cacheable, and workers train it: lease,
//!    claim ("train"), complete, as a real worker does;
//! 2. submit the same spec with `no_cache` (timed: the uncached submit);
//! 3. submit it again, cacheable (timed: every task has a result);
//! 4. workers clear 3: lease, claim ("cached"), nothing else (timed).
//!
//! Prints one Markdown table row per run.
//!
//!   cargo bench -p sweep-coordinator --bench cache -- [sqlite|postgres] [TASKS] [WORKERS] [SLOTS]
//!
//! Without `--bench` (as `cargo test` runs it) it does a tiny run on both
//! backends and checks that the cached sweep trained nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use sweep_coordinator::Config;
use sweep_proto::v1;
use sweep_proto::v1::sweeps_client::SweepsClient;
use tonic::transport::Channel;

struct Run {
    backend: String,
    tasks: usize,
    workers: usize,
    slots: u32,
}

/// Leases until the queue is empty; claims each task and completes those
/// the claim says to train. Answers (trained, cached).
async fn simulated_worker(channel: Channel, slots: u32) -> (usize, usize) {
    let (mut client, worker_id) = common::register_simulated(channel, slots).await;
    let (mut trained, mut cached) = (0, 0);
    let mut finished: Vec<v1::Completion> = Vec::new();
    loop {
        let sent = finished.len();
        let request = v1::LeaseRequest {
            worker_id,
            free_slots: slots,
            wait_ms: 0,
            device_kinds: vec![v1::DeviceKind::Cpu as i32],
            completions: std::mem::take(&mut finished),
            ..Default::default()
        };
        let answer = client.lease(request).await.unwrap().into_inner();
        assert!(answer.outcomes.iter().all(|o| o.error.is_none()));
        trained += sent;
        if answer.leases.is_empty() {
            return (trained, cached);
        }
        // A worker claims each of its tasks at once, from the task's own
        // thread of work.
        let claims = answer.leases.into_iter().map(|lease| {
            let mut client = client.clone();
            async move {
                let reference = v1::LeaseRef {
                    task_id: lease.task_id,
                    lease_token: lease.lease_token,
                };
                let claim = client
                    .claim(v1::ClaimRequest {
                        lease: Some(reference.clone()),
                        data_digest: "ab".into(),
                        wait_ms: 60_000,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (reference, v1::ClaimVerdict::try_from(claim.verdict))
            }
        });
        for (reference, verdict) in futures::future::join_all(claims).await {
            match verdict {
                Ok(v1::ClaimVerdict::Cached) => cached += 1,
                Ok(v1::ClaimVerdict::Train) => finished.push(v1::Completion {
                    lease: Some(reference),
                    summary_json: "{\"test_acc\": 0.5}".into(),
                    points: vec![v1::MetricPoint {
                        name: "loss".into(),
                        step: 0,
                        epoch: None,
                        value: 1.0,
                    }],
                }),
                other => panic!("claim: {other:?}"),
            }
        }
    }
}

/// Runs WORKERS simulated workers until the queue is empty: (trained,
/// cached) over all of them, and how long it took.
async fn drain(channel: &Channel, config: &Run) -> ((usize, usize), Duration) {
    let started = Instant::now();
    let workers =
        (0..config.workers).map(|_| tokio::spawn(simulated_worker(channel.clone(), config.slots)));
    let mut total = (0, 0);
    for worker in futures::future::join_all(workers).await {
        let (trained, cached) = worker.unwrap();
        total = (total.0 + trained, total.1 + cached);
    }
    (total, started.elapsed())
}

async fn submit(channel: &Channel, tasks: usize, no_cache: bool) -> Duration {
    let started = Instant::now();
    SweepsClient::new(channel.clone())
        .submit(v1::SubmitRequest {
            spec_toml: common::bench_spec(tasks),
            no_cache,
        })
        .await
        .unwrap();
    started.elapsed()
}

async fn run(config: &Run) {
    let db = common::TestDb::of(config.backend.as_str()).await;
    let server = common::Server::start(Config::new(db.url.clone())).await;
    let channel = server.channel().await;
    submit(&channel, config.tasks, false).await;
    let (first, _) = drain(&channel, config).await;
    assert_eq!(
        first,
        (config.tasks, 0),
        "the first sweep trains every task"
    );
    let uncached = submit(&channel, config.tasks, true).await;
    // Out of the way: the uncached sweep's tasks would be leased first.
    SweepsClient::new(channel.clone())
        .cancel(v1::CancelSweepRequest { sweep_id: 2 })
        .await
        .unwrap();
    let cached = submit(&channel, config.tasks, false).await;
    let (cleared, took) = drain(&channel, config).await;
    assert_eq!(
        cleared,
        (0, config.tasks),
        "the cached sweep trains nothing"
    );
    println!(
        "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
        config.backend,
        config.tasks,
        config.workers,
        config.slots,
        uncached.as_secs_f64(),
        cached.as_secs_f64(),
        cached.as_secs_f64() / uncached.as_secs_f64(),
        took.as_secs_f64(),
        config.tasks as f64 / took.as_secs_f64(),
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
                workers: 2,
                slots: 4,
            })
            .collect();
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.into());
    vec![Run {
        backend: arg(0, "postgres"),
        tasks: arg(1, "100000").parse().expect("TASKS"),
        workers: arg(2, "8").parse().expect("WORKERS"),
        slots: arg(3, "4").parse().expect("SLOTS"),
    }]
}

#[tokio::main]
async fn main() {
    println!(
        "| backend | tasks | workers | slots | submit, no_cache s | submit, all cached s | ratio | cleared in s | cached tasks/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for config in runs_from_args() {
        run(&config).await;
    }
}
