//! `hessian`: 2.2's schedule, then the Hessian of the loss with respect to
//! all weights and biases at the step of smallest gradient norm, and its
//! spectrum (2.3). The Hessian's columns are exact Hessian-vector products
//! in f64 ([`Mlp64::hessian_times`]); the eigenvalues come from a symmetric
//! eigensolver.

use nalgebra::{DMatrix, SymmetricEigen};
use sweep_spec::TaskParams;
use sweep_spec::params::{FitParams, HessianParams};
use sweep_spec::summary::{self, Summary};

use super::fit::{self, points};
use super::{Context, TaskError};
use crate::mlp64::Mlp64;

/// The artifact encoding of the eigenvalues: little-endian f64, ascending.
pub const EIGENVALUES_F64: &str = "f64-le";

/// The n×n Hessian (row-major) whose products with a vector `times`
/// gives: column i is H·eᵢ. Exact products give a matrix symmetric to
/// rounding; [`symmetric`] averages away what is left.
pub fn hessian(times: impl Fn(&[f64]) -> Vec<f64>, n: usize) -> Vec<f64> {
    let mut matrix = vec![0.0; n * n];
    let mut basis = vec![0.0; n];
    for i in 0..n {
        basis[i] = 1.0;
        let column = times(&basis);
        basis[i] = 0.0;
        for row in 0..n {
            matrix[row * n + i] = column[row];
        }
    }
    matrix
}

/// (H + Hᵀ) / 2.
pub fn symmetric(matrix: &[f64], n: usize) -> DMatrix<f64> {
    let h = DMatrix::from_row_slice(n, n, matrix);
    (&h + h.transpose()) * 0.5
}

/// The eigenvalues of a symmetric matrix, ascending.
pub fn eigenvalues(matrix: DMatrix<f64>) -> Vec<f64> {
    let mut values: Vec<f64> = SymmetricEigen::new(matrix)
        .eigenvalues
        .iter()
        .copied()
        .collect();
    values.sort_by(f64::total_cmp);
    values
}

/// A spectrum's shares of eigenvalues about a cut: the fractions above it,
/// below minus it and within it. About half of a ReLU net's eigenvalues
/// are numerically zero, so a strict sign (the course's minimal ratio,
/// [`minimal_ratio`]) splits those at random.
#[derive(Clone, Debug, PartialEq)]
pub struct SignShares {
    pub positive: f64,
    pub negative: f64,
    pub zero: f64,
}

/// The shares about ±`cut`.
pub fn sign_shares(values: &[f64], cut: f64) -> SignShares {
    SignShares {
        positive: share(values, |v| v > cut),
        negative: share(values, |v| v < -cut),
        zero: share(values, |v| v.abs() <= cut),
    }
}

/// The course's minimal ratio: the fraction of eigenvalues strictly > 0.
pub fn minimal_ratio(values: &[f64]) -> f64 {
    share(values, |v| v > 0.0)
}

