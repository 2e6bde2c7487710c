//! A worker as it registers and as clients list it, with the wire forms.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sweep_spec::text_enum;

use crate::error::WireError;
use crate::ids::{TaskId, WorkerId};
use crate::state::from_wire;
use crate::sweep::task_ids;
use crate::{text, v1};

text_enum!(
    /// The kind of a compute device.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    DeviceKind {
        Cpu = "cpu",
        Cuda = "cuda",
    }
);

text_enum!(
    /// The training library a worker runs.
    Backend {
        /// burn's pure-Rust CPU backend.
        Flex = "flex",
        /// LibTorch: CUDA, or CPU.
        Tch = "tch",
    }
);

impl From<DeviceKind> for v1::DeviceKind {
    fn from(kind: DeviceKind) -> Self {
        match kind {
            DeviceKind::Cpu => Self::Cpu,
            DeviceKind::Cuda => Self::Cuda,
        }
    }
}

impl DeviceKind {
    /// The kind a wire value names; an unknown value is a bad request.
    pub fn from_wire(raw: i32) -> Result<Self, WireError> {
        from_wire(
            Self::ALL,
            raw,
            |k| v1::DeviceKind::from(k) as i32,
            "device kind",
        )
    }
}

impl From<Backend> for v1::Backend {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Flex => Self::Flex,
            Backend::Tch => Self::Tch,
        }
    }
}

impl Backend {
    /// The backend a wire value names; an unknown value is a bad request.
    pub fn from_wire(raw: i32) -> Result<Self, WireError> {
        from_wire(Self::ALL, raw, |b| v1::Backend::from(b) as i32, "backend")
    }
}

/// A compute device a worker offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub kind: DeviceKind,
    /// Human-readable, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    pub memory_bytes: u64,
}

impl From<&Device> for v1::Device {
    fn from(device: &Device) -> Self {
        Self {
            kind: v1::DeviceKind::from(device.kind) as i32,
            name: device.name.clone(),
            memory_bytes: device.memory_bytes,
        }
    }
}

impl TryFrom<v1::Device> for Device {
    type Error = WireError;

    fn try_from(device: v1::Device) -> Result<Self, WireError> {
        text::name("device name", &device.name)?;
        Ok(Self {
            kind: DeviceKind::from_wire(device.kind)?,
            name: device.name,
            memory_bytes: device.memory_bytes,
        })
    }
}

fn devices(wire: Vec<v1::Device>) -> Result<Vec<Device>, WireError> {
    wire.into_iter().map(Device::try_from).collect()
}

/// What a worker tells the coordinator about itself when it registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub host: String,
    pub backend: Backend,
    pub devices: Vec<Device>,
    pub slots: u32,
    pub version: String,
    /// Bumped whenever the worker's training code changes results; part of
    /// every result key it completes ([`sweep_spec::result_key`]).
    pub result_version: u32,
}

impl From<&Registration> for v1::RegisterRequest {
    fn from(worker: &Registration) -> Self {
        Self {
            name: worker.name.clone(),
            host: worker.host.clone(),
            backend: v1::Backend::from(worker.backend) as i32,
            devices: worker.devices.iter().map(Into::into).collect(),
            slots: worker.slots,
            version: worker.version.clone(),
            result_version: worker.result_version,
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
            ("version", &request.version),
        ] {
            text::name(field, value)?;
        }
        Ok(Self {
            backend: Backend::from_wire(request.backend)?,
            devices: devices(request.devices)?,
            name: request.name,
            host: request.host,
            slots: request.slots,
            version: request.version,
            result_version: request.result_version,
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

text_enum!(
    /// Whether a worker is there.
    WorkerStatus {
        /// It has heartbeated within a lease's time to live.
        Live = "live",
        /// It said it was stopping, after handing back its tasks.
        Stopped = "stopped",
        /// It went silent for longer than a lease lives without saying so.
        Lost = "lost",
    }
);

/// A worker as `ListWorkers` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    pub id: WorkerId,
    pub registration: Registration,
    /// Milliseconds since the Unix epoch.
    pub last_heartbeat_at: i64,
    pub status: WorkerStatus,
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
            backend: v1::Backend::from(info.backend) as i32,
            devices: info.devices.iter().map(Into::into).collect(),
            slots: info.slots,
            last_heartbeat_ms: worker.last_heartbeat_at,
            alive: worker.status == WorkerStatus::Live,
            stopped: worker.status == WorkerStatus::Stopped,
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
            status: match (wire.stopped, wire.alive) {
                (true, _) => WorkerStatus::Stopped,
                (false, true) => WorkerStatus::Live,
                (false, false) => WorkerStatus::Lost,
            },
            registration: Registration {
                backend: Backend::from_wire(wire.backend)?,
                devices: devices(wire.devices)?,
                name: wire.name,
                host: wire.host,
                slots: wire.slots,
                version: String::new(),
                result_version: 0,
            },
        })
    }
}
