//! The connection to a coordinator's `Sweeps` service, and the one place
//! where a failed call becomes the line a person reads.

use std::time::Duration;

use sweep_proto::bearer::Bearer;
use sweep_proto::v1::sweeps_client::SweepsClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};
use tonic::{Code, Status};

use crate::args::Endpoint;

pub type Client = SweepsClient<InterceptedService<Channel, Bearer>>;

/// A coordinator client with its address, for error messages.
pub struct Coordinator {
    pub client: Client,
    pub endpoint: String,
}

impl Coordinator {
    /// Connects now, so that a wrong address fails here with one clear line.
    pub async fn connect(endpoint: &Endpoint) -> anyhow::Result<Self> {
        let url = if endpoint.endpoint.contains("://") {
            endpoint.endpoint.clone()
        } else {
            format!("http://{}", endpoint.endpoint)
        };
        let target = TonicEndpoint::from_shared(url.clone())
            .map_err(|_| {
                anyhow::anyhow!(
                    "endpoint {:?} is not a valid address (expected http://HOST:PORT)",
                    endpoint.endpoint
                )
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = target.connect().await.map_err(|err| {
            anyhow::anyhow!("cannot reach the coordinator at {url}: {}", chain(&err))
        })?;
        let bearer = Bearer::new(endpoint.token.as_deref())
            .map_err(|err| anyhow::anyhow!("--token (SWEEP_TOKEN): {err}"))?;
        Ok(Self {
            client: SweepsClient::with_interceptor(channel, bearer),
            endpoint: url,
        })
    }

    /// Turns a failed call into one line that says what to do.
    pub fn explain(&self, status: Status) -> anyhow::Error {
        match status.code() {
            Code::Unavailable => anyhow::anyhow!(
                "cannot reach the coordinator at {}: {}",
                self.endpoint,
                status.message()
            ),
            Code::Unauthenticated | Code::PermissionDenied => anyhow::anyhow!(
                "the coordinator at {} refused the request: {} (set --token or SWEEP_TOKEN)",
                self.endpoint,
                status.message()
            ),
            _ => anyhow::anyhow!("{}", status.message()),
        }
    }
}

/// An error with its causes, "outer: inner: innermost".
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}
