//! A [`Comparison`] as a listing: the table for people, with a note on
//! what was tested, and every number for CSV and JSON.

use serde_json::{Value, json};

use super::{Comparison, Pair, Setting, Verdict, two_sample};
use crate::Listing;
use crate::columns::varying;
use crate::table::Notation;

impl Comparison {
    /// The comparison as a listing: the table writes each pair's numbers as
    /// text for people; CSV and JSON keep every number.
    pub fn listing(&self, for_people: bool) -> Listing {
        let settings: Vec<Setting> = self.pairs.iter().map(|p| p.setting.clone()).collect();
        let shown = varying(&settings);
        let named: &[&str] = if for_people {
            &TABLE_COLUMNS
        } else {
            &FULL_COLUMNS
        };
        let mut listing = Listing {
            columns: shown
                .iter()
                .cloned()
                .chain(named.iter().map(|c| c.to_string()))
                .collect(),
            rows: Vec::new(),
            note: for_people.then(|| self.note()),
        };
        let notation = Notation::fitting(self.pairs.iter().flat_map(|p| {
            let d = p.difference.map(|d| [d.difference, d.low, d.high]);
            [p.a.mean, p.b.mean, p.a.median, p.b.median]
                .into_iter()
                .chain(d.into_iter().flatten())
        }));
        for pair in &self.pairs {
            let mut cells: Vec<Value> = (shown.iter())
                .map(|key| pair.setting.get(key).cloned().unwrap_or(Value::Null))
                .collect();
            if for_people {
                cells.extend(self.table_cells(pair, notation));
            } else {
                cells.extend(self.full_cells(pair));
            }
            listing.push(cells);
        }
        listing
    }

    fn note(&self) -> String {
        let direction = match better_when_higher(&self.metric) {
            Some(true) => ", higher is better",
            Some(false) => ", lower is better",
            None => "",
        };
        let (t, rank) = if self.question.paired {
            ("the paired t", "the sign test")
        } else {
            ("welch's t", "mann-whitney's u")
        };
        format!(
            "{metric}{direction}: {t} on the means and {rank} on P(a > b) (ties count half; \
             its interval a {resamples}-resample bootstrap), holm-corrected over {family} tests \
             at alpha {alpha}",
            metric = self.metric,
            resamples = two_sample::RESAMPLES,
            family = self.family,
            alpha = self.question.alpha,
        )
    }

    fn table_cells(&self, pair: &Pair, notation: Notation) -> Vec<Value> {
        let number = |v: f64| notation.number(v);
        let difference = pair.difference.map_or(String::new(), |d| {
            format!(
                "{} [{}, {}]",
                number(d.difference),
                number(d.low),
                number(d.high)
            )
        });
        let superiority = match (pair.superiority, pair.superiority_interval) {
            (Some(s), Some((low, high))) => {
                format!("{:.2} [{low:.2}, {high:.2}]", s.probability)
            }
            _ => String::new(),
        };
        vec![
            json!(pair.a.level),
            json!(pair.b.level),
            json!(format!("{}/{}", pair.a.values.len(), pair.b.values.len())),
            json!(difference),
            json!(pair.difference.map_or(String::new(), |d| p_value(d.p))),
            json!(format!(
                "{} / {}",
                number(pair.a.median),
                number(pair.b.median)
            )),
            json!(superiority),
            json!(pair.superiority.map_or(String::new(), |s| p_value(s.p))),
            json!(self.verdict(pair)),
        ]
    }

    fn full_cells(&self, pair: &Pair) -> Vec<Value> {
        let d = pair.difference;
        let s = pair.superiority;
        let (low, high) = pair.superiority_interval.unzip();
        let (by, adjusted) = match &pair.verdict {
            Verdict::Settled { by, adjusted_p, .. } => (json!(by.as_str()), json!(adjusted_p)),
            _ => (Value::Null, Value::Null),
        };
        vec![
            json!(pair.a.level),
            json!(pair.b.level),
            json!(pair.a.values.len()),
            json!(pair.b.values.len()),
            json!(pair.a.mean),
            json!(pair.b.mean),
            json!(d.map(|d| d.difference)),
            json!(d.map(|d| d.low)),
            json!(d.map(|d| d.high)),
            json!(d.map(|d| d.p)),
            json!(pair.a.median),
            json!(pair.b.median),
            json!(s.map(|s| s.probability)),
            json!(low),
            json!(high),
            json!(s.map(|s| s.p)),
            json!(self.verdict(pair)),
            by,
            adjusted,
        ]
    }

    /// The verdict in words: "deep better (mann-whitney u, p = 0.0001)".
    pub fn verdict(&self, pair: &Pair) -> String {
        match &pair.verdict {
            Verdict::Settled {
                a_larger,
                by,
                adjusted_p,
            } => {
                let (larger, smaller) = if *a_larger {
                    (&pair.a, &pair.b)
                } else {
                    (&pair.b, &pair.a)
                };
                let winner = winner(&larger.level, &smaller.level, &self.metric);
                format!("{winner} ({by}, p = {})", p_value(*adjusted_p))
            }
            Verdict::NotSettled => format!("not settled at alpha {}", self.question.alpha),
            Verdict::Contradictory => "not settled: the tests disagree".into(),
            Verdict::TooFewSeeds => "not settled: fewer than 2 seeds on a side".into(),
        }
    }
}

const TABLE_COLUMNS: [&str; 9] = [
    "a",
    "b",
    "seeds",
    "mean a - b [95% CI]",
    "p (t)",
    "median a / b",
    "P(a > b) [95% CI]",
    "p (rank)",
    "verdict",
];

const FULL_COLUMNS: [&str; 19] = [
    "a",
    "b",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "difference",
    "difference_low",
    "difference_high",
    "t_p",
    "median_a",
    "median_b",
    "p_a_greater",
    "p_a_greater_low",
    "p_a_greater_high",
    "rank_p",
    "verdict",
    "decided_by",
    "adjusted_p",
];

fn p_value(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// Which of two levels a verdict names, the larger being `larger`:
/// "deep better" (the smaller of two losses), or "b higher" where it is
/// not known which way is better.
pub(super) fn winner(larger: &str, smaller: &str, metric: &str) -> String {
    match better_when_higher(metric) {
        Some(true) => format!("{larger} better"),
        Some(false) => format!("{smaller} better"),
        None => format!("{larger} higher"),
    }
}

/// Whether a larger number is better: accuracies yes, losses no, others
/// (a ratio, a sensitivity) unknown, so a verdict says "higher".
fn better_when_higher(metric: &str) -> Option<bool> {
    if metric.ends_with("acc") {
        Some(true)
    } else if metric.contains("loss") {
        Some(false)
    } else {
        None
    }
}
