//! What every sweep binary does the same way: log to stderr filtered by
//! `RUST_LOG` (default: the binary's own level), and stop on ctrl-c or SIGTERM (what
//! Kubernetes and Slurm send before they kill a process).

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event; coloured only on a terminal, so files
    /// and Slurm's output get no escape codes.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the tracing subscriber on stderr; `default` is the filter when
/// `RUST_LOG` is unset (services log `info`, the cli only `warn`).
pub fn init_logging(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on the first ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler, ctrl-c still works.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
