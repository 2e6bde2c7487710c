//! What the gRPC tests share: a spec, requests, and calls a worker makes.

use std::net::SocketAddr;

use crate::common::Server;
use sweep_coordinator::Config;
use sweep_proto::v1::coordinator_client::CoordinatorClient;
use sweep_proto::v1::sweeps_client::SweepsClient;
use sweep_proto::v1::{self, artifact_upload};
use tonic::Code;

pub(crate) const SPEC: &str = r#"
name = "grpc"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 1, batch_size = 64 }
[grid]
seed = [0, 1]
"#;

pub(crate) fn config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::new(format!(
        "sqlite://{}",
        dir.path().join("sweeps.db").display()
    ));
    config.max_artifact_bytes = 1 << 20;
    config
}

pub(crate) fn register_request() -> v1::RegisterRequest {
    v1::RegisterRequest {
        name: "test-worker".into(),
        host: "localhost".into(),
        backend: v1::Backend::Flex as i32,
        devices: vec![v1::Device {
            kind: v1::DeviceKind::Cpu as i32,
            name: "test".into(),
            memory_bytes: 1 << 30,
        }],
        slots: 2,
        version: "test".into(),
        result_version: 1,
    }
}

/// Submits [`SPEC`] and registers a worker: the sweep's id and the
/// worker's.
pub(crate) async fn submit_and_register(
    workers: &mut CoordinatorClient<tonic::transport::Channel>,
    sweeps: &mut SweepsClient<tonic::transport::Channel>,
) -> (u64, u64) {
    let sweep = sweeps
        .submit(v1::SubmitRequest {
            spec_toml: SPEC.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .sweep_id;
    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    (sweep, worker)
}

pub(crate) fn lease_request(worker_id: u64, slots: u32, wait_ms: u64) -> v1::LeaseRequest {
    v1::LeaseRequest {
        worker_id,
        free_slots: slots,
        wait_ms,
        device_kinds: vec![v1::DeviceKind::Cpu as i32],
        completions: Vec::new(),
        ..Default::default()
    }
}

pub(crate) fn lease_ref(lease: &v1::TaskLease) -> Option<v1::LeaseRef> {
    Some(v1::LeaseRef {
        task_id: lease.task_id,
        lease_token: lease.lease_token.clone(),
    })
}

pub(crate) fn metric_batch(lease: &v1::TaskLease, steps: std::ops::Range<i64>) -> v1::MetricBatch {
    v1::MetricBatch {
        lease: lease_ref(lease),
        points: steps
            .map(|step| v1::MetricPoint {
                name: "train_loss".into(),
                step,
                epoch: Some(0),
                value: 2.0 / (step + 1) as f64,
            })
            .collect(),
    }
}

pub(crate) fn upload(
    lease: &v1::TaskLease,
    name: &str,
    chunks: Vec<Vec<u8>>,
) -> Vec<v1::ArtifactUpload> {
    let header = v1::ArtifactUpload {
        part: Some(artifact_upload::Part::Header(v1::ArtifactHeader {
            lease: lease_ref(lease),
            name: name.into(),
            encoding: "raw".into(),
            checkpoint: None,
        })),
    };
    std::iter::once(header)
        .chain(chunks.into_iter().map(|data| v1::ArtifactUpload {
            part: Some(artifact_upload::Part::Data(data)),
        }))
        .collect()
}

/// A sweep's task counts, as `sweep status` reads them.
pub(crate) async fn counts(
    sweeps: &mut SweepsClient<tonic::transport::Channel>,
    sweep_id: u64,
) -> v1::TaskCounts {
    sweeps
        .get(v1::GetSweepRequest {
            sweep_id,
            name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .counts
        .unwrap()
}

/// Clients of `server`, with SPEC's sweep submitted and both its tasks
/// leased by one worker: the sweep's id, the leases and the worker's id.
pub(crate) async fn both_tasks_leased(
    server: &Server,
) -> (
    CoordinatorClient<tonic::transport::Channel>,
    SweepsClient<tonic::transport::Channel>,
    u64,
    Vec<v1::TaskLease>,
    u64,
) {
    let (mut workers, mut sweeps) = server.clients().await;
    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner();
    let request = v1::SubmitRequest {
        spec_toml: SPEC.into(),
        ..Default::default()
    };
    let sweep_id = sweeps.submit(request).await.unwrap().into_inner().sweep_id;
    let leases = workers
        .lease(lease_request(worker.worker_id, 2, 0))
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert_eq!(leases.len(), 2);
    (workers, sweeps, sweep_id, leases, worker.worker_id)
}

/// Completes tasks as a worker does while its long poll is out: a lease
/// call that carries them and asks for no task. The outcomes, in order.
pub(crate) async fn complete_alone(
    workers: &mut CoordinatorClient<tonic::transport::Channel>,
    worker_id: u64,
    completions: Vec<v1::Completion>,
) -> Vec<v1::CompletionOutcome> {
    let mut request = lease_request(worker_id, 0, 0);
    request.completions = completions;
    let answer = workers.lease(request).await.unwrap().into_inner();
    assert!(answer.leases.is_empty(), "no free slot, no task");
    answer.outcomes
}

/// One completion, alone, and its outcome as the status a failed call
/// would carry.
pub(crate) async fn complete(
    workers: &mut CoordinatorClient<tonic::transport::Channel>,
    worker_id: u64,
    completion: v1::Completion,
) -> Result<(), tonic::Status> {
    let outcome = complete_alone(workers, worker_id, vec![completion]).await;
    match outcome.into_iter().next().expect("one outcome").error {
        None => Ok(()),
        Some(err) => Err(tonic::Status::new(Code::from_i32(err.code), err.message)),
    }
}

/// Each completion's task and error code (none: completed).
pub(crate) fn codes(outcomes: &[v1::CompletionOutcome]) -> Vec<(u64, Option<Code>)> {
    let code = |o: &v1::CompletionOutcome| o.error.as_ref().map(|e| Code::from_i32(e.code));
    outcomes.iter().map(|o| (o.task_id, code(o))).collect()
}

/// GET `path` over plain HTTP/1.1, as Prometheus scrapes: the body.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: sweep\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}
