//! Adaptive seeds (`seeds = { start, step, max, until }`): checked here, so
//! that a spec the coordinator could not decide on is refused before it
//! queues anything; the coordinator adds the seeds.

use super::grid::{Axes, Axis};
use crate::error::SpecError;
use crate::params::ExperimentKind;
use crate::spec::{SeedsSpec, SweepSpec};
use crate::summary::{
    FINAL_LOSS, LAMBDA_MAX, LAMBDA_MIN, LOSS_AT_MIN_GRAD_NORM, MIN_GRAD_NORM, MIN_LOSS,
    MINIMAL_RATIO, SENSITIVITY, SENSITIVITY_RMS, TEST_ACC, TEST_LOSS, TRAIN_ACC, TRAIN_LOSS,
};

/// More seeds a setting than this is a typo (each is a training).
const MAX_SEEDS: i64 = 10_000;

/// A plan's adaptive seeds: the spec's `seeds`, checked, with defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Adaptive {
    pub start: usize,
    pub step: usize,
    pub max: usize,
    /// The axis compared: model, batch_size, lr, width or params.
    pub compare: String,
    pub metric: String,
    pub resolution: f64,
    pub alpha: f64,
}

/// The spec's `seeds` schedule, checked: how many seeds each setting starts
/// with.
pub(super) fn start(spec: &SweepSpec) -> Result<Option<usize>, SpecError> {
    let Some(seeds) = &spec.seeds else {
        return Ok(None);
    };
    if spec.grid.seed.is_some() {
        return Err(SpecError::invalid(
            "grid.seed",
            "(given)",
            "give either grid.seed or seeds, not both",
        ));
    }
    if spec.interpolate.is_some() {
        return Err(SpecError::invalid(
            "seeds",
            "(given)",
            "interpolation pairs need a fixed grid.seed",
        ));
    }
    let SeedsSpec {
        start, step, max, ..
    } = *seeds;
    if !(2..=MAX_SEEDS).contains(&start) {
        return Err(SpecError::invalid(
            "seeds.start",
            start,
            format!("between 2 (an interval needs two seeds) and {MAX_SEEDS}"),
        ));
    }
    if !(1..=MAX_SEEDS).contains(&step) {
        return Err(SpecError::invalid(
            "seeds.step",
            step,
            format!("between 1 and {MAX_SEEDS}"),
        ));
    }
    if max < start || max > MAX_SEEDS {
        return Err(SpecError::invalid(
            "seeds.max",
            max,
            format!("between seeds.start ({start}) and {MAX_SEEDS}"),
        ));
    }
    Ok(Some(start as usize))
}

/// The spec's `seeds`, checked against the grid it repeats.
pub(super) fn adaptive(
    spec: &SweepSpec,
    experiment: ExperimentKind,
    axes: &Axes,
    models: usize,
) -> Result<Option<Adaptive>, SpecError> {
    let Some(seeds) = &spec.seeds else {
        return Ok(None);
    };
    let until = &seeds.until;
    let compare = until.compare.as_str();
    let axis = match compare {
        "model" => Axis::Model,
        "batch_size" => Axis::BatchSize,
        "lr" => Axis::Lr,
        "width" | "params" => Axis::Size,
        _ => {
            return Err(SpecError::invalid(
                "seeds.until.compare",
                format!("{compare:?}"),
                "expected model, batch_size, lr, width or params",
            ));
        }
    };
    let levels = axes.len(axis, models);
    if levels < 2 {
        return Err(SpecError::invalid(
            "seeds.until.compare",
            format!("{compare:?}"),
            format!("the grid has {levels} value on that axis: nothing to compare"),
        ));
    }
    let metrics = metrics(experiment);
    let metric = until.metric.as_deref().unwrap_or(metrics[0]);
    if !metrics.contains(&metric) {
        return Err(SpecError::invalid(
            "seeds.until.metric",
            format!("{metric:?}"),
            format!("a {experiment:?} task records {}", metrics.join(", ")),
        ));
    }
    let resolution = until.resolution.unwrap_or(0.0);
    if !(resolution.is_finite() && resolution >= 0.0) {
        return Err(SpecError::invalid(
            "seeds.until.resolution",
            resolution,
            "a difference nobody cares about: zero or more",
        ));
    }
    let alpha = until.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(SpecError::invalid(
            "seeds.until.alpha",
            alpha,
            "between 0 and 1",
        ));
    }
    Ok(Some(Adaptive {
        start: seeds.start as usize,
        step: seeds.step as usize,
        max: seeds.max as usize,
        compare: compare.to_string(),
        metric: metric.to_string(),
        resolution,
        alpha,
    }))
}

/// The summary numbers an experiment's tasks end with that a comparison
/// can use, the default first.
fn metrics(experiment: ExperimentKind) -> &'static [&'static str] {
    match experiment {
        ExperimentKind::Classify => &[
            TEST_ACC,
            TEST_LOSS,
            TRAIN_ACC,
            TRAIN_LOSS,
            SENSITIVITY,
            SENSITIVITY_RMS,
        ],
        ExperimentKind::Hessian => &[
            FINAL_LOSS,
            MIN_LOSS,
            MIN_GRAD_NORM,
            LOSS_AT_MIN_GRAD_NORM,
            MINIMAL_RATIO,
            LAMBDA_MIN,
            LAMBDA_MAX,
        ],
        ExperimentKind::Fit | ExperimentKind::Interpolate => {
            &[FINAL_LOSS, MIN_LOSS, MIN_GRAD_NORM, LOSS_AT_MIN_GRAD_NORM]
        }
    }
}
