//! The coordinator's errors, and their one conversion to the wire.

use sweep_proto::{ErrorKind, TaskId, TaskState, WireError};
use sweep_spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("task {task}: the lease token is not the task's current lease (the task is {state})")]
    StaleLease { task: TaskId, state: TaskState },
    #[error("{0}")]
    Precondition(String),
    #[error("artifact {name:?} is over the size cap of {cap} bytes")]
    ArtifactTooLarge { name: String, cap: u64 },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "it holds no sweep database (no schema; a coordinator creates one when it first starts on it)"
    )]
    NoSchema,
    #[error("{}", schema_advice(*found, *expected))]
    SchemaVersion { found: i64, expected: i64 },
    #[error("unreadable row: {0}")]
    Corrupt(String),
    #[error("gRPC server: {0}")]
    Server(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One line naming both schema versions and what to run.
fn schema_advice(found: i64, expected: i64) -> String {
    let versions = format!("the database's schema is version {found}, this binary's is {expected}");
    if found < expected {
        format!(
            "{versions}: migrate it with `sweep-coordinator migrate --database-url URL` (a coordinator of this version also migrates it when it starts)"
        )
    } else {
        format!(
            "{versions}: the database was migrated by a newer version; use a `sweep` of that version"
        )
    }
}

/// Every database error is counted where it is made (see
/// `crate::metrics`).
impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        crate::metrics::DATABASE_ERRORS.inc();
        Self::Database(err)
    }
}

impl Error {
    pub fn not_found(what: &'static str, id: impl std::fmt::Display) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Spec(_) | Self::InvalidRequest(_) => ErrorKind::InvalidArgument,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::StaleLease { .. }
            | Self::Precondition(_)
            | Self::NoSchema
            | Self::SchemaVersion { .. } => ErrorKind::FailedPrecondition,
            Self::ArtifactTooLarge { .. } => ErrorKind::ResourceExhausted,
            err if err.is_transient() => ErrorKind::Unavailable,
            Self::Database(_) | Self::Migrate(_) | Self::Corrupt(_) | Self::Server(_) => {
                ErrorKind::Internal
            }
        }
    }
}

impl Error {
    /// Whether the same call may succeed later: the database is away or
    /// restarting, or it turned the transaction down for a race.
    pub fn is_transient(&self) -> bool {
        let Self::Database(err) = self else {
            return false;
        };
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
            _ => false,
        }
    }
}

/// PostgreSQL SQLSTATEs that pass: connection exceptions (class 08), the
/// server shutting down or starting (57P01-57P03), serialization failures
/// and deadlocks (40001, 40P01), too many connections (53300); and SQLite's
/// busy and locked (5, 6).
fn transient_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "53300" | "5" | "6"
        )
}

/// The one conversion to the wire. The database's own words (table names,
/// constraint names, the server's messages) stay in the coordinator's log;
/// a client learns only that the database failed or is away.
impl From<Error> for WireError {
    fn from(err: Error) -> Self {
        let kind = err.kind();
        let message = match &err {
            Error::Database(_) | Error::Migrate(_) | Error::Corrupt(_) | Error::Server(_) => {
                if kind == ErrorKind::Unavailable {
                    tracing::warn!(error = %err, "request failed: database unavailable");
                    "the coordinator's database is unavailable; try again".to_string()
                } else {
                    tracing::error!(error = %err, "request failed");
                    "the coordinator's database failed; its log has the details".to_string()
                }
            }
            _ => err.to_string(),
        };
        WireError::new(kind, message)
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        WireError::from(err).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarting_database_is_away_not_broken() {
        for code in ["57P01", "57P03", "08006", "40001", "40P01"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22021"] {
            assert!(!transient_code(code), "{code}");
        }
        let away = Error::Database(sqlx::Error::PoolTimedOut);
        assert_eq!(WireError::from(away).kind, ErrorKind::Unavailable);
        let missing = Error::not_found("sweep", 3);
        assert!(!missing.is_transient());
    }
}
