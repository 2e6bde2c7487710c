//! The schema versions this binary knows, embedded at build time from
//! `migrations/` (see `build.rs`), and the migrator that applies them.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, SqlSafeStr};

use crate::error::{Error, Result};

/// One migration file: `VERSION_DESCRIPTION.sql`.
pub(super) struct Embedded {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The migrator for one database's migrations. Each migration is recorded
/// with the same version, description and checksum (SHA-384 of the file) as
/// sqlx's `migrate!` records, so databases it migrated stay valid.
pub(super) fn migrator(embedded: &[Embedded]) -> Migrator {
    Migrator::with_migrations(
        embedded
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    m.description.into(),
                    MigrationType::Simple,
                    AssertSqlSafe(m.sql).into_sql_str(),
                    m.sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

/// The schema version the embedded migrations end at.
pub(super) fn latest(embedded: &[Embedded]) -> i64 {
    embedded.last().map_or(0, |m| m.version)
}

/// Checks, reading only, that the database holds a sweep schema at this
/// binary's version: [`Error::NoSchema`] when it has no migrations table
/// (`has_table` counts it), [`Error::SchemaVersion`] when its last applied
/// migration is not this binary's last.
pub(super) async fn check(
    pool: &AnyPool,
    embedded: &[Embedded],
    has_table: &'static str,
) -> Result<()> {
    let tables: i64 = sqlx::query_scalar(has_table).fetch_one(pool).await?;
    if tables == 0 {
        return Err(Error::NoSchema);
    }
    let found: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    let (found, expected) = (found.unwrap_or(0), latest(embedded));
    if found == expected {
        Ok(())
    } else {
        Err(Error::SchemaVersion { found, expected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_is_embedded_in_order() {
        for (embedded, dir) in [(POSTGRES, "postgres"), (SQLITE, "sqlite")] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../migrations")
                .join(dir);
            let files = std::fs::read_dir(dir).unwrap().count();
            assert_eq!(embedded.len(), files);
            let versions: Vec<i64> = embedded.iter().map(|m| m.version).collect();
            let expected: Vec<i64> = (1..=files as i64).collect();
            assert_eq!(versions, expected);
        }
    }
}
