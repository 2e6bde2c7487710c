//! Listings in the three formats every verb offers: an aligned table for
//! people, CSV and JSON (an array of objects) for scripts.

use std::io::Write;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, ContentArrangement};
pub use sweep_report::{Listing, text};

use crate::args::Format;

/// A [`Listing`] printed in the three formats.
pub trait Print {
    /// Writes the listing to stdout in `format`.
    fn print(&self, format: Format) -> anyhow::Result<()>;
    fn table(&self) -> String;
    fn csv(&self, out: impl Write) -> anyhow::Result<()>;
}

impl Print for Listing {
    fn print(&self, format: Format) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match format {
            Format::Table => {
                writeln!(out, "{}", self.table())?;
                if let Some(note) = &self.note {
                    writeln!(out, "{note}")?;
                }
            }
            Format::Csv => self.csv(&mut out)?,
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&self.json())?)?,
        }
        Ok(())
    }

    fn table(&self) -> String {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(&self.columns);
        for row in &self.rows {
            table.add_row(row.iter().map(|cell| {
                let aligned = comfy_table::Cell::new(text(cell));
                if cell.is_number() {
                    aligned.set_alignment(CellAlignment::Right)
                } else {
                    aligned
                }
            }));
        }
        table.to_string()
    }

    fn csv(&self, out: impl Write) -> anyhow::Result<()> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(&self.columns)?;
        for row in &self.rows {
            writer.write_record(row.iter().map(text))?;
        }
        writer.flush()?;
        Ok(())
    }
}

/// A time in milliseconds since the epoch as "how long ago".
pub fn ago(ms: i64, now_ms: i64) -> String {
    let seconds = (now_ms - ms).max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn listing() -> Listing {
        let mut listing = Listing::new(&["id", "name"]);
        listing.push(vec![json!(1), json!("deep, wide")]);
        listing.push(vec![json!(22), Value::Null]);
        listing
    }

    #[test]
    fn csv_quotes_and_keeps_empty_cells() {
        let mut out = Vec::new();
        listing().csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,name\n1,\"deep, wide\"\n22,\n"
        );
    }

    #[test]
    fn json_keeps_numbers_as_numbers() {
        assert_eq!(
            listing().json(),
            json!([{"id": 1, "name": "deep, wide"}, {"id": 22, "name": null}])
        );
    }

    #[test]
    fn tables_show_every_cell() {
        let table = listing().table();
        assert!(
            table.contains("deep, wide") && table.contains("22"),
            "{table}"
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(0, 5_000), "5s ago");
        assert_eq!(ago(0, 7_200_000), "2h ago");
    }
}
