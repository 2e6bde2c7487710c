//! The reaper: ends expired leases (see [`Store::reap_expired`]). Every
//! coordinator replica may run one; the store makes that safe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use sweep_proto::TaskState;

use crate::metrics::Metrics;
use crate::store::Store;

/// Reaps every `interval` until `stopping` turns true, counting each
/// expired attempt among the endings. A database error is logged and the
/// next round tries again: a coordinator outlives a database restart.
pub async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        match store.reap_expired().await {
            Ok(outcome) if !outcome.is_empty() => {
                for (tasks, state) in [
                    (&outcome.requeued, TaskState::Queued),
                    (&outcome.failed, TaskState::Failed),
                    (&outcome.cancelled, TaskState::Cancelled),
                ] {
                    tasks.iter().for_each(|_| metrics.ended(state));
                }
                tracing::info!(
                    requeued = outcome.requeued.len(),
                    failed = outcome.failed.len(),
                    cancelled = outcome.cancelled.len(),
                    "expired leases reaped"
                )
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "reaping expired leases failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}
