//! Completions on their way to the coordinator. A task hands its completion
//! to the [`Completer`] and waits for the answer; the runner's loop drives
//! the other end, the [`Outbox`]. A completion whose slot the runner is
//! about to lease for rides on that lease (one call and one transaction for
//! both); the others are sent on their own at once, those that finish while
//! such a call is on its way together in the next one, so a worker whose
//! tasks end faster than a round trip does not queue behind its own calls.

use sweep_proto::client::{Outcomes, WorkerClient, retry};
use sweep_proto::{ErrorKind, LeaseRef, MetricPoint, WireError};
use sweep_spec::Summary;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The most completions one call carries.
const BATCH: usize = 64;

/// What a call says of one completion, to the task that waits for it.
pub type Answer = oneshot::Sender<Result<(), WireError>>;

/// A finished task's lease, summary and last metric points.
pub type Completion = (LeaseRef, Summary, Vec<MetricPoint>);

/// A handle to the worker's completion sender. Cloning it is cheap.
#[derive(Clone)]
pub struct Completer(mpsc::UnboundedSender<(Completion, Answer)>);

impl Completer {
    /// A completer and the outbox its completions arrive in.
    pub fn new() -> (Self, Outbox) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let outbox = Outbox {
            receiver,
            pending: Vec::new(),
            sending: None,
        };
        (Self(sender), outbox)
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
        self.0
            .send(((lease, summary, points), answer))
            .map_err(|_| gone())?;
        answered.await.unwrap_or_else(|_| Err(gone()))
    }
}

fn gone() -> WireError {
    WireError::new(ErrorKind::Unavailable, "the worker is shutting down")
}

/// The completions that tasks handed over and that no answer has reached
/// yet: waiting, or in a call of the outbox's own.
pub struct Outbox {
    receiver: mpsc::UnboundedReceiver<(Completion, Answer)>,
    pending: Vec<(Completion, Answer)>,
    /// The outbox's own call on its way, and the answers it awaits.
    sending: Option<(Sending, Vec<Answer>)>,
}

type Sending = JoinHandle<Result<Outcomes, WireError>>;

impl Outbox {
    /// How many tasks wait here for their answer. Their slots are free: a
    /// task hands its completion over once its training is done.
    pub fn unanswered(&self) -> usize {
        self.pending.len() + self.sending.as_ref().map_or(0, |(_, a)| a.len())
    }

    /// Takes up to a call's worth of waiting completions, to ride on a
    /// lease; the answers go back through [`answer`].
    pub fn take(&mut self) -> (Vec<Completion>, Vec<Answer>) {
        let n = self.pending.len().min(BATCH);
        self.pending.drain(..n).unzip()
    }

    /// Sends what waits in one call of its own, unless one is on its way.
    pub fn send_waiting(&mut self, client: &WorkerClient) {
        if self.sending.is_some() || self.pending.is_empty() {
            return;
        }
        let (tasks, answers) = self.take();
        let client = client.clone();
        let call = tokio::spawn(async move { retry(|| client.complete_many(&tasks)).await });
        self.sending = Some((call, answers));
    }

    /// Waits for a task's completion or for the answer to the outbox's call.
    pub async fn next(&mut self) {
        tokio::select! {
            Some(completion) = self.receiver.recv() => {
                self.pending.push(completion);
                // Those that finished together travel together.
                while let Ok(completion) = self.receiver.try_recv() {
                    self.pending.push(completion);
                }
            }
            told = async { (&mut self.sending.as_mut().expect("guarded").0).await },
                if self.sending.is_some() =>
            {
                let (_, answers) = self.sending.take().expect("guarded");
                answer(answers, told.unwrap_or_else(|join| Err(lost(join))));
            }
            // Every completer dropped and nothing on its way: nothing to do.
            else => std::future::pending().await,
        }
    }
}

/// Hands each waiting task its completion's outcome (the call's error to
/// all when the call failed).
pub fn answer(answers: Vec<Answer>, told: Result<Outcomes, WireError>) {
    match told {
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

/// The error for a call whose task died.
pub fn lost(join: tokio::task::JoinError) -> WireError {
    WireError::new(
        ErrorKind::Internal,
        format!("the call's task ended: {join}"),
    )
}
