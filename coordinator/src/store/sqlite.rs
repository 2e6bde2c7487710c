//! The SQLite backend: one file, created on first use, the embedded default
//! for a one-machine run.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;

use super::migrations;
use super::signal::Signal;
use super::sql::{Dialect, SqlStore};
use crate::error::{Error, Result};

const DIALECT: Dialect = Dialect {
    now: "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    token: "lower(hex(randomblob(16)))",
    // One connection is one writer: nothing can change a row between a read
    // and the write after it, so no row locks are needed.
    lock: "",
    skip_locked: "",
    json_table,
    // SQLite's planner takes the queue's index without statistics: the
    // lease's cost is flat from 10^3 to 5 x 10^4 tasks.
    analyze_tasks: None,
};

/// SQLite has no typed JSON records: each column is read by its key, and
/// takes the JSON value's own type.
fn json_table(param: &str, alias: &str, columns: &[(&str, &str)]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(|(name, _)| format!("json_extract(value, '$.{name}') AS {name}"))
        .collect();
    format!(
        "(SELECT {} FROM json_each({param})) AS {alias}",
        columns.join(", ")
    )
}

/// The file a SQLite URL names.
pub(crate) fn path(url: &str) -> Result<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains(['?', '#']) {
        return Err(Error::InvalidRequest(format!(
            "sqlite path {path:?}: name a file, e.g. sqlite://sweeps.db"
        )));
    }
    Ok(path)
}

/// Opens (creating if needed) the SQLite file named by `url`
/// (`sqlite://PATH`, `sqlite:PATH` or a bare path) and applies
/// `migrations/sqlite`.
pub async fn open(url: &str) -> Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let path = path(url)?;
    // A single connection makes SQLite's one writer explicit: transactions
    // queue in the pool instead of failing with SQLITE_BUSY on lock upgrades.
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // In WAL mode NORMAL syncs at checkpoints, not at every commit: a
        // power cut may lose the last commits but never corrupts the file,
        // and a lost commit is a task that runs again (at-least-once).
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect(&format!("sqlite://{path}?mode=rwc"))
        .await?;
    // WAL lets other processes (the cli's report) read while we write.
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await?;
    migrations::migrator(migrations::SQLITE).run(&pool).await?;
    let store = SqlStore::new(pool, DIALECT, Signal::new());
    store.backfill_spec_keys().await?;
    store.backfill_keys().await?;
    Ok(store)
}

/// Opens the file to read results only (`mode=ro`): no migration, no
/// backfill (see [`super::Reader`]).
pub(super) async fn open_reader(path: &str) -> Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&format!("sqlite://{path}?mode=ro"))
        .await?;
    let has_table =
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";
    migrations::check(&pool, migrations::SQLITE, has_table).await?;
    Ok(SqlStore::new(pool, DIALECT, Signal::new()))
}
