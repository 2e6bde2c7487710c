//! The PostgreSQL backend, for a cluster: several coordinators may share one
//! database. Claims use `FOR UPDATE SKIP LOCKED`, fenced reads lock the task
//! row, and `NOTIFY` wakes the long polls of every coordinator.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgListener;

use super::signal::Signal;
use super::sql::{Dialect, SqlStore};
use crate::error::Result;

const CHANNEL: &str = "sweep_changes";

const DIALECT: Dialect = Dialect {
    now: "(extract(epoch from now()) * 1000)::bigint",
    token: "gen_random_uuid()::text",
    lock: " FOR UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    notify: Some("NOTIFY sweep_changes"),
};

/// Connects, applies `migrations/postgres`, and starts listening for changes
/// made by other coordinators.
pub async fn connect(url: &str) -> Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    sqlx::migrate!("../migrations/postgres").run(&pool).await?;
    let signal = Signal::new();
    let listener = tokio::spawn(listen(url.to_string(), signal.clone()));
    let store = SqlStore::new(pool, DIALECT, signal).with_background(listener);
    store.backfill_spec_keys().await?;
    Ok(store)
}

/// Turns notifications into bumps of the change counter, reconnecting after
/// a database restart. A missed notification only delays a long poll until
/// its next periodic look at the queue.
async fn listen(url: String, signal: Signal) {
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(err) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %err, "cannot listen for task changes");
                } else {
                    while listener.recv().await.is_ok() {
                        signal.bump();
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot connect the change listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
