//! Turns a [`SweepSpec`] into tasks: checks every value (an error names the
//! field and the value), resolves the models (a parameter budget is solved
//! into a width) and expands the grid. Nothing here touches the database, so
//! an invalid spec can never queue anything.

use std::collections::BTreeMap;

use sweep_proto::params::{
    ClassifyParams, ExperimentKind, FitParams, FitTarget, GradNormObjective, GradNormPhase,
    HessianParams, InterpolateParams, ModelShape, Optimizer, TaskParams,
};

use crate::error::SpecError;
use crate::spec::{ModelSpec, SweepSpec};
use crate::store::{NewSweep, Requirement};

/// More tasks than this in one sweep is almost surely a typo in the grid.
pub const MAX_TASKS: usize = 100_000;
const MAX_WIDTH: u64 = 1 << 20;
const MAX_ATTEMPTS_LIMIT: i64 = 100;
const DEFAULT_MAX_ATTEMPTS: i64 = 3;
/// MNIST-format images: 28x28, one channel, ten classes.
const IMAGE_SIDE: u64 = 28;
const CLASSES: u64 = 10;
/// Any fixed seed far from the small ones people write; used for the second
/// model of an interpolation pair when the pair must not share its start.
const OTHER_INIT: u64 = 0x9E37_79B9_7F4A_7C15;

/// A checked, expanded sweep, ready for the store.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub experiment: ExperimentKind,
    pub priority: i64,
    pub max_attempts: i64,
    pub requires: Requirement,
    pub tasks: Vec<PlannedTask>,
}

#[derive(Clone, Debug)]
pub struct PlannedTask {
    pub params: TaskParams,
    /// Indices of earlier tasks of the same plan.
    pub depends_on: Vec<usize>,
}

/// Checks a spec and expands it. See the module documentation.
pub fn plan(spec: &SweepSpec) -> Result<Plan, SpecError> {
    if spec.name.trim().is_empty() {
        return Err(SpecError::invalid("name", "\"\"", "a sweep needs a name"));
    }
    let experiment = experiment(&spec.experiment)?;
    check_sections(spec, experiment)?;
    let base = base_params(spec, experiment)?;
    let models = models(spec, experiment)?;
    let axes = Axes::new(spec, experiment, &models)?;
    let tasks = expand(spec, &base, &models, &axes)?;
    Ok(Plan {
        name: spec.name.clone(),
        experiment,
        priority: spec.priority,
        max_attempts: max_attempts(spec.max_attempts)?,
        requires: requirement(spec.requires.as_deref())?,
        tasks,
    })
}

fn experiment(name: &str) -> Result<ExperimentKind, SpecError> {
    match ExperimentKind::parse(name) {
        Some(ExperimentKind::Interpolate) => Err(SpecError::invalid(
            "experiment",
            format!("{name:?}"),
            "interpolation is added to a classify sweep with an [interpolate] section",
        )),
        Some(kind) => Ok(kind),
        None => Err(SpecError::invalid(
            "experiment",
            format!("{name:?}"),
            "expected one of fit, hessian, classify",
        )),
    }
}

/// Refuses sections that the experiment would silently ignore.
fn check_sections(spec: &SweepSpec, experiment: ExperimentKind) -> Result<(), SpecError> {
    let fits = matches!(experiment, ExperimentKind::Fit | ExperimentKind::Hessian);
    let classifies = experiment == ExperimentKind::Classify;
    let sections = [
        ("fit", spec.fit.is_some(), fits),
        (
            "hessian",
            spec.hessian.is_some(),
            experiment == ExperimentKind::Hessian,
        ),
        ("classify", spec.classify.is_some(), classifies),
        ("interpolate", spec.interpolate.is_some(), classifies),
        ("dataset", spec.dataset.is_some(), classifies),
    ];
    for (section, present, allowed) in sections {
        if present && !allowed {
            return Err(SpecError::invalid(
                section,
                "(given)",
                format!("experiment {experiment:?} does not use it"),
            ));
        }
    }
    Ok(())
}

fn max_attempts(value: Option<i64>) -> Result<i64, SpecError> {
    let attempts = value.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&attempts) {
        return Err(SpecError::invalid(
            "max_attempts",
            attempts,
            format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
        ));
    }
    Ok(attempts)
}

fn requirement(value: Option<&str>) -> Result<Requirement, SpecError> {
    match value {
        None => Ok(Requirement::Cpu),
        Some(name) => Requirement::parse(name).ok_or_else(|| {
            SpecError::invalid(
                "requires",
                format!("{name:?}"),
                "expected \"cpu\" or \"cuda\"",
            )
        }),
    }
}

