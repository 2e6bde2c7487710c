//! Models built from a task's [`ModelShape`], with their weights as one flat
//! vector in the order [`ModelShape::blocks`] gives (for each conv stage,
//! then each dense layer, the weight then the bias, row-major in burn's
//! layout). The flat form is what the worker stores as a weights artifact
//! (see `sweep_spec::weights`), what interpolation blends and what the
//! Hessian differentiates.

use burn::module::{Module, Param, ParamId};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use sweep_spec::ModelShape;
use sweep_spec::shape::Block;

use crate::kernels;
use crate::rng::Rng;

/// An MLP (no conv stages) or a CNN: ReLU after every layer but the last.
#[derive(Module, Debug)]
pub struct Net {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
    dense: Vec<Linear>,
    in_channels: usize,
    side: usize,
}

/// Glorot-uniform weights and zero biases, drawn from `seed` alone.
pub fn initial_weights(shape: &ModelShape, seed: u64) -> Vec<f32> {
    let mut rng = Rng::derived(seed, 0x1417);
    let mut flat = Vec::with_capacity(shape.param_count() as usize);
    for block in shape.blocks() {
        match block.fans {
            Some((fan_in, fan_out)) => {
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
                flat.extend(
                    (0..block.len()).map(|_| ((rng.next_f64() * 2.0 - 1.0) * limit) as f32),
                );
            }
            None => flat.extend(std::iter::repeat_n(0.0, block.len())),
        }
    }
    flat
}

fn tensor<const D: usize>(values: &[f32], shape: &[usize], device: &Device) -> Tensor<D> {
    let dims: [usize; D] = shape.try_into().expect("block rank matches the layer");
    Tensor::from_data(TensorData::new(values.to_vec(), dims), device)
}

/// A trainable parameter whose id is its block's position (`ids` counts
/// them), not a random one: the optimizer keys its state by id, so the state
/// saved in a checkpoint finds its parameters again in a model rebuilt from
/// the checkpoint's weights.
fn param<const D: usize>(ids: &mut u64, value: Tensor<D>) -> Param<Tensor<D>> {
    let mut param = Param::from_tensor(value);
    param.id = ParamId::from(*ids);
    *ids += 1;
    param
}

/// Appends a parameter's values, or its gradient in `grads` (zeros when it
/// has none), to `out`.
fn push<const D: usize>(param: &Param<Tensor<D>>, grads: Option<&Gradients>, out: &mut Vec<f32>) {
    let value = param.val();
    let data = match grads {
        None => value.into_data(),
        Some(grads) => match value.grad(grads) {
            Some(grad) => grad.into_data(),
            None => {
                out.extend(std::iter::repeat_n(0.0, value.shape().num_elements()));
                return;
            }
        },
    };
    out.extend(data.iter::<f32>());
}

