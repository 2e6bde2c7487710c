//! Convolution on flex as im2col and GEMM, chunk by chunk, forward and
//! backward.
//!
//! flex convolves forward with a tiled im2col, but its gradients are burn's
//! generic ones: a transposed convolution for the input and, for the
//! weights, a convolution whose kernel is the whole output gradient; on the
//! report's CNNs that backward took three times the forward. Here a batch is
//! cut into chunks of a few images, small enough that a chunk's im2col
//! matrix stays in cache ([`super::im2col`]); each chunk builds it once per
//! pass and runs one GEMM per product (flex's own, into buffers kept between
//! passes: [`super::gemm`], [`super::shelf`]):
//!
//! - forward: `y = w · col`
//! - weight gradient: `dw += dy · colᵀ`
//! - input gradient: `dcol = wᵀ · dy`, scattered back onto the image
//!   (col2im)
//!
//! with `col` the `[c·kh·kw, images·oh·ow]` matrix of input patches.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

use super::flex::{tensor, values};
use super::gemm::{View, matmul};
use super::im2col::Geometry;
use super::shelf::Shelf;

/// burn's `conv2d(x, weight, Some(bias), options)` when `x` is on flex (with
/// or without autodiff) and `options` has one group; `None` otherwise.
pub fn conv2d(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: &Tensor<1>,
    options: &ConvOptions<2>,
) -> Option<Tensor<4>> {
    if options.groups != 1 {
        return None;
    }
    on_autodiff_flex(x, weight, bias, options).or_else(|| on_flex(x, weight, bias, options))
}

fn on_autodiff_flex(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: &Tensor<1>,
    options: &ConvOptions<2>,
) -> Option<Tensor<4>> {
    type Ad = Autodiff<Flex>;
    let x = x.clone().try_into_primitive::<Ad>().ok()?;
    let weight = weight.clone().try_into_primitive::<Ad>().ok()?;
    let bias = bias.clone().try_into_primitive::<Ad>().ok()?;
    let geometry = Geometry::new(x.primitive(), weight.primitive(), bias.primitive(), options)?;
    let output = match ConvBackward
        .prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (x, weight) = (x.into_primitive(), weight.into_primitive());
            let y = forward(&geometry, &x, &weight, bias.primitive());
            prep.finish((x, weight, geometry), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(
            &geometry,
            x.primitive(),
            weight.primitive(),
            bias.primitive(),
        )),
    };
    Some(Tensor::from_primitive::<Ad>(output))
}

fn on_flex(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: &Tensor<1>,
    options: &ConvOptions<2>,
) -> Option<Tensor<4>> {
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let weight = weight.clone().try_into_primitive::<Flex>().ok()?;
    let bias = bias.clone().try_into_primitive::<Flex>().ok()?;
    let geometry = Geometry::new(&x, &weight, &bias, options)?;
    Some(Tensor::from_primitive::<Flex>(forward(
        &geometry, &x, &weight, &bias,
    )))
}

/// Buffers whose every value a GEMM overwrites, by length.
static SCRATCH: Shelf<usize> = Shelf::new();

/// `len` values to overwrite, kept from an earlier pass where there are;
/// give them back to [`SCRATCH`].
fn scratch(len: usize) -> Vec<f32> {
    SCRATCH.take(&len, || vec![0.0; len])
}

fn forward(g: &Geometry, x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let (x, weight, bias) = (values(x), values(weight), values(bias));
    let (o, p, k) = (g.outputs, g.out_len(), g.rows());
    let w = View::new(&weight, o, k);
    let mut y = vec![0.0f32; g.images * o * p];
    y.par_chunks_mut(g.chunk * o * p)
        .zip(g.chunks())
        .for_each(|(y, images)| {
            let n = images.len();
            let col = g.im2col(&x, images);
            let mut product = scratch(o * n * p);
            matmul(&mut product, w, View::new(&col, k, n * p));
            g.keep(col);
            for (q, y) in y.chunks_mut(o * p).enumerate() {
                for (channel, y) in y.chunks_mut(p).enumerate() {
                    let src = &product[channel * n * p + q * p..][..p];
                    let b = bias[channel];
                    y.iter_mut().zip(src).for_each(|(d, s)| *d = s + b);
                }
            }
            SCRATCH.put(product.len(), product);
        });
    tensor(y, [g.images, o, g.out[0], g.out[1]])
}

