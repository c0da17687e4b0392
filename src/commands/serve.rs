//! `miroir serve --config FILE`: the proxy over the nodes a config file names.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use crate::config::{Config, Keys, ServerEnv};
use crate::dataplane::server::{self, ServerHandle};
use crate::dataplane::{Proxy, ProxyOptions};

/// A running proxy: the handle to stop it and the proxy itself.
pub struct Running {
    pub proxy: Proxy,
    pub server: ServerHandle,
}

/// Opens the task store, applies the topology and serves the Meilisearch API (plus
/// `/metrics`) on `server.bind:server.port`.
pub async fn start(cfg: &Config, keys: Keys) -> anyhow::Result<Running> {
    check_master_key(cfg.server.env, &keys)?;
    let store = crate::store::open(&cfg.task_store).await.context("opening the task store")?;
    let options = ProxyOptions {
        keys,
        health: cfg.health.clone(),
        scatter: cfg.scatter.clone(),
        max_body_bytes: cfg.server.max_body_bytes,
        replication: cfg.replication.clone(),
        rebalance: cfg.rebalance.clone(),
    };
    let proxy = Proxy::new(options, store);
    // The stored placement is what routing follows; the file's nodes are a declaration: the
    // first time they are stored as they are, afterwards a change becomes a migration (the
    // data moves before any read is routed to the new placement).
    proxy.declare_topology(cfg.topology(), "config").await.context("applying the config's topology")?;
    if proxy.routing().is_none() {
        proxy.apply_topology(cfg.topology())?;
    }
    let addr: SocketAddr = format!("{}:{}", cfg.server.bind, cfg.server.port)
        .parse()
        .with_context(|| format!("`server.bind`/`server.port`: {}:{} is not a socket address", cfg.server.bind, cfg.server.port))?;
    let listener = server::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let server = server::spawn_router(proxy.clone(), app(&proxy), listener);
    Ok(Running { proxy, server })
}

/// What `miroir serve` answers: the Meilisearch API and Miroir's own `/metrics`.
pub fn app(proxy: &Proxy) -> axum::Router {
    let mut registry = prometheus_client::registry::Registry::default();
    proxy.metrics().register(&mut registry);
    proxy.router().merge(crate::dataplane::metrics::metrics_router(std::sync::Arc::new(registry)))
}

/// SIGHUP: the config file is read again and its nodes declared; a change of nodes becomes
/// a migration (see `declare_topology`). Other keys keep the values the process started with.
async fn reload(path: &Path, proxy: &Proxy) {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the config file cannot be read; nothing changed");
            return;
        }
    };
    match proxy.declare_topology(cfg.topology(), "config").await {
        Ok(Some(m)) => tracing::info!(migration = %m.id, cause = %m.cause.description, "SIGHUP: the config's nodes changed; migration planned"),
        Ok(None) => tracing::info!("SIGHUP: config read; no data has to move"),
        Err(e) => tracing::error!(error = %e, "SIGHUP: the config's topology cannot be applied; nothing changed"),
    }
}

/// Meilisearch's `--task-webhook-url` / `--task-webhook-authorization-header`, from
/// `MIROIR_TASK_WEBHOOK_URL` / `MIROIR_TASK_WEBHOOK_AUTHORIZATION_HEADER`: a webhook listed with
/// the nil uuid, not editable through the API, never stored.
fn configure_task_webhook(proxy: &crate::dataplane::Proxy) -> anyhow::Result<()> {
    let url = std::env::var("MIROIR_TASK_WEBHOOK_URL").ok().filter(|u| !u.is_empty());
    if let Some(u) = &url {
        // The value may carry credentials: only say that it is not a URL.
        url::Url::parse(u).map_err(|e| anyhow::anyhow!("MIROIR_TASK_WEBHOOK_URL is not a URL: {e}"))?;
    }
    let auth = std::env::var("MIROIR_TASK_WEBHOOK_AUTHORIZATION_HEADER").ok().filter(|a| !a.is_empty());
    proxy.set_config_webhook(url, auth);
    Ok(())
}

/// As Meilisearch: production needs a master key of at least 16 bytes; development without
/// one serves everyone, and says so loudly.
pub fn check_master_key(env: ServerEnv, keys: &Keys) -> anyhow::Result<()> {
    match (env, keys.master_key.get()) {
        (ServerEnv::Production, None) => anyhow::bail!(
            "`server.env` is production and no master key is set: set MIROIR_MASTER_KEY (at least 16 bytes), or use `server.env: development` to serve without authentication"
        ),
        (ServerEnv::Production, Some(k)) if k.len() < 16 => {
            anyhow::bail!("`server.env` is production and the master key is {} bytes long: it must be at least 16 bytes", k.len())
        }
        (ServerEnv::Development, None) => {
            tracing::warn!("No master key is set (MIROIR_MASTER_KEY): the API is open to anyone who can reach it, with every right. Set a master key before exposing Miroir; `server.env: production` refuses to start without one.");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `miroir serve`: runs until SIGINT or SIGTERM, then stops accepting and lets the requests
/// in flight finish.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let keys = Keys::from_env(&cfg.keys);
    let mut signal = super::ShutdownSignal::listen();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listening for SIGHUP")?;
    let running = start(&cfg, keys).await?;
    configure_task_webhook(&running.proxy)?;
    tracing::info!(addr = %running.server.addr, shards = cfg.shards, rf = cfg.replication_factor, groups = cfg.replica_groups, nodes = cfg.nodes.len(), store = ?cfg.task_store.backend, "miroir serving");
    let signal = loop {
        tokio::select! {
            s = signal.recv() => break s,
            _ = hangup.recv() => reload(path, &running.proxy).await,
        }
    };
    drain(running, signal, std::time::Duration::from_millis(cfg.server.shutdown_delay_ms)).await;
    Ok(())
}

/// SIGTERM/SIGINT: `/ready` answers 503 at once; after `delay` (load balancers stop sending
/// new requests meanwhile) the listener closes, and the requests in flight finish before the
/// background workers stop and their leases are released.
pub async fn drain(running: Running, signal: &str, delay: std::time::Duration) {
    running.proxy.begin_drain();
    if !delay.is_zero() {
        tracing::info!(signal, delay_ms = delay.as_millis() as u64, "shutting down: /ready answers 503; still serving until the delay ends");
        tokio::time::sleep(delay).await;
    }
    tracing::info!(signal, "shutting down: no new connections; finishing requests in flight");
    running.server.shutdown().await;
    tracing::info!("stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn keys(master: Option<&str>) -> Keys {
        Keys { master_key: Secret(master.map(str::to_string)), node_master_key: Secret(None), admin_api_key: Secret(None) }
    }

    #[test]
    fn production_needs_a_master_key_of_16_bytes() {
        let e = check_master_key(ServerEnv::Production, &keys(None)).unwrap_err().to_string();
        assert!(e.contains("MIROIR_MASTER_KEY"), "{e}");
        let e = check_master_key(ServerEnv::Production, &keys(Some("short"))).unwrap_err().to_string();
        assert!(e.contains("5 bytes") && !e.contains("short"), "the key itself is never shown: {e}");
        assert!(check_master_key(ServerEnv::Production, &keys(Some("0123456789abcdef"))).is_ok());
        assert!(check_master_key(ServerEnv::Development, &keys(None)).is_ok());
    }
}
