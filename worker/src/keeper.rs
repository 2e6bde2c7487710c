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
    /// The task's share of the worker's memory: checkpoints (with those
    /// still on their way) beyond it are not taken.
    share: u64,
}

impl Keeper {
    pub fn new(
        sink: ChannelSink,
        latest: Option<Vec<u8>>,
        every: Option<Duration>,
        board: Board,
        task: TaskId,
        share: u64,
    ) -> Self {
        Self {
            sink,
            latest: Mutex::new(latest),
            every,
            last: Mutex::new(Instant::now()),
            board,
            task,
            share,
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
        let (bytes, held) = (checkpoint.size() as u64, self.sink.held() as u64);
        if bytes.saturating_add(held) > self.share {
            tracing::warn!(
                task = %self.task,
                step,
                bytes,
                held,
                share = self.share,
                "checkpoint not taken: with those still on their way it would pass the task's memory share"
            );
            return;
        }
        self.sink.checkpoint(step, checkpoint.to_bytes());
    }

    fn resumed(&self, step: u64) {
        tracing::info!(task = %self.task, step, "resuming from a checkpoint");
        self.sink.resumed(step);
    }

    fn refused(&self, why: &str) {
        tracing::warn!(task = %self.task, reason = why, "checkpoint refused; training from the start");
        self.sink.refused(why);
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::shipper::Event;

    fn weights(n: usize) -> Checkpoint {
        Checkpoint {
            weights: vec![0.5; n],
            ..Checkpoint::default()
        }
    }

    #[test]
    fn a_checkpoint_past_the_memory_share_is_not_taken() {
        let (events, mut sent) = mpsc::unbounded_channel();
        let sink = ChannelSink::new(events);
        let keeper = Keeper::new(sink, None, None, Board::default(), TaskId(1), 1000);
        keeper.save(weights(100));
        let first = sent.try_recv().expect("400 bytes fit 1000");
        assert!(matches!(first, Event::Checkpoint { .. }));
        keeper.save(weights(200));
        assert!(
            sent.try_recv().is_err(),
            "800 bytes beside the first, still on its way, do not"
        );
        drop(first);
        assert_eq!(keeper.sink.held(), 0, "the first is stored");
        keeper.save(weights(200));
        assert!(matches!(sent.try_recv(), Ok(Event::Checkpoint { .. })));
        keeper.save(weights(300));
        assert!(sent.try_recv().is_err(), "nor 1,200 bytes alone");
    }
}
