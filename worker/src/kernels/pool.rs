//! Max pooling on flex that keeps, for each output, where its maximum came
//! from, so that the backward is one pass that adds each output's gradient
//! to that input instead of searching each window again (flex's pooling
//! with indices: 3 ms forward and 7 ms backward on the first layer of a
//! CNN1 batch, 64x16x28x28; docs/BENCHMARKS.md has the ratio).
//!
//! Windows are `kernel` wide, `stride` apart, unpadded and undilated;
//! partial windows at the edges are dropped (burn's floor mode).

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
        let (len, [oh, ow]) = (self.out_len(), self.out);
        let mut y = vec![0.0f32; self.planes * len];
        let mut argmax = vec![0u32; self.planes * len];
        y.par_chunks_mut(len)
            .zip(argmax.par_chunks_mut(len))
            .zip(x.par_chunks(self.in_len()))
            .for_each(|((y, argmax), x)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (best, at) = self.max(x, oy, ox);
                        y[oy * ow + ox] = best;
                        argmax[oy * ow + ox] = at as u32;
                    }
                }
            });
        let [n, c, _, _] = self.shape;
        (tensor(y, [n, c, oh, ow]), argmax)
    }

    /// The maximum of the window of output `(oy, ox)` in plane `x`, and
    /// its index.
    fn max(&self, x: &[f32], oy: usize, ox: usize) -> (f32, usize) {
        let width = self.input[1];
        let first = oy * self.stride[0] * width + ox * self.stride[1];
        let mut best = (x[first], first);
        for i in 0..self.kernel[0] {
            let row = first + i * width;
            for (at, &v) in x[row..row + self.kernel[1]].iter().enumerate() {
                if v > best.0 || (v.is_nan() && !best.0.is_nan()) {
                    best = (v, row + at);
                }
            }
        }
        best
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

    /// A NaN in a window is its maximum, as it is in burn.
    #[test]
    fn a_nan_is_the_maximum_of_its_window() {
        let device = Device::flex();
        let x = Tensor::<1>::from_floats([1.0, f32::NAN, 3.0, 2.0], &device).reshape([1, 1, 2, 2]);
        let y = max_pool2d(&x, [2, 2], [2, 2]).expect("flex takes our path");
        assert!(y.into_data().iter::<f32>().all(f32::is_nan));
    }
}
