//! Ships what a running task measures to the coordinator, in order, in the
//! background: metric points in batches and artifacts in chunks. While the
//! coordinator is away it keeps what it has and retries with backoff, so a
//! coordinator restart loses no metric.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sweep_proto::client::{WorkerClient, retry_until};
use sweep_proto::{ErrorKind, LeaseRef, MetricPoint, WireError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::experiments::Sink;

/// Points per `ReportMetrics` batch.
const BATCH: usize = 500;

/// How long a point may wait for others before it is sent. What is still
/// waiting when the task ends goes with its completion instead: a task
/// shorter than this reports everything in one call and one commit, and a
/// long one shows its progress at most this late.
const LINGER: Duration = Duration::from_millis(500);

pub enum Event {
    Metric(MetricPoint),
    Artifact {
        name: String,
        encoding: String,
        data: Vec<u8>,
    },
    /// A checkpoint, stored after every point sent before it.
    Checkpoint {
        step: u64,
        watermarks: BTreeMap<String, i64>,
        data: Vec<u8>,
        held: Held,
    },
    /// The attempt resumed from the task's checkpoint at this step.
    Resumed(u64),
    /// The attempt could not use the task's checkpoint, for this reason.
    Refused(String),
}

/// The bytes of a checkpoint on its way, counted in [`ChannelSink::held`]
/// until it is stored or dropped.
pub struct Held {
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The [`Sink`] a task writes to: a channel to [`ship`].
pub struct ChannelSink {
    events: mpsc::UnboundedSender<Event>,
    /// Per metric, the last step sent: a checkpoint's watermarks.
    sent: Mutex<BTreeMap<String, i64>>,
    /// Bytes of checkpoints not stored yet.
    held: Arc<AtomicUsize>,
}

impl ChannelSink {
    pub fn new(events: mpsc::UnboundedSender<Event>) -> Self {
        Self {
            events,
            sent: Mutex::default(),
            held: Arc::default(),
        }
    }

    /// The bytes of the checkpoints sent that are not stored yet (while
    /// the coordinator is away, they wait in memory).
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Sends a checkpoint taken after `step` steps, behind every point sent
    /// so far: by the time it is stored, they are, so an attempt resuming
    /// from it finds them.
    pub fn checkpoint(&self, step: u64, data: Vec<u8>) {
        let watermarks = self.sent().clone();
        self.held.fetch_add(data.len(), Ordering::Relaxed);
        let held = Held {
            bytes: data.len(),
            total: self.held.clone(),
        };
        self.send(Event::Checkpoint {
            step,
            watermarks,
            data,
            held,
        });
    }

    /// Says the attempt resumed from the checkpoint at `step`, ahead of its
    /// own points.
    pub fn resumed(&self, step: u64) {
        self.send(Event::Resumed(step));
    }

    /// Says the attempt could not use the task's checkpoint (`why`) and
    /// trains from the start.
    pub fn refused(&self, why: &str) {
        self.send(Event::Refused(why.to_string()));
    }

    fn sent(&self) -> MutexGuard<'_, BTreeMap<String, i64>> {
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn send(&self, event: Event) {
        // A closed channel means the task is being stopped; nothing to keep.
        let _ = self.events.send(event);
    }
}

impl Sink for ChannelSink {
    fn metric(&self, name: &str, step: i64, epoch: Option<i64>, value: f64) {
        {
            let mut sent = self.sent();
            let last = sent.entry(name.to_string()).or_insert(step);
            *last = (*last).max(step);
        }
        self.send(Event::Metric(MetricPoint {
            name: name.to_string(),
            step,
            epoch,
            value,
        }));
    }

    fn artifact(&self, name: &str, encoding: &str, data: Vec<u8>) {
        self.send(Event::Artifact {
            name: name.to_string(),
            encoding: encoding.to_string(),
            data,
        });
    }
}

/// How shipping ended.
#[derive(Debug, PartialEq)]
pub enum Shipped {
    /// Everything the task reported is stored, except these last points,
    /// which the task's ending carries.
    All(Vec<MetricPoint>),
    /// The task was stopped while the coordinator was away; what was left
    /// is dropped rather than waited for.
    Stopped,
    /// The lease is no longer ours: the task must stop and report nothing.
    LeaseLost,
    /// The coordinator refused a report (e.g. an artifact over its size
    /// cap); the task fails with this message.
    Refused(String),
}

/// Why shipping ended early.
enum Halt {
    Stopped,
    Failed(WireError),
}

/// Sends everything the task reports until its sink is dropped, and returns
/// the points it held back (see [`LINGER`]). When the coordinator refuses a
/// report it sets `stop`, so the task ends early; when `stop` is set while
/// the coordinator is away, it gives up at once.
pub async fn ship(
    client: WorkerClient,
    lease: LeaseRef,
    mut events: mpsc::UnboundedReceiver<Event>,
    stop: Arc<AtomicBool>,
) -> Shipped {
    let mut points = Vec::new();
    // When the oldest point held back is to be sent.
    let mut due: Option<Instant> = None;
    loop {
        let next = match due {
            Some(at) => tokio::time::timeout_at(at, events.recv()).await,
            None => Ok(events.recv().await),
        };
        let sent = match next {
            Ok(None) => return Shipped::All(points),
            // Lingered long enough: send what waits.
            Err(_elapsed) => send_points(&client, &lease, &stop, &mut points).await,
            Ok(Some(Event::Metric(point))) => {
                points.push(point);
                due.get_or_insert_with(|| Instant::now() + LINGER);
                if points.len() < BATCH {
                    continue;
                }
                send_points(&client, &lease, &stop, &mut points).await
            }
            Ok(Some(Event::Artifact {
                name,
                encoding,
                data,
            })) => match send_points(&client, &lease, &stop, &mut points).await {
                Ok(()) => {
                    send(&stop, || {
                        client.put_artifact(&lease, &name, &encoding, &data)
                    })
                    .await
                }
                halt => halt,
            },
            Ok(Some(Event::Checkpoint {
                step,
                watermarks,
                data,
                held: _held,
            })) => match send_points(&client, &lease, &stop, &mut points).await {
                Ok(()) => {
                    let stored = send(&stop, || {
                        client.put_checkpoint(&lease, step, &watermarks, &data)
                    })
                    .await;
                    checkpoint_stored(stored, &lease, step, data.len())
                }
                halt => halt,
            },
            Ok(Some(Event::Resumed(step))) => {
                match send_points(&client, &lease, &stop, &mut points).await {
                    Ok(()) => send(&stop, || client.resume(&lease, step)).await,
                    halt => halt,
                }
            }
            Ok(Some(Event::Refused(why))) => {
                send(&stop, || client.refuse_checkpoint(&lease, &why)).await
            }
        };
        due = None;
        if let Err(halt) = sent {
            return halted(halt, &lease, &stop);
        }
    }
}

/// A checkpoint the coordinator refused (too large, say) costs the task
/// nothing but the checkpoint; only a lost lease stops it.
fn checkpoint_stored(
    stored: Result<(), Halt>,
    lease: &LeaseRef,
    step: u64,
    bytes: usize,
) -> Result<(), Halt> {
    match stored {
        Ok(()) => {
            tracing::info!(task = %lease.task_id, step, bytes, "checkpoint stored");
            Ok(())
        }
        Err(Halt::Failed(err))
            if !matches!(
                err.kind,
                ErrorKind::FailedPrecondition | ErrorKind::NotFound
            ) =>
        {
            tracing::warn!(task = %lease.task_id, step, bytes, error = %err, "checkpoint refused; training goes on");
            Ok(())
        }
        halt => halt,
    }
}

fn halted(halt: Halt, lease: &LeaseRef, stop: &AtomicBool) -> Shipped {
    match halt {
        Halt::Stopped => Shipped::Stopped,
        Halt::Failed(err) => {
            tracing::warn!(task = %lease.task_id, error = %err, "report refused; stopping the task");
            stop.store(true, Ordering::Relaxed);
            match err.kind {
                ErrorKind::FailedPrecondition | ErrorKind::NotFound => Shipped::LeaseLost,
                _ => Shipped::Refused(err.message),
            }
        }
    }
}

/// Makes one report, retrying while the coordinator is away and the task
/// goes on.
async fn send<T, F, Fut>(stop: &AtomicBool, call: F) -> Result<(), Halt>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WireError>>,
{
    match retry_until(|| stop.load(Ordering::Relaxed), call).await {
        None => Err(Halt::Stopped),
        Some(Ok(_)) => Ok(()),
        Some(Err(err)) => Err(Halt::Failed(err)),
    }
}

/// Sends the points held back, if any, and empties `points`.
async fn send_points(
    client: &WorkerClient,
    lease: &LeaseRef,
    stop: &AtomicBool,
    points: &mut Vec<MetricPoint>,
) -> Result<(), Halt> {
    if points.is_empty() {
        return Ok(());
    }
    send(stop, || client.send_metrics(lease, points)).await?;
    points.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sweep_proto::TaskId;

    use super::*;

    /// A shipper for task 1 whose coordinator is nowhere: nothing listens
    /// on port 1, so every report fails as "away" and is retried.
    fn ship_nowhere(
        stop: Arc<AtomicBool>,
    ) -> (
        mpsc::UnboundedSender<Event>,
        tokio::task::JoinHandle<Shipped>,
    ) {
        let nowhere = ["http://127.0.0.1:1".to_string()];
        let client = WorkerClient::new(&nowhere, &Default::default()).unwrap();
        let lease = LeaseRef {
            task_id: TaskId(1),
            token: "t".into(),
        };
        let (events, receiver) = mpsc::unbounded_channel();
        (events, tokio::spawn(ship(client, lease, receiver, stop)))
    }

    #[tokio::test]
    async fn a_stopped_task_stops_waiting_for_a_coordinator_that_is_away() {
        let stop = Arc::new(AtomicBool::new(false));
        let (events, shipping) = ship_nowhere(stop.clone());
        ChannelSink::new(events.clone()).metric("loss", 1, None, 0.5);
        // Past the linger: the point is being sent, and sending fails.
        tokio::time::sleep(LINGER + Duration::from_millis(300)).await;
        assert!(
            !shipping.is_finished(),
            "it keeps trying while the task goes on"
        );
        stop.store(true, Ordering::Relaxed);
        let shipped = tokio::time::timeout(Duration::from_secs(10), shipping)
            .await
            .expect("shipping ends once the task is stopped")
            .unwrap();
        assert_eq!(shipped, Shipped::Stopped);
    }

    #[tokio::test]
    async fn the_last_points_of_a_short_task_are_left_for_its_ending() {
        let (events, shipping) = ship_nowhere(Arc::new(AtomicBool::new(false)));
        let sink = ChannelSink::new(events);
        sink.metric("loss", 1, None, 0.5);
        sink.metric("test_acc", 1, Some(1), 0.9);
        drop(sink);
        let shipped = tokio::time::timeout(Duration::from_secs(10), shipping)
            .await
            .expect("a task that ends within the linger sends nothing itself")
            .unwrap();
        let names: Vec<_> = match &shipped {
            Shipped::All(tail) => tail.iter().map(|p| (p.name.as_str(), p.value)).collect(),
            other => panic!("expected the points back, got {other:?}"),
        };
        assert_eq!(names, [("loss", 0.5), ("test_acc", 0.9)]);
    }
}
