//! Convolution on flex as im2col and GEMM, chunk by chunk, forward and
//! backward.
//!
//! flex convolves forward with a tiled im2col, but its gradients are burn's
//! generic ones: a transposed convolution for the input and, for the
//! weights, a convolution whose kernel is the whole output gradient; on the
//! report's CNNs that backward took three times the forward. Here a batch is
//! cut into chunks of a few images, small enough that a chunk's im2col
//! matrix stays in cache; each chunk builds it once per pass and runs one
//! GEMM per product (flex's own, through burn's backend API):
//!
//! - forward: `y = w · col`
//! - weight gradient: `dw += dy · colᵀ`
//! - input gradient: `dcol = wᵀ · dy`, scattered back onto the image
//!   (col2im)
//!
//! with `col` the `[c·kh·kw, images·oh·ow]` matrix of input patches.

use std::ops::Range;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

use super::flex::{dims4, tensor, values};
use super::shelf::Shelf;

/// Floats of im2col matrix per chunk: a chunk's matrix and the GEMM's
/// packed panels stay within a core's L2.
const CHUNK_FLOATS: usize = 1 << 18;

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

/// The chunks' im2col matrices, by geometry and images per chunk.
static COLUMNS: Shelf<(Geometry, usize)> = Shelf::new();

/// The sizes of one convolution, all `f32` and `groups == 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Geometry {
    images: usize,
    channels: usize,
    height: usize,
    width: usize,
    outputs: usize,
    kernel: [usize; 2],
    out: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 2],
    /// Images per chunk.
    chunk: usize,
}

impl Geometry {
    fn new(
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: &FlexTensor,
        options: &ConvOptions<2>,
    ) -> Option<Self> {
        let [images, channels, height, width] = dims4(x)?;
        let [outputs, in_channels, kh, kw] = dims4(weight)?;
        let bias_len = bias.layout().shape().num_elements();
        if in_channels != channels || bias.dtype() != x.dtype() || bias_len != outputs {
            return None;
        }
        let size = |i: usize, len: usize, k: usize| {
            let (begin, end) = options.padding[i];
            let span = options.dilation[i] * k.checked_sub(1)? + 1;
            (len + begin + end)
                .checked_sub(span)
                .map(|d| d / options.stride[i] + 1)
        };
        let out = [size(0, height, kh)?, size(1, width, kw)?];
        let patch = channels * kh * kw * out[0] * out[1];
        // Empty tensors are burn's to handle (chunks must not be empty).
        if patch == 0 || images == 0 || outputs == 0 {
            return None;
        }
        Some(Self {
            images,
            channels,
            height,
            width,
            outputs,
            kernel: [kh, kw],
            out,
            stride: options.stride,
            dilation: options.dilation,
            pad: options.padding_begin(),
            chunk: (CHUNK_FLOATS / patch).clamp(1, images),
        })
    }

