//! [`Listing`]: rows of named columns, the one shape every listing takes
//! before the cli prints it (table, CSV, JSON) or the dashboard renders it.

use serde_json::{Map, Value};

/// Rows of named columns. Cells are JSON values so that JSON output keeps
/// numbers as numbers.
#[derive(Debug, Default)]
pub struct Listing {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// A line for people under the table (what its cells mean); CSV and
    /// JSON, whose columns say it, leave it out.
    pub note: Option<String>,
}

impl Listing {
    pub fn new(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            note: None,
        }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The rows as an array of objects keyed by column.
    pub fn json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let object: Map<String, Value> = self
                        .columns
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect();
                    Value::Object(object)
                })
                .collect(),
        )
    }
}

/// A cell as text: strings bare, nothing as empty, numbers as JSON writes them.
pub fn text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
