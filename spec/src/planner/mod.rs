//! Turns a [`SweepSpec`] into tasks: checks every value (an error names the
//! field and the value), resolves the models (a parameter budget is solved
//! into a width) and expands the grid. Nothing here touches a database, so an
//! invalid spec can never queue anything.
//!
//! - [`fields`]: the checks every field goes through (counts, rates,
//!   optimizers), each naming the field in its error.
//! - [`base`]: the parameters every task of a sweep shares.
//! - [`models`]: model templates and the parameter-budget solver.
//! - [`grid`]: the axes and their cross product.
//! - [`pairing`]: interpolation pairs across one axis with two values.
//! - [`seeds`]: adaptive seeds, checked.

mod base;
mod fields;
mod grid;
mod models;
mod pairing;
mod seeds;

pub use seeds::Adaptive;

use crate::error::SpecError;
use crate::params::{ExperimentKind, Requirement, TaskParams};
use crate::result_key::hex_digest;
use crate::spec::SweepSpec;
use crate::text::MAX_NAME;

/// More tasks than this in one sweep is almost surely a typo in the grid.
/// (A million tasks plan in seconds and the queue's cost per task does not
/// grow with its length: `docs/BENCHMARKS.md`.)
pub const MAX_TASKS: usize = 1_000_000;
const MAX_ATTEMPTS_LIMIT: i64 = 100;
const DEFAULT_MAX_ATTEMPTS: i64 = 3;
const MAX_DESCRIPTION: usize = 10_000;

/// A checked, expanded sweep, ready for the store.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub experiment: ExperimentKind,
    pub priority: i64,
    pub max_attempts: i64,
    pub requires: Requirement,
    pub tasks: Vec<PlannedTask>,
    /// Seeds the coordinator adds until a comparison is settled; `tasks`
    /// then hold the first `start` seeds of each setting.
    pub adaptive: Option<Adaptive>,
}

#[derive(Clone, Debug)]
pub struct PlannedTask {
    pub params: TaskParams,
    /// Indices of earlier tasks of the same plan.
    pub depends_on: Vec<usize>,
}

/// What a coordinator agrees to plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most parameters one model may have. The default, 10^9, is 4 GB
    /// of f32 weights (about 16 GB to train with Adam): more than any model
    /// of the report by far, and less than a worker can be asked to hold
    /// by mistake (a typo in a width once asked for 4.4·10^12).
    pub max_params: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_params: 1_000_000_000,
        }
    }
}

/// Checks a spec and expands it within the default [`Limits`]. See the
/// module documentation.
pub fn plan(spec: &SweepSpec) -> Result<Plan, SpecError> {
    plan_within(spec, &Limits::default())
}

/// [`plan`] within `limits`.
pub fn plan_within(spec: &SweepSpec, limits: &Limits) -> Result<Plan, SpecError> {
    if spec.name.trim().is_empty() {
        return Err(SpecError::invalid("name", "\"\"", "a sweep needs a name"));
    }
    fields::text("name", &spec.name, MAX_NAME, false)?;
    if let Some(description) = &spec.description {
        fields::text("description", description, MAX_DESCRIPTION, true)?;
    }
    let experiment = experiment(&spec.experiment)?;
    check_sections(spec, experiment)?;
    let base = base::params(spec, experiment)?;
    let models = models::models(spec, experiment)?;
    let first_seeds = seeds::start(spec)?;
    let axes = grid::Axes::new(spec, experiment, &models, first_seeds)?;
    let adaptive = seeds::adaptive(spec, experiment, &axes, models.len())?;
    let tasks = grid::expand(spec, &base, &models, &axes, limits)?;
    Ok(Plan {
        name: spec.name.clone(),
        experiment,
        priority: spec.priority,
        max_attempts: max_attempts(spec.max_attempts)?,
        requires: requirement(spec.requires.as_deref())?,
        tasks,
        adaptive,
    })
}

/// The plan of an adaptive spec with `seeds` seeds each setting (seeds 0 ..
/// `seeds`): the tasks a coordinator adds a round's seeds from.
pub fn plan_with_seeds(spec: &SweepSpec, seeds: usize, limits: &Limits) -> Result<Plan, SpecError> {
    let mut fixed = spec.clone();
    fixed.seeds = None;
    fixed.grid.seed = Some((0..seeds as i64).collect());
    plan_within(&fixed, limits)
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

/// A spec as submitted: the text, the same spec as JSON, its plan, and the
/// key that finds it again.
#[derive(Clone, Debug)]
pub struct Submission {
    pub plan: Plan,
    /// The spec as submitted.
    pub spec_toml: String,
    /// The parsed spec, as JSON.
    pub spec_json: String,
    /// [`spec_key`] of `spec_toml`.
    pub spec_key: String,
    /// Whether its tasks use the result cache (see [`crate::result_key`]):
    /// on unless submitted with `--no-cache`.
    pub cache: bool,
}

/// Parses, checks and expands a spec as submitted, within the default
/// [`Limits`].
pub fn submission(spec_toml: &str) -> Result<Submission, SpecError> {
    submission_within(spec_toml, &Limits::default())
}

/// [`submission`] within `limits`.
pub fn submission_within(spec_toml: &str, limits: &Limits) -> Result<Submission, SpecError> {
    let spec = SweepSpec::from_toml(spec_toml)?;
    let plan = plan_within(&spec, limits)?;
    let spec_json = serde_json::to_string(&spec)
        .map_err(|err| SpecError::Syntax(format!("cannot represent the spec as JSON: {err}")))?;
    Ok(Submission {
        plan,
        spec_key: spec_key(spec_toml),
        spec_toml: spec_toml.to_string(),
        spec_json,
        cache: true,
    })
}

/// A stable key for a spec's text (SHA-256, hex): `sweep run` finds the sweep
/// it started for the same file by it, however many sweeps the database holds.
pub fn spec_key(spec_toml: &str) -> String {
    hex_digest(spec_toml.as_bytes())
}
