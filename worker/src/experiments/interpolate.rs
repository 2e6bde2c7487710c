//! `interpolate`: train and test loss and accuracy of θ(α) = (1-α)·θ₁ + α·θ₂
//! for every α of the grid, where θ₁ and θ₂ are the final weights of the
//! task's two dependencies (3.3).

use sweep_spec::TaskParams;
use sweep_spec::metric;
use sweep_spec::params::InterpolateParams;
use sweep_spec::summary::{self, Summary};

use super::classify::{dataset, evaluate};
use super::{Context, TaskError};
use crate::model::Net;

/// The α grid: from, from + step, ..., up to `to` (within rounding).
pub fn alphas(from: f64, to: f64, step: f64) -> Vec<f64> {
    let count = ((to - from) / step + 1e-9).floor() as usize + 1;
    (0..count).map(|i| from + i as f64 * step).collect()
}

pub fn run(
    params: &TaskParams,
    dataset_name: &str,
    grid: &InterpolateParams,
    ctx: &Context<'_>,
) -> Result<Summary, TaskError> {
    let [first, second] = ctx.dependencies.as_slice() else {
        return Err(TaskError::InvalidParams(format!(
            "interpolation needs the weights of two trained models, got {}",
            ctx.dependencies.len()
        )));
    };
    let expected = params.param_count as usize;
    if first.len() != expected || second.len() != expected {
        return Err(TaskError::InvalidParams(format!(
            "the dependencies' weights have {} and {} values; the model has {expected}",
            first.len(),
            second.len()
        )));
    }
    let data = dataset(
        dataset_name,
        (grid.train_subset, grid.test_subset),
        None,
        ctx,
    )?;
    let alphas = alphas(grid.alpha_from, grid.alpha_to, grid.alpha_step);
    let mut curve = Vec::with_capacity(alphas.len());
    for (step, alpha) in alphas.iter().enumerate() {
        ctx.check_stop()?;
        let blend: Vec<f32> = first
            .iter()
            .zip(second)
            .map(|(a, b)| ((1.0 - alpha) * f64::from(*a) + alpha * f64::from(*b)) as f32)
            .collect();
        let model = Net::new(&params.model, &blend, &ctx.device);
        let (train_loss, train_acc) = evaluate(&model, &data.train, &ctx.device);
        let (test_loss, test_acc) = evaluate(&model, &data.test, &ctx.device);
        let point = [
            (metric::ALPHA, *alpha),
            (metric::TRAIN_LOSS, train_loss),
            (metric::TRAIN_ACC, train_acc),
            (metric::TEST_LOSS, test_loss),
            (metric::TEST_ACC, test_acc),
        ];
        // Far from both models the loss can overflow; such points are left
        // out rather than stored as infinities.
        for (name, value) in point.into_iter().filter(|(_, v)| v.is_finite()) {
            ctx.sink.metric(name, step as i64, None, value);
        }
        curve.push((*alpha, train_loss, test_acc));
    }
    let losses: Vec<(f64, f64)> = curve.iter().map(|(a, loss, _)| (*a, *loss)).collect();
    let barrier = Barrier::of(&losses);
    let mut out = Summary::new();
    out.set(summary::POINTS, curve.len() as f64)
        .set(summary::TRAIN_LOSS_AT_0, barrier.start)
        .set(summary::TRAIN_LOSS_AT_1, barrier.end)
        .set(summary::TRAIN_LOSS_BARRIER, barrier.above_ends)
        .set(summary::TRAIN_LOSS_BARRIER_CHORD, barrier.above_chord)
        .set(summary::PARAM_COUNT, params.param_count as f64);
    Ok(out)
}

/// How much higher the loss gets between the two models than at them.
#[derive(Debug, PartialEq)]
struct Barrier {
    start: f64,
    end: f64,
    /// max over 0 < α < 1 of L(α) − max(L(0), L(1)), at least 0.
    above_ends: f64,
    /// max over 0 ≤ α ≤ 1 of L(α) − ((1 − α)·L(0) + α·L(1)).
    above_chord: f64,
}

impl Barrier {
    /// From (α, loss) points; the ends are the points nearest α = 0 and 1.
    fn of(curve: &[(f64, f64)]) -> Self {
        let at = |target: f64| {
            curve
                .iter()
                .min_by(|x, y| (x.0 - target).abs().total_cmp(&(y.0 - target).abs()))
                .map_or(f64::NAN, |point| point.1)
        };
        let (start, end) = (at(0.0), at(1.0));
        let highest_between = curve
            .iter()
            .filter(|(alpha, _)| *alpha > 0.0 && *alpha < 1.0)
            .map(|(_, loss)| *loss)
            .fold(f64::NEG_INFINITY, f64::max);
        let above_chord = curve
            .iter()
            .filter(|(alpha, _)| (0.0..=1.0).contains(alpha))
            .map(|(alpha, loss)| loss - ((1.0 - alpha) * start + alpha * end))
            .fold(f64::NEG_INFINITY, f64::max);
        Self {
            start,
            end,
            above_ends: (highest_between - start.max(end)).max(0.0),
            above_chord,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Barrier, alphas};

    #[test]
    fn the_barrier_is_measured_above_the_ends_and_above_the_chord() {
        let bump = Barrier::of(&[(-0.5, 9.0), (0.0, 1.0), (0.5, 3.0), (1.0, 2.0), (1.5, 9.0)]);
        // 3 − max(1, 2) = 1; above the chord: 3 − 1.5 = 1.5 at α = 0.5. The
        // points outside [0, 1] count for neither.
        assert_eq!(
            bump,
            Barrier {
                start: 1.0,
                end: 2.0,
                above_ends: 1.0,
                above_chord: 1.5
            }
        );
        // A loss that only falls from one model to the other has no barrier.
        let none = Barrier::of(&[(0.0, 2.0), (0.5, 1.2), (1.0, 1.0)]);
        assert_eq!((none.above_ends, none.above_chord), (0.0, 0.0));
    }

    #[test]
    fn the_alpha_grid_includes_both_ends() {
        let grid = alphas(-1.0, 2.0, 0.05);
        assert_eq!(grid.len(), 61);
        assert!((grid[20] - 0.0).abs() < 1e-9 && (grid[60] - 2.0).abs() < 1e-9);
        assert_eq!(alphas(0.0, 1.0, 0.3).len(), 4);
    }
}
