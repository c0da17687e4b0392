//! The `miroir` subcommands that run the proxy from this machine: `serve` (a config file,
//! for real deployments) and `dev` (a local cluster of Meilisearch processes in one command).
//! `crd` and `operator` live in [`crate::controlplane::cli`].

pub mod dev;
pub mod serve;

/// SIGINT (Ctrl-C) and SIGTERM, listened for from the moment this is created: a signal that
/// arrives before anything awaits it is kept, never the default "die at once".
pub struct ShutdownSignal {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    /// Installs the handlers now (call it before telling anyone the process is ready).
    pub fn listen() -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}");
                None
            }
        };
        ShutdownSignal { int: install(SignalKind::interrupt(), "SIGINT"), term: install(SignalKind::terminate(), "SIGTERM") }
    }

    /// Resolves at the first of the two signals; names it.
    pub async fn recv(&mut self) -> &'static str {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.int) => "SIGINT",
            _ = next(&mut self.term) => "SIGTERM",
        }
    }
}
