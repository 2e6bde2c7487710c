//! The worker's life: register, long-poll for as many tasks as it has free
//! slots, run each ([`crate::task`]) while the heartbeat keeps their leases
//! ([`crate::session`]), and on shutdown stop the tasks and hand them back
//! before returning. The completions of finished tasks ride on the lease
//! that asks for their slots' next tasks ([`crate::completer`]).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use sweep_proto::client::{Credentials, WorkerClient};
use sweep_proto::{Device, Leased, Outcomes, Registration, WireError};
use tokio::task::{JoinHandle, JoinSet};

use crate::completer::{Answer, Completer, Outbox, answer, lost};
use crate::device::{DeviceChoice, DeviceError};
use crate::experiments::RESULT_VERSION;
use crate::memory;
use crate::session::{Session, StopReason};
use crate::slots::Slots;
use crate::task::{self, Ending, Env};
use crate::threads::Threads;

/// The default training between two checkpoints: on the order of minutes,
/// so that a checkpoint costs well under 1% of a long task's time.
pub const CHECKPOINT_EVERY: &str = "10m";

#[derive(Clone, Debug)]
pub struct Config {
    /// `http://HOST:PORT` of the coordinator, or of each of its replicas.
    pub coordinators: Vec<String>,
    pub token: Option<String>,
    /// The CA that signed an `https://` coordinator's certificate (PEM;
    /// none: the system's roots).
    pub ca: Option<Vec<u8>>,
    pub name: String,
    /// Tasks run at once.
    pub slots: usize,
    pub device: DeviceChoice,
    /// CPU threads that the slots' tasks share (none: every core); a task
    /// that runs alone gets them all. Workers in one process share the
    /// first one's (see [`crate::threads`]).
    pub threads: Option<usize>,
    pub data_dir: Option<PathBuf>,
    /// How long one lease call waits for work.
    pub lease_wait: Duration,
    /// The memory the worker's tasks may use together, in bytes (none: the
    /// device's); a task reserves its estimate before it starts.
    pub max_memory: Option<u64>,
    /// Training between two checkpoints of a task; zero: only when the
    /// worker shuts down.
    pub checkpoint_every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("cannot register with the coordinator: {0}")]
    Register(String),
}

/// How a worker stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Tasks still running when it was told to stop, handed back (with a
    /// checkpoint each) for another attempt.
    pub handed_back: usize,
}

/// Runs the worker until `shutdown` completes and its tasks are handed back.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<Stopped, WorkerError> {
    let device = config.device.open()?;
    let credentials = Credentials {
        token: config.token.clone(),
        ca: config.ca.clone(),
    };
    let client = WorkerClient::new(&config.coordinators, &credentials)
        .map_err(|err| WorkerError::Config(err.message))?;
    let slots = config.slots.max(1);
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let memory = config
        .max_memory
        .unwrap_or_else(|| config.device.describe().memory_bytes);
    let (completer, outbox) = Completer::new();
    let env = Env {
        session: Session::new(client, registration(&config)),
        completer,
        slots: Slots::new(slots),
        threads: Threads::new(slots, threads),
        device,
        data_dir: config.data_dir.clone(),
        // Unknown (0) refuses nothing.
        memory: (memory > 0).then(|| memory::Pool::new(memory)),
        checkpoint_every: Some(config.checkpoint_every).filter(|every| !every.is_zero()),
    };
    tokio::pin!(shutdown);
    let registered = tokio::select! {
        registered = env.session.register() => {
            registered.map_err(|err| WorkerError::Register(err.message))?
        }
        _ = &mut shutdown => return Ok(Stopped::default()),
    };
    tracing::info!(worker = %registered.worker_id, slots, device = %config.device, "registered");
    let heartbeat = tokio::spawn(env.session.clone().heartbeat(registered.heartbeat_interval));
    let stopped = serve(&env, &config, outbox, shutdown).await;
    heartbeat.abort();
    env.session.leave().await;
    tracing::info!(handed_back = stopped.handed_back, "worker stopped");
    Ok(stopped)
}

/// What the worker tells the coordinator about itself.
fn registration(config: &Config) -> Registration {
    let choice = config.device;
    let description = choice.describe();
    Registration {
        name: config.name.clone(),
        host: hostname(),
        backend: choice.backend(),
        devices: vec![Device {
            kind: choice.kind(),
            name: description.name,
            memory_bytes: description.memory_bytes,
        }],
        slots: config.slots.max(1) as u32,
        version: env!("CARGO_PKG_VERSION").to_string(),
        result_version: RESULT_VERSION,
    }
}

/// This machine's name (a container's id in a container).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A lease call on its way, and the answers that its completions await.
type Leasing = (
    JoinHandle<(Result<Outcomes, WireError>, Vec<Leased>)>,
    Vec<Answer>,
);

/// Leases and runs tasks until shutdown, then waits for the running ones.
/// Completions ride on the next lease when one goes out for their slots.
async fn serve(
    env: &Env,
    config: &Config,
    mut outbox: Outbox,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    tokio::pin!(shutdown);
    let mut running: JoinSet<()> = JoinSet::new();
    let mut leasing: Option<Leasing> = None;
    let mut stopping = false;
    let mut stopped = Stopped::default();
    let kind = config.device.kind();
    loop {
        let free = env.slots.free() as u32;
        if leasing.is_none() && free > 0 && !stopping {
            let (done, answers) = outbox.take();
            let (session, wait) = (env.session.clone(), config.lease_wait);
            let call = tokio::spawn(async move { session.lease(&done, free, wait, kind).await });
            leasing = Some((call, answers));
        }
        outbox.send_waiting(&env.session);
        if stopping && leasing.is_none() && running.is_empty() {
            return stopped;
        }
        tokio::select! {
            told = async { (&mut leasing.as_mut().expect("guarded").0).await }, if leasing.is_some() => {
                let (_, answers) = leasing.take().expect("guarded");
                let (outcomes, leases) = told.unwrap_or_else(|join| (Err(lost(join)), Vec::new()));
                answer(answers, outcomes);
                for leased in leases {
                    start(env, &mut running, leased, stopping).await;
                }
            }
            () = outbox.next() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = &mut shutdown, if !stopping => {
                tracing::info!(running = running.len(), "shutting down: handing tasks back");
                stopping = true;
                stopped.handed_back = running.len();
                env.session.board.stop_all(StopReason::Shutdown);
                // A long poll would keep the worker up to its whole wait. Cut
                // off, its claim rolls back, or in the instant between its
                // commit and its answer leaves tasks that come back when
                // their leases expire.
                if let Some((call, answers)) = &leasing
                    && answers.is_empty()
                {
                    call.abort();
                    leasing = None;
                }
            }
        }
    }
}

/// Starts a leased task, or ends at once one that cannot run: unreadable,
/// or leased while the worker is stopping.
async fn start(env: &Env, running: &mut JoinSet<()>, leased: Leased, stopping: bool) {
    match leased {
        Leased::Unreadable { lease, error } => {
            let ending = Ending::Fail {
                error,
                retryable: false,
                points: Vec::new(),
            };
            task::end(env, &lease, ending, env.slots.take()).await;
        }
        Leased::Task(lease) if stopping => {
            let ending = Ending::Release {
                reason: "worker shutting down".into(),
            };
            task::end(env, &lease.to_ref(), ending, env.slots.take()).await;
        }
        Leased::Task(lease) => {
            running.spawn(task::run(env.clone(), *lease, env.slots.take()));
        }
    }
}
