//! The parameters every task of a sweep shares; the grid fills in the rest.

use super::fields::{duration_ms, optimizer, optional_count, positive_count, positive_real, text};
use crate::error::SpecError;
use crate::params::{
    ClassifyParams, Experiment, ExperimentKind, FitParams, FitTarget, GradNormObjective,
    GradNormPhase, HessianParams, TaskParams, default_tol,
};
use crate::shape::ModelShape;
use crate::spec::SweepSpec;

/// The shared parameters, with the model, size and grid values still empty.
pub(super) fn params(
    spec: &SweepSpec,
    experiment: ExperimentKind,
) -> Result<TaskParams, SpecError> {
    let train = &spec.train;
    let optimizer = optimizer(
        "train.optimizer",
        train.optimizer.as_deref(),
        train.epsilon,
        train.momentum,
    )?;
    let experiment = match experiment {
        ExperimentKind::Fit => Experiment::Fit {
            fit: fit_params(spec)?,
        },
        ExperimentKind::Hessian => Experiment::Hessian {
            fit: fit_params(spec)?,
            hessian: hessian_params(spec)?,
        },
        // `experiment` refuses "interpolate": the pairing makes those tasks
        // out of planned classify tasks.
        ExperimentKind::Classify | ExperimentKind::Interpolate => Experiment::Classify {
            dataset: dataset(spec.dataset.as_deref())?,
            classify: classify_params(spec)?,
        },
    };
    Ok(TaskParams {
        model_name: String::new(),
        model: ModelShape::Mlp {
            input: 0,
            hidden: Vec::new(),
            output: 0,
        },
        param_count: 0,
        width: None,
        budget: None,
        seed: 0,
        init_seed: 0,
        lr: 0.0,
        optimizer,
        batch_size: None,
        checkpoint_every_ms: duration_ms(
            "train.checkpoint_every",
            spec.train.checkpoint_every.as_deref(),
        )?,
        keep_checkpoint: spec.train.keep_checkpoint.unwrap_or(false),
        experiment,
    })
}

fn hessian_params(spec: &SweepSpec) -> Result<HessianParams, SpecError> {
    let hessian = spec.hessian.clone().unwrap_or_default();
    let tol = |name, value: Option<f64>| positive_real(name, value.unwrap_or_else(default_tol));
    Ok(HessianParams {
        abs_tol: tol("hessian.abs_tol", hessian.abs_tol)?,
        rel_tol: tol("hessian.rel_tol", hessian.rel_tol)?,
    })
}

/// The longest dataset name or path, in characters.
const MAX_PATH: usize = 4096;

fn dataset(name: Option<&str>) -> Result<String, SpecError> {
    match name.map(str::trim) {
        Some(name) if !name.is_empty() => {
            text("dataset", name, MAX_PATH, false)?;
            Ok(name.to_string())
        }
        Some(_) => Err(SpecError::invalid(
            "dataset",
            "\"\"",
            "name mnist, fashion-mnist or a directory of IDX files",
        )),
        None => Err(SpecError::missing(
            "dataset",
            "a classify sweep needs a dataset: mnist, fashion-mnist or a directory of IDX files",
        )),
    }
}

fn fit_params(spec: &SweepSpec) -> Result<FitParams, SpecError> {
    let fit = spec.fit.clone().unwrap_or_default();
    let target = match fit.target.as_deref().unwrap_or("x_cos_x") {
        "x_cos_x" => FitTarget::XCosX,
        other => {
            return Err(SpecError::invalid(
                "fit.target",
                format!("{other:?}"),
                "expected \"x_cos_x\" (y = 2·x·cos(x) + 2)",
            ));
        }
    };
    let points = positive_count("fit.points", fit.points.unwrap_or(2000))?;
    let (x_min, x_max) = (fit.x_min.unwrap_or(-1.0), fit.x_max.unwrap_or(10.0));
    if !(x_min.is_finite() && x_max.is_finite() && x_min < x_max) {
        return Err(SpecError::invalid(
            "fit.x_max",
            x_max,
            format!("must be finite and greater than fit.x_min ({x_min})"),
        ));
    }
    let steps = spec.train.steps.ok_or_else(|| {
        SpecError::missing(
            "train.steps",
            "fit and hessian train for a number of full-batch steps",
        )
    })?;
    let grad_norm_phase = fit
        .grad_norm_phase
        .as_ref()
        .map(|phase| -> Result<GradNormPhase, SpecError> {
            let objective = match phase.objective.as_str() {
                "norm" => GradNormObjective::Norm,
                "norm_squared" => GradNormObjective::NormSquared,
                other => {
                    return Err(SpecError::invalid(
                        "fit.grad_norm_phase.objective",
                        format!("{other:?}"),
                        "expected \"norm\" or \"norm_squared\"",
                    ));
                }
            };
            Ok(GradNormPhase {
                steps: positive_count("fit.grad_norm_phase.steps", phase.steps)?,
                objective,
                scale: positive_real("fit.grad_norm_phase.scale", phase.scale.unwrap_or(1.0))?,
                lr: positive_real("fit.grad_norm_phase.lr", phase.lr)?,
                optimizer: optimizer(
                    "fit.grad_norm_phase.optimizer",
                    phase.optimizer.as_deref(),
                    phase.epsilon,
                    None,
                )?,
            })
        })
        .transpose()?;
    Ok(FitParams {
        target,
        points,
        x_min,
        x_max,
        steps: positive_count("train.steps", steps)?,
        record_every: positive_count("train.record_every", spec.train.record_every.unwrap_or(1))?,
        record_grad_norm: fit.record_grad_norm.unwrap_or(grad_norm_phase.is_some()),
        grad_norm_phase,
    })
}

fn classify_params(spec: &SweepSpec) -> Result<ClassifyParams, SpecError> {
    let classify = spec.classify.clone().unwrap_or_default();
    let epochs = spec.train.epochs.ok_or_else(|| {
        SpecError::missing(
            "train.epochs",
            "a classify sweep trains for a number of epochs",
        )
    })?;
    Ok(ClassifyParams {
        epochs: positive_count("train.epochs", epochs)?,
        record_every: positive_count("train.record_every", spec.train.record_every.unwrap_or(100))?,
        shuffle_labels: classify.shuffle_labels,
        train_subset: optional_count("classify.train_subset", classify.train_subset)?,
        test_subset: optional_count("classify.test_subset", classify.test_subset)?,
        snapshot_every: optional_count("classify.snapshot_every", classify.snapshot_every)?,
        sensitivity: classify.sensitivity,
        save_weights: classify.save_weights || spec.interpolate.is_some(),
    })
}
