//! The result cache over gRPC: a claim that waits for the task training the
//! same key answers as soon as that task succeeds; listings and the endings
//! metric count the tasks that came from the cache; a malformed digest is
//! refused.

use std::time::Duration;

use crate::common::*;
use crate::helpers::*;
use sweep_proto::client::WorkerClient;
use sweep_proto::v1;
use sweep_proto::{Claim, ErrorKind, LeaseRef, TaskId};

fn reference(lease: &v1::TaskLease) -> LeaseRef {
    LeaseRef {
        task_id: TaskId::from_wire(lease.task_id).unwrap(),
        token: lease.lease_token.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_claim_answers_once_the_task_training_its_key_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps, first_sweep, first, worker) = both_tasks_leased(&server).await;
    let request = v1::SubmitRequest {
        spec_toml: SPEC.into(),
        ..Default::default()
    };
    let second_sweep = sweeps.submit(request).await.unwrap().into_inner().sweep_id;
    let second = workers
        .lease(lease_request(worker, 2, 0))
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert!(second.iter().all(|lease| lease.cacheable));
    let url = format!("http://{}", server.addr);
    let client = WorkerClient::new(&[url], &Default::default()).unwrap();
    let wait = Duration::from_secs(30);
    for lease in &first {
        let claim = client.claim(&reference(lease), "ab12", wait).await;
        assert_eq!(claim.unwrap(), Claim::Train);
    }

    // Grid order: the second sweep's tasks pair with the first's.
    let waiting = {
        let (client, lease) = (client.clone(), reference(&second[0]));
        tokio::spawn(async move { client.claim(&lease, "ab12", wait).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "it waits while the first trains");
    let completion = v1::Completion {
        lease: lease_ref(&first[0]),
        summary_json: r#"{"test_acc": 0.5}"#.into(),
        points: vec![v1::MetricPoint {
            name: "train_loss".into(),
            step: 0,
            epoch: Some(0),
            value: 1.5,
        }],
    };
    complete(&mut workers, worker, completion).await.unwrap();
    let source = TaskId::from_wire(first[0].task_id).unwrap();
    assert_eq!(
        waiting.await.unwrap().unwrap(),
        Claim::Cached { source },
        "answered before its 30 s were up"
    );

    let listed = sweeps
        .list_tasks(v1::ListTasksRequest {
            sweep_id: second_sweep,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let cached: Vec<Option<u64>> = listed.tasks.iter().map(|t| t.cached_from).collect();
    assert_eq!(cached, [Some(first[0].task_id), None]);
    assert_eq!(counts(&mut sweeps, second_sweep).await.cached, 1);
    assert_eq!(counts(&mut sweeps, first_sweep).await.cached, 0);
    // The README's throughput counts a task served from the cache, which
    // ended without a completion, as it counts one that trained.
    let metrics = http_get(server.addr, "/metrics").await;
    let line = "sweep_task_endings_total{state=\"succeeded\"} 2";
    assert!(metrics.contains(line), "{line:?} missing from:\n{metrics}");

    let bad = client.claim(&reference(&second[1]), "not hex!", wait).await;
    let err = bad.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(
        err.message.contains("data_digest \"not hex!\""),
        "{}",
        err.message
    );
    server.stop().await;
}
