//! Completions on their way to the coordinator. A task hands its completion
//! to the [`Completer`] and waits for the answer; the runner's loop drives
//! the other end, the [`Outbox`]. Every completion travels on a lease call
//! (the one way a task succeeds): the one that asks for the freed slots'
//! next tasks when the runner is about to make it, otherwise one that only
//! completes, sent at once, so a worker whose long poll is out does not hold
//! its results back; those that finish while such a call is on its way go
//! together in the next one.

use sweep_proto::{Completion, ErrorKind, Outcomes, WireError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::session::Session;
use crate::slots::Slot;

/// The most completions one call carries.
const BATCH: usize = 64;

/// What a call says of one completion, to the task that waits for it.
pub type Answer = oneshot::Sender<Result<(), WireError>>;

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

    /// Completes the attempt `completion` names, giving its task's `slot`
    /// back once the completion waits here; answers once the coordinator
    /// has (retrying while it is away).
    pub async fn complete(&self, completion: Completion, slot: Slot) -> Result<(), WireError> {
        let (answer, answered) = oneshot::channel();
        let sent = self.0.send((completion, answer)).map_err(|_| gone());
        drop(slot);
        sent?;
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
    /// Takes up to a call's worth of waiting completions, to ride on a
    /// lease; the answers go back through [`answer`].
    pub fn take(&mut self) -> (Vec<Completion>, Vec<Answer>) {
        let n = self.pending.len().min(BATCH);
        self.pending.drain(..n).unzip()
    }

    /// Sends what waits in a call of its own, unless one is on its way.
    pub fn send_waiting(&mut self, session: &Session) {
        if self.sending.is_some() || self.pending.is_empty() {
            return;
        }
        let (done, answers) = self.take();
        let session = session.clone();
        let call = tokio::spawn(async move { session.complete(&done).await });
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
