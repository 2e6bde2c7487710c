//! Model templates: a model from the spec whose widths may still come from
//! the grid, and the solver that turns a parameter budget into a width.

use super::fields::{positive_count, text};
use crate::error::SpecError;
use crate::params::ExperimentKind;
use crate::shape::ModelShape;
use crate::spec::{ModelSpec, SweepSpec};
use crate::text::MAX_NAME;

/// The widest layer a grid may ask for.
pub(super) const MAX_WIDTH: u64 = 1 << 20;
/// MNIST-format images: 28x28, one channel, ten classes.
const IMAGE_SIDE: u64 = 28;
const CLASSES: u64 = 10;

/// A model whose widths may still depend on the grid.
#[derive(Clone, Debug)]
pub(super) enum Template {
    Fixed(ModelShape),
    /// Hidden widths are `round(multiplier · w)` for a width w from the grid.
    Scaled {
        input: u64,
        output: u64,
        multipliers: Vec<f64>,
    },
}

impl Template {
    pub(super) fn at_width(&self, width: u64) -> ModelShape {
        match self {
            Self::Fixed(shape) => shape.clone(),
            Self::Scaled {
                input,
                output,
                multipliers,
            } => ModelShape::Mlp {
                input: *input,
                hidden: multipliers
                    .iter()
                    .map(|m| ((m * width as f64).round() as u64).max(1))
                    .collect(),
                output: *output,
            },
        }
    }

    fn count_at(&self, width: u64) -> u64 {
        self.at_width(width).param_count()
    }

    /// The width whose parameter count is closest to `budget` (the smaller
    /// width on a tie). Counts grow with the width, so a binary search finds
    /// the first width at or over the budget.
    pub(super) fn solve(&self, budget: u64) -> Result<u64, String> {
        let smallest = self.count_at(1);
        if budget < smallest {
            return Err(format!(
                "below the smallest model of this shape ({smallest} parameters at width 1)"
            ));
        }
        if budget > self.count_at(MAX_WIDTH) {
            return Err(format!("needs a width above {MAX_WIDTH}"));
        }
        let (mut low, mut high) = (1, MAX_WIDTH);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.count_at(mid) >= budget {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        let above = self.count_at(low) - budget;
        let below = low.checked_sub(1).filter(|w| *w >= 1);
        Ok(match below {
            Some(w) if budget - self.count_at(w) <= above => w,
            _ => low,
        })
    }
}

pub(super) struct NamedTemplate {
    pub(super) name: String,
    pub(super) field: String,
    pub(super) template: Template,
}

pub(super) fn models(
    spec: &SweepSpec,
    experiment: ExperimentKind,
) -> Result<Vec<NamedTemplate>, SpecError> {
    let listed: Vec<(String, &ModelSpec)> = match (&spec.model, spec.models.as_slice()) {
        (Some(_), [_, ..]) => {
            return Err(SpecError::invalid(
                "models",
                "(given)",
                "give either model or [[models]], not both",
            ));
        }
        (Some(model), []) => vec![("model".to_string(), model)],
        (None, []) => {
            return Err(SpecError::missing(
                "model",
                "a sweep needs a model (model = {...}) or a list ([[models]])",
            ));
        }
        (None, list) => list
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("models[{i}]"), m))
            .collect(),
    };
    let mut named: Vec<NamedTemplate> = Vec::new();
    for (field, model) in listed {
        let name = model.name.clone().unwrap_or_else(|| model.kind.clone());
        text(&format!("{field}.name"), &name, MAX_NAME, false)?;
        if named.iter().any(|other| other.name == name) {
            return Err(SpecError::invalid(
                format!("{field}.name"),
                format!("{name:?}"),
                "two models have this name; name each model differently",
            ));
        }
        let template = template(&field, model, experiment)?;
        named.push(NamedTemplate {
            name,
            field,
            template,
        });
    }
    Ok(named)
}

fn template(
    field: &str,
    model: &ModelSpec,
    experiment: ExperimentKind,
) -> Result<Template, SpecError> {
    let (input, output) = match experiment {
        ExperimentKind::Fit | ExperimentKind::Hessian => (1, 1),
        _ => (IMAGE_SIDE * IMAGE_SIDE, CLASSES),
    };
    match model.kind.as_str() {
        "mlp" => mlp_template(field, model, input, output),
        "cnn" if experiment == ExperimentKind::Classify => cnn_template(field, model),
        "cnn" => Err(SpecError::invalid(
            format!("{field}.kind"),
            "\"cnn\"",
            format!("experiment {experiment:?} fits a 1-D function and needs an mlp"),
        )),
        other => Err(SpecError::invalid(
            format!("{field}.kind"),
            format!("{other:?}"),
            "expected \"mlp\" or \"cnn\"",
        )),
    }
}

