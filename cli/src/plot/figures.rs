//! Which figures a sweep's results support, computed from the store: the
//! curves of every experiment, figures against the swept parameter count or
//! batch size (3.2, 3.4), loss against minimal ratio (2.3), the
//! interpolation path (3.3) and the PCA of weight snapshots (2.1). Curves
//! show the median over a setting's seeds, final figures the mean; each figure is left out when the sweep
//! has nothing for it.

use std::collections::BTreeMap;

use serde_json::Value;
use sweep_coordinator::store::{Metric, Store, TaskState};
use sweep_proto::SweepId;
use sweep_proto::params::{ExperimentKind, TaskParams, artifacts};

use super::{Axis, Figure, Series, pca};
use crate::report::setting_labels;

/// A succeeded task with what the figures read from it.
struct Run {
    params: TaskParams,
    setting: String,
    summary: serde_json::Map<String, Value>,
    metrics: Vec<Metric>,
    task: sweep_proto::TaskId,
}

impl Run {
    /// The points of one metric, by step.
    fn metric(&self, name: &str) -> Vec<(f64, f64)> {
        self.metrics
            .iter()
            .filter(|m| m.point.name == name)
            .map(|m| (m.point.step as f64, m.point.value))
            .collect()
    }

    fn figure(&self, name: &str) -> Option<f64> {
        self.summary.get(name).and_then(Value::as_f64)
    }
}

/// Every figure the sweep's succeeded tasks support.
pub async fn figures(store: &dyn Store, sweep: u64) -> anyhow::Result<Vec<Figure>> {
    let tasks = store
        .tasks(SweepId(sweep as i64), &[TaskState::Succeeded])
        .await?;
    let mut runs = Vec::with_capacity(tasks.len());
    for task in tasks {
        let params: TaskParams = serde_json::from_str(&task.params)?;
        let summary = match task.summary.as_deref().map(serde_json::from_str) {
            Some(Ok(Value::Object(map))) => map,
            _ => Default::default(),
        };
        runs.push(Run {
            setting: params.setting_key(),
            params,
            summary,
            metrics: store.metrics(task.id).await?,
            task: task.id,
        });
    }
    let mut out = curves(&runs);
    out.extend(versus(&runs, Versus::Params));
    out.extend(versus(&runs, Versus::BatchSize));
    out.extend(minimal_ratio(&runs));
    out.extend(interpolation(&runs));
    out.extend(paths(store, &runs).await?);
    Ok(out)
}

/// Labels for the runs' settings, leaving out the `skip` parameters.
fn labels(runs: &[&Run], skip: &[&str]) -> Vec<String> {
    let params: Vec<Value> = runs
        .iter()
        .map(|run| serde_json::to_value(&run.params).unwrap_or(Value::Null))
        .collect();
    setting_labels(&params, skip)
}

/// Runs grouped by setting, in first-seen order, with each group's label.
fn by_setting<'a>(runs: &[&'a Run], skip: &[&str]) -> Vec<(String, Vec<&'a Run>)> {
    let labels = labels(runs, skip);
    let mut groups: Vec<(String, Vec<&Run>)> = Vec::new();
    for (run, label) in runs.iter().zip(labels) {
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, group)) => group.push(run),
            None => groups.push((label, vec![run])),
        }
    }
    groups
}

/// The median over a group's runs of a metric at each step: one diverged
/// or collapsed seed should not hide what the others did (1.1 has one).
fn median_curve(group: &[&Run], metric: &str) -> Vec<(f64, f64)> {
    let mut steps: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for run in group {
        for (step, value) in run.metric(metric) {
            steps.entry(step as i64).or_default().push(value);
        }
    }
    steps
        .into_iter()
        .map(|(step, mut values)| {
            values.sort_by(f64::total_cmp);
            let middle = values.len() / 2;
            let median = if values.len() % 2 == 0 {
                (values[middle - 1] + values[middle]) / 2.0
            } else {
                values[middle]
            };
            (step as f64, median)
        })
        .collect()
}

