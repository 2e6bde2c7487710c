//! A worker as it registers and as clients list it, with the wire forms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::ids::{TaskId, WorkerId};
use crate::sweep::task_ids;
use crate::{text, v1};

/// A compute device a worker offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// "cpu" or "cuda".
    pub kind: String,
    /// Human-readable, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    pub memory_bytes: u64,
}

impl From<&Device> for v1::Device {
    fn from(device: &Device) -> Self {
        Self {
            kind: device.kind.clone(),
            name: device.name.clone(),
            memory_bytes: device.memory_bytes,
        }
    }
}

impl From<v1::Device> for Device {
    fn from(device: v1::Device) -> Self {
        Self {
            kind: device.kind,
            name: device.name,
            memory_bytes: device.memory_bytes,
        }
    }
}

/// What a worker tells the coordinator about itself when it registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub host: String,
    /// "flex" or "tch".
    pub backend: String,
    pub devices: Vec<Device>,
    pub slots: u32,
    pub version: String,
}

impl From<&Registration> for v1::RegisterRequest {
    fn from(worker: &Registration) -> Self {
        Self {
            name: worker.name.clone(),
            host: worker.host.clone(),
            backend: worker.backend.clone(),
            devices: worker.devices.iter().map(Into::into).collect(),
            slots: worker.slots,
            version: worker.version.clone(),
        }
    }
}

impl TryFrom<v1::RegisterRequest> for Registration {
    type Error = WireError;

    fn try_from(request: v1::RegisterRequest) -> Result<Self, WireError> {
        if request.slots == 0 {
            return Err(WireError::invalid("a worker needs at least one slot"));
        }
        for (field, value) in [
            ("worker name", &request.name),
            ("host", &request.host),
            ("backend", &request.backend),
            ("version", &request.version),
        ] {
            text::name(field, value)?;
        }
        for device in &request.devices {
            text::name("device kind", &device.kind)?;
            text::name("device name", &device.name)?;
        }
        Ok(Self {
            name: request.name,
            host: request.host,
            backend: request.backend,
            devices: request.devices.into_iter().map(Into::into).collect(),
            slots: request.slots,
            version: request.version,
        })
    }
}

/// The coordinator's answer to a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registered {
    pub worker_id: WorkerId,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// How often to heartbeat.
    pub heartbeat_interval: Duration,
}

impl From<Registered> for v1::RegisterResponse {
    fn from(registered: Registered) -> Self {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            worker_id: registered.worker_id.to_wire(),
            lease_ttl_ms: millis(registered.lease_ttl),
            heartbeat_interval_ms: millis(registered.heartbeat_interval),
        }
    }
}

impl TryFrom<v1::RegisterResponse> for Registered {
    type Error = WireError;

    fn try_from(response: v1::RegisterResponse) -> Result<Self, WireError> {
        Ok(Self {
            worker_id: WorkerId::from_wire(response.worker_id)?,
            lease_ttl: Duration::from_millis(response.lease_ttl_ms),
            heartbeat_interval: Duration::from_millis(response.heartbeat_interval_ms),
        })
    }
}

/// A worker as `ListWorkers` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    pub id: WorkerId,
    pub registration: Registration,
    /// Milliseconds since the Unix epoch.
    pub last_heartbeat_at: i64,
    /// Whether it has heartbeated within a lease's time to live.
    pub alive: bool,
    /// The tasks it holds leases on.
    pub running: Vec<TaskId>,
}

impl From<&WorkerInfo> for v1::WorkerInfo {
    fn from(worker: &WorkerInfo) -> Self {
        let info = &worker.registration;
        Self {
            id: worker.id.to_wire(),
            name: info.name.clone(),
            host: info.host.clone(),
            backend: info.backend.clone(),
            devices: info.devices.iter().map(Into::into).collect(),
            slots: info.slots,
            last_heartbeat_ms: worker.last_heartbeat_at,
            state: if worker.alive { "alive" } else { "lost" }.to_string(),
            running_tasks: worker.running.iter().map(|t| t.to_wire()).collect(),
        }
    }
}

impl TryFrom<v1::WorkerInfo> for WorkerInfo {
    type Error = WireError;

    fn try_from(wire: v1::WorkerInfo) -> Result<Self, WireError> {
        Ok(Self {
            id: WorkerId::from_wire(wire.id)?,
            running: task_ids(&wire.running_tasks)?,
            last_heartbeat_at: wire.last_heartbeat_ms,
            alive: wire.state == "alive",
            registration: Registration {
                name: wire.name,
                host: wire.host,
                backend: wire.backend,
                devices: wire.devices.into_iter().map(Into::into).collect(),
                slots: wire.slots,
                version: String::new(),
            },
        })
    }
}