fn positive_count(field: &str, value: i64) -> Result<u64, SpecError> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| SpecError::invalid(field, value, "must be at least 1"))
}

fn optional_count(field: &str, value: Option<i64>) -> Result<Option<u64>, SpecError> {
    value.map(|v| positive_count(field, v)).transpose()
}

fn positive_real(field: &str, value: f64) -> Result<f64, SpecError> {
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

fn optimizer(
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

/// The parameters every task of the sweep shares; the grid fills in the rest.
fn base_params(spec: &SweepSpec, experiment: ExperimentKind) -> Result<TaskParams, SpecError> {
    let train = &spec.train;
    let optimizer = optimizer(
        "train.optimizer",
        train.optimizer.as_deref(),
        train.epsilon,
        train.momentum,
    )?;
    let mut params = TaskParams {
        experiment,
        model_name: String::new(),
        model: ModelShape::Mlp {
            input: 0,
            hidden: Vec::new(),
            output: 0,
        },
        param_count: 0,
        width: None,
        budget: None,
        seed: 0,
        init_seed: 0,
        lr: 0.0,
        optimizer,
        batch_size: None,
        dataset: None,
        fit: None,
        hessian: None,
        classify: None,
        interpolate: None,
    };
    match experiment {
        ExperimentKind::Fit | ExperimentKind::Hessian => {
            params.fit = Some(fit_params(spec)?);
            if experiment == ExperimentKind::Hessian {
                let tol = spec.hessian.as_ref().and_then(|h| h.tol).unwrap_or(1e-6);
                params.hessian = Some(HessianParams {
                    tol: positive_real("hessian.tol", tol)?,
                });
            }
        }
        _ => {
            params.dataset = Some(dataset(spec.dataset.as_deref())?);
            params.classify = Some(classify_params(spec)?);
        }
    }
    Ok(params)
}

fn dataset(name: Option<&str>) -> Result<String, SpecError> {
    match name.map(str::trim) {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        Some(_) => Err(SpecError::invalid(
            "dataset",
            "\"\"",
            "name mnist, fashion-mnist or a directory of IDX files",
        )),
        None => Err(SpecError::missing(
            "dataset",
            "a classify sweep needs a dataset: mnist, fashion-mnist or a directory of IDX files",
        )),
    }
}

fn fit_params(spec: &SweepSpec) -> Result<FitParams, SpecError> {
    let fit = spec.fit.clone().unwrap_or_default();
    let target = match fit.target.as_deref().unwrap_or("x_cos_x") {
        "x_cos_x" => FitTarget::XCosX,
        other => {
            return Err(SpecError::invalid(
                "fit.target",
                format!("{other:?}"),
                "expected \"x_cos_x\" (y = 2·x·cos(x) + 2)",
            ));
        }
    };
    let points = positive_count("fit.points", fit.points.unwrap_or(2000))?;
    let (x_min, x_max) = (fit.x_min.unwrap_or(-1.0), fit.x_max.unwrap_or(10.0));
    if !(x_min.is_finite() && x_max.is_finite() && x_min < x_max) {
        return Err(SpecError::invalid(
            "fit.x_max",
            x_max,
            format!("must be finite and greater than fit.x_min ({x_min})"),
        ));
    }
    let steps = spec.train.steps.ok_or_else(|| {
        SpecError::missing(
            "train.steps",
            "fit and hessian train for a number of full-batch steps",
        )
    })?;
    let grad_norm_phase = fit
        .grad_norm_phase
        .as_ref()
        .map(|phase| -> Result<GradNormPhase, SpecError> {
            let objective = match phase.objective.as_str() {
                "norm" => GradNormObjective::Norm,
                "norm_squared" => GradNormObjective::NormSquared,
                other => {
                    return Err(SpecError::invalid(
                        "fit.grad_norm_phase.objective",
                        format!("{other:?}"),
                        "expected \"norm\" or \"norm_squared\"",
                    ));
                }
            };
            Ok(GradNormPhase {
                steps: positive_count("fit.grad_norm_phase.steps", phase.steps)?,
                objective,
                scale: positive_real("fit.grad_norm_phase.scale", phase.scale.unwrap_or(1.0))?,
                lr: positive_real("fit.grad_norm_phase.lr", phase.lr)?,
                optimizer: optimizer(
                    "fit.grad_norm_phase.optimizer",
                    phase.optimizer.as_deref(),
                    phase.epsilon,
                    None,
                )?,
            })
        })
        .transpose()?;
    Ok(FitParams {
        target,
        points,
        x_min,
        x_max,
        steps: positive_count("train.steps", steps)?,
        record_every: positive_count("train.record_every", spec.train.record_every.unwrap_or(1))?,
        record_grad_norm: fit.record_grad_norm.unwrap_or(grad_norm_phase.is_some()),
        grad_norm_phase,
    })
}

fn classify_params(spec: &SweepSpec) -> Result<ClassifyParams, SpecError> {
    let classify = spec.classify.clone().unwrap_or_default();
    let epochs = spec.train.epochs.ok_or_else(|| {
        SpecError::missing(
            "train.epochs",
            "a classify sweep trains for a number of epochs",
        )
    })?;
    Ok(ClassifyParams {
        epochs: positive_count("train.epochs", epochs)?,
        record_every: positive_count("train.record_every", spec.train.record_every.unwrap_or(100))?,
        shuffle_labels: classify.shuffle_labels,
        train_subset: optional_count("classify.train_subset", classify.train_subset)?,
        test_subset: optional_count("classify.test_subset", classify.test_subset)?,
        snapshot_every: optional_count("classify.snapshot_every", classify.snapshot_every)?,
        sensitivity: classify.sensitivity,
        save_weights: classify.save_weights || spec.interpolate.is_some(),
    })
}

/// A model whose widths may still depend on the grid.
#[derive(Clone, Debug)]
enum Template {
    Fixed(ModelShape),
    /// Hidden widths are `round(multiplier · w)` for a width w from the grid.
    Scaled {
        input: u64,
        output: u64,
        multipliers: Vec<f64>,
    },
}

impl Template {
    fn at_width(&self, width: u64) -> ModelShape {
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
    fn solve(&self, budget: u64) -> Result<u64, String> {
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

struct NamedTemplate {
    name: String,
    field: String,
    template: Template,
}

fn models(spec: &SweepSpec, experiment: ExperimentKind) -> Result<Vec<NamedTemplate>, SpecError> {
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

/// One value of the size axis.
#[derive(Clone, Copy, Debug)]
enum Size {
    /// The models' widths are fixed.
    Fixed,
    Width(u64),
    Budget(u64),
}

/// The grid's axes with their defaults filled in, in expansion order.
struct Axes {
    sizes: Vec<Size>,
    batch_sizes: Vec<Option<u64>>,
    lrs: Vec<f64>,
    seeds: Vec<u64>,
}

/// Positions of the axes in a task's grid coordinates.
const AXIS_NAMES: [&str; 5] = ["model", "size", "batch_size", "lr", "seed"];

fn non_empty<'a, T: std::fmt::Debug>(field: &str, values: &'a [T]) -> Result<&'a [T], SpecError> {
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
fn single_or_axis<T: Clone + std::fmt::Debug>(
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

impl Axes {
    fn new(
        spec: &SweepSpec,
        experiment: ExperimentKind,
        models: &[NamedTemplate],
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
            None => vec![0],
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

    fn len(&self, axis: usize, models: usize) -> usize {
        match axis {
            0 => models,
            1 => self.sizes.len(),
            2 => self.batch_sizes.len(),
            3 => self.lrs.len(),
            _ => self.seeds.len(),
        }
    }
}

/// Resolves a model at one size: the shape, its count, the width and budget.
fn resolve(
    model: &NamedTemplate,
    size: Size,
) -> Result<(ModelShape, Option<u64>, Option<u64>), SpecError> {
    let (width, budget) = match size {
        Size::Fixed => return Ok((model.template.at_width(0), None, None)),
        Size::Width(width) => (width, None),
        Size::Budget(budget) => {
            let width = model.template.solve(budget).map_err(|problem| {
                SpecError::invalid(
                    "grid.params",
                    budget,
                    format!("no width of model {:?} meets it: {problem}", model.name),
                )
            })?;
            (width, Some(budget))
        }
    };
    Ok((model.template.at_width(width), Some(width), budget))
}

fn expand(
    spec: &SweepSpec,
    base: &TaskParams,
    models: &[NamedTemplate],
    axes: &Axes,
) -> Result<Vec<PlannedTask>, SpecError> {
    let pairing = spec
        .interpolate
        .as_ref()
        .map(|interpolate| Pairing::new(interpolate, spec, axes, models.len()))
        .transpose()?;
    let total = (0..AXIS_NAMES.len())
        .map(|axis| axes.len(axis, models.len()))
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
    let mut pairs: BTreeMap<[usize; 5], [usize; 2]> = BTreeMap::new();
    for (m, model) in models.iter().enumerate() {
        for (s, size) in axes.sizes.iter().enumerate() {
            let (shape, width, budget) = resolve(model, *size)?;
            for (b, batch_size) in axes.batch_sizes.iter().enumerate() {
                for (l, lr) in axes.lrs.iter().enumerate() {
                    for (r, seed) in axes.seeds.iter().enumerate() {
                        let coords = [m, s, b, l, r];
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
                            params.init_seed = pairing.init_seed(&coords, *seed);
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
            let params = pairing.interpolation(&tasks[pair[0]].params);
            tasks.push(PlannedTask {
                params,
                depends_on: pair.to_vec(),
            });
        }
    }
    Ok(tasks)
}

/// How `[interpolate]` pairs the tasks of one axis with two values.
struct Pairing {
    axis: usize,
    same_init: bool,
    params: InterpolateParams,
}

impl Pairing {
    fn new(
        spec: &crate::spec::InterpolateSpec,
        sweep: &SweepSpec,
        axes: &Axes,
        models: usize,
    ) -> Result<Self, SpecError> {
        let between = spec.between.as_str();
        let axis = match between {
            "batch_size" => 2,
            "lr" => 3,
            "seed" => 4,
            "width" if sweep.grid.width.is_some() => 1,
            "params" if sweep.grid.params.is_some() => 1,
            _ => {
                return Err(SpecError::invalid(
                    "interpolate.between",
                    format!("{between:?}"),
                    "expected a grid axis: batch_size, lr, seed, width or params",
                ));
            }
        };
        let values = axes.len(axis, models);
        if values != 2 {
            return Err(SpecError::invalid(
                "interpolate.between",
                format!("{between:?}"),
                format!(
                    "interpolation needs exactly two values on that axis, the grid has {values}"
                ),
            ));
        }
        let same_init = spec.same_init.unwrap_or(true);
        if same_init && between == "seed" {
            return Err(SpecError::invalid(
                "interpolate.same_init",
                true,
                "two seeds give two initialisations; set same_init = false",
            ));
        }
        let alpha = spec.alpha.clone().unwrap_or(crate::spec::AlphaSpec {
            from: -1.0,
            to: 2.0,
            step: 0.05,
        });
        let steps = (alpha.to - alpha.from) / alpha.step;
        if !(alpha.from.is_finite() && alpha.to > alpha.from && steps.is_finite())
            || alpha.step <= 0.0
            || steps > 100_000.0
        {
            return Err(SpecError::invalid(
                "interpolate.alpha",
                format!(
                    "{{ from = {}, to = {}, step = {} }}",
                    alpha.from, alpha.to, alpha.step
                ),
                "needs from < to and a positive step giving at most 100000 points",
            ));
        }
        let classify = sweep.classify.clone().unwrap_or_default();
        Ok(Self {
            axis,
            same_init,
            params: InterpolateParams {
                alpha_from: alpha.from,
                alpha_to: alpha.to,
                alpha_step: alpha.step,
                between: between.to_string(),
                train_subset: classify.train_subset.map(|n| n as u64),
                test_subset: classify.test_subset.map(|n| n as u64),
            },
        })
    }

    /// The pair a task belongs to and whether it is θ₁ (0) or θ₂ (1).
    fn group(&self, mut coords: [usize; 5]) -> ([usize; 5], usize) {
        let member = coords[self.axis];
        coords[self.axis] = 0;
        (coords, member)
    }

    fn init_seed(&self, coords: &[usize; 5], seed: u64) -> u64 {
        if self.same_init || coords[self.axis] == 0 {
            seed
        } else {
            seed ^ OTHER_INIT
        }
    }

    fn interpolation(&self, first: &TaskParams) -> TaskParams {
        let mut params = first.clone();
        params.experiment = ExperimentKind::Interpolate;
        params.init_seed = params.seed;
        params.classify = None;
        params.interpolate = Some(self.params.clone());
        params
    }
}

/// Parses, checks and expands a spec as submitted, ready for
/// [`crate::store::Store::create_sweep`].
pub fn submission(spec_toml: &str) -> Result<NewSweep, SpecError> {
    let spec = SweepSpec::from_toml(spec_toml)?;
    let plan = plan(&spec)?;
    let spec_json = serde_json::to_string(&spec)
        .map_err(|err| SpecError::Syntax(format!("cannot represent the spec as JSON: {err}")))?;
    Ok(NewSweep {
        plan,
        spec_toml: spec_toml.to_string(),
        spec_json,
    })
}
