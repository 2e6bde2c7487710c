//! Normalized task parameters: what the planner resolves a sweep spec into,
//! one value per task, and what a worker reads to train. The kind and its
//! sections are one sum type ([`Experiment`]), so no task lacks what its
//! kind needs. They travel as JSON
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

/// Everything one task needs: what every kind shares, and the kind's own
/// parameters in [`Experiment`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskParams {
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
    /// Milliseconds of training between two checkpoints (0: only when the
    /// worker is told to stop); absent: the worker's `--checkpoint-every`.
    /// How the task runs, not what it trains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every_ms: Option<u64>,
    /// Whether the task keeps its final training state as its
    /// `checkpoint` artifact. How the task runs, not
    /// what it trains.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_checkpoint: bool,
    /// Flattened so that the JSON keeps the shape it has always had: an
    /// `"experiment"` name beside the kind's sections, which the stored tasks
    /// of earlier versions are written in.
    #[serde(flatten)]
    pub experiment: Experiment,
}

/// A task's kind with exactly the sections that kind reads, so a task
/// without its parameters (or with another kind's) cannot be built.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "experiment", rename_all = "snake_case")]
pub enum Experiment {
    Fit {
        fit: FitParams,
    },
    Hessian {
        fit: FitParams,
        hessian: HessianParams,
    },
    Classify {
        /// "mnist", "fashion-mnist" or a directory with IDX files.
        dataset: String,
        classify: ClassifyParams,
    },
    Interpolate {
        /// The dataset the two trained models were trained on.
        dataset: String,
        interpolate: InterpolateParams,
    },
}

impl Experiment {
    pub fn kind(&self) -> ExperimentKind {
        match self {
            Self::Fit { .. } => ExperimentKind::Fit,
            Self::Hessian { .. } => ExperimentKind::Hessian,
            Self::Classify { .. } => ExperimentKind::Classify,
            Self::Interpolate { .. } => ExperimentKind::Interpolate,
        }
    }

    /// The regression set-up, for the kinds that fit a function.
    pub fn fit(&self) -> Option<&FitParams> {
        match self {
            Self::Fit { fit } | Self::Hessian { fit, .. } => Some(fit),
            _ => None,
        }
    }

    pub fn classify(&self) -> Option<&ClassifyParams> {
        match self {
            Self::Classify { classify, .. } => Some(classify),
            _ => None,
        }
    }

    pub fn interpolate(&self) -> Option<&InterpolateParams> {
        match self {
            Self::Interpolate { interpolate, .. } => Some(interpolate),
            _ => None,
        }
    }

    /// The dataset, for the kinds that read images.
    pub fn dataset(&self) -> Option<&str> {
        match self {
            Self::Classify { dataset, .. } | Self::Interpolate { dataset, .. } => Some(dataset),
            _ => None,
        }
    }
}

impl TaskParams {
    pub fn kind(&self) -> ExperimentKind {
        self.experiment.kind()
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
            checkpoint_every_ms: None,
            keep_checkpoint: false,
            experiment: Experiment::Classify {
                dataset: "mnist".into(),
                classify: ClassifyParams {
                    epochs: 5,
                    record_every: 100,
                    shuffle_labels: false,
                    train_subset: None,
                    test_subset: Some(1000),
                    snapshot_every: None,
                    sensitivity: true,
                    save_weights: true,
                },
            },
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
    fn tasks_stored_by_earlier_versions_still_parse() {
        // What the struct of optional sections wrote: the kind first, the
        // sections last.
        let stored = r#"{"experiment":"hessian","model_name":"m","model":{"kind":"mlp","input":1,"hidden":[5],"output":1},"param_count":16,"seed":1,"init_seed":1,"lr":0.001,"optimizer":{"name":"adam","epsilon":1e-8},"fit":{"target":"x_cos_x","points":10,"x_min":0.0,"x_max":1.0,"steps":5,"record_every":1,"record_grad_norm":true},"hessian":{"tol":1e-5}}"#;
        let params: TaskParams = serde_json::from_str(stored).unwrap();
        let Experiment::Hessian { fit, hessian } = &params.experiment else {
            panic!("{params:?}");
        };
        assert_eq!(
            (fit.steps, hessian.rel_tol, hessian.abs_tol),
            (5, 1e-5, 1e-6)
        );
    }

    #[test]
    fn a_kind_without_its_section_is_refused() {
        let mut json: serde_json::Value = serde_json::to_value(classify_params()).unwrap();
        json["experiment"] = "fit".into();
        let err = serde_json::from_value::<TaskParams>(json).unwrap_err();
        assert!(err.to_string().contains("missing field `fit`"), "{err}");
    }
}
