//! One module per experiment kind. Each trains from a task's parameters,
//! reports metrics and artifacts through a [`Sink`] and returns the task's
//! summary (the numbers reports aggregate).
//!
//! - [`fit`]: regression on y = 2·x·cos(x) + 2 (1.1), with gradient norms (2.2).
//! - [`classify`]: MNIST-format classification (1.2, 1.3, 2.1, 3.1, 3.2, 3.4).
//! - [`hessian`]: the Hessian's spectrum at the flattest point of 2.2's
//!   schedule (2.3).
//! - [`interpolate`]: loss and accuracy along θ(α) = (1-α)·θ₁ + α·θ₂ (3.3).
//! - `flat_optimizer`: Adam and SGD over a flat f64 vector, for what trains
//!   without burn.

pub mod classify;
pub mod fit;
mod flat_optimizer;
pub mod hessian;
pub mod interpolate;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device};
use sweep_proto::CHECKPOINT;
use sweep_spec::params::Optimizer;
use sweep_spec::{Experiment, Summary, TaskParams};

use crate::checkpoint::{Checkpoint, CheckpointError, Position, fingerprint};
use crate::error::DataError;
use crate::model::{Net, initial_weights};

/// The version of the numbers these experiments compute, part of every
/// result key a worker completes (see `sweep_spec::result_key`). Bump it
/// in the same change as anything that makes a task with the same
/// parameters end with different numbers (a model's initialisation, an
/// optimizer's arithmetic, a kernel's order of summation, a data order, a
/// metric's definition): results of the old version are then never reused.
/// Changes that keep every number, bit for bit, keep it;
/// `worker/tests/result_version.rs` pins a few tasks' numbers to tell.
pub const RESULT_VERSION: u32 = 2;

/// Where a running task sends what it measures. Sending never blocks
/// training; the runner ships it to the coordinator.
pub trait Sink: Send + Sync {
    fn metric(&self, name: &str, step: i64, epoch: Option<i64>, value: f64);
    fn artifact(&self, name: &str, encoding: &str, data: Vec<u8>);
}

/// What a task runs with.
pub struct Context<'a> {
    /// The training device (the runner's choice, without autodiff).
    pub device: Device,
    pub data_dir: Option<PathBuf>,
    pub sink: &'a dyn Sink,
    /// The final weights of the task's dependencies, in order (flat, see
    /// [`crate::model`]).
    pub dependencies: Vec<Vec<f32>>,
    /// Set when the task must stop (cancelled, lease lost, shutdown).
    pub stop: &'a AtomicBool,
    /// Where its checkpoints come from and go.
    pub checkpoints: &'a dyn Checkpoints,
}

/// A task's checkpoints (see [`crate::checkpoint`]): the one it may resume
/// from, and where new ones go. Each method has the answer of a task that
/// keeps none.
pub trait Checkpoints: Send + Sync {
    /// The bytes of the newest checkpoint an earlier attempt left.
    fn latest(&self) -> Option<Vec<u8>> {
        None
    }

    /// Whether to save one at this step boundary.
    fn due(&self) -> bool {
        false
    }

    /// Keeps `checkpoint` as the task's newest.
    fn save(&self, _checkpoint: Checkpoint) {}

    /// The task loaded the checkpoint taken at `step` and goes on from it.
    fn resumed(&self, _step: u64) {}

    /// Says why the checkpoint found cannot be used; the task starts fresh.
    fn refused(&self, _why: &str) {}
}

/// A task that resumes from nothing and saves nothing.
pub struct Fresh;

impl Checkpoints for Fresh {}

/// Where a training loop starts: its model, its optimizer and its position.
pub(crate) struct Start {
    pub model: Net,
    pub optim: ModuleOptimizer,
    pub position: Position,
}

impl Context<'_> {
    fn check_stop(&self) -> Result<(), TaskError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(TaskError::Stopped)
        } else {
            Ok(())
        }
    }

    /// The newest checkpoint of an earlier attempt, read by `restore` into
    /// where training goes on, if there is one and it fits the task. One
    /// that does not fit is refused (said through [`Checkpoints::refused`]),
    /// never loaded: the task starts fresh.
    pub(crate) fn resume<T>(
        &self,
        params: &TaskParams,
        restore: impl FnOnce(Checkpoint) -> Result<T, CheckpointError>,
    ) -> Option<T> {
        let bytes = self.checkpoints.latest()?;
        let read = Checkpoint::from_bytes(&bytes, &fingerprint(params)).and_then(|checkpoint| {
            let step = checkpoint.position.step;
            restore(checkpoint).map(|state| (step, state))
        });
        match read {
            Ok((step, state)) => {
                self.checkpoints.resumed(step);
                Some(state)
            }
            Err(why) => {
                self.checkpoints.refused(&why.to_string());
                None
            }
        }
    }

    /// The model and optimizer a task trains on `device`, from the newest
    /// checkpoint if one fits ([`Context::resume`]), otherwise fresh.
    pub(crate) fn start(&self, params: &TaskParams, device: &Device) -> Start {
        self.resume(params, |mut checkpoint| {
            burn_start(params, &mut checkpoint, device)
        })
        .unwrap_or_else(|| fresh_start(params, device))
    }

    /// At a step boundary: saves the checkpoint `take` builds for the task,
    /// if one is due. Before the first step there is nothing worth keeping.
    pub(crate) fn checkpoint(
        &self,
        params: &TaskParams,
        position: Position,
        take: impl FnOnce() -> Result<Checkpoint, CheckpointError>,
    ) {
        if position.step == 0 || !self.checkpoints.due() {
            return;
        }
        if let Some(checkpoint) = stamped(params, position, take) {
            self.checkpoints.save(checkpoint);
        }
    }

    /// At the end of training: the final state (from `take`) as the task's
    /// `checkpoint` artifact, when the task asks to keep it.
    pub(crate) fn keep(
        &self,
        params: &TaskParams,
        position: Position,
        take: impl FnOnce() -> Result<Checkpoint, CheckpointError>,
    ) {
        if !params.keep_checkpoint {
            return;
        }
        if let Some(checkpoint) = stamped(params, position, take) {
            let bytes = checkpoint.to_bytes();
            self.sink.artifact(CHECKPOINT, CHECKPOINT, bytes);
        }
    }
}

