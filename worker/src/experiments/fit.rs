//! `fit`: full-batch regression of y = 2·x·cos(x) + 2 on evenly spaced
//! points (1.1), optionally recording the gradient norm and then minimising
//! it (2.2). The MSE phase trains with burn; the gradient-norm phase needs
//! Hessian-vector products, which burn cannot differentiate, so it runs on
//! the same weights in f64 ([`crate::mlp64`]) with exact products.

use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use sweep_spec::metric;
use sweep_spec::params::{
    FitParams, FitTarget, GradNormObjective, GradNormPhase, Optimizer, TaskParams,
};
use sweep_spec::summary::{self, Summary};

use super::{Context, TaskError, check_finite, optimizer};
use crate::mlp64::Mlp64;
use crate::model::{Net, initial_weights};

/// The regression data: inputs and targets, one point per row.
pub fn points(fit: &FitParams) -> (Vec<f64>, Vec<f64>) {
    let n = fit.points.max(2) as usize;
    let xs: Vec<f64> = (0..n)
        .map(|i| fit.x_min + (fit.x_max - fit.x_min) * i as f64 / (n - 1) as f64)
        .collect();
    let ys = xs
        .iter()
        .map(|x| match fit.target {
            FitTarget::XCosX => 2.0 * x * x.cos() + 2.0,
        })
        .collect();
    (xs, ys)
}

/// Where a fit ended, and the flattest point it passed (smallest gradient
/// norm), which the Hessian experiment examines.
pub struct Fitted {
    pub final_loss: f64,
    pub min_loss: f64,
    pub steps: u64,
    pub flattest: Flattest,
}

pub struct Flattest {
    pub weights: Vec<f64>,
    pub step: u64,
    pub loss: f64,
    pub grad_norm: f64,
}

pub fn run(params: &TaskParams, fit: &FitParams, ctx: &Context<'_>) -> Result<Summary, TaskError> {
    let fitted = train(params, fit, ctx)?;
    Ok(summary(params, &fitted))
}

pub fn summary(params: &TaskParams, fitted: &Fitted) -> Summary {
    let mut out = Summary::new();
    out.set(summary::FINAL_LOSS, fitted.final_loss)
        .set(summary::MIN_LOSS, fitted.min_loss)
        .set(summary::STEPS, fitted.steps as f64)
        .set(summary::MIN_GRAD_NORM, fitted.flattest.grad_norm)
        .set(summary::MIN_GRAD_NORM_STEP, fitted.flattest.step as f64)
        .set(summary::PARAM_COUNT, params.param_count as f64);
    out
}

