//! `sweep export`: every metric point of a sweep with the parameters that
//! tell its tasks apart, as CSV or JSON Lines, written as it is read.

use std::io::Write;

use serde_json::{Value, json};
use sweep_coordinator::store::Store;
use sweep_proto::SweepId;
use sweep_proto::params::TaskParams;

use crate::args::ExportFormat;

const COLUMNS: &[&str] = &[
    "task_id",
    "model",
    "params",
    "batch_size",
    "lr",
    "seed",
    "attempt",
    "metric",
    "step",
    "epoch",
    "value",
];

pub async fn export(
    store: &dyn Store,
    sweep: u64,
    format: ExportFormat,
    out: impl Write,
) -> anyhow::Result<()> {
    let tasks = store.tasks(SweepId(sweep as i64), &[]).await?;
    let mut out = Rows::new(format, out)?;
    for task in tasks {
        let params: TaskParams = serde_json::from_str(&task.params)?;
        for metric in store.metrics(task.id).await? {
            out.write(&[
                json!(task.id.0),
                json!(params.model_name),
                json!(params.param_count),
                json!(params.batch_size),
                json!(params.lr),
                json!(params.seed),
                json!(metric.attempt),
                json!(metric.point.name),
                json!(metric.point.step),
                json!(metric.point.epoch),
                json!(metric.point.value),
            ])?;
        }
    }
    out.finish()
}

enum Rows<W: Write> {
    Csv(Box<csv::Writer<W>>),
    JsonLines(W),
}

impl<W: Write> Rows<W> {
    fn new(format: ExportFormat, out: W) -> anyhow::Result<Self> {
        Ok(match format {
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(COLUMNS)?;
                Self::Csv(Box::new(writer))
            }
            ExportFormat::Json => Self::JsonLines(out),
        })
    }

    fn write(&mut self, row: &[Value]) -> anyhow::Result<()> {
        match self {
            Self::Csv(writer) => writer.write_record(row.iter().map(crate::output::text))?,
            Self::JsonLines(out) => {
                let object: serde_json::Map<String, Value> = COLUMNS
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
            Self::JsonLines(mut out) => out.flush()?,
        }
        Ok(())
    }
}
