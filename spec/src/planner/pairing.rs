//! Interpolation pairs (3.3): the two tasks that differ only along one axis
//! with two values, and the interpolation task that waits for both.

use super::grid::{Axes, Axis, Coords};
use crate::error::SpecError;
use crate::params::{Experiment, InterpolateParams, TaskParams};
use crate::spec::{AlphaSpec, InterpolateSpec, SweepSpec};

/// Any fixed seed far from the small ones people write; used for the second
/// model of an interpolation pair when the pair must not share its start.
const OTHER_INIT: u64 = 0x9E37_79B9_7F4A_7C15;

/// How `[interpolate]` pairs the tasks of one axis with two values.
pub(super) struct Pairing {
    axis: Axis,
    same_init: bool,
    params: InterpolateParams,
}

impl Pairing {
    pub(super) fn new(
        spec: &InterpolateSpec,
        sweep: &SweepSpec,
        axes: &Axes,
        models: usize,
    ) -> Result<Self, SpecError> {
        let between = spec.between.as_str();
        let axis = match between {
            "batch_size" => Axis::BatchSize,
            "lr" => Axis::Lr,
            "seed" => Axis::Seed,
            "width" if sweep.grid.width.is_some() => Axis::Size,
            "params" if sweep.grid.params.is_some() => Axis::Size,
            _ => {
                return Err(SpecError::invalid(
                    "interpolate.between",
                    format!("{between:?}"),
                    "expected a grid axis: batch_size, lr, seed, width or params",
                ));
            }
        };
        let values = axes.len(axis, models);
        if values != 2 {
            return Err(SpecError::invalid(
                "interpolate.between",
                format!("{between:?}"),
                format!(
                    "interpolation needs exactly two values on that axis, the grid has {values}"
                ),
            ));
        }
        // Independent starts by default, as the report's code trained them.
        let same_init = spec.same_init.unwrap_or(false);
        if same_init && between == "seed" {
            return Err(SpecError::invalid(
                "interpolate.same_init",
                true,
                "two seeds give two initialisations; set same_init = false",
            ));
        }
        let alpha = spec.alpha.clone().unwrap_or(AlphaSpec {
            from: -1.0,
            to: 2.0,
            step: 0.05,
        });
        let steps = (alpha.to - alpha.from) / alpha.step;
        if !(alpha.from.is_finite() && alpha.to > alpha.from && steps.is_finite())
            || alpha.step <= 0.0
            || steps > 100_000.0
        {
            return Err(SpecError::invalid(
                "interpolate.alpha",
                format!(
                    "{{ from = {}, to = {}, step = {} }}",
                    alpha.from, alpha.to, alpha.step
                ),
                "needs from < to and a positive step giving at most 100000 points",
            ));
        }
        let classify = sweep.classify.clone().unwrap_or_default();
        Ok(Self {
            axis,
            same_init,
            params: InterpolateParams {
                alpha_from: alpha.from,
                alpha_to: alpha.to,
                alpha_step: alpha.step,
                between: between.to_string(),
                ends: None,
                train_subset: classify.train_subset.map(|n| n as u64),
                test_subset: classify.test_subset.map(|n| n as u64),
            },
        })
    }

    /// The pair a task belongs to and whether it is θ₁ (0) or θ₂ (1).
    pub(super) fn group(&self, coords: Coords) -> (Coords, usize) {
        (coords.with(self.axis, 0), coords.get(self.axis))
    }

    pub(super) fn init_seed(&self, coords: Coords, seed: u64) -> u64 {
        if self.same_init || coords.get(self.axis) == 0 {
            seed
        } else {
            seed ^ OTHER_INIT
        }
    }

    /// The interpolation task between the trained `first` and `second`.
    pub(super) fn interpolation(&self, first: &TaskParams, second: &TaskParams) -> TaskParams {
        let end = |p: &TaskParams| format!("{}={}", self.params.between, self.value(p));
        let experiment = Experiment::Interpolate {
            dataset: first.experiment.dataset().unwrap_or_default().to_string(),
            interpolate: InterpolateParams {
                ends: Some([end(first), end(second)]),
                ..self.params.clone()
            },
        };
        TaskParams {
            init_seed: first.seed,
            experiment,
            ..first.clone()
        }
    }

    /// A trained task's value on the axis the pair differs in.
    fn value(&self, params: &TaskParams) -> String {
        match self.params.between.as_str() {
            "batch_size" => params
                .batch_size
                .map_or_else(String::new, |b| b.to_string()),
            "lr" => params.lr.to_string(),
            "seed" => params.seed.to_string(),
            "width" => params.width.map_or_else(String::new, |w| w.to_string()),
            _ => params.param_count.to_string(),
        }
    }
}
