//! Errors that survive the gRPC hop. The coordinator turns its errors into a
//! [`WireError`] in one place and from there into a `tonic::Status`; clients
//! turn a `Status` back into a [`WireError`] and print its message.

use std::fmt;

use tonic::{Code, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (a bad spec, a bad name): fix it, do not retry.
    InvalidArgument,
    /// The sweep, task, worker or artifact does not exist.
    NotFound,
    /// The lease named is not the task's current one, or the object is in a
    /// state that forbids the call.
    FailedPrecondition,
    /// An artifact or batch is over the coordinator's size cap.
    ResourceExhausted,
    /// A missing or wrong bearer token.
    Unauthenticated,
    /// The coordinator or its database is away; retry with backoff.
    Unavailable,
    /// A bug or an unexpected database error.
    Internal,
}

impl ErrorKind {
    pub fn code(self) -> Code {
        match self {
            Self::InvalidArgument => Code::InvalidArgument,
            Self::NotFound => Code::NotFound,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::ResourceExhausted => Code::ResourceExhausted,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::Unavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
        }
    }

    fn from_code(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::NotFound => Self::NotFound,
            Code::FailedPrecondition | Code::AlreadyExists => Self::FailedPrecondition,
            Code::ResourceExhausted => Self::ResourceExhausted,
            Code::Unauthenticated | Code::PermissionDenied => Self::Unauthenticated,
            // A coordinator never sends these: they come from a connection
            // cut mid-call or a race, and asking again may well succeed.
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::Unknown => Self::Unavailable,
            _ => Self::Internal,
        }
    }

    /// Whether the same call may succeed later without changing it.
    pub fn is_transient(self) -> bool {
        self == Self::Unavailable
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ErrorKind {
    pub const ALL: [Self; 7] = [
        Self::InvalidArgument,
        Self::NotFound,
        Self::FailedPrecondition,
        Self::ResourceExhausted,
        Self::Unauthenticated,
        Self::Unavailable,
        Self::Internal,
    ];
}

impl WireError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, format!("{} not found", what.into()))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The longest message a status carries, in bytes. It travels in an HTTP/2
/// header (percent-encoded, so up to three times longer), and a header over
/// the peer's limit (16 KiB by default) breaks the call instead of carrying
/// the error.
pub const MAX_MESSAGE: usize = 1024;

impl From<WireError> for Status {
    fn from(err: WireError) -> Self {
        Status::new(err.kind.code(), bounded(err.message))
    }
}

/// `message` cut to [`MAX_MESSAGE`] bytes at a character boundary.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// One task's refusal inside a batched call, as its status would say it.
impl From<WireError> for crate::v1::TaskError {
    fn from(err: WireError) -> Self {
        Self {
            code: err.kind.code() as i32,
            message: bounded(err.message),
        }
    }
}

impl From<crate::v1::TaskError> for WireError {
    fn from(err: crate::v1::TaskError) -> Self {
        Status::new(Code::from_i32(err.code), err.message).into()
    }
}

impl From<Status> for WireError {
    fn from(status: Status) -> Self {
        let kind = ErrorKind::from_code(status.code());
        let message = if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            status.message().to_string()
        };
        Self { kind, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_message_survive_a_batched_calls_task_error() {
        for kind in ErrorKind::ALL {
            let err = WireError::new(kind, "task 3: the lease token is stale");
            assert_eq!(
                WireError::from(crate::v1::TaskError::from(err.clone())),
                err
            );
        }
    }

    #[test]
    fn kind_and_message_survive_the_status_round_trip() {
        for kind in ErrorKind::ALL {
            let err = WireError::new(kind, "grid.seed: [] is empty");
            let back = WireError::from(Status::from(err.clone()));
            assert_eq!(back, err);
        }
    }

    #[test]
    fn long_messages_are_cut_to_fit_a_header() {
        let err = WireError::invalid("é".repeat(2000));
        let status = Status::from(err);
        assert!(status.message().len() <= MAX_MESSAGE);
        assert!(
            status.message().ends_with("é…"),
            "cut at a character boundary"
        );
        let short = Status::from(WireError::invalid("grid.seed = -3"));
        assert_eq!(short.message(), "grid.seed = -3");
    }

    #[test]
    fn a_cut_connection_is_worth_another_try_and_a_refusal_is_not() {
        for code in [
            Code::Unavailable,
            Code::Unknown,
            Code::Cancelled,
            Code::Aborted,
        ] {
            assert!(
                WireError::from(Status::new(code, "x")).kind.is_transient(),
                "{code:?}"
            );
        }
        for code in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::Internal,
        ] {
            assert!(
                !WireError::from(Status::new(code, "x")).kind.is_transient(),
                "{code:?}"
            );
        }
    }
}
