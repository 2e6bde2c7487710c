//! `sweep report`: the report's rows ([`sweep_report::table`]) for a sweep,
//! read directly or through the coordinator.

use sweep_proto::{Results, SweepRef};
use sweep_report::table::{Layout, listing};

use crate::args::Format;
use crate::output::Print;

pub async fn report(source: &dyn Results, which: &SweepRef, format: Format) -> anyhow::Result<()> {
    let sweep = source.sweep(which).await?;
    let rows = source.aggregate(sweep.id).await?;
    anyhow::ensure!(!rows.is_empty(), "sweep {} has no tasks", sweep.id);
    let layout = match format {
        Format::Table => Layout::Table,
        Format::Csv | Format::Json => Layout::Full,
    };
    listing(&rows, layout).print(format)
}