fn norm(values: &[f64]) -> f64 {
    values.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Both phases of the schedule.
pub fn train(params: &TaskParams, fit: &FitParams, ctx: &Context<'_>) -> Result<Fitted, TaskError> {
    let net = Mlp64::for_shape(&params.model)
        .ok_or_else(|| TaskError::InvalidParams("fit trains an mlp".into()))?;
    let (xs, ys) = points(fit);
    let (weights, mut fitted) = mse_phase(params, fit, &xs, &ys, ctx)?;
    // burn measured the MSE phase in f32; the f64 twin measures its
    // flattest point again, as it measures every step of the second phase.
    let (loss, grad) = net.loss_grad(&fitted.flattest.weights, &xs, &ys);
    fitted.flattest.loss = loss;
    fitted.flattest.grad_norm = norm(&grad);
    if let Some(phase) = &fit.grad_norm_phase {
        let theta = weights.iter().map(|w| f64::from(*w)).collect();
        grad_norm_phase(&net, phase, fit, theta, (&xs, &ys), &mut fitted, ctx)?;
    }
    Ok(fitted)
}

/// Plain MSE training with burn; returns the final weights, and the
/// weights of the step with the smallest gradient norm as the flattest
/// point so far.
fn mse_phase(
    params: &TaskParams,
    fit: &FitParams,
    xs: &[f64],
    ys: &[f64],
    ctx: &Context<'_>,
) -> Result<(Vec<f32>, Fitted), TaskError> {
    let device = ctx.device.clone().autodiff();
    let column = |values: &[f64]| -> Tensor<2> {
        let data: Vec<f32> = values.iter().map(|v| *v as f32).collect();
        Tensor::from_data(TensorData::new(data, [values.len(), 1]), &device)
    };
    let (x, y) = (column(xs), column(ys));
    let mut model = Net::new(
        &params.model,
        &initial_weights(&params.model, params.init_seed),
        &device,
    );
    let mut optim = optimizer(&params.optimizer);
    let mut best = f64::INFINITY;
    let mut flattest = Flattest {
        weights: Vec::new(),
        step: 0,
        loss: f64::NAN,
        grad_norm: f64::INFINITY,
    };
    for step in 1..=fit.steps {
        ctx.check_stop()?;
        let loss = (model.forward(x.clone()) - y.clone()).powi_scalar(2).mean();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_finite(step, value)?;
        let grads = loss.backward();
        // Every step counts, recorded or not: the loss and gradient are
        // those of the weights before this step's update.
        let grad_norm = model.grad_norm(&grads);
        if grad_norm < flattest.grad_norm {
            flattest = Flattest {
                weights: model.flat().iter().map(|w| f64::from(*w)).collect(),
                step,
                loss: value,
                grad_norm,
            };
        }
        if step.is_multiple_of(fit.record_every) || step == fit.steps {
            ctx.sink.metric(metric::LOSS, step as i64, None, value);
            if fit.record_grad_norm {
                ctx.sink
                    .metric(metric::GRAD_NORM, step as i64, None, grad_norm);
            }
        }
        best = best.min(value);
        model = optim.step(
            params.lr,
            model.clone(),
            GradientsParams::from_grads(grads, &model),
        );
    }
    // The loss of the weights the run ends with, after the last update.
    let last = f64::from(
        (model.forward(x) - y)
            .powi_scalar(2)
            .mean()
            .into_scalar::<f32>(),
    );
    let fitted = Fitted {
        final_loss: last,
        min_loss: best.min(last),
        steps: fit.steps,
        flattest,
    };
    Ok((model.flat(), fitted))
}

/// Minimises the gradient norm (2.2) from `theta`, the end of the MSE
/// phase: ∇‖g‖² = 2·H·g, ∇‖g‖ = H·g / ‖g‖.
fn grad_norm_phase(
    net: &Mlp64,
    phase: &GradNormPhase,
    fit: &FitParams,
    mut theta: Vec<f64>,
    data: (&[f64], &[f64]),
    fitted: &mut Fitted,
    ctx: &Context<'_>,
) -> Result<(), TaskError> {
    let mut optim = FlatOptimizer::new(&phase.optimizer, theta.len());
    for k in 1..=phase.steps {
        ctx.check_stop()?;
        let step = fitted.steps + k;
        let (loss, grad) = net.loss_grad(&theta, data.0, data.1);
        let grad_norm = norm(&grad);
        check_finite(step, loss)?;
        if grad_norm < fitted.flattest.grad_norm {
            fitted.flattest = Flattest {
                weights: theta.clone(),
                step,
                loss,
                grad_norm,
            };
        }
        if step.is_multiple_of(fit.record_every) || k == phase.steps {
            ctx.sink.metric(metric::LOSS, step as i64, None, loss);
            ctx.sink
                .metric(metric::GRAD_NORM, step as i64, None, grad_norm);
        }
        fitted.min_loss = fitted.min_loss.min(loss);
        let hg = net.hessian_times(&theta, &grad, data.0, data.1);
        let factor = match phase.objective {
            GradNormObjective::NormSquared => 2.0 * phase.scale,
            GradNormObjective::Norm => phase.scale / grad_norm.max(f64::MIN_POSITIVE),
        };
        let direction: Vec<f64> = hg.iter().map(|v| factor * v).collect();
        optim.step(phase.lr, &mut theta, &direction);
    }
    let last = net.loss_grad(&theta, data.0, data.1).0;
    fitted.final_loss = last;
    fitted.min_loss = fitted.min_loss.min(last);
    fitted.steps += phase.steps;
    Ok(())
}

/// Adam or SGD on a flat f64 vector, with burn's and PyTorch's defaults.
enum FlatOptimizer {
    Adam {
        epsilon: f64,
        moment: Vec<f64>,
        second: Vec<f64>,
        time: i32,
    },
    Sgd {
        momentum: f64,
        buffer: Vec<f64>,
    },
}

impl FlatOptimizer {
    fn new(spec: &Optimizer, len: usize) -> Self {
        match spec {
            Optimizer::Adam { epsilon } => Self::Adam {
                epsilon: *epsilon,
                moment: vec![0.0; len],
                second: vec![0.0; len],
                time: 0,
            },
            Optimizer::Sgd { momentum } => Self::Sgd {
                momentum: *momentum,
                buffer: vec![0.0; len],
            },
        }
    }

    fn step(&mut self, lr: f64, theta: &mut [f64], grad: &[f64]) {
        const BETA1: f64 = 0.9;
        const BETA2: f64 = 0.999;
        match self {
            Self::Adam {
                epsilon,
                moment,
                second,
                time,
            } => {
                *time += 1;
                let (c1, c2) = (1.0 - BETA1.powi(*time), 1.0 - BETA2.powi(*time));
                for i in 0..theta.len() {
                    moment[i] = BETA1 * moment[i] + (1.0 - BETA1) * grad[i];
                    second[i] = BETA2 * second[i] + (1.0 - BETA2) * grad[i] * grad[i];
                    theta[i] -= lr * (moment[i] / c1) / ((second[i] / c2).sqrt() + *epsilon);
                }
            }
            Self::Sgd { momentum, buffer } => {
                for i in 0..theta.len() {
                    buffer[i] = *momentum * buffer[i] + grad[i];
                    theta[i] -= lr * buffer[i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_spec::ModelShape;

    /// burn (f32) and [`Mlp64`] (f64) see the same weights in the same order.
    #[test]
    fn burn_and_f64_gradients_agree_on_the_same_weights() {
        let shape = ModelShape::mlp(1, &[10, 10, 10], 1);
        let flat = initial_weights(&shape, 3);
        let fit = FitParams {
            target: FitTarget::XCosX,
            points: 50,
            x_min: -1.0,
            x_max: 10.0,
            steps: 1,
            record_every: 1,
            record_grad_norm: false,
            grad_norm_phase: None,
        };
        let (xs, ys) = points(&fit);
        let device = crate::device::test_device().autodiff();
        let column = |values: &[f64]| -> Tensor<2> {
            let data: Vec<f32> = values.iter().map(|v| *v as f32).collect();
            Tensor::from_data(TensorData::new(data, [values.len(), 1]), &device)
        };
        let net = Net::new(&shape, &flat, &device);
        let loss = (net.forward(column(&xs)) - column(&ys))
            .powi_scalar(2)
            .mean();
        let burn_loss = f64::from(loss.clone().into_scalar::<f32>());
        let burn_grad = net.flat_grad(&loss.backward());
        let theta: Vec<f64> = flat.iter().map(|w| f64::from(*w)).collect();
        let (loss64, grad64) = Mlp64::new(1, &[10, 10, 10], 1).loss_grad(&theta, &xs, &ys);
        assert!(
            (burn_loss - loss64).abs() < 1e-5 * loss64,
            "{burn_loss} vs {loss64}"
        );
        let scale = grad64.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for (i, (a, b)) in burn_grad.iter().zip(&grad64).enumerate() {
            assert!(
                (f64::from(*a) - b).abs() < 1e-4 * scale,
                "parameter {i}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn flat_adam_takes_lr_sized_first_steps() {
        let mut optim = FlatOptimizer::new(&Optimizer::Adam { epsilon: 1e-8 }, 2);
        let mut theta = vec![1.0, -1.0];
        optim.step(0.1, &mut theta, &[3.0, -0.5]);
        assert!(
            (theta[0] - 0.9).abs() < 1e-6 && (theta[1] + 0.9).abs() < 1e-6,
            "{theta:?}"
        );
    }
}
