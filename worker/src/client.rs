//! The connection to the coordinator: a lazily connecting channel with the
//! worker's bearer token, and retries with backoff for calls that fail
//! because the coordinator is away.

use std::future::Future;
use std::time::Duration;

use sweep_proto::bearer::Bearer;
use sweep_proto::v1::coordinator_client::CoordinatorClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

pub type Client = CoordinatorClient<InterceptedService<Channel, Bearer>>;

/// A client for `url`. It connects on first use and again after the
/// coordinator comes back, so it never fails here for a coordinator that is
/// down.
pub fn connect(url: &str, token: Option<&str>) -> Result<Client, String> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|err| format!("coordinator address {url:?}: {err}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    let bearer =
        Bearer::new(token).map_err(|err| format!("--token (SWEEP_WORKER_TOKEN): {err}"))?;
    Ok(
        CoordinatorClient::with_interceptor(endpoint.connect_lazy(), bearer)
            .max_decoding_message_size(64 << 20),
    )
}

/// Whether a failed call may succeed if made again unchanged.
pub fn transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
    )
}

/// Runs `call` until it succeeds or fails for a reason other than the
/// coordinator being away, waiting 100 ms, 200 ms, ... up to 5 s between tries.
pub async fn retry<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut wait = Duration::from_millis(100);
    loop {
        match call().await {
            Err(status) if transient(&status) => {
                tracing::debug!(error = %status.message(), wait_ms = wait.as_millis() as u64, "coordinator away; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Downloads a task's artifact whole, retrying while the coordinator is away.
pub async fn download(client: &Client, task_id: u64, name: &str) -> Result<Vec<u8>, Status> {
    use sweep_proto::v1::{GetArtifactRequest, artifact_download::Part};
    retry(|| {
        let mut client = client.clone();
        let request = GetArtifactRequest {
            task_id,
            name: name.to_string(),
        };
        async move {
            let mut parts = client.get_artifact(request).await?.into_inner();
            let mut data = Vec::new();
            while let Some(part) = parts.message().await? {
                if let Some(Part::Data(chunk)) = part.part {
                    data.extend(chunk);
                }
            }
            Ok(data)
        }
    })
    .await
}
