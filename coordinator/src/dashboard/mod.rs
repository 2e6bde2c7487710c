//! The web dashboard: server-rendered pages over the same read path as
//! `sweep report` ([`Results`], whose aggregation the report uses too),
//! served by the coordinator on its gRPC port (beside `/metrics`), by
//! `sweep dashboard` over a database opened read-only or over a
//! coordinator's read RPCs, and by `sweep run` while it runs.
//!
//! - [`pages`]: the sweeps list, a sweep (report table, figures, tasks), a
//!   task (parameters, metric curves, artifacts) and the workers, rendered
//!   with askama templates (`coordinator/templates/`, every value escaped);
//!   figures and curves are SVG images drawn by `sweep_report`.
//! - [`live`]: `/events`, a server-sent event whenever the store changes;
//!   the page's script (`coordinator/static/`) fetches the page again and
//!   swaps in what changed.
//! - [`actions`]: cancel and retry, only with the client token and only
//!   where the dashboard has a store that writes.
//! - [`view`]: the store's values as the pages show them.

mod actions;
mod live;
mod pages;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use sweep_proto::{ErrorKind, WireError};
use tokio::sync::watch;

use crate::error::Error;
use crate::store::{Results, SweepStore};

pub use live::poll;

/// What the dashboard reads, and what it may change.
#[derive(Clone)]
pub struct Dashboard {
    results: Arc<dyn Results>,
    /// Cancel and retry: none for a read-only dashboard.
    actions: Option<Actions>,
    /// Moves whenever the store changes.
    changes: watch::Receiver<u64>,
    figures: pages::FigureCache,
}

/// The store cancel and retry go to, and the client token they need (none:
/// the coordinator checks no token, and neither does the dashboard).
#[derive(Clone)]
pub struct Actions {
    pub sweeps: Arc<dyn SweepStore>,
    pub token: Option<String>,
}

impl Dashboard {
    pub fn new(
        results: Arc<dyn Results>,
        actions: Option<Actions>,
        changes: watch::Receiver<u64>,
    ) -> Self {
        Self {
            results,
            actions,
            changes,
            figures: pages::FigureCache::default(),
        }
    }
}

/// The dashboard's routes, to serve on their own or beside others.
pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(pages::sweeps))
        .route("/sweeps/{id}", get(pages::sweep))
        .route("/sweeps/{id}/figures", get(pages::figures))
        .route("/sweeps/{id}/figures/{file}", get(pages::figure))
        .route("/sweeps/{id}/cancel", post(actions::cancel))
        .route("/sweeps/{id}/retry", post(actions::retry))
        .route("/tasks/{id}", get(pages::task))
        .route("/tasks/{id}/metrics/{file}", get(pages::curve))
        .route("/tasks/{id}/artifacts/{*name}", get(pages::artifact))
        .route("/workers", get(pages::workers))
        .route("/events", get(live::events))
        .route("/static/dashboard.css", get(stylesheet))
        .route("/static/dashboard.js", get(script))
        .with_state(dashboard)
}

async fn stylesheet() -> impl IntoResponse {
    let css = include_str!("../../static/dashboard.css");
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css)
}

async fn script() -> impl IntoResponse {
    let js = include_str!("../../static/dashboard.js");
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        js,
    )
}

/// Why a page could not be shown; the one place errors become HTTP.
#[derive(Debug)]
pub enum PageError {
    NotFound(String),
    BadRequest(String),
    Forbidden(String),
    Failed(String),
}

/// By `error.rs`'s policy, as for a gRPC client: a database's own text
/// goes to the log, never to the page.
impl From<Error> for PageError {
    fn from(err: Error) -> Self {
        WireError::from(err).into()
    }
}

impl From<askama::Error> for PageError {
    fn from(err: askama::Error) -> Self {
        Self::Failed(format!("cannot render the page: {err}"))
    }
}

/// As a client sees it: the store's errors are converted once, where they
/// are made.
impl From<WireError> for PageError {
    fn from(WireError { kind, message }: WireError) -> Self {
        match kind {
            ErrorKind::NotFound => Self::NotFound(message),
            ErrorKind::InvalidArgument | ErrorKind::FailedPrecondition => Self::BadRequest(message),
            ErrorKind::Unauthenticated => Self::Forbidden(message),
            _ => Self::Failed(message),
        }
    }
}

impl From<sweep_report::Error> for PageError {
    fn from(err: sweep_report::Error) -> Self {
        match err {
            sweep_report::Error::Read(err) => err.into(),
            err => Self::Failed(err.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            Self::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, "Bad request", message),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "Refused", message),
            Self::Failed(message) => {
                tracing::warn!(error = %message, "dashboard page failed");
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                (status, "Something went wrong", message)
            }
        };
        let page = pages::ErrorPage { title, message };
        match askama::Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => status.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page showed the database's own error text, which can hold a
    /// row's contents or the server's address.
    #[test]
    fn a_database_failure_shows_no_database_text() {
        let err = Error::Corrupt("tasks row 7: params {\"secret\": 1}".into());
        let PageError::Failed(message) = PageError::from(err) else {
            panic!("a corrupt row is a failure");
        };
        assert!(!message.contains("secret"), "{message}");
        assert!(message.contains("its log has the details"), "{message}");
        let missing = PageError::from(Error::not_found("task", 7));
        assert!(
            matches!(&missing, PageError::NotFound(m) if m.contains("task 7")),
            "{missing:?}"
        );
    }
}