/// The gradients of the weights and the bias, and of the input when
/// `input_grad` (a first layer's input, the data, needs none).
fn backward(
    g: &Geometry,
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &FlexTensor,
    input_grad: bool,
) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
    let (x, weight, dy) = (values(x), values(weight), values(dy));
    let (o, p, k) = (g.outputs, g.out_len(), g.rows());
    let wt = View::new(&weight, o, k).t();
    let dx_len = if input_grad {
        g.images * g.image_len()
    } else {
        0
    };
    let mut dx = vec![0.0f32; dx_len];
    let dx_chunks: Vec<Option<&mut [f32]>> = match input_grad {
        true => dx.chunks_mut(g.chunk * g.image_len()).map(Some).collect(),
        false => g.chunks().iter().map(|_| None).collect(),
    };
    let sums = dx_chunks
        .into_par_iter()
        .zip(g.chunks())
        .map(|(dx, images)| {
            let n = images.len();
            // dy of the chunk as [outputs, n·p], the column order of col.
            let mut dyc = scratch(o * n * p);
            for (q, image) in images.clone().enumerate() {
                for channel in 0..o {
                    dyc[channel * n * p + q * p..][..p]
                        .copy_from_slice(&dy[(image * o + channel) * p..][..p]);
                }
            }
            let db: Vec<f32> = dyc.chunks(n * p).map(|row| row.iter().sum()).collect();
            let col = g.im2col(&x, images);
            let mut dw = vec![0.0; o * k];
            matmul(
                &mut dw,
                View::new(&dyc, o, n * p),
                View::new(&col, k, n * p).t(),
            );
            g.keep(col);
            if let Some(dx) = dx {
                let mut dcol = scratch(k * n * p);
                matmul(&mut dcol, wt, View::new(&dyc, o, n * p));
                g.col2im(&dcol, dx);
                SCRATCH.put(dcol.len(), dcol);
            }
            SCRATCH.put(dyc.len(), dyc);
            (dw, db)
        })
        .collect::<Vec<_>>();
    // Summed in chunk order, not as rayon's reduction tree falls, so that a
    // seeded run gives the same numbers every time.
    let (mut dw, mut db) = (vec![0.0; o * k], vec![0.0; o]);
    for (chunk_dw, chunk_db) in sums {
        dw.iter_mut().zip(&chunk_dw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&chunk_db).for_each(|(a, b)| *a += b);
    }
    let [kh, kw] = g.kernel;
    (
        input_grad.then(|| tensor(dx, [g.images, g.channels, g.height, g.width])),
        tensor(dw, [o, g.channels, kh, kw]),
        tensor(db, [o]),
    )
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (FlexTensor, FlexTensor, Geometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, weight, geometry) = ops.state;
        let [x_node, weight_node, bias_node] = ops.parents;
        let (dx, dw, db) = backward(&geometry, &x, &weight, &dy, x_node.is_some());
        for (node, gradient) in [(x_node, dx), (weight_node, Some(dw)), (bias_node, Some(db))] {
            if let (Some(node), Some(gradient)) = (node, gradient) {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    use crate::kernels::testing::{assert_close, random};

    fn options(stride: usize, pad: (usize, usize), dilation: usize) -> ConvOptions<2> {
        ConvOptions::new_with_padding([stride, stride], [pad, pad], [dilation, dilation], 1)
    }

    /// Our forward and gradients against burn's `conv2d` on flex, for the
    /// report's shapes and for strides, dilations and uneven padding.
    #[test]
    fn matches_burns_convolution_forward_and_backward() {
        let device = Device::flex().autodiff();
        let cases = [
            ([3, 1, 28, 28], [16, 1, 5, 5], options(1, (2, 2), 1)),
            ([5, 16, 14, 14], [36, 16, 5, 5], options(1, (2, 2), 1)),
            ([2, 3, 9, 11], [4, 3, 3, 2], options(2, (1, 0), 1)),
            ([2, 2, 10, 7], [3, 2, 3, 3], options(1, (0, 3), 2)),
            ([2, 2, 10, 7], [3, 2, 3, 3], options(3, (4, 4), 2)),
        ];
        for (seed, (xs, ws, options)) in cases.into_iter().enumerate() {
            let seed = seed as u64;
            let x = random(xs, seed, &device).require_grad();
            let w = random(ws, seed + 10, &device).require_grad();
            let b = random([ws[0]], seed + 20, &device).require_grad();
            let ours = conv2d(&x, &w, &b, &options).expect("flex takes our path");
            let burns =
                burn::tensor::module::conv2d(x.clone(), w.clone(), Some(b.clone()), options);
            // A loss whose gradient differs at every output.
            let probe = random(ours.dims(), seed + 30, &device);
            let grads = (ours.clone() * probe.clone()).sum().backward();
            let theirs = (burns.clone() * probe).sum().backward();
            assert_close(ours, burns);
            assert_close(x.grad(&grads).unwrap(), x.grad(&theirs).unwrap());
            assert_close(w.grad(&grads).unwrap(), w.grad(&theirs).unwrap());
            assert_close(b.grad(&grads).unwrap(), b.grad(&theirs).unwrap());
        }
    }

    /// A first layer, whose input is data, skips the input's gradient and
    /// gets the same weight and bias gradients.
    #[test]
    fn a_first_layer_has_no_input_gradient_and_the_same_weight_gradients() {
        let device = Device::flex().autodiff();
        let x = random([4, 1, 12, 12], 1, &device);
        let w = random([8, 1, 5, 5], 2, &device).require_grad();
        let b = random([8], 3, &device).require_grad();
        let options = options(1, (2, 2), 1);
        let ours = conv2d(&x, &w, &b, &options).expect("flex takes our path");
        let burns = burn::tensor::module::conv2d(x.clone(), w.clone(), Some(b.clone()), options);
        let probe = random(ours.dims(), 4, &device);
        let grads = (ours * probe.clone()).sum().backward();
        let theirs = (burns * probe).sum().backward();
        assert!(x.grad(&grads).is_none());
        assert_close(w.grad(&grads).unwrap(), w.grad(&theirs).unwrap());
        assert_close(b.grad(&grads).unwrap(), b.grad(&theirs).unwrap());
    }

    /// The gradients do not depend on how many threads share the work, so
    /// that two runs of a seeded task give the same numbers.
    #[test]
    fn gradients_are_the_same_bits_on_any_number_of_threads() {
        let device = Device::flex().autodiff();
        let w = random([36, 16, 5, 5], 2, &device).require_grad();
        let x = random([64, 16, 14, 14], 1, &device);
        let b = random([36], 3, &device);
        let gradient = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let y = conv2d(&x, &w, &b, &options(1, (2, 2), 1)).expect("flex takes our path");
                w.grad(&(y.clone() * y).sum().backward())
                    .unwrap()
                    .into_data()
            })
        };
        let one = gradient(1);
        for threads in [2, 3, 4] {
            assert_eq!(gradient(threads), one, "{threads} threads");
        }
    }

    /// Evaluation (flex without autodiff) convolves the same way.
    #[test]
    fn matches_burns_convolution_without_autodiff() {
        let device = Device::flex();
        let x = random([3, 2, 9, 9], 1, &device);
        let w = random([4, 2, 3, 3], 2, &device);
        let b = random([4], 3, &device);
        let options = options(1, (1, 1), 1);
        let ours = on_flex(&x, &w, &b, &options).expect("flex takes our path");
        assert_close(ours, burn::tensor::module::conv2d(x, w, Some(b), options));
    }
}