    /// Rows of the im2col matrix: one per weight of an output channel.
    fn rows(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    fn out_len(&self) -> usize {
        self.out[0] * self.out[1]
    }

    fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// For kernel offset `k` along axis `axis`: the outputs whose input
    /// index is inside the image, and that index for output 0 (possibly
    /// negative).
    fn valid(&self, axis: usize, k: usize) -> (Range<usize>, isize) {
        let len = [self.height, self.width][axis] as isize;
        let stride = self.stride[axis] as isize;
        let first = (k * self.dilation[axis]) as isize - self.pad[axis] as isize;
        let lo = if first >= 0 {
            0
        } else {
            (-first + stride - 1) / stride
        };
        let hi = if first >= len {
            0
        } else {
            (len - 1 - first) / stride + 1
        };
        let hi = (hi as usize).min(self.out[axis]);
        ((lo as usize).min(hi)..hi, first)
    }

    /// Calls `visit(row, outputs, start)` for every run of the im2col
    /// matrix of one image that maps to input pixels: row `row` of the
    /// matrix, columns `outputs` (within the image's block), the image's
    /// values from index `start` on, every `stride[1]`th.
    fn runs(&self, mut visit: impl FnMut(usize, Range<usize>, usize)) {
        let [kh, kw] = self.kernel;
        let (ow, sw) = (self.out[1], self.stride[1]);
        for c in 0..self.channels {
            for ki in 0..kh {
                let (ys, y0) = self.valid(0, ki);
                for kj in 0..kw {
                    let row = (c * kh + ki) * kw + kj;
                    let (xs, x0) = self.valid(1, kj);
                    if xs.is_empty() {
                        continue;
                    }
                    for oy in ys.clone() {
                        let iy = (y0 + (oy * self.stride[0]) as isize) as usize;
                        let ix = (x0 + (xs.start * sw) as isize) as usize;
                        let start = (c * self.height + iy) * self.width + ix;
                        visit(row, oy * ow + xs.start..oy * ow + xs.end, start);
                    }
                }
            }
        }
    }

    /// The im2col matrix of `images` (`[rows, images.len() · oh·ow]`), in
    /// one that an earlier pass gave back with [`Self::keep`] where there is
    /// one: the cells padding leaves at zero are the same cells.
    fn im2col(&self, x: &[f32], images: Range<usize>) -> FlexTensor {
        let (p, n) = (self.out_len(), images.len());
        let mut matrix = COLUMNS
            .take(&(self.clone(), n))
            .unwrap_or_else(|| tensor(vec![0.0; self.rows() * n * p], [self.rows(), n * p]));
        let col = matrix.storage_mut::<f32>();
        let sw = self.stride[1];
        for (q, image) in images.enumerate() {
            let x = &x[image * self.image_len()..][..self.image_len()];
            self.runs(|row, outs, start| {
                let dst = &mut col[row * n * p + q * p..][outs];
                if sw == 1 {
                    dst.copy_from_slice(&x[start..start + dst.len()]);
                } else {
                    dst.iter_mut()
                        .zip(x[start..].iter().step_by(sw))
                        .for_each(|(d, s)| *d = *s);
                }
            });
        }
        matrix
    }

    /// Gives an im2col matrix back for the next pass over the same sizes.
    fn keep(&self, col: FlexTensor) {
        let n = col.layout().shape()[1] / self.out_len();
        COLUMNS.put((self.clone(), n), col);
    }

    /// Adds the im2col-shaped gradient `dcol` of a chunk back onto the
    /// gradient of its images (`dx`, the chunk's slice).
    fn col2im(&self, dcol: &[f32], dx: &mut [f32]) {
        let (p, n) = (self.out_len(), dx.len() / self.image_len());
        let sw = self.stride[1];
        for (q, dx) in dx.chunks_mut(self.image_len()).enumerate() {
            self.runs(|row, outs, start| {
                let src = &dcol[row * n * p + q * p..][outs];
                // step_by's set-up divides, once per run of a few pixels.
                if sw == 1 {
                    dx[start..start + src.len()]
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, s)| *d += *s);
                } else {
                    dx[start..]
                        .iter_mut()
                        .step_by(sw)
                        .zip(src)
                        .for_each(|(d, s)| *d += *s);
                }
            });
        }
    }

    /// The chunks of the batch, as image ranges.
    fn chunks(&self) -> Vec<Range<usize>> {
        (0..self.images)
            .step_by(self.chunk)
            .map(|start| start..(start + self.chunk).min(self.images))
            .collect()
    }
}

fn matrix(values: Vec<f32>, rows: usize, cols: usize) -> FlexTensor {
    tensor(values, [rows, cols])
}

/// The weights as the `[outputs, rows]` matrix the GEMMs take.
fn weight_matrix(g: &Geometry, weight: &FlexTensor) -> FlexTensor {
    matrix(values(weight).into_owned(), g.outputs, g.rows())
}

fn forward(g: &Geometry, x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let (x, bias) = (values(x), values(bias));
    let w = weight_matrix(g, weight);
    let (o, p) = (g.outputs, g.out_len());
    let mut y = vec![0.0f32; g.images * o * p];
    y.par_chunks_mut(g.chunk * o * p)
        .zip(g.chunks())
        .for_each(|(y, images)| {
            let n = images.len();
            let col = g.im2col(&x, images);
            let product = Flex::float_matmul(w.clone(), col.clone());
            g.keep(col);
            let product = product.storage::<f32>();
            for (q, y) in y.chunks_mut(o * p).enumerate() {
                for (channel, y) in y.chunks_mut(p).enumerate() {
                    let src = &product[channel * n * p + q * p..][..p];
                    let b = bias[channel];
                    y.iter_mut().zip(src).for_each(|(d, s)| *d = s + b);
                }
            }
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
    let (x, dy) = (values(x), values(dy));
    let wt = weight_matrix(g, weight).transpose(0, 1);
    let (o, p, k) = (g.outputs, g.out_len(), g.rows());
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
            let mut dyc = vec![0.0f32; o * n * p];
            for (q, image) in images.clone().enumerate() {
                for channel in 0..o {
                    dyc[channel * n * p + q * p..][..p]
                        .copy_from_slice(&dy[(image * o + channel) * p..][..p]);
                }
            }
            let db: Vec<f32> = dyc.chunks(n * p).map(|row| row.iter().sum()).collect();
            let dyc = matrix(dyc, o, n * p);
            let col = g.im2col(&x, images);
            let dw = Flex::float_matmul(dyc.clone(), col.transpose(0, 1));
            g.keep(col);
            if let Some(dx) = dx {
                let dcol = Flex::float_matmul(wt.clone(), dyc);
                g.col2im(dcol.storage::<f32>(), dx);
            }
            (dw.storage::<f32>().to_vec(), db)
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
