//! Checkpoints over gRPC: up in chunks through PutArtifact, back whole to
//! the task's next attempt, and Resume; an upload cut short changes
//! nothing.

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
    let (sweep_id, worker) = submit_and_register(&mut workers, &mut sweeps).await;
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
            sweep_id,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_short_leaves_the_previous_checkpoint_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let (_, worker) = submit_and_register(&mut workers, &mut sweeps).await;
    let url = format!("http://{}", server.addr);
    let client = WorkerClient::new(&[url], &Default::default()).unwrap();
    let lease = lease_one(&mut workers, worker).await;
    let good: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    (client.put_checkpoint(&reference(&lease), 3, &BTreeMap::new(), &good))
        .await
        .unwrap();

    let header = |size: u64| v1::ArtifactUpload {
        part: Some(v1::artifact_upload::Part::Header(v1::ArtifactHeader {
            lease: lease_ref(&lease),
            name: sweep_proto::CHECKPOINT.into(),
            encoding: sweep_proto::CHECKPOINT.into(),
            checkpoint: Some(v1::CheckpointHeader {
                step: 9,
                watermarks: Default::default(),
                size,
            }),
        })),
    };
    let chunk = v1::ArtifactUpload {
        part: Some(v1::artifact_upload::Part::Data(vec![7; 100_000])),
    };
    // The stream ends, cleanly, before the bytes the header announced.
    let short = workers
        .put_artifact(futures::stream::iter([header(400_000), chunk.clone()]))
        .await
        .unwrap_err();
    assert_eq!(short.code(), tonic::Code::InvalidArgument, "{short:?}");
    assert!(
        short.message().contains("100000 of its 400000"),
        "{short:?}"
    );
    // The uploader dies mid-way: its stream is reset.
    let (parts, received) = tokio::sync::mpsc::channel(4);
    parts.send(header(400_000)).await.unwrap();
    parts.send(chunk).await.unwrap();
    let mut dying = workers.clone();
    let upload = tokio::spawn(async move {
        let stream = tokio_stream::wrappers::ReceiverStream::new(received);
        dying.put_artifact(stream).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    upload.abort();
    assert!(upload.await.unwrap_err().is_cancelled());
    drop(parts);

    let read = client.checkpoint(&reference(&lease)).await.unwrap();
    assert!(read == good, "the good checkpoint is still the task's");
    workers
        .fail(v1::FailRequest {
            lease: lease_ref(&lease),
            error: "preempted".into(),
            retryable: true,
        })
        .await
        .unwrap();
    let next = lease_one(&mut workers, worker).await;
    assert_eq!(
        next.checkpoint_step,
        Some(3),
        "the next attempt is offered it"
    );
    server.stop().await;
}

/// A resume said neither "from this step" nor "refused, and why" (the
/// oneof's two meanings were one string's empty or not before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_says_neither_step_nor_refusal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let (_, worker) = submit_and_register(&mut workers, &mut sweeps).await;
    let lease = lease_one(&mut workers, worker).await;
    let request = v1::ResumeRequest {
        lease: lease_ref(&lease),
        outcome: None,
    };
    let err = workers.resume(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("neither"), "{err:?}");
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
