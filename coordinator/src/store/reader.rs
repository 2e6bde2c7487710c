//! [`open`]: a database opened only to read results, for `sweep report`,
//! `plot`, `export` and `dashboard` given a database URL. Opening it
//! migrates nothing, backfills nothing and listens for nothing; its
//! connections are read-only in the database itself (PostgreSQL
//! `default_transaction_read_only`, SQLite `mode=ro`), so a role with only
//! `SELECT` grants can read, and a reader pointed at the wrong database
//! leaves it as it was.

use std::sync::Arc;

use super::{Results, Retrying, postgres, sqlite, sqlite_file};
use crate::error::{Error, Result};

/// Opens the database `url` names to read, after checking that its schema
/// is the one this binary reads ([`Error::SchemaVersion`] if not,
/// [`Error::NoSchema`] if it holds no sweep database at all). A SQLite file
/// that does not exist is [`Error::NotFound`].
pub async fn open(url: &str) -> Result<Arc<dyn Results>> {
    let store = match sqlite_file(url)? {
        None => postgres::open_reader(url).await?,
        Some(path) if std::path::Path::new(path).exists() => sqlite::open_reader(path).await?,
        Some(path) => return Err(Error::not_found("database file", path)),
    };
    Ok(Arc::new(Retrying(store)))
}
