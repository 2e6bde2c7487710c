//! What a task needs of its device's memory, estimated from its parameters
//! before anything is allocated, and the pool the tasks of one worker
//! reserve it from. An allocation the device cannot serve aborts the whole
//! process (Rust does not unwind from it), so a task too large for its
//! worker is refused first: the task fails, the worker lives. A task that
//! fits the device but not what its running neighbours leave waits for
//! them: slots pack small tasks onto a GPU without ever oversubscribing it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sweep_spec::{ExperimentKind, ModelShape, TaskParams};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::experiments::TaskError;

const MIB: u64 = 1 << 20;

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
    let fit = params.experiment.fit();
    let rows = match fit {
        Some(fit) => fit.points,
        None => params.batch_size.unwrap_or(1).max(EVAL_ROWS),
    };
    let mut bytes = n.saturating_mul(4 * 5);
    bytes = bytes.saturating_add(rows.saturating_mul(units).saturating_mul(4 * 3));
    if fit.is_some() {
        let f64_net = n.saturating_mul(8 * 4);
        let f64_activations = rows.saturating_mul(units).saturating_mul(8 * 3);
        bytes = bytes
            .saturating_add(f64_net)
            .saturating_add(f64_activations);
    }
    if params.kind() == ExperimentKind::Hessian {
        bytes = bytes.saturating_add(n.saturating_mul(n).saturating_mul(8 * 3));
    }
    bytes
}

/// The memory a worker's tasks share, counted in MiB.
#[derive(Clone, Debug)]
pub struct Pool {
    free: Arc<Semaphore>,
    total_mib: u32,
    total: u64,
}

/// A task's share of the pool, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    /// A pool of `bytes` (the device's memory, or `--max-memory-gib`).
    pub fn new(bytes: u64) -> Self {
        let total_mib = (bytes / MIB).clamp(1, u64::from(u32::MAX >> 3)) as u32;
        Self {
            free: Arc::new(Semaphore::new(total_mib as usize)),
            total_mib,
            total: bytes,
        }
    }

    /// Reserves what training `params` needs: at once if it is free, after
    /// running tasks end if not. Refuses a task larger than the whole pool,
    /// and gives up with [`TaskError::Stopped`] once `stop` is set.
    pub async fn reserve(
        &self,
        params: &TaskParams,
        stop: &AtomicBool,
    ) -> Result<Reservation, TaskError> {
        self.reserve_bytes(needed(params), stop).await
    }

    async fn reserve_bytes(
        &self,
        needed: u64,
        stop: &AtomicBool,
    ) -> Result<Reservation, TaskError> {
        let mib = needed.div_ceil(MIB).max(1);
        if mib > u64::from(self.total_mib) {
            return Err(TaskError::TooLarge {
                needed,
                budget: self.total,
            });
        }
        let mib = mib as u32;
        let mut waited = false;
        loop {
            if let Ok(permit) = self.free.clone().try_acquire_many_owned(mib) {
                return Ok(Reservation { _permit: permit });
            }
            if stop.load(Ordering::Relaxed) {
                return Err(TaskError::Stopped);
            }
            if !waited {
                tracing::info!(
                    needed_mib = mib,
                    free_mib = self.free.available_permits(),
                    "waiting for device memory"
                );
                waited = true;
            }
            // Polled rather than queued, so that a stop is seen while waiting.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
    fn the_report_models_are_small_and_a_huge_one_is_not() {
        let dnn1 = params(
            r#"{ kind = "mlp", hidden = [100, 200, 200, 200, 200, 200, 100] }"#,
            "",
        );
        // 280,610 parameters: 5.6 MB of weights and friends, 1000 rows of
        // 784 + 1,200 + 10 values for the evaluation.
        assert_eq!(needed(&dnn1), 280_610 * 20 + 1000 * 1994 * 12);
        let huge = params(r#"{ kind = "mlp", hidden = [40000, 20000] }"#, "");
        assert!(needed(&huge) > 16 << 30, "{}", needed(&huge));
    }

    #[tokio::test]
    async fn a_task_larger_than_the_pool_is_refused_at_once() {
        let pool = Pool::new(1 << 30);
        let huge = params(r#"{ kind = "mlp", hidden = [40000, 20000] }"#, "");
        let err = pool
            .reserve(&huge, &AtomicBool::new(false))
            .await
            .unwrap_err();
        assert!(!err.retryable());
        assert!(
            err.to_string().contains("more than this worker allows"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn tasks_pack_until_the_pool_is_full_then_wait_for_room() {
        let pool = Pool::new(100 * MIB);
        let go = AtomicBool::new(false);
        let first = pool.reserve_bytes(60 * MIB, &go).await.unwrap();
        let small = pool.reserve_bytes(40 * MIB, &go).await.unwrap();
        drop(small);
        // 60 + 60 > 100: the second waits until the first ends.
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.reserve_bytes(60 * MIB, &AtomicBool::new(false)).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiting.is_finished(),
            "it must wait while the memory is taken"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(
            matches!(second, Ok(Ok(Ok(_)))),
            "it gets the memory once freed"
        );
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait() {
        let pool = Pool::new(100 * MIB);
        let _held = pool
            .reserve_bytes(100 * MIB, &AtomicBool::new(false))
            .await
            .unwrap();
        let stop = AtomicBool::new(true);
        let err = pool.reserve_bytes(MIB, &stop).await.unwrap_err();
        assert!(matches!(err, TaskError::Stopped), "{err}");
    }

    #[test]
    fn a_cnns_activations_count_every_stage() {
        let cnn = params(r#"{ kind = "cnn", convs = [16, 36], fc = [128] }"#, "");
        let units = 784 + 16 * 784 + 36 * 196 + 128 + 10;
        assert_eq!(needed(&cnn), 242_062 * 20 + 1000 * units * 12);
    }
}
