//! One leased task from start to end: fetch what it depends on, train it on
//! a free slot while its metrics ship in the background, then tell the
//! coordinator how it ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sweep_proto::client::retry;
use sweep_proto::{Completion, Lease, LeaseRef, MetricPoint};
use sweep_spec::{Summary, TaskParams, weights};
use tokio::sync::mpsc;

use crate::claim::{self, Claimed};
use crate::completer::Completer;
use crate::error::panic_message;
use crate::experiments::{self, Context, TaskError};
use crate::keeper::Keeper;
use crate::memory;
use crate::session::{Session, StopReason};
use crate::shipper::{self, ChannelSink, Shipped};
use crate::slots::{Slot, Slots};
use crate::threads::Threads;

/// What a task runs with from its worker.
#[derive(Clone)]
pub struct Env {
    pub session: Session,
    /// Sends completions on lease calls (see [`crate::completer`]).
    pub completer: Completer,
    pub slots: Slots,
    pub threads: Threads,
    pub device: burn::tensor::Device,
    pub data_dir: Option<PathBuf>,
    /// The device memory the worker's tasks share; none when unknown.
    pub memory: Option<memory::Pool>,
    /// Training between two checkpoints; none: only when shutting down.
    pub checkpoint_every: Option<Duration>,
}

/// How an attempt ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// Success, with the summary reports aggregate and the metric points not
    /// sent yet (stored with the completion, in one transaction).
    Complete {
        summary: Summary,
        points: Vec<MetricPoint>,
    },
    /// An error; a retryable one queues the task again while attempts remain.
    /// The points not sent yet are stored first.
    Fail {
        error: String,
        retryable: bool,
        points: Vec<MetricPoint>,
    },
    /// Handed back unfinished (shutdown, cancel): the attempt does not count.
    Release { reason: String },
}

/// Trains one leased task on its `slot` and reports how it ended.
pub async fn run(env: Env, lease: Lease, slot: Slot) {
    let reference = lease.to_ref();
    let task = lease.task_id;
    tracing::info!(%task, attempt = lease.attempt, kind = %lease.params.kind(), model = %lease.params.model_name, "task started");
    let stop = Arc::new(AtomicBool::new(false));
    env.session.board.start(&reference, stop.clone());
    if lease.cacheable {
        let claimed =
            claim::claim(&env.session.client, env.data_dir.as_deref(), &lease, &stop).await;
        if !matches!(claimed, Ok(Claimed::Train)) {
            let reason = env.session.board.finish(task);
            if let Err(err) = claimed
                && let Some(ending) = ending(Err(err), Shipped::All(Vec::new()), reason)
            {
                end(&env, &reference, ending, slot).await;
            }
            return;
        }
    }
    let memory = match reserve(&env, &lease.params, &stop).await {
        Ok(reservation) => reservation,
        Err(err) => {
            let reason = env.session.board.finish(task);
            if let Some(ending) = ending(Err(err), Shipped::All(Vec::new()), reason) {
                end(&env, &reference, ending, slot).await;
            }
            return;
        }
    };
    let dependencies = match dependency_weights(&env, &lease).await {
        Ok(weights) => weights,
        Err(error) => {
            env.session.board.finish(task);
            let ending = Ending::Fail {
                error,
                retryable: false,
                points: Vec::new(),
            };
            return end(&env, &reference, ending, slot).await;
        }
    };
    let latest = match lease.checkpoint_step {
        Some(step) => latest_checkpoint(&env, &reference, step).await,
        None => None,
    };
    let (events, receiver) = mpsc::unbounded_channel();
    let shipper = tokio::spawn(shipper::ship(
        env.session.client.clone(),
        reference.clone(),
        receiver,
        stop.clone(),
    ));
    let keeper = Keeper::new(
        ChannelSink::new(events),
        latest,
        checkpoint_every(&lease.params, env.checkpoint_every),
        env.session.board.clone(),
        task,
        memory::needed(&lease.params),
    );
    let outcome = train(&env, lease.params, dependencies, keeper, stop).await;
    // The next task may start while this one's completion is on its way.
    drop(memory);
    let shipped = shipper.await.unwrap_or(Shipped::LeaseLost);
    let reason = env.session.board.finish(task);
    match ending(outcome, shipped, reason) {
        Some(ending) => end(&env, &reference, ending, slot).await,
        None => tracing::warn!(%task, "lease lost; the task's results are dropped"),
    }
}

/// How a task ended, from what training, shipping and the heartbeat said;
/// none when the lease is lost and there is nobody to tell.
fn ending(
    outcome: Result<Summary, TaskError>,
    shipped: Shipped,
    reason: Option<StopReason>,
) -> Option<Ending> {
    let release = |reason: &str| Ending::Release {
        reason: reason.to_string(),
    };
    Some(match (outcome, shipped, reason) {
        (_, Shipped::LeaseLost, _) | (_, _, Some(StopReason::Lost)) => return None,
        (_, Shipped::Refused(error), _) => Ending::Fail {
            error,
            retryable: false,
            points: Vec::new(),
        },
        (Err(TaskError::Stopped), _, Some(StopReason::Cancelled))
        | (_, Shipped::Stopped, Some(StopReason::Cancelled)) => release("sweep cancelled"),
        (Err(TaskError::Stopped), _, _) | (_, Shipped::Stopped, _) => {
            release("worker shutting down")
        }
        (Ok(summary), Shipped::All(points), _) => Ending::Complete { summary, points },
        (Err(err), Shipped::All(points), _) => Ending::Fail {
            error: err.to_string(),
            retryable: err.retryable(),
            points,
        },
    })
}

