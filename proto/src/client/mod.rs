//! Typed clients over the generated ones: [`WorkerClient`] for workers and
//! [`SweepsClient`] for people's tools. They speak the hand-written types of
//! this crate, answer every failure as a [`WireError`] that says which
//! coordinator it came from, and leave retrying to [`retry`], which decides
//! from the error's [`ErrorKind`].

mod sweeps;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::{Response, Status};

pub use sweeps::{SweepsClient, Watch};
pub use worker::WorkerClient;

use crate::MAX_MESSAGE_BYTES;
use crate::bearer::Bearer;
use crate::error::{ErrorKind, WireError};

type Channel = InterceptedService<tonic::transport::Channel, Bearer>;

/// What a client shows a coordinator: the bearer token it presents and, for
/// `https://` addresses, the certificate authority that signed the
/// coordinator's certificate (none: the system's roots).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub token: Option<String>,
    /// PEM.
    pub ca: Option<Vec<u8>>,
}

/// Which coordinator a client talks to, for the errors it explains.
#[derive(Debug)]
struct Target {
    url: String,
    /// Where the token comes from ("--token or SWEEP_TOKEN"), for the hint
    /// on a refusal.
    token_source: &'static str,
}

impl Target {
    /// Parses `address` (`http://HOST:PORT`, `https://HOST:PORT`, or
    /// `HOST:PORT`) and the credentials.
    fn new(
        address: &str,
        credentials: &Credentials,
        token_source: &'static str,
    ) -> Result<(Arc<Self>, Endpoint, Bearer), WireError> {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|_| {
                WireError::invalid(format!(
                    "coordinator address {address:?} is not a valid address (expected http://HOST:PORT)"
                ))
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        if url.starts_with("https://") {
            let tls = match &credentials.ca {
                Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
                None => ClientTlsConfig::new().with_native_roots(),
            };
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|err| WireError::invalid(format!("TLS for {url}: {}", chain(&err))))?;
        }
        let bearer = Bearer::new(credentials.token.as_deref())
            .map_err(|err| WireError::invalid(format!("{token_source}: {err}")))?;
        let target = Self { url, token_source };
        Ok((Arc::new(target), endpoint, bearer))
    }

    /// A failed call as one line that says what to do.
    fn explain(&self, status: Status) -> WireError {
        // A status with a source error was made here, by the transport (the
        // connection broke, or the peer does not speak what we expect, such
        // as plain HTTP/2 to a TLS port): the coordinator was not reached.
        if let Some(source) = std::error::Error::source(&status) {
            let mut why = status.message().to_string();
            let cause = chain(source);
            if !why.contains(&cause) {
                why = format!("{why}: {cause}");
            }
            let message = format!("cannot reach the coordinator at {}: {why}", self.url);
            return WireError::new(ErrorKind::Unavailable, message);
        }
        if let Some(size) = over_limit(status.message()) {
            let message = format!(
                "a message of {} to or from the coordinator at {} is over the {} limit",
                mib(size),
                self.url,
                limit()
            );
            return WireError::new(ErrorKind::ResourceExhausted, message);
        }
        let err = WireError::from(status);
        let message = match err.kind {
            ErrorKind::Unavailable => {
                format!(
                    "cannot reach the coordinator at {}: {}",
                    self.url, err.message
                )
            }
            ErrorKind::Unauthenticated => format!(
                "the coordinator at {} refused the request: {} (set {})",
                self.url, err.message, self.token_source
            ),
            _ => return err,
        };
        WireError::new(err.kind, message)
    }
}

/// Refuses a request over [`MAX_MESSAGE_BYTES`] before it is sent: tonic
/// would break the stream mid-send, and all the caller would learn is that
/// the coordinator could not be reached.
fn fits<M: prost::Message>(what: &str, request: M) -> Result<M, WireError> {
    let size = request.encoded_len();
    if size > MAX_MESSAGE_BYTES {
        let message = format!(
            "{what} is {}, over the {} limit of a message",
            mib(size),
            limit()
        );
        return Err(WireError::new(ErrorKind::ResourceExhausted, message));
    }
    Ok(request)
}

