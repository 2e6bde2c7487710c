//! Optimization paths (2.1): each run's weight snapshots projected on two
//! principal components fitted jointly over every run of a model.

use std::collections::BTreeMap;

use sweep_spec::metric;

use super::runs::Run;
use super::{Axis, Figure, Series, pca};

/// A run's weight snapshots in epoch order, each with the test accuracy
/// recorded at that epoch.
struct Path<'a> {
    run: &'a Run,
    accuracies: Vec<Option<f64>>,
}

impl Path<'_> {
    fn snapshots(&self) -> impl Iterator<Item = &Vec<f32>> {
        self.run.snapshots.iter().map(|(_, weights)| weights)
    }
}

/// The optimization paths of each model's runs (2.1): their weight
/// snapshots projected on two principal components fitted jointly over every
/// run and snapshot, once for the whole model and once for the second
/// hidden layer's kernel; each point notes its test accuracy, each run its
/// path length in weight space.
pub fn paths(runs: &[Run]) -> Vec<Figure> {
    let mut by_model: BTreeMap<&str, Vec<Path>> = BTreeMap::new();
    for run in runs.iter().filter(|run| !run.snapshots.is_empty()) {
        let test_acc: BTreeMap<i64, f64> = run
            .metric(metric::TEST_ACC)
            .into_iter()
            .map(|(epoch, acc)| (epoch as i64, acc))
            .collect();
        let accuracies = run
            .snapshots
            .iter()
            .map(|(epoch, _)| test_acc.get(&(*epoch as i64)).copied())
            .collect();
        by_model
            .entry(&run.params.model_name)
            .or_default()
            .push(Path { run, accuracies });
    }
    let mut out = Vec::new();
    for (model, paths) in by_model {
        let whole = |_: &Path| None;
        out.extend(path_figure(model, &paths, "", "all weights", whole));
        let layer = |path: &Path| path.run.params.model.kernel_range(1);
        out.extend(path_figure(
            model,
            &paths,
            "-layer2",
            "layer 2 kernel",
            layer,
        ));
    }
    out
}

/// One PCA figure over the part of each snapshot that `part` selects (all of
/// it for `None`).
fn path_figure(
    model: &str,
    paths: &[Path],
    suffix: &str,
    what: &str,
    part: impl Fn(&Path) -> Option<std::ops::Range<usize>>,
) -> Option<Figure> {
    let parts: Vec<Vec<Vec<f32>>> = paths
        .iter()
        .map(|path| {
            let range = part(path);
            path.snapshots()
                .map(|s| range.clone().map_or_else(|| s.clone(), |r| s[r].to_vec()))
                .collect()
        })
        .collect();
    let all: Vec<Vec<f32>> = parts.iter().flatten().cloned().collect();
    let pca::Projection { points, explained } = pca::project(&all)?;
    let mut points = points.into_iter();
    let series = paths
        .iter()
        .zip(&parts)
        .map(|(path, snapshots)| Series {
            name: format!(
                "seed {} (path {:.3}{})",
                path.run.params.seed,
                path_length(snapshots),
                accuracy_change(&path.accuracies)
            ),
            points: points.by_ref().take(snapshots.len()).collect(),
            // The last only: a run's points sit close together when runs
            // start far apart; the legend gives the first-to-last change.
            notes: path
                .accuracies
                .iter()
                .enumerate()
                .map(|(i, acc)| match acc {
                    Some(a) if i + 1 == path.accuracies.len() => format!("{a:.3}"),
                    _ => String::new(),
                })
                .collect(),
            style: None,
            bounds: Vec::new(),
        })
        .collect();
    Some(Figure {
        file: format!("pca-{model}{suffix}"),
        title: format!("Optimization paths of {model}, {what} (labels: test accuracy)"),
        x: Axis::linear(&format!("PC1 ({:.0}% of variance)", explained[0] * 100.0)),
        y: Axis::linear(&format!("PC2 ({:.0}% of variance)", explained[1] * 100.0)),
        series,
        scatter: false,
    })
}

/// ", test acc 0.846 → 0.884" from the first to the last snapshot.
fn accuracy_change(accuracies: &[Option<f64>]) -> String {
    match (accuracies.first(), accuracies.last()) {
        (Some(Some(first)), Some(Some(last))) => format!(", test acc {first:.3} → {last:.3}"),
        _ => String::new(),
    }
}

/// The length of a path through weight space: the sum of the distances
/// between consecutive snapshots.
fn path_length(snapshots: &[Vec<f32>]) -> f64 {
    snapshots
        .windows(2)
        .map(|pair| {
            pair[0]
                .iter()
                .zip(&pair[1])
                .map(|(a, b)| f64::from(b - a).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum()
}
