//! `sweep compare`: for every two settings of a sweep that differ only on
//! one axis (model, batch size, width, learning rate ...), which one is
//! better on a metric, and how sure that is.
//!
//! Each pair gets two tests ([`two_sample`]): Welch's t on the means (with
//! the difference's interval), and Mann-Whitney's U on P(A > B), which a
//! collapsed seed cannot swamp the way it swamps a mean. All pairs' tests
//! form one family, Holm-corrected, so that asking many questions of one
//! sweep does not find differences by chance; a pair is settled when one of
//! its tests survives the correction, and the verdict names it.
//! [`sequential`] is the rule for adding seeds until a pair is settled,
//! [`adaptive`] applies it to the questions of a sweep with adaptive seeds;
//! `listing` writes a comparison as a table, CSV or JSON.

pub mod adaptive;
mod listing;
pub mod sequential;
pub mod two_sample;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sweep_proto::Task;
use sweep_spec::identity::{RUN_ONLY, SEEDS};
use sweep_spec::summary::{FINAL_LOSS, TEST_ACC};

use crate::columns::{flatten, varying};
use crate::stats;
use crate::table::LEADING;
use crate::{Error, Result, text};
use two_sample::{MeanDifference, Superiority};

/// What to compare.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    /// The parameter the two settings of a pair differ in.
    pub axis: String,
    /// The summary number compared; by default test accuracy, else the
    /// final loss, else the first number the report leads with.
    pub metric: Option<String>,
    /// Compare every other level with this one only, instead of every two.
    pub baseline: Option<String>,
    /// The family-wise false-positive rate the verdicts keep.
    pub alpha: f64,
    /// Pair the seeds both settings ran (paired t and sign test).
    pub paired: bool,
}

/// The answer: one [`Pair`] per two settings.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub metric: String,
    pub question: Question,
    pub pairs: Vec<Pair>,
    /// How many tests the Holm correction ran over.
    pub family: usize,
}

/// Two settings that differ only on the axis.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The parameters both share, flattened (`classify.epochs`).
    pub setting: Setting,
    pub a: Side,
    pub b: Side,
    /// A − B of the means (paired: the mean of the differences).
    pub difference: Option<MeanDifference>,
    /// P(A > B), and its bootstrap interval.
    pub superiority: Option<Superiority>,
    pub superiority_interval: Option<(f64, f64)>,
    pub verdict: Verdict,
}

/// One setting of a pair: its level on the axis and its seeds' numbers.
#[derive(Clone, Debug)]
pub struct Side {
    pub level: String,
    pub values: Vec<f64>,
    pub mean: f64,
    pub median: f64,
}

/// Which of a pair is larger, or why that is not known.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Settled {
        a_larger: bool,
        by: Statistic,
        /// Its p-value after the Holm correction.
        adjusted_p: f64,
    },
    /// Neither test survives the correction at alpha.
    NotSettled,
    /// The two tests contradict each other.
    Contradictory,
    /// A side has fewer than two seeds (paired: fewer than two shared).
    TooFewSeeds,
}

sweep_spec::text_enum!(
    /// The test that settled a pair.
    Statistic {
        Welch = "welch t",
        PairedT = "paired t",
        MannWhitney = "mann-whitney u",
        Sign = "sign test",
    }
);

impl Question {
    /// The comparison along `axis` with every default: the default metric,
    /// every pair, alpha 0.05, unpaired.
    pub fn along(axis: &str) -> Self {
        Self {
            axis: axis.into(),
            metric: None,
            baseline: None,
            alpha: 0.05,
            paired: false,
        }
    }
}

/// The axes a sweep's tasks can be compared along: the model when there
/// are several, then each swept parameter that is not a model's size.
pub fn axes(tasks: &[Task]) -> Vec<String> {
    let flat: Vec<Setting> = tasks.iter().map(|t| flatten(&t.params)).collect();
    let models = (tasks.iter().map(|t| &t.params.model_name)).collect::<BTreeSet<_>>();
    let swept = varying(&flat).into_iter().filter(|key| {
        let top = key.split('.').next().unwrap_or(key);
        models.len() < 2 || !SIZE.contains(&top)
    });
    (models.len() > 1)
        .then(|| "model".to_string())
        .into_iter()
        .chain(swept)
        .collect()
}

