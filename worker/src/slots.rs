//! How many of the worker's slots hold a task. A task gives its slot back
//! as soon as it has handed over its ending, before the coordinator answers,
//! so the lease call that carries its completion can already ask for the
//! slot's next task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The worker's slots. Cloning it is cheap and shares the count.
#[derive(Clone, Debug)]
pub struct Slots {
    total: usize,
    taken: Arc<AtomicUsize>,
}

impl Slots {
    pub fn new(total: usize) -> Self {
        Self {
            total,
            taken: Arc::default(),
        }
    }

    /// Slots that no task holds.
    pub fn free(&self) -> usize {
        self.total
            .saturating_sub(self.taken.load(Ordering::Relaxed))
    }

    /// Takes a slot for a task until the [`Slot`] is dropped.
    pub fn take(&self) -> Slot {
        self.taken.fetch_add(1, Ordering::Relaxed);
        Slot(self.taken.clone())
    }
}

/// One taken slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_free_again_once_its_task_lets_go() {
        let slots = Slots::new(2);
        let first = slots.take();
        let second = slots.take();
        assert_eq!(slots.free(), 0);
        drop(first);
        assert_eq!(slots.free(), 1);
        let extra = slots.take();
        let over = slots.take();
        assert_eq!(slots.free(), 0, "never below zero");
        drop((second, extra, over));
        assert_eq!(slots.free(), 2);
    }
}
