//! Results through the coordinator: `sweep report`, `plot` and `export` with
//! an endpoint and the client token print and draw exactly what they do
//! reading the database directly, on SQLite and on PostgreSQL; the read RPCs
//! refuse the worker token.

use std::path::Path;

use sweep_proto::client::{Credentials, SweepsClient};
use sweep_proto::{Results, SweepId, SweepState, TaskId};
use sweep_tests::{Coordinator, EmptyPostgres, files, finished, read, sweep, worker};

/// Trained models with weight snapshots (the PCA paths), two batch sizes
/// with two seeds (curves, figures against batch size, the report's
/// spread), and interpolations between them: every kind of figure a
/// classify sweep has.
const SPEC: &str = r#"
name = "through"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 2, record_every = 2 }
classify = { snapshot_every = 1, train_subset = 256, test_subset = 128 }
[interpolate]
between = "batch_size"
alpha = { from = 0.0, to = 1.0, step = 0.5 }
[grid]
batch_size = [32, 64]
seed = [0, 1]
"#;

const CLIENT_TOKEN: &str = "r3ader";
const WORKER_TOKEN: &str = "w0rker";

/// A coordinator on `database` with both tokens, a worker, and the spec
/// trained to the end.
async fn trained(database: Option<&str>) -> (Coordinator, SweepId) {
    let coordinator = Coordinator::start_on(database, |config| {
        config.client_token = Some(CLIENT_TOKEN.into());
        config.worker_token = Some(WORKER_TOKEN.into());
    })
    .await;
    let client = connect(&coordinator.url, CLIENT_TOKEN).await;
    let (sweep, _) = client.submit(SPEC).await.unwrap();
    let url = coordinator.url.clone();
    let _worker = worker(&url, 2, &["--token", WORKER_TOKEN]);
    let done = finished(&client, sweep).await;
    assert_eq!(done.state, SweepState::Succeeded, "{done:?}");
    (coordinator, sweep)
}

async fn connect(url: &str, token: &str) -> SweepsClient {
    let credentials = Credentials {
        token: Some(token.into()),
        ca: None,
    };
    SweepsClient::connect(url, &credentials).await.unwrap()
}

