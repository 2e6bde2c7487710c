//! `fit`: full-batch regression of y = 2·x·cos(x) + 2 on evenly spaced
//! points (1.1), optionally recording the gradient norm and then minimising
//! it (2.2). The MSE phase trains with burn; the gradient-norm phase needs
//! Hessian-vector products, which burn cannot differentiate, so it runs on
//! the same weights in f64 ([`crate::mlp64`]) with exact products.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Tensor, TensorData};
use sweep_spec::metric;
use sweep_spec::params::{FitParams, FitTarget, GradNormObjective, GradNormPhase, TaskParams};
use sweep_spec::summary::{self, Summary};

use super::flat_optimizer::FlatOptimizer;
use super::{Context, Start, TaskError, burn_start, burn_state, check_finite, fresh_start};
use crate::checkpoint::{Checkpoint, CheckpointError, Position};
use crate::mlp64::Mlp64;
use crate::model::Net;

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

/// The phases as a checkpoint's [`Position::epoch`] numbers them.
const MSE_PHASE: u64 = 1;
const GRAD_NORM_PHASE: u64 = 2;

/// Where a checkpoint leaves a fit: in the MSE phase, or in the
/// gradient-norm phase after `done` of its steps.
enum Resumed {
    Mse(Start, Fitted),
    GradNorm {
        theta: Vec<f64>,
        optim: FlatOptimizer,
        fitted: Fitted,
        done: u64,
    },
}

/// Both phases of the schedule, from the newest checkpoint if one fits.
pub fn train(params: &TaskParams, fit: &FitParams, ctx: &Context<'_>) -> Result<Fitted, TaskError> {
    let net = Mlp64::for_shape(&params.model)
        .ok_or_else(|| TaskError::InvalidParams("fit trains an mlp".into()))?;
    let (xs, ys) = points(fit);
    let device = ctx.device.clone().autodiff();
    let n = params.model.param_count() as usize;
    let resumed = ctx.resume(params, |mut checkpoint| {
        let fitted = Fitted::restore(&mut checkpoint, n)?;
        let phase = fit.grad_norm_phase.as_ref();
        match (checkpoint.position.epoch, phase) {
            (GRAD_NORM_PHASE, Some(phase)) => Ok(Resumed::GradNorm {
                theta: checkpoint.take_vector("theta", n)?,
                optim: FlatOptimizer::restore(&phase.optimizer, &mut checkpoint, n)?,
                done: checkpoint.position.step.saturating_sub(fit.steps),
                fitted: Fitted {
                    steps: fit.steps,
                    ..fitted
                },
            }),
            (MSE_PHASE, _) => Ok(Resumed::Mse(
                burn_start(params, &mut checkpoint, &device)?,
                fitted,
            )),
            (other, _) => Err(CheckpointError::Unreadable(format!(
                "phase {other} is not one of this fit's"
            ))),
        }
    });
    let (theta, optim, done, mut fitted) = match resumed {
        Some(Resumed::GradNorm {
            theta,
            optim,
            fitted,
            done,
        }) => (theta, optim, done, fitted),
        mse => {
            let (start, so_far) = match mse {
                Some(Resumed::Mse(start, fitted)) => (start, fitted),
                _ => (fresh_start(params, &device), Fitted::fresh()),
            };
            let (weights, mut fitted) = mse_phase(params, fit, (&xs, &ys), start, so_far, ctx)?;
            // burn measured the MSE phase in f32; the f64 twin measures its
            // flattest point again, as it measures every step of the
            // second phase.
            let (loss, grad) = net.loss_grad(&fitted.flattest.weights, &xs, &ys);
            fitted.flattest.loss = loss;
            fitted.flattest.grad_norm = norm(&grad);
            let Some(phase) = &fit.grad_norm_phase else {
                return Ok(fitted);
            };
            let theta = weights.iter().map(|w| f64::from(*w)).collect();
            (theta, FlatOptimizer::new(&phase.optimizer, n), 0, fitted)
        }
    };
    if let Some(phase) = &fit.grad_norm_phase {
        let run = GradNormRun {
            net: &net,
            phase,
            fit,
            data: (&xs, &ys),
        };
        run.train(params, theta, optim, done, &mut fitted, ctx)?;
    }
    Ok(fitted)
}

impl Fitted {
    /// Before the first step.
    fn fresh() -> Self {
        Self {
            final_loss: f64::NAN,
            min_loss: f64::INFINITY,
            steps: 0,
            flattest: Flattest {
                weights: Vec::new(),
                step: 0,
                loss: f64::NAN,
                grad_norm: f64::INFINITY,
            },
        }
    }

    /// Adds what the rest of the run needs to `checkpoint`.
    fn save(&self, checkpoint: &mut Checkpoint) {
        let flattest = &self.flattest;
        checkpoint.values.extend([
            ("min_loss".to_string(), self.min_loss),
            ("flattest_step".to_string(), flattest.step as f64),
            ("flattest_loss".to_string(), flattest.loss),
            ("flattest_grad_norm".to_string(), flattest.grad_norm),
        ]);
        checkpoint
            .vectors
            .insert("flattest".to_string(), flattest.weights.clone());
    }

    /// What [`Fitted::save`] kept, of a model with `n` weights.
    fn restore(checkpoint: &mut Checkpoint, n: usize) -> Result<Self, CheckpointError> {
        Ok(Self {
            final_loss: f64::NAN,
            min_loss: checkpoint.value("min_loss")?,
            steps: checkpoint.position.step,
            flattest: Flattest {
                weights: checkpoint.take_vector("flattest", n)?,
                step: checkpoint.value("flattest_step")? as u64,
                loss: checkpoint.value("flattest_loss")?,
                grad_norm: checkpoint.value("flattest_grad_norm")?,
            },
        })
    }
}

