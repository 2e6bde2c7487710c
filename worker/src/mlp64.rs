//! An MLP's mean-squared-error loss and its exact gradient in f64, by plain
//! backpropagation, over the same flat weights as [`crate::model`]. burn has
//! no second-order autodiff and trains in f32; the Hessian (2.3) and the
//! gradient-norm phase (2.2) need gradients accurate enough to difference,
//! and the eigenvalues near zero that decide the minimal ratio need f64.

use sweep_spec::ModelShape;

/// Layer widths from input to output, e.g. `[1, 10, 10, 10, 1]`.
#[derive(Clone, Debug)]
pub struct Mlp64 {
    widths: Vec<usize>,
}

impl Mlp64 {
    pub fn new(input: usize, hidden: &[u64], output: usize) -> Self {
        let mut widths = vec![input];
        widths.extend(hidden.iter().map(|w| *w as usize));
        widths.push(output);
        Self { widths }
    }

    /// The f64 twin of an MLP shape; `None` for a CNN.
    pub fn for_shape(shape: &ModelShape) -> Option<Self> {
        match shape {
            ModelShape::Mlp {
                input,
                hidden,
                output,
            } => Some(Self::new(*input as usize, hidden, *output as usize)),
            ModelShape::Cnn { .. } => None,
        }
    }

    pub fn param_count(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// The loss mean((f(x) - y)²) over the rows of `x` (`n × input`, row-major)
    /// and its gradient with respect to `theta`.
    pub fn loss_grad(&self, theta: &[f64], x: &[f64], y: &[f64]) -> (f64, Vec<f64>) {
        assert_eq!(theta.len(), self.param_count(), "weights fit the net");
        let n = y.len() / self.widths[self.widths.len() - 1];
        // Forward, keeping every layer's pre-activation and activation.
        let mut activations = vec![x.to_vec()];
        let mut pre = Vec::new();
        let mut offset = 0;
        let layers = self.widths.len() - 1;
        for l in 0..layers {
            let (fan_in, fan_out) = (self.widths[l], self.widths[l + 1]);
            let weights = &theta[offset..offset + fan_in * fan_out];
            let bias = &theta[offset + fan_in * fan_out..offset + fan_in * fan_out + fan_out];
            offset += fan_in * fan_out + fan_out;
            let input = &activations[l];
            let mut z = vec![0.0; n * fan_out];
            for row in 0..n {
                for j in 0..fan_out {
                    let mut sum = bias[j];
                    for i in 0..fan_in {
                        sum += input[row * fan_in + i] * weights[i * fan_out + j];
                    }
                    z[row * fan_out + j] = sum;
                }
            }
            let a = if l + 1 < layers {
                z.iter().map(|v| v.max(0.0)).collect()
            } else {
                z.clone()
            };
            pre.push(z);
            activations.push(a);
        }
        let output = &activations[layers];
        let residual: Vec<f64> = output.iter().zip(y).map(|(f, t)| f - t).collect();
        let loss = residual.iter().map(|r| r * r).sum::<f64>() / residual.len() as f64;
        // Backward.
        let mut grad = vec![0.0; theta.len()];
        let mut delta: Vec<f64> = residual
            .iter()
            .map(|r| 2.0 * r / residual.len() as f64)
            .collect();
        let mut end = theta.len();
        for l in (0..layers).rev() {
            let (fan_in, fan_out) = (self.widths[l], self.widths[l + 1]);
            let start = end - fan_in * fan_out - fan_out;
            let input = &activations[l];
            for row in 0..n {
                for j in 0..fan_out {
                    let d = delta[row * fan_out + j];
                    grad[start + fan_in * fan_out + j] += d;
                    for i in 0..fan_in {
                        grad[start + i * fan_out + j] += input[row * fan_in + i] * d;
                    }
                }
            }
            if l > 0 {
                let weights = &theta[start..start + fan_in * fan_out];
                let mut previous = vec![0.0; n * fan_in];
                for row in 0..n {
                    for i in 0..fan_in {
                        if pre[l - 1][row * fan_in + i] > 0.0 {
                            let mut sum = 0.0;
                            for j in 0..fan_out {
                                sum += delta[row * fan_out + j] * weights[i * fan_out + j];
                            }
                            previous[row * fan_in + i] = sum;
                        }
                    }
                }
                delta = previous;
            }
            end = start;
        }
        (loss, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn the_gradient_matches_finite_differences_of_the_loss() {
        let net = Mlp64::new(1, &[4, 3], 1);
        let mut rng = Rng::new(5);
        let theta: Vec<f64> = (0..net.param_count())
            .map(|_| rng.next_f64() - 0.5)
            .collect();
        let x: Vec<f64> = (0..7).map(|i| i as f64 * 0.3 - 1.0).collect();
        let y: Vec<f64> = x.iter().map(|v| v.sin()).collect();
        let (_, grad) = net.loss_grad(&theta, &x, &y);
        for k in 0..theta.len() {
            let h = 1e-6;
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[k] += h;
            down[k] -= h;
            let numeric =
                (net.loss_grad(&up, &x, &y).0 - net.loss_grad(&down, &x, &y).0) / (2.0 * h);
            assert!(
                (numeric - grad[k]).abs() < 1e-7,
                "parameter {k}: {numeric} vs {}",
                grad[k]
            );
        }
    }
}
