//! What the store tests share: specs, a submission, summaries and points.

use std::sync::Arc;
use std::time::Duration;
use sweep_coordinator::error::Error;
use sweep_coordinator::store::*;
use sweep_proto::{
    Completion, ErrorKind, Lease, LeaseRef, MetricPoint, SweepId, WireError, WorkerId,
};
use sweep_spec::Summary;
use sweep_spec::planner::{self};

pub(crate) const TTL: Duration = Duration::from_secs(60);
pub(crate) const CPU: Capabilities = Capabilities { cuda: false };

pub(crate) fn classify_spec(name: &str, seeds: usize, extra: &str) -> String {
    let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
    format!(
        r#"
name = "{name}"
experiment = "classify"
dataset = "mnist"
model = {{ kind = "mlp", hidden = [16] }}
train = {{ lr = 1e-3, epochs = 1, batch_size = 64 }}
{extra}
[grid]
seed = [{}]
"#,
        seeds.join(", ")
    )
}

pub(crate) async fn submit(store: &Arc<dyn Store>, spec: &str) -> SweepId {
    let sweep = planner::submission(spec).expect("valid spec");
    store.create_sweep(&sweep).await.expect("create sweep")
}

pub(crate) async fn get_sweep(
    store: &Arc<dyn Store>,
    id: SweepId,
) -> Result<sweep_proto::Sweep, WireError> {
    store.sweep(&id.into()).await
}

pub(crate) fn summary(values: &[(&str, f64)]) -> Summary {
    values.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

pub(crate) async fn lease_one(store: &Arc<dyn Store>, worker: WorkerId, ttl: Duration) -> Lease {
    let mut leases = store
        .lease(worker.into(), &CPU, 1, ttl)
        .await
        .expect("lease");
    assert_eq!(leases.len(), 1, "expected one task to lease");
    leases.remove(0)
}

pub(crate) fn point(name: &str, step: i64, value: f64) -> MetricPoint {
    MetricPoint {
        name: name.into(),
        step,
        epoch: Some(0),
        value,
    }
}

pub(crate) fn assert_stale(result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(Error::StaleLease { .. }) => {}
        other => panic!("expected a stale-lease error, got {other:?}"),
    }
}

/// An error of the store's writes ([`Error`]) or of its reads (as a
/// client sees them, [`WireError`]) that says a thing does not exist.
pub(crate) trait NotFound: std::fmt::Debug {
    fn is_not_found(&self) -> bool;
}

impl NotFound for Error {
    fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

impl NotFound for WireError {
    fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

pub(crate) fn assert_not_found(result: Result<impl std::fmt::Debug, impl NotFound>) {
    match result {
        Err(err) if err.is_not_found() => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

pub(crate) const INTERPOLATE: &str = r#"
[interpolate]
between = "batch_size"
alpha = { from = 0.0, to = 1.0, step = 0.5 }
"#;

pub(crate) fn pair_spec(name: &str) -> String {
    format!(
        r#"
name = "{name}"
experiment = "classify"
dataset = "mnist"
model = {{ kind = "mlp", hidden = [16] }}
train = {{ lr = 1e-3, epochs = 1 }}
{INTERPOLATE}
[grid]
batch_size = [64, 1024]
"#
    )
}

/// [`QueueStore::complete_many`] for one task, as the tests use it.
#[async_trait::async_trait]
pub(crate) trait CompleteOne {
    async fn complete(
        &self,
        lease: &LeaseRef,
        summary: &Summary,
        points: &[MetricPoint],
    ) -> Result<(), Error>;
}

#[async_trait::async_trait]
impl<S: QueueStore + ?Sized> CompleteOne for S {
    async fn complete(
        &self,
        lease: &LeaseRef,
        summary: &Summary,
        points: &[MetricPoint],
    ) -> Result<(), Error> {
        let completion = Completion {
            lease: lease.clone(),
            summary: summary.clone(),
            points: points.to_vec(),
        };
        let mut outcomes = self.complete_many(&[completion]).await?;
        assert_eq!(outcomes.len(), 1, "one outcome per completion");
        outcomes.remove(0)
    }
}
