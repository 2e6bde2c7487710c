//! Scratch buffers kept from one pass to the next, by key.
//!
//! A convolution's im2col matrix, and its input gradient in that shape, are
//! about a megabyte a chunk, made twice a step per layer. Allocated anew
//! each time they were zeroed and, as often as not, faulted in page by page
//! from the kernel (docs/BENCHMARKS.md). A shelf hands back one put there
//! under the same key instead. Work stealing can run a second chunk on a
//! thread that is still inside the first one's GEMM, so a shelf holds
//! several per key, not one per thread.

use std::sync::Mutex;

/// Buffers kept at most, all keys together: the newest stay.
const KEPT: usize = 16;

/// Buffers put back for reuse, each under a key.
pub struct Shelf<K> {
    kept: Mutex<Vec<(K, Vec<f32>)>>,
}

impl<K: PartialEq> Shelf<K> {
    pub const fn new() -> Self {
        Self {
            kept: Mutex::new(Vec::new()),
        }
    }

    /// The buffer put back last under `key`, or `make()`'s.
    pub fn take(&self, key: &K, make: impl FnOnce() -> Vec<f32>) -> Vec<f32> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        match kept.iter().rposition(|(k, _)| k == key) {
            Some(at) => kept.remove(at).1,
            None => make(),
        }
    }

    /// Keeps `buffer` for a later [`Self::take`] of `key`.
    pub fn put(&self, key: K, buffer: Vec<f32>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == KEPT {
            kept.remove(0);
        }
        kept.push((key, buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_what_was_put_under_the_same_key_only() {
        let shelf = Shelf::new();
        shelf.put(1, vec![1.0, 2.0]);
        assert_eq!(shelf.take(&2, Vec::new), [0.0f32; 0]);
        assert_eq!(shelf.take(&1, Vec::new), [1.0, 2.0]);
        assert_eq!(shelf.take(&1, Vec::new), [0.0f32; 0], "taken once");
    }

    #[test]
    fn keeps_no_more_than_its_limit_dropping_the_oldest() {
        let shelf = Shelf::new();
        for key in 0..KEPT + 1 {
            shelf.put(key, vec![key as f32]);
        }
        assert_eq!(shelf.take(&0, Vec::new), [0.0f32; 0], "the oldest went");
        for key in 1..KEPT + 1 {
            assert_eq!(shelf.take(&key, Vec::new), [key as f32]);
        }
    }
}
