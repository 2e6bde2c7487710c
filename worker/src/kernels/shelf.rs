//! Scratch tensors kept from one pass to the next, by key.
//!
//! A convolution's im2col matrix is about a megabyte a chunk, built twice a
//! step per layer. Allocated anew each time it was zeroed and, as often as
//! not, faulted in page by page from the kernel: together about a tenth of
//! a CNN epoch (docs/BENCHMARKS.md). A shelf hands back one of the same
//! key instead. Work stealing can run a second chunk on a thread that is
//! still inside the first one's GEMM, so a shelf holds several per key, not
//! one per thread.

use std::sync::Mutex;

use burn::backend::flex::FlexTensor;

/// Tensors kept at most, all keys together: the newest stay.
const KEPT: usize = 16;

/// Tensors put back for reuse, each under a key.
pub struct Shelf<K> {
    kept: Mutex<Vec<(K, FlexTensor)>>,
}

impl<K: PartialEq> Shelf<K> {
    pub const fn new() -> Self {
        Self {
            kept: Mutex::new(Vec::new()),
        }
    }

    /// A tensor put back under `key`, if there is one.
    pub fn take(&self, key: &K) -> Option<FlexTensor> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let at = kept.iter().rposition(|(k, _)| k == key)?;
        Some(kept.remove(at).1)
    }

    /// Keeps `tensor` for a later [`Self::take`] of `key`, unless something
    /// else still shares its values.
    pub fn put(&self, key: K, tensor: FlexTensor) {
        if !tensor.is_unique() {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == KEPT {
            kept.remove(0);
        }
        kept.push((key, tensor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::flex::{tensor, values};

    #[test]
    fn gives_back_what_was_put_under_the_same_key_only() {
        let shelf = Shelf::new();
        shelf.put(1, tensor(vec![1.0, 2.0], [2]));
        assert!(shelf.take(&2).is_none());
        let back = shelf.take(&1).expect("kept under 1");
        assert_eq!(values(&back).as_ref(), [1.0, 2.0]);
        assert!(shelf.take(&1).is_none(), "taken once");
    }

    #[test]
    fn keeps_no_tensor_another_holds_and_no_more_than_its_limit() {
        let shelf = Shelf::new();
        let shared = tensor(vec![1.0], [1]);
        shelf.put(0, shared.clone());
        assert!(shelf.take(&0).is_none(), "its values are still in use");
        for key in 0..KEPT + 1 {
            shelf.put(key, tensor(vec![0.0], [1]));
        }
        assert!(shelf.take(&0).is_none(), "the oldest went");
        assert!((1..KEPT + 1).all(|key| shelf.take(&key).is_some()));
    }
}
