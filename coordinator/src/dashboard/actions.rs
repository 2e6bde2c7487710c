//! Cancel and retry from the sweep page. Each needs the client token in
//! the form (never in the URL), and a request from another site's page is
//! refused whatever it carries: a form any page can post must not cancel a
//! sweep because a browser happens to reach the dashboard.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::Redirect;
use serde::Deserialize;
use sweep_proto::SweepId;

use super::{Actions, Dashboard, PageError};
use crate::service::same_token;

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
}

pub async fn cancel(
    State(d): State<Dashboard>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Redirect, PageError> {
    let actions = allowed(&d, &headers, &form)?;
    let outcome = actions.sweeps.cancel_sweep(SweepId(id)).await?;
    tracing::info!(sweep = id, ?outcome, "sweep cancelled from the dashboard");
    Ok(Redirect::to(&format!("/sweeps/{id}")))
}

pub async fn retry(
    State(d): State<Dashboard>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Redirect, PageError> {
    let actions = allowed(&d, &headers, &form)?;
    let queued = actions.sweeps.retry_sweep(SweepId(id)).await?;
    tracing::info!(sweep = id, queued, "sweep retried from the dashboard");
    Ok(Redirect::to(&format!("/sweeps/{id}")))
}

/// The dashboard's actions, when this request may use them.
fn allowed<'a>(
    d: &'a Dashboard,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<&'a Actions, PageError> {
    let actions = (d.actions.as_ref())
        .ok_or_else(|| PageError::Forbidden("this dashboard is read-only".into()))?;
    if !same_origin(headers) {
        return Err(PageError::Forbidden(
            "the request came from another site's page".into(),
        ));
    }
    match &actions.token {
        Some(token) if !same_token(token.as_bytes(), form.token.as_bytes()) => Err(
            PageError::Forbidden("the client token is missing or wrong".into()),
        ),
        _ => Ok(actions),
    }
}

/// Whether the request's `Origin` (sent by browsers with every form post)
/// names the host it was sent to; a request without one is not a browser's
/// cross-site post.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    host.is_some() && origin_host == host
}
