//! `fit`: full-batch regression of y = 2·x·cos(x) + 2 on evenly spaced
//! points (1.1), optionally recording the gradient norm (2.2).

use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use serde_json::json;
use sweep_proto::params::{FitParams, FitTarget, TaskParams};

use super::{Context, TaskError, check_finite, optimizer};
use crate::model::{Net, initial_weights};

/// The regression data: inputs and targets, one point per row.
pub fn points(fit: &FitParams) -> (Vec<f32>, Vec<f32>) {
    let n = fit.points.max(2) as usize;
    let xs: Vec<f64> = (0..n)
        .map(|i| fit.x_min + (fit.x_max - fit.x_min) * i as f64 / (n - 1) as f64)
        .collect();
    let ys = xs.iter().map(|x| match fit.target {
        FitTarget::XCosX => 2.0 * x * x.cos() + 2.0,
    });
    (
        xs.iter().map(|x| *x as f32).collect(),
        ys.map(|y| y as f32).collect(),
    )
}

pub fn run(params: &TaskParams, ctx: &Context<'_>) -> Result<serde_json::Value, TaskError> {
    let fit = params
        .fit
        .as_ref()
        .ok_or_else(|| TaskError::InvalidParams("a fit task needs fit parameters".into()))?;
    if fit.grad_norm_phase.is_some() {
        return Err(TaskError::Unsupported(
            "the gradient-norm phase of 2.2".into(),
        ));
    }
    let device = ctx.device.clone().autodiff();
    let (xs, ys) = points(fit);
    let n = xs.len();
    let x: Tensor<2> = Tensor::from_data(TensorData::new(xs, [n, 1]), &device);
    let y: Tensor<2> = Tensor::from_data(TensorData::new(ys, [n, 1]), &device);
    let mut model = Net::new(
        &params.model,
        &initial_weights(&params.model, params.init_seed),
        &device,
    );
    let mut optim = optimizer(&params.optimizer);
    let (mut last, mut best) = (f64::NAN, f64::INFINITY);
    for step in 1..=fit.steps {
        ctx.check_stop()?;
        let loss = (model.forward(x.clone()) - y.clone()).powi_scalar(2).mean();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_finite(step, value)?;
        let grads = loss.backward();
        if step.is_multiple_of(fit.record_every) || step == fit.steps {
            ctx.sink.metric("loss", step as i64, None, value);
            if fit.record_grad_norm {
                let norm = model.grad_norm(&grads);
                ctx.sink.metric("grad_norm", step as i64, None, norm);
            }
        }
        (last, best) = (value, best.min(value));
        model = optim.step(
            params.lr,
            model.clone(),
            GradientsParams::from_grads(grads, &model),
        );
    }
    Ok(json!({
        "final_loss": last,
        "min_loss": best,
        "steps": fit.steps,
        "param_count": params.param_count,
    }))
}
