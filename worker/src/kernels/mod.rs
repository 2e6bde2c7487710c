//! The CNN layers' own kernels on flex: convolution and max pooling,
//! forward and backward, written over flex's buffers.
//!
//! flex's convolution gradients and its max pooling were most of a CNN
//! epoch (docs/BENCHMARKS.md); these replace them where they apply and
//! leave every other case, and every other backend (LibTorch), to burn.
//!
//! - [`conv`]: convolution as im2col and GEMM, chunk by chunk;
//! - [`im2col`]: a chunk's input patches as a matrix, and back;
//! - [`pool`]: max pooling that keeps the argmax for its backward;
//! - [`shelf`]: scratch buffers kept from one pass to the next;
//! - [`flex`]: reading and building flex tensors;
//! - [`gemm`]: flex's GEMM into buffers the kernels keep.
//!
//! [`choose`] sends every layer to burn's own ops instead (the worker's
//! `--kernels burn`), to compare the two on the same tasks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

#[cfg(feature = "flex")]
mod conv;
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
mod gemm;
#[cfg(feature = "flex")]
mod im2col;
#[cfg(feature = "flex")]
mod pool;
#[cfg(feature = "flex")]
mod shelf;
#[cfg(all(test, feature = "flex"))]
mod testing;

/// Which ops a CNN's convolutions and pooling run on flex.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernels {
    /// The worker's own (this module's), where they apply.
    #[default]
    Own,
    /// burn's, always.
    Burn,
}

static BURNS: AtomicBool = AtomicBool::new(false);

/// Sets the kernels of every layer run from now on, in the whole process.
pub fn choose(kernels: Kernels) {
    BURNS.store(kernels == Kernels::Burn, Ordering::Relaxed);
}

/// Layers this module's kernels ran, in the whole process.
static RAN: AtomicU64 = AtomicU64::new(0);

/// How many layers (forward passes) this module's kernels have run in this
/// process: how a caller sees which kernels a run used, since on some CPUs
/// both give bit-identical numbers.
pub fn own_layers() -> u64 {
    RAN.load(Ordering::Relaxed)
}

/// Whether this module's kernels may take a layer.
#[cfg(feature = "flex")]
fn own() -> bool {
    !BURNS.load(Ordering::Relaxed)
}

/// Counts a layer this module's kernels ran.
#[cfg(feature = "flex")]
fn ran<T>(y: T) -> T {
    RAN.fetch_add(1, Ordering::Relaxed);
    y
}

/// `conv.forward(image)`.
pub fn conv2d(conv: &Conv2d, image: Tensor<4>) -> Tensor<4> {
    // Same-size padding depends on the input's size, which burn computes
    // privately; the models here pad explicitly.
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        return conv.forward(image);
    };
    let options = ConvOptions::new_with_padding(
        conv.stride,
        [(top, bottom), (left, right)],
        conv.dilation,
        conv.groups,
    );
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(Param::val);
    #[cfg(feature = "flex")]
    if own()
        && let Some(y) = bias
            .as_ref()
            .and_then(|bias| conv::conv2d(&image, &weight, bias, &options))
    {
        return ran(y);
    }
    burn::tensor::module::conv2d(image, weight, bias, options)
}

/// `pool.forward(image)`.
pub fn max_pool2d(pool: &MaxPool2d, image: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if own()
        && matches!(pool.padding, PaddingConfig2d::Valid)
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && let Some(y) = pool::max_pool2d(&image, pool.kernel_size, pool.stride)
    {
        return ran(y);
    }
    pool.forward(image)
}
