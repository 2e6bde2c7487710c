//! The coordinator over real gRPC: a server on 127.0.0.1:0 with a SQLite file
//! (or a fresh PostgreSQL database) and tonic clients driving whole task life
//! cycles.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::Server;

use sweep_coordinator::Config;
use sweep_proto::v1::coordinator_client::CoordinatorClient;
use sweep_proto::v1::sweeps_client::SweepsClient;
use sweep_proto::v1::{self, artifact_download, artifact_upload};
use tonic::{Code, Request};

const SPEC: &str = r#"
name = "grpc"
experiment = "classify"
dataset = "mnist"
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 1, batch_size = 64 }
[grid]
seed = [0, 1]
"#;

fn config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::new(format!(
        "sqlite://{}",
        dir.path().join("sweeps.db").display()
    ));
    config.max_artifact_bytes = 1 << 20;
    config
}

fn register_request() -> v1::RegisterRequest {
    v1::RegisterRequest {
        name: "test-worker".into(),
        host: "localhost".into(),
        backend: "flex".into(),
        devices: vec![v1::Device {
            kind: "cpu".into(),
            name: "test".into(),
            memory_bytes: 1 << 30,
        }],
        slots: 2,
        version: "test".into(),
    }
}

fn lease_request(worker_id: u64, slots: u32, wait_ms: u64) -> v1::LeaseRequest {
    v1::LeaseRequest {
        worker_id,
        free_slots: slots,
        wait_ms,
        device_kinds: vec!["cpu".into()],
        completions: Vec::new(),
    }
}

fn lease_ref(lease: &v1::TaskLease) -> Option<v1::LeaseRef> {
    Some(v1::LeaseRef {
        task_id: lease.task_id,
        lease_token: lease.lease_token.clone(),
    })
}

