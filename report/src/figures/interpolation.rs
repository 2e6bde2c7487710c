//! Loss and accuracy along the line between two trained models, one
//! series per interpolation task (3.3).

use std::collections::BTreeMap;

use sweep_spec::{ExperimentKind, metric};

use super::runs::{Run, labels};
use super::{Axis, Figure, Series, capitalized};

/// The α axis, naming the two models when every path runs between the same
/// two settings ("α (0: batch_size=64, 1: batch_size=1024)").
fn ends_label(paths: &[&Run]) -> String {
    let ends: Vec<Option<&[String; 2]>> = paths
        .iter()
        .map(|r| {
            r.params
                .experiment
                .interpolate()
                .and_then(|i| i.ends.as_ref())
        })
        .collect();
    match ends.first() {
        Some(Some([first, second])) if ends.iter().all(|e| *e == ends[0]) => {
            format!("α (0: {first}, 1: {second})")
        }
        _ => "α (0: first model, 1: second)".to_string(),
    }
}

/// Loss and accuracy along θ(α) = (1-α)·θ₁ + α·θ₂, one series per task (3.3).
pub fn interpolation(runs: &[Run]) -> Vec<Figure> {
    let paths: Vec<&Run> = runs
        .iter()
        .filter(|r| r.params.kind() == ExperimentKind::Interpolate)
        .collect();
    if paths.is_empty() {
        return Vec::new();
    }
    let labels = labels(&paths, &[]);
    let x_label = ends_label(&paths);
    let along = |metric: &str| -> Vec<(String, Vec<(f64, f64)>)> {
        paths
            .iter()
            .zip(&labels)
            .map(|(run, label)| {
                let alphas: BTreeMap<i64, f64> = run
                    .metric(metric::ALPHA)
                    .into_iter()
                    .map(|(s, a)| (s as i64, a))
                    .collect();
                let points = run
                    .metric(metric)
                    .into_iter()
                    .filter_map(|(step, value)| Some((*alphas.get(&(step as i64))?, value)))
                    .collect();
                let name = format!("{label} seed {}", run.params.seed);
                (name.trim().to_string(), points)
            })
            .collect()
    };
    let figure = |file: &str, what: &str, log: bool, metrics: [(&str, &str); 2]| {
        let mut series = Vec::new();
        for (quantity, (metric, split)) in metrics.into_iter().enumerate() {
            for (index, (name, points)) in along(metric).into_iter().enumerate() {
                let points: Vec<(f64, f64)> = points
                    .into_iter()
                    .filter(|(_, v)| !log || *v > 0.0)
                    .collect();
                if !points.is_empty() {
                    let name = format!("{name} {split}");
                    series.push(Series::new(name, points).of_group(index, quantity));
                }
            }
        }
        (!series.is_empty()).then(|| Figure {
            file: file.into(),
            title: format!(
                "{} along the line between two trained models",
                capitalized(what)
            ),
            x: Axis::linear(&x_label),
            y: if log {
                Axis::log(what)
            } else {
                Axis::linear(what)
            },
            series,
            scatter: false,
        })
    };
    [
        figure(
            "interpolation-loss",
            "loss",
            true,
            [(metric::TRAIN_LOSS, "train"), (metric::TEST_LOSS, "test")],
        ),
        figure(
            "interpolation-accuracy",
            "accuracy",
            false,
            [(metric::TRAIN_ACC, "train"), (metric::TEST_ACC, "test")],
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}
