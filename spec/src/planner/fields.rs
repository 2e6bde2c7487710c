//! The checks every spec field goes through; each error names the field and
//! the value.

use crate::error::SpecError;
use crate::params::Optimizer;
use crate::text;

/// A duration as people write it ("10m"), in milliseconds.
pub(super) fn duration_ms(field: &str, value: Option<&str>) -> Result<Option<u64>, SpecError> {
    value
        .map(|text| {
            crate::duration::parse(text)
                .map(|every| every.as_millis() as u64)
                .map_err(|_| {
                    SpecError::invalid(
                        field,
                        format!("{text:?}"),
                        "give a duration such as \"10m\" or \"30s\" (\"0s\": only when stopped)",
                    )
                })
        })
        .transpose()
}

pub(super) fn positive_count(field: &str, value: i64) -> Result<u64, SpecError> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| SpecError::invalid(field, value, "must be at least 1"))
}

pub(super) fn optional_count(field: &str, value: Option<i64>) -> Result<Option<u64>, SpecError> {
    value.map(|v| positive_count(field, v)).transpose()
}

pub(super) fn positive_real(field: &str, value: f64) -> Result<f64, SpecError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(SpecError::invalid(
            field,
            value,
            "must be a positive, finite number",
        ))
    }
}

pub(super) fn optimizer(
    field: &str,
    name: Option<&str>,
    epsilon: Option<f64>,
    momentum: Option<f64>,
) -> Result<Optimizer, SpecError> {
    match name.unwrap_or("adam") {
        "adam" => Ok(Optimizer::Adam {
            epsilon: positive_real(
                &field.replace("optimizer", "epsilon"),
                epsilon.unwrap_or(1e-8),
            )?,
        }),
        "sgd" => {
            let momentum = momentum.unwrap_or(0.0);
            if !(0.0..1.0).contains(&momentum) {
                return Err(SpecError::invalid(
                    field.replace("optimizer", "momentum"),
                    momentum,
                    "must be in [0, 1)",
                ));
            }
            Ok(Optimizer::Sgd { momentum })
        }
        other => Err(SpecError::invalid(
            field,
            format!("{other:?}"),
            "expected \"adam\" or \"sgd\"",
        )),
    }
}

pub(super) fn non_empty<'a, T: std::fmt::Debug>(
    field: &str,
    values: &'a [T],
) -> Result<&'a [T], SpecError> {
    if values.is_empty() {
        return Err(SpecError::invalid(
            field,
            "[]",
            "an axis needs at least one value",
        ));
    }
    Ok(values)
}

/// A value that may come from `train.<key>` or the grid's axis, not both.
/// Returns the values with the field they came from, for error messages.
pub(super) fn single_or_axis<T: Clone + std::fmt::Debug>(
    key: &str,
    single: Option<T>,
    axis: Option<&[T]>,
) -> Result<Option<(String, Vec<T>)>, SpecError> {
    match (single, axis) {
        (Some(_), Some(_)) => Err(SpecError::invalid(
            format!("grid.{key}"),
            "(given)",
            format!("give train.{key} or grid.{key}, not both"),
        )),
        (Some(value), None) => Ok(Some((format!("train.{key}"), vec![value]))),
        (None, Some(values)) => {
            let field = format!("grid.{key}");
            let values = non_empty(&field, values)?.to_vec();
            Ok(Some((field, values)))
        }
        (None, None) => Ok(None),
    }
}

/// Checks text the spec gives (a name, a path): see [`text::problem`].
pub(super) fn text(field: &str, value: &str, max: usize, multiline: bool) -> Result<(), SpecError> {
    match text::problem(value, max, multiline) {
        Some(problem) => Err(SpecError::invalid(field, format!("{value:?}"), problem)),
        None => Ok(()),
    }
}
