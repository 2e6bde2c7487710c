//! Max pooling on flex that keeps, for each output, where its maximum came
//! from, so that the backward is one pass that adds each output's gradient
//! to that input instead of searching each window again (flex's pooling
//! with indices: 3 ms forward and 7 ms backward on the first layer of a
//! CNN1 batch, 64x16x28x28; docs/BENCHMARKS.md has the ratio).
//!
//! Windows are `kernel` wide, `stride` apart, unpadded and undilated;
//! partial windows at the edges are dropped (burn's floor mode).

use std::hint::select_unpredictable;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::flex::{dims4, tensor, values};

/// burn's `max_pool2d` with `kernel` and `stride` (no padding, no
/// dilation, floor mode) when `x` is on flex; `None` otherwise.
pub fn max_pool2d(x: &Tensor<4>, kernel: [usize; 2], stride: [usize; 2]) -> Option<Tensor<4>> {
    if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        let windows = Windows::new(x.primitive(), kernel, stride)?;
        let output = match PoolBackward
            .prepare::<NoCheckpointing>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, argmax) = windows.forward(x.primitive());
                prep.finish((windows, Arc::new(argmax)), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(windows.forward(x.primitive()).0),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(output));
    }
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let windows = Windows::new(&x, kernel, stride)?;
    Some(Tensor::from_primitive::<Flex>(windows.forward(&x).0))
}

/// The pooling windows over one input.
#[derive(Clone, Debug)]
struct Windows {
    /// Images times channels.
    planes: usize,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    out: [usize; 2],
    /// The input's shape, for the gradient.
    shape: [usize; 4],
}

