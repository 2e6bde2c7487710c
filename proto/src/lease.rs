//! A task's lease and everything a worker says under it: heartbeats'
//! verdicts, metric points and how the attempt ends, with their wire forms.

use sweep_spec::{Summary, TaskParams};

use crate::error::WireError;
use crate::ids::{SweepId, TaskId, WorkerId};
use crate::sweep::{experiment_from_wire, experiment_to_wire, params_json, parse_params, task_ids};
use crate::{text, v1};

/// Names one lease of one task; every report carries it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    pub task_id: TaskId,
    pub token: String,
}

impl LeaseRef {
    /// The lease a request names; a request without one is a bad request.
    pub fn from_wire(wire: Option<v1::LeaseRef>) -> Result<Self, WireError> {
        let wire = wire.ok_or_else(|| WireError::invalid("the request names no lease"))?;
        text::name("lease token", &wire.lease_token)?;
        Ok(Self {
            task_id: TaskId::from_wire(wire.task_id)?,
            token: wire.lease_token,
        })
    }
}

impl From<&LeaseRef> for v1::LeaseRef {
    fn from(lease: &LeaseRef) -> Self {
        Self {
            task_id: lease.task_id.to_wire(),
            lease_token: lease.token.clone(),
        }
    }
}

/// One lease call of one worker, numbered by the worker. A call made again
/// because its answer never came keeps its number and sets `again`, and is
/// answered first with the leases the lost try made that are still held: a
/// coordinator killed between its commit and its answer strands no lease
/// until it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseCall {
    pub worker: WorkerId,
    /// 0: unnumbered, never answered again.
    pub number: u64,
    pub again: bool,
}

impl From<WorkerId> for LeaseCall {
    /// An unnumbered call.
    fn from(worker: WorkerId) -> Self {
        Self {
            worker,
            number: 0,
            again: false,
        }
    }
}

/// A task handed to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub task_id: TaskId,
    pub sweep_id: SweepId,
    pub token: String,
    /// 1 for the first attempt; metrics are stored per attempt.
    pub attempt: u32,
    pub params: TaskParams,
    /// Tasks whose results this one needs, in the order its parameters use them.
    pub depends_on: Vec<TaskId>,
    /// Milliseconds since the Unix epoch, by the database's clock.
    pub expires_at: i64,
    /// The step of the task's checkpoint, when an earlier attempt left one
    /// to resume from.
    pub checkpoint_step: Option<u64>,
    /// Whether the task's results may come from, and go to, the result
    /// cache: the worker then claims it ([`Claim`]) before training.
    pub cacheable: bool,
}

impl Lease {
    pub fn to_ref(&self) -> LeaseRef {
        LeaseRef {
            task_id: self.task_id,
            token: self.token.clone(),
        }
    }
}

impl From<&Lease> for v1::TaskLease {
    fn from(lease: &Lease) -> Self {
        Self {
            task_id: lease.task_id.to_wire(),
            sweep_id: lease.sweep_id.to_wire(),
            lease_token: lease.token.clone(),
            attempt: lease.attempt,
            kind: experiment_to_wire(lease.params.kind()),
            params_json: params_json(&lease.params),
            depends_on: lease.depends_on.iter().map(|t| t.to_wire()).collect(),
            lease_expires_at_ms: lease.expires_at,
            checkpoint_step: lease.checkpoint_step,
            cacheable: lease.cacheable,
        }
    }
}

/// What a worker got from a lease call: a task it can run, or one it cannot
/// read (another version's kind or parameters), which it must fail.
#[derive(Clone, Debug, PartialEq)]
pub enum Leased {
    Task(Box<Lease>),
    Unreadable { lease: LeaseRef, error: String },
}

