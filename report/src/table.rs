//! The report: one row per swept setting with the mean ± std over seeds of
//! every summary number, from the aggregates the store computes in SQL
//! (`Results::aggregate`), for `sweep report` and the dashboard.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sweep_proto::{SettingStats, Stats};
use sweep_spec::summary::*;

use crate::Listing;
use crate::columns::{flatten, varying};

/// How the numbers are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// For people: `mean ± std` cells, bookkeeping left out.
    Table,
    /// For scripts: separate mean and std columns, every number.
    Full,
}

/// Numbers shown first, in this order, when a sweep has them.
const LEADING: &[&str] = &[TRAIN_LOSS, TRAIN_ACC, TEST_LOSS, TEST_ACC, FINAL_LOSS];

/// Numbers the table leaves out to stay readable: bookkeeping, and details
/// next to the number that matters (CSV and JSON keep them all).
const BOOKKEEPING: &[&str] = &[
    STEPS,
    EPOCHS,
    PARAM_COUNT,
    BATCH_SIZE_USED,
    TRAIN_EXAMPLES,
    TEST_EXAMPLES,
    POINTS,
    EIGENVALUES,
    ABS_TOL,
    REL_TOL,
    POSITIVE_FRACTION_REL,
    NEGATIVE_FRACTION_REL,
    MIN_GRAD_NORM_STEP,
    MIN_LOSS,
    LAMBDA_MIN,
    LAMBDA_MAX,
    NEGATIVE_FRACTION,
    POSITIVE_FRACTION,
    TRAIN_LOSS_AT_0,
    TRAIN_LOSS_AT_1,
];

