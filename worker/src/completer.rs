//! Completions on their way to the coordinator. Tasks that finish while the
//! previous completion call is on its way go together in the next one (one
//! call and one transaction for all of them), so a worker whose tasks end
//! faster than a round trip does not queue behind its own calls; a task
//! that finishes alone is sent at once.

use sweep_proto::client::{WorkerClient, retry};
use sweep_proto::{ErrorKind, LeaseRef, MetricPoint, WireError};
use sweep_spec::Summary;
use tokio::sync::{mpsc, oneshot};

/// The most completions one call carries.
const BATCH: usize = 64;

type Answer = oneshot::Sender<Result<(), WireError>>;

/// A handle to the worker's completion sender. Cloning it is cheap.
#[derive(Clone)]
pub struct Completer(mpsc::UnboundedSender<(Completion, Answer)>);

type Completion = (LeaseRef, Summary, Vec<MetricPoint>);

impl Completer {
    /// Starts sending completions through `client`, in the background, until
    /// every handle is dropped.
    pub fn start(client: WorkerClient) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(send_all(client, receiver));
        Self(sender)
    }

    /// Completes the attempt `lease` names with its summary and last points;
    /// answers once the coordinator has (retrying while it is away).
    pub async fn complete(
        &self,
        lease: LeaseRef,
        summary: Summary,
        points: Vec<MetricPoint>,
    ) -> Result<(), WireError> {
        let (answer, answered) = oneshot::channel();
        let gone = || WireError::new(ErrorKind::Unavailable, "the worker is shutting down");
        self.0
            .send(((lease, summary, points), answer))
            .map_err(|_| gone())?;
        answered.await.unwrap_or_else(|_| Err(gone()))
    }
}

async fn send_all(
    client: WorkerClient,
    mut pending: mpsc::UnboundedReceiver<(Completion, Answer)>,
) {
    let mut batch = Vec::new();
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let (tasks, answers): (Vec<Completion>, Vec<Answer>) =
            std::mem::take(&mut batch).into_iter().unzip();
        match retry(|| client.complete_many(&tasks)).await {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    // A task that stopped waiting needs no answer.
                    let _ = answer.send(outcome);
                }
            }
            Err(err) => {
                for answer in answers {
                    let _ = answer.send(Err(err.clone()));
                }
            }
        }
    }
}
