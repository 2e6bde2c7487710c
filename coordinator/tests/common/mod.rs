//! Test helpers: a real SQLite file or a fresh PostgreSQL database per test.
#![allow(dead_code)]

use std::sync::Arc;

use sqlx::{AnyConnection, Connection, Executor, PgConnection};
use sweep_coordinator::store::{self, Store};
use sweep_proto::{Device, Registration, WorkerId};

/// Where the tests find PostgreSQL (`SWEEP_TEST_POSTGRES_URL`, default the
/// local server with trust auth). The tests fail, not skip, without one.
pub fn postgres_admin_url() -> String {
    std::env::var("SWEEP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A store of one backend, alive for one test.
pub struct TestDb {
    pub url: String,
    pub store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    File(tempfile::TempDir),
    Database(String),
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("sweeps.db").display());
        let store = store::connect(&url).await.expect("open sqlite store");
        Self {
            url,
            store,
            cleanup: Cleanup::File(dir),
        }
    }

    pub async fn postgres() -> Self {
        let admin = postgres_admin_url();
        let name = format!("sweep_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|err| panic!("PostgreSQL at {admin} is needed: {err}"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let url = match admin.rfind('/') {
            Some(slash) => format!("{}/{name}", &admin[..slash]),
            None => panic!("cannot name a database in {admin}"),
        };
        let store = store::connect(&url).await.expect("connect postgres store");
        Self {
            url,
            store,
            cleanup: Cleanup::Database(name),
        }
    }

    /// Drops the store and opens it again, as a restarted coordinator would.
    pub async fn reopen(&mut self) {
        self.store = store::connect(&self.url).await.expect("reopen store");
    }

    /// Runs one statement on the database directly, as an operator would.
    pub async fn execute(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(&self.url).await.expect("connect");
        conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .expect("run the statement");
    }

    pub async fn cleanup(self) {
        drop(self.store);
        if let Cleanup::Database(name) = self.cleanup {
            let mut conn = PgConnection::connect(&postgres_admin_url())
                .await
                .expect("connect");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .expect("drop test database");
        }
    }
}

/// Runs each named async test function, `async fn name(db: &mut TestDb)`,
/// once against SQLite and once against PostgreSQL.
#[macro_export]
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let mut db = $crate::common::TestDb::sqlite().await;
                    super::$test(&mut db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let mut db = $crate::common::TestDb::postgres().await;
                    super::$test(&mut db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

/// Registers a worker with one CPU device and two slots.
pub async fn worker(store: &Arc<dyn Store>, name: &str) -> WorkerId {
    store
        .register_worker(&Registration {
            name: name.into(),
            host: "localhost".into(),
            backend: "flex".into(),
            devices: vec![Device {
                kind: "cpu".into(),
                name: "test cpu".into(),
                memory_bytes: 1 << 30,
            }],
            slots: 2,
            version: "test".into(),
        })
        .await
        .expect("register worker")
}
