//! Summary numbers against a swept axis: one point per setting (the mean
//! over its seeds) against parameter count (3.2) or batch size (3.4), and
//! one point per task of loss against minimal ratio (2.3).

use std::collections::BTreeMap;

use sweep_spec::{ExperimentKind, summary};

use super::runs::{Run, by_setting, over_seeds, seeds};
use super::{Axis, Figure, Series, capitalized};
use crate::stats::Spread;

/// The swept axes figures are drawn against.
#[derive(Clone, Copy)]
pub enum Versus {
    Params,
    BatchSize,
}

impl Versus {
    /// Where a run sits on the axis: for batch size, the batch it trained
    /// with (a spec's 10,000 on 8,000 examples is a batch of 8,000).
    fn value(self, run: &Run) -> Option<f64> {
        match self {
            Self::Params => Some(run.params.param_count as f64),
            Self::BatchSize => run
                .summary
                .get(summary::BATCH_SIZE_USED)
                .or(run.params.batch_size.map(|b| b as f64)),
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

    /// The x axis's label; against batch size it notes the optimizer steps
    /// each batch size took (a batch of 10 takes 800 times the steps of a
    /// batch of 8,000), which explains much of what the figure shows.
    fn axis_label(self, runs: &[&Run]) -> String {
        let mut steps: BTreeMap<u64, f64> = BTreeMap::new();
        if let Self::BatchSize = self {
            for run in runs {
                if let (Some(batch), Some(taken)) =
                    (self.value(run), run.summary.get(summary::STEPS))
                {
                    steps.insert(batch as u64, taken);
                }
            }
        }
        if steps.is_empty() {
            return self.label().to_string();
        }
        let notes: Vec<String> = steps
            .iter()
            .map(|(batch, taken)| format!("{taken} at {batch}"))
            .collect();
        format!("{} (steps: {})", self.label(), notes.join(", "))
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
pub fn versus(runs: &[Run], axis: Versus) -> Vec<Figure> {
    let trained: Vec<&Run> = runs
        .iter()
        .filter(|r| r.params.kind() != ExperimentKind::Interpolate)
        .collect();
    let mut values: Vec<f64> = trained.iter().filter_map(|r| axis.value(r)).collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    if values.len() < 2 {
        return Vec::new();
    }
    let groups = by_setting(&trained, axis.skip());
    let x_label = axis.axis_label(&trained);
    let mut out = Vec::new();
    for Summarized {
        file,
        label,
        figures,
        log,
        within,
    } in SUMMARIZED
    {
        let mut series = Vec::new();
        for (index, (group_label, group)) in groups.iter().enumerate() {
            let drawn = series.len();
            for (figure, suffix) in figures {
                let means = setting_means(group, axis, figure);
                let points = means.iter().map(|(x, s)| (*x, s.mean)).collect();
                let bounds = (means.iter())
                    .map(|(_, s)| {
                        let (low, high) = s.interval().unwrap_or((s.mean, s.mean));
                        within.map_or((low, high), |(least, most)| {
                            (low.max(least), high.min(most))
                        })
                    })
                    .collect();
                if !means.is_empty() {
                    let name = format!("{group_label} {suffix}").trim().to_string();
                    let quantity = series.len() - drawn;
                    let drawn = Series::new(name, points).with_bounds(bounds);
                    series.push(drawn.of_group(index, quantity));
                }
            }
        }
        // A line needs two settings that differ only along the axis.
        if series.iter().any(|s| s.points.len() > 1) {
            out.push(Figure {
                file: format!("{file}-vs-{}", axis.file()),
                title: format!(
                    "{} against {}{}",
                    capitalized(label),
                    axis.label(),
                    over_seeds("mean", seeds(&trained), "bars: 95% CI of the mean")
                ),
                x: Axis::log(&x_label),
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
    /// The values the quantity can take, where its bars end: a t interval
    /// over few seeds of an accuracy may reach past 1 or below 0.
    within: Option<(f64, f64)>,
}

const SUMMARIZED: [Summarized; 4] = [
    Summarized {
        file: "loss",
        label: "loss",
        figures: &[
            (summary::TRAIN_LOSS, "train"),
            (summary::TEST_LOSS, "test"),
            (summary::FINAL_LOSS, ""),
        ],
        log: true,
        within: None,
    },
    Summarized {
        file: "accuracy",
        label: "accuracy",
        figures: &[(summary::TRAIN_ACC, "train"), (summary::TEST_ACC, "test")],
        log: false,
        within: Some((0.0, 1.0)),
    },
    Summarized {
        file: "sensitivity",
        label: "sensitivity ‖∂L/∂x‖",
        figures: &[
            (summary::SENSITIVITY, "whole test set"),
            (summary::SENSITIVITY_RMS, "per example (rms)"),
        ],
        log: true,
        within: None,
    },
    Summarized {
        file: "minimal-ratio",
        label: "minimal ratio",
        figures: &[(summary::MINIMAL_RATIO, "")],
        log: false,
        within: Some((0.0, 1.0)),
    },
];

/// (axis value, a summary figure over the seeds) per setting in the group,
/// by axis value.
fn setting_means(group: &[&Run], axis: Versus, figure: &str) -> Vec<(f64, Spread)> {
    let mut settings: BTreeMap<&str, (f64, Vec<f64>)> = BTreeMap::new();
    for run in group {
        if let (Some(x), Some(y)) = (axis.value(run), run.summary.get(figure)) {
            settings
                .entry(&run.setting)
                .or_insert((x, Vec::new()))
                .1
                .push(y);
        }
    }
    let mut points: Vec<(f64, Spread)> = (settings.into_values())
        .map(|(x, values)| (x, Spread::of_values(&values)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Loss at the flattest point against the Hessian's minimal ratio, one
/// point per task (2.3).
pub fn minimal_ratio(runs: &[Run]) -> Option<Figure> {
    let hessian: Vec<&Run> = runs
        .iter()
        .filter(|r| r.params.kind() == ExperimentKind::Hessian)
        .collect();
    let groups = by_setting(&hessian, &[]);
    let series: Vec<Series> = groups
        .into_iter()
        .map(|(label, group)| Series {
            name: label,
            notes: Vec::new(),
            style: None,
            bounds: Vec::new(),
            points: group
                .iter()
                .filter_map(|r| {
                    Some((
                        r.summary.get(summary::MINIMAL_RATIO)?,
                        r.summary.get(summary::LOSS_AT_MIN_GRAD_NORM)?,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sweep_spec::{Summary, planner};

    use super::*;

    /// Two seeds a batch size whose test accuracies are 0.1 and 0.9 (a
    /// collapsed run beside a trained one, as 3.2's narrowest net at quick
    /// scale): a t interval over two values runs from about -4.6 to 5.6.
    fn runs() -> Vec<Run> {
        let spec = "name = \"t\"\nexperiment = \"classify\"\ndataset = \"mnist\"\n\
                    model = { kind = \"mlp\", hidden = [8] }\ntrain = { lr = 1e-3, epochs = 1 }\n\
                    [grid]\nbatch_size = [32, 64]\nseed = [0, 1]\n";
        let plan = planner::submission(spec).unwrap().plan;
        (plan.tasks.into_iter())
            .map(|planned| {
                let mut summary = Summary::new();
                let accuracy = if planned.params.seed == 0 { 0.1 } else { 0.9 };
                summary.set(summary::TEST_ACC, accuracy);
                Run {
                    setting: planned.params.setting_key(),
                    params: planned.params,
                    summary,
                    metrics: Vec::new(),
                    snapshots: Vec::new(),
                }
            })
            .collect()
    }

    #[test]
    fn an_accuracys_bars_end_at_0_and_1() {
        let figures = versus(&runs(), Versus::BatchSize);
        let accuracy = (figures.iter())
            .find(|f| f.file == "accuracy-vs-batch-size")
            .expect("an accuracy figure");
        let bounds: BTreeMap<u64, (f64, f64)> = (accuracy.series[0].points.iter())
            .zip(&accuracy.series[0].bounds)
            .map(|(&(x, _), &b)| (x as u64, b))
            .collect();
        assert_eq!(bounds.len(), 2);
        assert!(bounds.values().all(|b| *b == (0.0, 1.0)), "{bounds:?}");
    }
}
