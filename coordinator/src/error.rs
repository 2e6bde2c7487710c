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
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unreadable row: {0}")]
    Corrupt(String),
    #[error("gRPC server: {0}")]
    Server(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
            Self::StaleLease { .. } | Self::Precondition(_) => ErrorKind::FailedPrecondition,
            Self::ArtifactTooLarge { .. } => ErrorKind::ResourceExhausted,
            Self::Database(err) if is_transient(err) => ErrorKind::Unavailable,
            Self::Database(_) | Self::Migrate(_) | Self::Corrupt(_) | Self::Server(_) => {
                ErrorKind::Internal
            }
        }
    }
}

fn is_transient(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
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
