//! The connection to a coordinator's `Sweeps` service, and the one place
//! where a failed call becomes the line a person reads.

use std::time::Duration;

use sweep_proto::v1::sweeps_client::SweepsClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};
use tonic::{Code, Request, Status};

use crate::args::Endpoint;

pub type Client = SweepsClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` when there is a token.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

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
        let token = endpoint
            .token
            .as_deref()
            .map(|t| format!("Bearer {t}").parse())
            .transpose()
            .map_err(|_| anyhow::anyhow!("the token has characters a header cannot carry"))?;
        Ok(Self {
            client: SweepsClient::with_interceptor(channel, Bearer(token)),
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