/// The report as a listing: the table shows `mean ± std` cells and hides
/// bookkeeping; CSV and JSON get separate mean and std columns for all.
pub fn listing(rows: &[SettingStats], layout: Layout) -> Listing {
    let params: Vec<_> = rows.iter().map(|row| flatten(&row.params)).collect();
    let varying = varying(&params);
    let names = summary_names(rows, layout == Layout::Table);

    let mut columns: Vec<String> = vec!["model".into(), "params".into()];
    columns.extend(varying.iter().cloned());
    columns.extend(["seeds".into(), "failed".into()]);
    for name in &names {
        if layout == Layout::Table {
            columns.push(name.clone());
        } else {
            columns.extend([format!("{name}_mean"), format!("{name}_std")]);
        }
    }
    let notations: Vec<Notation> = names
        .iter()
        .map(|name| Notation::of(rows.iter().filter_map(|row| row.summary.get(name))))
        .collect();
    let mut listing = Listing {
        columns,
        rows: Vec::new(),
    };
    for (row, params) in rows.iter().zip(&params) {
        let mut cells = vec![json!(row.params.model_name), json!(row.params.param_count)];
        cells.extend(
            varying
                .iter()
                .map(|key| params.get(key).cloned().unwrap_or(Value::Null)),
        );
        let seeds = if layout == Layout::Table {
            json!(format!("{}/{}", row.succeeded, row.tasks))
        } else {
            json!(row.succeeded)
        };
        cells.extend([seeds, json!(row.failed)]);
        for (name, notation) in names.iter().zip(&notations) {
            let stats = row.summary.get(name);
            if layout == Layout::Table {
                cells.push(stats.map_or(Value::Null, |s| json!(notation.cell(s.mean, s.std))));
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
    listing
}

fn summary_names(rows: &[SettingStats], hide_bookkeeping: bool) -> Vec<String> {
    let all: BTreeSet<&String> = rows.iter().flat_map(|r| r.summary.keys()).collect();
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

/// How a column of the table writes its numbers: one way for all of them,
/// so that a column never mixes `0.0026` with `8.254e-4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Notation {
    /// Whole numbers (a count that every seed agrees on).
    Whole,
    /// Four decimal places.
    Fixed,
    /// Four significant digits, for columns with very large or small
    /// numbers.
    Scientific,
}

impl Notation {
    /// The notation that writes every mean and std of a column.
    fn of<'a>(stats: impl Iterator<Item = &'a Stats>) -> Self {
        let numbers: Vec<f64> = stats
            .flat_map(|s| std::iter::once(s.mean).chain(s.std))
            .filter(|v| v.is_finite())
            .collect();
        if numbers.iter().all(|v| v.fract() == 0.0 && v.abs() < 1e15) {
            Self::Whole
        } else if (numbers.iter()).any(|v| *v != 0.0 && !(1e-3..1e4).contains(&v.abs())) {
            Self::Scientific
        } else {
            Self::Fixed
        }
    }

    fn number(self, value: f64) -> String {
        match self {
            Self::Whole => format!("{value:.0}"),
            Self::Fixed => format!("{value:.4}"),
            Self::Scientific => format!("{value:.3e}"),
        }
    }

    /// `mean ± std`, or the mean alone for one seed.
    fn cell(self, mean: f64, std: Option<f64>) -> String {
        match std {
            Some(std) => format!("{} ± {}", self.number(mean), self.number(std)),
            None => self.number(mean),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_spec::TaskParams;

    use crate::columns::tests::planned;

    /// The first seed's parameters of each batch size of a CNN sweep.
    fn params() -> Vec<TaskParams> {
        let tasks = planned(r#"{ kind = "cnn", convs = [4] }"#, 3);
        tasks.into_iter().step_by(3).collect()
    }

    fn row(params: TaskParams, tasks: u64, values: &[(&str, f64, Option<f64>)]) -> SettingStats {
        SettingStats {
            params,
            tasks,
            succeeded: tasks,
            failed: 0,
            summary: values
                .iter()
                .map(|(name, mean, std)| {
                    let stats = Stats {
                        n: tasks,
                        mean: *mean,
                        std: *std,
                    };
                    (name.to_string(), stats)
                })
                .collect(),
        }
    }

    fn rows() -> Vec<SettingStats> {
        let [small, large]: [TaskParams; 2] = params().try_into().unwrap();
        vec![
            row(
                small,
                3,
                &[("test_acc", 0.9, Some(0.01)), ("steps", 10.0, Some(0.0))],
            ),
            row(
                large,
                3,
                &[("test_acc", 0.85, Some(0.02)), ("sensitivity", 2.5, None)],
            ),
        ]
    }

    #[test]
    fn the_table_shows_swept_parameters_and_mean_plus_minus_std() {
        let listing = listing(&rows(), Layout::Table);
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
        assert_eq!(listing.rows[0][0], json!("cnn"));
        assert_eq!(listing.rows[0][2], json!(32));
        assert_eq!(listing.rows[0][5], json!("0.9000 ± 0.0100"));
        assert_eq!(listing.rows[1][6], json!("2.5000"), "one seed: no spread");
        assert_eq!(listing.rows[0][6], Value::Null);
    }

    #[test]
    fn csv_and_json_keep_every_number() {
        let listing = listing(&rows(), Layout::Full);
        assert!(listing.columns.contains(&"steps_mean".to_string()));
        let json = listing.json();
        assert_eq!(json[1]["test_acc_mean"], json!(0.85));
        assert_eq!(json[1]["test_acc_std"], json!(0.02));
        assert_eq!(json[1]["sensitivity_std"], Value::Null);
        assert_eq!(json[0]["seeds"], json!(3));
    }

    #[test]
    fn whole_numbers_print_whole_and_bookkeeping_stays_out_of_the_table() {
        let cell = |mean: f64, std: Option<f64>| {
            let stats = Stats { n: 3, mean, std };
            Notation::of([&stats].into_iter()).cell(mean, std)
        };
        assert_eq!(cell(64.0, Some(0.0)), "64 ± 0");
        assert_eq!(cell(280610.0, None), "280610");
        assert_eq!(cell(0.9, Some(0.0)), "0.9000 ± 0.0000");
        assert_eq!(cell(64.0, Some(0.5)), "64.0000 ± 0.5000");
        let [small, _]: [TaskParams; 2] = params().try_into().unwrap();
        let used = row(
            small,
            1,
            &[("test_acc", 0.9, None), (BATCH_SIZE_USED, 64.0, None)],
        );
        let table = listing(&[used], Layout::Table);
        assert!(
            !table.columns.contains(&BATCH_SIZE_USED.to_string()),
            "{:?}",
            table.columns
        );
    }

    /// 3.3's full-scale table printed `0.0026` in one cell and `8.254e-4`
    /// beside it; a column now picks one notation for all its numbers.
    #[test]
    fn a_column_writes_all_its_numbers_in_one_notation() {
        let [small, large]: [TaskParams; 2] = params().try_into().unwrap();
        let rows = [
            row(
                small,
                3,
                &[
                    ("test_loss", 0.0026, Some(8.254e-4)),
                    ("test_acc", 0.9, Some(0.01)),
                ],
            ),
            row(
                large,
                3,
                &[("test_loss", 0.5, Some(0.01)), ("test_acc", 0.8, Some(0.0))],
            ),
        ];
        let table = listing(&rows, Layout::Table);
        let column = |name: &str| {
            let at = table.columns.iter().position(|c| c == name).unwrap();
            [table.rows[0][at].clone(), table.rows[1][at].clone()]
        };
        assert_eq!(
            column("test_loss"),
            [json!("2.600e-3 ± 8.254e-4"), json!("5.000e-1 ± 1.000e-2")]
        );
        assert_eq!(
            column("test_acc"),
            [json!("0.9000 ± 0.0100"), json!("0.8000 ± 0.0000")]
        );
    }

    #[test]
    fn numbers_keep_four_places() {
        assert_eq!(Notation::Fixed.number(0.123456), "0.1235");
        assert_eq!(Notation::Scientific.number(123456.0), "1.235e5");
        assert_eq!(Notation::Fixed.number(0.0), "0.0000");
    }
}
