//! A running task's checkpoints ([`Keeper`]): the one its lease says an
//! earlier attempt left, fetched before it starts, and new ones, taken every
//! `--checkpoint-every` of training and when the worker is shutting down,
//! which ship behind the task's metric points.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sweep_proto::TaskId;

use crate::checkpoint::Checkpoint;
use crate::experiments::Checkpoints;
use crate::session::{Board, StopReason};
use crate::shipper::ChannelSink;

pub struct Keeper {
    pub sink: ChannelSink,
    /// The checkpoint to resume from, until the task takes it.
    latest: Mutex<Option<Vec<u8>>>,
    /// How much training between two checkpoints; none: only at shutdown.
    every: Option<Duration>,
    /// When the last checkpoint was taken (or training started).
    last: Mutex<Instant>,
    board: Board,
    task: TaskId,
}

impl Keeper {
    pub fn new(
        sink: ChannelSink,
        latest: Option<Vec<u8>>,
        every: Option<Duration>,
        board: Board,
        task: TaskId,
    ) -> Self {
        Self {
            sink,
            latest: Mutex::new(latest),
            every,
            last: Mutex::new(Instant::now()),
            board,
            task,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Checkpoints for Keeper {
    fn latest(&self) -> Option<Vec<u8>> {
        lock(&self.latest).take()
    }

    /// When the interval has passed, or the worker is shutting down (its
    /// task will be handed back: the next attempt goes on from here). A
    /// cancel or a lost lease is not a stop worth a checkpoint.
    fn due(&self) -> bool {
        self.board.reason(self.task) == Some(StopReason::Shutdown)
            || self
                .every
                .is_some_and(|every| lock(&self.last).elapsed() >= every)
    }

    fn save(&self, checkpoint: Checkpoint) {
        *lock(&self.last) = Instant::now();
        let step = checkpoint.position.step;
        self.sink.checkpoint(step, checkpoint.to_bytes());
    }

    fn resumed(&self, step: u64) {
        tracing::info!(task = %self.task, step, "resuming from a checkpoint");
        self.sink.resumed(step);
    }

    fn refused(&self, why: &str) {
        tracing::warn!(task = %self.task, reason = why, "checkpoint refused; training from the start");
    }
}