/// Every read verb, in every format, prints the same bytes both ways.
async fn same_both_ways(coordinator: &Coordinator, sweep: SweepId) {
    let direct = ["--database-url", coordinator.database.as_str()];
    let remote = [
        "--endpoint",
        coordinator.url.as_str(),
        "--token",
        CLIENT_TOKEN,
    ];
    let id = sweep.to_string();
    for args in [
        vec!["report", id.as_str()],
        vec!["report", "through", "--format", "csv"],
        vec!["report", id.as_str(), "--format", "json"],
        vec!["export", id.as_str()],
        vec!["export", "through", "--format", "json"],
    ] {
        let (a, b) = (read(&args, &direct), read(&args, &remote));
        assert!(a.lines().count() > 2, "{args:?}: {a}");
        assert_eq!(a, b, "{args:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    for (format, (one, two)) in [("svg", ("a", "b")), ("png", ("c", "d"))] {
        let (one, two) = (dir.path().join(one), dir.path().join(two));
        let plot = |out: &Path, source: &[&str]| {
            let args = [
                "plot",
                &id,
                "--format",
                format,
                "--out",
                out.to_str().unwrap(),
            ];
            read(&args, source)
        };
        plot(&one, &direct);
        plot(&two, &remote);
        let (a, b) = (files(&one), files(&two));
        let names: Vec<&str> = a.iter().map(|(name, _)| name.as_str()).collect();
        for kind in ["batch-loss", "vs-batch-size", "interpolation", "pca"] {
            assert!(
                names.iter().any(|name| name.contains(kind)),
                "no {kind} figure in {names:?}"
            );
        }
        assert_eq!(a, b, "the {format} figures differ");
    }
}

/// The read RPCs are the client service's: the worker token, or none, is
/// refused; an unknown task or sweep is NOT_FOUND in one line.
async fn guarded(coordinator: &Coordinator, id: SweepId) {
    let as_worker = connect(&coordinator.url, WORKER_TOKEN).await;
    let refused = as_worker.aggregate(id).await.unwrap_err();
    assert_eq!(
        refused.kind,
        sweep_proto::ErrorKind::Unauthenticated,
        "{refused}"
    );
    let refused = as_worker.metrics(TaskId(1)).await.unwrap_err();
    assert_eq!(
        refused.kind,
        sweep_proto::ErrorKind::Unauthenticated,
        "{refused}"
    );
    let refused = as_worker.artifacts(TaskId(1)).await.unwrap_err();
    assert_eq!(
        refused.kind,
        sweep_proto::ErrorKind::Unauthenticated,
        "{refused}"
    );
    let refused = as_worker
        .artifact(TaskId(1), "weights/final")
        .await
        .unwrap_err();
    assert_eq!(
        refused.kind,
        sweep_proto::ErrorKind::Unauthenticated,
        "{refused}"
    );

    let client = connect(&coordinator.url, CLIENT_TOKEN).await;
    let missing = client.metrics(TaskId(999_999)).await.unwrap_err();
    assert_eq!(missing.kind, sweep_proto::ErrorKind::NotFound, "{missing}");
    // A trained task lists its snapshots and final weights, each the size
    // its download has.
    let task = client.tasks(id, &[]).await.unwrap()[0].id;
    let listed = client.artifacts(task).await.unwrap();
    assert!(listed.len() >= 3, "{listed:?}");
    for info in &listed {
        let artifact = client.artifact(task, &info.name).await.unwrap();
        assert_eq!(artifact.info(), *info);
    }
    let remote = [
        "--endpoint",
        coordinator.url.as_str(),
        "--token",
        CLIENT_TOKEN,
    ];
    let unknown: Vec<&str> = ["report", "nobody"]
        .iter()
        .chain(&remote)
        .copied()
        .collect();
    sweep_tests::assert_fails_with(&sweep(&unknown), "sweep \"nobody\" not found");
    let no_token = ["report", "1", "--endpoint", coordinator.url.as_str()];
    sweep_tests::assert_fails_with(&sweep(&no_token), "refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_the_coordinator_equal_direct_reads_on_sqlite() {
    let (mut coordinator, sweep) = trained(None).await;
    same_both_ways(&coordinator, sweep).await;
    guarded(&coordinator, sweep).await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_the_coordinator_equal_direct_reads_on_postgres() {
    let database = EmptyPostgres::create("sweep_results").await;
    let (mut coordinator, sweep) = trained(Some(&database.url)).await;
    same_both_ways(&coordinator, sweep).await;
    coordinator.stop().await;
    select_only_role_reads_the_same(&database, sweep).await;
    database.drop().await;
}

/// A role with `SELECT` grants only (and `USAGE` on the schema) runs every
/// read verb with `--database-url` and gets what the owner gets.
async fn select_only_role_reads_the_same(database: &EmptyPostgres, sweep: SweepId) {
    let role = format!("sweep_reader_{}", std::process::id());
    for sql in [
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        database.execute(&sql).await;
    }
    let reader_url = database.url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(reader_url, database.url, "the role is in the URL");
    let (owner, reader) = (
        ["--database-url", database.url.as_str()],
        ["--database-url", reader_url.as_str()],
    );
    let id = sweep.to_string();
    for args in [
        vec!["report", id.as_str(), "--format", "csv"],
        vec!["export", id.as_str()],
    ] {
        assert_eq!(read(&args, &owner), read(&args, &reader), "{args:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let plot = |name: &str, source: &[&str]| {
        let out = dir.path().join(name);
        read(&["plot", &id, "--out", out.to_str().unwrap()], source);
        files(&out)
    };
    assert_eq!(plot("owner", &owner), plot("reader", &reader));
    database.execute(&format!("DROP OWNED BY {role}")).await;
    database.drop_role(&role).await;
}
