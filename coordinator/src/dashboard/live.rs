//! `/events`: one server-sent event per change of the store, at most a few
//! a second, so an open page follows a sweep without reloading.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::watch;

use super::Dashboard;
use crate::store::Results;

/// The least time between two events: a sweep finishing a thousand tasks a
/// second should not make every page fetch itself a thousand times.
const SPACING: Duration = Duration::from_millis(500);

/// How often [`poll`] looks at a store that has no change signal.
const POLL: Duration = Duration::from_secs(2);

pub async fn events(
    State(d): State<Dashboard>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = d.changes.clone();
    let stream = futures::stream::unfold(changes, |mut changes| async move {
        changes.changed().await.ok()?;
        let seen = *changes.borrow_and_update();
        tokio::time::sleep(SPACING).await;
        let event = Event::default().event("change").data(seen.to_string());
        Some((Ok(event), changes))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A change signal for results read from outside (a database another
/// process writes, a coordinator's read RPCs): it moves whenever the task counts do, looked at every
/// [`POLL`], until every receiver is gone.
pub fn poll(results: Arc<dyn Results>) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0);
    tokio::spawn(async move {
        let mut last = None;
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            match results.task_counts().await {
                Ok(counts) if last.as_ref() != Some(&counts) => {
                    last = Some(counts);
                    tx.send_modify(|n| *n += 1);
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "dashboard poll failed"),
            }
        }
    });
    rx
}