fn metric_batch(lease: &v1::TaskLease, steps: std::ops::Range<i64>) -> v1::MetricBatch {
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

fn upload(lease: &v1::TaskLease, name: &str, chunks: Vec<Vec<u8>>) -> Vec<v1::ArtifactUpload> {
    let header = v1::ArtifactUpload {
        part: Some(artifact_upload::Part::Header(v1::ArtifactHeader {
            lease: lease_ref(lease),
            name: name.into(),
            encoding: "raw".into(),
        })),
    };
    std::iter::once(header)
        .chain(chunks.into_iter().map(|data| v1::ArtifactUpload {
            part: Some(artifact_upload::Part::Data(data)),
        }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_life_cycle_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;

    let submitted = sweeps
        .submit(v1::SubmitRequest {
            spec_toml: SPEC.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(submitted.task_count, 2);
    let mut watch = sweeps
        .watch(v1::WatchSweepRequest {
            sweep_id: submitted.sweep_id,
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.state, v1::SweepState::Pending as i32);

    let registered = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        registered.heartbeat_interval_ms * 3,
        registered.lease_ttl_ms
    );
    let leases = workers
        .lease(lease_request(registered.worker_id, 2, 0))
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert_eq!(leases.len(), 2);
    let (good, bad) = (&leases[0], &leases[1]);
    assert_eq!(good.sweep_id, submitted.sweep_id);
    assert_eq!(good.attempt, 1);
    let params: sweep_spec::TaskParams = serde_json::from_str(&good.params_json).unwrap();
    assert_eq!(params.param_count, 784 * 16 + 16 + 16 * 10 + 10);

    // Metrics: the repeated batch is stored once.
    let batches = vec![metric_batch(good, 0..100), metric_batch(good, 50..150)];
    let report = workers
        .report_metrics(futures::stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((report.received, report.stored), (200, 150));

    // Artifacts arrive in chunks and come back whole.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let chunks = data.chunks(100_000).map(<[u8]>::to_vec).collect();
    let put = workers
        .put_artifact(futures::stream::iter(upload(good, "weights/final", chunks)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.size, data.len() as u64);
    let mut download = workers
        .get_artifact(v1::GetArtifactRequest {
            task_id: good.task_id,
            name: "weights/final".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    let mut info = None;
    while let Some(part) = download.message().await.unwrap() {
        match part.part.unwrap() {
            artifact_download::Part::Info(i) => info = Some(i),
            artifact_download::Part::Data(chunk) => got.extend(chunk),
        }
    }
    assert_eq!(info.unwrap().size, data.len() as u64);
    assert_eq!(got, data);

    let beat = workers
        .heartbeat(v1::HeartbeatRequest {
            worker_id: registered.worker_id,
            leases: vec![lease_ref(good).unwrap(), lease_ref(bad).unwrap()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        beat.leases
            .iter()
            .all(|s| s.verdict == v1::LeaseVerdict::Keep as i32)
    );

    workers
        .complete(v1::CompleteRequest {
            lease: lease_ref(good),
            summary_json: r#"{"test_acc": 0.91}"#.into(),
            points: Vec::new(),
        })
        .await
        .unwrap();
    let failed = workers
        .fail(v1::FailRequest {
            lease: lease_ref(bad),
            error: "diverged at step 7".into(),
            retryable: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.state, v1::TaskState::Failed as i32);

    let sweep = sweeps
        .get(v1::GetSweepRequest {
            sweep_id: submitted.sweep_id,
            name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sweep.state, v1::SweepState::Failed as i32);
    let by_name = sweeps
        .get(v1::GetSweepRequest {
            sweep_id: 0,
            name: "grpc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_name, sweep, "a sweep is found by its name too");
    let counts = sweep.counts.unwrap();
    assert_eq!((counts.succeeded, counts.failed), (1, 1));
    assert_eq!(sweep.spec_toml, SPEC);
    assert!(sweep.finished_at_ms.is_some());

    // The watch stream saw the sweep through to its end, then closed.
    let mut last = first;
    while let Some(update) = watch.message().await.unwrap() {
        last = update;
    }
    assert_eq!(last.state, v1::SweepState::Failed as i32);

    let failed_tasks = sweeps
        .list_tasks(v1::ListTasksRequest {
            sweep_id: submitted.sweep_id,
            states: vec![v1::TaskState::Failed as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(failed_tasks.len(), 1);
    assert_eq!(failed_tasks[0].error, "diverged at step 7");
    let done = sweeps
        .list_tasks(v1::ListTasksRequest {
            sweep_id: submitted.sweep_id,
            states: vec![v1::TaskState::Succeeded as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(done[0].summary_json, r#"{"test_acc":0.91}"#);

    let retried = sweeps
        .retry(v1::RetrySweepRequest {
            sweep_id: submitted.sweep_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.requeued, 1);

    let listed = sweeps
        .list_workers(v1::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.workers.len(), 1);
    assert_eq!(listed.workers[0].state, "alive");
    assert_eq!(listed.workers[0].devices[0].kind, "cpu");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_codes_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;

    let bad_spec = SPEC.replace("batch_size = 64", "batch_size = 0");
    let err = sweeps
        .submit(v1::SubmitRequest {
            spec_toml: bad_spec,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("train.batch_size = 0"),
        "{}",
        err.message()
    );
    let listed = sweeps
        .list(v1::ListSweepsRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.sweeps.is_empty(),
        "nothing is queued from an invalid spec"
    );

    for sweep_id in [0, 77, u64::MAX] {
        let request = v1::GetSweepRequest {
            sweep_id,
            name: String::new(),
        };
        let err = sweeps.get(request).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "sweep {sweep_id}");
    }
    let request = v1::GetSweepRequest {
        sweep_id: 1,
        name: "nobody".into(),
    };
    let err = sweeps.get(request).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), r#"sweep "nobody" not found"#);
    let request = v1::ListTasksRequest {
        sweep_id: 1,
        states: vec![],
        limit: 10,
        page_token: "next, please".into(),
    };
    let err = sweeps.list_tasks(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let err = workers.lease(lease_request(999, 1, 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    sweeps
        .submit(v1::SubmitRequest {
            spec_toml: SPEC.into(),
        })
        .await
        .unwrap();
    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let lease = workers
        .lease(lease_request(worker, 1, 0))
        .await
        .unwrap()
        .into_inner()
        .leases
        .remove(0);

    // A stale token is refused and changes nothing.
    let mut stale = lease.clone();
    stale.lease_token = "stale".into();
    let err = workers
        .complete(v1::CompleteRequest {
            lease: lease_ref(&stale),
            summary_json: String::new(),
            points: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = workers
        .report_metrics(futures::stream::iter(vec![metric_batch(&stale, 0..3)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Over the cap (1 MiB in this test) is RESOURCE_EXHAUSTED.
    let chunks = vec![vec![0u8; 600 << 10], vec![0u8; 600 << 10]];
    let err = workers
        .put_artifact(futures::stream::iter(upload(
            &lease,
            "weights/final",
            chunks,
        )))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let err = workers
        .get_artifact(v1::GetArtifactRequest {
            task_id: lease.task_id,
            name: "weights/final".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let err = workers
        .complete(v1::CompleteRequest {
            lease: lease_ref(&lease),
            summary_json: "[1, 2]".into(),
            points: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let diverged = v1::MetricPoint {
        name: "train_loss".into(),
        step: 9,
        epoch: None,
        value: f64::NAN,
    };
    let err = workers
        .complete(v1::CompleteRequest {
            lease: lease_ref(&lease),
            summary_json: "{}".into(),
            points: vec![diverged],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("train_loss"), "{}", err.message());
    // The real lease still works after all that.
    workers
        .complete(v1::CompleteRequest {
            lease: lease_ref(&lease),
            summary_json: "{}".into(),
            points: Vec::new(),
        })
        .await
        .unwrap();
    server.stop().await;
}

/// A spec whose grid has 4,000 seeds on one line, one of them `bad`.
fn long_line_spec(bad: &str) -> String {
    let mut seeds: Vec<String> = (0..4000).map(|s| s.to_string()).collect();
    seeds[2500] = bad.to_string();
    SPEC.replace("seed = [0, 1]", &format!("seed = [{}]", seeds.join(", ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_on_a_long_line_comes_back_whole_and_short() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (_, mut sweeps) = server.clients().await;
    let batches = vec!["64"; 4000].join(", ");
    let full_batch = format!(
        "name = \"fit\"\nexperiment = \"fit\"\nmodel = {{ kind = \"mlp\", hidden = [4] }}\n\
         train = {{ lr = 1e-3, steps = 5 }}\n[grid]\nbatch_size = [{batches}]\n"
    );
    let cases = [
        // The TOML parser's message quotes the line it failed on.
        (long_line_spec("\"x\""), vec!["\"x\"", "line 8"]),
        // The planner names the field and the value.
        (long_line_spec("-3"), vec!["grid.seed = -3", "not negative"]),
        // ... and the value may be a whole axis.
        (full_batch, vec!["grid.batch_size = [64, 64", "full batch"]),
    ];
    for (spec, parts) in cases {
        assert!(spec.len() > 15_000);
        let err = sweeps
            .submit(v1::SubmitRequest { spec_toml: spec })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(err.message().len() <= 1024, "{} bytes", err.message().len());
        for part in parts {
            assert!(
                err.message().contains(part),
                "{:?} lacks {part:?}",
                err.message()
            );
        }
    }
    // A message over the limit both sides keep is refused before it is read.
    let huge = format!("{SPEC}# {}\n", "x".repeat(sweep_proto::MAX_MESSAGE_BYTES));
    let err = sweeps
        .submit(v1::SubmitRequest { spec_toml: huge })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_outside_is_checked_and_database_errors_stay_inside() {
    // PostgreSQL, which cannot store a NUL byte at all.
    let db = common::TestDb::postgres().await;
    let server = Server::start(Config::new(db.url.clone())).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let nul_name = SPEC.replace("name = \"grpc\"", "name = \"a\\u0000b\"");
    let request = v1::SubmitRequest {
        spec_toml: nul_name,
    };
    let err = sweeps.submit(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("invalid spec: name = \"a\\0b\": control"),
        "{}",
        err.message()
    );
    let mut bad_worker = register_request();
    bad_worker.name = "w\0".into();
    let err = workers.register(bad_worker).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("worker name"),
        "{}",
        err.message()
    );

    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner();
    let request = v1::SubmitRequest {
        spec_toml: SPEC.into(),
    };
    let submitted = sweeps.submit(request).await.unwrap().into_inner();
    let leases = workers
        .lease(lease_request(worker.worker_id, 2, 0))
        .await
        .unwrap()
        .into_inner()
        .leases;
    let mut batch = metric_batch(&leases[0], 0..1);
    batch.points[0].name = "loss\0".into();
    let err = workers
        .report_metrics(futures::stream::iter([batch]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let fail = v1::FailRequest {
        lease: lease_ref(&leases[0]),
        error: "diverged\0 at step 3".into(),
        retryable: false,
    };
    workers.fail(fail).await.unwrap();
    let request = v1::ListTasksRequest {
        sweep_id: submitted.sweep_id,
        states: vec![v1::TaskState::Failed as i32],
        ..Default::default()
    };
    let failed = sweeps.list_tasks(request).await.unwrap().into_inner().tasks;
    assert_eq!(
        failed[0].error, "diverged\u{fffd} at step 3",
        "kept, cleaned"
    );

    // The database fails under the coordinator: the client learns that much,
    // not the database's own words.
    db.execute("DROP TABLE metrics").await;
    let batch = metric_batch(&leases[1], 0..1);
    let err = workers
        .report_metrics(futures::stream::iter([batch]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(
        err.message(),
        "the coordinator's database failed; its log has the details"
    );
    server.stop().await;
    db.cleanup().await;
}

/// A codec that sends and receives bytes as they are.
#[derive(Clone, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = bytes::Buf::copy_to_bytes(buf, bytes::Buf::remaining(buf));
        Ok(Some(bytes.to_vec()))
    }
}

/// Sends `bytes` as they are as the request of `path`.
async fn raw_call(
    server: &Server,
    path: &'static str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(Request::new(bytes), path, Raw)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_does_not_decode_is_a_bad_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    // A length-delimited field whose length runs past the message's end.
    let garbage = vec![0x0a, 0xff, 0x01, 0x00];
    for path in ["/sweep.v1.Sweeps/Submit", "/sweep.v1.Coordinator/Register"] {
        let err = raw_call(&server, path, garbage.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().contains("does not decode"),
            "{}",
            err.message()
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_get_a_clear_code_never_internal() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let paths = [
        "/sweep.v1.Sweeps/Submit",
        "/sweep.v1.Sweeps/Get",
        "/sweep.v1.Sweeps/ListTasks",
        "/sweep.v1.Coordinator/Register",
        "/sweep.v1.Coordinator/Heartbeat",
        "/sweep.v1.Coordinator/Complete",
    ];
    // A fixed xorshift stream: the same 600 inputs on every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..600 {
        let length = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
        let path = paths[round % paths.len()];
        if let Err(status) = raw_call(&server, path, bytes.clone()).await {
            assert!(
                !matches!(status.code(), Code::Internal | Code::Unknown),
                "{bytes:?}: {:?} {}",
                status.code(),
                status.message()
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_over_the_coordinators_parameter_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.max_params = 12_000;
    let server = Server::start(config).await;
    let (_, mut sweeps) = server.clients().await;
    let request = v1::SubmitRequest {
        spec_toml: SPEC.into(),
    };
    let err = sweeps.submit(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // 784-16-10: 784·16 + 16 + 16·10 + 10 parameters.
    assert!(
        err.message()
            .contains("12730 parameters, more than the 12000"),
        "{}",
        err.message()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_lease_wakes_when_work_arrives_and_ends_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner()
        .worker_id;

    let mut waiting = workers.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move { waiting.lease(lease_request(worker, 1, 15_000)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sweeps
        .submit(v1::SubmitRequest {
            spec_toml: SPEC.into(),
        })
        .await
        .unwrap();
    let leases = poll.await.unwrap().unwrap().into_inner().leases;
    assert_eq!(leases.len(), 1);
    // Woken by the submit, well before the 2 s re-check or the 15 s wait.
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );

    // A lease call waiting at shutdown returns (empty) instead of holding
    // the server up.
    workers.lease(lease_request(worker, 1, 0)).await.unwrap();
    let mut waiting = workers.clone();
    let poll = tokio::spawn(async move { waiting.lease(lease_request(worker, 1, 15_000)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop().await;
    let answer = poll.await.unwrap().unwrap().into_inner();
    assert!(answer.leases.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let sweep_id = sweeps
        .submit(v1::SubmitRequest {
            spec_toml: SPEC.into(),
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
    let lease = workers
        .lease(lease_request(worker, 1, 0))
        .await
        .unwrap()
        .into_inner()
        .leases
        .remove(0);
    server.stop().await;

    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;
    workers
        .complete(v1::CompleteRequest {
            lease: lease_ref(&lease),
            summary_json: "{}".into(),
            points: Vec::new(),
        })
        .await
        .expect("the lease outlives the coordinator");
    let counts = counts(&mut sweeps, sweep_id).await;
    assert_eq!((counts.succeeded, counts.queued), (1, 1));
    server.stop().await;
}

/// A sweep's task counts, as `sweep status` reads them.
async fn counts(
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
/// leased by one worker: the sweep's id and the leases.
async fn both_tasks_leased(
    server: &Server,
) -> (
    CoordinatorClient<tonic::transport::Channel>,
    SweepsClient<tonic::transport::Channel>,
    u64,
    Vec<v1::TaskLease>,
) {
    let (mut workers, mut sweeps) = server.clients().await;
    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner();
    let request = v1::SubmitRequest {
        spec_toml: SPEC.into(),
    };
    let sweep_id = sweeps.submit(request).await.unwrap().into_inner().sweep_id;
    let leases = workers
        .lease(lease_request(worker.worker_id, 2, 0))
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert_eq!(leases.len(), 2);
    (workers, sweeps, sweep_id, leases)
}

/// Each completion's task and error code (none: completed).
fn codes(outcomes: &[v1::CompleteOutcome]) -> Vec<(u64, Option<Code>)> {
    let code = |o: &v1::CompleteOutcome| o.error.as_ref().map(|e| Code::from_i32(e.code));
    outcomes.iter().map(|o| (o.task_id, code(o))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_in_one_call_are_answered_task_by_task() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps, sweep_id, leases) = both_tasks_leased(&server).await;
    let completion = |lease: &v1::TaskLease, summary_json: &str| v1::CompleteRequest {
        lease: lease_ref(lease),
        summary_json: summary_json.into(),
        points: vec![v1::MetricPoint {
            name: "test_acc".into(),
            step: 1,
            epoch: Some(1),
            value: 0.9,
        }],
    };
    let tasks = vec![
        completion(&leases[0], r#"{"test_acc": 0.9}"#),
        completion(&leases[1], "[1, 2]"),
        v1::CompleteRequest::default(),
    ];
    let outcomes = workers
        .complete_many(v1::CompleteManyRequest { tasks })
        .await
        .unwrap()
        .into_inner()
        .outcomes;
    assert_eq!(
        codes(&outcomes),
        [
            (leases[0].task_id, None),
            (leases[1].task_id, Some(Code::InvalidArgument)),
            (0, Some(Code::InvalidArgument)),
        ]
    );
    assert!(
        outcomes[1]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("summary_json")
    );

    // The refused task is still leased and completes; the done one is stale.
    let tasks = vec![completion(&leases[1], "{}"), completion(&leases[0], "{}")];
    let outcomes = workers
        .complete_many(v1::CompleteManyRequest { tasks })
        .await
        .unwrap()
        .into_inner()
        .outcomes;
    assert_eq!(outcomes[0].error, None);
    let stale = outcomes[1].error.as_ref().unwrap();
    assert_eq!(Code::from_i32(stale.code), Code::FailedPrecondition);
    let counts = counts(&mut sweeps, sweep_id).await;
    assert_eq!(counts.succeeded, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_carries_completions_and_answers_them_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps, sweep_id, leases) = both_tasks_leased(&server).await;
    let completion = |lease: &v1::TaskLease, value: f64| v1::CompleteRequest {
        lease: lease_ref(lease),
        summary_json: r#"{"test_acc": 0.9}"#.into(),
        points: vec![v1::MetricPoint {
            name: "test_acc".into(),
            step: 1,
            epoch: Some(1),
            value,
        }],
    };
    let worker_id = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    // Nothing is queued: a lease that carries completions does not wait
    // out its 60 s, it answers them.
    let mut request = lease_request(worker_id, 2, 60_000);
    request.completions = vec![
        completion(&leases[0], 0.9),
        completion(&leases[1], f64::NAN),
    ];
    let answer = tokio::time::timeout(Duration::from_secs(20), workers.lease(request))
        .await
        .expect("answered without the long poll")
        .unwrap()
        .into_inner();
    assert!(answer.leases.is_empty());
    assert_eq!(
        codes(&answer.outcomes),
        [
            (leases[0].task_id, None),
            (leases[1].task_id, Some(Code::InvalidArgument)),
        ]
    );
    let before = counts(&mut sweeps, sweep_id).await;
    assert_eq!((before.succeeded, before.leased), (1, 1));

    // An unknown worker's lease changes nothing, its completions included.
    let mut request = lease_request(worker_id + 100, 1, 0);
    request.completions = vec![completion(&leases[1], 0.9)];
    let refused = workers.lease(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(counts(&mut sweeps, sweep_id).await, before);
    server.stop().await;
}

/// GET `path` over plain HTTP/1.1, as Prometheus scrapes: the body.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: sweep\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_tasks_workers_leases_and_endings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, _, _, leases) = both_tasks_leased(&server).await;
    let complete = v1::CompleteRequest {
        lease: lease_ref(&leases[0]),
        summary_json: "{}".into(),
        points: Vec::new(),
    };
    workers.complete(complete).await.unwrap();
    let fail = v1::FailRequest {
        lease: lease_ref(&leases[1]),
        error: "diverged".into(),
        retryable: false,
    };
    workers.fail(fail).await.unwrap();

    let text = http_get(server.addr, "/metrics").await;
    for line in [
        "sweep_tasks{state=\"succeeded\"} 1",
        "sweep_tasks{state=\"failed\"} 1",
        "sweep_tasks{state=\"queued\"} 0",
        "sweep_workers_alive 1",
        "sweep_lease_seconds_count 1",
        "sweep_task_endings_total{state=\"succeeded\"} 1",
        "sweep_task_endings_total{state=\"failed\"} 1",
        "sweep_completions_total{call=\"complete\"} 1",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(text.contains("sweep_database_errors_total"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_each_service_and_health_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.worker_token = Some("worker-secret".into());
    config.client_token = Some("client-secret".into());
    let server = Server::start(config).await;
    let channel = server.channel().await;

    let err = SweepsClient::new(channel.clone())
        .list(v1::ListSweepsRequest { limit: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let with = |token: &'static str| {
        move |mut request: Request<()>| {
            let value = format!("Bearer {token}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
            Ok(request)
        }
    };
    let mut sweeps = SweepsClient::with_interceptor(channel.clone(), with("client-secret"));
    sweeps
        .list(v1::ListSweepsRequest { limit: 0 })
        .await
        .unwrap();
    // The client token does not open the worker service.
    let err = CoordinatorClient::with_interceptor(channel.clone(), with("client-secret"))
        .register(register_request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = CoordinatorClient::with_interceptor(channel.clone(), with("client-secret"))
        .lease(lease_request(1, 1, 0))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "a client token cannot lease"
    );
    CoordinatorClient::with_interceptor(channel.clone(), with("worker-secret"))
        .register(register_request())
        .await
        .unwrap();
    // Nor does the worker token open the client service: a worker cannot
    // submit, cancel or retry sweeps.
    let mut as_worker = SweepsClient::with_interceptor(channel.clone(), with("worker-secret"));
    let submit = v1::SubmitRequest {
        spec_toml: SPEC.into(),
    };
    let refused = [
        as_worker.submit(submit).await.map(drop),
        as_worker
            .cancel(v1::CancelSweepRequest { sweep_id: 1 })
            .await
            .map(drop),
        as_worker
            .retry(v1::RetrySweepRequest { sweep_id: 1 })
            .await
            .map(drop),
    ];
    for err in refused {
        assert_eq!(err.unwrap_err().code(), Code::Unauthenticated);
    }

    // Reflection answers in both versions stock tools speak.
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(listed)) = answer.message_response else {
        panic!("not a list of services: {answer:?}");
    };
    let names: Vec<&str> = listed.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"sweep.v1.Sweeps"), "{names:?}");
    assert!(names.contains(&"sweep.v1.Coordinator"), "{names:?}");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "sweep.v1.Coordinator".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.stop().await;
}