fn mlp_template(
    field: &str,
    model: &ModelSpec,
    input: u64,
    output: u64,
) -> Result<Template, SpecError> {
    for (key, present) in [
        ("convs", model.convs.is_some()),
        ("fc", model.fc.is_some()),
        ("kernel", model.kernel.is_some()),
    ] {
        if present {
            return Err(SpecError::invalid(
                format!("{field}.{key}"),
                "(given)",
                "only a cnn has it",
            ));
        }
    }
    let scaled = |multipliers| Template::Scaled {
        input,
        output,
        multipliers,
    };
    match (&model.hidden, &model.shape) {
        (Some(_), Some(_)) => Err(SpecError::invalid(
            format!("{field}.shape"),
            "(given)",
            "give either hidden or shape, not both",
        )),
        (None, None) => Err(SpecError::missing(
            format!("{field}.hidden"),
            "an mlp needs hidden (a layer count or a list of widths) or shape",
        )),
        (None, Some(shape)) => {
            let ok = !shape.is_empty() && shape.iter().all(|m| m.is_finite() && *m > 0.0);
            if !ok {
                return Err(SpecError::invalid(
                    format!("{field}.shape"),
                    format!("{shape:?}"),
                    "needs at least one positive multiplier of the width",
                ));
            }
            Ok(scaled(shape.clone()))
        }
        (Some(hidden), None) => {
            let bad = || {
                SpecError::invalid(
                    format!("{field}.hidden"),
                    hidden,
                    "expected a number of hidden layers (width from the grid) or a list of widths",
                )
            };
            match hidden {
                toml::Value::Integer(depth) if (1..=1000).contains(depth) => {
                    Ok(scaled(vec![1.0; *depth as usize]))
                }
                toml::Value::Array(widths) if !widths.is_empty() => {
                    let widths = widths
                        .iter()
                        .map(|w| match w {
                            toml::Value::Integer(w) if *w >= 1 => Ok(*w as u64),
                            _ => Err(bad()),
                        })
                        .collect::<Result<Vec<u64>, _>>()?;
                    Ok(Template::Fixed(ModelShape::Mlp {
                        input,
                        hidden: widths,
                        output,
                    }))
                }
                _ => Err(bad()),
            }
        }
    }
}

fn cnn_template(field: &str, model: &ModelSpec) -> Result<Template, SpecError> {
    if model.hidden.is_some() || model.shape.is_some() {
        return Err(SpecError::invalid(
            format!("{field}.hidden"),
            "(given)",
            "a cnn has convs and fc, not hidden or shape",
        ));
    }
    let counts = |key: &str, values: &[i64]| -> Result<Vec<u64>, SpecError> {
        values
            .iter()
            .map(|v| positive_count(&format!("{field}.{key}"), *v))
            .collect()
    };
    let convs = match &model.convs {
        Some(convs) if !convs.is_empty() => counts("convs", convs)?,
        other => {
            return Err(SpecError::invalid(
                format!("{field}.convs"),
                format!("{:?}", other.clone().unwrap_or_default()),
                "a cnn needs at least one conv stage (output channels)",
            ));
        }
    };
    if IMAGE_SIDE >> convs.len() == 0 {
        return Err(SpecError::invalid(
            format!("{field}.convs"),
            format!("{convs:?}"),
            format!(
                "{} max-pool stages shrink a 28x28 image to nothing",
                convs.len()
            ),
        ));
    }
    let kernel = positive_count(&format!("{field}.kernel"), model.kernel.unwrap_or(5))?;
    if kernel % 2 == 0 {
        return Err(SpecError::invalid(
            format!("{field}.kernel"),
            kernel,
            "\"same\" padding needs an odd kernel",
        ));
    }
    Ok(Template::Fixed(ModelShape::Cnn {
        in_channels: 1,
        image_size: IMAGE_SIDE,
        kernel,
        convs,
        fc: counts("fc", model.fc.as_deref().unwrap_or_default())?,
        output: CLASSES,
    }))
}
