//! The report: one row per swept setting with, for every summary number,
//! its mean over seeds and how well that mean is known ([`Spread`]), from
//! the aggregates the store computes in SQL (`Results::aggregate`), for
//! `sweep report` and the dashboard.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sweep_proto::SettingStats;
use sweep_spec::summary::*;

use crate::Listing;
use crate::columns::{flatten, varying};
use crate::stats::{Interval, Spread};

/// How the numbers are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// For people: `mean ± interval` cells, bookkeeping left out, and a
    /// note saying what the `±` is.
    Table(Interval),
    /// For scripts: every number of every summary, each in a column of its
    /// own ([`SPREAD_COLUMNS`]).
    Full,
}

/// The columns of each summary number in the full layout, after its name:
/// seeds, mean, standard deviation, standard error and the ends of the 95%
/// confidence interval of the mean.
pub const SPREAD_COLUMNS: [&str; 6] = ["n", "mean", "std", "se", "ci95_low", "ci95_high"];

/// Numbers shown first, in this order, when a sweep has them.
pub(crate) const LEADING: &[&str] = &[TRAIN_LOSS, TRAIN_ACC, TEST_LOSS, TEST_ACC, FINAL_LOSS];

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

/// The report as a listing: the table shows `mean ± interval` cells and
/// hides bookkeeping; CSV and JSON get every number of every summary.
pub fn listing(rows: &[SettingStats], layout: Layout) -> Listing {
    let params: Vec<_> = rows.iter().map(|row| flatten(&row.params)).collect();
    let varying = varying(&params);
    let interval = match layout {
        Layout::Table(interval) => Some(interval),
        Layout::Full => None,
    };
    let names = summary_names(rows, interval.is_some());

    let mut columns: Vec<String> = vec!["model".into(), "params".into()];
    columns.extend(varying.iter().cloned());
    columns.extend(["seeds".into(), "failed".into()]);
    for name in &names {
        match interval {
            Some(_) => columns.push(name.clone()),
            None => columns.extend(SPREAD_COLUMNS.iter().map(|c| format!("{name}_{c}"))),
        }
    }
    let notations: Vec<Notation> = names
        .iter()
        .map(|name| {
            let spreads = rows.iter().filter_map(|row| row.summary.get(name));
            Notation::of(spreads.map(Spread::of), interval.unwrap_or(Interval::Std))
        })
        .collect();
    let mut listing = Listing {
        columns,
        rows: Vec::new(),
        note: interval.map(|interval| interval.meaning().to_string()),
    };
    for (row, params) in rows.iter().zip(&params) {
        let mut cells = vec![json!(row.params.model_name), json!(row.params.param_count)];
        cells.extend(
            varying
                .iter()
                .map(|key| params.get(key).cloned().unwrap_or(Value::Null)),
        );
        let seeds = match interval {
            Some(_) => json!(format!("{}/{}", row.succeeded, row.tasks)),
            None => json!(row.succeeded),
        };
        cells.extend([seeds, json!(row.failed)]);
        for (name, notation) in names.iter().zip(&notations) {
            let spread = row.summary.get(name).map(Spread::of);
            match interval {
                Some(interval) => cells.push(spread.map_or(Value::Null, |s| {
                    json!(notation.cell(s.mean, s.width(interval)))
                })),
                None => cells.extend(full_cells(spread)),
            }
        }
        listing.push(cells);
    }
    listing
}

