//! Metric ingestion through the whole stack: STREAMS tasks leased at once,
//! each streaming BATCHES metric batches of SIZE points over real gRPC
//! (`ReportMetrics`) into a SQLite file or a fresh PostgreSQL database.
//! Prints a Markdown table row: points/s. Then checks that nothing was lost
//! (every point stored, counted back from the store) and that sending a
//! batch again stores nothing (the `(task, attempt, name, step)` key).
//!
//!   cargo bench -p sweep-coordinator --bench ingest -- \
//!     [sqlite|postgres] [STREAMS] [BATCHES] [SIZE]
//!
//! Without `--bench` (as `cargo test` runs it) it does a tiny run on both
//! backends with the same checks.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use sweep_coordinator::Config;
use sweep_proto::TaskId;
use sweep_proto::v1;
use sweep_proto::v1::coordinator_client::CoordinatorClient;
use sweep_proto::v1::sweeps_client::SweepsClient;
use tonic::transport::Channel;

struct Run {
    backend: String,
    streams: usize,
    batches: i64,
    size: i64,
}

fn spec(tasks: usize) -> String {
    let seeds: Vec<String> = (0..tasks).map(|s| s.to_string()).collect();
    format!(
        "name = \"ingest\"\nexperiment = \"classify\"\ndataset = \"mnist\"\n\
         model = {{ kind = \"mlp\", hidden = [16] }}\n\
         train = {{ lr = 1e-3, epochs = 1, batch_size = 64 }}\n[grid]\nseed = [{}]\n",
        seeds.join(", ")
    )
}

/// Batch `b` of a stream: SIZE points of two metrics at their own steps.
fn batch(lease: &v1::LeaseRef, b: i64, size: i64) -> v1::MetricBatch {
    v1::MetricBatch {
        lease: Some(lease.clone()),
        points: (0..size)
            .map(|i| {
                let step = (b * size + i) / 2;
                v1::MetricPoint {
                    name: ["batch_loss", "batch_acc"][(i % 2) as usize].into(),
                    step,
                    epoch: Some(step / 100),
                    value: (step as f64).sin(),
                }
            })
            .collect(),
    }
}

async fn stream(channel: Channel, lease: v1::LeaseRef, batches: i64, size: i64) -> u64 {
    let mut client = CoordinatorClient::new(channel);
    let all: Vec<v1::MetricBatch> = (0..batches).map(|b| batch(&lease, b, size)).collect();
    let answer = client
        .report_metrics(futures::stream::iter(all))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.received, answer.stored, "a new point was not stored");
    answer.stored
}

async fn run(config: &Run) {
    let db = common::TestDb::of(config.backend.as_str()).await;
    let server = common::Server::start(Config::new(db.url.clone())).await;
    let channel = server.channel().await;
    SweepsClient::new(channel.clone())
        .submit(v1::SubmitRequest {
            spec_toml: spec(config.streams),
            no_cache: false,
        })
        .await
        .unwrap();
    let mut client = CoordinatorClient::new(channel.clone());
    let worker_id = client
        .register(v1::RegisterRequest {
            name: "ingest".into(),
            host: "localhost".into(),
            backend: v1::Backend::Flex as i32,
            devices: Vec::new(),
            slots: config.streams as u32,
            version: "bench".into(),
            result_version: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let leases: Vec<v1::LeaseRef> = client
        .lease(v1::LeaseRequest {
            worker_id,
            free_slots: config.streams as u32,
            wait_ms: 0,
            device_kinds: vec![v1::DeviceKind::Cpu as i32],
            completions: Vec::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .leases
        .into_iter()
        .map(|lease| v1::LeaseRef {
            task_id: lease.task_id,
            lease_token: lease.lease_token,
        })
        .collect();
    assert_eq!(leases.len(), config.streams);

    let started = Instant::now();
    let handles: Vec<_> = leases
        .iter()
        .map(|lease| {
            let channel = channel.clone();
            tokio::spawn(stream(channel, lease.clone(), config.batches, config.size))
        })
        .collect();
    let mut stored = 0;
    for handle in handles {
        stored += handle.await.unwrap();
    }
    let elapsed = started.elapsed();
    let sent = config.streams as u64 * (config.batches * config.size) as u64;
    assert_eq!(stored, sent, "every point stored once");
    println!(
        "| {} | {} | {} | {} | {:.0} |",
        config.backend,
        config.streams,
        config.batches,
        config.size,
        sent as f64 / elapsed.as_secs_f64()
    );

    // Nothing lost: the store holds every point; a batch sent again adds none.
    let first = &leases[0];
    let task = TaskId(first.task_id as i64);
    let held = db.store.metrics(task).await.unwrap().len() as i64;
    assert_eq!(held, config.batches * config.size);
    let again = client
        .report_metrics(futures::stream::iter(vec![batch(first, 0, config.size)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.received, again.stored), (config.size as u64, 0));

    server.stop().await;
    db.cleanup().await;
}

fn runs_from_args() -> Vec<Run> {
    if !std::env::args().any(|a| a == "--bench") {
        return ["sqlite", "postgres"]
            .into_iter()
            .map(|backend| Run {
                backend: backend.into(),
                streams: 4,
                batches: 3,
                size: 50,
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
        streams: arg(1, "64").parse().expect("STREAMS"),
        batches: arg(2, "20").parse().expect("BATCHES"),
        size: arg(3, "1000").parse().expect("SIZE"),
    }]
}

#[tokio::main]
async fn main() {
    println!("| backend | streams | batches | points a batch | points/s |");
    println!("|---|---|---|---|---|");
    for config in runs_from_args() {
        run(&config).await;
    }
}
