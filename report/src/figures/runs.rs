//! A sweep's succeeded tasks as the figures read them, loaded once from the
//! store (weight snapshots included), grouped by setting, and the
//! statistics the figures draw (medians over seeds).

use std::collections::BTreeMap;

use sweep_proto::{Metric, Results, SweepId, TaskId, TaskState};
use sweep_spec::{Summary, TaskParams, weights};

use crate::columns::setting_labels;
use crate::{Error, Result};

/// A succeeded task with what the figures read from it.
pub struct Run {
    pub params: TaskParams,
    /// [`TaskParams::setting_key`]: runs that share it differ only in seeds.
    pub setting: String,
    pub summary: Summary,
    pub metrics: Vec<Metric>,
    /// Weight snapshots (2.1) in epoch order: `(epoch, flat weights)`.
    pub snapshots: Vec<(u64, Vec<f32>)>,
}

impl Run {
    /// The points of one metric, by step.
    pub fn metric(&self, name: &str) -> Vec<(f64, f64)> {
        self.metrics
            .iter()
            .filter(|m| m.point.name == name)
            .map(|m| (m.point.step as f64, m.point.value))
            .collect()
    }
}

/// Every succeeded task of the sweep with its metrics and snapshots.
pub async fn load(source: &dyn Results, sweep: SweepId) -> Result<Vec<Run>> {
    let tasks = source.tasks(sweep, &[TaskState::Succeeded]).await?;
    let mut runs = Vec::with_capacity(tasks.len());
    for task in tasks {
        let snapshots = snapshots(source, task.id, &task.params).await?;
        runs.push(Run {
            setting: task.params.setting_key(),
            summary: task.summary.unwrap_or_default(),
            metrics: source.metrics(task.id).await?,
            params: task.params,
            snapshots,
        });
    }
    Ok(runs)
}

/// The weight snapshots a classify task stored every `snapshot_every` epochs.
async fn snapshots(
    source: &dyn Results,
    task: TaskId,
    params: &TaskParams,
) -> Result<Vec<(u64, Vec<f32>)>> {
    let Some(classify) = params.experiment.classify() else {
        return Ok(Vec::new());
    };
    let Some(every) = classify.snapshot_every.filter(|e| *e > 0) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for epoch in (every..=classify.epochs).step_by(every as usize) {
        let artifact = source.artifact(task, &weights::snapshot(epoch)).await?;
        let flat = weights::from_bytes(&artifact.data).ok_or(Error::Snapshot { task, epoch })?;
        out.push((epoch, flat));
    }
    Ok(out)
}

/// Labels for the runs' settings, leaving out the `skip` parameters.
pub fn labels(runs: &[&Run], skip: &[&str]) -> Vec<String> {
    let params: Vec<&TaskParams> = runs.iter().map(|run| &run.params).collect();
    setting_labels(&params, skip)
}

/// Runs grouped by setting, in first-seen order, with each group's label.
pub fn by_setting<'a>(runs: &[&'a Run], skip: &[&str]) -> Vec<(String, Vec<&'a Run>)> {
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

/// The most seeds any one setting has among `runs`.
pub fn seeds(runs: &[&Run]) -> usize {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for run in runs {
        *counts.entry(run.setting.as_str()).or_default() += 1;
    }
    counts.into_values().max().unwrap_or(0)
}

/// " (median over 5 seeds)" for a title; nothing when there is one seed,
/// where there is nothing to take a median or mean over.
/// What a title says of a figure over seeds: the statistic its points are
/// and what its bars or bands show; nothing for one seed.
pub fn over_seeds(statistic: &str, seeds: usize, spread: &str) -> String {
    if seeds > 1 {
        format!(" ({statistic} over {seeds} seeds; {spread})")
    } else {
        String::new()
    }
}

/// The median over a group's runs of a metric at each step, and the
/// middle half of the runs (first to third quartile) around it: one
/// diverged or collapsed seed should not hide what the others did (1.1 has
/// one).
pub fn median_curve(group: &[&Run], metric: &str) -> Vec<((f64, f64), (f64, f64))> {
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
            let at = |q: f64| crate::stats::quantile(&values, q);
            ((step as f64, at(0.5)), (at(0.25), at(0.75)))
        })
        .collect()
}
