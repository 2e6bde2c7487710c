//! Wires the store, the services, health, reflection, metrics and the
//! reaper to a listener.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;

use sweep_proto::MAX_MESSAGE_BYTES;
use sweep_proto::v1::coordinator_server::CoordinatorServer;
use sweep_proto::v1::sweeps_server::SweepsServer;
use sweep_spec::planner::Limits;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::config::Config;
use crate::dashboard::{self, Actions, Dashboard};
use crate::error::{Error, Result};
use crate::metrics::{self, Metrics};
use crate::service::{BearerAuth, CoordinatorService, SweepsService};
use crate::store::{self, Store};
use crate::{reaper, seeder};

/// Opens the store, applies migrations and serves gRPC on `listener` until
/// `shutdown` completes. On shutdown, long polls and watch streams end at once
/// and in-flight calls finish before this returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = store::connect(&config.database_url).await?;
    let (stop, stopping) = watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    let reaper = tokio::spawn(reaper::run(
        store.clone(),
        metrics.clone(),
        config.reap_interval,
        stopping.clone(),
    ));
    let seeder = tokio::spawn(seeder::run(
        store.clone(),
        Limits {
            max_params: config.max_params,
        },
        config.seed_interval,
        stopping.clone(),
    ));

    let routes = routes(&config, store, metrics, stopping).await?;
    let address = listener.local_addr().ok();
    tracing::info!(address = ?address, database = %store::redacted(&config.database_url), "coordinator serving");
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    };
    // Small gRPC messages wait for delayed ACKs (40 ms a call) unless
    // Nagle's algorithm is off; tonic sets this only on sockets it binds.
    let incoming = TcpListenerStream::new(listener).map(|socket| {
        let socket = socket?;
        socket.set_nodelay(true)?;
        Ok::<_, std::io::Error>(socket)
    });
    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        let identity = Identity::from_pem(&tls.cert, &tls.key);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|err| Error::Server(format!("TLS: {err}")))?;
    }
    // HTTP/1.1 too, for Prometheus's scrapes of /metrics and for browsers.
    let served = builder
        .accept_http1(true)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, signal)
        .await;
    reaper.abort();
    seeder.abort();
    served.map_err(|err| Error::Server(err.to_string()))
}

/// Every service: health, reflection, the two gRPC services behind their
/// tokens, `/metrics` and the dashboard.
async fn routes(
    config: &Config,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
) -> Result<Routes> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for service in ["sweep.v1.Coordinator", "sweep.v1.Sweeps"] {
        health
            .set_service_status(service, ServingStatus::Serving)
            .await;
    }
    // v1 and v1alpha both: stock tools (grpcurl) speak v1, Python's
    // grpcio-reflection clients still only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sweep_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|err| Error::Server(err.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|err| Error::Server(err.to_string()))?;
    let coordinator = InterceptedService::new(
        CoordinatorServer::new(CoordinatorService::new(
            store.clone(),
            config.clone(),
            stopping.clone(),
            metrics.clone(),
        ))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES),
        BearerAuth::new(config.worker_token.as_deref()),
    );
    let sweeps = InterceptedService::new(
        SweepsServer::new(SweepsService::new(store.clone(), config.clone(), stopping))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        BearerAuth::new(config.client_token.as_deref()),
    );
    let grpc = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(coordinator)
        .add_service(sweeps);
    let changes = store.changes();
    let scrape = metrics::router(metrics, store.clone());
    let mut http = grpc.into_axum_router().merge(scrape);
    if config.dashboard {
        let actions = Actions {
            sweeps: store.clone(),
            token: config.client_token.clone().filter(|t| !t.is_empty()),
        };
        let dashboard = Dashboard::new(store, Some(actions), changes);
        http = http.merge(dashboard::router(dashboard));
    }
    Ok(Routes::from(http))
}
