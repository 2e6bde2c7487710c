//! The grid: its axes with their defaults filled in, and their cross product.

use std::collections::BTreeMap;

use super::fields::{non_empty, positive_count, positive_real, single_or_axis};
use super::models::{MAX_WIDTH, NamedTemplate, Template};
use super::pairing::Pairing;
use super::{Limits, MAX_TASKS, PlannedTask};
use crate::error::SpecError;
use crate::params::{ExperimentKind, TaskParams};
use crate::shape::ModelShape;
use crate::spec::SweepSpec;

/// One value of the size axis.
#[derive(Clone, Copy, Debug)]
pub(super) enum Size {
    /// The models' widths are fixed.
    Fixed,
    Width(u64),
    Budget(u64),
}

/// The axes of a grid in expansion order (the last varies fastest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Axis {
    /// The spec's models (`[[models]]`).
    Model,
    /// `grid.width` or `grid.params`.
    Size,
    BatchSize,
    Lr,
    Seed,
}

impl Axis {
    const ALL: [Self; 5] = [
        Self::Model,
        Self::Size,
        Self::BatchSize,
        Self::Lr,
        Self::Seed,
    ];
}

/// A task's place in the grid: one index per [`Axis`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Coords([usize; 5]);

impl Coords {
    pub(super) fn get(self, axis: Axis) -> usize {
        self.0[axis as usize]
    }

    pub(super) fn with(mut self, axis: Axis, index: usize) -> Self {
        self.0[axis as usize] = index;
        self
    }
}

/// The grid's axes with their defaults filled in.
pub(super) struct Axes {
    sizes: Vec<Size>,
    batch_sizes: Vec<Option<u64>>,
    lrs: Vec<f64>,
    seeds: Vec<u64>,
}