/// Compares the settings of `tasks` (a sweep's succeeded tasks) that
/// differ only on `question.axis`.
pub fn compare(tasks: &[Task], question: &Question) -> Result<Comparison> {
    check_alpha(question.alpha)?;
    let metric = metric(tasks, question.metric.as_deref())?;
    let groups = group(tasks, &question.axis, &metric)?;
    let mut pairs = Vec::new();
    for (setting, levels) in groups {
        for (a, b) in pairings(&levels, question.baseline.as_deref()) {
            pairs.push(measure(
                &setting,
                &levels[a],
                &levels[b],
                question.paired,
                pairs.len(),
            ));
        }
    }
    if pairs.is_empty() {
        return Err(match &question.baseline {
            Some(baseline) => input(
                "--baseline",
                format!("{baseline:?} is not a level of {}", question.axis),
            ),
            None => input(
                "--by",
                format!(
                    "no two settings of the sweep differ only in {:?}",
                    question.axis
                ),
            ),
        });
    }
    let family = decide(&mut pairs, question);
    Ok(Comparison {
        metric,
        question: question.clone(),
        pairs,
        family,
    })
}

fn check_alpha(alpha: f64) -> Result<()> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(input("--alpha", format!("{alpha} is not between 0 and 1")))
    }
}

fn input(field: &'static str, message: String) -> Error {
    Error::Input { field, message }
}

/// The metric asked for, or the default; an error naming what the tasks
/// recorded when none has it.
fn metric(tasks: &[Task], asked: Option<&str>) -> Result<String> {
    let recorded: BTreeSet<&str> = (tasks.iter())
        .filter_map(|t| t.summary.as_ref())
        .flat_map(|s| s.iter().map(|(name, _)| name))
        .collect();
    let default = [TEST_ACC, FINAL_LOSS].iter().chain(LEADING);
    let chosen = match asked {
        Some(name) => recorded.contains(name).then_some(name),
        None => default.copied().find(|name| recorded.contains(name)),
    };
    chosen.map(str::to_string).ok_or_else(|| {
        let names: Vec<&str> = recorded.into_iter().collect();
        let what = asked.map_or("no default metric".into(), |m| format!("{m:?}"));
        input(
            "--metric",
            format!(
                "no succeeded task recorded {what} (recorded: {})",
                names.join(", ")
            ),
        )
    })
}

/// One level of the axis in one setting: its seeds and their numbers.
struct Level {
    name: String,
    seeds: Vec<(u64, f64)>,
}

/// A task's parameters without its level on the axis and its seeds,
/// flattened: what the two settings of a pair share.
type Setting = BTreeMap<String, Value>;

/// The tasks by setting, then by level, both in the tasks' order.
fn group(tasks: &[Task], axis: &str, metric: &str) -> Result<Vec<(Setting, Vec<Level>)>> {
    let mut groups: Vec<(Setting, Vec<Level>)> = Vec::new();
    let mut levels_seen = BTreeSet::new();
    let mut swept = BTreeSet::new();
    for task in tasks {
        let (level, rest) = split(&task.params, axis);
        swept.extend(rest.keys().cloned());
        let Some(level) = level else { continue };
        levels_seen.insert(level.clone());
        let Some(value) = task.summary.as_ref().and_then(|s| s.get(metric)) else {
            continue;
        };
        let at = match groups.iter().position(|(setting, _)| *setting == rest) {
            Some(at) => at,
            None => {
                groups.push((rest, Vec::new()));
                groups.len() - 1
            }
        };
        let levels = &mut groups[at].1;
        match levels.iter_mut().find(|l| l.name == level) {
            Some(known) => known.seeds.push((task.params.seed, value)),
            None => levels.push(Level {
                name: level,
                seeds: vec![(task.params.seed, value)],
            }),
        }
    }
    if levels_seen.len() < 2 {
        let all: Vec<BTreeMap<String, Value>> = tasks.iter().map(|t| flatten(&t.params)).collect();
        let mut names = varying(&all);
        if tasks
            .iter()
            .any(|t| t.params.model_name != tasks[0].params.model_name)
        {
            names.insert(0, "model".into());
        }
        return Err(input(
            "--by",
            format!(
                "the sweep does not vary {axis:?} (it varies: {})",
                names.join(", ")
            ),
        ));
    }
    Ok(groups)
}

