//! What reports, figures and exports read, with their wire forms: a swept
//! setting's aggregated numbers ([`SettingStats`]), a stored metric point
//! ([`Metric`]) and an artifact ([`Artifact`]), which travels as its info
//! and then its bytes in chunks.

use std::collections::BTreeMap;

use sweep_spec::TaskParams;

use crate::error::WireError;
use crate::ids::{SweepId, TaskId};
use crate::lease::MetricPoint;
use crate::sweep::{params_json, parse_params};
use crate::v1::{self, artifact_download};

/// The name and the encoding a checkpoint travels under: the bytes are the
/// worker's own (`sweep_worker::checkpoint`); the coordinator keeps them as
/// they come.
pub const CHECKPOINT: &str = "checkpoint";

/// Bytes per artifact chunk, well under the message limit.
pub const CHUNK: usize = 1 << 20;

/// A stored metric point and the attempt that measured it.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub attempt: u32,
    pub point: MetricPoint,
}

impl From<Metric> for v1::Metric {
    fn from(metric: Metric) -> Self {
        Self {
            attempt: metric.attempt,
            point: Some(metric.point.into()),
        }
    }
}

impl TryFrom<v1::Metric> for Metric {
    type Error = WireError;

    fn try_from(metric: v1::Metric) -> Result<Self, WireError> {
        let point = metric
            .point
            .ok_or_else(|| WireError::invalid("a metric without its point"))?;
        Ok(Self {
            attempt: metric.attempt,
            point: MetricPoint::try_from(point)?,
        })
    }
}

/// A stored artifact of a task's attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub task_id: TaskId,
    pub attempt: u32,
    pub name: String,
    pub encoding: String,
    pub data: Vec<u8>,
}

/// What an artifact is, without its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactInfo {
    pub task_id: TaskId,
    pub attempt: u32,
    pub name: String,
    pub encoding: String,
    pub size: u64,
}

impl From<ArtifactInfo> for v1::ArtifactInfo {
    fn from(info: ArtifactInfo) -> Self {
        Self {
            task_id: info.task_id.to_wire(),
            attempt: info.attempt,
            name: info.name,
            encoding: info.encoding,
            size: info.size,
        }
    }
}

impl TryFrom<v1::ArtifactInfo> for ArtifactInfo {
    type Error = WireError;

    fn try_from(info: v1::ArtifactInfo) -> Result<Self, WireError> {
        Ok(Self {
            task_id: TaskId::from_wire(info.task_id)?,
            attempt: info.attempt,
            name: info.name,
            encoding: info.encoding,
            size: info.size,
        })
    }
}

impl Artifact {
    pub fn info(&self) -> ArtifactInfo {
        ArtifactInfo {
            task_id: self.task_id,
            attempt: self.attempt,
            name: self.name.clone(),
            encoding: self.encoding.clone(),
            size: self.data.len() as u64,
        }
    }

    /// The messages of a download: the info, then the bytes in chunks.
    pub fn to_wire(&self) -> Vec<v1::ArtifactDownload> {
        let info = self.info().into();
        std::iter::once(artifact_download::Part::Info(info))
            .chain(
                self.data
                    .chunks(CHUNK)
                    .map(|chunk| artifact_download::Part::Data(chunk.to_vec())),
            )
            .map(|part| v1::ArtifactDownload { part: Some(part) })
            .collect()
    }

    /// Reads a download back, checking that the bytes are the size the
    /// info announced.
    pub async fn from_wire(
        parts: &mut tonic::Streaming<v1::ArtifactDownload>,
    ) -> Result<Self, tonic::Status> {
        let mut info = None;
        let mut data = Vec::new();
        while let Some(part) = parts.message().await? {
            match part.part {
                Some(artifact_download::Part::Info(first)) => info = Some(first),
                Some(artifact_download::Part::Data(chunk)) => data.extend(chunk),
                None => {}
            }
        }
        let info =
            info.ok_or_else(|| WireError::invalid("an artifact download without its info"))?;
        let info = ArtifactInfo::try_from(info)?;
        if info.size != data.len() as u64 {
            let message = format!(
                "artifact {:?} announced {} bytes and sent {}",
                info.name,
                info.size,
                data.len()
            );
            return Err(WireError::invalid(message).into());
        }
        Ok(Self {
            task_id: info.task_id,
            attempt: info.attempt,
            name: info.name,
            encoding: info.encoding,
            data,
        })
    }
}

