//! `sweep report`: one row per swept setting with the mean ± std over seeds
//! of every figure, aggregated by the store (see `Store::report`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sweep_coordinator::store::{SettingReport, Store};
use sweep_proto::SweepId;

use crate::args::Format;
use crate::output::Listing;

/// Figures shown first, in this order, when a sweep has them.
const LEADING: &[&str] = &[
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "final_loss",
];

/// Figures the table leaves out to stay readable: bookkeeping, and details
/// next to the figure that matters (CSV and JSON keep them all).
const BOOKKEEPING: &[&str] = &[
    "steps",
    "epochs",
    "param_count",
    "train_examples",
    "test_examples",
    "points",
    "eigenvalues",
    "tol",
    "min_grad_norm_step",
    "min_loss",
    "lambda_min",
    "lambda_max",
    "negative_fraction",
    "positive_fraction",
    "train_loss_at_0",
    "train_loss_at_1",
];

/// Parameters that never make a setting column: the seeds are what a row
/// aggregates over, and the shape is named by the model and its size.
const HIDDEN_PARAMS: &[&str] = &["seed", "init_seed", "model", "model_name", "param_count"];

pub async fn report(store: &dyn Store, sweep: u64, format: Format) -> anyhow::Result<()> {
    let rows = store.report(SweepId(sweep as i64)).await?;
    anyhow::ensure!(!rows.is_empty(), "sweep {sweep} has no tasks");
    listing(&rows, format)?.print(format)
}