impl Axes {
    pub(super) fn new(
        spec: &SweepSpec,
        experiment: ExperimentKind,
        models: &[NamedTemplate],
        first_seeds: Option<usize>,
    ) -> Result<Self, SpecError> {
        let grid = &spec.grid;
        let sizes = Self::sizes(spec, models)?;
        let (lr_field, lrs) =
            single_or_axis("lr", spec.train.lr, grid.lr.as_deref())?.ok_or_else(|| {
                SpecError::missing("train.lr", "give the learning rate in train.lr or grid.lr")
            })?;
        let lrs = lrs
            .iter()
            .map(|lr| positive_real(&lr_field, *lr))
            .collect::<Result<_, _>>()?;
        let batches = single_or_axis(
            "batch_size",
            spec.train.batch_size,
            grid.batch_size.as_deref(),
        )?;
        let batch_sizes = match (experiment, batches) {
            (ExperimentKind::Classify, Some((field, values))) => values
                .iter()
                .map(|b| positive_count(&field, *b).map(Some))
                .collect::<Result<_, _>>()?,
            (ExperimentKind::Classify, None) => {
                return Err(SpecError::missing(
                    "train.batch_size",
                    "give the minibatch size in train.batch_size or grid.batch_size",
                ));
            }
            (_, Some((field, values))) => {
                return Err(SpecError::invalid(
                    field,
                    format!("{values:?}"),
                    format!("experiment {experiment:?} trains on the full batch"),
                ));
            }
            (_, None) => vec![None],
        };
        let seeds = match grid.seed.as_deref() {
            None => (0..first_seeds.unwrap_or(1) as u64).collect(),
            Some(seeds) => non_empty("grid.seed", seeds)?
                .iter()
                .map(|s| {
                    u64::try_from(*s)
                        .map_err(|_| SpecError::invalid("grid.seed", s, "seeds are not negative"))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            sizes,
            batch_sizes,
            lrs,
            seeds,
        })
    }

    fn sizes(spec: &SweepSpec, models: &[NamedTemplate]) -> Result<Vec<Size>, SpecError> {
        let grid = &spec.grid;
        let sizes: Vec<Size> = match (&grid.width, &grid.params) {
            (Some(_), Some(_)) => {
                return Err(SpecError::invalid(
                    "grid.params",
                    "(given)",
                    "give either grid.width or grid.params, not both",
                ));
            }
            (Some(widths), None) => non_empty("grid.width", widths)?
                .iter()
                .map(|w| match u64::try_from(*w) {
                    Ok(w @ 1..=MAX_WIDTH) => Ok(Size::Width(w)),
                    _ => Err(SpecError::invalid(
                        "grid.width",
                        w,
                        format!("a width must be between 1 and {MAX_WIDTH}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            (None, Some(budgets)) => non_empty("grid.params", budgets)?
                .iter()
                .map(|b| {
                    if b.is_finite() && *b >= 1.0 && b.fract() == 0.0 && *b < 1e15 {
                        Ok(Size::Budget(*b as u64))
                    } else {
                        Err(SpecError::invalid(
                            "grid.params",
                            b,
                            "a parameter budget is a positive whole number",
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
            (None, None) => vec![Size::Fixed],
        };
        let swept = !matches!(sizes[0], Size::Fixed);
        for model in models {
            match (&model.template, swept) {
                (Template::Fixed(_), true) => {
                    return Err(SpecError::invalid(
                        format!("{}.hidden", model.field),
                        "(fixed widths)",
                        "the grid sweeps width or params, so give this model a layer count or a shape",
                    ));
                }
                (Template::Scaled { .. }, false) => {
                    return Err(SpecError::missing(
                        "grid.width",
                        format!(
                            "model {:?} takes its width from the grid: add grid.width or grid.params",
                            model.name
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(sizes)
    }

    /// How many values `axis` has; the model axis has one per model.
    pub(super) fn len(&self, axis: Axis, models: usize) -> usize {
        match axis {
            Axis::Model => models,
            Axis::Size => self.sizes.len(),
            Axis::BatchSize => self.batch_sizes.len(),
            Axis::Lr => self.lrs.len(),
            Axis::Seed => self.seeds.len(),
        }
    }
}

/// Resolves a model at one size: the shape, its count, the width and budget.
/// A model over `max_params` is refused: no worker could train it.
fn resolve(
    model: &NamedTemplate,
    size: Size,
    max_params: u64,
) -> Result<(ModelShape, Option<u64>, Option<u64>), SpecError> {
    let (width, budget) = match size {
        Size::Fixed => (None, None),
        Size::Width(width) => (Some(width), None),
        Size::Budget(budget) => {
            let width = model.template.solve(budget).map_err(|problem| {
                SpecError::invalid(
                    "grid.params",
                    budget,
                    format!("no width of model {:?} meets it: {problem}", model.name),
                )
            })?;
            (Some(width), Some(budget))
        }
    };
    let shape = model.template.at_width(width.unwrap_or(0));
    let count = shape.param_count();
    if count > max_params {
        let (field, value) = match size {
            Size::Fixed => (model.field.clone(), "(its layers)".to_string()),
            Size::Width(width) => ("grid.width".to_string(), width.to_string()),
            Size::Budget(budget) => ("grid.params".to_string(), budget.to_string()),
        };
        return Err(SpecError::invalid(
            field,
            value,
            format!(
                "model {:?} would have {count} parameters, more than the {max_params} \
                 this coordinator plans (its --max-params)",
                model.name
            ),
        ));
    }
    Ok((shape, width, budget))
}

/// Every grid point of every model as a task, then one interpolation task
/// per pair when the spec asks for them.
pub(super) fn expand(
    spec: &SweepSpec,
    base: &TaskParams,
    models: &[NamedTemplate],
    axes: &Axes,
    limits: &Limits,
) -> Result<Vec<PlannedTask>, SpecError> {
    let pairing = spec
        .interpolate
        .as_ref()
        .map(|interpolate| Pairing::new(interpolate, spec, axes, models.len()))
        .transpose()?;
    let total = Axis::ALL
        .iter()
        .map(|axis| axes.len(*axis, models.len()))
        .try_fold(1usize, |acc, n| acc.checked_mul(n))
        .filter(|n| *n <= MAX_TASKS)
        .ok_or_else(|| {
            SpecError::invalid(
                "grid",
                "(all axes)",
                format!("expands to more than {MAX_TASKS} tasks"),
            )
        })?;
    let mut tasks = Vec::with_capacity(total);
    let mut pairs: BTreeMap<Coords, [usize; 2]> = BTreeMap::new();
    for (m, model) in models.iter().enumerate() {
        for (s, size) in axes.sizes.iter().enumerate() {
            let (shape, width, budget) = resolve(model, *size, limits.max_params)?;
            for (b, batch_size) in axes.batch_sizes.iter().enumerate() {
                for (l, lr) in axes.lrs.iter().enumerate() {
                    for (r, seed) in axes.seeds.iter().enumerate() {
                        let coords = Coords([m, s, b, l, r]);
                        let mut params = base.clone();
                        params.model_name = model.name.clone();
                        params.param_count = shape.param_count();
                        params.model = shape.clone();
                        params.width = width;
                        params.budget = budget;
                        params.batch_size = *batch_size;
                        params.lr = *lr;
                        params.seed = *seed;
                        params.init_seed = *seed;
                        if let Some(pairing) = &pairing {
                            params.init_seed = pairing.init_seed(coords, *seed);
                            let (group, member) = pairing.group(coords);
                            pairs.entry(group).or_default()[member] = tasks.len();
                        }
                        tasks.push(PlannedTask {
                            params,
                            depends_on: Vec::new(),
                        });
                    }
                }
            }
        }
    }
    if let Some(pairing) = &pairing {
        for pair in pairs.into_values() {
            let params = pairing.interpolation(&tasks[pair[0]].params, &tasks[pair[1]].params);
            tasks.push(PlannedTask {
                params,
                depends_on: pair.to_vec(),
            });
        }
    }
    Ok(tasks)
}
