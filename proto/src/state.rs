//! Where a task and a sweep are in their lives, and a sweep's task counts:
//! one name each in the database, on the wire and on screen.

use sweep_spec::text_enum;

use crate::error::WireError;
use crate::v1;

text_enum!(
    /// Where a task is in its life cycle.
    TaskState {
        Blocked = "blocked",
        Queued = "queued",
        Leased = "leased",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// A sweep's state, derived from its tasks' states (see [`SweepState::of`]).
    SweepState {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

impl TaskState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The state a wire value names; an unknown value is a bad request.
    pub fn from_wire(raw: i32) -> Result<Self, WireError> {
        from_wire(
            Self::ALL,
            raw,
            |s| v1::TaskState::from(s) as i32,
            "task state",
        )
    }
}

impl From<TaskState> for v1::TaskState {
    fn from(state: TaskState) -> Self {
        match state {
            TaskState::Blocked => Self::Blocked,
            TaskState::Queued => Self::Queued,
            TaskState::Leased => Self::Leased,
            TaskState::Succeeded => Self::Succeeded,
            TaskState::Failed => Self::Failed,
            TaskState::Cancelled => Self::Cancelled,
        }
    }
}

impl SweepState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The state of a sweep that is not cancelled, from its task counts.
    pub fn of(counts: &TaskCounts) -> Self {
        let unfinished = counts.blocked + counts.queued + counts.leased;
        if unfinished == 0 {
            if counts.failed > 0 {
                Self::Failed
            } else {
                Self::Succeeded
            }
        } else if counts.leased + counts.succeeded + counts.failed > 0 {
            Self::Running
        } else {
            Self::Pending
        }
    }

    /// The state a wire value names; an unknown value is a bad request.
    pub fn from_wire(raw: i32) -> Result<Self, WireError> {
        from_wire(
            Self::ALL,
            raw,
            |s| v1::SweepState::from(s) as i32,
            "sweep state",
        )
    }
}

impl From<SweepState> for v1::SweepState {
    fn from(state: SweepState) -> Self {
        match state {
            SweepState::Pending => Self::Pending,
            SweepState::Running => Self::Running,
            SweepState::Succeeded => Self::Succeeded,
            SweepState::Failed => Self::Failed,
            SweepState::Cancelled => Self::Cancelled,
        }
    }
}

/// The value of `all` whose wire number is `raw`.
pub(crate) fn from_wire<T: Copy>(
    all: &[T],
    raw: i32,
    to_wire: impl Fn(T) -> i32,
    what: &str,
) -> Result<T, WireError> {
    all.iter()
        .copied()
        .find(|value| to_wire(*value) == raw)
        .ok_or_else(|| WireError::invalid(format!("{what} {raw} is not one this version knows")))
}

/// How many of a sweep's tasks are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub blocked: u64,
    pub queued: u64,
    pub leased: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Of the succeeded, those whose results came from the result cache.
    pub cached: u64,
}

impl TaskCounts {
    pub fn add(&mut self, state: TaskState, n: u64) {
        *self.slot(state) += n;
    }

    /// How many tasks are in `state`.
    pub fn of(&self, state: TaskState) -> u64 {
        let mut copy = *self;
        *copy.slot(state)
    }

    fn slot(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Blocked => &mut self.blocked,
            TaskState::Queued => &mut self.queued,
            TaskState::Leased => &mut self.leased,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        }
    }

    pub fn total(&self) -> u64 {
        self.blocked + self.queued + self.leased + self.succeeded + self.failed + self.cancelled
    }

    /// Tasks that have ended, however they ended.
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled
    }
}

impl From<&TaskCounts> for v1::TaskCounts {
    fn from(counts: &TaskCounts) -> Self {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            blocked: narrow(counts.blocked),
            queued: narrow(counts.queued),
            leased: narrow(counts.leased),
            succeeded: narrow(counts.succeeded),
            failed: narrow(counts.failed),
            cancelled: narrow(counts.cancelled),
            cached: narrow(counts.cached),
        }
    }
}

impl From<v1::TaskCounts> for TaskCounts {
    fn from(counts: v1::TaskCounts) -> Self {
        Self {
            blocked: counts.blocked.into(),
            queued: counts.queued.into(),
            leased: counts.leased.into(),
            succeeded: counts.succeeded.into(),
            failed: counts.failed.into(),
            cancelled: counts.cancelled.into(),
            cached: counts.cached.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_the_wire() {
        for state in TaskState::ALL {
            let raw = v1::TaskState::from(*state) as i32;
            assert_eq!(TaskState::from_wire(raw), Ok(*state));
        }
        for state in SweepState::ALL {
            let raw = v1::SweepState::from(*state) as i32;
            assert_eq!(SweepState::from_wire(raw), Ok(*state));
        }
        assert!(TaskState::from_wire(0).is_err());
        assert!(TaskState::from_wire(99).is_err());
    }

    #[test]
    fn a_sweep_state_follows_its_counts() {
        let mut counts = TaskCounts::default();
        counts.add(TaskState::Queued, 2);
        assert_eq!(SweepState::of(&counts), SweepState::Pending);
        counts.add(TaskState::Succeeded, 1);
        assert_eq!(SweepState::of(&counts), SweepState::Running);
        counts.queued = 0;
        counts.add(TaskState::Failed, 1);
        assert_eq!(SweepState::of(&counts), SweepState::Failed);
        assert_eq!((counts.total(), counts.done()), (2, 2));
    }
}