/// What the result cache holds (see `sweep_spec::result_key`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Keys whose task succeeded: results later tasks may point at.
    pub results: u64,
    /// Keys whose task is training now.
    pub training: u64,
    /// Tasks that succeeded pointing at another task's results.
    pub cached_tasks: u64,
    /// When the oldest and the newest result's task ended (ms since the
    /// epoch); none without results.
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
}

impl From<CacheStats> for v1::CacheStatsResponse {
    fn from(stats: CacheStats) -> Self {
        Self {
            results: stats.results,
            training: stats.training,
            cached_tasks: stats.cached_tasks,
            oldest_ms: stats.oldest,
            newest_ms: stats.newest,
        }
    }
}

impl From<v1::CacheStatsResponse> for CacheStats {
    fn from(wire: v1::CacheStatsResponse) -> Self {
        Self {
            results: wire.results,
            training: wire.training,
            cached_tasks: wire.cached_tasks,
            oldest: wire.oldest_ms,
            newest: wire.newest_ms,
        }
    }
}

/// Which results `ForgetResults` forgets: tasks with their keys train again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forget {
    /// Those of tasks that ended before this time (ms since the epoch).
    Before(i64),
    /// Those of one sweep's tasks.
    Sweep(SweepId),
}

impl From<Forget> for v1::ForgetResultsRequest {
    fn from(forget: Forget) -> Self {
        use v1::forget_results_request::Which;
        let which = match forget {
            Forget::Before(ms) => Which::BeforeMs(ms),
            Forget::Sweep(sweep) => Which::SweepId(sweep.to_wire()),
        };
        Self { which: Some(which) }
    }
}

impl TryFrom<v1::ForgetResultsRequest> for Forget {
    type Error = WireError;

    fn try_from(wire: v1::ForgetResultsRequest) -> Result<Self, WireError> {
        use v1::forget_results_request::Which;
        match wire.which {
            Some(Which::BeforeMs(ms)) => Ok(Self::Before(ms)),
            Some(Which::SweepId(id)) => Ok(Self::Sweep(SweepId::from_wire(id)?)),
            None => Err(WireError::invalid(
                "say which results to forget: before a time, or of a sweep",
            )),
        }
    }
}

/// One swept setting of a sweep (see [`TaskParams::setting_key`]): how its
/// tasks (one per seed) fared, and the mean and spread of each number in the
/// summaries of those that succeeded.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingStats {
    /// The parameters of the setting's first task; its other tasks differ
    /// only in their seeds.
    pub params: TaskParams,
    pub tasks: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// By summary name (`test_acc`, `minimal_ratio`, ...).
    pub summary: BTreeMap<String, Stats>,
}

/// One summary number over a setting's succeeded tasks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Tasks that reported it.
    pub n: u64,
    pub mean: f64,
    /// The sample standard deviation (divisor n - 1); none for a single task.
    pub std: Option<f64>,
}

impl From<&SettingStats> for v1::SettingStats {
    fn from(setting: &SettingStats) -> Self {
        let summary = setting.summary.iter().map(|(name, stats)| {
            let stats = v1::Stats {
                n: stats.n,
                mean: stats.mean,
                std: stats.std,
            };
            (name.clone(), stats)
        });
        Self {
            params_json: params_json(&setting.params),
            tasks: setting.tasks,
            succeeded: setting.succeeded,
            failed: setting.failed,
            summary: summary.collect(),
        }
    }
}

impl TryFrom<v1::SettingStats> for SettingStats {
    type Error = WireError;

    fn try_from(setting: v1::SettingStats) -> Result<Self, WireError> {
        let summary = setting.summary.into_iter().map(|(name, stats)| {
            let stats = Stats {
                n: stats.n,
                mean: stats.mean,
                std: stats.std,
            };
            (name, stats)
        });
        Ok(Self {
            params: parse_params(&setting.params_json)?,
            tasks: setting.tasks,
            succeeded: setting.succeeded,
            failed: setting.failed,
            summary: summary.collect(),
        })
    }
}
