//! The names of the metrics a worker records while it trains; figures draw
//! their curves by these names. Per-epoch losses and accuracies share their
//! names with the summary numbers of the last epoch ([`crate::summary`]).

pub use crate::summary::{
    SENSITIVITY, SENSITIVITY_PER_SAMPLE, TEST_ACC, TEST_LOSS, TRAIN_ACC, TRAIN_LOSS,
};

/// fit: the MSE of the full batch, every `record_every` steps.
pub const LOSS: &str = "loss";
/// fit: ‖∇θ L‖, every `record_every` steps.
pub const GRAD_NORM: &str = "grad_norm";
/// classify: the running minibatch's loss and accuracy.
pub const BATCH_LOSS: &str = "batch_loss";
pub const BATCH_ACC: &str = "batch_acc";
/// interpolate: α at each step of the path.
pub const ALPHA: &str = "alpha";
