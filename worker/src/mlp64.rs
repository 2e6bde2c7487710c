//! An MLP's mean-squared-error loss, its exact gradient (backpropagation)
//! and exact Hessian-vector products (Pearlmutter's R-operator) in f64, over
//! the same flat weights as [`crate::model`]. burn has no second-order
//! autodiff and trains in f32; the Hessian (2.3) and the gradient-norm phase
//! (2.2) need second derivatives, and the eigenvalues near zero that decide
//! the minimal ratio need them exact and in f64.

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
        let pass = self.forward(theta, x, y);
        let delta = pass.output_delta();
        let grad = self.backward(theta, &pass, delta, None);
        (pass.loss(), grad)
    }

    /// The exact Hessian of the loss times `v`, by Pearlmutter's R-operator
    /// (forward-mode differentiation of the backward pass along `v`). ReLU's
    /// second derivative is zero away from its kink, so this is the Hessian
    /// of the piecewise-quadratic loss on the current activation pattern,
    /// whatever the distance of a data point to a kink; differences of
    /// gradients move points across kinks and are wrong there.
    pub fn hessian_times(&self, theta: &[f64], v: &[f64], x: &[f64], y: &[f64]) -> Vec<f64> {
        assert_eq!(v.len(), theta.len(), "a direction for every weight");
        let pass = self.forward(theta, x, y);
        // R{·} of the forward pass: how each layer's input (R{a}, none for
        // the data, which do not move) and the output move along v.
        let mut r_inputs: Vec<Option<Vec<f64>>> = vec![None];
        let mut r_output = Vec::new();
        for l in 0..self.layers() {
            let (w, _) = self.layer(theta, l);
            let (vw, vb) = self.layer(v, l);
            let mut rz = affine(&pass.activations[l], vw, vb, pass.rows, self.widths[l]);
            if let Some(r_input) = &r_inputs[l] {
                let zero = vec![0.0; vb.len()];
                let carried = affine(r_input, w, &zero, pass.rows, self.widths[l]);
                rz.iter_mut().zip(carried).for_each(|(a, b)| *a += b);
            }
            if l + 1 < self.layers() {
                r_inputs.push(Some(relu_mask(&rz, &pass.pre[l])));
            } else {
                r_output = rz;
            }
        }
        let count = pass.residual.len() as f64;
        let tangent = Tangent {
            v,
            r_inputs,
            r_delta: r_output.iter().map(|r| 2.0 * r / count).collect(),
        };
        self.backward(theta, &pass, pass.output_delta(), Some(tangent))
    }

    fn layers(&self) -> usize {
        self.widths.len() - 1
    }

    /// Layer `l`'s weights (`fan_in × fan_out`, row-major) and bias in `flat`.
    fn layer<'a>(&self, flat: &'a [f64], l: usize) -> (&'a [f64], &'a [f64]) {
        let start = self.offset(l);
        let (fan_in, fan_out) = (self.widths[l], self.widths[l + 1]);
        let weights = &flat[start..start + fan_in * fan_out];
        (
            weights,
            &flat[start + fan_in * fan_out..start + fan_in * fan_out + fan_out],
        )
    }

    /// Where layer `l` starts in the flat weights.
    fn offset(&self, l: usize) -> usize {
        self.widths[..=l]
            .windows(2)
            .map(|w| w[0] * w[1] + w[1])
            .sum()
    }

    /// Every layer's pre-activation and activation, and the residuals.
    fn forward(&self, theta: &[f64], x: &[f64], y: &[f64]) -> Pass {
        assert_eq!(theta.len(), self.param_count(), "weights fit the net");
        let rows = y.len() / self.widths[self.layers()];
        let mut activations = vec![x.to_vec()];
        let mut pre = Vec::new();
        for l in 0..self.layers() {
            let (w, b) = self.layer(theta, l);
            let z = affine(&activations[l], w, b, rows, self.widths[l]);
            let a = if l + 1 < self.layers() {
                z.iter().map(|v| v.max(0.0)).collect()
            } else {
                z.clone()
            };
            pre.push(z);
            activations.push(a);
        }
        let residual = activations[self.layers()]
            .iter()
            .zip(y)
            .map(|(f, t)| f - t)
            .collect();
        Pass {
            rows,
            pre,
            activations,
            residual,
        }
    }

    /// Backpropagates `delta` (∂loss/∂output) to the weights; with a
    /// tangent, the R-operator of the same pass instead: H·v.
    fn backward(
        &self,
        theta: &[f64],
        pass: &Pass,
        mut delta: Vec<f64>,
        tangent: Option<Tangent<'_>>,
    ) -> Vec<f64> {
        let rows = pass.rows;
        let mut out = vec![0.0; theta.len()];
        let mut r_delta = tangent.as_ref().map(|t| t.r_delta.clone());
        for l in (0..self.layers()).rev() {
            let (fan_in, fan_out) = (self.widths[l], self.widths[l + 1]);
            let start = self.offset(l);
            let (w, _) = self.layer(theta, l);
            let input = &pass.activations[l];
            match (&tangent, &r_delta) {
                // R{∂W} = R{a}ᵀ·δ + aᵀ·R{δ}, R{∂b} = Σ R{δ}.
                (Some(t), Some(rd)) => {
                    accumulate(&mut out[start..], input, rd, rows, fan_in, fan_out);
                    if let Some(r_input) = &t.r_inputs[l] {
                        let weights_only = &mut out[start..start + fan_in * fan_out];
                        accumulate_weights(weights_only, r_input, &delta, rows, fan_in, fan_out);
                    }
                }
                _ => accumulate(&mut out[start..], input, &delta, rows, fan_in, fan_out),
            }
            if l == 0 {
                break;
            }
            let active = |row: usize, i: usize| pass.pre[l - 1][row * fan_in + i] > 0.0;
            let back = |d: &[f64], weights: &[f64]| -> Vec<f64> {
                let mut previous = vec![0.0; rows * fan_in];
                for row in 0..rows {
                    for i in 0..fan_in {
                        if active(row, i) {
                            previous[row * fan_in + i] = (0..fan_out)
                                .map(|j| d[row * fan_out + j] * weights[i * fan_out + j])
                                .sum();
                        }
                    }
                }
                previous
            };
            // R{δ_{l-1}} = (R{δ_l}·Wᵀ + δ_l·Vᵀ) ⊙ relu'(z_{l-1}); relu'' = 0.
            if let (Some(t), Some(rd)) = (&tangent, &r_delta) {
                let (vw, _) = self.layer(t.v, l);
                let moved = back(&delta, vw);
                let mut next = back(rd, w);
                next.iter_mut().zip(moved).for_each(|(a, b)| *a += b);
                r_delta = Some(next);
            }
            delta = back(&delta, w);
        }
        out
    }
}

