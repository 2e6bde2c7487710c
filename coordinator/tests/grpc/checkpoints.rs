//! Checkpoints over gRPC: up in chunks through PutArtifact, back whole to
//! the task's next attempt, and Resume.

use std::collections::BTreeMap;

use crate::common::*;
use crate::helpers::*;
use sweep_proto::client::WorkerClient;
use sweep_proto::v1;
use sweep_proto::{ErrorKind, LeaseRef, TaskId};

fn reference(lease: &v1::TaskLease) -> LeaseRef {
    LeaseRef {
        task_id: TaskId::from_wire(lease.task_id).unwrap(),
        token: lease.lease_token.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_travels_to_the_tasks_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.max_artifact_bytes = 4 << 20;
    let server = Server::start(config).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let submitted = sweeps
        .submit(v1::SubmitRequest {
            spec_toml: SPEC.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let url = format!("http://{}", server.addr);
    let client = WorkerClient::new(&[url], &Default::default()).unwrap();

    let first = lease_one(&mut workers, worker).await;
    assert_eq!((first.attempt, first.checkpoint_step), (1, None));
    workers
        .report_metrics(futures::stream::iter([metric_batch(&first, 0..6)]))
        .await
        .unwrap();
    // Three chunks, so it arrives in parts.
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    let watermarks = BTreeMap::from([("train_loss".to_string(), 3)]);
    (client.put_checkpoint(&reference(&first), 3, &watermarks, &data))
        .await
        .unwrap();
    workers
        .fail(v1::FailRequest {
            lease: lease_ref(&first),
            error: "preempted".into(),
            retryable: true,
        })
        .await
        .unwrap();

    let second = lease_one(&mut workers, worker).await;
    assert_eq!(second.task_id, first.task_id);
    assert_eq!((second.attempt, second.checkpoint_step), (2, Some(3)));
    let stale = client.checkpoint(&reference(&first)).await.unwrap_err();
    assert_eq!(stale.kind, ErrorKind::FailedPrecondition);
    let read = client.checkpoint(&reference(&second)).await.unwrap();
    assert!(read == data, "the checkpoint comes back whole");
    let wrong = client.resume(&reference(&second), 2).await.unwrap_err();
    assert_eq!(wrong.kind, ErrorKind::FailedPrecondition);
    client.resume(&reference(&second), 3).await.unwrap();

    let listed = sweeps
        .list_tasks(v1::ListTasksRequest {
            sweep_id: submitted.sweep_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let task = listed
        .tasks
        .iter()
        .find(|t| t.id == second.task_id)
        .unwrap();
    assert_eq!(task.resumed_from, 3);
    server.stop().await;
}

/// One task's lease, at once.
async fn lease_one(
    workers: &mut sweep_proto::v1::coordinator_client::CoordinatorClient<tonic::transport::Channel>,
    worker: u64,
) -> v1::TaskLease {
    let mut leased = workers
        .lease(lease_request(worker, 1, 0))
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert_eq!(leased.len(), 1);
    leased.remove(0)
}