/// Parameters that change with a model's size, so that settings compared
/// by model or by size still pair up.
const SIZE: &[&str] = &["model", "param_count", "width", "budget"];

/// A task's level on `axis`, and its other parameters (without seeds and
/// run-only ones).
fn split(params: &sweep_spec::TaskParams, axis: &str) -> (Option<String>, Setting) {
    let mut flat = flatten(params);
    let top = |key: &str| key.split('.').next().unwrap_or(key).to_string();
    flat.retain(|key, _| {
        let top = top(key);
        !SEEDS.contains(&top.as_str()) && !RUN_ONLY.contains(&top.as_str())
    });
    let sized_axis = axis == "model" || axis == "params" || SIZE.contains(&axis);
    let level = match axis {
        "model" => Some(params.model_name.clone()),
        "params" => Some(params.param_count.to_string()),
        _ => {
            let on_axis: Vec<String> = (flat.iter())
                .filter(|(key, _)| *key == axis || key.starts_with(&format!("{axis}.")))
                .map(|(key, value)| match key == axis {
                    true => text(value),
                    false => format!("{key}={}", text(value)),
                })
                .collect();
            (!on_axis.is_empty()).then(|| on_axis.join(","))
        }
    };
    flat.retain(|key, _| {
        let top = top(key);
        let on_axis = top == axis || key == axis;
        let sized = sized_axis && SIZE.contains(&top.as_str());
        let named = axis == "model" && top == "model_name";
        !(on_axis || sized || named)
    });
    (level, flat)
}

/// The pairs of levels to compare: each with the baseline, or every two.
fn pairings(levels: &[Level], baseline: Option<&str>) -> Vec<(usize, usize)> {
    match baseline {
        Some(name) => match levels.iter().position(|l| l.name == name) {
            Some(base) => (0..levels.len())
                .filter(|&i| i != base)
                .map(|i| (i, base))
                .collect(),
            None => Vec::new(),
        },
        None => (0..levels.len())
            .flat_map(|i| (i + 1..levels.len()).map(move |j| (i, j)))
            .collect(),
    }
}

/// The numbers of one pair; the verdict waits for the whole family.
fn measure(setting: &Setting, a: &Level, b: &Level, paired: bool, index: usize) -> Pair {
    let (values_a, values_b): (Vec<f64>, Vec<f64>) = if paired {
        let b_by_seed: BTreeMap<u64, f64> = b.seeds.iter().copied().collect();
        (a.seeds.iter())
            .filter_map(|(seed, va)| b_by_seed.get(seed).map(|vb| (*va, *vb)))
            .unzip()
    } else {
        (
            a.seeds.iter().map(|s| s.1).collect(),
            b.seeds.iter().map(|s| s.1).collect(),
        )
    };
    let (difference, superiority) = if paired {
        (
            two_sample::paired(&values_a, &values_b),
            two_sample::sign_test(&values_a, &values_b),
        )
    } else {
        (
            two_sample::welch(&values_a, &values_b),
            two_sample::mann_whitney(&values_a, &values_b),
        )
    };
    let side = |level: &Level, values: Vec<f64>| Side {
        level: level.name.clone(),
        mean: stats::mean(&values),
        median: stats::median(&values),
        values,
    };
    Pair {
        setting: setting.clone(),
        superiority_interval: two_sample::bootstrap(&values_a, &values_b, paired, index as u64),
        a: side(a, values_a),
        b: side(b, values_b),
        difference,
        superiority,
        verdict: Verdict::TooFewSeeds,
    }
}