/// The size tonic names when a message over the limit reaches either end
/// ("Error, decoded message length too large: found N bytes, the limit
/// is: M bytes"); none for any other status.
fn over_limit(message: &str) -> Option<usize> {
    let (_, rest) = message.split_once("message length too large: found ")?;
    rest.split_once(" bytes")?.0.parse().ok()
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn limit() -> String {
    format!("{} MiB", MAX_MESSAGE_BYTES >> 20)
}

/// A generated client and the coordinator it talks to.
#[derive(Clone)]
struct Connection<C> {
    inner: C,
    target: Arc<Target>,
}

impl<C: Clone> Connection<C> {
    /// Makes one call on a clone of the client (cheap: clones share the
    /// channel) and explains a failure.
    async fn call<Req, Res, Fut>(
        &self,
        request: Req,
        method: impl FnOnce(C, Req) -> Fut,
    ) -> Result<Res, WireError>
    where
        Fut: Future<Output = Result<Response<Res>, Status>>,
    {
        method(self.inner.clone(), request)
            .await
            .map(Response::into_inner)
            .map_err(|status| self.target.explain(status))
    }
}

/// Runs `call` until it succeeds or fails for a reason other than the
/// coordinator being away, waiting 100 ms, 200 ms, ... up to 5 s between tries.
pub async fn retry<T, F, Fut>(call: F) -> Result<T, WireError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WireError>>,
{
    let never = || false;
    retry_until(never, call).await.expect("never stopped")
}

/// Like [`retry`], but gives up as soon as `stopped` says so, even in the
/// middle of a wait, and then answers `None`.
pub async fn retry_until<T, F, Fut>(
    stopped: impl Fn() -> bool,
    mut call: F,
) -> Option<Result<T, WireError>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WireError>>,
{
    const LOOK: Duration = Duration::from_millis(50);
    let mut wait = Duration::from_millis(100);
    loop {
        match call().await {
            Err(err) if err.kind.is_transient() => {
                tracing::debug!(error = %err, wait_ms = wait.as_millis() as u64, "coordinator away; retrying");
                let until = tokio::time::Instant::now() + wait;
                while tokio::time::Instant::now() < until {
                    if stopped() {
                        return None;
                    }
                    tokio::time::sleep(LOOK.min(until - tokio::time::Instant::now())).await;
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            other => return Some(other),
        }
    }
}

/// An error with its causes, "outer: inner: innermost".
fn chain(err: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_a_scheme_and_bad_ones_are_named() {
        let none = Credentials::default();
        let (target, _, _) = Target::new("127.0.0.1:50051", &none, "--token").unwrap();
        assert_eq!(target.url, "http://127.0.0.1:50051");
        let err = Target::new("http://bad host:1", &none, "--token").unwrap_err();
        assert!(err.message.contains("is not a valid address"), "{err}");
        let odd = Credentials {
            token: Some("a\nb".into()),
            ca: None,
        };
        let err = Target::new("http://h:1", &odd, "--token").unwrap_err();
        assert!(err.message.starts_with("--token: "), "{err}");
    }

    #[test]
    fn refusals_and_absences_name_the_coordinator() {
        let none = Credentials::default();
        let (target, _, _) = Target::new("http://h:1", &none, "--token or SWEEP_TOKEN").unwrap();
        let away = target.explain(Status::unavailable("connection refused"));
        assert_eq!(away.kind, ErrorKind::Unavailable);
        assert_eq!(
            away.message,
            "cannot reach the coordinator at http://h:1: connection refused"
        );
        let refused = target.explain(Status::unauthenticated("the bearer token is wrong"));
        assert!(
            refused.message.ends_with("(set --token or SWEEP_TOKEN)"),
            "{refused}"
        );
        let missing = target.explain(Status::not_found("sweep 9 not found"));
        assert_eq!(missing.message, "sweep 9 not found");
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, "not HTTP/2");
        let broken = target.explain(Status::from_error(Box::new(io)));
        assert_eq!(broken.kind, ErrorKind::Unavailable);
        assert!(
            broken
                .message
                .starts_with("cannot reach the coordinator at http://h:1: "),
            "{broken}"
        );
        assert!(broken.message.ends_with("not HTTP/2"), "{broken}");
    }

    #[test]
    fn a_message_over_the_limit_is_named_by_size_on_either_side() {
        let none = Credentials::default();
        let (target, _, _) = Target::new("http://h:1", &none, "--token").unwrap();
        // What tonic answers when a message over the limit arrives.
        let status = Status::out_of_range(
            "Error, decoded message length too large: found 10485800 bytes, the limit is: 8388608 bytes",
        );
        let err = target.explain(status);
        assert_eq!(err.kind, ErrorKind::ResourceExhausted);
        assert_eq!(
            err.message,
            "a message of 10.0 MiB to or from the coordinator at http://h:1 is over the 8 MiB limit"
        );
        let request = crate::v1::SubmitRequest {
            spec_toml: "#".repeat(MAX_MESSAGE_BYTES),
            no_cache: false,
        };
        let err = fits("the spec", request).unwrap_err();
        assert_eq!(
            err.message,
            "the spec is 8.0 MiB, over the 8 MiB limit of a message"
        );
        let small = crate::v1::SubmitRequest {
            spec_toml: "#".repeat(MAX_MESSAGE_BYTES - 8),
            no_cache: false,
        };
        assert!(fits("the spec", small).is_ok());
    }
}
