//! The worker's standing with its coordinator: its registration (made again
//! when a coordinator on a new database has forgotten it), the long poll for
//! work, and the heartbeat that keeps its leases alive and carries
//! cancellations to the tasks on the [`Board`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sweep_proto::Registered;
use sweep_proto::client::{WorkerClient, retry};
use sweep_proto::{Completion, DeviceKind, ErrorKind, LeaseCall, LeaseRef, Leased, Outcomes};
use sweep_proto::{Registration, TaskId, Verdict, WireError, WorkerId};

/// Why a running task was told to stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopReason {
    Cancelled,
    Lost,
    Shutdown,
}

/// A running task as the heartbeat sees it.
struct Running {
    lease: LeaseRef,
    stop: Arc<AtomicBool>,
    reason: Option<StopReason>,
}

/// The tasks this worker is running, by task.
#[derive(Clone, Default)]
pub struct Board(Arc<Mutex<HashMap<TaskId, Running>>>);

impl Board {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<TaskId, Running>) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Puts a task on the board; setting `stop` tells it to stop.
    pub fn start(&self, lease: &LeaseRef, stop: Arc<AtomicBool>) {
        let running = Running {
            lease: lease.clone(),
            stop,
            reason: None,
        };
        self.with(|tasks| tasks.insert(lease.task_id, running));
    }

    /// Takes a task off the board; returns why it was stopped, if it was.
    pub fn finish(&self, task: TaskId) -> Option<StopReason> {
        self.with(|tasks| tasks.remove(&task).and_then(|r| r.reason))
    }

    /// Why the task was told to stop, if it was.
    pub fn reason(&self, task: TaskId) -> Option<StopReason> {
        self.with(|tasks| tasks.get(&task).and_then(|r| r.reason))
    }

    pub fn stop(&self, task: TaskId, reason: StopReason) {
        self.with(|tasks| {
            if let Some(running) = tasks.get_mut(&task) {
                running.reason.get_or_insert(reason);
                running.stop.store(true, Ordering::Relaxed);
            }
        });
    }

    pub fn stop_all(&self, reason: StopReason) {
        let ids: Vec<TaskId> = self.with(|tasks| tasks.keys().copied().collect());
        ids.into_iter().for_each(|id| self.stop(id, reason));
    }

    fn leases(&self) -> Vec<LeaseRef> {
        self.with(|tasks| tasks.values().map(|r| r.lease.clone()).collect())
    }
}

/// How long a stopping worker waits to say so.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// The worker as its coordinator knows it.
#[derive(Clone)]
pub struct Session {
    pub client: WorkerClient,
    pub board: Board,
    registration: Arc<Registration>,
    /// The id the coordinator knows this worker by (0 before registering).
    worker_id: Arc<AtomicI64>,
    /// The last lease call's number.
    calls: Arc<AtomicU64>,
}

impl Session {
    pub fn new(client: WorkerClient, registration: Registration) -> Self {
        Self {
            client,
            board: Board::default(),
            registration: Arc::new(registration),
            worker_id: Arc::default(),
            calls: Arc::default(),
        }
    }

    fn worker_id(&self) -> WorkerId {
        WorkerId(self.worker_id.load(Ordering::Relaxed))
    }

    /// Registers, retrying while the coordinator is away.
    pub async fn register(&self) -> Result<Registered, WireError> {
        let registered = retry(|| self.client.register(&self.registration)).await?;
        self.worker_id
            .store(registered.worker_id.0, Ordering::Relaxed);
        Ok(registered)
    }

    /// Tells the coordinator the worker is stopping, once its tasks are
    /// handed back. Tried once and briefly: a worker stopping must not hang
    /// on a coordinator that is away, which then shows it lost instead.
    pub async fn leave(&self) {
        let told = tokio::time::timeout(LEAVE_WAIT, self.client.leave(self.worker_id())).await;
        match told {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "could not say the worker is stopping"),
            Err(_) => tracing::warn!("the coordinator did not answer that the worker is stopping"),
        }
    }

    /// Registers again under a new id. The old id's leases died with the
    /// coordinator's memory of it, so the tasks running under them stop.
    async fn reregister(&self) {
        tracing::warn!("the coordinator does not know this worker; registering again");
        self.board.stop_all(StopReason::Lost);
        match self.register().await {
            Ok(registered) => {
                tracing::info!(worker = %registered.worker_id, "registered again");
            }
            Err(err) => {
                tracing::warn!(error = %err, "registering again failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Completes `done` and leases up to `free` tasks that fit `kind`, in
    /// one call: a long poll of up to `wait` when there is nothing to
    /// complete, otherwise at once. A call whose answer is lost to a
    /// coordinator that went away is made again, with the same number, until
    /// one answers: the coordinator may have committed the first try, and the
    /// second gets its leases back. A call refused for good sends the
    /// completions on their own and leases nothing, waiting a moment first
    /// when there was nothing to complete, so the caller simply asks again. A
    /// coordinator that no longer knows this worker gets it registered again
    /// first.
    pub async fn lease(
        &self,
        done: &[Completion],
        free: u32,
        wait: Duration,
        kind: DeviceKind,
    ) -> (Result<Outcomes, WireError>, Vec<Leased>) {
        let mut call = LeaseCall {
            worker: self.worker_id(),
            number: self.calls.fetch_add(1, Ordering::Relaxed) + 1,
            again: false,
        };
        let kinds = [kind];
        let mut answer = self.client.lease(call, done, free, wait, &kinds).await;
        if let Err(err) = &answer
            && err.kind.is_transient()
        {
            tracing::warn!(error = %err, completions = done.len(), "lease failed; asking again");
            call.again = true;
            answer = retry(|| self.client.lease(call, done, free, wait, &kinds)).await;
        }
        let err = match answer {
            Ok((outcomes, leases)) => return (Ok(outcomes), leases),
            Err(err) => err,
        };
        if err.kind == ErrorKind::NotFound {
            self.reregister().await;
        } else {
            tracing::warn!(error = %err, completions = done.len(), "lease refused; retrying");
            if done.is_empty() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        (self.complete(done).await, Vec::new())
    }

    /// Completes `done` in a lease call that asks for no task, retrying
    /// while the coordinator is away.
    pub async fn complete(&self, done: &[Completion]) -> Result<Outcomes, WireError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let call = || async {
            let (outcomes, _) = self
                .client
                .lease(self.worker_id().into(), done, 0, Duration::ZERO, &[])
                .await?;
            Ok(outcomes)
        };
        retry(call).await
    }

    /// Extends the leases of running tasks every interval and acts on the
    /// answers: a cancelled task stops and is released, a lost one stops.
    pub async fn heartbeat(self, interval: Duration) {
        let interval = interval.max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(interval).await;
            let leases = self.board.leases();
            match self.client.heartbeat(self.worker_id(), &leases).await {
                Ok(statuses) => {
                    for status in statuses {
                        let reason = match status.verdict {
                            Verdict::Cancel => StopReason::Cancelled,
                            Verdict::Lost => StopReason::Lost,
                            Verdict::Keep => continue,
                        };
                        tracing::info!(task = %status.task_id, ?reason, "stopping a task");
                        self.board.stop(status.task_id, reason);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "heartbeat failed"),
            }
        }
    }
}
