//! The read path (`store::reader`): what `sweep report`, `plot` and `export` open
//! with a database URL. It reads what the store wrote, writes nothing (not
//! even a schema into an empty database), works with `SELECT` grants only,
//! and names both versions when the schema is not the binary's.

use sqlx::{AnyConnection, Connection, Executor, PgConnection};
use sweep_coordinator::error::Error;
use sweep_coordinator::store::{NewArtifact, reader};
use sweep_proto::{ErrorKind, SweepRef};

use crate::common::*;
use crate::helpers::*;

/// A sweep with one succeeded task (a summary, points and an artifact) and
/// one still queued.
async fn finished_task(db: &TestDb) -> sweep_proto::SweepId {
    let store = &db.store;
    let id = submit(store, &classify_spec("read", 2, "")).await;
    let w = worker(store, "w").await;
    let lease = lease_one(store, w, TTL).await;
    let artifact = NewArtifact {
        name: "weights".into(),
        encoding: "raw".into(),
        data: vec![1, 2, 3],
    };
    store.put_artifact(&lease.to_ref(), artifact).await.unwrap();
    let points = [point("loss", 1, 0.5), point("loss", 2, 0.25)];
    store
        .complete(&lease.to_ref(), &summary(&[("test_acc", 0.75)]), &points)
        .await
        .unwrap();
    id
}

async fn a_reader_reads_what_the_store_wrote(db: &mut TestDb) {
    let id = finished_task(db).await;
    let reader = reader::open(&db.url).await.unwrap();
    let which = SweepRef::from(id);
    assert_eq!(
        reader.sweep(&which).await.unwrap(),
        db.store.sweep(&which).await.unwrap()
    );
    assert_eq!(
        reader.aggregate(id).await.unwrap(),
        db.store.aggregate(id).await.unwrap()
    );
    let tasks = reader.tasks(id, &[]).await.unwrap();
    assert_eq!(tasks, db.store.tasks(id, &[]).await.unwrap());
    let done = tasks.iter().find(|t| t.summary.is_some()).unwrap().id;
    assert_eq!(reader.metrics(done).await.unwrap().len(), 2);
    assert_eq!(
        reader.artifact(done, "weights").await.unwrap().data,
        vec![1, 2, 3]
    );
    let listed = reader.artifacts(done).await.unwrap();
    let listed: Vec<(&str, &str, u64)> = listed
        .iter()
        .map(|a| (a.name.as_str(), a.encoding.as_str(), a.size))
        .collect();
    assert_eq!(listed, [("weights", "raw", 3)]);
    let queued = tasks.iter().find(|t| t.summary.is_none()).unwrap().id;
    assert!(reader.artifacts(queued).await.unwrap().is_empty());
    let unknown = reader.artifacts(sweep_proto::TaskId(999_999)).await;
    assert!(
        matches!(&unknown, Err(err) if err.kind == ErrorKind::NotFound),
        "{unknown:?}"
    );
}

async fn latest_version(db: &TestDb) -> i64 {
    let mut conn = AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn a_schema_at_another_version_is_named_with_both_versions(db: &mut TestDb) {
    let latest = latest_version(db).await;
    db.execute("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (999, 'from the future', TRUE, '', 0)")
        .await;
    let Err(ahead) = reader::open(&db.url).await else {
        panic!("a schema ahead of the binary was read");
    };
    assert!(
        matches!(ahead, Error::SchemaVersion { found: 999, expected } if expected == latest),
        "{ahead}"
    );
    assert!(ahead.to_string().contains("newer version"), "{ahead}");
    db.execute("DELETE FROM _sqlx_migrations WHERE version >= 999")
        .await;
    db.execute(&format!(
        "DELETE FROM _sqlx_migrations WHERE version = {latest}"
    ))
    .await;
    let Err(behind) = reader::open(&db.url).await else {
        panic!("a schema behind the binary was read");
    };
    let line = behind.to_string();
    assert!(
        line.contains(&format!("version {}", latest - 1))
            && line.contains(&format!("this binary's is {latest}"))
            && line.contains("sweep-coordinator migrate"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
}

crate::store_suite!(
    a_reader_reads_what_the_store_wrote,
    a_schema_at_another_version_is_named_with_both_versions,
);

/// A fresh PostgreSQL database, dropped at the end.
struct EmptyDatabase {
    name: String,
    url: String,
}

impl EmptyDatabase {
    async fn create() -> Self {
        let name = format!("sweep_test_empty_{}", std::process::id());
        let mut admin = PgConnection::connect(&postgres_admin_url()).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {name}");
        admin.execute(sqlx::AssertSqlSafe(drop)).await.unwrap();
        let create = format!("CREATE DATABASE {name}");
        admin.execute(sqlx::AssertSqlSafe(create)).await.unwrap();
        let admin_url = postgres_admin_url();
        let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
        Self { name, url }
    }

    async fn tables(&self) -> i64 {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }

    async fn drop(self) {
        let mut admin = PgConnection::connect(&postgres_admin_url()).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        admin.execute(sqlx::AssertSqlSafe(drop)).await.unwrap();
    }
}

#[tokio::test]
async fn an_empty_postgres_database_is_refused_and_left_empty() {
    let empty = EmptyDatabase::create().await;
    let Err(err) = reader::open(&empty.url).await else {
        panic!("an empty database was read");
    };
    assert!(matches!(err, Error::NoSchema), "{err}");
    assert!(err.to_string().contains("no sweep database"), "{err}");
    assert_eq!(empty.tables().await, 0, "the reader created tables");
    empty.drop().await;
}

#[tokio::test]
async fn an_empty_sqlite_file_is_refused_and_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let url = format!("sqlite://{}", path.display());
    let Err(err) = reader::open(&url).await else {
        panic!("an empty file was read");
    };
    assert!(matches!(err, Error::NoSchema), "{err}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_role_with_select_grants_only_reads_results() {
    let db = TestDb::postgres().await;
    let id = finished_task(&db).await;
    let role = format!("sweep_reader_{}", std::process::id());
    db.execute(&format!("DROP ROLE IF EXISTS {role}")).await;
    db.execute(&format!("CREATE ROLE {role} LOGIN")).await;
    db.execute(&format!("GRANT USAGE ON SCHEMA public TO {role}"))
        .await;
    db.execute(&format!(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
    ))
    .await;
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(url, db.url, "the test names the role in the URL");
    // Everything report, plot and export read.
    let reader = reader::open(&url).await.unwrap();
    assert_eq!(reader.aggregate(id).await.unwrap().len(), 1);
    let tasks = reader.tasks(id, &[]).await.unwrap();
    assert_eq!(tasks.len(), 2);
    let done = tasks.iter().find(|t| t.summary.is_some()).unwrap().id;
    assert_eq!(reader.metrics(done).await.unwrap().len(), 2);
    assert_eq!(reader.artifacts(done).await.unwrap().len(), 1);
    assert_eq!(
        reader.artifact(done, "weights").await.unwrap().data,
        [1, 2, 3]
    );
    db.execute(&format!("DROP OWNED BY {role}")).await;
    db.cleanup().await;
    let mut admin = PgConnection::connect(&postgres_admin_url()).await.unwrap();
    let drop = format!("DROP ROLE IF EXISTS {role}");
    admin.execute(sqlx::AssertSqlSafe(drop)).await.unwrap();
}
