//! Normalized task parameters: what the coordinator's planner resolves a sweep
//! spec into, one value per task, and what a worker reads to train. They travel
//! as JSON (`TaskLease.params_json`) and are stored as JSON, so reports can
//! group by any field (`model_name`, `param_count`, `batch_size`, `lr`, ...).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a task does; one worker module each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentKind {
    /// Regression on a 1-D function (1.1, 2.2).
    Fit,
    /// A fit followed by the Hessian's spectrum at the flattest point (2.3).
    Hessian,
    /// MNIST-format classification (1.2, 1.3, 2.1, 3.1, 3.2, 3.3, 3.4).
    Classify,
    /// Loss and accuracy along the line between two trained models (3.3).
    Interpolate,
}

impl ExperimentKind {
    pub const ALL: [Self; 4] = [Self::Fit, Self::Hessian, Self::Classify, Self::Interpolate];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fit => "fit",
            Self::Hessian => "hessian",
            Self::Classify => "classify",
            Self::Interpolate => "interpolate",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for ExperimentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model's exact architecture. Hidden layers use ReLU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelShape {
    /// Fully connected: `input - hidden[0] - ... - output`.
    Mlp {
        input: u64,
        hidden: Vec<u64>,
        output: u64,
    },
    /// Each entry of `convs` is a `kernel`x`kernel` convolution with "same"
    /// padding and that many output channels, followed by a 2x2 max-pool
    /// (the side is halved, rounding down); then fully connected layers `fc`
    /// and the output layer.
    Cnn {
        in_channels: u64,
        image_size: u64,
        kernel: u64,
        convs: Vec<u64>,
        fc: Vec<u64>,
        output: u64,
    },
}

impl ModelShape {
    pub fn mlp(input: u64, hidden: &[u64], output: u64) -> Self {
        Self::Mlp {
            input,
            hidden: hidden.to_vec(),
            output,
        }
    }

    /// A CNN for MNIST-format images (1x28x28, ten classes) with 5x5 kernels.
    pub fn mnist_cnn(convs: &[u64], fc: &[u64]) -> Self {
        Self::Cnn {
            in_channels: 1,
            image_size: 28,
            kernel: 5,
            convs: convs.to_vec(),
            fc: fc.to_vec(),
            output: 10,
        }
    }

    /// Weights plus biases.
    pub fn param_count(&self) -> u64 {
        match self {
            Self::Mlp {
                input,
                hidden,
                output,
            } => dense_params(*input, hidden, *output),
            Self::Cnn {
                in_channels,
                image_size,
                kernel,
                convs,
                fc,
                output,
            } => {
                let mut channels = *in_channels;
                let mut side = *image_size;
                let mut count = 0;
                for &out in convs {
                    count += channels * out * kernel * kernel + out;
                    channels = out;
                    side /= 2;
                }
                count + dense_params(side * side * channels, fc, *output)
            }
        }
    }
}

fn dense_params(input: u64, hidden: &[u64], output: u64) -> u64 {
    let mut count = 0;
    let mut fan_in = input;
    for &width in hidden.iter().chain(std::iter::once(&output)) {
        count += fan_in * width + width;
        fan_in = width;
    }
    count
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Optimizer {
    Adam { epsilon: f64 },
    Sgd { momentum: f64 },
}

/// Everything one task needs. Fields a kind does not use are absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskParams {
    pub experiment: ExperimentKind,
    /// The model's name in the spec ("deep", "shallow", "cnn1", ...).
    pub model_name: String,
    pub model: ModelShape,
    pub param_count: u64,
    /// The swept width, when the model's widths come from the grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u64>,
    /// The parameter budget the width was solved for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// The repetition's seed: data order, label shuffling, dropout.
    pub seed: u64,
    /// The seed of the initial weights (equal to `seed` unless an interpolation
    /// pair asks for different starting points).
    pub init_seed: u64,
    pub lr: f64,
    pub optimizer: Optimizer,
    /// Minibatch size; absent means full batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    /// "mnist", "fashion-mnist" or a directory with IDX files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<FitParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hessian: Option<HessianParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classify: Option<ClassifyParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolate: Option<InterpolateParams>,
}

impl TaskParams {
    /// What the task's seeds repeat: its parameters with the seeds left out.
    /// Tasks with the same key are repetitions of one swept setting, which
    /// reports aggregate over.
    pub fn setting_key(&self) -> String {
        let unseeded = Self {
            seed: 0,
            init_seed: 0,
            ..self.clone()
        };
        serde_json::to_string(&unseeded).expect("task parameters serialize")
    }
}

/// The names of the weight artifacts a `classify` task stores, which
/// interpolation tasks and plots read back.
pub mod artifacts {
    /// The weights after the last epoch.
    pub const FINAL_WEIGHTS: &str = "weights/final";

    /// The weights after `epoch` (a snapshot for optimization paths).
    pub fn snapshot(epoch: u64) -> String {
        format!("weights/epoch-{epoch:03}")
    }
}