impl Leased {
    pub fn from_wire(wire: v1::TaskLease) -> Result<Self, WireError> {
        let lease = LeaseRef {
            task_id: TaskId::from_wire(wire.task_id)?,
            token: wire.lease_token.clone(),
        };
        if experiment_from_wire(wire.kind).is_err() {
            let error = format!(
                "task kind {} is not one this worker runs (fit, hessian, classify, interpolate)",
                wire.kind
            );
            return Ok(Self::Unreadable { lease, error });
        }
        let params = match parse_params(&wire.params_json) {
            Ok(params) => params,
            Err(err) => {
                let error = err.message;
                return Ok(Self::Unreadable { lease, error });
            }
        };
        Ok(Self::Task(Box::new(Lease {
            task_id: lease.task_id,
            sweep_id: SweepId::from_wire(wire.sweep_id)?,
            token: lease.token,
            attempt: wire.attempt,
            params,
            depends_on: task_ids(&wire.depends_on)?,
            expires_at: wire.lease_expires_at_ms,
            checkpoint_step: wire.checkpoint_step,
            cacheable: wire.cacheable,
        })))
    }
}

/// The coordinator's answer when a worker claims a cacheable task's result
/// key before training it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Train it: no task with its key has a result yet.
    Train,
    /// The task succeeded pointing at `source`'s results; its lease is over.
    Cached { source: TaskId },
    /// `training` has the same key and is training: claim again.
    Wait { training: TaskId },
}

impl From<Claim> for v1::ClaimResponse {
    fn from(claim: Claim) -> Self {
        let (verdict, task) = match claim {
            Claim::Train => (v1::ClaimVerdict::Train, 0),
            Claim::Cached { source } => (v1::ClaimVerdict::Cached, source.to_wire()),
            Claim::Wait { training } => (v1::ClaimVerdict::Wait, training.to_wire()),
        };
        Self {
            verdict: verdict as i32,
            source_task_id: task,
        }
    }
}

impl TryFrom<v1::ClaimResponse> for Claim {
    type Error = WireError;

    fn try_from(wire: v1::ClaimResponse) -> Result<Self, WireError> {
        match v1::ClaimVerdict::try_from(wire.verdict) {
            Ok(v1::ClaimVerdict::Train) => Ok(Self::Train),
            Ok(v1::ClaimVerdict::Cached) => Ok(Self::Cached {
                source: TaskId::from_wire(wire.source_task_id)?,
            }),
            Ok(v1::ClaimVerdict::Wait) => Ok(Self::Wait {
                training: TaskId::from_wire(wire.source_task_id)?,
            }),
            _ => Err(WireError::invalid(format!(
                "claim verdict {} is not a known verdict",
                wire.verdict
            ))),
        }
    }
}

/// What a heartbeat says about one lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The lease was extended.
    Keep,
    /// The sweep was cancelled: stop and release the task.
    Cancel,
    /// The lease is not this worker's any more: stop, report nothing.
    Lost,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus {
    pub task_id: TaskId,
    pub verdict: Verdict,
    /// The new expiry, for a kept or cancelled lease.
    pub expires_at: Option<i64>,
}

impl From<&LeaseStatus> for v1::LeaseStatus {
    fn from(status: &LeaseStatus) -> Self {
        let verdict = match status.verdict {
            Verdict::Keep => v1::LeaseVerdict::Keep,
            Verdict::Cancel => v1::LeaseVerdict::Cancel,
            Verdict::Lost => v1::LeaseVerdict::Lost,
        };
        Self {
            task_id: status.task_id.to_wire(),
            verdict: verdict as i32,
            lease_expires_at_ms: status.expires_at.unwrap_or_default(),
        }
    }
}

impl TryFrom<v1::LeaseStatus> for LeaseStatus {
    type Error = WireError;

    fn try_from(wire: v1::LeaseStatus) -> Result<Self, WireError> {
        let verdict = match v1::LeaseVerdict::try_from(wire.verdict) {
            Ok(v1::LeaseVerdict::Keep) => Verdict::Keep,
            Ok(v1::LeaseVerdict::Cancel) => Verdict::Cancel,
            Ok(v1::LeaseVerdict::Lost) => Verdict::Lost,
            _ => {
                let message = format!("lease verdict {} is not a known verdict", wire.verdict);
                return Err(WireError::invalid(message));
            }
        };
        Ok(Self {
            task_id: TaskId::from_wire(wire.task_id)?,
            expires_at: (verdict != Verdict::Lost).then_some(wire.lease_expires_at_ms),
            verdict,
        })
    }
}