/// The checkpoint `take` builds, as the task's at `position`.
fn stamped(
    params: &TaskParams,
    position: Position,
    take: impl FnOnce() -> Result<Checkpoint, CheckpointError>,
) -> Option<Checkpoint> {
    match take() {
        Ok(checkpoint) => Some(Checkpoint {
            task: fingerprint(params),
            position,
            ..checkpoint
        }),
        Err(err) => {
            tracing::warn!(error = %err, step = position.step, "could not write a checkpoint");
            None
        }
    }
}

/// A model and optimizer from a task's initial weights.
pub(crate) fn fresh_start(params: &TaskParams, device: &Device) -> Start {
    Start {
        model: Net::new(
            &params.model,
            &initial_weights(&params.model, params.init_seed),
            device,
        ),
        optim: optimizer(&params.optimizer),
        position: Position::default(),
    }
}

/// The model and optimizer a checkpoint holds (taking its optimizer bytes).
pub(crate) fn burn_start(
    params: &TaskParams,
    checkpoint: &mut Checkpoint,
    device: &Device,
) -> Result<Start, CheckpointError> {
    let weights = checkpoint.weights(params.model.param_count() as usize)?;
    let model = Net::new(&params.model, weights, device);
    let bytes = std::mem::take(&mut checkpoint.optimizer);
    let optim = optimizer(&params.optimizer)
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|err| CheckpointError::Optimizer(err.to_string()))?;
    Ok(Start {
        model,
        optim,
        position: checkpoint.position,
    })
}

/// A burn model and optimizer's part of a checkpoint.
pub(crate) fn burn_state(
    model: &Net,
    optim: &ModuleOptimizer,
) -> Result<Checkpoint, CheckpointError> {
    let optimizer =
        (optim.into_bytes()).map_err(|err| CheckpointError::Unwritable(err.to_string()))?;
    Ok(Checkpoint {
        weights: model.flat(),
        optimizer: optimizer.to_vec(),
        ..Checkpoint::default()
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("diverged at step {step}: the loss is {loss}")]
    Diverged { step: u64, loss: f64 },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("the task's parameters do not fit its kind: {0}")]
    InvalidParams(String),
    #[error("the task was stopped")]
    Stopped,
    #[error("training panicked: {0}")]
    Panicked(String),
    #[error(
        "the task needs about {:.1} GiB of memory, more than this worker allows its tasks \
         together ({:.1} GiB); run it on a larger device or raise --max-memory-gib",
        *needed as f64 / GIB, *budget as f64 / GIB
    )]
    TooLarge { needed: u64, budget: u64 },
}

const GIB: f64 = (1u64 << 30) as f64;

impl TaskError {
    /// Whether another attempt (on this or another worker) could succeed.
    /// A diverged run or a bad parameter fails the same way every time.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Data(DataError::Io { .. }) | Self::Panicked(_))
    }
}

/// Runs one task to its summary.
pub fn run(params: &TaskParams, ctx: &Context<'_>) -> Result<Summary, TaskError> {
    crate::subnormals::flush_to_zero();
    match &params.experiment {
        Experiment::Fit { fit } => fit::run(params, fit, ctx),
        Experiment::Hessian { fit, hessian } => hessian::run(params, fit, hessian, ctx),
        Experiment::Classify { dataset, classify } => classify::run(params, dataset, classify, ctx),
        Experiment::Interpolate {
            dataset,
            interpolate,
        } => interpolate::run(params, dataset, interpolate, ctx),
    }
}

/// The optimizer a task asks for, in burn's terms.
fn optimizer(spec: &Optimizer) -> burn::optim::ModuleOptimizer {
    match spec {
        Optimizer::Adam { epsilon } => burn::optim::AdamConfig::new()
            .with_epsilon(*epsilon as f32)
            .init(),
        Optimizer::Sgd { momentum } => {
            let mut config = burn::optim::SgdConfig::new();
            if *momentum > 0.0 {
                config = config.with_momentum(Some(
                    burn::optim::momentum::MomentumConfig::new()
                        .with_momentum(*momentum)
                        .with_dampening(0.0),
                ));
            }
            config.init()
        }
    }
}

/// Fails the task at the first non-finite loss.
fn check_finite(step: u64, loss: f64) -> Result<(), TaskError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TaskError::Diverged { step, loss })
    }
}
