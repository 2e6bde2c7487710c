//! A sweep and its tasks as the coordinator, its store and its clients see
//! them, with the one conversion each way to the wire's `SweepInfo` and
//! `TaskInfo`. Task parameters and summaries are typed here and travel as
//! JSON; they are parsed back only at this edge and the store's.

use sweep_spec::{ExperimentKind, Summary, TaskParams};

use crate::error::WireError;
use crate::ids::{SweepId, TaskId, WorkerId};
use crate::state::{SweepState, TaskCounts, TaskState, from_wire};
use crate::v1;

#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub id: SweepId,
    pub name: String,
    pub experiment: ExperimentKind,
    pub state: SweepState,
    pub priority: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub counts: TaskCounts,
    /// The spec as submitted; empty in listings.
    pub spec_toml: String,
    /// Adaptive seeds: each round's decision, in the order they were taken.
    pub seed_rounds: Vec<SeedRound>,
}

/// What the coordinator decided about one question of an adaptive sweep
/// (the settings that differ only on the compared axis) once each of them
/// had `seeds` seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedRound {
    /// What the compared settings share, as canonical JSON.
    pub question: String,
    pub seeds: u64,
    pub outcome: RoundOutcome,
    /// One line: which level is larger and by which test, or why not.
    pub detail: String,
}

sweep_spec::text_enum!(
    /// A round's decision on a question.
    RoundOutcome {
        /// Not settled: `step` more seeds each.
        More = "more",
        /// One level is larger.
        Settled = "settled",
        /// The difference is known to within the resolution.
        Resolved = "resolved",
        /// `max` seeds and neither.
        MaxReached = "max reached",
    }
);

impl RoundOutcome {
    /// Whether the question takes no more seeds.
    pub fn is_final(self) -> bool {
        self != Self::More
    }
}

impl SeedRound {
    /// Why the question stopped, or where it stands: "settled at n=7",
    /// "max reached at n=30", "deciding after n=5".
    pub fn status(&self) -> String {
        match self.outcome {
            RoundOutcome::More => format!("seeds added after n={}", self.seeds),
            outcome => format!("{outcome} at n={}", self.seeds),
        }
    }

    fn to_wire(&self) -> v1::SeedRound {
        v1::SeedRound {
            question: self.question.clone(),
            seeds: u32::try_from(self.seeds).unwrap_or(u32::MAX),
            outcome: self.outcome.as_str().into(),
            detail: self.detail.clone(),
        }
    }

    fn from_wire(round: v1::SeedRound) -> Result<Self, WireError> {
        Ok(Self {
            outcome: RoundOutcome::parse(&round.outcome).ok_or_else(|| {
                WireError::invalid(format!(
                    "seed round outcome {:?} is not one this version knows",
                    round.outcome
                ))
            })?,
            question: round.question,
            seeds: round.seeds.into(),
            detail: round.detail,
        })
    }
}

impl Sweep {
    /// Where each question of its adaptive seeds stands, a line each, from
    /// its latest round: "seeds: settled at n=7: deep better on
    /// final_loss" (the question's shared setting first when there are
    /// several).
    pub fn seed_lines(&self) -> Vec<String> {
        let mut latest: Vec<&SeedRound> = Vec::new();
        for round in &self.seed_rounds {
            match latest.iter_mut().find(|r| r.question == round.question) {
                Some(known) => *known = round,
                None => latest.push(round),
            }
        }
        let several = latest.len() > 1;
        (latest.iter())
            .map(|round| {
                let question = match several {
                    true => format!(" {}", round.question),
                    false => String::new(),
                };
                format!("seeds{question}: {}: {}", round.status(), round.detail)
            })
            .collect()
    }

    /// The wire form; `with_spec` sends the spec's text too (only `Get` does).
    pub fn to_wire(&self, with_spec: bool) -> v1::SweepInfo {
        v1::SweepInfo {
            id: self.id.to_wire(),
            name: self.name.clone(),
            experiment: experiment_to_wire(self.experiment),
            state: v1::SweepState::from(self.state) as i32,
            priority: self.priority.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
            created_at_ms: self.created_at,
            finished_at_ms: self.finished_at,
            counts: Some((&self.counts).into()),
            spec_toml: if with_spec {
                self.spec_toml.clone()
            } else {
                String::new()
            },
            seed_rounds: self.seed_rounds.iter().map(SeedRound::to_wire).collect(),
        }
    }
}

impl TryFrom<v1::SweepInfo> for Sweep {
    type Error = WireError;