/// A figure with one series per (group, metric), leaving out empty series.
fn curve_figure(
    file: &str,
    title: &str,
    x: Axis,
    y: Axis,
    groups: &[(String, Vec<&Run>)],
    metrics: &[(&str, &str)],
) -> Option<Figure> {
    let mut series = Vec::new();
    for (label, group) in groups {
        for (metric, suffix) in metrics {
            let points: Vec<(f64, f64)> = median_curve(group, metric)
                .into_iter()
                .filter(|(_, v)| !y.log || *v > 0.0)
                .collect();
            if !points.is_empty() {
                let name = format!("{label} {suffix}").trim().to_string();
                series.push(Series::new(name, points));
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

/// Loss, accuracy and gradient-norm curves per setting (1.1, 1.2, 1.3, 2.2, 3.1).
fn curves(runs: &[Run]) -> Vec<Figure> {
    let trained: Vec<&Run> = runs
        .iter()
        .filter(|r| r.params.experiment != ExperimentKind::Interpolate)
        .collect();
    if trained.is_empty() {
        return Vec::new();
    }
    let groups = by_setting(&trained, &[]);
    let loss = [("train_loss", "train"), ("test_loss", "test")];
    let acc = [("train_acc", "train"), ("test_acc", "test")];
    [
        curve_figure(
            "loss",
            "Loss per epoch (median over seeds)",
            Axis::linear("epoch"),
            Axis::log("loss"),
            &groups,
            &loss,
        ),
        curve_figure(
            "accuracy",
            "Accuracy per epoch (median over seeds)",
            Axis::linear("epoch"),
            Axis::linear("accuracy"),
            &groups,
            &acc,
        ),
        curve_figure(
            "batch-loss",
            "Minibatch loss during training (median over seeds)",
            Axis::linear("step"),
            Axis::log("loss"),
            &groups,
            &[("batch_loss", "")],
        ),
        curve_figure(
            "batch-accuracy",
            "Minibatch accuracy during training (median over seeds)",
            Axis::linear("step"),
            Axis::linear("accuracy"),
            &groups,
            &[("batch_acc", "")],
        ),
        curve_figure(
            "fit-loss",
            "Training loss (MSE, median over seeds)",
            Axis::linear("step"),
            Axis::log("loss"),
            &groups,
            &[("loss", "")],
        ),
        curve_figure(
            "grad-norm",
            "Gradient norm (median over seeds)",
            Axis::linear("step"),
            Axis::log("‖∇θ L‖"),
            &groups,
            &[("grad_norm", "")],
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The swept axes figures are drawn against.
#[derive(Clone, Copy)]
enum Versus {
    Params,
    BatchSize,
}

impl Versus {
    fn value(self, params: &TaskParams) -> Option<f64> {
        match self {
            Self::Params => Some(params.param_count as f64),
            Self::BatchSize => params.batch_size.map(|b| b as f64),
        }
    }

    /// Parameters that move together with this axis.
    fn skip(self) -> &'static [&'static str] {
        match self {
            Self::Params => &["param_count", "width", "budget"],
            Self::BatchSize => &["batch_size"],
        }
    }

    fn file(self) -> &'static str {
        match self {
            Self::Params => "params",
            Self::BatchSize => "batch-size",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Params => "parameters",
            Self::BatchSize => "batch size",
        }
    }
}

/// Final figures against parameter count (3.2) or batch size (3.4): one
/// point per setting (mean over seeds), one series per everything else.
fn versus(runs: &[Run], axis: Versus) -> Vec<Figure> {
    let trained: Vec<&Run> = runs
        .iter()
        .filter(|r| r.params.experiment != ExperimentKind::Interpolate)
        .collect();
    let mut values: Vec<f64> = trained
        .iter()
        .filter_map(|r| axis.value(&r.params))
        .collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    if values.len() < 2 {
        return Vec::new();
    }
    let groups = by_setting(&trained, axis.skip());
    let mut out = Vec::new();
    for Summarized {
        file,
        label,
        figures,
        log,
    } in SUMMARIZED
    {
        let mut series = Vec::new();
        for (group_label, group) in &groups {
            for (figure, suffix) in figures {
                let points = setting_means(group, axis, figure);
                if !points.is_empty() {
                    let name = format!("{group_label} {suffix}").trim().to_string();
                    series.push(Series::new(name, points));
                }
            }
        }
        // A line needs two settings that differ only along the axis.
        if series.iter().any(|s| s.points.len() > 1) {
            out.push(Figure {
                file: format!("{file}-vs-{}", axis.file()),
                title: format!(
                    "{} against {} (mean over seeds)",
                    capitalized(label),
                    axis.label()
                ),
                x: Axis::log(axis.label()),
                y: if log {
                    Axis::log(label)
                } else {
                    Axis::linear(label)
                },
                series,
                scatter: false,
            });
        }
    }
    out
}

/// A figure of summary values against a swept axis.
struct Summarized {
    file: &'static str,
    label: &'static str,
    /// (summary figure, series suffix)
    figures: &'static [(&'static str, &'static str)],
    log: bool,
}

const SUMMARIZED: [Summarized; 4] = [
    Summarized {
        file: "loss",
        label: "loss",
        figures: &[
            ("train_loss", "train"),
            ("test_loss", "test"),
            ("final_loss", ""),
        ],
        log: true,
    },
    Summarized {
        file: "accuracy",
        label: "accuracy",
        figures: &[("train_acc", "train"), ("test_acc", "test")],
        log: false,
    },
    Summarized {
        file: "sensitivity",
        label: "sensitivity ‖∂L/∂x‖",
        figures: &[("sensitivity", "")],
        log: true,
    },
    Summarized {
        file: "minimal-ratio",
        label: "minimal ratio",
        figures: &[("minimal_ratio", "")],
        log: false,
    },
];

/// (axis value, mean of a summary figure) per setting in the group, by axis value.
fn setting_means(group: &[&Run], axis: Versus, figure: &str) -> Vec<(f64, f64)> {
    let mut settings: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for run in group {
        if let (Some(x), Some(y)) = (axis.value(&run.params), run.figure(figure)) {
            let entry = settings.entry(&run.setting).or_insert((x, 0.0, 0.0));
            entry.1 += y;
            entry.2 += 1.0;
        }
    }
    let mut points: Vec<(f64, f64)> = settings.values().map(|(x, sum, n)| (*x, sum / n)).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Loss at the flattest point against the Hessian's minimal ratio, one
/// point per task (2.3).
fn minimal_ratio(runs: &[Run]) -> Option<Figure> {
    let hessian: Vec<&Run> = runs
        .iter()
        .filter(|r| r.params.experiment == ExperimentKind::Hessian)
        .collect();
    let groups = by_setting(&hessian, &[]);
    let series: Vec<Series> = groups
        .into_iter()
        .map(|(label, group)| Series {
            name: label,
            notes: Vec::new(),
            points: group
                .iter()
                .filter_map(|r| {
                    Some((
                        r.figure("minimal_ratio")?,
                        r.figure("loss_at_min_grad_norm")?,
                    ))
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    (!series.is_empty()).then(|| Figure {
        file: "loss-vs-minimal-ratio".into(),
        title: "Loss against minimal ratio at the smallest gradient norm".into(),
        x: Axis::linear("minimal ratio (fraction of eigenvalues > 0)"),
        y: Axis::log("loss"),
        series,
        scatter: true,
    })
}

/// Loss and accuracy along θ(α) = (1-α)·θ₁ + α·θ₂, one series per task (3.3).
fn interpolation(runs: &[Run]) -> Vec<Figure> {
    let paths: Vec<&Run> = runs
        .iter()
        .filter(|r| r.params.experiment == ExperimentKind::Interpolate)
        .collect();
    if paths.is_empty() {
        return Vec::new();
    }
    let labels = labels(&paths, &[]);
    let along = |metric: &str| -> Vec<(String, Vec<(f64, f64)>)> {
        paths
            .iter()
            .zip(&labels)
            .map(|(run, label)| {
                let alphas: BTreeMap<i64, f64> = run
                    .metric("alpha")
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
        for (metric, split) in metrics {
            for (name, points) in along(metric) {
                let points: Vec<(f64, f64)> = points
                    .into_iter()
                    .filter(|(_, v)| !log || *v > 0.0)
                    .collect();
                if !points.is_empty() {
                    series.push(Series::new(format!("{name} {split}"), points));
                }
            }
        }
        (!series.is_empty()).then(|| Figure {
            file: file.into(),
            title: format!(
                "{} along the line between two trained models",
                capitalized(what)
            ),
            x: Axis::linear("α (0: first model, 1: second)"),
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
            [("train_loss", "train"), ("test_loss", "test")],
        ),
        figure(
            "interpolation-accuracy",
            "accuracy",
            false,
            [("train_acc", "train"), ("test_acc", "test")],
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A run's weight snapshots in epoch order, each with the test accuracy
/// recorded at that epoch.
struct Path<'a> {
    run: &'a Run,
    snapshots: Vec<Vec<f32>>,
    accuracies: Vec<Option<f64>>,
}

/// The optimization paths of each model's runs (2.1): their weight
/// snapshots projected on two principal components fitted jointly over every
/// run and snapshot, once for the whole model and once for the second
/// hidden layer's kernel; each point notes its test accuracy, each run its
/// path length in weight space.
async fn paths(store: &dyn Store, runs: &[Run]) -> anyhow::Result<Vec<Figure>> {
    let mut by_model: BTreeMap<&str, Vec<Path>> = BTreeMap::new();
    for run in runs {
        let Some(classify) = &run.params.classify else {
            continue;
        };
        let Some(every) = classify.snapshot_every.filter(|e| *e > 0) else {
            continue;
        };
        let test_acc: BTreeMap<i64, f64> = run
            .metric("test_acc")
            .into_iter()
            .map(|(epoch, acc)| (epoch as i64, acc))
            .collect();
        let mut path = Path {
            run,
            snapshots: Vec::new(),
            accuracies: Vec::new(),
        };
        for epoch in (every..=classify.epochs).step_by(every as usize) {
            let artifact = store
                .artifact(run.task, &artifacts::snapshot(epoch))
                .await?;
            let weights = sweep_worker::model::from_bytes(&artifact.data).ok_or_else(|| {
                anyhow::anyhow!(
                    "task {}: snapshot of epoch {epoch} is not whole f32 values",
                    run.task
                )
            })?;
            path.snapshots.push(weights);
            path.accuracies.push(test_acc.get(&(epoch as i64)).copied());
        }
        by_model
            .entry(&run.params.model_name)
            .or_default()
            .push(path);
    }
    let mut out = Vec::new();
    for (model, paths) in by_model {
        let whole = |_: &Path| None;
        out.extend(path_figure(model, &paths, "", "all weights", whole));
        let layer = |path: &Path| sweep_worker::model::kernel_range(&path.run.params.model, 1);
        out.extend(path_figure(
            model,
            &paths,
            "-layer2",
            "layer 2 kernel",
            layer,
        ));
    }
    Ok(out)
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
            path.snapshots
                .iter()
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
