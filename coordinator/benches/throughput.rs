//! Queue throughput through the whole stack: a coordinator on 127.0.0.1:0,
//! simulated workers over real gRPC doing lease → one metric batch →
//! complete, against a SQLite file or a fresh PostgreSQL database.
//!
//!   cargo bench -p sweep-coordinator --bench throughput -- [sqlite|postgres] [TASKS] [WORKERS]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use sweep_coordinator::Config;
use sweep_proto::v1;
use sweep_proto::v1::coordinator_client::CoordinatorClient;
use sweep_proto::v1::sweeps_client::SweepsClient;
use tonic::transport::Channel;

fn spec(tasks: usize) -> String {
    let seeds: Vec<String> = (0..tasks).map(|s| s.to_string()).collect();
    format!(
        "name = \"bench\"\nexperiment = \"classify\"\ndataset = \"mnist\"\n\
         model = {{ kind = \"mlp\", hidden = [16] }}\n\
         train = {{ lr = 1e-3, epochs = 1, batch_size = 64 }}\n[grid]\nseed = [{}]\n",
        seeds.join(", ")
    )
}

async fn simulated_worker(channel: Channel) -> usize {
    let mut client = CoordinatorClient::new(channel);
    let worker_id = client
        .register(v1::RegisterRequest {
            name: "bench".into(),
            host: "localhost".into(),
            backend: "none".into(),
            devices: Vec::new(),
            slots: 1,
            version: "bench".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let mut done = 0;
    loop {
        let request = v1::LeaseRequest {
            worker_id,
            free_slots: 1,
            wait_ms: 0,
            device_kinds: vec!["cpu".into()],
        };
        let leases = client.lease(request).await.unwrap().into_inner().leases;
        let Some(lease) = leases.into_iter().next() else {
            return done;
        };
        let lease_ref = Some(v1::LeaseRef {
            task_id: lease.task_id,
            lease_token: lease.lease_token,
        });
        let batch = v1::MetricBatch {
            lease: lease_ref.clone(),
            points: (0..10)
                .map(|step| v1::MetricPoint {
                    name: "loss".into(),
                    step,
                    epoch: None,
                    value: 1.0,
                })
                .collect(),
        };
        client
            .report_metrics(futures::stream::iter(vec![batch]))
            .await
            .unwrap();
        client
            .complete(v1::CompleteRequest {
                lease: lease_ref,
                summary_json: "{}".into(),
            })
            .await
            .unwrap();
        done += 1;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let backend = args.first().map(String::as_str).unwrap_or("sqlite");
    let tasks: usize = args.get(1).map_or(2000, |n| n.parse().expect("TASKS"));
    let workers: usize = args.get(2).map_or(8, |n| n.parse().expect("WORKERS"));
    let db = match backend {
        "postgres" => common::TestDb::postgres().await,
        _ => common::TestDb::sqlite().await,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sweep_coordinator::run(
        Config::new(db.url.clone()),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let started = Instant::now();
    SweepsClient::new(channel.clone())
        .submit(v1::SubmitRequest {
            spec_toml: spec(tasks),
        })
        .await
        .unwrap();
    let submit = started.elapsed();

    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| tokio::spawn(simulated_worker(channel.clone())))
        .collect();
    let mut done = 0;
    for handle in handles {
        done += handle.await.unwrap();
    }
    let run = started.elapsed();
    assert_eq!(done, tasks, "every task ran exactly once");
    println!(
        "{backend}: submit {tasks} tasks in {:.3} s ({:.0} tasks/s); \
         {workers} workers ran them (lease + 10 metrics + complete) in {:.3} s: {:.0} tasks/s",
        submit.as_secs_f64(),
        tasks as f64 / submit.as_secs_f64(),
        run.as_secs_f64(),
        tasks as f64 / run.as_secs_f64()
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    db.cleanup().await;
}