/// The 1-D regression target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitTarget {
    /// y = 2·x·cos(x) + 2, the report's function.
    XCosX,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitParams {
    pub target: FitTarget,
    /// Evenly spaced points on [x_min, x_max], used as one full batch.
    pub points: u64,
    pub x_min: f64,
    pub x_max: f64,
    /// Steps of plain MSE training.
    pub steps: u64,
    pub record_every: u64,
    pub record_grad_norm: bool,
    /// After `steps`, continue by minimising the gradient norm (2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm_phase: Option<GradNormPhase>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradNormObjective {
    /// ‖∇θ L‖
    Norm,
    /// ‖∇θ L‖²
    NormSquared,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradNormPhase {
    pub steps: u64,
    pub objective: GradNormObjective,
    /// The objective is multiplied by this (the original code used 1e-6).
    pub scale: f64,
    pub lr: f64,
    pub optimizer: Optimizer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HessianParams {
    /// Eigenvalues within ±tol·|λ_max| count as zero.
    pub tol: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifyParams {
    pub epochs: u64,
    /// Minibatch loss and accuracy are recorded every this many steps.
    pub record_every: u64,
    /// Shuffle the training labels once with the task's seed (3.1).
    pub shuffle_labels: bool,
    /// Use only the first N training / test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_subset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_subset: Option<u64>,
    /// Store the weights every this many epochs (2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_every: Option<u64>,
    /// Record ‖∂L_test/∂X‖_F at the end (3.4).
    pub sensitivity: bool,
    /// Store the final weights (needed by interpolation, 3.3).
    pub save_weights: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterpolateParams {
    /// θ(α) = (1-α)·θ₁ + α·θ₂ for α = from, from+step, ..., to; θ₁ and θ₂ are
    /// the final weights of the task's first and second dependency.
    pub alpha_from: f64,
    pub alpha_to: f64,
    pub alpha_step: f64,
    /// What distinguishes θ₁ from θ₂ ("batch_size", "lr", "seed" or "width").
    pub between: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_subset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_subset: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp(input: u64, hidden: &[u64], output: u64) -> ModelShape {
        ModelShape::mlp(input, hidden, output)
    }

    fn cnn(convs: &[u64]) -> ModelShape {
        ModelShape::mnist_cnn(convs, &[128])
    }

    #[test]
    fn parameter_counts_match_the_report() {
        assert_eq!(mlp(1, &[5, 10, 10, 10, 10, 10, 5], 1).param_count(), 571);
        assert_eq!(mlp(1, &[190], 1).param_count(), 571);
        let dnn1 = [100, 200, 200, 200, 200, 200, 100];
        assert_eq!(mlp(784, &dnn1, 10).param_count(), 280_610);
        assert_eq!(mlp(784, &[353], 10).param_count(), 280_645);
        assert_eq!(mlp(1, &[10, 10, 10], 1).param_count(), 251);
        let dnn1_original = [100, 200, 200, 200, 20, 200, 100];
        assert_eq!(mlp(784, &dnn1_original, 10).param_count(), 208_430);
        assert_eq!(cnn(&[16, 36]).param_count(), 242_062);
        assert_eq!(cnn(&[16, 36, 144]).param_count(), 311_902);
    }

    #[test]
    fn width_sweep_follows_the_report_formula() {
        for w in (10..=100).step_by(10) {
            let count = mlp(784, &[w; 5], 10).param_count();
            assert_eq!(count, 4 * w * w + 799 * w + 10, "width {w}");
        }
    }

    fn classify_params() -> TaskParams {
        TaskParams {
            experiment: ExperimentKind::Classify,
            model_name: "deep".into(),
            model: mlp(784, &[100, 200], 10),
            param_count: 99_710,
            width: Some(200),
            budget: None,
            seed: 3,
            init_seed: 3,
            lr: 1e-4,
            optimizer: Optimizer::Adam { epsilon: 1e-8 },
            batch_size: Some(64),
            dataset: Some("mnist".into()),
            fit: None,
            hessian: None,
            classify: Some(ClassifyParams {
                epochs: 5,
                record_every: 100,
                shuffle_labels: false,
                train_subset: None,
                test_subset: Some(1000),
                snapshot_every: None,
                sensitivity: true,
                save_weights: true,
            }),
            interpolate: None,
        }
    }

    #[test]
    fn params_round_trip_through_json() {
        let params = classify_params();
        let json = serde_json::to_string(&params).unwrap();
        assert!(json.contains(r#""model":{"kind":"mlp""#), "{json}");
        assert_eq!(serde_json::from_str::<TaskParams>(&json).unwrap(), params);
    }

    #[test]
    fn the_setting_key_ignores_only_the_seeds() {
        let params = classify_params();
        let reseeded = TaskParams {
            seed: 9,
            init_seed: 11,
            ..params.clone()
        };
        assert_eq!(params.setting_key(), reseeded.setting_key());
        let larger_batch = TaskParams {
            batch_size: Some(128),
            ..params.clone()
        };
        assert_ne!(params.setting_key(), larger_batch.setting_key());
    }
}
