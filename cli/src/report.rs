//! `sweep report`: the report's rows ([`sweep_report::table`]) for a sweep,
//! and `sweep compare`: its settings against each other
//! ([`sweep_report::compare`]), read directly or through the coordinator.

use sweep_proto::{Results, SweepRef, TaskState};
use sweep_report::compare::{Question, compare as settle};
use sweep_report::stats::Interval;
use sweep_report::table::{Layout, listing};

use crate::args::Format;
use crate::output::Print;

pub async fn report(
    source: &dyn Results,
    which: &SweepRef,
    interval: Interval,
    format: Format,
) -> anyhow::Result<()> {
    let sweep = source.sweep(which).await?;
    let rows = source.aggregate(sweep.id).await?;
    anyhow::ensure!(!rows.is_empty(), "sweep {} has no tasks", sweep.id);
    let layout = match format {
        Format::Table => Layout::Table(interval),
        Format::Csv | Format::Json => Layout::Full,
    };
    listing(&rows, layout).print(format)
}

pub async fn compare(
    source: &dyn Results,
    which: &SweepRef,
    question: &Question,
    format: Format,
) -> anyhow::Result<()> {
    let sweep = source.sweep(which).await?;
    let tasks = source.tasks(sweep.id, &[TaskState::Succeeded]).await?;
    anyhow::ensure!(
        !tasks.is_empty(),
        "sweep {} has no succeeded tasks",
        sweep.id
    );
    let comparison = settle(&tasks, question)?;
    comparison.listing(format == Format::Table).print(format)
}
