//! The read RPCs of the `Sweeps` service: a sweep's report, a task's metric
//! points and its artifacts, for clients that have the coordinator's address
//! and token but not the database's. Each answer is read from the store as
//! the direct reader reads it and sent in pages, so no message nears the
//! size limit however large the sweep.

use std::sync::Arc;

use sweep_proto::v1;
use sweep_proto::{SweepRef, TaskId};
use tonic::Status;

use super::{DownloadStream, Replies, download};
use crate::store::Store;

/// Settings per report page (a setting is about 1 KB).
const SETTINGS_PAGE: usize = 500;
/// Metric points per page (about 40 bytes each).
const METRICS_PAGE: usize = 10_000;

pub(super) type ReportStream = Replies<v1::ReportPage>;
pub(super) type MetricStream = Replies<v1::MetricPage>;

/// The report of the sweep `which`, a page of settings at a time.
pub(super) async fn report(
    store: &Arc<dyn Store>,
    which: &SweepRef,
) -> Result<ReportStream, Status> {
    let sweep = store.sweep(which).await?;
    let settings = store.aggregate(sweep.id).await?;
    let pages: Vec<_> = settings
        .chunks(SETTINGS_PAGE)
        .map(|page| {
            Ok(v1::ReportPage {
                settings: page.iter().map(v1::SettingStats::from).collect(),
            })
        })
        .collect();
    Ok(Box::pin(futures::stream::iter(pages)))
}

/// The metric points of the task's latest attempt, a page at a time.
pub(super) async fn metrics(store: &Arc<dyn Store>, task: TaskId) -> Result<MetricStream, Status> {
    let metrics = store.metrics(task).await?;
    let pages: Vec<_> = metrics
        .chunks(METRICS_PAGE)
        .map(|page| {
            Ok(v1::MetricPage {
                metrics: page.iter().cloned().map(v1::Metric::from).collect(),
            })
        })
        .collect();
    Ok(Box::pin(futures::stream::iter(pages)))
}

/// One artifact of the task's latest attempt.
pub(super) async fn artifact(
    store: &Arc<dyn Store>,
    task: TaskId,
    name: &str,
) -> Result<DownloadStream, Status> {
    let artifact = store.artifact(task, name).await?;
    Ok(download(&artifact))
}
