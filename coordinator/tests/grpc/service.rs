//! What an operator sees: Prometheus metrics, token scopes, health.

use crate::common::*;
use crate::helpers::*;
use sweep_proto::v1::coordinator_client::CoordinatorClient;
use sweep_proto::v1::sweeps_client::SweepsClient;
use sweep_proto::v1::{self};
use tonic::{Code, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_tasks_workers_leases_and_endings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let (mut workers, _, _, leases, worker) = both_tasks_leased(&server).await;
    let completion = v1::Completion {
        lease: lease_ref(&leases[0]),
        summary_json: "{}".into(),
        points: Vec::new(),
    };
    complete(&mut workers, worker, completion).await.unwrap();
    let fail = v1::FailRequest {
        lease: lease_ref(&leases[1]),
        error: "diverged".into(),
        retryable: false,
    };
    workers.fail(fail).await.unwrap();

    let text = http_get(server.addr, "/metrics").await;
    for line in [
        "sweep_tasks{state=\"succeeded\"} 1",
        "sweep_tasks{state=\"failed\"} 1",
        "sweep_tasks{state=\"queued\"} 0",
        "sweep_workers_alive 1",
        "sweep_lease_seconds_count 2",
        "sweep_task_endings_total{state=\"succeeded\"} 1",
        "sweep_task_endings_total{state=\"failed\"} 1",
        "sweep_completions_total{carried=\"alone\"} 1",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(text.contains("sweep_database_errors_total"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_each_service_and_health_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.worker_token = Some("worker-secret".into());
    config.client_token = Some("client-secret".into());
    let server = Server::start(config).await;
    let channel = server.channel().await;

    let err = SweepsClient::new(channel.clone())
        .list(v1::ListSweepsRequest { limit: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let with = |token: &'static str| {
        move |mut request: Request<()>| {
            let value = format!("Bearer {token}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
            Ok(request)
        }
    };
    let mut sweeps = SweepsClient::with_interceptor(channel.clone(), with("client-secret"));
    sweeps
        .list(v1::ListSweepsRequest { limit: 0 })
        .await
        .unwrap();
    // The client token does not open the worker service.
    let err = CoordinatorClient::with_interceptor(channel.clone(), with("client-secret"))
        .register(register_request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = CoordinatorClient::with_interceptor(channel.clone(), with("client-secret"))
        .lease(lease_request(1, 1, 0))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "a client token cannot lease"
    );
    CoordinatorClient::with_interceptor(channel.clone(), with("worker-secret"))
        .register(register_request())
        .await
        .unwrap();
    // Nor does the worker token open the client service: a worker cannot
    // submit, cancel or retry sweeps.
    let mut as_worker = SweepsClient::with_interceptor(channel.clone(), with("worker-secret"));
    let submit = v1::SubmitRequest {
        spec_toml: SPEC.into(),
        ..Default::default()
    };
    let refused = [
        as_worker.submit(submit).await.map(drop),
        as_worker
            .cancel(v1::CancelSweepRequest { sweep_id: 1 })
            .await
            .map(drop),
        as_worker
            .retry(v1::RetrySweepRequest { sweep_id: 1 })
            .await
            .map(drop),
    ];
    for err in refused {
        assert_eq!(err.unwrap_err().code(), Code::Unauthenticated);
    }

    // Reflection answers in both versions stock tools speak.
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(listed)) = answer.message_response else {
        panic!("not a list of services: {answer:?}");
    };
    let names: Vec<&str> = listed.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"sweep.v1.Sweeps"), "{names:?}");
    assert!(names.contains(&"sweep.v1.Coordinator"), "{names:?}");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "sweep.v1.Coordinator".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.stop().await;
}