impl Net {
    /// Builds the model with the given flat weights on `device`.
    pub fn new(shape: &ModelShape, flat: &[f32], device: &Device) -> Self {
        let blocks = shape.blocks();
        assert_eq!(
            flat.len(),
            blocks.iter().map(Block::len).sum::<usize>(),
            "weights fit the shape"
        );
        let mut offset = 0;
        let mut take = |block: &Block| {
            let values = &flat[offset..offset + block.len()];
            offset += block.len();
            values
        };
        let (in_channels, side, n_convs) = match shape {
            ModelShape::Mlp { .. } => (1, 0, 0),
            ModelShape::Cnn {
                in_channels,
                image_size,
                convs,
                ..
            } => (*in_channels as usize, *image_size as usize, convs.len()),
        };
        let mut ids = 0;
        let mut pairs = blocks.chunks(2);
        let convs = (0..n_convs)
            .map(|_| {
                let pair = pairs.next().expect("a weight and a bias per conv");
                let k = pair[0].shape[2];
                Conv2d {
                    weight: param(&mut ids, tensor(take(&pair[0]), &pair[0].shape, device)),
                    bias: Some(param(
                        &mut ids,
                        tensor(take(&pair[1]), &pair[1].shape, device),
                    )),
                    stride: [1, 1],
                    kernel_size: [k, k],
                    dilation: [1, 1],
                    groups: 1,
                    padding: PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2),
                }
            })
            .collect();
        let dense = pairs
            .map(|pair| Linear {
                weight: param(&mut ids, tensor(take(&pair[0]), &pair[0].shape, device)),
                bias: Some(param(
                    &mut ids,
                    tensor(take(&pair[1]), &pair[1].shape, device),
                )),
            })
            .collect();
        Self {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dense,
            in_channels,
            side,
        }
    }

    /// The weights as one flat vector, in the order [`Net::new`] reads.
    pub fn flat(&self) -> Vec<f32> {
        self.walk(None)
    }

    /// The gradient of every weight and bias, in the same flat order.
    pub fn flat_grad(&self, grads: &Gradients) -> Vec<f32> {
        self.walk(Some(grads))
    }

    /// The Euclidean norm of the gradient of all weights and biases.
    pub fn grad_norm(&self, grads: &Gradients) -> f64 {
        let squares: f64 = self
            .flat_grad(grads)
            .iter()
            .map(|g| f64::from(*g).powi(2))
            .sum();
        squares.sqrt()
    }

    fn walk(&self, grads: Option<&Gradients>) -> Vec<f32> {
        let mut out = Vec::new();
        for conv in &self.convs {
            push(&conv.weight, grads, &mut out);
            conv.bias.iter().for_each(|b| push(b, grads, &mut out));
        }
        for layer in &self.dense {
            push(&layer.weight, grads, &mut out);
            layer.bias.iter().for_each(|b| push(b, grads, &mut out));
        }
        out
    }

    /// `[n, features]` in (flattened images for a CNN), `[n, outputs]` out.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let mut x = input;
        if !self.convs.is_empty() {
            let [n, _] = x.dims();
            let mut image: Tensor<4> = x.reshape([n, self.in_channels, self.side, self.side]);
            for conv in &self.convs {
                let activation = relu(kernels::conv2d(conv, image));
                image = kernels::max_pool2d(&self.pool, activation);
            }
            x = image.flatten(1, 3);
        }
        let last = self.dense.len() - 1;
        for (i, layer) in self.dense.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::test_device;

    fn mlp(input: u64, hidden: &[u64], output: u64) -> ModelShape {
        ModelShape::mlp(input, hidden, output)
    }

    fn cnn(convs: &[u64]) -> ModelShape {
        ModelShape::mnist_cnn(convs, &[128])
    }

    /// burn's own count of the built model, for every model of the report.
    #[test]
    fn built_models_have_the_report_parameter_counts() {
        let device = test_device();
        let cases = [
            (mlp(1, &[5, 10, 10, 10, 10, 10, 5], 1), 571),
            (mlp(1, &[190], 1), 571),
            (mlp(784, &[100, 200, 200, 200, 200, 200, 100], 10), 280_610),
            (mlp(784, &[353], 10), 280_645),
            (mlp(1, &[10, 10, 10], 1), 251),
            (mlp(784, &[100, 200, 200, 200, 20, 200, 100], 10), 208_430),
            (mlp(784, &[10; 5], 10), 8_400),
            (mlp(784, &[100; 5], 10), 119_910),
            (cnn(&[16, 36]), 242_062),
            (cnn(&[16, 36, 144]), 311_902),
        ];
        for (shape, count) in cases {
            let flat = initial_weights(&shape, 0);
            assert_eq!(flat.len(), count, "{shape:?}");
            let net = Net::new(&shape, &flat, &device);
            assert_eq!(net.num_params(), count, "{shape:?}");
            assert_eq!(shape.param_count() as usize, count);
        }
    }

    #[test]
    fn weights_depend_only_on_the_seed_and_build_the_net() {
        let device = test_device();
        let shape = cnn(&[4, 8]);
        let flat = initial_weights(&shape, 42);
        assert_eq!(initial_weights(&shape, 42), flat);
        assert_ne!(initial_weights(&shape, 43), flat);
        let net = Net::new(&shape, &flat, &device);
        assert_eq!(net.flat(), flat);
        let out = net.forward(Tensor::zeros([3, 784], &device));
        assert_eq!(out.dims(), [3, 10]);
        // Glorot bounds for the first conv: sqrt(6 / (1*25 + 4*25)).
        let limit = (6.0f32 / 125.0).sqrt();
        assert!(flat[..100].iter().all(|w| w.abs() <= limit));
        assert!(flat[100..104].iter().all(|b| *b == 0.0));
    }
}