/// The largest eigenvalue in magnitude, the scale of a relative tolerance.
pub fn largest(values: &[f64]) -> f64 {
    values.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

fn share(values: &[f64], keep: impl Fn(f64) -> bool) -> f64 {
    values.iter().filter(|v| keep(**v)).count() as f64 / values.len().max(1) as f64
}

pub fn run(
    params: &TaskParams,
    fit: &FitParams,
    tolerances: &HessianParams,
    ctx: &Context<'_>,
) -> Result<Summary, TaskError> {
    let fitted = fit::train(params, fit, ctx)?;
    let net = Mlp64::for_shape(&params.model)
        .ok_or_else(|| TaskError::InvalidParams("the hessian experiment uses an mlp".into()))?;
    let (xs, ys) = points(fit);
    ctx.check_stop()?;
    let theta = &fitted.flattest.weights;
    let measured = hessian(|v| net.hessian_times(theta, v, &xs, &ys), theta.len());
    let values = eigenvalues(symmetric(&measured, theta.len()));
    let absolute = sign_shares(&values, tolerances.abs_tol);
    let relative = sign_shares(&values, tolerances.rel_tol * largest(&values));
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    ctx.sink
        .artifact("hessian/eigenvalues", EIGENVALUES_F64, bytes);
    let mut out = fit::summary(params, &fitted);
    out.set(summary::LOSS_AT_MIN_GRAD_NORM, fitted.flattest.loss)
        .set(summary::MINIMAL_RATIO, minimal_ratio(&values))
        .set(summary::POSITIVE_FRACTION, absolute.positive)
        .set(summary::NEGATIVE_FRACTION, absolute.negative)
        .set(summary::ZERO_FRACTION, absolute.zero)
        .set(summary::POSITIVE_FRACTION_REL, relative.positive)
        .set(summary::NEGATIVE_FRACTION_REL, relative.negative)
        .set(summary::ZERO_FRACTION_REL, relative.zero)
        .set(summary::ABS_TOL, tolerances.abs_tol)
        .set(summary::REL_TOL, tolerances.rel_tol)
        .set(
            summary::LAMBDA_MIN,
            values.first().copied().unwrap_or(f64::NAN),
        )
        .set(
            summary::LAMBDA_MAX,
            values.last().copied().unwrap_or(f64::NAN),
        )
        .set(summary::EIGENVALUES, values.len() as f64);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A = Q·diag(λ)·Qᵀ with a random orthogonal Q: a quadratic
    /// f(θ) = ½θᵀAθ + bᵀθ whose Hessian is exactly A.
    fn known_quadratic(eigen: &[f64]) -> (DMatrix<f64>, Vec<f64>) {
        let n = eigen.len();
        let mut rng = Rng::new(17);
        let random = DMatrix::from_fn(n, n, |_, _| rng.next_f64() - 0.5);
        let q = random.qr().q();
        let a = &q
            * DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(eigen))
            * q.transpose();
        let b: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        (a, b)
    }

    #[test]
    fn the_hessian_of_a_known_quadratic_is_recovered() {
        let eigen = [-3.0, -0.5, 0.0, 1e-3, 0.25, 2.0, 7.5, 40.0];
        let (a, b) = known_quadratic(&eigen);
        let n = eigen.len();
        let _ = b;
        let times = |v: &[f64]| -> Vec<f64> {
            (&a * nalgebra::DVector::from_column_slice(v))
                .iter()
                .copied()
                .collect()
        };
        let measured = hessian(times, n);
        for i in 0..n {
            for j in 0..n {
                let (hij, hji) = (measured[i * n + j], measured[j * n + i]);
                assert!(
                    (hij - hji).abs() < 1e-6,
                    "H[{i},{j}] = {hij}, H[{j},{i}] = {hji}"
                );
                assert!((hij - a[(i, j)]).abs() < 1e-6);
            }
        }
        let values = eigenvalues(symmetric(&measured, n));
        for (got, want) in values.iter().zip(eigen) {
            let scale = want.abs().max(1e-3);
            assert!((got - want).abs() <= 1e-4 * scale, "{got} vs {want}");
        }
        assert_eq!(minimal_ratio(&values), 5.0 / 8.0);
        // Relative to λmax = 40: within ±0.04 are 0 and 1e-3.
        let parts = sign_shares(&values, 1e-3 * largest(&values));
        assert_eq!(
            (parts.positive, parts.negative, parts.zero),
            (4.0 / 8.0, 2.0 / 8.0, 2.0 / 8.0)
        );
        // Absolutely, ±1e-6 keeps only the exact 0 as zero.
        let parts = sign_shares(&values, 1e-6);
        assert_eq!(
            (parts.positive, parts.negative, parts.zero),
            (5.0 / 8.0, 2.0 / 8.0, 1.0 / 8.0)
        );
    }

    #[test]
    fn the_hessian_of_a_tiny_net_matches_second_differences_of_its_loss() {
        let net = Mlp64::new(1, &[3], 1);
        let mut rng = Rng::new(4);
        let theta: Vec<f64> = (0..net.param_count())
            .map(|_| rng.next_f64() - 0.5)
            .collect();
        let x: Vec<f64> = (0..9).map(|i| i as f64 * 0.25 - 1.0).collect();
        let y: Vec<f64> = x.iter().map(|v| 2.0 * v * v.cos() + 2.0).collect();
        let n = theta.len();
        let measured = hessian(|v| net.hessian_times(&theta, v, &x, &y), n);
        let loss = |p: &[f64]| net.loss_grad(p, &x, &y).0;
        let h = 1e-4;
        for i in 0..n {
            for j in 0..n {
                let at = |di: f64, dj: f64| {
                    let mut p = theta.clone();
                    p[i] += di;
                    p[j] += dj;
                    loss(&p)
                };
                let second = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4.0 * h * h);
                assert!(
                    (measured[i * n + j] - second).abs() < 1e-4,
                    "H[{i},{j}] {} vs {second}",
                    measured[i * n + j]
                );
                assert!((measured[i * n + j] - measured[j * n + i]).abs() < 1e-6);
            }
        }
    }

    /// The Hessian of mean((f(x) − y)²) for f(x) = Σⱼ cⱼ·relu(wⱼx + bⱼ) + d,
    /// written out by hand: (2/N)·Σₙ (∇fₙ∇fₙᵀ + rₙ∇²fₙ), where ∇²fₙ only
    /// couples cⱼ with wⱼ and bⱼ of the units a point switches on. Layout
    /// as the flat weights: w (H), b (H), c (H), d.
    fn one_hidden_layer_hessian(theta: &[f64], xs: &[f64], ys: &[f64]) -> Vec<f64> {
        let h = (theta.len() - 1) / 3;
        let n = theta.len();
        let (w, b, c, d) = (
            &theta[..h],
            &theta[h..2 * h],
            &theta[2 * h..3 * h],
            theta[3 * h],
        );
        let mut matrix = vec![0.0; n * n];
        for (x, y) in xs.iter().zip(ys) {
            let on: Vec<bool> = (0..h).map(|j| w[j] * x + b[j] > 0.0).collect();
            let f = d
                + (0..h)
                    .filter(|&j| on[j])
                    .map(|j| c[j] * (w[j] * x + b[j]))
                    .sum::<f64>();
            let r = f - y;
            let mut g = vec![0.0; n];
            for j in 0..h {
                if on[j] {
                    g[j] = c[j] * x;
                    g[h + j] = c[j];
                    g[2 * h + j] = w[j] * x + b[j];
                }
            }
            g[3 * h] = 1.0;
            for p in 0..n {
                for q in 0..n {
                    matrix[p * n + q] += 2.0 * g[p] * g[q] / xs.len() as f64;
                }
            }
            for j in (0..h).filter(|&j| on[j]) {
                for (p, value) in [(j, *x), (h + j, 1.0)] {
                    let q = 2 * h + j;
                    matrix[p * n + q] += 2.0 * r * value / xs.len() as f64;
                    matrix[q * n + p] += 2.0 * r * value / xs.len() as f64;
                }
            }
        }
        matrix
    }

    #[test]
    fn the_hessian_is_exact_next_to_relu_kinks() {
        let net = Mlp64::new(1, &[6], 1);
        let n = net.param_count();
        let mut rng = Rng::new(11);
        let mut theta: Vec<f64> = (0..n).map(|_| rng.next_f64() - 0.5).collect();
        let xs: Vec<f64> = (0..40).map(|i| i as f64 * 0.25 - 5.0).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 2.0 * x * x.cos() + 2.0).collect();
        // A data point a hair's breadth on the open side of every unit's
        // kink, wⱼ·x + bⱼ = 1e-9 at x = xs[3j + 5]: a difference of
        // gradients crosses it, the exact Hessian does not care.
        for j in 0..6 {
            theta[6 + j] = 1e-9 - theta[j] * xs[3 * j + 5];
        }
        let expected = one_hidden_layer_hessian(&theta, &xs, &ys);
        let measured = hessian(|v| net.hessian_times(&theta, v, &xs, &ys), n);
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (k, (got, want)) in measured.iter().zip(&expected).enumerate() {
            assert!(
                (got - want).abs() <= 1e-12 * scale,
                "H[{}][{}] = {got} against {want}",
                k / n,
                k % n
            );
        }
    }
}