/// Holm-corrects every test of every pair with two seeds a side, and
/// gives each pair its verdict; returns the family's size.
fn decide(pairs: &mut [Pair], question: &Question) -> usize {
    let (t, rank) = if question.paired {
        (Statistic::PairedT, Statistic::Sign)
    } else {
        (Statistic::Welch, Statistic::MannWhitney)
    };
    // (pair, statistic, p, A larger?)
    let mut tests: Vec<(usize, Statistic, f64, bool)> = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        if let (Some(d), Some(s)) = (pair.difference, pair.superiority) {
            tests.push((i, t, d.p, d.difference > 0.0));
            tests.push((i, rank, s.p, s.probability > 0.5));
        }
    }
    let adjusted = two_sample::holm(&tests.iter().map(|t| t.2).collect::<Vec<_>>());
    for (i, pair) in pairs.iter_mut().enumerate() {
        let mut rejected: Vec<(Statistic, f64, bool)> = (tests.iter().zip(&adjusted))
            .filter(|((at, ..), adjusted)| *at == i && **adjusted < question.alpha)
            .map(|((_, by, _, larger), adjusted)| (*by, *adjusted, *larger))
            .collect();
        rejected.sort_by(|x, y| x.1.total_cmp(&y.1));
        let tested = tests.iter().any(|test| test.0 == i);
        pair.verdict = match rejected.as_slice() {
            _ if !tested => Verdict::TooFewSeeds,
            [] => Verdict::NotSettled,
            [first, rest @ ..] if rest.iter().any(|r| r.2 != first.2) => Verdict::Contradictory,
            [(by, adjusted_p, a_larger), ..] => Verdict::Settled {
                a_larger: *a_larger,
                by: *by,
                adjusted_p: *adjusted_p,
            },
        };
    }
    tests.len()
}

#[cfg(test)]
mod tests {
    use sweep_proto::{SweepId, TaskId, TaskState};
    use sweep_spec::{Summary, planner};

    use super::*;

    /// A finished sweep of `models` over `seeds` seeds and batch sizes 32
    /// and 64, each task's `metric` given by `value(model, batch, seed)`.
    pub(super) fn sweep(
        models: &[&str],
        seeds: u64,
        metric: &str,
        value: impl Fn(&str, u64, u64) -> f64,
    ) -> Vec<Task> {
        let models: Vec<String> = (models.iter())
            .map(|m| format!("[[models]]\nname = \"{m}\"\nkind = \"mlp\"\nhidden = [8]\n"))
            .collect();
        let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
        let spec = format!(
            "name = \"t\"\nexperiment = \"classify\"\ndataset = \"mnist\"\n\
             train = {{ lr = 1e-3, epochs = 2 }}\n{}[grid]\nbatch_size = [32, 64]\nseed = [{}]\n",
            models.concat(),
            seeds.join(", ")
        );
        let plan = planner::submission(&spec).unwrap().plan;
        (plan.tasks.into_iter().enumerate())
            .map(|(i, planned)| {
                let p = planned.params;
                let mut summary = Summary::new();
                summary.set(metric, value(&p.model_name, p.batch_size.unwrap(), p.seed));
                Task {
                    id: TaskId(i as i64 + 1),
                    sweep_id: SweepId(1),
                    state: TaskState::Succeeded,
                    params: p,
                    depends_on: Vec::new(),
                    attempt: 1,
                    max_attempts: 3,
                    worker: None,
                    started_at: None,
                    finished_at: None,
                    resumed_from: 0,
                    cached_from: None,
                    error: None,
                    summary: Some(summary),
                }
            })
            .collect()
    }

    fn question(axis: &str) -> Question {
        Question::along(axis)
    }

    /// 1.1 at full scale: most deep fits end far below every shallow one,
    /// two collapse (6.37 and 26.98), and the means say nothing.
    fn collapsed(model: &str, _batch: u64, seed: u64) -> f64 {
        let jitter = seed as f64 * 1e-3;
        match (model, seed) {
            ("deep", 3) => 6.37,
            ("deep", 11) => 26.98,
            ("deep", _) => 0.05 + jitter,
            _ => 1.73 + jitter,
        }
    }

