//! Bad requests: clear codes, short whole messages, nothing stored, and no
//! database words leaking out.

use crate::common::*;
use crate::helpers::*;
use sweep_coordinator::Config;
use sweep_proto::v1::{self};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_codes_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, mut sweeps) = server.clients().await;

    let bad_spec = SPEC.replace("batch_size = 64", "batch_size = 0");
    let err = sweeps
        .submit(v1::SubmitRequest {
            spec_toml: bad_spec,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("train.batch_size = 0"),
        "{}",
        err.message()
    );
    let listed = sweeps
        .list(v1::ListSweepsRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.sweeps.is_empty(),
        "nothing is queued from an invalid spec"
    );

    for sweep_id in [0, 77, u64::MAX] {
        let request = v1::GetSweepRequest {
            sweep_id,
            name: String::new(),
        };
        let err = sweeps.get(request).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "sweep {sweep_id}");
    }
    let request = v1::GetSweepRequest {
        sweep_id: 1,
        name: "nobody".into(),
    };
    let err = sweeps.get(request).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), r#"sweep "nobody" not found"#);
    let request = v1::ListTasksRequest {
        sweep_id: 1,
        states: vec![],
        limit: 10,
        page_token: "next, please".into(),
        order: 0,
    };
    let err = sweeps.list_tasks(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let request = v1::ListTasksRequest {
        sweep_id: 1,
        order: 42,
        ..Default::default()
    };
    let err = sweeps.list_tasks(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("task order 42"), "{}", err.message());
    let err = workers.lease(lease_request(999, 1, 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let (_, worker) = submit_and_register(&mut workers, &mut sweeps).await;
    let lease = workers
        .lease(lease_request(worker, 1, 0))
        .await
        .unwrap()
        .into_inner()
        .leases
        .remove(0);

    // A stale token is refused and changes nothing.
    let mut stale = lease.clone();
    stale.lease_token = "stale".into();
    let completion = v1::Completion {
        lease: lease_ref(&stale),
        summary_json: String::new(),
        points: Vec::new(),
    };
    let err = complete(&mut workers, worker, completion)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = workers
        .report_metrics(futures::stream::iter(vec![metric_batch(&stale, 0..3)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Over the cap (1 MiB in this test) is RESOURCE_EXHAUSTED.
    let chunks = vec![vec![0u8; 600 << 10], vec![0u8; 600 << 10]];
    let err = workers
        .put_artifact(futures::stream::iter(upload(
            &lease,
            "weights/final",
            chunks,
        )))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let err = workers
        .get_artifact(v1::GetArtifactRequest {
            task_id: lease.task_id,
            name: "weights/final".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let completion = v1::Completion {
        lease: lease_ref(&lease),
        summary_json: "[1, 2]".into(),
        points: Vec::new(),
    };
    let err = complete(&mut workers, worker, completion)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let diverged = v1::MetricPoint {
        name: "train_loss".into(),
        step: 9,
        epoch: None,
        value: f64::NAN,
    };
    let completion = v1::Completion {
        lease: lease_ref(&lease),
        summary_json: "{}".into(),
        points: vec![diverged],
    };
    let err = complete(&mut workers, worker, completion)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("train_loss"), "{}", err.message());
    // The real lease still works after all that.
    let completion = v1::Completion {
        lease: lease_ref(&lease),
        summary_json: "{}".into(),
        points: Vec::new(),
    };
    complete(&mut workers, worker, completion).await.unwrap();
    server.stop().await;
}

/// A spec whose grid has 4,000 seeds on one line, one of them `bad`.
fn long_line_spec(bad: &str) -> String {
    let mut seeds: Vec<String> = (0..4000).map(|s| s.to_string()).collect();
    seeds[2500] = bad.to_string();
    SPEC.replace("seed = [0, 1]", &format!("seed = [{}]", seeds.join(", ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_on_a_long_line_comes_back_whole_and_short() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (_, mut sweeps) = server.clients().await;
    let batches = vec!["64"; 4000].join(", ");
    let full_batch = format!(
        "name = \"fit\"\nexperiment = \"fit\"\nmodel = {{ kind = \"mlp\", hidden = [4] }}\n\
         train = {{ lr = 1e-3, steps = 5 }}\n[grid]\nbatch_size = [{batches}]\n"
    );
    let cases = [
        // The TOML parser's message quotes the line it failed on.
        (long_line_spec("\"x\""), vec!["\"x\"", "line 8"]),
        // The planner names the field and the value.
        (long_line_spec("-3"), vec!["grid.seed = -3", "not negative"]),
        // ... and the value may be a whole axis.
        (full_batch, vec!["grid.batch_size = [64, 64", "full batch"]),
    ];
    for (spec, parts) in cases {
        assert!(spec.len() > 15_000);
        let err = sweeps
            .submit(v1::SubmitRequest {
                spec_toml: spec,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(err.message().len() <= 1024, "{} bytes", err.message().len());
        for part in parts {
            assert!(
                err.message().contains(part),
                "{:?} lacks {part:?}",
                err.message()
            );
        }
    }
    // A message over the limit both sides keep is refused before it is read.
    let huge = format!("{SPEC}# {}\n", "x".repeat(sweep_proto::MAX_MESSAGE_BYTES));
    let err = sweeps
        .submit(v1::SubmitRequest {
            spec_toml: huge,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_outside_is_checked_and_database_errors_stay_inside() {
    // PostgreSQL, which cannot store a NUL byte at all.
    let db = TestDb::postgres().await;
    let server = Server::start(Config::new(db.url.clone())).await;
    let (mut workers, mut sweeps) = server.clients().await;
    let nul_name = SPEC.replace("name = \"grpc\"", "name = \"a\\u0000b\"");
    let request = v1::SubmitRequest {
        spec_toml: nul_name,
        ..Default::default()
    };
    let err = sweeps.submit(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("invalid spec: name = \"a\\0b\": control"),
        "{}",
        err.message()
    );
    let mut bad_worker = register_request();
    bad_worker.name = "w\0".into();
    let err = workers.register(bad_worker).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("worker name"),
        "{}",
        err.message()
    );

    let worker = workers
        .register(register_request())
        .await
        .unwrap()
        .into_inner();
    let request = v1::SubmitRequest {
        spec_toml: SPEC.into(),
        ..Default::default()
    };
    let submitted = sweeps.submit(request).await.unwrap().into_inner();
    let leases = workers
        .lease(lease_request(worker.worker_id, 2, 0))
        .await
        .unwrap()
        .into_inner()
        .leases;
    let mut batch = metric_batch(&leases[0], 0..1);
    batch.points[0].name = "loss\0".into();
    let err = workers
        .report_metrics(futures::stream::iter([batch]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let fail = v1::FailRequest {
        lease: lease_ref(&leases[0]),
        error: "diverged\0 at step 3".into(),
        retryable: false,
    };
    workers.fail(fail).await.unwrap();
    let request = v1::ListTasksRequest {
        sweep_id: submitted.sweep_id,
        states: vec![v1::TaskState::Failed as i32],
        ..Default::default()
    };
    let failed = sweeps.list_tasks(request).await.unwrap().into_inner().tasks;
    assert_eq!(
        failed[0].error, "diverged\u{fffd} at step 3",
        "kept, cleaned"
    );

    // The database fails under the coordinator: the client learns that much,
    // not the database's own words.
    db.execute("DROP TABLE metrics").await;
    let batch = metric_batch(&leases[1], 0..1);
    let err = workers
        .report_metrics(futures::stream::iter([batch]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(
        err.message(),
        "the coordinator's database failed; its log has the details"
    );
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_over_the_coordinators_parameter_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.max_params = 12_000;
    let server = Server::start(config).await;
    let (_, mut sweeps) = server.clients().await;
    let request = v1::SubmitRequest {
        spec_toml: SPEC.into(),
        ..Default::default()
    };
    let err = sweeps.submit(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // 784-16-10: 784·16 + 16 + 16·10 + 10 parameters.
    assert!(
        err.message()
            .contains("12730 parameters, more than the 12000"),
        "{}",
        err.message()
    );
    server.stop().await;
}