/// The task's share of the device memory, once it is free.
async fn reserve(
    env: &Env,
    params: &TaskParams,
    stop: &AtomicBool,
) -> Result<Option<memory::Reservation>, TaskError> {
    match &env.memory {
        Some(pool) => pool.reserve(params, stop).await.map(Some),
        None => Ok(None),
    }
}

/// The final weights of the task's dependencies (interpolation needs them).
async fn dependency_weights(env: &Env, lease: &Lease) -> Result<Vec<Vec<f32>>, String> {
    let client = &env.session.client;
    let mut all = Vec::with_capacity(lease.depends_on.len());
    for &dependency in &lease.depends_on {
        let bytes = retry(|| client.artifact(dependency, weights::FINAL))
            .await
            .map_err(|err| format!("cannot fetch the weights of task {dependency}: {err}"))?;
        let flat = weights::from_bytes(&bytes)
            .ok_or_else(|| format!("the weights of task {dependency} are not whole f32 values"))?;
        all.push(flat);
    }
    Ok(all)
}

/// Training between two checkpoints: the spec's, else the worker's; none
/// for zero (only when the worker is told to stop).
fn checkpoint_every(params: &TaskParams, worker: Option<Duration>) -> Option<Duration> {
    match params.checkpoint_every_ms {
        Some(ms) => Some(Duration::from_millis(ms)).filter(|every| !every.is_zero()),
        None => worker,
    }
}

/// The checkpoint an earlier attempt left, taken at `step`; none (the task
/// starts from the beginning) when it cannot be fetched.
async fn latest_checkpoint(env: &Env, lease: &LeaseRef, step: u64) -> Option<Vec<u8>> {
    let client = &env.session.client;
    match retry(|| client.checkpoint(lease)).await {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            tracing::warn!(task = %lease.task_id, step, error = %err, "cannot fetch the task's checkpoint; training from the start");
            None
        }
    }
}

/// Runs the experiment on the worker's threads, turning a panic into an error.
async fn train(
    env: &Env,
    params: TaskParams,
    dependencies: Vec<Vec<f32>>,
    keeper: Keeper,
    stop: Arc<AtomicBool>,
) -> Result<Summary, TaskError> {
    let (device, data_dir) = (env.device.clone(), env.data_dir.clone());
    let outcome = env
        .threads
        .run(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let ctx = Context {
                    device,
                    data_dir,
                    sink: &keeper.sink,
                    dependencies,
                    stop: &stop,
                    checkpoints: &keeper,
                };
                experiments::run(&params, &ctx)
            }))
        })
        .await;
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(TaskError::Panicked(panic_message(panic.as_ref()))),
        Err(join) => Err(TaskError::Panicked(join.to_string())),
    }
}

/// Tells the coordinator how the task ended, retrying while it is away.
/// The task's `slot` is given back as soon as the ending is handed over
/// (for a completion: once it waits in the outbox, so that the lease that
/// asks for the slot's next task can carry it).
pub async fn end(env: &Env, lease: &LeaseRef, ending: Ending, slot: Slot) {
    let task = lease.task_id;
    let client = &env.session.client;
    let told = match ending {
        Ending::Complete { summary, points } => {
            let lease = lease.clone();
            let completion = Completion {
                lease,
                summary,
                points,
            };
            let told = env.completer.complete(completion, slot).await;
            told.map(|()| tracing::info!(%task, "task succeeded"))
        }
        Ending::Fail {
            error,
            retryable,
            points,
        } => {
            drop(slot);
            let told = retry(|| client.fail(lease, &error, retryable, &points)).await;
            told.map(|()| tracing::warn!(%task, %error, retryable, "task failed"))
        }
        Ending::Release { reason } => {
            drop(slot);
            let told = retry(|| client.release(lease, &reason)).await;
            told.map(|()| tracing::info!(%task, %reason, "task handed back"))
        }
    };
    if let Err(err) = told {
        tracing::warn!(%task, error = %err, "the coordinator refused the task's end");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_ends_by_what_happened_to_it() {
        let done = || Ok(Summary::new());
        let point = MetricPoint {
            name: "test_acc".into(),
            step: 1,
            epoch: Some(1),
            value: 0.5,
        };
        let tail = || Shipped::All(vec![point.clone()]);
        assert_eq!(
            ending(done(), tail(), None),
            Some(Ending::Complete {
                summary: Summary::new(),
                points: vec![point.clone()],
            }),
            "the points held back go with the completion"
        );
        assert_eq!(ending(done(), Shipped::LeaseLost, None), None);
        assert_eq!(ending(done(), tail(), Some(StopReason::Lost)), None);
        let refused = ending(done(), Shipped::Refused("too big".into()), None);
        assert_eq!(
            refused,
            Some(Ending::Fail {
                error: "too big".into(),
                retryable: false,
                points: Vec::new(),
            })
        );
        let cancelled = ending(Err(TaskError::Stopped), tail(), Some(StopReason::Cancelled));
        assert!(
            matches!(cancelled, Some(Ending::Release { reason }) if reason == "sweep cancelled")
        );
        let unshipped = ending(done(), Shipped::Stopped, Some(StopReason::Shutdown));
        assert!(
            matches!(unshipped, Some(Ending::Release { .. })),
            "a task whose metrics were not all stored is handed back, not completed"
        );
        let diverged = ending(
            Err(TaskError::Diverged {
                step: 3,
                loss: f64::NAN,
            }),
            tail(),
            None,
        );
        assert!(
            matches!(
                &diverged,
                Some(Ending::Fail {
                    retryable: false,
                    points,
                    ..
                }) if points == std::slice::from_ref(&point)
            ),
            "a failed attempt keeps its last points too: {diverged:?}"
        );
    }
}
