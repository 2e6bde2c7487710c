//! Report aggregation against raw-metric volume: a sweep of TASKS finished
//! tasks with POINTS metric points each, then `Results::aggregate` (which
//! reads the summary numbers kept at completion) timed against reading every
//! task's metrics back (what a report computed from raw metrics would scan,
//! and what an export reads), both directly and through a coordinator's read
//! RPCs.
//!
//!   cargo bench -p sweep-coordinator --bench report -- [sqlite|postgres] [TASKS] [POINTS] [keep]
//!
//! With `keep` the database is left in place and its URL printed last
//! (`scripts/bench-export.sh` exports from it).
//!
//! Without `--bench` (as `cargo test` runs it) it does a tiny run on both
//! backends with the same checks.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use sweep_coordinator::Config;
use sweep_coordinator::store::Capabilities;
use sweep_proto::client::SweepsClient;
use sweep_proto::{Completion, MetricPoint, Results, SweepId};
use sweep_spec::{Summary, planner, summary};

const BATCH_SIZES: [u64; 5] = [16, 32, 64, 128, 256];

fn spec(tasks: usize) -> String {
    let seeds: Vec<String> = (0..tasks / BATCH_SIZES.len())
        .map(|s| s.to_string())
        .collect();
    format!(
        "name = \"report-bench\"\nexperiment = \"classify\"\ndataset = \"mnist\"\n\
         model = {{ kind = \"mlp\", hidden = [16] }}\n\
         train = {{ lr = 1e-3, epochs = 1 }}\n[grid]\nbatch_size = {BATCH_SIZES:?}\nseed = [{}]\n",
        seeds.join(", ")
    )
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        for backend in ["sqlite", "postgres"] {
            run(backend, 20, 30, false).await;
        }
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let backend = args.first().map_or("sqlite", String::as_str);
    let tasks: usize = args.get(1).map_or(2000, |a| a.parse().expect("TASKS"));
    let points: usize = args.get(2).map_or(500, |a| a.parse().expect("POINTS"));
    let keep = args.get(3).is_some_and(|a| a == "keep");
    run(backend, tasks, points, keep).await;
}

async fn run(backend: &str, tasks: usize, points: usize, keep: bool) {
    let db = common::TestDb::of(backend).await;
    let store = &db.store;
    let sweep = store
        .create_sweep(&planner::submission(&spec(tasks)).unwrap())
        .await
        .unwrap();
    let worker = common::worker(store, "bench").await;
    let started = Instant::now();
    let ttl = Duration::from_secs(600);
    loop {
        let leases = store
            .lease(worker.into(), &Capabilities::default(), 500, ttl)
            .await
            .unwrap();
        if leases.is_empty() {
            break;
        }
        for lease in leases {
            let metrics: Vec<MetricPoint> = (0..points)
                .map(|i| MetricPoint {
                    name: ["batch_loss", "batch_acc"][i % 2].into(),
                    step: (i / 2) as i64,
                    epoch: None,
                    value: (lease.task_id.0 as f64 + i as f64).sin(),
                })
                .collect();
            for chunk in metrics.chunks(1000) {
                store.record_metrics(&lease.to_ref(), chunk).await.unwrap();
            }
            let seed = lease.task_id.0 as f64;
            let mut values = Summary::new();
            values
                .set(summary::TRAIN_LOSS, 0.1 + seed.sin().abs())
                .set(summary::TRAIN_ACC, 0.9)
                .set(summary::TEST_LOSS, 0.2)
                .set(summary::TEST_ACC, 0.85 + seed.cos() / 100.0)
                .set(summary::SENSITIVITY, 1.5)
                .set(summary::STEPS, 900.0);
            let completion = Completion {
                lease: lease.to_ref(),
                summary: values,
                points: Vec::new(),
            };
            let outcome = store.complete_many(&[completion]).await.unwrap().remove(0);
            outcome.unwrap();
        }
    }
    println!(
        "{backend}: {tasks} tasks, {} metric rows written in {:.1} s",
        tasks * points,
        started.elapsed().as_secs_f64()
    );

    let mut report_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let rows = store.aggregate(sweep).await.unwrap();
        report_times.push(started.elapsed());
        assert_eq!(rows.len(), BATCH_SIZES.len());
    }
    let mut scan_times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut read = 0;
        for task in store.tasks(sweep, &[]).await.unwrap() {
            read += store.metrics(task.id).await.unwrap().len();
        }
        scan_times.push(started.elapsed());
        assert_eq!(read, tasks / BATCH_SIZES.len() * BATCH_SIZES.len() * points);
    }
    println!(
        "report (summaries kept at completion): {:.1} ms; reading every metric back: {:.0} ms",
        median(report_times).as_secs_f64() * 1e3,
        median(scan_times).as_secs_f64() * 1e3
    );
    through_the_coordinator(
        &db,
        sweep,
        tasks / BATCH_SIZES.len() * BATCH_SIZES.len() * points,
    )
    .await;
    if keep {
        println!("kept: {}", db.url);
    } else {
        db.cleanup().await;
    }
}

/// The same two reads through a coordinator's read RPCs, as `sweep report`
/// and `sweep export` with `--endpoint` make them.
async fn through_the_coordinator(db: &common::TestDb, sweep: SweepId, points: usize) {
    let server = common::Server::start(Config::new(db.url.clone())).await;
    let url = format!("http://{}", server.addr);
    let client = SweepsClient::connect(&url, &Default::default())
        .await
        .unwrap();
    let direct = db.store.aggregate(sweep).await.unwrap();
    let mut report_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let rows = client.aggregate(sweep).await.unwrap();
        report_times.push(started.elapsed());
        assert_eq!(rows, direct, "the same report both ways");
    }
    let mut scan_times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut read = 0;
        for task in client.tasks(sweep, &[]).await.unwrap() {
            read += client.metrics(task.id).await.unwrap().len();
        }
        scan_times.push(started.elapsed());
        assert_eq!(read, points);
    }
    println!(
        "through the coordinator: report {:.1} ms; every metric {:.0} ms",
        median(report_times).as_secs_f64() * 1e3,
        median(scan_times).as_secs_f64() * 1e3
    );
    server.stop().await;
}
