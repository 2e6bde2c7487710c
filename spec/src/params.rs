//! Normalized task parameters: what the planner resolves a sweep spec into,
//! one value per task, and what a worker reads to train. They travel as JSON
//! (`TaskLease.params_json`) and are stored as JSON, parsed back only at those
//! two edges.

use serde::{Deserialize, Serialize};

use crate::shape::ModelShape;

crate::text_enum!(
    /// What a task does; one worker module each.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    ExperimentKind {
        /// Regression on a 1-D function (1.1, 2.2).
        Fit = "fit",
        /// A fit followed by the Hessian's spectrum at the flattest point (2.3).
        Hessian = "hessian",
        /// MNIST-format classification (1.2, 1.3, 2.1, 3.1, 3.2, 3.3, 3.4).
        Classify = "classify",
        /// Loss and accuracy along the line between two trained models (3.3).
        Interpolate = "interpolate",
    }
);

crate::text_enum!(
    /// What a task needs from a worker.
    Requirement {
        /// Any worker (CUDA workers run these too).
        Cpu = "cpu",
        /// Only a worker with a CUDA device.
        Cuda = "cuda",
    }
);

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
    /// Eigenvalues within ±abs_tol count as zero (the report's convention).
    #[serde(default = "default_tol")]
    pub abs_tol: f64,
    /// Eigenvalues within ±rel_tol·|λ_max| count as zero in the `_rel`
    /// fractions. Tasks stored before there were two tolerances call it `tol`.
    #[serde(alias = "tol")]
    pub rel_tol: f64,
}

/// Both tolerances' default.
pub fn default_tol() -> f64 {
    1e-6
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
    /// θ₁'s and θ₂'s value of `between`, as "batch_size=64" (for figures);
    /// none in tasks planned before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends: Option<[String; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_subset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_subset: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_params() -> TaskParams {
        TaskParams {
            experiment: ExperimentKind::Classify,
            model_name: "deep".into(),
            model: ModelShape::mlp(784, &[100, 200], 10),
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
    fn experiment_kinds_serialize_by_their_names() {
        for kind in ExperimentKind::ALL {
            assert_eq!(
                serde_json::to_string(kind).unwrap(),
                format!("{:?}", kind.as_str())
            );
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
