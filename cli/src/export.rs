//! `sweep export`: every metric point of a sweep with the parameters that
//! tell its tasks apart, as CSV or JSON Lines, written as it is read.

use std::io::Write;

use serde_json::{Value, json};
use sweep_proto::{Results, SweepRef};

use crate::args::ExportFormat;
use sweep_report::columns;

/// The task, its identity columns, then the point.
fn header() -> Vec<&'static str> {
    let point = ["attempt", "metric", "step", "epoch", "value"];
    std::iter::once("task_id")
        .chain(columns::IDENTITY)
        .chain(point)
        .collect()
}

pub async fn export(
    source: &dyn Results,
    which: &SweepRef,
    format: ExportFormat,
    out: impl Write,
) -> anyhow::Result<()> {
    let sweep = source.sweep(which).await?;
    let tasks = source.tasks(sweep.id, &[]).await?;
    let mut out = Rows::new(format, out)?;
    for task in tasks {
        let identity = columns::identity(&task.params);
        for metric in source.metrics(task.id).await? {
            let mut row = vec![json!(task.id.0)];
            row.extend(identity.iter().cloned());
            row.extend([
                json!(metric.attempt),
                json!(metric.point.name),
                json!(metric.point.step),
                json!(metric.point.epoch),
                json!(metric.point.value),
            ]);
            out.write(&row)?;
        }
    }
    out.finish()
}

enum Rows<W: Write> {
    Csv(Box<csv::Writer<W>>),
    /// The writer and the keys of each line's object.
    JsonLines(W, Vec<&'static str>),
}

impl<W: Write> Rows<W> {
    fn new(format: ExportFormat, out: W) -> anyhow::Result<Self> {
        Ok(match format {
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(header())?;
                Self::Csv(Box::new(writer))
            }
            ExportFormat::Json => Self::JsonLines(out, header()),
        })
    }

    fn write(&mut self, row: &[Value]) -> anyhow::Result<()> {
        match self {
            Self::Csv(writer) => writer.write_record(row.iter().map(crate::output::text))?,
            Self::JsonLines(out, columns) => {
                let object: serde_json::Map<String, Value> = columns
                    .iter()
                    .map(|c| c.to_string())
                    .zip(row.iter().cloned())
                    .collect();
                writeln!(out, "{}", Value::Object(object))?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Self::Csv(mut writer) => writer.flush()?,
            Self::JsonLines(mut out, _) => out.flush()?,
        }
        Ok(())
    }
}