/// A summary number's [`SPREAD_COLUMNS`], empty where it has none.
fn full_cells(spread: Option<Spread>) -> [Value; 6] {
    let Some(spread) = spread else {
        return Default::default();
    };
    let number = |value: Option<f64>| value.map_or(Value::Null, |v| json!(v));
    let (low, high) = spread.interval().unzip();
    [
        json!(spread.n),
        json!(spread.mean),
        number(spread.std),
        number(spread.se),
        number(low),
        number(high),
    ]
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
pub(crate) enum Notation {
    /// Whole numbers (a count that every seed agrees on).
    Whole,
    /// Four decimal places.
    Fixed,
    /// Four significant digits, for columns with very large or small
    /// numbers.
    Scientific,
}

impl Notation {
    /// The notation that writes every mean and `interval` of a column.
    fn of(spreads: impl Iterator<Item = Spread>, interval: Interval) -> Self {
        Self::fitting(spreads.flat_map(|s| std::iter::once(s.mean).chain(s.width(interval))))
    }

    /// The notation that writes all of `numbers`.
    pub(crate) fn fitting(numbers: impl Iterator<Item = f64>) -> Self {
        let numbers: Vec<f64> = numbers.filter(|v| v.is_finite()).collect();
        if numbers.iter().all(|v| v.fract() == 0.0 && v.abs() < 1e15) {
            Self::Whole
        } else if (numbers.iter()).any(|v| *v != 0.0 && !(1e-3..1e4).contains(&v.abs())) {
            Self::Scientific
        } else {
            Self::Fixed
        }
    }

    pub(crate) fn number(self, value: f64) -> String {
        match self {
            Self::Whole => format!("{value:.0}"),
            Self::Fixed => format!("{value:.4}"),
            Self::Scientific => format!("{value:.3e}"),
        }
    }

    /// `mean ± width`, or the mean alone for one seed.
    fn cell(self, mean: f64, width: Option<f64>) -> String {
        match width {
            Some(width) => format!("{} ± {}", self.number(mean), self.number(width)),
            None => self.number(mean),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_proto::Stats;
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
        let listing = listing(&rows(), Layout::Table(Interval::Std));
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
        assert_eq!(listing.note.as_deref(), Some(Interval::Std.meaning()));
    }

    /// Three seeds with std 0.01: the standard error is 0.01/√3 = 0.0058
    /// and the 95% interval t(0.975, 2) = 4.303 (NIST) times that, 0.0248.
    #[test]
    fn the_table_shows_the_interval_it_is_asked_for_and_says_which() {
        let cell = |interval| listing(&rows(), Layout::Table(interval)).rows[0][5].clone();
        assert_eq!(cell(Interval::Ci95), json!("0.9000 ± 0.0248"));
        assert_eq!(cell(Interval::Se), json!("0.9000 ± 0.0058"));
        let note = listing(&rows(), Layout::Table(Interval::Ci95))
            .note
            .unwrap();
        assert!(note.contains("95% confidence interval"), "{note}");
        assert_eq!(listing(&rows(), Layout::Full).note, None);
    }

    #[test]
    fn csv_and_json_keep_every_number() {
        let listing = listing(&rows(), Layout::Full);
        assert!(listing.columns.contains(&"steps_mean".to_string()));
        let json = listing.json();
        assert_eq!(json[1]["test_acc_n"], json!(3));
        assert_eq!(json[1]["test_acc_mean"], json!(0.85));
        assert_eq!(json[1]["test_acc_std"], json!(0.02));
        let se = json[1]["test_acc_se"].as_f64().unwrap();
        assert!((se - 0.02 / 3f64.sqrt()).abs() < 1e-15, "{se}");
        // t(0.975, 2) = 4.303 (NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
        let low = json[1]["test_acc_ci95_low"].as_f64().unwrap();
        let high = json[1]["test_acc_ci95_high"].as_f64().unwrap();
        assert!((0.85 - low - 4.303 * se).abs() < 1e-5, "{low}");
        assert!((high - 0.85 - 4.303 * se).abs() < 1e-5, "{high}");
        assert_eq!(json[1]["sensitivity_n"], json!(3));
        assert_eq!(json[1]["sensitivity_std"], Value::Null);
        assert_eq!(json[1]["sensitivity_ci95_low"], Value::Null);
        assert_eq!(json[1]["steps_mean"], Value::Null, "not recorded");
        assert_eq!(json[0]["seeds"], json!(3));
    }

    #[test]
    fn whole_numbers_print_whole_and_bookkeeping_stays_out_of_the_table() {
        let cell = |mean: f64, std: Option<f64>| {
            let spread = Spread::of(&Stats { n: 3, mean, std });
            Notation::of([spread].into_iter(), Interval::Std).cell(mean, std)
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
        let table = listing(&[used], Layout::Table(Interval::Ci95));
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
        let table = listing(&rows, Layout::Table(Interval::Std));
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
