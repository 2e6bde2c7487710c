//! flex's GEMM (the `gemm` crate) into a buffer the caller owns.
//!
//! flex's `float_matmul` returns a new tensor every call, made as a zeroed
//! byte vector and then copied once more to align it (`FlexTensor::empty`):
//! for a convolution's input gradient, a megabyte a chunk written three
//! times where the GEMM writes it once. Here the caller passes views of its
//! own slices and a destination it keeps between passes. The call is the
//! one flex makes (same strides, scalars and threading), so the products
//! are the same bits.

/// A matrix over a slice: element `(i, j)` at `i * row_stride + j *
/// col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows x cols` matrix.
    ///
    /// # Panics
    /// If `data` is shorter than that.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "a {rows}x{cols} matrix over {} values",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// Products of at least this many multiply-adds run on rayon's threads:
/// flex's threshold, so that a product is split as flex would split it.
const PARALLEL_FROM: usize = 192 * 192 * 192;

/// `dst = lhs · rhs`, with `dst` row-major.
///
/// # Panics
/// If the shapes do not match or `dst` is not `lhs.rows x rhs.cols` long.
#[allow(unsafe_code)]
pub fn matmul(dst: &mut [f32], lhs: View, rhs: View) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner sizes");
    assert_eq!(dst.len(), m * n, "destination size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst.fill(0.0);
        return;
    }
    // The last element each view reads must be inside its slice.
    let last = |v: View| (v.rows - 1) * v.row_stride + (v.cols - 1) * v.col_stride;
    assert!(last(lhs) < lhs.data.len() && last(rhs) < rhs.data.len());
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_FROM {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let stride = |s: usize| isize::try_from(s).expect("a stride fits isize");
    // SAFETY: `dst` is an exclusive slice of m·n values, written at
    // i·n + j for i < m, j < n; each operand is read at (i, j) as
    // i·row_stride + j·col_stride, at most `last(view)`, inside its slice
    // (checked above; no size is 0 here). The operands are shared slices,
    // so neither aliases `dst`; `read_dst` is false, so `dst`'s old values
    // are never read.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(n),
            false,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the products written out by hand, with transposed views.
    #[test]
    fn multiplies_plain_and_transposed_views() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]; // 3x2
        let mut ab = [0.0; 4];
        matmul(&mut ab, View::new(&a, 2, 3), View::new(&b, 3, 2));
        assert_eq!(ab, [58.0, 64.0, 139.0, 154.0]);
        // aᵀ·a is 3x3; a read as its transpose.
        let mut ata = [f32::NAN; 9];
        matmul(&mut ata, View::new(&a, 2, 3).t(), View::new(&a, 2, 3));
        assert_eq!(ata, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }

    /// Large enough to run on rayon's threads: the same bits as flex's own
    /// matmul, which the gradients' pinned bits depend on.
    #[test]
    fn gives_flex_matmuls_bits() {
        use burn::backend::Flex;
        use burn::backend::ops::FloatTensorOps;

        use crate::kernels::flex::{tensor, values};

        let (m, k, n) = (200, 300, 250);
        let lhs: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 997.0)
            .collect();
        let rhs: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729) % 1000) as f32 / 991.0)
            .collect();
        let mut ours = vec![0.0; m * n];
        matmul(&mut ours, View::new(&lhs, m, k), View::new(&rhs, n, k).t());
        let flex = Flex::float_matmul(tensor(lhs, [m, k]), tensor(rhs, [n, k]).transpose(0, 1));
        assert_eq!(ours, values(&flex).as_ref());
    }

    #[test]
    #[should_panic(expected = "inner sizes")]
    fn refuses_mismatched_shapes() {
        let mut dst = [0.0; 4];
        matmul(
            &mut dst,
            View::new(&[0.0; 6], 2, 3),
            View::new(&[0.0; 4], 2, 2),
        );
    }
}
