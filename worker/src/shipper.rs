//! Ships what a running task measures to the coordinator, in order, in the
//! background: metric points in batches and artifacts in chunks. While the
//! coordinator is away it keeps what it has and retries with backoff, so a
//! coordinator restart loses no metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sweep_proto::client::{WorkerClient, retry};
use sweep_proto::{ErrorKind, LeaseRef, MetricPoint, WireError};
use tokio::sync::mpsc;

use crate::experiments::Sink;

/// Points per `ReportMetrics` batch.
const BATCH: usize = 500;

pub enum Event {
    Metric(MetricPoint),
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
        let point = MetricPoint {
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
    client: WorkerClient,
    lease: LeaseRef,
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
                send_points(&client, &lease, std::mem::take(&mut points)).await
            }
            Event::Artifact {
                name,
                encoding,
                data,
            } => match send_points(&client, &lease, std::mem::take(&mut points)).await {
                Ok(()) => retry(|| client.put_artifact(&lease, &name, &encoding, &data)).await,
                err => err,
            },
        };
        if let Err(err) = sent {
            tracing::warn!(task = %lease.task_id, error = %err, "report refused; stopping the task");
            stop.store(true, Ordering::Relaxed);
            return refusal(err);
        }
    }
    match send_points(&client, &lease, points).await {
        Ok(()) => Shipped::All,
        Err(err) => refusal(err),
    }
}

fn refusal(err: WireError) -> Shipped {
    match err.kind {
        ErrorKind::FailedPrecondition | ErrorKind::NotFound => Shipped::LeaseLost,
        _ => Shipped::Refused(err.message),
    }
}

async fn send_points(
    client: &WorkerClient,
    lease: &LeaseRef,
    points: Vec<MetricPoint>,
) -> Result<(), WireError> {
    if points.is_empty() {
        return Ok(());
    }
    retry(|| client.send_metrics(lease, &points))
        .await
        .map(|_| ())
}
