//! im2col: a batch's input patches as the columns of a matrix, chunk by
//! chunk, and its gradient added back onto the images (col2im), for the
//! convolution's GEMMs (`super::conv`).

use std::ops::Range;

use burn::backend::flex::FlexTensor;
use burn::tensor::ops::ConvOptions;

use super::flex::dims4;
use super::shelf::Shelf;

/// Floats of im2col matrix per chunk: a chunk's matrix and the GEMM's
/// packed panels stay within a core's L2.
const CHUNK_FLOATS: usize = 1 << 18;

/// The chunks' im2col matrices, by geometry and images per chunk.
static COLUMNS: Shelf<(Geometry, usize)> = Shelf::new();

/// The sizes of one convolution, all `f32` and `groups == 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub images: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub outputs: usize,
    pub kernel: [usize; 2],
    pub out: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub pad: [usize; 2],
    /// Images per chunk.
    pub chunk: usize,
}

impl Geometry {
    pub fn new(
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
    pub fn rows(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    pub fn out_len(&self) -> usize {
        self.out[0] * self.out[1]
    }

    pub fn image_len(&self) -> usize {
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
    pub fn im2col(&self, x: &[f32], images: Range<usize>) -> Vec<f32> {
        let (p, n) = (self.out_len(), images.len());
        let len = self.rows() * n * p;
        let mut col = COLUMNS.take(&(self.clone(), n), || vec![0.0; len]);
        for (q, image) in images.enumerate() {
            let x = &x[image * self.image_len()..][..self.image_len()];
            if self.shifted() {
                self.fill_shifted(x, &mut col, q, n);
            } else {
                self.fill_by_runs(x, &mut col, q, n);
            }
        }
        col
    }

    /// Writes image `q`'s block of a chunk's im2col matrix `col` (of `n`
    /// images), run by run.
    fn fill_by_runs(&self, x: &[f32], col: &mut [f32], q: usize, n: usize) {
        let (p, sw) = (self.out_len(), self.stride[1]);
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

    /// Whether each row of an image's im2col block is its channel's plane
    /// shifted: unit strides and dilations, and outputs as wide as the
    /// input (the report's "same" convolutions).
    fn shifted(&self) -> bool {
        self.stride == [1, 1] && self.dilation == [1, 1] && self.out[1] == self.width
    }

    /// [`Self::fill_by_runs`] for a [`Self::shifted`] geometry: one copy a
    /// row, from the first pixel it reads to the last, then zeros in the
    /// columns that read padding, where the copy wrapped around the plane's
    /// edge. A run is a few pixels, and a call to copy each cost more than
    /// the copying.
    fn fill_shifted(&self, x: &[f32], col: &mut [f32], q: usize, n: usize) {
        let [kh, kw] = self.kernel;
        let (p, ow) = (self.out_len(), self.out[1]);
        for c in 0..self.channels {
            for ki in 0..kh {
                let (ys, dy) = self.valid(0, ki);
                for kj in 0..kw {
                    let (xs, dx) = self.valid(1, kj);
                    if ys.is_empty() || xs.is_empty() {
                        continue;
                    }
                    let row = (c * kh + ki) * kw + kj;
                    let block = &mut col[row * n * p + q * p..][..p];
                    let (first, last) = (ys.start * ow + xs.start, (ys.end - 1) * ow + xs.end);
                    let iy = (ys.start as isize + dy) as usize;
                    let ix = (xs.start as isize + dx) as usize;
                    let start = (c * self.height + iy) * self.width + ix;
                    block[first..last].copy_from_slice(&x[start..][..last - first]);
                    // Column by column: a strided loop, not one call a row.
                    for ox in (0..xs.start).chain(xs.end..ow) {
                        for oy in ys.clone() {
                            block[oy * ow + ox] = 0.0;
                        }
                    }
                }
            }
        }
    }

    /// Gives an im2col matrix back for the next pass over the same sizes.
    pub fn keep(&self, col: Vec<f32>) {
        let n = col.len() / (self.rows() * self.out_len());
        COLUMNS.put((self.clone(), n), col);
    }

    /// Adds the im2col-shaped gradient `dcol` of a chunk back onto the
    /// gradient of its images (`dx`, the chunk's slice).
    pub fn col2im(&self, dcol: &[f32], dx: &mut [f32]) {
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
    pub fn chunks(&self) -> Vec<Range<usize>> {
        (0..self.images)
            .step_by(self.chunk)
            .map(|start| start..(start + self.chunk).min(self.images))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Device, Tensor};

    use super::*;
    use crate::kernels::flex::values;
    use crate::kernels::testing::random;

    /// The one-copy-a-row im2col writes the matrix that run by run does,
    /// with padding on both sides, one side or none, in a matrix written
    /// before (as a kept one is).
    #[test]
    fn shifted_im2col_writes_the_run_by_run_matrix() {
        let device = Device::flex();
        let flex = |t: Tensor<4>| t.try_into_primitive::<Flex>().ok().unwrap();
        let cases = [
            ([2, 3, 9, 7], [4, 3, 5, 5], [(2, 2), (2, 2)]),
            ([2, 2, 6, 8], [3, 2, 3, 3], [(1, 1), (0, 2)]),
            ([1, 2, 5, 6], [3, 2, 3, 3], [(0, 0), (2, 0)]),
            ([1, 1, 4, 4], [2, 1, 1, 1], [(0, 0), (0, 0)]),
        ];
        for (seed, (xs, ws, padding)) in cases.into_iter().enumerate() {
            let seed = seed as u64;
            let x = flex(random(xs, seed, &device));
            let w = flex(random(ws, seed + 10, &device));
            let b = random([ws[0]], seed + 20, &device);
            let b = b.try_into_primitive::<Flex>().ok().unwrap();
            let options = ConvOptions::new_with_padding([1, 1], padding, [1, 1], 1);
            let g = Geometry::new(&x, &w, &b, &options).unwrap();
            assert!(g.shifted(), "{padding:?}");
            let (x, n) = (values(&x), xs[0]);
            let len = g.rows() * n * g.out_len();
            let (mut shifted, mut by_runs) = (vec![0.0; len], vec![0.0; len]);
            for _ in 0..2 {
                for (q, x) in x.chunks(g.image_len()).enumerate() {
                    g.fill_shifted(x, &mut shifted, q, n);
                    g.fill_by_runs(x, &mut by_runs, q, n);
                }
                assert_eq!(shifted, by_runs, "{padding:?}");
            }
        }
    }
}
