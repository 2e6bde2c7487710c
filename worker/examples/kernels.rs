//! Times the worker's convolution and pooling kernels against burn's own on
//! flex, for the layers of the report's CNNs at batch 64: forward alone
//! (evaluation) and forward plus backward (training); medians of 15.
//!
//! ```sh
//! cargo run --release -p sweep-worker --example kernels
//! ```

use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{Device, Distribution, Tensor};
use sweep_worker::kernels;

#[global_allocator]
static ALLOCATOR: sweep_worker::TrainingAllocator = sweep_worker::TrainingAllocator;

fn median_ms(mut run: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[7]
}

/// Runs `layer` on `x`; with autodiff, also its backward to `x`.
fn pass(x: &Tensor<4>, layer: impl Fn(Tensor<4>) -> Tensor<4>) {
    let y = layer(x.clone());
    if x.is_require_grad() {
        let grads = y.sum().backward();
        x.grad(&grads).expect("x takes part").into_data();
    } else {
        y.into_data();
    }
}

fn main() {
    println!("| layer | pass | ours | burn's |");
    println!("|---|---|---|---|");
    for (channels, outputs, side) in [(1, 16, 28), (16, 36, 14), (36, 144, 7)] {
        for training in [false, true] {
            let device = if training {
                Device::flex().autodiff()
            } else {
                Device::flex()
            };
            let conv = Conv2dConfig::new([channels, outputs], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(&device);
            let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
            let x = Tensor::random([64, channels, side, side], Distribution::Default, &device);
            let x = if training { x.require_grad() } else { x };
            let conv_x = x.clone();
            let pass_name = if training {
                "forward + backward"
            } else {
                "forward"
            };
            let ours = median_ms(|| pass(&x, |x| kernels::conv2d(&conv, x)));
            let burns = median_ms(|| pass(&x, |x| conv.forward(x)));
            println!(
                "| conv {channels}→{outputs}, {side}x{side} | {pass_name} | {ours:.2} ms | {burns:.2} ms |"
            );
            let x = conv.forward(conv_x).detach();
            let x = if training { x.require_grad() } else { x };
            let ours = median_ms(|| pass(&x, |x| kernels::max_pool2d(&pool, x)));
            let burns = median_ms(|| pass(&x, |x| pool.forward(x)));
            println!(
                "| max pool 2x2, {outputs}x{side}x{side} | {pass_name} | {ours:.2} ms | {burns:.2} ms |"
            );
        }
    }
}
