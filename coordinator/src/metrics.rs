//! The coordinator's Prometheus metrics, served at `/metrics` on its gRPC
//! port (plain HTTP/1.1 there, as Prometheus scrapes). Tasks by state and
//! live workers are read from the store at each scrape, so every replica
//! reports the whole cluster; lease latency, ended tasks and database errors
//! are counted by this replica as they happen.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use sweep_proto::{TaskState, WireError, WorkerStatus};

use crate::store::Store;

/// Database errors of this process (any coordinator in it), counted where
/// they are made: see `crate::error`.
pub(crate) static DATABASE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "sweep_database_errors_total",
        "Database errors, passing (retried) or not",
    )
    .expect("a valid metric")
});

pub struct Metrics {
    registry: Registry,
    tasks: IntGaugeVec,
    workers: IntGauge,
    lease_seconds: Histogram,
    ended: IntCounterVec,
    completions: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let tasks = IntGaugeVec::new(
            Opts::new("sweep_tasks", "Tasks of every sweep by state"),
            &["state"],
        )
        .expect("a valid metric");
        let workers = IntGauge::new(
            "sweep_workers_alive",
            "Workers that heartbeated within a lease's time",
        )
        .expect("a valid metric");
        let lease_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sweep_lease_seconds",
                "Time of one claim of tasks in the store (not the long poll's wait)",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
            ]),
        )
        .expect("a valid metric");
        let ended = IntCounterVec::new(
            Opts::new(
                "sweep_task_endings_total",
                "Attempts ended through this coordinator, by the task's new state",
            ),
            &["state"],
        )
        .expect("a valid metric");
        let completions = IntCounterVec::new(
            Opts::new(
                "sweep_completions_total",
                "Tasks completed through this coordinator, by whether the lease \
                 call that carried the completion asked for tasks too (with_lease) \
                 or only completed (alone)",
            ),
            &["carried"],
        )
        .expect("a valid metric");
        let registry = Registry::new();
        for metric in [
            Box::new(tasks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(workers.clone()),
            Box::new(lease_seconds.clone()),
            Box::new(ended.clone()),
            Box::new(completions.clone()),
            Box::new(DATABASE_ERRORS.clone()),
        ] {
            registry.register(metric).expect("each metric once");
        }
        Self {
            registry,
            tasks,
            workers,
            lease_seconds,
            ended,
            completions,
        }
    }

    pub fn observe_lease(&self, took: Duration) {
        self.lease_seconds.observe(took.as_secs_f64());
    }

    /// An attempt ended and left its task in `state`.
    pub fn ended(&self, state: TaskState) {
        self.ended.with_label_values(&[state.as_str()]).inc();
    }

    /// A task completed, its completion carried by a lease call that asked
    /// for tasks too, or that only completed (`alone`).
    pub fn completed(&self, alone: bool) {
        self.ended(TaskState::Succeeded);
        let carried = if alone { "alone" } else { "with_lease" };
        self.completions.with_label_values(&[carried]).inc();
    }

    /// The text exposition, with the store's figures read now.
    pub async fn render(&self, store: &dyn Store) -> Result<String, WireError> {
        let counts = store.task_counts().await?;
        for state in TaskState::ALL {
            let n = counts.of(*state) as i64;
            self.tasks.with_label_values(&[state.as_str()]).set(n);
        }
        let workers = store.workers().await?;
        let alive = (workers.iter())
            .filter(|w| w.status == WorkerStatus::Live)
            .count();
        self.workers.set(alive as i64);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("metrics encode as text");
        Ok(String::from_utf8(out).expect("the text format is UTF-8"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `/metrics` route, as an axum router to serve beside the gRPC
/// services.
pub fn router(metrics: Arc<Metrics>, store: Arc<dyn Store>) -> axum::Router {
    let scrape = move || {
        let (metrics, store) = (metrics.clone(), store.clone());
        async move {
            match metrics.render(store.as_ref()).await {
                Ok(text) => (axum::http::StatusCode::OK, text),
                Err(err) => {
                    tracing::warn!(error = %err, "metrics scrape failed");
                    let status = axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    (
                        status,
                        "the coordinator's database is unavailable\n".to_string(),
                    )
                }
            }
        }
    };
    axum::Router::new().route("/metrics", axum::routing::get(scrape))
}
