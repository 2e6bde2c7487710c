//! What a task needs of its device's memory, estimated from its parameters
//! before anything is allocated. An allocation the device cannot serve
//! aborts the whole process (Rust does not unwind from it), so a task too
//! large for its worker is refused first: the task fails, the worker lives.

use sweep_spec::{ExperimentKind, ModelShape, TaskParams};

use crate::experiments::TaskError;

/// Rows of the full-split evaluations of a classify task at a time.
const EVAL_ROWS: u64 = 1000;

/// About how many bytes training `params` takes at its peak: the weights
/// with their gradients, the optimizer's two moments and an evaluation copy
/// (f32); the activations of the largest batch, forward and backward; and
/// for the fit experiments the f64 copy of the net and, with a Hessian, the
/// n×n matrix and its decomposition.
pub fn needed(params: &TaskParams) -> u64 {
    let n = params.param_count;
    let units = units(&params.model);
    let rows = match &params.fit {
        Some(fit) => fit.points,
        None => params.batch_size.unwrap_or(1).max(EVAL_ROWS),
    };
    let mut bytes = n.saturating_mul(4 * 5);
    bytes = bytes.saturating_add(rows.saturating_mul(units).saturating_mul(4 * 3));
    if params.fit.is_some() {
        let f64_net = n.saturating_mul(8 * 4);
        let f64_activations = rows.saturating_mul(units).saturating_mul(8 * 3);
        bytes = bytes
            .saturating_add(f64_net)
            .saturating_add(f64_activations);
    }
    if params.experiment == ExperimentKind::Hessian {
        bytes = bytes.saturating_add(n.saturating_mul(n).saturating_mul(8 * 3));
    }
    bytes
}

/// Refuses a task that needs more than `budget` bytes (none: unknown, so
/// nothing is refused).
pub fn check(params: &TaskParams, budget: Option<u64>) -> Result<(), TaskError> {
    let needed = needed(params);
    match budget {
        Some(budget) if needed > budget => Err(TaskError::TooLarge { needed, budget }),
        _ => Ok(()),
    }
}

/// The values one example produces on its way through the net: its input
/// and every layer's output (before pooling, the larger).
fn units(shape: &ModelShape) -> u64 {
    match shape {
        ModelShape::Mlp {
            input,
            hidden,
            output,
        } => input + hidden.iter().sum::<u64>() + output,
        ModelShape::Cnn {
            in_channels,
            image_size,
            convs,
            fc,
            output,
            ..
        } => {
            let mut side = *image_size;
            let mut total = in_channels * side * side;
            for channels in convs {
                total += channels * side * side;
                side /= 2;
            }
            total + fc.iter().sum::<u64>() + output
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_spec::planner;

    fn params(model: &str, extra: &str) -> TaskParams {
        let spec = format!(
            "name = \"m\"\nexperiment = \"classify\"\ndataset = \"mnist\"\nmodel = {model}\n\
             train = {{ lr = 1e-3, epochs = 1, batch_size = 64 }}\n{extra}"
        );
        let plan = planner::submission(&spec).unwrap().plan;
        plan.tasks[0].params.clone()
    }

    #[test]
    fn the_report_models_fit_a_small_machine_and_a_huge_one_does_not() {
        let dnn1 = params(
            r#"{ kind = "mlp", hidden = [100, 200, 200, 200, 200, 200, 100] }"#,
            "",
        );
        // 280,610 parameters: 5.6 MB of weights and friends, 1000 rows of
        // 784 + 1,200 + 10 values for the evaluation.
        assert_eq!(needed(&dnn1), 280_610 * 20 + 1000 * 1994 * 12);
        assert!(check(&dnn1, Some(1 << 30)).is_ok());
        let huge = params(r#"{ kind = "mlp", hidden = [40000, 20000] }"#, "");
        let err = check(&huge, Some(1 << 30)).unwrap_err();
        assert!(!err.retryable());
        assert!(
            err.to_string().contains("more than this worker allows"),
            "{err}"
        );
        assert!(
            check(&huge, None).is_ok(),
            "an unknown budget refuses nothing"
        );
    }

    #[test]
    fn a_cnns_activations_count_every_stage() {
        let cnn = params(r#"{ kind = "cnn", convs = [16, 36], fc = [128] }"#, "");
        let units = 784 + 16 * 784 + 36 * 196 + 128 + 10;
        assert_eq!(needed(&cnn), 242_062 * 20 + 1000 * units * 12);
    }
}