    fn try_from(info: v1::SweepInfo) -> Result<Self, WireError> {
        Ok(Self {
            id: SweepId::from_wire(info.id)?,
            experiment: experiment_from_wire(info.experiment)?,
            state: SweepState::from_wire(info.state)?,
            name: info.name,
            priority: info.priority.into(),
            created_at: info.created_at_ms,
            finished_at: info.finished_at_ms,
            counts: info.counts.unwrap_or_default().into(),
            spec_toml: info.spec_toml,
            seed_rounds: (info.seed_rounds.into_iter())
                .map(SeedRound::from_wire)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<ExperimentKind> for v1::ExperimentKind {
    fn from(kind: ExperimentKind) -> Self {
        match kind {
            ExperimentKind::Fit => Self::Fit,
            ExperimentKind::Hessian => Self::Hessian,
            ExperimentKind::Classify => Self::Classify,
            ExperimentKind::Interpolate => Self::Interpolate,
        }
    }
}

pub(crate) fn experiment_to_wire(kind: ExperimentKind) -> i32 {
    v1::ExperimentKind::from(kind) as i32
}

/// The kind a wire value names; an unknown value is a bad request.
pub(crate) fn experiment_from_wire(raw: i32) -> Result<ExperimentKind, WireError> {
    from_wire(
        ExperimentKind::ALL,
        raw,
        experiment_to_wire,
        "experiment kind",
    )
}

#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub sweep_id: SweepId,
    pub state: TaskState,
    /// What the task trains; its kind is `params.experiment`.
    pub params: TaskParams,
    pub depends_on: Vec<TaskId>,
    pub attempt: u32,
    pub max_attempts: u32,
    /// The worker of its latest attempt (the one holding its lease while it
    /// is leased).
    pub worker: Option<WorkerId>,
    /// When its latest attempt started, in milliseconds since the epoch.
    pub started_at: Option<i64>,
    /// When it ended (succeeded, failed or cancelled for good).
    pub finished_at: Option<i64>,
    /// The checkpoint step its latest attempt started from; 0 for a fresh
    /// start.
    pub resumed_from: u64,
    /// The task whose results this one points at, when they came from the
    /// result cache instead of training.
    pub cached_from: Option<TaskId>,
    pub error: Option<String>,
    /// The summary of the attempt that succeeded.
    pub summary: Option<Summary>,
}

impl From<&Task> for v1::TaskInfo {
    fn from(task: &Task) -> Self {
        Self {
            id: task.id.to_wire(),
            sweep_id: task.sweep_id.to_wire(),
            kind: experiment_to_wire(task.params.kind()),
            state: v1::TaskState::from(task.state) as i32,
            params_json: params_json(&task.params),
            depends_on: task.depends_on.iter().map(|t| t.to_wire()).collect(),
            attempt: task.attempt,
            max_attempts: task.max_attempts,
            worker_id: task.worker.map(|w| w.to_wire()),
            started_at: task.started_at,
            finished_at: task.finished_at,
            resumed_from: task.resumed_from,
            cached_from: task.cached_from.map(|t| t.to_wire()),
            error: task.error.clone().unwrap_or_default(),
            summary_json: task
                .summary
                .as_ref()
                .map(Summary::to_json)
                .unwrap_or_default(),
        }
    }
}

impl TryFrom<v1::TaskInfo> for Task {
    type Error = WireError;

    fn try_from(info: v1::TaskInfo) -> Result<Self, WireError> {
        let summary = match info.summary_json.as_str() {
            "" => None,
            text => Some(Summary::from_json(text).map_err(WireError::invalid)?),
        };
        Ok(Self {
            id: TaskId::from_wire(info.id)?,
            sweep_id: SweepId::from_wire(info.sweep_id)?,
            state: TaskState::from_wire(info.state)?,
            params: parse_params(&info.params_json)?,
            depends_on: task_ids(&info.depends_on)?,
            attempt: info.attempt,
            max_attempts: info.max_attempts,
            worker: info.worker_id.map(WorkerId::from_wire).transpose()?,
            started_at: info.started_at,
            finished_at: info.finished_at,
            resumed_from: info.resumed_from,
            cached_from: info.cached_from.map(TaskId::from_wire).transpose()?,
            error: Some(info.error).filter(|e| !e.is_empty()),
            summary,
        })
    }
}

/// A task's parameters as the wire carries them.
pub fn params_json(params: &TaskParams) -> String {
    serde_json::to_string(params).expect("task parameters serialize")
}

/// Parameters from the wire; an error says what could not be read.
pub fn parse_params(json: &str) -> Result<TaskParams, WireError> {
    serde_json::from_str(json)
        .map_err(|err| WireError::invalid(format!("unreadable task parameters: {err}")))
}

pub(crate) fn task_ids(raw: &[u64]) -> Result<Vec<TaskId>, WireError> {
    raw.iter().map(|id| TaskId::from_wire(*id)).collect()
}

/// What cancelling a sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CancelOutcome {
    /// Tasks cancelled at once (queued or blocked).
    pub cancelled: u64,
    /// Leased tasks whose workers will be told at their next heartbeat.
    pub signalled: u64,
}