impl Windows {
    fn new(x: &FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> Option<Self> {
        let shape = dims4(x)?;
        let [n, c, h, w] = shape;
        // Argmaxes are u32 within a plane.
        u32::try_from(h * w).ok()?;
        let out = |len: usize, i: usize| {
            len.checked_sub(kernel[i])
                .filter(|_| kernel[i] > 0 && stride[i] > 0)
                .map(|d| d / stride[i] + 1)
        };
        Some(Self {
            planes: n * c,
            input: [h, w],
            kernel,
            stride,
            out: [out(h, 0)?, out(w, 1)?],
            shape,
        })
    }

    fn in_len(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn out_len(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// The pooled tensor, and for each output the index of its maximum
    /// within its plane (the first one; a NaN wins, as in burn).
    fn forward(&self, x: &FlexTensor) -> (FlexTensor, Vec<u32>) {
        let x = values(x);
        let len = self.out_len();
        let mut y = vec![0.0f32; self.planes * len];
        let mut argmax = vec![0u32; self.planes * len];
        y.par_chunks_mut(len)
            .zip(argmax.par_chunks_mut(len))
            .zip(x.par_chunks(self.in_len()))
            .for_each(|((y, argmax), x)| self.pool_plane(x, y, argmax));
        let [n, c, _, _] = self.shape;
        (tensor(y, [n, c, self.out[0], self.out[1]]), argmax)
    }

    /// Pools one plane, a row of outputs at a time: each row of the window
    /// in turn challenges the whole row's maxima, left to right within the
    /// window, so each output sees its window in row-major order and keeps
    /// the same first maximum as a window at a time would. The comparisons
    /// pick without branching (branches on activations mispredict one time
    /// in two).
    fn pool_plane(&self, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
        // The report's 2x2 windows get a copy whose inner loop the compiler
        // can vectorize.
        match (self.kernel[1], self.stride[1]) {
            (2, 2) => self.pool_plane_as::<2, 2>(x, y, argmax),
            _ => self.pool_plane_as::<0, 0>(x, y, argmax),
        }
    }

    /// [`Self::pool_plane`] with the window's width `KW` and stride `SW`
    /// known when compiled, or both 0 for those of `self`.
    fn pool_plane_as<const KW: usize, const SW: usize>(
        &self,
        x: &[f32],
        y: &mut [f32],
        argmax: &mut [u32],
    ) {
        let (kw, sw) = match KW {
            0 => (self.kernel[1], self.stride[1]),
            _ => (KW, SW),
        };
        let (kh, sh, width, ow) = (self.kernel[0], self.stride[0], self.input[1], self.out[1]);
        let rows = y.chunks_exact_mut(ow).zip(argmax.chunks_exact_mut(ow));
        for (oy, (y, argmax)) in rows.enumerate() {
            for i in 0..kh {
                let first = (oy * sh + i) * width;
                let row = &x[first..][..(ow - 1) * sw + kw];
                for ox in 0..ow {
                    for j in 0..kw {
                        let (v, best) = (row[ox * sw + j], y[ox]);
                        let challenger_wins = ((v > best) | v.is_nan()) & !best.is_nan();
                        let take = (i == 0 && j == 0) | challenger_wins;
                        y[ox] = select_unpredictable(take, v, best);
                        let at = (first + ox * sw + j) as u32;
                        argmax[ox] = select_unpredictable(take, at, argmax[ox]);
                    }
                }
            }
        }
    }

    /// The gradient of the input: each output's gradient added at its
    /// maximum.
    fn backward(&self, argmax: &[u32], dy: &FlexTensor) -> FlexTensor {
        let dy = values(dy);
        let len = self.out_len();
        let mut dx = vec![0.0f32; self.planes * self.in_len()];
        dx.par_chunks_mut(self.in_len())
            .zip(argmax.par_chunks(len))
            .zip(dy.par_chunks(len))
            .for_each(|((dx, argmax), dy)| {
                for (&at, &g) in argmax.iter().zip(dy) {
                    dx[at as usize] += g;
                }
            });
        tensor(dx, self.shape)
    }
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (Windows, Arc<Vec<u32>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (windows, argmax) = ops.state;
        if let [Some(node)] = ops.parents {
            grads.register::<Flex>(node.id, windows.backward(&argmax, &dy));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use burn::tensor::module::max_pool2d as burns;
    use burn::tensor::ops::MaxPoolOptions;

    use crate::kernels::testing::{assert_close, random};

    /// Forward and gradient against burn's pooling on flex: the report's
    /// 2x2 windows, overlapping windows (a gradient adds up where they
    /// share a maximum) and sizes that leave a partial window.
    #[test]
    fn matches_burns_max_pooling_forward_and_backward() {
        let device = Device::flex().autodiff();
        let cases = [
            ([3, 4, 28, 28], [2, 2], [2, 2]),
            ([2, 3, 7, 9], [3, 2], [1, 2]),
            ([2, 2, 11, 10], [3, 3], [2, 3]),
        ];
        for (seed, (shape, kernel, stride)) in cases.into_iter().enumerate() {
            let x = random(shape, seed as u64, &device).require_grad();
            let ours = max_pool2d(&x, kernel, stride).expect("flex takes our path");
            let theirs = burns(x.clone(), MaxPoolOptions::new(kernel).with_stride(stride));
            let probe = random(ours.dims(), seed as u64 + 10, &device);
            let ours_grads = (ours.clone() * probe.clone()).sum().backward();
            let theirs_grads = (theirs.clone() * probe).sum().backward();
            assert_close(ours, theirs);
            assert_close(x.grad(&ours_grads).unwrap(), x.grad(&theirs_grads).unwrap());
        }
    }

    #[test]
    fn matches_burns_max_pooling_without_autodiff() {
        let x = random([2, 3, 8, 8], 5, &Device::flex());
        let ours = max_pool2d(&x, [2, 2], [2, 2]).expect("flex takes our path");
        assert_close(
            ours,
            burns(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2])),
        );
    }

    /// Where a window's maximum is tied (ReLU's zeros, every step), its
    /// gradient goes to the first in row-major order, on the 2x2 path and
    /// the general one.
    #[test]
    fn a_tied_maximum_takes_the_gradient_at_its_first_place() {
        let device = Device::flex().autodiff();
        #[rustfmt::skip]
        let plane = [
            0.0, 1.0, 1.0, 0.0,
            1.0, 1.0, 1.0, 1.0,
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 2.0, 2.0,
        ];
        let x = Tensor::<1>::from_floats(plane, &device)
            .reshape([1, 1, 4, 4])
            .require_grad();
        let gradient_at = |kernel, stride| {
            let y = max_pool2d(&x, kernel, stride).expect("flex takes our path");
            let grad = x.grad(&y.sum().backward()).unwrap().into_data();
            grad.iter::<f32>().collect::<Vec<_>>()
        };
        #[rustfmt::skip]
        assert_eq!(gradient_at([2, 2], [2, 2]), [
            0.0, 1.0, 1.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            1.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 0.0,
        ]);
        // 3x3 windows one apart: the top two share their first maximum.
        #[rustfmt::skip]
        assert_eq!(gradient_at([3, 3], [1, 1]), [
            0.0, 2.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 2.0, 0.0,
        ]);
    }

    /// A NaN in a window is its maximum, as it is in burn.
    #[test]
    fn a_nan_is_the_maximum_of_its_window() {
        let device = Device::flex();
        let x = Tensor::<1>::from_floats([1.0, f32::NAN, 3.0, 2.0], &device).reshape([1, 1, 2, 2]);
        let y = max_pool2d(&x, [2, 2], [2, 2]).expect("flex takes our path");
        assert!(y.into_data().iter::<f32>().all(f32::is_nan));
    }
}