    #[test]
    fn collapsed_runs_hide_from_welch_but_not_from_the_ranks() {
        let tasks = sweep(&["deep", "shallow"], 20, FINAL_LOSS, collapsed);
        assert_eq!(axes(&tasks), ["model", "batch_size"]);
        let comparison = compare(&tasks, &question("model")).unwrap();
        assert_eq!(comparison.metric, FINAL_LOSS);
        assert_eq!(comparison.pairs.len(), 2, "one pair per batch size");
        assert_eq!(comparison.family, 4);
        for pair in &comparison.pairs {
            assert_eq!(
                (pair.a.level.as_str(), pair.b.level.as_str()),
                ("deep", "shallow")
            );
            assert!(pair.difference.unwrap().p > 0.05, "welch alone cannot tell");
            let superiority = pair.superiority.unwrap();
            assert!((superiority.probability - 0.1).abs() < 1e-12);
            let Verdict::Settled { a_larger, by, .. } = pair.verdict.clone() else {
                panic!("{:?}", pair.verdict);
            };
            assert_eq!((a_larger, by), (false, Statistic::MannWhitney));
            assert!(
                comparison
                    .verdict(pair)
                    .starts_with("deep better (mann-whitney u")
            );
        }
        let table = comparison.listing(true);
        assert_eq!(table.columns[0], "batch_size");
        assert!(table.note.unwrap().contains("lower is better"));
    }

    #[test]
    fn a_setting_against_itself_under_another_name_is_never_settled() {
        let same = |_: &str, batch: u64, seed: u64| 0.9 + 1e-3 * ((seed * 7 + batch) % 5) as f64;
        let tasks = sweep(&["a", "b"], 10, TEST_ACC, same);
        let comparison = compare(&tasks, &question("model")).unwrap();
        for pair in &comparison.pairs {
            assert_eq!(pair.verdict, Verdict::NotSettled, "{pair:?}");
            let d = pair.difference.unwrap();
            assert!(d.low < 0.0 && 0.0 < d.high, "{d:?}");
        }
    }

    #[test]
    fn the_batch_axis_pairs_settings_of_one_model_and_pairs_seeds_when_asked() {
        let smaller_better =
            |_: &str, batch: u64, seed: u64| 0.95 - batch as f64 * 1e-4 + 1e-3 * (seed % 3) as f64;
        let tasks = sweep(&["dnn"], 5, TEST_ACC, smaller_better);
        let mut asked = question("batch_size");
        asked.paired = true;
        let comparison = compare(&tasks, &asked).unwrap();
        let [pair] = comparison.pairs.as_slice() else {
            panic!("{:?}", comparison.pairs)
        };
        assert_eq!((pair.a.level.as_str(), pair.b.level.as_str()), ("32", "64"));
        let d = pair.difference.unwrap();
        assert!((d.difference - 32.0 * 1e-4).abs() < 1e-12 && d.low == d.high);
        assert!(comparison.verdict(pair).starts_with("32 better (paired t"));
        let full = comparison.listing(false).json();
        assert_eq!(full[0]["n_a"], 5);
        assert_eq!(full[0]["decided_by"], "paired t");
    }

    #[test]
    fn what_the_sweep_cannot_answer_is_named_by_its_flag() {
        let tasks = sweep(&["dnn"], 1, TEST_ACC, |_, b, _| b as f64);
        let message = |q: &Question| compare(&tasks, q).unwrap_err().to_string();
        assert_eq!(
            message(&question("model")),
            "--by: the sweep does not vary \"model\" (it varies: batch_size)"
        );
        assert!(message(&question("lr")).starts_with("--by: the sweep does not vary \"lr\""));
        let mut unknown = question("batch_size");
        unknown.metric = Some("test_ac".into());
        assert_eq!(
            message(&unknown),
            "--metric: no succeeded task recorded \"test_ac\" (recorded: test_acc)"
        );
        let mut baseline = question("batch_size");
        baseline.baseline = Some("128".into());
        assert_eq!(
            message(&baseline),
            "--baseline: \"128\" is not a level of batch_size"
        );
        let mut alpha = question("batch_size");
        alpha.alpha = 1.5;
        assert_eq!(message(&alpha), "--alpha: 1.5 is not between 0 and 1");
        let one_seed = compare(&tasks, &question("batch_size")).unwrap();
        assert_eq!(one_seed.pairs[0].verdict, Verdict::TooFewSeeds);
        assert_eq!(
            one_seed.verdict(&one_seed.pairs[0]),
            "not settled: fewer than 2 seeds on a side"
        );
    }
}
