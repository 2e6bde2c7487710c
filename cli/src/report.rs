//! `sweep report`: the report's rows ([`sweep_report::table`]) for a sweep,
//! and `sweep compare`: its settings against each other
//! ([`sweep_report::compare`]), read directly or through the coordinator.

use sweep_proto::{Results, Sweep, SweepRef, TaskState};
use sweep_report::Listing;
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
    with_seeds(listing(&rows, layout), &sweep).print(format)
}

/// The listing with, under a table, where the sweep's adaptive seeds stand
/// ("seeds: settled at n=7: ...").
fn with_seeds(mut listing: Listing, sweep: &Sweep) -> Listing {
    let notes = listing.note.take().into_iter().chain(sweep.seed_lines());
    let notes: Vec<String> = notes.collect();
    listing.note = (!notes.is_empty()).then(|| notes.join("\n"));
    listing
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
    with_seeds(comparison.listing(format == Format::Table), &sweep).print(format)
}
