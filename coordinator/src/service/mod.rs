//! The gRPC services: [`CoordinatorService`] for workers and
//! [`SweepsService`] for clients, the token check in front of them, and the
//! conversions between wire messages and store values.

mod auth;
mod coordinator;
mod sweeps;

use std::time::Duration;

use sweep_proto::v1;
use sweep_proto::{TaskId, WireError};

pub use auth::BearerAuth;
pub use coordinator::CoordinatorService;
pub use sweeps::SweepsService;

use crate::store::{Device, LeaseRef, Sweep, SweepState, Task, TaskCounts, TaskState, Worker};

/// How often a waiting call looks at the store again even without a change
/// signal, in case a signal was missed (another coordinator's change while
/// the PostgreSQL listener was reconnecting).
const RECHECK: Duration = Duration::from_secs(2);

fn lease_ref(wire: Option<v1::LeaseRef>) -> Result<LeaseRef, WireError> {
    let wire = wire.ok_or_else(|| WireError::invalid("the request names no lease"))?;
    Ok(LeaseRef {
        task_id: TaskId::from_wire(wire.task_id)?,
        token: wire.lease_token,
    })
}

fn task_state(state: TaskState) -> v1::TaskState {
    match state {
        TaskState::Blocked => v1::TaskState::Blocked,
        TaskState::Queued => v1::TaskState::Queued,
        TaskState::Leased => v1::TaskState::Leased,
        TaskState::Succeeded => v1::TaskState::Succeeded,
        TaskState::Failed => v1::TaskState::Failed,
        TaskState::Cancelled => v1::TaskState::Cancelled,
    }
}

fn task_state_from_wire(raw: i32) -> Result<TaskState, WireError> {
    TaskState::ALL
        .iter()
        .copied()
        .find(|state| task_state(*state) as i32 == raw)
        .ok_or_else(|| WireError::invalid(format!("task state {raw} is not a known state")))
}

fn sweep_state(state: SweepState) -> v1::SweepState {
    match state {
        SweepState::Pending => v1::SweepState::Pending,
        SweepState::Running => v1::SweepState::Running,
        SweepState::Succeeded => v1::SweepState::Succeeded,
        SweepState::Failed => v1::SweepState::Failed,
        SweepState::Cancelled => v1::SweepState::Cancelled,
    }
}

fn counts(counts: &TaskCounts) -> v1::TaskCounts {
    let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    v1::TaskCounts {
        blocked: narrow(counts.blocked),
        queued: narrow(counts.queued),
        leased: narrow(counts.leased),
        succeeded: narrow(counts.succeeded),
        failed: narrow(counts.failed),
        cancelled: narrow(counts.cancelled),
    }
}

fn sweep_info(sweep: &Sweep, with_spec: bool) -> v1::SweepInfo {
    v1::SweepInfo {
        id: sweep.id.to_wire(),
        name: sweep.name.clone(),
        experiment: sweep.experiment.clone(),
        state: sweep_state(sweep.state) as i32,
        priority: sweep.priority.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        created_at_ms: sweep.created_at,
        finished_at_ms: sweep.finished_at,
        counts: Some(counts(&sweep.counts)),
        spec_toml: if with_spec {
            sweep.spec_toml.clone()
        } else {
            String::new()
        },
    }
}

fn task_info(task: &Task) -> v1::TaskInfo {
    v1::TaskInfo {
        id: task.id.to_wire(),
        sweep_id: task.sweep_id.to_wire(),
        kind: task.kind.clone(),
        state: task_state(task.state) as i32,
        params_json: task.params.clone(),
        depends_on: task.depends_on.iter().map(|t| t.to_wire()).collect(),
        attempt: task.attempt,
        max_attempts: task.max_attempts,
        worker_id: task.lease_owner.map(|w| w.to_wire()),
        error: task.error.clone().unwrap_or_default(),
        summary_json: task.summary.clone().unwrap_or_default(),
    }
}

fn device_to_wire(device: &Device) -> v1::Device {
    v1::Device {
        kind: device.kind.clone(),
        name: device.name.clone(),
        memory_bytes: device.memory_bytes,
    }
}

fn device_from_wire(device: v1::Device) -> Device {
    Device {
        kind: device.kind,
        name: device.name,
        memory_bytes: device.memory_bytes,
    }
}

/// A worker counts as lost once it has been silent for longer than a lease.
fn worker_info(worker: &Worker, lease_ttl: Duration) -> v1::WorkerInfo {
    let state = if worker.silent_for > lease_ttl {
        "lost"
    } else {
        "alive"
    };
    v1::WorkerInfo {
        id: worker.id.to_wire(),
        name: worker.info.name.clone(),
        host: worker.info.host.clone(),
        backend: worker.info.backend.clone(),
        devices: worker.info.devices.iter().map(device_to_wire).collect(),
        slots: worker.info.slots,
        last_heartbeat_ms: worker.last_heartbeat_at,
        state: state.to_string(),
        running_tasks: worker.running.iter().map(|t| t.to_wire()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_states_round_trip_through_the_wire() {
        for state in TaskState::ALL {
            assert_eq!(task_state_from_wire(task_state(*state) as i32), Ok(*state));
        }
        assert!(task_state_from_wire(0).is_err());
        assert!(task_state_from_wire(99).is_err());
    }
}
