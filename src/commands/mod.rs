//! The `miroir` subcommands that run the proxy from this machine: `serve` (a config file,
//! for real deployments) and `dev` (a local cluster of Meilisearch processes in one command).
//! `crd` and `operator` live in [`crate::controlplane::cli`].

pub mod dev;
pub mod serve;

/// Resolves when the process is asked to stop (Ctrl-C / SIGINT or SIGTERM); names the signal.
pub async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops Miroir");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
