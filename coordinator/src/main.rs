//! `sweep-coordinator`: parses flags (each also from `SWEEP_*` env) and runs
//! the coordinator until SIGTERM or ctrl-c, or, with `migrate`, only brings
//! its database to this version's schema.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sweep_coordinator::{Config, TlsIdentity, store};
use sweep_process::LogFormat;

/// The sweep coordinator: keeps the task queue and serves workers and clients
/// over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to serve gRPC on.
    #[arg(long, env = "SWEEP_LISTEN", default_value = "0.0.0.0:50051")]
    listen: SocketAddr,
    /// postgres://USER@HOST/DB for a cluster, sqlite://PATH for one machine
    /// (the file is created on first use).
    #[arg(
        long,
        env = "SWEEP_DATABASE_URL",
        default_value = "sqlite://sweeps.db",
        global = true,
        hide_env_values = true
    )]
    database_url: String,
    /// Seconds a lease lasts without a heartbeat.
    #[arg(long, env = "SWEEP_LEASE_TTL_SECS", default_value_t = 30)]
    lease_ttl_secs: u64,
    /// Seconds a worker's lease call may wait for work.
    #[arg(long, env = "SWEEP_MAX_LEASE_WAIT_SECS", default_value_t = 20)]
    max_lease_wait_secs: u64,
    /// Seconds between looks for expired leases.
    #[arg(long, env = "SWEEP_REAP_INTERVAL_SECS", default_value_t = 5)]
    reap_interval_secs: u64,
    /// Largest artifact accepted, in MiB.
    #[arg(long, env = "SWEEP_MAX_ARTIFACT_MIB", default_value_t = 64)]
    max_artifact_mib: u64,
    /// The most parameters one model of a submitted sweep may have.
    #[arg(long, env = "SWEEP_MAX_PARAMS", default_value_t = sweep_spec::planner::Limits::default().max_params)]
    max_params: u64,
    /// Serve TLS with this certificate (PEM; with --tls-key).
    #[arg(long, env = "SWEEP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "SWEEP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log lines as text (coloured only on a terminal) or JSON.
    #[arg(long, env = "SWEEP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Bearer token workers must present.
    #[arg(long, env = "SWEEP_WORKER_TOKEN", hide_env_values = true)]
    worker_token: Option<String>,
    /// Bearer token clients (the cli) must present.
    #[arg(long, env = "SWEEP_TOKEN", hide_env_values = true)]
    client_token: Option<String>,
    /// Serve no web dashboard (by default it is at / on the listen address;
    /// read-only, cancel and retry need the client token).
    #[arg(long, env = "SWEEP_NO_DASHBOARD")]
    no_dashboard: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Apply this version's database migrations and exit (a coordinator
    /// also does so when it starts); for migrating before a rolling upgrade.
    Migrate,
}

impl Args {
    fn config(self) -> anyhow::Result<Config> {
        anyhow::ensure!(
            self.lease_ttl_secs > 0,
            "--lease-ttl-secs must be at least 1"
        );
        anyhow::ensure!(
            self.reap_interval_secs > 0,
            "--reap-interval-secs must be at least 1"
        );
        let mut config = Config::new(self.database_url);
        config.lease_ttl = Duration::from_secs(self.lease_ttl_secs);
        config.max_lease_wait = Duration::from_secs(self.max_lease_wait_secs);
        config.reap_interval = Duration::from_secs(self.reap_interval_secs);
        config.max_artifact_bytes = self.max_artifact_mib << 20;
        config.max_params = self.max_params;
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let read = |path: &PathBuf| {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
            };
            config.tls = Some(TlsIdentity {
                cert: read(cert)?,
                key: read(key)?,
            });
        }
        config.worker_token = self.worker_token;
        config.client_token = self.client_token;
        config.dashboard = !self.no_dashboard;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sweep_process::init_logging("info", args.log_format);
    if let Some(Command::Migrate) = args.command {
        let url = &args.database_url;
        let version = sweep_coordinator::store::migrate(url)
            .await
            .with_context(|| format!("cannot migrate {}", store::redacted(url)))?;
        println!("{} is at schema version {version}", store::redacted(url));
        return Ok(());
    }
    let listen = args.listen;
    let config = args.config()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    sweep_coordinator::run(config, listener, sweep_process::shutdown_signal()).await?;
    Ok(())
}