/// The MSE phase's state: the burn model and optimizer, and the run so far.
fn mse_state(
    model: &Net,
    optim: &ModuleOptimizer,
    so_far: &Fitted,
) -> Result<Checkpoint, CheckpointError> {
    let mut checkpoint = burn_state(model, optim)?;
    so_far.save(&mut checkpoint);
    Ok(checkpoint)
}

/// The gradient-norm phase's state: its f64 weights and optimizer, and the
/// run so far.
fn grad_norm_state(fitted: &Fitted, theta: &[f64], optim: &FlatOptimizer) -> Checkpoint {
    let mut checkpoint = Checkpoint::default();
    fitted.save(&mut checkpoint);
    checkpoint
        .vectors
        .insert("theta".to_string(), theta.to_vec());
    optim.save(&mut checkpoint);
    checkpoint
}

/// Plain MSE training with burn from `start`, where the run stood at with
/// `so_far`; returns the final weights, and the weights of the step with
/// the smallest gradient norm as the flattest point so far.
fn mse_phase(
    params: &TaskParams,
    fit: &FitParams,
    (xs, ys): (&[f64], &[f64]),
    start: Start,
    mut so_far: Fitted,
    ctx: &Context<'_>,
) -> Result<(Vec<f32>, Fitted), TaskError> {
    let device = ctx.device.clone().autodiff();
    let column = |values: &[f64]| -> Tensor<2> {
        let data: Vec<f32> = values.iter().map(|v| *v as f32).collect();
        Tensor::from_data(TensorData::new(data, [values.len(), 1]), &device)
    };
    let (x, y) = (column(xs), column(ys));
    let (mut model, mut optim) = (start.model, start.optim);
    for step in start.position.step + 1..=fit.steps {
        let position = Position {
            epoch: MSE_PHASE,
            batch: 0,
            step: step - 1,
        };
        ctx.checkpoint(params, position, || mse_state(&model, &optim, &so_far));
        ctx.check_stop()?;
        let loss = (model.forward(x.clone()) - y.clone()).powi_scalar(2).mean();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_finite(step, value)?;
        let grads = loss.backward();
        // Every step counts, recorded or not: the loss and gradient are
        // those of the weights before this step's update.
        let grad_norm = model.grad_norm(&grads);
        if grad_norm < so_far.flattest.grad_norm {
            so_far.flattest = Flattest {
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
        so_far.min_loss = so_far.min_loss.min(value);
        model = optim.step(
            params.lr,
            model.clone(),
            GradientsParams::from_grads(grads, &model),
        );
    }
    if fit.grad_norm_phase.is_none() {
        let position = Position {
            epoch: MSE_PHASE,
            batch: 0,
            step: fit.steps,
        };
        ctx.keep(params, position, || mse_state(&model, &optim, &so_far));
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
        min_loss: so_far.min_loss.min(last),
        steps: fit.steps,
        flattest: so_far.flattest,
    };
    Ok((model.flat(), fitted))
}

/// The gradient-norm phase (2.2) of a fit.
struct GradNormRun<'a> {
    net: &'a Mlp64,
    phase: &'a GradNormPhase,
    fit: &'a FitParams,
    data: (&'a [f64], &'a [f64]),
}

impl GradNormRun<'_> {
    /// Minimises the gradient norm from `theta` (the end of the MSE phase,
    /// or where a checkpoint left it after `done` steps):
    /// ∇‖g‖² = 2·H·g, ∇‖g‖ = H·g / ‖g‖.
    fn train(
        &self,
        params: &TaskParams,
        mut theta: Vec<f64>,
        mut optim: FlatOptimizer,
        done: u64,
        fitted: &mut Fitted,
        ctx: &Context<'_>,
    ) -> Result<(), TaskError> {
        let (net, phase, (xs, ys)) = (self.net, self.phase, self.data);
        for k in done + 1..=phase.steps {
            let step = fitted.steps + k;
            let position = Position {
                epoch: GRAD_NORM_PHASE,
                batch: 0,
                step: step - 1,
            };
            ctx.checkpoint(params, position, || {
                Ok(grad_norm_state(fitted, &theta, &optim))
            });
            ctx.check_stop()?;
            let (loss, grad) = net.loss_grad(&theta, xs, ys);
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
            if step.is_multiple_of(self.fit.record_every) || k == phase.steps {
                ctx.sink.metric(metric::LOSS, step as i64, None, loss);
                ctx.sink
                    .metric(metric::GRAD_NORM, step as i64, None, grad_norm);
            }
            fitted.min_loss = fitted.min_loss.min(loss);
            let hg = net.hessian_times(&theta, &grad, xs, ys);
            let factor = match phase.objective {
                GradNormObjective::NormSquared => 2.0 * phase.scale,
                GradNormObjective::Norm => phase.scale / grad_norm.max(f64::MIN_POSITIVE),
            };
            let direction: Vec<f64> = hg.iter().map(|v| factor * v).collect();
            optim.step(phase.lr, &mut theta, &direction);
        }
        let position = Position {
            epoch: GRAD_NORM_PHASE,
            batch: 0,
            step: fitted.steps + phase.steps,
        };
        ctx.keep(params, position, || {
            Ok(grad_norm_state(fitted, &theta, &optim))
        });
        let last = net.loss_grad(&theta, xs, ys).0;
        fitted.final_loss = last;
        fitted.min_loss = fitted.min_loss.min(last);
        fitted.steps += phase.steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::initial_weights;
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
}