/// The report as a listing: the table shows `mean ± std` cells and hides
/// bookkeeping; CSV and JSON get separate mean and std columns for all.
pub fn listing(rows: &[SettingReport], format: Format) -> anyhow::Result<Listing> {
    let params = rows
        .iter()
        .map(|row| Ok(flatten(&serde_json::from_str(&row.params)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let varying = varying_params(&params);
    let figures = figure_names(rows, format == Format::Table);

    let mut columns: Vec<String> = vec!["model".into(), "params".into()];
    columns.extend(varying.iter().cloned());
    columns.extend(["seeds".into(), "failed".into()]);
    for name in &figures {
        if format == Format::Table {
            columns.push(name.clone());
        } else {
            columns.extend([format!("{name}_mean"), format!("{name}_std")]);
        }
    }
    let mut listing = Listing {
        columns,
        rows: Vec::new(),
    };
    for (row, params) in rows.iter().zip(&params) {
        let mut cells = vec![
            params.get("model_name").cloned().unwrap_or(Value::Null),
            params.get("param_count").cloned().unwrap_or(Value::Null),
        ];
        cells.extend(
            varying
                .iter()
                .map(|key| params.get(key).cloned().unwrap_or(Value::Null)),
        );
        let seeds = if format == Format::Table {
            json!(format!("{}/{}", row.succeeded, row.tasks))
        } else {
            json!(row.succeeded)
        };
        cells.extend([seeds, json!(row.failed)]);
        for name in &figures {
            let stats = row.figures.get(name);
            if format == Format::Table {
                cells.push(stats.map_or(Value::Null, |s| {
                    json!(match s.std {
                        Some(std) => format!("{} ± {}", number(s.mean), number(std)),
                        None => number(s.mean),
                    })
                }));
            } else {
                cells.push(stats.map_or(Value::Null, |s| json!(s.mean)));
                cells.push(
                    stats
                        .and_then(|s| s.std)
                        .map_or(Value::Null, |std| json!(std)),
                );
            }
        }
        listing.push(cells);
    }
    Ok(listing)
}

/// A short name for each setting: its model and the parameters that vary
/// between the settings ("dnn1 batch_size=64"), leaving out `skip` (the
/// parameters a figure puts on its axis).
pub fn setting_labels(params: &[Value], skip: &[&str]) -> Vec<String> {
    let flat: Vec<BTreeMap<String, Value>> = params.iter().map(flatten).collect();
    let varying: Vec<String> = varying_params(&flat)
        .into_iter()
        .filter(|key| !skip.contains(&key.split('.').next().unwrap_or(key)))
        .collect();
    flat.iter()
        .map(|p| {
            let mut label = p
                .get("model_name")
                .map(crate::output::text)
                .unwrap_or_default();
            for key in &varying {
                let value = p.get(key).map(crate::output::text).unwrap_or_default();
                let short = key.rsplit('.').next().unwrap_or(key);
                label = format!("{label} {short}={value}");
            }
            label.trim().to_string()
        })
        .collect()
}

/// Leaves of a JSON object as `a.b.c` keys.
fn flatten(value: &Value) -> BTreeMap<String, Value> {
    let mut leaves = BTreeMap::new();
    let mut stack = vec![(String::new(), value)];
    while let Some((prefix, value)) = stack.pop() {
        match value {
            Value::Object(object) => {
                for (key, inner) in object {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    stack.push((key, inner));
                }
            }
            leaf => {
                leaves.insert(prefix, leaf.clone());
            }
        }
    }
    leaves
}

/// Parameters whose values differ between settings: the swept ones.
fn varying_params(params: &[BTreeMap<String, Value>]) -> Vec<String> {
    let keys: BTreeSet<&String> = params.iter().flat_map(|p| p.keys()).collect();
    keys.into_iter()
        .filter(|key| {
            let top = key.split('.').next().unwrap_or(key);
            !HIDDEN_PARAMS.contains(&top)
        })
        // Absent is not a value: an interpolation next to its trainings
        // has other keys, and those do not make columns.
        .filter(|key| {
            let mut values = params.iter().filter_map(|p| p.get(*key));
            let first = values.next();
            values.any(|v| Some(v) != first)
        })
        .cloned()
        .collect()
}

fn figure_names(rows: &[SettingReport], hide_bookkeeping: bool) -> Vec<String> {
    let all: BTreeSet<&String> = rows.iter().flat_map(|r| r.figures.keys()).collect();
    let mut names: Vec<String> = LEADING
        .iter()
        .filter(|name| all.iter().any(|n| n == *name))
        .map(|name| name.to_string())
        .collect();
    names.extend(
        all.into_iter()
            .filter(|name| !LEADING.contains(&name.as_str()))
            .filter(|name| !(hide_bookkeeping && BOOKKEEPING.contains(&name.as_str())))
            .cloned(),
    );
    names
}

/// Four significant digits, in scientific notation when very large or small.
fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-3..1e4).contains(&magnitude) {
        format!("{value:.3e}")
    } else {
        format!("{value:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_coordinator::store::FigureStats;

    fn row(params: Value, tasks: u64, figures: &[(&str, f64, Option<f64>)]) -> SettingReport {
        SettingReport {
            params: params.to_string(),
            tasks,
            succeeded: tasks,
            failed: 0,
            figures: figures
                .iter()
                .map(|(name, mean, std)| {
                    let stats = FigureStats {
                        n: tasks,
                        mean: *mean,
                        std: *std,
                    };
                    (name.to_string(), stats)
                })
                .collect(),
        }
    }

    fn rows() -> Vec<SettingReport> {
        let params = |batch: u64| {
            json!({"model_name": "cnn", "param_count": 1000, "batch_size": batch, "lr": 0.001,
                   "seed": batch, "classify": {"epochs": 2}})
        };
        vec![
            row(
                params(32),
                3,
                &[("test_acc", 0.9, Some(0.01)), ("steps", 10.0, Some(0.0))],
            ),
            row(
                params(64),
                3,
                &[("test_acc", 0.85, Some(0.02)), ("sensitivity", 2.5, None)],
            ),
        ]
    }

    #[test]
    fn the_table_shows_swept_parameters_and_mean_plus_minus_std() {
        let listing = listing(&rows(), Format::Table).unwrap();
        assert_eq!(
            listing.columns,
            [
                "model",
                "params",
                "batch_size",
                "seeds",
                "failed",
                "test_acc",
                "sensitivity"
            ]
        );
        assert_eq!(listing.rows[0][2], json!(32));
        assert_eq!(listing.rows[0][5], json!("0.9000 ± 0.0100"));
        assert_eq!(listing.rows[1][6], json!("2.5000"), "one seed: no spread");
        assert_eq!(listing.rows[0][6], Value::Null);
    }

    #[test]
    fn csv_and_json_keep_every_figure_as_numbers() {
        let listing = listing(&rows(), Format::Json).unwrap();
        assert!(listing.columns.contains(&"steps_mean".to_string()));
        let json = listing.json();
        assert_eq!(json[1]["test_acc_mean"], json!(0.85));
        assert_eq!(json[1]["test_acc_std"], json!(0.02));
        assert_eq!(json[1]["sensitivity_std"], Value::Null);
        assert_eq!(json[0]["seeds"], json!(3));
    }

    #[test]
    fn numbers_keep_four_significant_places() {
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(123456.0), "1.235e5");
        assert_eq!(number(0.0), "0.0000");
    }
}
