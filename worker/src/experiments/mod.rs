//! One module per experiment kind. Each trains from a task's parameters,
//! reports metrics and artifacts through a [`Sink`] and returns the task's
//! summary (the numbers reports aggregate).
//!
//! - [`fit`]: regression on y = 2·x·cos(x) + 2 (1.1), with gradient norms (2.2).
//! - [`classify`]: MNIST-format classification (1.2, 1.3, 2.1, 3.1, 3.2, 3.4).
//! - [`hessian`]: the Hessian's spectrum at the flattest point of 2.2's
//!   schedule (2.3).
//! - [`interpolate`]: loss and accuracy along θ(α) = (1-α)·θ₁ + α·θ₂ (3.3).

pub mod classify;
pub mod fit;
pub mod hessian;
pub mod interpolate;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device};
use sweep_spec::params::Optimizer;
use sweep_spec::{Experiment, Summary, TaskParams};

use crate::checkpoint::{Checkpoint, Position, fingerprint};
use crate::error::DataError;
use crate::model::{Net, initial_weights};

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

    /// The model and optimizer a task trains on `device`, from the newest
    /// checkpoint of an earlier attempt if there is one that fits the task,
    /// otherwise fresh from its initial weights. One that does not fit is
    /// refused (said through [`Checkpoints::refused`]), never loaded.
    pub(crate) fn start(&self, params: &TaskParams, device: &Device) -> Start {
        if let Some(bytes) = self.checkpoints.latest() {
            match self.restore(params, &bytes, device) {
                Ok(start) => {
                    self.checkpoints.resumed(start.position.step);
                    return start;
                }
                Err(why) => self.checkpoints.refused(&why),
            }
        }
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

    fn restore(&self, params: &TaskParams, bytes: &[u8], device: &Device) -> Result<Start, String> {
        let weights = params.model.param_count() as usize;
        let checkpoint = Checkpoint::from_bytes(bytes, &fingerprint(params), weights)
            .map_err(|err| err.to_string())?;
        let optim = optimizer(&params.optimizer)
            .from_bytes(Bytes::from_bytes_vec(checkpoint.optimizer))
            .map_err(|err| format!("the checkpoint's optimizer state is unreadable: {err}"))?;
        Ok(Start {
            model: Net::new(&params.model, &checkpoint.weights, device),
            optim,
            position: checkpoint.position,
        })
    }

    /// At a step boundary: saves a checkpoint if one is due.
    pub(crate) fn checkpoint(
        &self,
        params: &TaskParams,
        position: Position,
        model: &Net,
        optim: &ModuleOptimizer,
    ) {
        if !self.checkpoints.due() {
            return;
        }
        match optim.into_bytes() {
            Ok(optimizer) => self.checkpoints.save(Checkpoint {
                task: fingerprint(params),
                position,
                values: Default::default(),
                weights: model.flat(),
                optimizer: optimizer.to_vec(),
            }),
            Err(err) => {
                tracing::warn!(error = %err, step = position.step, "could not write a checkpoint")
            }
        }
    }
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
