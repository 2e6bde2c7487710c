//! Ships what a running task measures to the coordinator, in order, in the
//! background: metric points in batches and artifacts in chunks. While the
//! coordinator is away it keeps what it has and retries with backoff, so a
//! coordinator restart loses no metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sweep_proto::v1::{self, artifact_upload};
use tokio::sync::mpsc;
use tonic::Code;

use crate::client::{Client, retry};
use crate::experiments::Sink;

/// Points per `ReportMetrics` batch.
const BATCH: usize = 500;
/// Bytes per artifact chunk, well under gRPC's 4 MiB message limit.
const CHUNK: usize = 1 << 20;

pub enum Event {
    Metric(v1::MetricPoint),
    Artifact {
        name: String,
        encoding: String,
        data: Vec<u8>,
    },
}

/// The [`Sink`] a task writes to: a channel to [`ship`].
pub struct ChannelSink(pub mpsc::UnboundedSender<Event>);

impl Sink for ChannelSink {
    fn metric(&self, name: &str, step: i64, epoch: Option<i64>, value: f64) {
        let point = v1::MetricPoint {
            name: name.to_string(),
            step,
            epoch,
            value,
        };
        // A closed channel means the task is being stopped; nothing to keep.
        let _ = self.0.send(Event::Metric(point));
    }

    fn artifact(&self, name: &str, encoding: &str, data: Vec<u8>) {
        let _ = self.0.send(Event::Artifact {
            name: name.to_string(),
            encoding: encoding.to_string(),
            data,
        });
    }
}

/// How shipping ended.
#[derive(Debug, PartialEq)]
pub enum Shipped {
    /// Everything the task reported is stored.
    All,
    /// The lease is no longer ours: the task must stop and report nothing.
    LeaseLost,
    /// The coordinator refused a report (e.g. an artifact over its size
    /// cap); the task fails with this message.
    Refused(String),
}

/// Sends everything the task reports until its sink is dropped. When the
/// coordinator refuses a report it sets `stop`, so the task ends early.
pub async fn ship(
    mut client: Client,
    lease: v1::LeaseRef,
    mut events: mpsc::UnboundedReceiver<Event>,
    stop: Arc<AtomicBool>,
) -> Shipped {
    let mut points = Vec::new();
    while let Some(event) = events.recv().await {
        let sent = match event {
            Event::Metric(point) => {
                points.push(point);
                // Batch what is already queued; send when the queue is empty
                // or the batch is full.
                if points.len() < BATCH && !events.is_empty() {
                    continue;
                }
                send_points(&mut client, &lease, std::mem::take(&mut points)).await
            }
            Event::Artifact {
                name,
                encoding,
                data,
            } => {
                let flushed = send_points(&mut client, &lease, std::mem::take(&mut points)).await;
                let put = || send_artifact(client.clone(), &lease, &name, &encoding, &data);
                match flushed {
                    Ok(()) => retry(put).await.map(|_| ()),
                    err => err,
                }
            }
        };
        if let Err(status) = sent {
            tracing::warn!(task = lease.task_id, error = %status.message(), "report refused; stopping the task");
            stop.store(true, Ordering::Relaxed);
            return refusal(status);
        }
    }
    match send_points(&mut client, &lease, points).await {
        Ok(()) => Shipped::All,
        Err(status) => refusal(status),
    }
}

fn refusal(status: tonic::Status) -> Shipped {
    match status.code() {
        Code::FailedPrecondition | Code::NotFound => Shipped::LeaseLost,
        _ => Shipped::Refused(status.message().to_string()),
    }
}

async fn send_points(
    client: &mut Client,
    lease: &v1::LeaseRef,
    points: Vec<v1::MetricPoint>,
) -> Result<(), tonic::Status> {
    if points.is_empty() {
        return Ok(());
    }
    let batch = v1::MetricBatch {
        lease: Some(lease.clone()),
        points,
    };
    retry(|| {
        let mut client = client.clone();
        let batch = batch.clone();
        async move { client.report_metrics(futures::stream::iter([batch])).await }
    })
    .await
    .map(|_| ())
}

async fn send_artifact(
    mut client: Client,
    lease: &v1::LeaseRef,
    name: &str,
    encoding: &str,
    data: &[u8],
) -> Result<tonic::Response<v1::PutArtifactResponse>, tonic::Status> {
    let header = v1::ArtifactUpload {
        part: Some(artifact_upload::Part::Header(v1::ArtifactHeader {
            lease: Some(lease.clone()),
            name: name.to_string(),
            encoding: encoding.to_string(),
        })),
    };
    let parts: Vec<v1::ArtifactUpload> = std::iter::once(header)
        .chain(data.chunks(CHUNK).map(|chunk| v1::ArtifactUpload {
            part: Some(artifact_upload::Part::Data(chunk.to_vec())),
        }))
        .collect();
    client.put_artifact(futures::stream::iter(parts)).await
}