/// One value of one metric at one step of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    pub name: String,
    pub step: i64,
    pub epoch: Option<i64>,
    pub value: f64,
}

impl From<MetricPoint> for v1::MetricPoint {
    fn from(point: MetricPoint) -> Self {
        Self {
            name: point.name,
            step: point.step,
            epoch: point.epoch,
            value: point.value,
        }
    }
}

impl TryFrom<v1::MetricPoint> for MetricPoint {
    type Error = WireError;

    fn try_from(point: v1::MetricPoint) -> Result<Self, WireError> {
        text::name("metric", &point.name)?;
        Ok(Self {
            name: point.name,
            step: point.step,
            epoch: point.epoch,
            value: point.value,
        })
    }
}

/// A task's successful end: its lease, the summary reports aggregate, and
/// the attempt's metric points not sent yet (stored with the completion, in
/// one transaction).
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub lease: LeaseRef,
    pub summary: Summary,
    pub points: Vec<MetricPoint>,
}

impl From<&Completion> for v1::Completion {
    fn from(completion: &Completion) -> Self {
        Self {
            lease: Some((&completion.lease).into()),
            summary_json: completion.summary.to_json(),
            points: completion.points.iter().cloned().map(Into::into).collect(),
        }
    }
}

impl TryFrom<v1::Completion> for Completion {
    type Error = WireError;

    fn try_from(wire: v1::Completion) -> Result<Self, WireError> {
        let lease = LeaseRef::from_wire(wire.lease)?;
        let summary = Summary::from_json(&wire.summary_json)
            .map_err(|err| WireError::invalid(format!("summary_json: {err}")))?;
        let points = wire
            .points
            .into_iter()
            .map(MetricPoint::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            lease,
            summary,
            points,
        })
    }
}

/// Whether each completion of a call was stored, in the call's order.
pub type Outcomes = Vec<Result<(), WireError>>;

/// The wire form of one completion's outcome, for the task `task_id`.
pub fn outcome_to_wire(task_id: u64, outcome: &Result<(), WireError>) -> v1::CompletionOutcome {
    v1::CompletionOutcome {
        task_id,
        error: outcome.as_ref().err().map(|err| err.clone().into()),
    }
}

/// The outcomes of `sent` completions from the wire: one each, or the whole
/// answer is wrong.
pub fn outcomes_from_wire(
    outcomes: Vec<v1::CompletionOutcome>,
    sent: usize,
) -> Result<Outcomes, WireError> {
    if outcomes.len() != sent {
        let message = format!("{} outcomes for {sent} completions", outcomes.len());
        return Err(WireError::new(crate::ErrorKind::Internal, message));
    }
    let outcome = |o: v1::CompletionOutcome| o.error.map_or(Ok(()), |err| Err(err.into()));
    Ok(outcomes.into_iter().map(outcome).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip_and_a_lost_lease_has_no_expiry() {
        for verdict in [Verdict::Keep, Verdict::Cancel, Verdict::Lost] {
            let status = LeaseStatus {
                task_id: TaskId(7),
                verdict,
                expires_at: (verdict != Verdict::Lost).then_some(1234),
            };
            let back = LeaseStatus::try_from(v1::LeaseStatus::from(&status)).unwrap();
            assert_eq!(back, status);
        }
    }

    #[test]
    fn a_lease_of_an_unknown_kind_is_unreadable_but_keeps_its_reference() {
        let wire = v1::TaskLease {
            task_id: 3,
            sweep_id: 1,
            lease_token: "t".into(),
            attempt: 1,
            kind: 99,
            params_json: "{}".into(),
            depends_on: vec![],
            lease_expires_at_ms: 0,
            checkpoint_step: None,
            cacheable: false,
        };
        match Leased::from_wire(wire).unwrap() {
            Leased::Unreadable { lease, error } => {
                assert_eq!(lease.task_id, TaskId(3));
                assert!(error.contains("task kind 99"), "{error}");
            }
            other => panic!("expected an unreadable lease, got {other:?}"),
        }
    }
}
