//! `hessian`: 2.2's schedule, then the Hessian of the loss with respect to
//! all weights and biases at the step of smallest gradient norm, and its
//! spectrum (2.3). The Hessian's columns are central differences of exact
//! f64 gradients; the eigenvalues come from a symmetric eigensolver.

use nalgebra::{DMatrix, SymmetricEigen};
use sweep_spec::TaskParams;
use sweep_spec::summary::{self, Summary};

use super::fit::{self, points};
use super::{Context, TaskError};
use crate::mlp64::Mlp64;

/// The artifact encoding of the eigenvalues: little-endian f64, ascending.
pub const EIGENVALUES_F64: &str = "f64-le";

/// The Hessian of the function whose gradient is `grad`, at `theta`, as a
/// row-major n×n matrix: column i is (∇f(θ + h·eᵢ) − ∇f(θ − h·eᵢ)) / 2h. It is
/// returned as measured; [`symmetric`] averages it with its transpose.
pub fn hessian(grad: impl Fn(&[f64]) -> Vec<f64>, theta: &[f64]) -> Vec<f64> {
    let n = theta.len();
    let mut matrix = vec![0.0; n * n];
    let mut point = theta.to_vec();
    for i in 0..n {
        let h = 1e-5 * theta[i].abs().max(1.0);
        point[i] = theta[i] + h;
        let up = grad(&point);
        point[i] = theta[i] - h;
        let down = grad(&point);
        point[i] = theta[i];
        for row in 0..n {
            matrix[row * n + i] = (up[row] - down[row]) / (2.0 * h);
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

/// How a spectrum splits: the course's minimal ratio (strictly positive
/// eigenvalues) and, because about half of a ReLU net's eigenvalues are
/// numerically zero, the fractions above, below and within ±tol·|λmax|.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub minimal_ratio: f64,
    pub positive: f64,
    pub negative: f64,
    pub zero: f64,
}

pub fn split(values: &[f64], tol: f64) -> Split {
    let n = values.len().max(1) as f64;
    let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let cut = tol * scale;
    let share = |keep: &dyn Fn(f64) -> bool| values.iter().filter(|v| keep(**v)).count() as f64 / n;
    Split {
        minimal_ratio: share(&|v| v > 0.0),
        positive: share(&|v| v > cut),
        negative: share(&|v| v < -cut),
        zero: share(&|v| v.abs() <= cut),
    }
}

pub fn run(params: &TaskParams, ctx: &Context<'_>) -> Result<Summary, TaskError> {
    let tol = params
        .hessian
        .as_ref()
        .ok_or_else(|| TaskError::InvalidParams("a hessian task needs hessian parameters".into()))?
        .tol;
    let fitted = fit::train(params, ctx)?;
    let net = Mlp64::for_shape(&params.model)
        .ok_or_else(|| TaskError::InvalidParams("the hessian experiment uses an mlp".into()))?;
    let (xs, ys) = points(params.fit.as_ref().expect("checked by fit::train"));
    ctx.check_stop()?;
    let theta = &fitted.flattest.weights;
    let measured = hessian(|point| net.loss_grad(point, &xs, &ys).1, theta);
    let values = eigenvalues(symmetric(&measured, theta.len()));
    let parts = split(&values, tol);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    ctx.sink
        .artifact("hessian/eigenvalues", EIGENVALUES_F64, bytes);
    let mut out = fit::summary(params, &fitted);
    out.set(summary::LOSS_AT_MIN_GRAD_NORM, fitted.flattest.loss)
        .set(summary::MINIMAL_RATIO, parts.minimal_ratio)
        .set(summary::POSITIVE_FRACTION, parts.positive)
        .set(summary::NEGATIVE_FRACTION, parts.negative)
        .set(summary::ZERO_FRACTION, parts.zero)
        .set(summary::TOL, tol)
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
        let grad = |theta: &[f64]| -> Vec<f64> {
            let t = nalgebra::DVector::from_column_slice(theta);
            (&a * t).iter().zip(&b).map(|(x, y)| x + y).collect()
        };
        let theta: Vec<f64> = (0..n).map(|i| i as f64 * 0.7 - 2.0).collect();
        let measured = hessian(grad, &theta);
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
        let parts = split(&values, 1e-3);
        assert_eq!(parts.minimal_ratio, 5.0 / 8.0);
        assert_eq!(
            (parts.positive, parts.negative, parts.zero),
            (4.0 / 8.0, 2.0 / 8.0, 2.0 / 8.0)
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
        let measured = hessian(|p| net.loss_grad(p, &x, &y).1, &theta);
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
}
