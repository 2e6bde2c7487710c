//! Curves per setting, the median over its seeds at each step: loss and
//! accuracy per epoch, minibatch figures, the fit's loss and gradient norm
//! (1.1, 1.2, 1.3, 2.2, 3.1).

use sweep_spec::{ExperimentKind, metric};

use super::runs::{Run, by_setting, median_curve, over_seeds, seeds};
use super::{Axis, Figure, Series};

/// Loss, accuracy and gradient-norm curves per setting (1.1, 1.2, 1.3, 2.2, 3.1).
pub fn curves(runs: &[Run]) -> Vec<Figure> {
    let trained: Vec<&Run> = runs
        .iter()
        .filter(|r| r.params.kind() != ExperimentKind::Interpolate)
        .collect();
    if trained.is_empty() {
        return Vec::new();
    }
    let groups = by_setting(&trained, &[]);
    let over = over_seeds("median", seeds(&trained), "band: middle half of the seeds");
    let loss = [(metric::TRAIN_LOSS, "train"), (metric::TEST_LOSS, "test")];
    let acc = [(metric::TRAIN_ACC, "train"), (metric::TEST_ACC, "test")];
    [
        curve_figure(
            "loss",
            &format!("Loss per epoch{over}"),
            Axis::linear("epoch"),
            Axis::log("loss"),
            &groups,
            &loss,
        ),
        curve_figure(
            "accuracy",
            &format!("Accuracy per epoch{over}"),
            Axis::linear("epoch"),
            Axis::linear("accuracy"),
            &groups,
            &acc,
        ),
        curve_figure(
            "batch-loss",
            &format!("Minibatch loss during training{over}"),
            Axis::linear("step"),
            Axis::log("loss"),
            &groups,
            &[(metric::BATCH_LOSS, "")],
        ),
        curve_figure(
            "batch-accuracy",
            &format!("Minibatch accuracy during training{over}"),
            Axis::linear("step"),
            Axis::linear("accuracy"),
            &groups,
            &[(metric::BATCH_ACC, "")],
        ),
        curve_figure(
            "fit-loss",
            &format!("Training loss (MSE){over}"),
            Axis::linear("step"),
            Axis::log("loss"),
            &groups,
            &[(metric::LOSS, "")],
        ),
        curve_figure(
            "grad-norm",
            &format!("Gradient norm{over}"),
            Axis::linear("step"),
            Axis::log("‖∇θ L‖"),
            &groups,
            &[(metric::GRAD_NORM, "")],
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A figure with one series per (group, metric), leaving out empty series;
/// a group's metrics share its colour.
fn curve_figure(
    file: &str,
    title: &str,
    x: Axis,
    y: Axis,
    groups: &[(String, Vec<&Run>)],
    metrics: &[(&str, &str)],
) -> Option<Figure> {
    let mut series = Vec::new();
    for (index, (label, group)) in groups.iter().enumerate() {
        let drawn = series.len();
        for (metric, suffix) in metrics {
            let (points, bounds): (Vec<_>, Vec<_>) = median_curve(group, metric)
                .into_iter()
                .filter(|((_, v), _)| !y.log || *v > 0.0)
                .unzip();
            if !points.is_empty() {
                let name = format!("{label} {suffix}").trim().to_string();
                let quantity = series.len() - drawn;
                let curve = Series::new(name, points).with_bounds(bounds);
                series.push(curve.of_group(index, quantity));
            }
        }
    }
    (!series.is_empty()).then(|| Figure {
        file: file.into(),
        title: title.into(),
        x,
        y,
        series,
        scatter: false,
    })
}
