//! The sweep spec: the TOML a researcher writes. Parsing is strict (unknown
//! fields and wrong types are refused by name); [`crate::planner`] checks the
//! values and expands the grid into tasks.
//!
//! ```toml
//! name = "params-vs-generalization"
//! experiment = "classify"               # fit | hessian | classify
//! dataset = "mnist"
//! model = { kind = "mlp", hidden = 5 }  # 5 hidden layers, width from the grid
//! train = { optimizer = "adam", lr = 1e-4, epochs = 9, batch_size = 64 }
//!
//! [grid]
//! width = [10, 20, 30]                  # or: params = [1e4, 3e4, 1e5]
//! seed = [0, 1, 2]
//! ```

use serde::{Deserialize, Serialize};

use crate::error::SpecError;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    /// fit | hessian | classify (interpolation comes from `[interpolate]`).
    pub experiment: String,
    #[serde(default)]
    pub description: Option<String>,
    /// "mnist", "fashion-mnist" or a directory of IDX files (classify).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i64,
    /// How many times a task may be tried (lost leases and retryable errors).
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// "cpu" (any worker) or "cuda" (only workers with a CUDA device).
    #[serde(default)]
    pub requires: Option<String>,
    /// One model...
    #[serde(default)]
    pub model: Option<ModelSpec>,
    /// ...or several (`[[models]]`), each a value of the model axis.
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    pub train: TrainSpec,
    #[serde(default)]
    pub fit: Option<FitSpec>,
    #[serde(default)]
    pub hessian: Option<HessianSpec>,
    #[serde(default)]
    pub classify: Option<ClassifySpec>,
    #[serde(default)]
    pub interpolate: Option<InterpolateSpec>,
    #[serde(default)]
    pub grid: GridSpec,
    /// Seeds added until a comparison is settled, instead of `grid.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<SeedsSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// mlp | cnn
    pub kind: String,
    /// MLP: a number of hidden layers whose width comes from the grid, or a
    /// list of fixed widths.
    #[serde(default)]
    pub hidden: Option<toml::Value>,
    /// MLP: hidden widths relative to the grid's width w (e.g. the report's
    /// deep nets are `[0.5, 1, 1, 1, 1, 1, 0.5]`: w/2, five times w, w/2).
    #[serde(default)]
    pub shape: Option<Vec<f64>>,
    /// CNN: output channels of each conv + max-pool stage.
    #[serde(default)]
    pub convs: Option<Vec<i64>>,
    /// CNN: fully connected widths after the convolutions.
    #[serde(default)]
    pub fc: Option<Vec<i64>>,
    /// CNN: convolution kernel side (default 5).
    #[serde(default)]
    pub kernel: Option<i64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// adam | sgd (default adam).
    #[serde(default)]
    pub optimizer: Option<String>,
    #[serde(default)]
    pub lr: Option<f64>,
    /// Adam's epsilon (default 1e-8, as PyTorch and TensorFlow).
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// SGD momentum (default 0).
    #[serde(default)]
    pub momentum: Option<f64>,
    /// classify: passes over the training set.
    #[serde(default)]
    pub epochs: Option<i64>,
    /// fit, hessian: full-batch steps.
    #[serde(default)]
    pub steps: Option<i64>,
    /// classify: the minibatch size when the grid has no batch_size axis.
    #[serde(default)]
    pub batch_size: Option<i64>,
    /// Record running metrics every this many steps.
    #[serde(default)]
    pub record_every: Option<i64>,
    /// classify, fit, hessian: training between two checkpoints ("10m",
    /// "30s"; "0s": only when the worker is told to stop); default: the
    /// worker's.
    #[serde(default)]
    pub checkpoint_every: Option<String>,
    /// classify, fit, hessian: keep the final training state (weights,
    /// optimizer, position) as the task's `checkpoint` artifact.
    #[serde(default)]
    pub keep_checkpoint: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FitSpec {
    /// x_cos_x: y = 2·x·cos(x) + 2.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub points: Option<i64>,
    #[serde(default)]
    pub x_min: Option<f64>,
    #[serde(default)]
    pub x_max: Option<f64>,
    #[serde(default)]
    pub record_grad_norm: Option<bool>,
    #[serde(default)]
    pub grad_norm_phase: Option<GradNormPhaseSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GradNormPhaseSpec {
    pub steps: i64,
    /// norm | norm_squared
    pub objective: String,
    #[serde(default)]
    pub scale: Option<f64>,
    pub lr: f64,
    #[serde(default)]
    pub optimizer: Option<String>,
    #[serde(default)]
    pub epsilon: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HessianSpec {
    #[serde(default)]
    pub abs_tol: Option<f64>,
    #[serde(default)]
    pub rel_tol: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifySpec {
    #[serde(default)]
    pub shuffle_labels: bool,
    #[serde(default)]
    pub train_subset: Option<i64>,
    #[serde(default)]
    pub test_subset: Option<i64>,
    #[serde(default)]
    pub snapshot_every: Option<i64>,
    #[serde(default)]
    pub sensitivity: bool,
    #[serde(default)]
    pub save_weights: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InterpolateSpec {
    /// The grid axis with exactly two values whose models are interpolated:
    /// batch_size | lr | seed | width | params.
    pub between: String,
    #[serde(default)]
    pub alpha: Option<AlphaSpec>,
    /// Whether both models start from the same initial weights (default true).
    #[serde(default)]
    pub same_init: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlphaSpec {
    pub from: f64,
    pub to: f64,
    pub step: f64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    #[serde(default)]
    pub width: Option<Vec<i64>>,
    #[serde(default)]
    pub params: Option<Vec<f64>>,
    #[serde(default)]
    pub batch_size: Option<Vec<i64>>,
    #[serde(default)]
    pub lr: Option<Vec<f64>>,
    #[serde(default)]
    pub seed: Option<Vec<i64>>,
}

/// `seeds = { start = 3, step = 2, max = 30, until = { compare = "model" } }`:
/// every setting starts with seeds 0 .. start; the coordinator adds `step`
/// more to the settings whose comparison is not settled yet, up to `max`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedsSpec {
    pub start: i64,
    pub step: i64,
    pub max: i64,
    pub until: UntilSpec,
}

/// When a comparison is settled: see `sweep compare`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UntilSpec {
    /// The axis whose levels are compared: model, batch_size, lr, width or
    /// params.
    pub compare: String,
    /// The summary number compared (default test_acc, or final_loss for
    /// fit and hessian).
    #[serde(default)]
    pub metric: Option<String>,
    /// Stop, without a verdict, once the difference of means is known to
    /// within ± this (default 0: only a verdict or `max` stops).
    #[serde(default)]
    pub resolution: Option<f64>,
    /// The false-positive rate over the whole study (default 0.05).
    #[serde(default)]
    pub alpha: Option<f64>,
}

impl SweepSpec {
    /// Parses a spec. Unknown fields and wrong types are refused with the
    /// TOML parser's message, which names the key, and where it is.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        toml::from_str(text).map_err(|err| SpecError::syntax(text, &err))
    }
}