/// A forward pass kept for the backward one.
struct Pass {
    rows: usize,
    pre: Vec<Vec<f64>>,
    activations: Vec<Vec<f64>>,
    residual: Vec<f64>,
}

impl Pass {
    fn loss(&self) -> f64 {
        self.residual.iter().map(|r| r * r).sum::<f64>() / self.residual.len() as f64
    }

    fn output_delta(&self) -> Vec<f64> {
        let count = self.residual.len() as f64;
        self.residual.iter().map(|r| 2.0 * r / count).collect()
    }
}

/// The direction of an R-operator pass and what its forward pass made of it.
struct Tangent<'a> {
    v: &'a [f64],
    /// R{a} of each layer's input; none for the data.
    r_inputs: Vec<Option<Vec<f64>>>,
    /// R{∂loss/∂output}.
    r_delta: Vec<f64>,
}

/// `values` where the pre-activation is on ReLU's open side, else 0.
fn relu_mask(values: &[f64], pre: &[f64]) -> Vec<f64> {
    values
        .iter()
        .zip(pre)
        .map(|(v, z)| if *z > 0.0 { *v } else { 0.0 })
        .collect()
}

/// `input · weights + bias` for `rows` rows of `fan_in` values.
fn affine(input: &[f64], weights: &[f64], bias: &[f64], rows: usize, fan_in: usize) -> Vec<f64> {
    let fan_out = bias.len();
    let mut z = vec![0.0; rows * fan_out];
    for row in 0..rows {
        for j in 0..fan_out {
            let mut sum = bias[j];
            for i in 0..fan_in {
                sum += input[row * fan_in + i] * weights[i * fan_out + j];
            }
            z[row * fan_out + j] = sum;
        }
    }
    z
}

/// Adds one layer's gradient, `inputᵀ·delta` and `Σ delta`, to `out`
/// (its weights, then its bias).
fn accumulate(
    out: &mut [f64],
    input: &[f64],
    delta: &[f64],
    rows: usize,
    fan_in: usize,
    fan_out: usize,
) {
    accumulate_weights(
        &mut out[..fan_in * fan_out],
        input,
        delta,
        rows,
        fan_in,
        fan_out,
    );
    for row in 0..rows {
        for j in 0..fan_out {
            out[fan_in * fan_out + j] += delta[row * fan_out + j];
        }
    }
}

fn accumulate_weights(
    out: &mut [f64],
    input: &[f64],
    delta: &[f64],
    rows: usize,
    fan_in: usize,
    fan_out: usize,
) {
    for row in 0..rows {
        for i in 0..fan_in {
            let a = input[row * fan_in + i];
            if a != 0.0 {
                for j in 0..fan_out {
                    out[i * fan_out + j] += a * delta[row * fan_out + j];
                }
            }
        }
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

    fn random(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.next_f64() - 0.5).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn hessian_vector_products_are_symmetric_and_match_gradient_differences() {
        let net = Mlp64::new(1, &[5, 4, 3], 1);
        let n = net.param_count();
        let theta = random(n, 3);
        let (u, v) = (random(n, 4), random(n, 5));
        let xs: Vec<f64> = (0..30).map(|i| i as f64 * 0.37 - 4.0).collect();
        let ys: Vec<f64> = xs.iter().map(|x| x.sin()).collect();
        let (hu, hv) = (
            net.hessian_times(&theta, &u, &xs, &ys),
            net.hessian_times(&theta, &v, &xs, &ys),
        );
        let (vhu, uhv) = (dot(&v, &hu), dot(&u, &hv));
        assert!(
            (vhu - uhv).abs() <= 1e-12 * vhu.abs().max(1.0),
            "{vhu} vs {uhv}"
        );
        // Away from kinks (a random point), a small central difference of
        // exact gradients agrees.
        let step = 1e-6;
        let at = |sign: f64| {
            let point: Vec<f64> = theta
                .iter()
                .zip(&v)
                .map(|(t, d)| t + sign * step * d)
                .collect();
            net.loss_grad(&point, &xs, &ys).1
        };
        let (up, down) = (at(1.0), at(-1.0));
        for (k, exact) in hv.iter().enumerate() {
            let numeric = (up[k] - down[k]) / (2.0 * step);
            assert!(
                (numeric - exact).abs() < 1e-6 * exact.abs().max(1.0),
                "{k}: {numeric} vs {exact}"
            );
        }
    }
}
