//! Tasks from submission to completion, long polls, restarts, and
//! completions answered task by task.

use crate::common::*;
use crate::helpers::*;
use std::time::{Duration, Instant};
use sweep_proto::v1::{self, artifact_download};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_life_cycle_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;

    let submitted = sweeps
        .submit(v1::SubmitRequest {
            spec_toml: SPEC.into(),
            ..Default::default()
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

    let completion = v1::Completion {
        lease: lease_ref(good),
        summary_json: r#"{"test_acc": 0.91}"#.into(),
        points: Vec::new(),
    };
    complete(&mut workers, registered.worker_id, completion)
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
    assert!(listed.workers[0].alive && !listed.workers[0].stopped);
    assert_eq!(
        listed.workers[0].devices[0].kind,
        v1::DeviceKind::Cpu as i32
    );

    // A worker that says it is stopping is listed stopped, not alive.
    workers
        .leave(v1::LeaveRequest {
            worker_id: registered.worker_id,
        })
        .await
        .unwrap();
    let listed = sweeps
        .list_workers(v1::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.workers[0].alive && listed.workers[0].stopped);
    let unknown = workers
        .leave(v1::LeaveRequest { worker_id: 424_242 })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
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
            ..Default::default()
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
    let (sweep_id, worker) = submit_and_register(&mut workers, &mut sweeps).await;
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
    let completion = v1::Completion {
        lease: lease_ref(&lease),
        summary_json: "{}".into(),
        points: Vec::new(),
    };
    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    complete(&mut workers, worker, completion)
        .await
        .expect("the lease outlives the coordinator");
    let counts = counts(&mut sweeps, sweep_id).await;
    assert_eq!((counts.succeeded, counts.queued), (1, 1));
    server.stop().await;
}

/// A coordinator killed between a lease's commit and its answer: the worker
/// makes the call again, with its number, to the restarted coordinator and
/// gets the same lease back rather than leaving it to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_call_made_again_after_a_restart_gets_its_lease_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let (_, worker) = submit_and_register(&mut workers, &mut sweeps).await;
    let numbered = |again| v1::LeaseRequest {
        call: 41,
        again,
        ..lease_request(worker, 1, 0)
    };
    let lost = workers.lease(numbered(false)).await.unwrap().into_inner();
    server.stop().await;

    let server = Server::start(config(&dir)).await;
    let (mut workers, _) = server.clients().await;
    let answer = workers.lease(numbered(true)).await.unwrap().into_inner();
    assert_eq!(answer.leases.len(), 1);
    let (before, after) = (&lost.leases[0], &answer.leases[0]);
    assert_eq!(
        (after.task_id, &after.lease_token, after.attempt),
        (before.task_id, &before.lease_token, 1)
    );
    // Made again without its flag, the call is a new one: the other task.
    let fresh = workers.lease(numbered(false)).await.unwrap().into_inner();
    assert_ne!(fresh.leases[0].task_id, before.task_id);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_in_one_call_are_answered_task_by_task() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps, sweep_id, leases, worker) = both_tasks_leased(&server).await;
    let completion = |lease: &v1::TaskLease, summary_json: &str| v1::Completion {
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
        v1::Completion::default(),
    ];
    let outcomes = complete_alone(&mut workers, worker, tasks).await;
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
    let outcomes = complete_alone(&mut workers, worker, tasks).await;
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
    let (mut workers, mut sweeps, sweep_id, leases, _) = both_tasks_leased(&server).await;
    let completion = |lease: &v1::TaskLease, value: f64| v1::Completion {
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

/// Every ending reaches `sweep_task_endings_total`, the README's
/// throughput: one the reaper ends (a worker that stopped heartbeating) as
/// well as a worker's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_attempt_is_counted_among_the_endings() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.lease_ttl = Duration::from_secs(1);
    config.reap_interval = Duration::from_millis(100);
    let server = Server::start(config).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let (sweep, worker) = submit_and_register(&mut workers, &mut sweeps).await;
    let leases = workers
        .lease(lease_request(worker, 1, 0))
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert_eq!(leases.len(), 1);
    let started = Instant::now();
    while counts(&mut sweeps, sweep).await.queued < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "never reaped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = http_get(server.addr, "/metrics").await;
    let line = "sweep_task_endings_total{state=\"queued\"} 1";
    assert!(metrics.contains(line), "{line:?} missing from:\n{metrics}");
    server.stop().await;
}
