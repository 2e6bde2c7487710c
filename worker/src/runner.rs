//! The worker's life: register, long-poll for as many tasks as it has free
//! slots, run each on its own share of the CPU threads, heartbeat the leases,
//! and end each task with Complete, Fail or Release. On shutdown it stops its
//! tasks and hands them back before returning.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sweep_proto::params::{ExperimentKind, TaskParams, artifacts};
use sweep_proto::v1;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::{self, Client, retry};
use crate::device::DeviceChoice;
use crate::error::panic_message;
use crate::experiments::{self, Context, TaskError};
use crate::model;
use crate::report::{self, ChannelSink, Shipped};

#[derive(Clone, Debug)]
pub struct Config {
    /// `http://HOST:PORT` of the coordinator.
    pub coordinator: String,
    pub token: Option<String>,
    pub name: String,
    /// Tasks run at once.
    pub slots: usize,
    pub device: DeviceChoice,
    /// CPU threads shared out among the slots (none: every core). Several
    /// workers on one machine each take their part.
    pub threads: Option<usize>,
    pub data_dir: Option<PathBuf>,
    /// How long one lease call waits for work.
    pub lease_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    Config(String),
    #[error("cannot register with the coordinator: {0}")]
    Register(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum StopReason {
    Cancelled,
    Lost,
    Shutdown,
}

/// A running task as the heartbeat sees it.
struct Running {
    token: String,
    stop: Arc<AtomicBool>,
    reason: Option<StopReason>,
}

#[derive(Clone, Default)]
struct Board(Arc<Mutex<HashMap<u64, Running>>>);

impl Board {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<u64, Running>) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn stop(&self, task: u64, reason: StopReason) {
        self.with(|tasks| {
            if let Some(running) = tasks.get_mut(&task) {
                running.reason.get_or_insert(reason);
                running.stop.store(true, Ordering::Relaxed);
            }
        });
    }

    fn stop_all(&self, reason: StopReason) {
        let ids: Vec<u64> = self.with(|tasks| tasks.keys().copied().collect());
        ids.into_iter().for_each(|id| self.stop(id, reason));
    }
}

/// Everything a task needs from the worker.
#[derive(Clone)]
struct Shared {
    client: Client,
    config: Config,
    board: Board,
    /// The id the coordinator knows this worker by; a coordinator that has
    /// forgotten it (a new database) gets a fresh registration.
    worker_id: Arc<AtomicU64>,
    device: burn::tensor::Device,
    /// One rayon pool per slot: a task computes on its own share of the cores.
    pools: Arc<Mutex<Vec<Arc<rayon::ThreadPool>>>>,
}

/// Runs the worker until `shutdown` completes and its tasks are handed back.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), WorkerError> {
    let device = config.device.open().map_err(WorkerError::Config)?;
    let client = client::connect(&config.coordinator, config.token.as_deref())
        .map_err(WorkerError::Config)?;
    let slots = config.slots.max(1);
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pools = (0..slots)
        .map(|_| {
            rayon::ThreadPoolBuilder::new()
                .num_threads((threads / slots).max(1))
                .build()
                .map(Arc::new)
                .map_err(|err| WorkerError::Config(format!("cannot start compute threads: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let shared = Shared {
        client,
        config,
        board: Board::default(),
        worker_id: Arc::default(),
        device,
        pools: Arc::new(Mutex::new(pools)),
    };
    tokio::pin!(shutdown);
    let registered = tokio::select! {
        registered = register(&shared) => registered?,
        _ = &mut shutdown => return Ok(()),
    };
    shared
        .worker_id
        .store(registered.worker_id, Ordering::Relaxed);
    tracing::info!(worker = registered.worker_id, slots, device = %shared.config.device, "registered");
    let heartbeat = tokio::spawn(heartbeat(shared.clone(), registered.heartbeat_interval_ms));
    serve(&shared, slots, shutdown).await;
    heartbeat.abort();
    tracing::info!("worker stopped");
    Ok(())
}

async fn register(shared: &Shared) -> Result<v1::RegisterResponse, WorkerError> {
    let choice = shared.config.device;
    let description = choice.describe();
    let request = v1::RegisterRequest {
        name: shared.config.name.clone(),
        host: hostname(),
        backend: choice.backend().to_string(),
        devices: vec![v1::Device {
            kind: choice.kind().to_string(),
            name: description.name,
            memory_bytes: description.memory_bytes,
        }],
        slots: shared.config.slots.max(1) as u32,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    retry(|| {
        let mut client = shared.client.clone();
        let request = request.clone();
        async move { client.register(request).await }
    })
    .await
    .map(|response| response.into_inner())
    .map_err(|status| WorkerError::Register(status.message().to_string()))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Leases and runs tasks until shutdown, then waits for the running ones.
async fn serve(shared: &Shared, slots: usize, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut running: JoinSet<()> = JoinSet::new();
    let mut leasing: Option<tokio::task::JoinHandle<Vec<v1::TaskLease>>> = None;
    let mut stopping = false;
    loop {
        let free = slots.saturating_sub(running.len());
        if leasing.is_none() && free > 0 && !stopping {
            leasing = Some(tokio::spawn(lease(shared.clone(), free as u32)));
        }
        if stopping && leasing.is_none() && running.is_empty() {
            return;
        }
        tokio::select! {
            leases = async { leasing.as_mut().expect("guarded").await }, if leasing.is_some() => {
                leasing = None;
                for lease in leases.unwrap_or_default() {
                    if stopping {
                        end(shared, &lease_ref(&lease), Ending::Release("worker shutting down")).await;
                    } else {
                        running.spawn(run_task(shared.clone(), lease));
                    }
                }
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = &mut shutdown, if !stopping => {
                tracing::info!(running = running.len(), "shutting down: handing tasks back");
                stopping = true;
                shared.board.stop_all(StopReason::Shutdown);
            }
        }
    }
}

/// One long poll. An error (the coordinator away) waits a moment and
/// answers no task, so the loop simply asks again; a coordinator that no
/// longer knows this worker gets it registered again first.
async fn lease(shared: Shared, free: u32) -> Vec<v1::TaskLease> {
    let request = v1::LeaseRequest {
        worker_id: shared.worker_id.load(Ordering::Relaxed),
        free_slots: free,
        wait_ms: shared.config.lease_wait.as_millis() as u64,
        device_kinds: vec![shared.config.device.kind().to_string()],
    };
    let mut client = shared.client.clone();
    match client.lease(request).await {
        Ok(response) => response.into_inner().leases,
        Err(status) if status.code() == tonic::Code::NotFound => {
            reregister(&shared).await;
            Vec::new()
        }
        Err(status) => {
            tracing::warn!(error = %status.message(), "lease failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Vec::new()
        }
    }
}

/// Registers again under a new id. The old id's leases died with the
/// coordinator's memory of it, so the tasks running under them stop.
async fn reregister(shared: &Shared) {
    tracing::warn!("the coordinator does not know this worker; registering again");
    shared.board.stop_all(StopReason::Lost);
    match register(shared).await {
        Ok(registered) => {
            shared
                .worker_id
                .store(registered.worker_id, Ordering::Relaxed);
            tracing::info!(worker = registered.worker_id, "registered again");
        }
        Err(err) => {
            tracing::warn!(error = %err, "registering again failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Extends the leases of running tasks every interval and acts on the
/// answers: a cancelled task stops and is released, a lost one stops.
async fn heartbeat(shared: Shared, interval_ms: u64) {
    let interval = Duration::from_millis(interval_ms.max(100));
    loop {
        tokio::time::sleep(interval).await;
        let leases: Vec<v1::LeaseRef> = shared.board.with(|tasks| {
            tasks
                .iter()
                .map(|(id, running)| v1::LeaseRef {
                    task_id: *id,
                    lease_token: running.token.clone(),
                })
                .collect()
        });
        let request = v1::HeartbeatRequest {
            worker_id: shared.worker_id.load(Ordering::Relaxed),
            leases,
        };
        let mut client = shared.client.clone();
        match client.heartbeat(request).await {
            Ok(response) => {
                for status in response.into_inner().leases {
                    let reason = match v1::LeaseVerdict::try_from(status.verdict) {
                        Ok(v1::LeaseVerdict::Cancel) => StopReason::Cancelled,
                        Ok(v1::LeaseVerdict::Lost) => StopReason::Lost,
                        _ => continue,
                    };
                    tracing::info!(task = status.task_id, ?reason, "stopping a task");
                    shared.board.stop(status.task_id, reason);
                }
            }
            Err(status) => tracing::warn!(error = %status.message(), "heartbeat failed"),
        }
    }
}

fn lease_ref(lease: &v1::TaskLease) -> v1::LeaseRef {
    v1::LeaseRef {
        task_id: lease.task_id,
        lease_token: lease.lease_token.clone(),
    }
}

/// Trains one leased task and reports how it ended.
async fn run_task(shared: Shared, lease: v1::TaskLease) {
    let reference = lease_ref(&lease);
    let task = lease.task_id;
    if ExperimentKind::parse(&lease.kind).is_none() {
        let error = format!(
            "task kind {:?} is not one this worker runs (fit, hessian, classify, interpolate)",
            lease.kind
        );
        end(&shared, &reference, Ending::Fail(error, false)).await;
        return;
    }
    let params: TaskParams = match serde_json::from_str(&lease.params_json) {
        Ok(params) => params,
        Err(err) => {
            let error = format!("unreadable task parameters: {err}");
            end(&shared, &reference, Ending::Fail(error, false)).await;
            return;
        }
    };
    tracing::info!(task, attempt = lease.attempt, kind = %lease.kind, model = %params.model_name, "task started");
    let stop = Arc::new(AtomicBool::new(false));
    shared.board.with(|tasks| {
        tasks.insert(
            task,
            Running {
                token: lease.lease_token.clone(),
                stop: stop.clone(),
                reason: None,
            },
        )
    });
    let dependencies = match dependency_weights(&shared, &lease).await {
        Ok(weights) => weights,
        Err(error) => {
            shared.board.with(|tasks| tasks.remove(&task));
            end(&shared, &reference, Ending::Fail(error, false)).await;
            return;
        }
    };
    let (events, receiver) = mpsc::unbounded_channel();
    let shipper = tokio::spawn(report::ship(
        shared.client.clone(),
        reference.clone(),
        receiver,
        stop.clone(),
    ));
    let outcome = train(&shared, params, dependencies, ChannelSink(events), stop).await;
    let shipped = shipper.await.unwrap_or(Shipped::LeaseLost);
    let reason = shared
        .board
        .with(|tasks| tasks.remove(&task).and_then(|r| r.reason));
    let ending = match (outcome, shipped, reason) {
        (_, Shipped::LeaseLost, _) | (_, _, Some(StopReason::Lost)) => {
            tracing::warn!(task, "lease lost; the task's results are dropped");
            return;
        }
        (_, Shipped::Refused(message), _) => Ending::Fail(message, false),
        (Err(TaskError::Stopped), _, Some(StopReason::Cancelled)) => {
            Ending::Release("sweep cancelled")
        }
        (Err(TaskError::Stopped), _, _) => Ending::Release("worker shutting down"),
        (Ok(summary), Shipped::All, _) => Ending::Complete(summary),
        (Err(err), Shipped::All, _) => Ending::Fail(err.to_string(), err.retryable()),
    };
    end(&shared, &reference, ending).await;
}

/// The final weights of the task's dependencies (interpolation needs them).
async fn dependency_weights(
    shared: &Shared,
    lease: &v1::TaskLease,
) -> Result<Vec<Vec<f32>>, String> {
    let mut weights = Vec::with_capacity(lease.depends_on.len());
    for &dependency in &lease.depends_on {
        let bytes = client::download(&shared.client, dependency, artifacts::FINAL_WEIGHTS)
            .await
            .map_err(|status| {
                format!(
                    "cannot fetch the weights of task {dependency}: {}",
                    status.message()
                )
            })?;
        let flat = model::from_bytes(&bytes)
            .ok_or_else(|| format!("the weights of task {dependency} are not whole f32 values"))?;
        weights.push(flat);
    }
    Ok(weights)
}

/// Runs the experiment on a slot's threads, turning a panic into an error.
async fn train(
    shared: &Shared,
    params: TaskParams,
    dependencies: Vec<Vec<f32>>,
    sink: ChannelSink,
    stop: Arc<AtomicBool>,
) -> Result<serde_json::Value, TaskError> {
    let pool = shared
        .pools
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .pop()
        .expect("never more tasks than slots");
    let (device, data_dir) = (shared.device.clone(), shared.config.data_dir.clone());
    let slot = pool.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        slot.install(|| {
            crate::device::limit_threads(rayon::current_num_threads());
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let ctx = Context {
                    device,
                    data_dir,
                    sink: &sink,
                    dependencies,
                    stop: &stop,
                };
                experiments::run(&params, &ctx)
            }))
        })
    })
    .await;
    shared
        .pools
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(pool);
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(TaskError::Panicked(panic_message(panic.as_ref()))),
        Err(join) => Err(TaskError::Panicked(join.to_string())),
    }
}

enum Ending {
    Complete(serde_json::Value),
    Fail(String, bool),
    Release(&'static str),
}

/// Makes one call with `request`, retrying while the coordinator is away.
async fn call<Req, Res, F, Fut>(
    shared: &Shared,
    request: Req,
    method: F,
) -> Result<(), tonic::Status>
where
    Req: Clone,
    F: Fn(Client, Req) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Res>, tonic::Status>>,
{
    retry(|| method(shared.client.clone(), request.clone()))
        .await
        .map(|_| ())
}

/// Tells the coordinator how the task ended.
async fn end(shared: &Shared, lease: &v1::LeaseRef, ending: Ending) {
    let task = lease.task_id;
    let lease_ref = Some(lease.clone());
    let result = match &ending {
        Ending::Complete(summary) => {
            let request = v1::CompleteRequest {
                lease: lease_ref,
                summary_json: summary.to_string(),
            };
            call(
                shared,
                request,
                |mut c, r| async move { c.complete(r).await },
            )
            .await
        }
        Ending::Fail(error, retryable) => {
            let request = v1::FailRequest {
                lease: lease_ref,
                error: error.clone(),
                retryable: *retryable,
            };
            call(shared, request, |mut c, r| async move { c.fail(r).await }).await
        }
        Ending::Release(reason) => {
            let request = v1::ReleaseRequest {
                lease: lease_ref,
                reason: reason.to_string(),
            };
            call(
                shared,
                request,
                |mut c, r| async move { c.release(r).await },
            )
            .await
        }
    };
    match (result, &ending) {
        (Ok(()), Ending::Complete(_)) => tracing::info!(task, "task succeeded"),
        (Ok(()), Ending::Fail(error, retryable)) => {
            tracing::warn!(task, %error, retryable, "task failed")
        }
        (Ok(()), Ending::Release(reason)) => tracing::info!(task, reason, "task handed back"),
        (Err(status), _) => {
            tracing::warn!(task, error = %status.message(), "the coordinator refused the task's end")
        }
    }
}
