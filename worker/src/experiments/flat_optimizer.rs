//! [`FlatOptimizer`]: Adam or SGD over one flat f64 vector, for the phases
//! that train without burn (the gradient-norm phase of `fit`), with burn's
//! and PyTorch's defaults, and its state in a checkpoint.

use sweep_spec::params::Optimizer;

use crate::checkpoint::{Checkpoint, CheckpointError};

/// Adam or SGD on a flat f64 vector, with burn's and PyTorch's defaults.
pub enum FlatOptimizer {
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
    pub fn new(spec: &Optimizer, len: usize) -> Self {
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

    /// Adds its state to `checkpoint`.
    pub fn save(&self, checkpoint: &mut Checkpoint) {
        match self {
            Self::Adam {
                moment,
                second,
                time,
                ..
            } => {
                checkpoint.vectors.extend([
                    ("adam_moment".to_string(), moment.clone()),
                    ("adam_second".to_string(), second.clone()),
                ]);
                checkpoint
                    .values
                    .insert("adam_time".to_string(), f64::from(*time));
            }
            Self::Sgd { buffer, .. } => {
                checkpoint
                    .vectors
                    .insert("sgd_buffer".to_string(), buffer.clone());
            }
        }
    }

    /// The optimizer `spec` names over `len` weights, in the state
    /// [`FlatOptimizer::save`] kept.
    pub fn restore(
        spec: &Optimizer,
        checkpoint: &mut Checkpoint,
        len: usize,
    ) -> Result<Self, CheckpointError> {
        let mut optim = Self::new(spec, len);
        match &mut optim {
            Self::Adam {
                moment,
                second,
                time,
                ..
            } => {
                *moment = checkpoint.take_vector("adam_moment", len)?;
                *second = checkpoint.take_vector("adam_second", len)?;
                *time = checkpoint.value("adam_time")? as i32;
            }
            Self::Sgd { buffer, .. } => *buffer = checkpoint.take_vector("sgd_buffer", len)?,
        }
        Ok(optim)
    }

    pub fn step(&mut self, lr: f64, theta: &mut [f64], grad: &[f64]) {
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
