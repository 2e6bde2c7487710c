//! The shutdown signal every sweep binary honours: ctrl-c or SIGTERM (what
//! Kubernetes and Slurm send before they kill a process).

/// Completes on the first ctrl-c or SIGTERM.
pub async fn signal() {
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
