//! What the pages show, as text: progress, times and rows made from the
//! store's types, so the templates only lay them out (and escape them).

use sweep_proto::clock::utc_minute;
use sweep_proto::{Sweep, TaskCounts, WorkerInfo};

use crate::store::Attempt;

/// A progress bar's parts.
pub struct Progress {
    pub succeeded: u64,
    /// Of the succeeded, those whose results came from the result cache.
    pub cached: u64,
    pub running: u64,
    pub failed: u64,
    /// Queued or blocked.
    pub waiting: u64,
    pub total: u64,
}

impl Progress {
    pub fn of(counts: &TaskCounts) -> Self {
        Self {
            succeeded: counts.succeeded,
            cached: counts.cached,
            running: counts.leased,
            failed: counts.failed + counts.cancelled,
            waiting: counts.queued + counts.blocked,
            total: counts.total(),
        }
    }

    /// `part`'s share of the bar, in percent.
    pub fn width(&self, part: &u64) -> String {
        let share = if self.total == 0 {
            0.0
        } else {
            *part as f64 * 100.0 / self.total as f64
        };
        format!("{share:.2}")
    }

    fn done(&self) -> u64 {
        self.succeeded + self.failed
    }
}

/// A sweep as the sweeps list and the sweep page show it.
pub struct SweepRow {
    pub id: i64,
    pub name: String,
    pub experiment: String,
    pub state: String,
    pub progress: Progress,
    pub started: String,
    pub elapsed: String,
    pub eta: String,
}

impl SweepRow {
    pub fn of(sweep: &Sweep, now_ms: i64) -> Self {
        let progress = Progress::of(&sweep.counts);
        let end = sweep.finished_at.unwrap_or(now_ms);
        let elapsed = (end - sweep.created_at).max(0);
        let left = progress.total - progress.done();
        let eta = if sweep.finished_at.is_some() || left == 0 {
            "done".to_string()
        } else if progress.done() == 0 {
            "unknown".to_string()
        } else {
            let per_task = elapsed as f64 / progress.done() as f64;
            duration((per_task * left as f64) as i64)
        };
        Self {
            id: sweep.id.0,
            name: sweep.name.clone(),
            experiment: sweep.experiment.to_string(),
            state: sweep.state.to_string(),
            progress,
            started: utc_minute(sweep.created_at),
            elapsed: duration(elapsed),
            eta,
        }
    }
}

/// A worker as the workers page shows it.
pub struct WorkerRow {
    pub id: i64,
    pub name: String,
    pub host: String,
    pub backend: String,
    pub devices: String,
    pub slots: u32,
    pub used: usize,
    pub tasks: Vec<i64>,
    pub heartbeat: String,
    pub status: &'static str,
}

impl WorkerRow {
    pub fn of(worker: &WorkerInfo, now_ms: i64) -> Self {
        let registration = &worker.registration;
        let devices = registration
            .devices
            .iter()
            .map(|d| format!("{} {} ({})", d.kind, d.name, memory(d.memory_bytes)))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            id: worker.id.0,
            name: registration.name.clone(),
            host: registration.host.clone(),
            backend: registration.backend.to_string(),
            devices,
            slots: registration.slots,
            used: worker.running.len(),
            tasks: worker.running.iter().map(|t| t.0).collect(),
            heartbeat: format!(
                "{} ago",
                duration((now_ms - worker.last_heartbeat_at).max(0))
            ),
            status: worker.status.as_str(),
        }
    }
}

/// One attempt at a task as its page lists it.
pub struct AttemptRow {
    pub number: u32,
    pub worker: String,
    pub started: String,
    pub time: String,
    pub outcome: &'static str,
    pub error: String,
    pub resumed_from: u64,
}

impl AttemptRow {
    pub fn of(attempt: &Attempt, now_ms: i64) -> Self {
        Self {
            number: attempt.number,
            worker: attempt.worker.map_or(String::new(), |w| w.to_string()),
            started: attempt.started_at.map_or(String::new(), utc_minute),
            time: attempt.started_at.map_or(String::new(), |start| {
                duration(attempt.ended_at.unwrap_or(now_ms) - start)
            }),
            outcome: attempt.outcome.as_str(),
            error: attempt.error.clone().unwrap_or_default(),
            resumed_from: attempt.resumed_from,
        }
    }
}

/// Bytes as GiB or MiB.
fn memory(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    if bytes == 0 {
        "memory unknown".into()
    } else if bytes as f64 >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// Milliseconds as "3h 07m", "4m 05s" or "12s".
pub fn duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12_400), "12s");
        assert_eq!(duration(245_000), "4m 05s");
        assert_eq!(duration(11_220_000), "3h 07m");
    }

    #[test]
    fn a_progress_bar_splits_the_tasks_by_state() {
        let counts = TaskCounts {
            succeeded: 2,
            leased: 1,
            failed: 1,
            queued: 4,
            ..TaskCounts::default()
        };
        let progress = Progress::of(&counts);
        assert_eq!(progress.width(&progress.succeeded), "25.00");
        assert_eq!(progress.width(&progress.waiting), "50.00");
        assert_eq!(Progress::of(&TaskCounts::default()).width(&0), "0.00");
    }
}
