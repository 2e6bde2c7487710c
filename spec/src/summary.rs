//! A task's summary: the numbers it ends with, by name. Reports aggregate
//! them over seeds and figures plot them; the names below are the ones the
//! worker writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

// Every kind.
pub const PARAM_COUNT: &str = "param_count";
// fit and hessian (1.1, 2.2, 2.3).
pub const FINAL_LOSS: &str = "final_loss";
pub const MIN_LOSS: &str = "min_loss";
pub const STEPS: &str = "steps";
pub const MIN_GRAD_NORM: &str = "min_grad_norm";
pub const MIN_GRAD_NORM_STEP: &str = "min_grad_norm_step";
// hessian (2.3).
pub const LOSS_AT_MIN_GRAD_NORM: &str = "loss_at_min_grad_norm";
pub const MINIMAL_RATIO: &str = "minimal_ratio";
// Beyond, below and within ±abs_tol; the `_rel` ones within ±rel_tol·|λmax|.
pub const POSITIVE_FRACTION: &str = "positive_fraction";
pub const NEGATIVE_FRACTION: &str = "negative_fraction";
pub const ZERO_FRACTION: &str = "zero_fraction";
pub const POSITIVE_FRACTION_REL: &str = "positive_fraction_rel";
pub const NEGATIVE_FRACTION_REL: &str = "negative_fraction_rel";
pub const ZERO_FRACTION_REL: &str = "zero_fraction_rel";
pub const ABS_TOL: &str = "abs_tol";
pub const REL_TOL: &str = "rel_tol";
pub const LAMBDA_MIN: &str = "lambda_min";
pub const LAMBDA_MAX: &str = "lambda_max";
pub const EIGENVALUES: &str = "eigenvalues";
// classify (1.2, 1.3, 2.1, 3.1, 3.2, 3.4); the four losses and accuracies
// are also the names of the per-epoch metrics.
pub const TRAIN_LOSS: &str = "train_loss";
pub const TRAIN_ACC: &str = "train_acc";
pub const TEST_LOSS: &str = "test_loss";
pub const TEST_ACC: &str = "test_acc";
pub const EPOCHS: &str = "epochs";
pub const TRAIN_EXAMPLES: &str = "train_examples";
pub const TEST_EXAMPLES: &str = "test_examples";
pub const SENSITIVITY: &str = "sensitivity";
pub const SENSITIVITY_PER_SAMPLE: &str = "sensitivity_per_sample";
pub const SENSITIVITY_RMS: &str = "sensitivity_rms";
/// The batch size training used: the spec's, or the whole training set
/// when the spec asks for more examples than it has.
pub const BATCH_SIZE_USED: &str = "batch_size_used";
// interpolate (3.3).
pub const POINTS: &str = "points";
pub const TRAIN_LOSS_AT_0: &str = "train_loss_at_0";
pub const TRAIN_LOSS_AT_1: &str = "train_loss_at_1";
/// The highest training loss strictly between the two models minus the
/// larger of their own (0 when nothing between them is higher).
pub const TRAIN_LOSS_BARRIER: &str = "train_loss_barrier";
/// The largest rise of the training loss above the straight line (chord)
/// joining the two models' losses.
pub const TRAIN_LOSS_BARRIER_CHORD: &str = "train_loss_barrier_chord";

/// Named numbers. A value that is not finite (an empty spectrum's smallest
/// eigenvalue) is kept as NaN and never aggregated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary(BTreeMap<String, f64>);

impl Summary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one number; counts come in as `n as f64`.
    pub fn set(&mut self, name: &str, value: f64) -> &mut Self {
        self.0.insert(name.to_string(), value);
        self
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(name, value)| (name.as_str(), *value))
    }

    /// The finite numbers, the ones reports aggregate.
    pub fn finite(&self) -> impl Iterator<Item = (&str, f64)> {
        self.iter().filter(|(_, value)| value.is_finite())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON object the wire and the database carry.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a map of numbers serializes")
    }

    /// Reads [`Summary::to_json`]'s form back; empty text is an empty summary.
    pub fn from_json(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::new());
        }
        serde_json::from_str(text).map_err(|err| {
            let excerpt: String = text.chars().take(200).collect();
            format!("a summary is a JSON object of numbers ({err}): {excerpt}")
        })
    }
}

impl FromIterator<(String, f64)> for Summary {
    fn from_iter<I: IntoIterator<Item = (String, f64)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Whole numbers stay integers in JSON (`"steps": 250`), as people and
/// notebooks expect; non-finite numbers, which JSON lacks, become null.
impl Serialize for Summary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        let values: BTreeMap<&str, Value> = self
            .iter()
            .map(|(name, v)| {
                let value = if !v.is_finite() {
                    Value::Null
                } else if v.fract() == 0.0 && v.abs() < EXACT {
                    Value::from(v as i64)
                } else {
                    Value::from(v)
                };
                (name, value)
            })
            .collect();
        values.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Summary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = BTreeMap::<String, Option<f64>>::deserialize(deserializer)?;
        Ok(values
            .into_iter()
            .map(|(name, value)| (name, value.unwrap_or(f64::NAN)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_round_trip_with_whole_numbers_as_integers() {
        let mut summary = Summary::new();
        summary
            .set(STEPS, 250.0)
            .set(TEST_ACC, 0.91)
            .set(LAMBDA_MIN, f64::NAN);
        let json = summary.to_json();
        assert_eq!(json, r#"{"lambda_min":null,"steps":250,"test_acc":0.91}"#);
        let back = Summary::from_json(&json).unwrap();
        assert_eq!(back.get(STEPS), Some(250.0));
        assert!(back.get(LAMBDA_MIN).unwrap().is_nan());
        let finite: Vec<&str> = back.finite().map(|(name, _)| name).collect();
        assert_eq!(finite, [STEPS, TEST_ACC]);
    }

    #[test]
    fn only_objects_of_numbers_are_summaries() {
        assert!(Summary::from_json("").unwrap().is_empty());
        assert!(Summary::from_json("[1, 2]").is_err());
        assert!(Summary::from_json(r#"{"a": "text"}"#).is_err());
    }
}
