//! The PostgreSQL backend, for a cluster: several coordinators may share one
//! database. Claims use `FOR UPDATE SKIP LOCKED`, fenced reads lock the task
//! row, and `NOTIFY` wakes the long polls of the other coordinators.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgListener;
use sqlx::{AnyPool, AssertSqlSafe};
use tokio::sync::watch;

use super::migrations;
use super::signal::Signal;
use super::sql::{Dialect, SqlStore};
use crate::error::Result;

const CHANNEL: &str = "sweep_changes";

/// Commits within this long of each other are announced with one `NOTIFY`.
/// One per commit cost about a tenth of the queue's throughput; this keeps
/// other coordinators at most this late, and usually not late at all.
const COALESCE: Duration = Duration::from_millis(50);

const DIALECT: Dialect = Dialect {
    now: "(extract(epoch from now()) * 1000)::bigint",
    token: "gen_random_uuid()::text",
    lock: " FOR UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    json_table,
    analyze_tasks: Some("ANALYZE tasks"),
};

fn json_table(param: &str, alias: &str, columns: &[(&str, &str)]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(|(name, kind)| format!("{name} {kind}"))
        .collect();
    format!(
        "json_to_recordset({param}::json) AS {alias}({})",
        columns.join(", ")
    )
}

/// Connects, applies `migrations/postgres`, and starts listening for changes
/// made by other coordinators and announcing its own.
pub async fn connect(url: &str) -> Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    migrations::migrator(migrations::POSTGRES)
        .run(&pool)
        .await?;
    // Names this store in its announcements, so that it can skip its own.
    let me: String = sqlx::query_scalar("SELECT gen_random_uuid()::text")
        .fetch_one(&pool)
        .await?;
    let (signal, announce) = (Signal::new(), Signal::new());
    let background = vec![
        tokio::spawn(listen(url.to_string(), me.clone(), signal.clone())),
        tokio::spawn(announce_changes(pool.clone(), me, announce.subscribe())),
    ];
    let store = SqlStore::new(pool, DIALECT, signal).with_peers(announce, background);
    store.backfill_spec_keys().await?;
    store.backfill_keys().await?;
    Ok(store)
}

/// Opens the database to read results only: no migration, no backfill, no
/// listener, and every transaction read-only (see [`super::Reader`]).
pub(super) async fn open_reader(url: &str) -> Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET default_transaction_read_only = on")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect(url)
        .await?;
    let has_table = "SELECT count(*) FROM pg_catalog.pg_tables \
                     WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'";
    migrations::check(&pool, migrations::POSTGRES, has_table).await?;
    Ok(SqlStore::new(pool, DIALECT, Signal::new()))
}

/// Turns other coordinators' notifications into bumps of the change
/// counter, reconnecting after a database restart. A missed notification
/// only delays a long poll until its next periodic look at the queue.
async fn listen(url: String, me: String, signal: Signal) {
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(err) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %err, "cannot listen for task changes");
                } else {
                    while let Ok(notification) = listener.recv().await {
                        if notification.payload() != me {
                            signal.bump();
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot connect the change listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Tells the other coordinators that tasks changed here: at once after a
/// quiet spell, then at most once per [`COALESCE`] while commits keep coming.
async fn announce_changes(pool: AnyPool, me: String, mut changes: watch::Receiver<u64>) {
    // `me` is a UUID that PostgreSQL made (hex digits and dashes), so it is
    // safe to write into the statement, which takes no parameters.
    let notify = format!("NOTIFY {CHANNEL}, '{me}'");
    while changes.changed().await.is_ok() {
        let notified = sqlx::query(AssertSqlSafe(notify.clone()))
            .execute(&pool)
            .await;
        if let Err(err) = notified {
            tracing::debug!(error = %err, "cannot announce task changes");
        }
        tokio::time::sleep(COALESCE).await;
    }
}
